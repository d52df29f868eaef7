"""helm lint --strict on Helm 4, 3.18 and 3.17 for every chart and ci scenario; ct lint with our
configuration and with chart-testing's upstream defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.charts import HELMS, REPO, TOOLS_BIN, chart_dirs, ci_values, helm

# Charts whose defaults cannot render on purpose, and the message that tells the user what to set.
NEEDS_INPUT = {
    "training-job": "script.content or command is required",
    "inference-service": "model.source.pvc.claimName is required",
}
SCENARIOS = [(chart, values) for chart in chart_dirs() for values in [None, *ci_values(chart)]]


@pytest.mark.parametrize("helm_name", list(HELMS))
def test_pinned_helm_versions(helm_name: str) -> None:
    result = helm(helm_name, "version", "--short")
    assert result.code == 0
    assert result.stdout.startswith(HELMS[helm_name][1]), result.stdout


@pytest.mark.parametrize("helm_name", list(HELMS))
@pytest.mark.parametrize(
    ("chart", "values"), SCENARIOS, ids=[f"{c.name}-{v.stem if v else 'defaults'}" for c, v in SCENARIOS]
)
def test_helm_lint_strict(helm_name: str, chart: Path, values: Path | None) -> None:
    args = ["lint", "--strict", chart] + (["-f", values] if values else [])
    result = helm(helm_name, *args)
    if values is None and chart.name in NEEDS_INPUT:
        # A training job has nothing to run until it is given a script or a command: the defaults
        # must fail, and with the message that says what to set.
        # (helm lint reports a template `fail` as a log line, so the text is what to check.)
        assert NEEDS_INPUT[chart.name] in result.stdout + result.stderr
        return
    assert result.code == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[INFO]" not in result.stdout, result.stdout


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
