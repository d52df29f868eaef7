"""The helm adapter and the Kubernetes layer against the real API server, on Helm 4 and Helm 3: a
release's whole life through pyhelm3 with its faults repaired (atomic, force, disable validation, list),
an atomic install that fails and leaves nothing, and an API server that says 403 to a user without
rights."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from generator.errors import ToolError, UserError
from generator.helm.adapter import Helm
from generator.helm.binary import find_helm
from tests.support.charts import CHARTS, helm_path
from tests.support.cluster import Cluster
from tests.test_helm_adapter import Recorder

pytestmark = pytest.mark.e2e
CHART = CHARTS / "training-job"
SCRIPT = {"script": {"content": "print('trained')\n"}}


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = cluster.restricted_namespace("adapter")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _upgrade_argv(recorder: Recorder) -> list[str]:
    return [argv for argv, _ in recorder.calls if argv[1] == "upgrade"][-1]


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_release_lifecycle_through_the_adapter(cluster: Cluster, namespace: str, helm_name: str) -> None:
    recorder = Recorder()
    helm = Helm(find_helm(helm_path(helm_name)), kubeconfig=cluster.kubeconfig, runner=recorder)
    other = {"--atomic": "--rollback-on-failure", "--rollback-on-failure": "--atomic"}

    first = helm.install_or_upgrade(
        "lc", CHART, SCRIPT, namespace=namespace, atomic=True, disable_validation=True, timeout="120s"
    )
    assert (first.revision, first.status) == (1, "deployed")
    argv = _upgrade_argv(recorder)
    flag = helm.binary.rollback_on_failure_flag
    assert flag in argv and other[flag] not in argv
    assert "--disable-openapi-validation" in argv and "-" not in argv[argv.index("--values") + 2 :]
    # pyhelm3's wait brings --wait-for-jobs; the adapter keeps only --wait unless asked.
    assert "--wait" in argv and "--wait-for-jobs" not in argv

    second = helm.install_or_upgrade(
        "lc", CHART, {**SCRIPT, "podAnnotations": {"round": "2"}}, namespace=namespace, force=True
    )
    assert second.revision == 2
    assert helm.binary.force_flag in _upgrade_argv(recorder)

    assert "lc" in [r["name"] for r in helm.list_releases(namespace=namespace)]
    assert [r.revision for r in helm.history("lc", namespace=namespace)] == [1, 2]
    helm.rollback("lc", 1, namespace=namespace, force=True)
    status = helm.status("lc", namespace=namespace)
    assert status["version"] == 3 and status["info"]["status"] == "deployed"

    # kwok fails pods whose image tag is kwok-fail: the Job fails, --wait-for-jobs (asked for) sees it,
    # and the atomic install removes what it made.
    failing = {**SCRIPT, "image": {"tag": "kwok-fail"}, "job": {"backoffLimit": 0}}
    with pytest.raises(ToolError):
        helm.install_or_upgrade(
            "bad", CHART, failing, namespace=namespace, atomic=True, timeout="90s", wait_for_jobs=True
        )
    assert "--wait-for-jobs" in _upgrade_argv(recorder)
    assert "bad" not in [r["name"] for r in helm.list_releases(namespace=namespace)]

    helm.uninstall("lc", namespace=namespace)
    assert helm.list_releases(namespace=namespace) == []
    with pytest.raises(UserError) as gone:
        helm.status("lc", namespace=namespace)
    assert "release: not found" in str(gone.value)


def test_forbidden_names_the_api_server_and_the_fix(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    config["users"] = [{"name": "nobody", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "nobody"
    limited = tmp_path / "kubeconfig"
    limited.write_text(yaml.safe_dump(config))
    exe = str(Path(sys.executable).parent / "helm-mlops")
    result = subprocess.run(
        [exe, "status", "r", "-n", namespace, "--kubeconfig", str(limited)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"forbidden by {server}" in result.stderr and "fix: use a kubeconfig or context" in result.stderr
    assert "Traceback" not in result.stderr and token not in result.stderr
