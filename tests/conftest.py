from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.charts import SHARED
from tests.support.cluster import Cluster, cluster_binaries_dir, cluster_script

IN_CI = os.environ.get("CI") == "true"


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
