"""`helm-mlops template DIR` and `helm-mlops lint DIR`: render a generated stack and check it the way
CI checks our charts: helm lint --strict on Helm 4 and Helm 3, the values schemas, kubernetes-validate
--strict, custom resources against their CRDs, and Pod Security "restricted". Every problem is listed
before the command fails."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from generator import yamlio
from generator.errors import HelmMlopsError, UserError
from generator.helm.adapter import Helm

KUBE_VERSION = "1.34.0"
WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}


def _stack(stack_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stack's Chart.yaml and answers (namespace, name)."""
    chart = stack_dir / "Chart.yaml"
    if not chart.is_file():
        raise UserError(
            f"{stack_dir} has no Chart.yaml",
            field="STACK_DIR",
            hint="pass a directory `helm-mlops generate` wrote",
        )
    meta = yamlio.load_mapping(chart, "STACK_DIR")
    answers_path = stack_dir / "answers.yaml"
    data = yamlio.load_mapping(answers_path, "STACK_DIR") if answers_path.is_file() else {}
    return meta, data


def _helm(helm_bin: str | None) -> Helm:
    from generator.helm.binary import find_helm

    return Helm(find_helm(helm_bin))


def _helm3(helm4: Helm) -> Helm | None:
    """A Helm 3 beside the Helm 4: the checkout's pinned helm3, else `helm3` on PATH."""
    from generator.helm.binary import find_helm
    from generator.paths import tools_bin

    candidates = []
    tools = tools_bin()
    if tools is not None and (tools / "helm3").is_file():
        candidates.append(str(tools / "helm3"))
    found = shutil.which("helm3")
    if found:
        candidates.append(found)
    if helm4.binary.major == 3:
        return helm4
    for candidate in candidates:
        try:
            binary = find_helm(candidate)
        except HelmMlopsError:
            continue
        if binary.major == 3:
            return Helm(binary)
    return None


def render(
    stack_dir: Path, *, release: str | None, helm: Helm, namespace: str | None
) -> list[dict[str, Any]]:
    meta, data = _stack(stack_dir)
    ns = namespace or (data.get("global") or {}).get("namespace") or "default"
    return helm.template(stack_dir, release or str(meta["name"]), {}, namespace=ns, source=str(stack_dir))


def render_text(stack_dir: Path, *, release: str | None, helm_bin: str | None, namespace: str | None) -> str:
    docs = render(stack_dir, release=release, helm=_helm(helm_bin), namespace=namespace)
    return "".join("---\n" + yamlio.dump(doc) for doc in docs)


# KServe component fields that hold a model server container (the "kserve-container" KServe builds).
KSERVE_MODEL_FIELDS = (
    "model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
    "lightgbm", "paddle",
)  # fmt: skip


def _pod_specs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod an object carries or stands for: workloads' templates, a
    PyTorchJob's replicas, a KServe InferenceService's components (their pod fields, containers and
    model container) and a TrainJob's runtime patches (the trainer's fields on its "node" container)."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return [("", spec)]
    if kind in WORKLOADS:
        return [("", (spec.get("template") or {}).get("spec") or {})]
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return [("", (job.get("template") or {}).get("spec") or {})]
    out: list[tuple[str, dict[str, Any]]] = []
    if kind == "PyTorchJob":
        for role, replica in (spec.get("pytorchReplicaSpecs") or {}).items():
            out.append((f"/{role}", ((replica or {}).get("template") or {}).get("spec") or {}))
    elif kind == "InferenceService":
        for name in ("predictor", "transformer", "explainer"):
            component = spec.get(name)
            if isinstance(component, dict):
                containers = list(component.get("containers") or [])
                containers += [
                    {"name": "kserve-container", **component[f]}
                    for f in KSERVE_MODEL_FIELDS
                    if isinstance(component.get(f), dict)
                ]
                out.append((f"/{name}", {**component, "containers": containers}))
    elif kind == "TrainJob":
        trainer = spec.get("trainer") or {}
        for patch in spec.get("runtimePatches") or []:
            runtime = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
            for replicated in runtime.get("replicatedJobs") or []:
                job = ((replicated.get("template") or {}).get("spec") or {}).get("template") or {}
                pod = dict(job.get("spec") or {})
                pod["containers"] = [
                    {**c, "image": trainer.get("image"), "resources": trainer.get("resourcesPerNode", {})}
                    if c.get("name") == "node"
                    else c
                    for c in pod.get("containers") or []
                ]
                out.append((f"/{replicated.get('name')}", pod))
    return out


