"""ruff (lint and format) and mypy --strict over the package, the tests and the pods' code; shellcheck
over hack/*.sh and plugin/*.sh (the plugin's scripts are POSIX sh: their #!/bin/sh makes shellcheck
check them as such)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# Python shipped inside the charts (entrypoints, the launcher) is code like any other.
CHART_FILES = ["charts/mlflow/files", "charts/training-job/files", "charts/inference-service/files"]


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "generator", "tests", *CHART_FILES],
        ["ruff", "format", "--check", "generator", "tests", *CHART_FILES],
        ["mypy"],
        [
            "shellcheck",
            "-x",
            "-P",
            "SCRIPTDIR",
            *sorted(str(p.relative_to(REPO)) for d in ("hack", "plugin") for p in (REPO / d).glob("*.sh")),
        ],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "shellcheck"],
)
def test_tool_passes(argv: list[str]) -> None:
    proc = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
