"""`helm-mlops demo`: the main job end to end. Generates a preset's stack (full-stack by default) into a
directory it names, lints it (helm lint --strict on Helm 4 and 3, schemas, kubernetes-validate, Pod
Security), installs it with pyhelm3 (--wait) into the user's cluster, or into the embedded local cluster
when no kubeconfig is configured, and prints each component's state and how to reach MLflow and the
inference services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from generator import generate, stack, stackcheck
from generator.errors import UserError
from generator.helm.adapter import Helm
from generator.helm.binary import find_helm

NEEDED_CRDS = {
    "inferenceservices.serving.kserve.io": "KServe InferenceServices",
    "pytorchjobs.kubeflow.org": "Kubeflow PyTorchJobs",
    "trainjobs.trainer.kubeflow.org": "Kubeflow Trainer TrainJobs",
}


def _kinds(built: stack.Stack) -> set[str]:
    out = set()
    for comp in built.components:
        if comp.values.get("runtime") == "kserve":
            out.add(NEEDED_CRDS["inferenceservices.serving.kserve.io"])
        operator = (comp.values.get("distributed") or {}).get("operator")
        if operator == "pytorchjob":
            out.add(NEEDED_CRDS["pytorchjobs.kubeflow.org"])
        elif operator == "trainjob":
            out.add(NEEDED_CRDS["trainjobs.trainer.kubeflow.org"])
    return out


def default_dir(preset: str) -> Path:
    return Path("helm-mlops-demo") / preset


def run_demo(
    preset: str,
    out: Path | None,
    helm_bin: str | None,
    *,
    install: bool = True,
    kubeconfig: Path | None = None,
    namespace: str | None = None,
    kube_context: str | None = None,
    sets: list[tuple[str, str]] | None = None,
) -> Iterator[str]:
    out = out or default_dir(preset)
    sets = list(sets or [])
    if namespace:  # the stack is generated for the namespace it goes to
        sets.append(("--set-string", f"global.namespace={namespace}"))
    loaded = generate.load(preset=preset, answers_file=None, sets=sets)
    target = None
    if install:  # a cluster that cannot be used is named before anything is written
        from generator.kube.target import resolve

        target = resolve(kubeconfig, kube_context)
    built = generate.build(loaded)
    generate.write(built.files, out, force=False)
    yield f"generated the {preset} preset ({', '.join(stack._summary(built))}) into {out}/"
    helm = Helm(find_helm(helm_bin))
    for line in stackcheck.lint(out, helm_bin=helm.binary.path, crd_dir=None):
        yield f"lint: {line}"
    resources = stackcheck.render(out, release=built.name, helm=helm, namespace=namespace)
    yield f"release {built.name!s} consists of {len(resources)} objects"
    if not install:
        ns = namespace or built.namespace
        yield f"install it: helm install {built.name} {out} -n {ns} --create-namespace --wait"
        return

    from generator.kube.status import collect, collect_services, pod_statuses

    assert target is not None
    ns = namespace or built.namespace
    kube = target.kube()
    for crd, what in NEEDED_CRDS.items():
        if what in _kinds(built) and not kube.has_crd(crd):
            raise UserError(
                f"the {preset} stack needs {what}, which {target.describe()} does not serve (no CRD {crd})",
                field="--preset",
                hint=f"install {what.split()[0]} in the cluster first, or pick another preset",
            )
    yield f"installing into the {target.describe()}, namespace {ns} (helm --wait)..."
    kube.ensure_namespace(ns)
    cluster_helm = Helm(helm.binary, kubeconfig=target.kubeconfig, kube_context=target.context)
    done = cluster_helm.install_or_upgrade(built.name, out, {}, namespace=ns, source=str(out))
    yield f"release {done.release}: revision {done.revision}, {done.status}"
    yield ""
    yield "components:"
    for pod in pod_statuses(kube, ns, built.name):
        if pod.component in ("server", "minio", "postgresql"):
            yield f"  pod {pod.name:<44} {pod.component:<10} {pod.phase:<10} ready {pod.ready}"
    for svc in collect_services(kube, ns, built.name):
        yield f"  service {svc.name:<40} {svc.phase:<10} {svc.runtime}, replicas {svc.ready}/{svc.desired}"
    for job in collect(kube, ns, built.name):
        yield f"  training {job.name:<39} {job.phase:<10} {job.kind}"
    yield ""
    yield "reach them:"
    for name, url, cmd in stack.endpoints(built):
        yield f"  {name}: {url}"
        yield f"    {cmd}"
        if name == "mlflow":
            yield f"    or: helm-mlops ui {built.name} -n {ns}"
        elif not url.startswith("InferenceService"):
            yield f"    or: helm-mlops predict {built.name} {name} -n {ns} --data '[[...]]'"
    yield f"  the whole stack: helm-mlops status {built.name} -n {ns}"
    if target.embedded:
        yield ""
        yield "(the embedded cluster's pods are simulated by kwok)"
        yield f"use it with: export KUBECONFIG={target.kubeconfig}"
