from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.charts import REPO, SHARED
from tests.support.cluster import Cluster, cluster_binaries_dir, cluster_script

IN_CI = os.environ.get("CI") == "true"
# Runtimes started by tests serve with one process unless a test asks for workers
# (tests/test_runtime_workers.py): their limits, counters and logs are per process.
os.environ.setdefault("HM_RUNTIME_WORKERS", "1")


def need_shared(sub: str) -> Path:
    """A folder of ../shared, or a skip that says why. CI always has ../shared, so there a missing
    folder is a failure, never a silent skip."""
    path = SHARED / sub
    if not path.is_dir():
        message = f"{path} is absent: it comes with the project's CI checkout (../shared beside the repo)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    return need_shared("crds")


@pytest.fixture(scope="session")
def shared_ct() -> Path:
    return need_shared("chart-testing")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if not (cluster_binaries_dir() / "stages" / ".complete").is_file():
        message = f"cluster binaries not built in {cluster_binaries_dir()}: run `make cluster-tools`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    cluster_script("up")
    c = Cluster(Path(cluster_script("kubeconfig").strip()))
    crds = need_shared("crds")
    c.kubectl("apply", "--server-side", "-f", str(crds))
    for crd in (
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "httproutes.gateway.networking.k8s.io",
        "pytorchjobs.kubeflow.org",
        "trainjobs.trainer.kubeflow.org",
    ):
        # `kubectl wait` errors out (instead of waiting) while a new CRD has no conditions yet.
        for _ in range(60):
            if (
                c.kubectl(
                    "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s", check=False
                ).returncode
                == 0
            ):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"CRD {crd} never became Established")
    yield c
    if not os.environ.get("HELM_MLOPS_KEEP_CLUSTER"):
        cluster_script("down")


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> Iterator[str]:
    """The test cluster's real node (kubelet + containerd, hack/real-node.sh); yields its start log.
    It needs root and the Debian packages of `make system-deps`: without them the tests skip here and
    fail in CI; any other failure to start fails the tests. `hack/cluster.sh down` (the cluster
    fixture's teardown) removes it."""
    import shutil

    from tests.support import realnode

    missing = [b for b in ("containerd", "runc", "iptables", "debootstrap") if shutil.which(b) is None]
    missing += [] if Path("/usr/lib/cni/bridge").exists() else ["containernetworking-plugins"]
    message = ""
    if os.geteuid() != 0:
        message = "the real node needs root (containerd, mounts, the CNI bridge, iptables)"
    elif missing:
        message = f"the real node needs {', '.join(missing)}: run `make system-deps`"
    if message:
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # With its prerequisites present, a node that does not come up is a failure everywhere.
    yield realnode.start()


def _cached_venv(script: str, *args: str) -> str:
    """The python of a venv a hack/ script prepares under the cache (PyTorch, the MLServer peer):
    created on first use; without it the test cannot run, which fails in CI and skips elsewhere."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / script), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        message = f"hack/{script} {' '.join(args)} failed:\n{proc.stderr[-2000:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def torch_python() -> str:
    return _cached_venv("torch-env.sh")


@pytest.fixture(scope="session")
def mlflow_previous_python() -> str:
    """MLflow's previous minor release (MLFLOW_PREVIOUS_VERSION), for the schema-upgrade test."""
    return _cached_venv("mlflow-prev-env.sh")


@pytest.fixture(scope="session")
def mlserver_python() -> str:
    return _cached_venv("bench-peers.sh", "mlserver")


@pytest.fixture(scope="session")
def kserve_python() -> str:
    return _cached_venv("bench-peers.sh", "kserve")


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """`helm mlops` through the plugin installed from this checkout, one helm home per helm."""
    from tests.support.lifecycle import install_plugin

    return {
        name: install_plugin(name, tmp_path_factory.mktemp(f"plugin-{name}")) for name in ("helm4", "helm3")
    }


@pytest.fixture
def helm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """helm's repositories, registry credentials and caches in a temporary home."""
    from tests.support.charts import helm_home_env

    for var, value in helm_home_env(tmp_path / "helm").items():
        monkeypatch.setenv(var, value)
    return tmp_path / "helm"
