"""`helm mlops` as users run it: the plugin installed from this checkout into a throwaway helm home,
one per helm (Helm 4 and Helm 3.18), for the lifecycle tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.charts import helm_path
from tests.support.cluster import Cluster


def install_plugin(helm_name: str, home: Path) -> dict[str, str]:
    """`helm plugin install` of this checkout (a copy of its plugin files) into a helm home under `home`,
    its install hook building the plugin's virtualenv from the local wheelhouse; returns the environment
    that runs `helm mlops` with it ("HELM" names the helm binary)."""
    from tests.support.plugin import HelmHome, plugin_source, wheelhouse

    helm_home = HelmHome(home, wheelhouse())
    source = plugin_source(home / "source")
    done = helm_home.helm(helm_name, "plugin", "install", source)
    assert done.returncode == 0, done.stdout + done.stderr
    return {**helm_home.env(), "HELM": helm_path(helm_name), "NO_COLOR": "1"}


def mlops(
    env: dict[str, str], cluster: Cluster, *args: str | Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`helm mlops ARGS` against the test cluster (KUBECONFIG, as a user's shell has it)."""
    return subprocess.run(
        [env["HELM"], "mlops", *map(str, args)],
        env={**env, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
