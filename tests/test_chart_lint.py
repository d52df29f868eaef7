"""helm lint --strict on Helm 4, 3.18 and 3.17 for every chart and ci scenario, each also rendered
(lint lets a chart's `fail` through); ct lint with our configuration and with chart-testing's upstream
defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from generator import yamlio
from generator.charts.docs import undocumented_keys, update_readme
from generator.charts.schema import update_schema
from tests.support.charts import CHARTS, HELMS, REPO, TOOLS_BIN, chart_dirs, ci_values, helm

# Charts whose defaults cannot render on purpose, and the message that tells the user what to set.
NEEDS_INPUT = {
    "training-job": "script.content or command is required",
    "inference-service": "model.source.pvc.claimName is required",
}
SCENARIOS = [(chart, values) for chart in chart_dirs() for values in [None, *ci_values(chart)]]


@pytest.mark.parametrize("chart", chart_dirs(), ids=lambda c: c.name)
def test_values_documented_and_readme_and_schema_current(chart: Path) -> None:
    """Every chart: each value has a doc comment, the README's values table and values.schema.json are
    what `make docs` writes from values.yaml (and values.schema.refine.yaml)."""
    assert undocumented_keys(chart / "values.yaml") == []
    update_readme(chart, check=True)  # raises StaleError when the table is stale
    update_schema(chart, check=True)  # likewise for values.schema.json


@pytest.mark.parametrize("chart", chart_dirs(), ids=lambda c: c.name)
def test_schema_covers_every_value_and_accepts_defaults(chart: Path) -> None:
    schema = yaml.safe_load((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)

    def walk(node: dict[str, Any], sch: dict[str, Any], path: str) -> None:
        for key, value in node.items():
            props = sch.get("properties", {})
            assert key in props or sch.get("additionalProperties") not in (False, None), (
                f"{path}{key} not in schema"
            )
            if isinstance(value, dict) and key in props and props[key].get("additionalProperties") is False:
                walk(value, props[key], f"{path}{key}.")

    walk(values, schema, "")
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize("helm_name", list(HELMS))
def test_pinned_helm_versions(helm_name: str) -> None:
    result = helm(helm_name, "version", "--short")
    assert result.code == 0
    assert result.stdout.startswith(HELMS[helm_name][1]), result.stdout


def lint_and_render(helm_name: str, chart: Path, values: Path | None) -> list[str]:
    """What helm finds wrong with a chart and values: `helm lint --strict`, then `helm template`. Lint
    alone is not enough: it logs a template `fail` (every chart's values checks) at INFO level on
    stderr and exits 0, so only the render refuses contradictory values."""
    extra: list[str | Path] = ["-f", values] if values else []
    problems = []
    result = helm(helm_name, "lint", "--strict", chart, *extra)
    if result.code != 0 or "[WARNING]" in result.stdout or "[INFO]" in result.stdout:
        problems.append(f"helm lint --strict: {result.stdout}{result.stderr}")
    result = helm(helm_name, "template", "t", chart, "--namespace", "ml", *extra)
    if result.code != 0:
        problems.append(f"helm template: {result.stderr}")
    return problems


@pytest.mark.parametrize("helm_name", list(HELMS))
@pytest.mark.parametrize(
    ("chart", "values"), SCENARIOS, ids=[f"{c.name}-{v.stem if v else 'defaults'}" for c, v in SCENARIOS]
)
def test_helm_lint_strict(helm_name: str, chart: Path, values: Path | None) -> None:
    if values is None and chart.name in NEEDS_INPUT:
        # A training job has nothing to run until it is given a script or a command: the defaults
        # must fail, and with the message that says what to set.
        # (helm lint reports a template `fail` as a log line, so the text is what to check.)
        result = helm(helm_name, "lint", "--strict", chart)
        assert NEEDS_INPUT[chart.name] in result.stdout + result.stderr
        return
    problems = lint_and_render(helm_name, chart, values)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("helm_name", list(HELMS))
def test_lint_lets_a_chart_fail_through_so_scenarios_are_rendered_too(helm_name: str, tmp_path: Path) -> None:
    """Issue 15, item 15: `helm lint --strict` passes values the chart refuses; the render catches them."""
    values = tmp_path / "contradictory-values.yaml"
    values.write_text(
        yamlio.dump(
            {
                "script": {"content": "print('train')\n"},
                "resources": {"requests": {"cpu": "4"}, "limits": {"cpu": "1"}},
            }
        )
    )
    chart = CHARTS / "training-job"
    lint = helm(helm_name, "lint", "--strict", chart, "-f", values)
    assert lint.code == 0, "helm lint now fails on a chart's `fail`: the render in lint_and_render may go"
    assert "resources.requests.cpu (4) is above resources.limits.cpu (1)" in lint.stderr
    problems = lint_and_render(helm_name, chart, values)
    assert len(problems) == 1 and problems[0].startswith("helm template:"), problems
    assert "resources.requests.cpu (4) is above resources.limits.cpu (1)" in problems[0]


def _ct(*extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{TOOLS_BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["ct", "lint", "--all", "--config", "ct.yaml", *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_ct_lint_with_project_config() -> None:
    result = _ct()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All charts linted successfully" in result.stdout


def test_ct_lint_with_upstream_defaults(shared_ct: Path) -> None:
    result = _ct(
        "--lint-conf",
        str(shared_ct / "lintconf.yaml"),
        "--chart-yaml-schema",
        str(shared_ct / "chart_schema.yaml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All charts linted successfully" in result.stdout
