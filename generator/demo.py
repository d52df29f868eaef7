"""`helm-mlops demo`: the main job until the generator lands. Lints a chart with its quickstart
preset on the pinned helm, renders it through pyhelm3 and lists what an install creates; then
installs it (pyhelm3, --wait) into the user's cluster, or into the embedded local cluster when no
kubeconfig is configured, and shows the release and its pods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from generator.errors import ToolError, UserError
from generator.helm_tool import find_helm, run_helm
from generator.paths import PRESETS_DIR, chart_dir
from generator.rendering import render
from generator.values_check import check_values, is_values_error


def _load_values(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"not valid YAML: {exc}", field=str(path), hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError("must be a mapping of values", field=str(path))
    return data


def run_demo(
    chart_name: str,
    values_file: Path | None,
    helm_bin: str | None,
    *,
    install: bool = True,
    kubeconfig: Path | None = None,
    namespace: str = "helm-mlops-demo",
    release: str = "demo",
) -> Iterator[str]:
    chart = chart_dir(chart_name)
    values_file = values_file or PRESETS_DIR / f"{chart_name}-quickstart.yaml"
    if not values_file.is_file():
        raise UserError(
            f"{values_file} does not exist", field="--values", hint="pass an existing values file"
        )
    values = _load_values(values_file)
    check_values(chart, values, str(values_file))
    helm = find_helm(helm_bin)
    version = run_helm(helm, "version", "--short").strip()
    yield f"helm {version}: linting {chart} with {values_file}"
    try:
        run_helm(helm, "lint", "--strict", chart, "-f", values_file)
    except ToolError as exc:
        if is_values_error(str(exc)):
            raise UserError(str(exc), field=str(values_file), hint="change the values named above") from None
        raise
    yield "lint: ok"
    resources = render(chart, values, helm, str(values_file), release)
    yield f"release '{release}' consists of {len(resources)} resources:"
    for res in resources:
        hook = (res.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook")
        suffix = f"  (hook: {hook})" if hook else ""
        yield f"  {res['kind']:<24} {res['metadata']['name']}{suffix}"
    if not install:
        return

    from generator import release as lifecycle
    from generator.target import resolve

    target = resolve(kubeconfig)
    yield f"installing into the {target.describe()}, namespace {namespace} (helm --wait)..."
    lifecycle.ensure_namespace(target.kubeconfig, namespace)
    done = lifecycle.install(helm, target.kubeconfig, chart, release, namespace, values, str(values_file))
    yield f"release {done.release}: revision {done.revision}, {done.status}"
    for pod in lifecycle.pod_statuses(target.kubeconfig, namespace, release):
        yield f"  pod {pod.name:<40} {pod.component:<12} {pod.phase:<10} ready {pod.ready}"
    yield ""
    yield done.notes.strip()
    if target.embedded:
        yield ""
        yield "(the embedded cluster's pods are simulated by kwok)"
        yield f"use it with: export KUBECONFIG={target.kubeconfig}"
