"""`helm-mlops demo`: the main job until the generator lands. Lints a chart with its quickstart
preset on the pinned helm, renders it through pyhelm3 and lists what an install creates; then
installs it (pyhelm3, --wait) into the user's cluster, or into the embedded local cluster when no
kubeconfig is configured, and shows the release and its pods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from generator import yamlio
from generator.errors import UserError
from generator.helm.adapter import Helm
from generator.helm.binary import find_helm
from generator.paths import chart_dir, presets_dir
from generator.values import check_values


def run_demo(
    chart_name: str,
    values_file: Path | None,
    helm_bin: str | None,
    *,
    install: bool = True,
    kubeconfig: Path | None = None,
    namespace: str = "helm-mlops-demo",
    release: str = "demo",
    kube_context: str | None = None,
) -> Iterator[str]:
    chart = chart_dir(chart_name)
    if values_file is None:
        values_file = presets_dir() / f"{chart_name}-quickstart.yaml"
        if not values_file.is_file():
            ready = sorted(
                p.name.removesuffix("-quickstart.yaml") for p in presets_dir().glob("*-quickstart.yaml")
            )
            raise UserError(
                f"chart {chart_name} has no quickstart preset, so the demo needs its values",
                field="--values",
                hint="pass --values FILE (the chart's ci/*-values.yaml are examples), "
                f"or --chart {' | '.join(ready)}",
            )
    elif not values_file.is_file():
        raise UserError(
            f"{values_file} does not exist", field="--values", hint="pass an existing values file"
        )
    values = yamlio.load_mapping(values_file)
    check_values(chart, values, str(values_file))
    helm = Helm(find_helm(helm_bin))
    yield f"helm {helm.version()}: linting {chart} with {values_file}"
    helm.lint(chart, values, source=str(values_file))
    yield "lint: ok"
    resources = helm.template(chart, release, values, namespace=namespace, source=str(values_file))
    yield f"release '{release}' consists of {len(resources)} resources:"
    for res in resources:
        hook = (res.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook")
        suffix = f"  (hook: {hook})" if hook else ""
        yield f"  {res['kind']:<24} {res['metadata']['name']}{suffix}"
    if not install:
        return

    from generator.kube.status import pod_statuses
    from generator.kube.target import resolve

    target = resolve(kubeconfig, kube_context)
    kube = target.kube()
    yield f"installing into the {target.describe()}, namespace {namespace} (helm --wait)..."
    kube.ensure_namespace(namespace)
    cluster_helm = Helm(helm.binary, kubeconfig=target.kubeconfig, kube_context=target.context)
    done = cluster_helm.install_or_upgrade(
        release, chart, values, namespace=namespace, source=str(values_file)
    )
    yield f"release {done.release}: revision {done.revision}, {done.status}"
    for pod in pod_statuses(kube, namespace, release):
        yield f"  pod {pod.name:<40} {pod.component:<12} {pod.phase:<10} ready {pod.ready}"
    yield ""
    yield done.notes.strip()
    if target.embedded:
        yield ""
        yield "(the embedded cluster's pods are simulated by kwok)"
        yield f"use it with: export KUBECONFIG={target.kubeconfig}"
