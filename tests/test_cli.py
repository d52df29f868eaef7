"""The helm-mlops CLI: exit codes, messages, the demo and the docs generator, run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.charts import CHARTS, REPO


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "helm-mlops"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_help_does_not_import_heavy_modules() -> None:
    heavy = ("pyhelm3", "yaml", "jsonschema", "kubernetes", "requests", "pydantic", "semver", "rich")
    code = f"import sys; import generator.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("helm-mlops, version ")
    result = run("--help")
    assert result.returncode == 0 and "demo" in result.stdout and "docs" in result.stdout


def test_demo_lints_and_lists_resources() -> None:
    result = run("demo", "--no-install")
    assert result.returncode == 0, result.stderr
    assert "lint: ok" in result.stdout
    assert "Deployment               demo-mlflow" in result.stdout
    assert "(hook: test)" in result.stdout


def test_unknown_chart_is_a_user_error() -> None:
    result = run("demo", "--chart", "nope")
    assert result.returncode == 2
    assert "--chart: no chart named 'nope'" in result.stderr and "mlflow" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_values_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "v.yaml"
    bad.write_text("backendStore: [unclosed\n")
    result = run("demo", "--no-install", "--values", str(bad))
    assert result.returncode == 2 and "not valid YAML" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_values_rejected_by_the_chart_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "v.yaml"
    bad.write_text("autoscaling:\n  enabled: true\n")
    result = run("demo", "--no-install", "--values", str(bad))
    assert result.returncode == 2 and "autoscaling.enabled=true" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_problems_are_all_listed_with_paths(tmp_path: Path) -> None:
    bad = tmp_path / "v.yaml"
    bad.write_text("replicaCount: two\nbackendStore:\n  type: sqllite\nartifactStor: {}\n")
    result = run("demo", "--no-install", "--values", str(bad))
    assert result.returncode == 2, result.stderr
    for text in (
        "3 invalid value(s)",
        "replicaCount: 'two' is not of type 'integer'",
        "backendStore.type: 'sqllite'",
        "'artifactStor' was unexpected",
    ):
        assert text in result.stderr, result.stderr


def test_debug_shows_the_traceback() -> None:
    result = run("--debug", "demo", "--chart", "nope")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_docs_check_detects_stale_readme_and_undocumented_values(tmp_path: Path) -> None:
    chart = tmp_path / "mlflow"
    shutil.copytree(CHARTS / "mlflow", chart)
    assert run("docs", "--check", str(chart)).returncode == 0
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("Server replicas.", "How many server pods."))
    stale = run("docs", "--check", str(chart))
    assert stale.returncode == 4 and "out of date" in stale.stderr
    assert run("docs", str(chart)).returncode == 0
    assert "How many server pods." in (chart / "README.md").read_text()
    values.write_text(values.read_text() + "undocumentedKey: 1\n")
    missing = run("docs", str(chart))
    assert missing.returncode == 2 and "undocumentedKey" in missing.stderr


def test_missing_kubeconfig_is_a_user_error(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "helm-mlops"
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "nope")}
    result = subprocess.run([str(exe), "demo"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2 and "KUBECONFIG" in result.stderr and "does not exist" in result.stderr
    explicit = run("demo", "--kubeconfig", str(tmp_path / "nope"))
    assert explicit.returncode == 2 and "--kubeconfig" in explicit.stderr