def problems_in(
    docs: list[dict[str, Any]], crd_dir: Path | None, unchecked: list[str] | None = None
) -> list[str]:
    """kubernetes-validate --strict, CRD schemas and Pod Security "restricted" over rendered objects.
    Custom resources without a CRD to check them against go to `unchecked` when it is given and no CRD
    folder is (a problem otherwise)."""
    import kubernetes_validate

    from generator.charts.crds import load_crd_schemas, validate_custom_resource
    from generator.charts.policy import restricted_violations

    crds = load_crd_schemas(crd_dir) if crd_dir is not None else {}
    out: list[str] = []
    for doc in docs:
        where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        key = (str(doc.get("apiVersion", "")), str(doc.get("kind")))
        if key in crds:
            out += [f"{where}: {p}" for p in validate_custom_resource(doc, crds[key])]
        else:
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                out.append(f"{where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                custom = "." in key[0].split("/")[0]
                if custom and unchecked is not None and crd_dir is None:
                    unchecked.append(where)
                else:
                    hint = " (pass --crds with its CRD)" if custom else ""
                    out.append(f"{where}: no schema for {doc.get('apiVersion')} {doc.get('kind')}{hint}")
        for part, spec in _pod_specs(doc):
            out += [f"{where}{part}: Pod Security restricted: {p}" for p in restricted_violations(spec)]
    return out


def default_crds() -> Path | None:
    from generator.paths import checkout_root

    root = checkout_root()
    if root is None:
        return None
    folder = root.parent / "shared" / "crds"
    return folder if folder.is_dir() else None


def missing_dependencies(stack_dir: Path, meta: dict[str, Any]) -> list[str]:
    """Dependencies a chart repository should provide that `charts/` does not hold yet."""
    present = {p.name for p in (stack_dir / "charts").glob("*")} if (stack_dir / "charts").is_dir() else set()
    missing = []
    for dep in meta.get("dependencies") or []:
        if dep.get("repository") and f"{dep['name']}-{dep['version']}.tgz" not in present:
            missing.append(f"{dep['name']} {dep['version']} from {dep['repository']}")
    return sorted(set(missing))


def lint(stack_dir: Path, *, helm_bin: str | None, crd_dir: Path | None) -> list[str]:
    """Lines to print; raises UserError listing every problem when there is any."""
    meta, _ = _stack(stack_dir)
    missing = missing_dependencies(stack_dir, meta)
    if missing:
        raise UserError(
            f"the stack's charts are not fetched yet: {', '.join(missing)}",
            field="STACK_DIR",
            hint=f"run `helm dependency build {stack_dir}` (after `helm repo add` or `helm registry login` "
            "for that repository), then lint again",
        )
    helm4 = _helm(helm_bin)
    lines: list[str] = []
    problems: list[str] = []
    helms = [helm4]
    helm3 = _helm3(helm4)
    if helm3 is None:
        lines.append("helm 3: not found (set up with `make tools`), its lint skipped")
    elif helm3 is not helm4:
        helms.append(helm3)
    for helm in helms:
        try:
            helm.lint(stack_dir, strict=True, source=str(stack_dir))
            lines.append(f"helm lint --strict ({helm.binary.describe()}): ok")
        except HelmMlopsError as exc:
            problems.append(f"helm lint --strict ({helm.binary.describe()}): {exc}")
    try:
        docs = render(stack_dir, release=None, helm=helm4, namespace=None)
    except HelmMlopsError as exc:
        problems.append(f"helm template: {exc}")
        docs = []
    crd_dir = crd_dir or default_crds()
    unchecked: list[str] = []
    found = problems_in(docs, crd_dir, unchecked)
    if unchecked:
        lines.append(f"not validated (no CRD folder given with --crds): {', '.join(unchecked)}")
    problems += found
    if docs and not found:
        lines.append(
            f"{len(docs)} objects: kubernetes-validate --strict, CRDs and Pod Security restricted: ok"
        )
    if problems:
        raise UserError(
            f"{len(problems)} problem(s) in {stack_dir}:\n" + "\n".join(f"  {p}" for p in problems),
            field="STACK_DIR",
            hint="regenerate from changed answers, or fix the values named above",
        )
    return lines
