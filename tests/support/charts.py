"""Rendering and linting charts with the real helm binaries (Helm 4, 3.18, 3.17)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator import paths, yamlio
from generator.helm.binary import find_helm

_root = paths.checkout_root()
assert _root is not None, "the tests run from a source checkout"
REPO: Path = _root
CHARTS = paths.charts_root()
TOOLS_BIN = REPO / ".tools" / "bin"
SHARED = REPO.parent / "shared"

# name -> binary; the version each must report, so a wrong binary on PATH cannot pass silently.
HELMS = {"helm4": ("helm", "v4."), "helm3": ("helm3", "v3.18."), "helm3.17": ("helm3.17", "v3.17.")}


def helm_path(name: str) -> str:
    binary, prefix = HELMS[name]
    pinned = TOOLS_BIN / binary
    found = find_helm(str(pinned) if pinned.is_file() else binary)
    if not found.version.startswith(prefix):
        raise RuntimeError(
            f"{found.describe()} is not the {prefix}x that {name} stands for: run `make tools`"
        )
    return found.path


# helm's own state (repositories, registry credentials, caches), redirected per test.
HELM_HOME_VARS = (
    ("HELM_REPOSITORY_CONFIG", "repositories.yaml"),
    ("HELM_REPOSITORY_CACHE", "repo-cache"),
    ("HELM_REGISTRY_CONFIG", "registry.json"),
    ("HELM_CACHE_HOME", "cache"),
    ("HELM_CONFIG_HOME", "config"),
    ("HELM_DATA_HOME", "data"),
)


def helm_home_env(home: Path) -> dict[str, str]:
    """The environment that keeps helm's repositories, registry credentials and caches under HOME."""
    return {var: str(home / sub) for var, sub in HELM_HOME_VARS}


def chart_dirs() -> list[Path]:
    return paths.chart_dirs()


def ci_values(chart: Path) -> list[Path]:
    return sorted((chart / "ci").glob("*-values.yaml"))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def helm(helm_name: str, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(
        [helm_path(helm_name), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def template(
    chart: Path,
    *,
    values: dict[str, Any] | None = None,
    values_files: list[Path] | None = None,
    helm_name: str = "helm4",
    release: str = "t",
    namespace: str = "ml",
    extra: list[str] | None = None,
    tmp_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """helm template, returning every rendered object (hooks and tests included)."""
    args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
    for f in values_files or []:
        args += ["-f", f]
    if values is not None:
        target = (
            tmp_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        ) / f"values-{os.getpid()}-{id(values)}.yaml"
        target.write_text(yamlio.dump(values))
        args += ["-f", target]
    args += extra or []
    result = helm(helm_name, *args)
    if result.code != 0:
        raise TemplateError(result.stderr)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template_error(chart: Path, values: dict[str, Any], helm_name: str, tmp_dir: Path) -> str:
    """The error helm prints for values that must be rejected; fails when helm accepts them."""
    try:
        template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_dir)
    except TemplateError as exc:
        return str(exc)
    raise AssertionError(f"helm accepted values that must be rejected: {values}")


class TemplateError(Exception):
    pass


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in matches]}"
    )
    return matches[0]


# KServe's component fields that each stand for one container (the model server or explainer), named
# "kserve-container" in the pod KServe builds: the predictor's `model` and older per-framework fields,
# the explainer's `art` (serving.kserve.io_inferenceservices.yaml).
KSERVE_MODEL_FIELDS = (
    "model",
    "art",
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnx",
    "pytorch",
    "tensorflow",
    "triton",
    "pmml",
    "paddle",
    "huggingface",
)
# Fields of a KServe component that are not pod spec fields (scaling, routing, metadata).
KSERVE_COMPONENT_FIELDS = {
    "annotations",
    "autoScaling",
    "batcher",
    "canaryTrafficPercent",
    "containerConcurrency",
    "deploymentStrategy",
    "labels",
    "logger",
    "maxReplicas",
    "minReplicas",
    "scaleMetric",
    "scaleMetricType",
    "scaleTarget",
    "storageUris",
    "timeout",
    "name",
    "storageContainerName",
    "workerSpec",
    *KSERVE_MODEL_FIELDS,
}


# Fields of a model field that are not container fields.
KSERVE_MODEL_ONLY = {
    "modelFormat",
    "protocolVersion",
    "runtime",
    "runtimeVersion",
    "storage",
    "storageUri",
    "type",
    "config",
}


def _kserve_pod(component: dict[str, Any]) -> dict[str, Any]:
    """The pod spec a KServe component (predictor, transformer, explainer) stands for: its inline pod
    fields, its containers, and its model field as the "kserve-container" container."""
    spec = {k: v for k, v in component.items() if k not in KSERVE_COMPONENT_FIELDS}
    containers = list(component.get("containers", []))
    for field in KSERVE_MODEL_FIELDS:
        if field in component:
            model = {k: v for k, v in component[field].items() if k not in KSERVE_MODEL_ONLY}
            containers.append({"name": "kserve-container", **model})
    spec["containers"] = containers
    return spec


def _trainjob_pods(name: str, tj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Trainer v2 builds the pods from the runtime's JobSet; what the chart controls is the trainer
    (image, command, env, resourcesPerNode -> the "node" container) and each runtime patch's pod
    template. The patched pod, with the trainer's fields on its "node" container, is what is checked."""
    trainer = tj["spec"].get("trainer", {})
    out = []
    for patch in tj["spec"].get("runtimePatches", []):
        runtime = patch.get("trainingRuntimeSpec", {}).get("template", {}).get("spec", {})
        for replicated in runtime.get("replicatedJobs", []):
            pod = dict(replicated["template"]["spec"]["template"]["spec"])
            containers = []
            for c in pod.get("containers", []):
                if c["name"] == "node":
                    c = {
                        **c,
                        "image": trainer.get("image"),
                        "command": trainer.get("command"),
                        "env": trainer.get("env", []),
                        "resources": trainer.get("resourcesPerNode", {}),
                    }
                containers.append(c)
            pod["containers"] = containers
            out.append((f"TrainJob/{name}/{replicated['name']}", pod))
    return out


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(description, pod spec) for every rendered object that carries or stands for a pod: workloads'
    pod templates, PyTorchJob replicas, KServe InferenceService components and TrainJob runtime
    patches (see _kserve_pod and _trainjob_pods for how those become pod specs)."""
    out = []
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "Pod":
            out.append((f"Pod/{name}", d["spec"]))
        elif kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
            out.append((f"{kind}/{name}", d["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            out.append((f"CronJob/{name}", d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind == "PyTorchJob":
            for role, replica in d["spec"]["pytorchReplicaSpecs"].items():
                out.append((f"PyTorchJob/{name}/{role}", replica["template"]["spec"]))
        elif kind == "InferenceService":
            for component in ("predictor", "transformer", "explainer"):
                if component in d["spec"]:
                    out.append((f"InferenceService/{name}/{component}", _kserve_pod(d["spec"][component])))
        elif kind == "TrainJob":
            out.extend(_trainjob_pods(name, d))
        elif kind not in POD_FREE_KINDS:
            raise AssertionError(f"pod_specs() does not know whether a {kind} carries a pod: teach it")
    return out


# Kinds that carry no pod: pod_specs() refuses any other kind, so a new workload kind cannot go unchecked.
POD_FREE_KINDS = {
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
    "HTTPRoute",
    "ServiceMonitor",
    "PrometheusRule",
    "Role",
    "RoleBinding",
}
