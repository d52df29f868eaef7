"""`helm mlops` as users run it: the plugin installed from this checkout into a throwaway helm home,
one per helm (Helm 4 and Helm 3.18), for the lifecycle tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.charts import REPO, TOOLS_BIN, helm_path
from tests.support.cluster import Cluster


def install_plugin(helm_name: str, home: Path) -> dict[str, str]:
    """Install the plugin from the checkout into `home` (XDG dirs); returns the environment that runs
    `helm mlops` with it."""
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "HELM_PLUGINS": str(home / "data" / "helm" / "plugins"),
        "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}",
        "HELM": helm_path(helm_name),
        "NO_COLOR": "1",
    }
    env.pop("HELM_MLOPS_HELM", None)  # the plugin must hand the CLI the calling helm itself
    proc = subprocess.run(
        [env["HELM"], "plugin", "install", str(REPO)], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env


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
