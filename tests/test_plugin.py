"""plugin.yaml: `helm plugin install <repo>` then `helm mlops ...` runs the CLI with the calling helm,
on Helm 4 and Helm 3. XDG_DATA_HOME isolates the plugin (Helm 4 ignores HELM_PLUGINS when it installs
from a local directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.charts import HELMS, REPO, helm


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_helm_mlops_runs_as_a_helm_plugin(helm_name: str, tmp_path: Path) -> None:
    env = {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_MLOPS_HELM": "",
    }
    installed = helm(helm_name, "plugin", "install", REPO, env=env)
    assert installed.code == 0, installed.stderr
    assert "mlops" in helm(helm_name, "plugin", "list", env=env).stdout
    out = tmp_path / "stack"
    run = helm(helm_name, "mlops", "demo", "--no-install", "-o", out, env={**env, "PATH": os.environ["PATH"]})
    assert run.code == 0, run.stderr
    # The plugin hands the CLI the helm that called it: the stack is linted with it first.
    first_lint = next(line for line in run.stdout.splitlines() if line.startswith("lint: helm lint"))
    assert f"(helm {HELMS[helm_name][1]}" in first_lint, run.stdout
    bad = helm(helm_name, "mlops", "demo", "--preset", "nope", "-o", out, env=env)
    assert bad.code == 2 and "no preset named" in bad.stderr


def test_plugin_version_is_the_package_version() -> None:
    """The version has one source, the package metadata (pyproject.toml); plugin.yaml must agree."""
    from importlib.metadata import version

    import yaml

    import generator

    plugin = yaml.safe_load((REPO / "plugin.yaml").read_text())
    assert plugin["version"] == version("helm-mlops") == generator.__version__
