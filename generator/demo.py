"""`helm-mlops demo`: the main job until the generator lands. Lints a chart with its quickstart
preset on the pinned helm, renders it through pyhelm3 (the same driver later layers install with)
and lists what an install would create."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from generator.errors import UserError
from generator.helm_tool import find_helm, run_helm
from generator.paths import PRESETS_DIR, chart_dir


def _load_values(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"not valid YAML: {exc}", field=str(path), hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError("must be a mapping of values", field=str(path))
    return data


def render(chart: Path, values: dict[str, Any], helm: str, release: str = "demo") -> list[dict[str, Any]]:
    """Rendered resources (hooks and tests included) as helm would install them."""
    from pyhelm3 import Client

    async def _render() -> list[dict[str, Any]]:
        client = Client(executable=helm)
        loaded = await client.get_chart(chart)
        return list(await client.template_resources(loaded, release, values))

    return asyncio.run(_render())


def run_demo(chart_name: str, values_file: Path | None, helm_bin: str | None) -> Iterator[str]:
    chart = chart_dir(chart_name)
    values_file = values_file or PRESETS_DIR / f"{chart_name}-quickstart.yaml"
    if not values_file.is_file():
        raise UserError(f"{values_file} does not exist", field="--values", hint="pass an existing values file")
    values = _load_values(values_file)
    helm = find_helm(helm_bin)
    version = run_helm(helm, "version", "--short").strip()
    yield f"helm {version}: linting {chart} with {values_file}"
    run_helm(helm, "lint", "--strict", chart, "-f", values_file)
    yield "lint: ok"
    resources = render(chart, values, helm)
    yield f"an install of release 'demo' would create {len(resources)} resources:"
    for res in resources:
        hook = res.get("metadata", {}).get("annotations", {}).get("helm.sh/hook")
        suffix = f"  (hook: {hook})" if hook else ""
        yield f"  {res['kind']:<24} {res['metadata']['name']}{suffix}"
