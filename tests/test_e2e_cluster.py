"""End to end on a real API server (kube-apiserver, controller-manager, scheduler, etcd built from
upstream; kwok fakes the nodes): install with hooks and --wait, helm test's hooks, upgrade, a failing
upgrade that rolls back, rollback, uninstall and ct install, on Helm 4 and Helm 3, in namespaces
where the PodSecurity admission enforces "restricted".

kwok runs no container: it marks every admitted run-to-completion pod Succeeded with exit code 0 (a
"kwok-fail" image tag makes it fail, hack/kwok/stages.yaml). So these tests prove admission, hook
ordering and deletion policies, --wait-for-jobs, rollback and cleanup; that a hook's or a test pod's
command really succeeds is proven on the real node (tests/test_e2e_realnode.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.charts import CHARTS, REPO, TOOLS_BIN, ci_values, helm_path
from tests.support.cluster import Cluster

pytestmark = pytest.mark.e2e
HELMS = ["helm4", "helm3"]
MLFLOW = CHARTS / "mlflow"
# Secrets the ci scenarios name as existingSecret: a user creates them before installing.
EXISTING_SECRETS = {
    "mlflow-db": {"password": "db-pass"},
    "mlflow-mysql": {"mysql-password": "db-pass"},
    "mlflow-azure": {"connection-string": "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eA==;"},
    "mlflow-admin": {"username": "admin", "password": "admin-pass"},
    "mlflow-oidc": {
        "client-id": "mlflow",
        "client-secret": "s",
        "cookie-secret": "0123456789abcdef0123456789abcdef",
    },
}


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = cluster.restricted_namespace("e2e")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _install_args(release: str, ns: str, *extra: str | Path) -> list[str | Path]:
    return [
        "upgrade",
        "--install",
        release,
        MLFLOW,
        "-n",
        ns,
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "180s",
        *extra,
    ]


def _secret(cluster: Cluster, ns: str, name: str) -> dict[str, str]:
    data = cluster.get("secret", name, "-n", ns)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _migration_jobs(cluster: Cluster, ns: str, release: str) -> list[str]:
    jobs = cluster.get(
        "jobs", "-n", ns, "-l", f"app.kubernetes.io/instance={release},app.kubernetes.io/component=migration"
    )["items"]
    return sorted(j["metadata"]["name"] for j in jobs)


def _server_pods(cluster: Cluster, ns: str, release: str) -> set[str]:
    pods = cluster.get(
        "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release},app.kubernetes.io/component=server"
    )
    return {p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")}


def test_admission_enforces_restricted(cluster: Cluster, namespace: str) -> None:
    bad = """
apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  containers: [{name: c, image: busybox, securityContext: {privileged: true}}]
"""
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert proc.returncode != 0 and 'violates PodSecurity "restricted' in proc.stderr


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize("values", ci_values(MLFLOW), ids=[v.stem for v in ci_values(MLFLOW)])
def test_each_scenario_installs_with_its_hooks_and_helm_test_runs_its_test_pod(
    cluster: Cluster, namespace: str, helm_name: str, values: Path
) -> None:
    """Every ci scenario installs under "restricted" with its hook Jobs (--wait-for-jobs), their
    hook-scoped objects are deleted after them, and `helm test` creates the chart's test pod (admitted;
    kwok completes it, so its check itself runs on the real node only)."""
    for name, data in EXISTING_SECRETS.items():
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            name,
            "-n",
            namespace,
            *[f"--from-literal={k}={v}" for k, v in data.items()],
        )
    cluster.helm(helm_name, *_install_args("mlf", namespace, "-f", values))
    status = cluster.helm(helm_name, "status", "mlf", "-n", namespace).stdout
    assert "STATUS: deployed" in status
    dep = cluster.get("deployment", "mlf-mlflow", "-n", namespace)
    assert dep["status"].get("readyReplicas", 0) >= 1
    test = cluster.helm(helm_name, "test", "mlf", "-n", namespace)
    assert re.search(r"TEST SUITE:\s+mlf-mlflow-test-api\n", test.stdout), test.stdout
    # Hook-scoped objects are gone once their hook succeeded.
    secrets = {s["metadata"]["name"] for s in cluster.get("secrets", "-n", namespace)["items"]}
    assert "mlf-mlflow-migration" not in secrets


@pytest.mark.parametrize("helm_name", HELMS)
def test_upgrade_rolls_pods_and_keeps_generated_secrets(
    cluster: Cluster, namespace: str, helm_name: str
) -> None:
    values = MLFLOW / "ci" / "incluster-postgresql-minio-values.yaml"
    cluster.helm(helm_name, *_install_args("up", namespace, "-f", values, "--set", "auth.basic.enabled=true"))
    before = _secret(cluster, namespace, "up-mlflow")
    pods_before = _server_pods(cluster, namespace, "up")
    assert {"db-password", "minio-access-key", "minio-secret-key", "admin-password"} <= set(before)
    migrations = _migration_jobs(cluster, namespace, "up")
    assert len(migrations) == 1 and migrations[0].startswith("up-mlflow-migrate-"), migrations

    cluster.helm(
        helm_name,
        *_install_args(
            "up",
            namespace,
            "-f",
            values,
            "--set",
            "auth.basic.enabled=true",
            "--set",
            "auth.basic.defaultPermission=EDIT",
        ),
    )
    history = json.loads(cluster.helm(helm_name, "history", "up", "-n", namespace, "-o", "json").stdout)
    assert [(r["revision"], r["status"]) for r in history] == [(1, "superseded"), (2, "deployed")]
    assert _secret(cluster, namespace, "up-mlflow") == before  # lookup kept every generated value
    pods_after = _server_pods(cluster, namespace, "up")
    assert pods_after and pods_after.isdisjoint(pods_before), "a config change must roll the server pods"
    # The migration Job's spec did not change: the finished Job is left alone, not rerun.
    assert _migration_jobs(cluster, namespace, "up") == migrations


@pytest.mark.parametrize("helm_name", HELMS)
def test_failing_upgrade_rolls_back(cluster: Cluster, namespace: str, helm_name: str) -> None:
    values = MLFLOW / "ci" / "external-postgresql-s3-values.yaml"
    cluster.helm(helm_name, *_install_args("rb", namespace, "-f", values))
    image_before = cluster.get("deployment", "rb-mlflow", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    rollback_flag = "--rollback-on-failure" if helm_name == "helm4" else "--atomic"
    # The pre-upgrade migration hook runs the new image; kwok fails pods whose tag is "kwok-fail".
    failed = cluster.helm(
        helm_name,
        "upgrade",
        "rb",
        MLFLOW,
        "-n",
        namespace,
        "-f",
        values,
        "--wait",
        "--timeout",
        "120s",
        rollback_flag,
        "--set",
        "image.tag=kwok-fail",
        "--set",
        "image.driversIncluded=true",
        "--set",
        "migration.backoffLimit=0",
        check=False,
    )
    assert failed.returncode != 0
    assert "pre-upgrade" in failed.stderr.lower() or "hook" in failed.stderr.lower(), failed.stderr
    status = cluster.helm(helm_name, "status", "rb", "-n", namespace).stdout
    assert "STATUS: deployed" in status and "REVISION: 3" in status
    image_after = cluster.get("deployment", "rb-mlflow", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image_after == image_before


@pytest.mark.parametrize("helm_name", HELMS)
def test_rollback_then_uninstall_leaves_nothing(cluster: Cluster, namespace: str, helm_name: str) -> None:
    cluster.helm(helm_name, *_install_args("life", namespace, "--set", "persistence.retainOnUninstall=false"))
    cluster.helm(
        helm_name,
        *_install_args(
            "life", namespace, "--set", "persistence.retainOnUninstall=false", "--set", "server.workers=4"
        ),
    )
    args = cluster.get("deployment", "life-mlflow", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--workers=4" in args
    cluster.helm(helm_name, "rollback", "life", "1", "-n", namespace, "--wait")
    args = cluster.get("deployment", "life-mlflow", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--workers=2" in args
    assert "REVISION: 3" in cluster.helm(helm_name, "status", "life", "-n", namespace).stdout

    cluster.helm(helm_name, "uninstall", "life", "-n", namespace, "--wait")
    left = cluster.kubectl(
        "get",
        "all,pvc,secret,configmap,serviceaccount,ingress,networkpolicy",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/instance=life",
        "-o",
        "name",
    ).stdout.split()
    assert left == []


@pytest.mark.parametrize("helm_name", HELMS)
def test_uninstall_keeps_data_volume_by_default(cluster: Cluster, namespace: str, helm_name: str) -> None:
    cluster.helm(helm_name, *_install_args("keep", namespace))
    cluster.helm(helm_name, "uninstall", "keep", "-n", namespace, "--wait")
    left = cluster.kubectl(
        "get", "all,pvc", "-n", namespace, "-l", "app.kubernetes.io/instance=keep", "-o", "name"
    ).stdout.split()
    assert left == ["persistentvolumeclaim/keep-mlflow-data"]


@pytest.mark.parametrize("helm_name", HELMS)
def test_ct_install(cluster: Cluster, helm_name: str) -> None:
    """chart-testing installs every chart with every ci scenario and runs `helm test` on each (the
    test pods admitted and completed by kwok: one "Phase: Succeeded" per MLflow scenario at least)."""
    with tempfile.TemporaryDirectory() as tmp:
        # ct runs `helm` from PATH: put the helm under test there.
        Path(tmp, "helm").symlink_to(helm_path(helm_name))
        path = os.pathsep.join([tmp, str(TOOLS_BIN), str(Path(sys.executable).parent), os.environ["PATH"]])
        proc = subprocess.run(
            ["ct", "install", "--all", "--config", "ct.yaml"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            env={**cluster.env, "PATH": path},
        )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "All charts installed successfully" in proc.stdout
    assert proc.stdout.count("Phase:          Succeeded") >= len(ci_values(MLFLOW))


def test_demo_installs_and_reports_status(cluster: Cluster, tmp_path: Path) -> None:
    """The main job against a cluster given by --kubeconfig: the full-stack preset generated, linted and
    installed into a new namespace enforcing restricted, each component's state and address printed; a
    second run upgrades the same release."""
    namespace = f"demo-{os.getpid()}"
    exe = Path(sys.executable).parent / "helm-mlops"
    out = tmp_path / "stack"
    argv = [str(exe), "demo", "-o", str(out), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    first = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "release full-stack: revision 1, deployed" in first.stdout
    lines = first.stdout.splitlines()
    assert any(
        line.split()[:2] == ["pod", "full-stack-mlflow-minio-0"] and "Running" in line for line in lines
    )
    assert any(line.split()[:3] == ["service", "full-stack-iris", "Running"] for line in lines), first.stdout
    assert any(line.split()[:1] == ["training"] and "full-stack-train-iris" in line for line in lines)
    assert f"kubectl -n {namespace} port-forward svc/full-stack-mlflow 5000:5000" in first.stdout
    assert f"kubectl -n {namespace} port-forward svc/full-stack-iris 8080:80" in first.stdout
    labels = cluster.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    second = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert "release full-stack: revision 2, deployed" in second.stdout, second.stderr
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
