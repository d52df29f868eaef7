"""`helm-mlops demo` with no kubeconfig anywhere: HOME an empty directory, KUBECONFIG unset, no
--kubeconfig. It must start the embedded local cluster (hack/cluster.sh, cluster `helm-mlops`) and
install there. The embedded cluster is isolated from any other on this machine: HELM_MLOPS_CACHE points
at a temp cache whose cluster binaries are links to the built ones, so kwok's work directory, the
cluster's kubeconfig and its processes are the test's own, removed at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.charts import REPO, TOOLS_BIN, helm_path
from tests.support.cluster import cluster_binaries_dir

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "helm-mlops")


def _no_kubeconfig_env(home: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "REAL_NODES", "HELM_MLOPS_CLUSTER")}
    env.pop("XDG_CACHE_HOME", None)
    return {**env, "HOME": str(home), "HELM_MLOPS_CACHE": str(cache)}


@pytest.fixture
def isolated_cache(tmp_path: Path) -> Iterator[Path]:
    built = cluster_binaries_dir()
    if not (built / "stages" / ".complete").is_file():
        message = f"cluster binaries not built in {built}: run `make cluster-tools`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / built.name).symlink_to(built)
    yield cache
    env = {**os.environ, "HELM_MLOPS_CACHE": str(cache), "HELM_MLOPS_CLUSTER": "helm-mlops"}
    env.pop("REAL_NODES", None)
    subprocess.run(
        ["bash", str(REPO / "hack" / "cluster.sh"), "down"], env=env, capture_output=True, check=False
    )


def test_demo_without_a_kubeconfig_installs_into_the_embedded_cluster(
    isolated_cache: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "stack"
    env = _no_kubeconfig_env(home, isolated_cache)
    demo = subprocess.run(
        [EXE, "demo", "-o", str(out)],  # the full-stack preset, as `make demo`
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    kubeconfig = isolated_cache / "kwok" / "kubeconfig-helm-mlops"
    assert f"installing into the embedded local cluster ({kubeconfig})" in demo.stdout, demo.stdout
    assert "release full-stack: revision 1, deployed" in demo.stdout
    assert "(the embedded cluster's pods are simulated by kwok)" in demo.stdout
    assert f"use it with: export KUBECONFIG={kubeconfig}" in demo.stdout
    # Nothing was written to the user's kube config (there is none, and there still is none; kubectl
    # keeps its discovery cache under ~/.kube/cache).
    assert not (home / ".kube" / "config").exists()

    # The release is really there, in the cluster the demo started: its API server answers with kwok's
    # nodes, and helm lists the release as deployed.
    kube_env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    nodes = subprocess.run(
        [str(TOOLS_BIN / "kubectl"), "get", "nodes", "-o", "json"],
        env=kube_env,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]}
    assert {"kwok-cpu-0", "kwok-gpu-0"} <= names, names
    releases = subprocess.run(
        [helm_path("helm4"), "list", "-A", "-o", "json"],
        env=kube_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [(r["name"], r["status"]) for r in json.loads(releases.stdout)] == [("full-stack", "deployed")]


def test_demo_without_a_kubeconfig_or_cluster_binaries_names_the_fix(tmp_path: Path) -> None:
    """The same fallback on a machine where the embedded cluster was never built: one error with the
    fix, exit 3 (a tool failed), and nothing written."""
    home, cache = tmp_path / "home", tmp_path / "empty-cache"
    home.mkdir()
    cache.mkdir()
    out = tmp_path / "stack"
    demo = subprocess.run(
        [EXE, "demo", "--preset", "quickstart", "-o", str(out)],
        env=_no_kubeconfig_env(home, cache),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 3, demo.stdout + demo.stderr
    assert "could not start the embedded cluster (hack/cluster.sh up)" in demo.stderr
    assert "cluster binaries missing: run make cluster-tools" in demo.stderr
    assert "fix: run `make cluster-tools`" in demo.stderr and "Traceback" not in demo.stderr
    assert not out.exists()
