"""The release lifecycle on the test cluster, on Helm 4 and Helm 3, through `helm mlops` as a user runs
it (the plugin installed from this checkout by `plugin_env`): every preset installed, its status checked
against the live objects, upgraded with a changed value (new revision, pods rolled, generated secrets
unchanged), rolled back and uninstalled (only what the retention policy keeps is left, and
--delete-data removes it). Then a failing upgrade that rolls back and names the failing pod, the
preflight refusing a stack the cluster cannot run, live progress on a terminal, logs -f, restart, and
bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import REPO
from tests.support.cluster import Cluster
from tests.support.lifecycle import mlops
from tests.test_presets import PRESETS, prepare_preset

pytestmark = pytest.mark.e2e
SELECTOR = "app.kubernetes.io/instance={}"
KINDS = (
    "deployment,statefulset,job,cronjob,pod,service,configmap,secret,serviceaccount,networkpolicy,pdb,"
    "ingress,hpa"
)


def _live(cluster: Cluster, namespace: str, release: str) -> dict[str, list[dict[str, Any]]]:
    sel = SELECTOR.format(release)
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in ("deployment", "statefulset", "job", "cronjob", "inferenceservice", "secret", "pvc"):
        out[kind] = cluster.get(kind, "-n", namespace, "-l", sel)["items"]
    return out


def _pod_template_hashes(cluster: Cluster, namespace: str, release: str) -> dict[str, str]:
    out = {}
    for rs in cluster.get("replicaset", "-n", namespace, "-l", SELECTOR.format(release))["items"]:
        if rs["spec"].get("replicas"):
            owner = rs["metadata"]["ownerReferences"][0]["name"]
            out[owner] = rs["metadata"]["labels"]["pod-template-hash"]
    return out


def _secret_data(live: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: s.get("data") or {} for s in live["secret"] if s["type"] == "Opaque"}


def _check_status(data: dict[str, Any], live: dict[str, list[dict[str, Any]]], release: str, ns: str) -> None:
    """`status -o json` against the live objects: every MLflow server, training job and inference
    service, with the MLflow version from the running image."""
    assert data["release"] == release and data["namespace"] == ns and data["status"] == "deployed"
    servers = [
        d
        for d in live["deployment"]
        if d["metadata"]["labels"].get("helm.sh/chart", "").startswith("mlflow-")
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]
    assert sorted(m["name"] for m in data["mlflow"]) == sorted(d["metadata"]["name"] for d in servers)
    for m, dep in zip(
        sorted(data["mlflow"], key=lambda m: m["name"]),
        sorted(servers, key=lambda d: d["metadata"]["name"]),
        strict=True,
    ):
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        assert m["image"] == image and image.split(":")[1].startswith(f"v{m['version']}")
        assert m["ready"] == f"{dep['status'].get('readyReplicas', 0)}/{dep['spec']['replicas']}"
        assert m["in_cluster_url"] == f"http://{m['service']}.{ns}.svc.cluster.local:5000"
        assert m["backend_store"] and m["artifact_store"] and m["tracking_url"]
    services = [d for d in live["deployment"] if "helm-mlops.io/inference-service" in d["metadata"]["labels"]]
    services += live["inferenceservice"]
    assert sorted(s["name"] for s in data["services"]) == sorted(s["metadata"]["name"] for s in services)
    for s in data["services"]:
        assert s["phase"] in ("Running", "Pending", "Failed")
        if s["runtime"] != "kserve":
            assert s["endpoint"] == f"http://{s['name']}.{ns}.svc.cluster.local:80"
    jobs = [
        j for j in live["job"] + live["cronjob"] if "helm-mlops.io/training-job" in j["metadata"]["labels"]
    ]
    training = {t["name"] for t in data["training"]}
    assert {j["metadata"]["name"] for j in jobs} <= training


def _left(cluster: Cluster, namespace: str, release: str) -> list[str]:
    sel = SELECTOR.format(release)
    items = cluster.get(KINDS + ",pvc", "-n", namespace, "-l", sel)["items"]
    items += cluster.get("secret", "-n", namespace, "-l", f"app.kubernetes.io/part-of={release}")["items"]
    return sorted(
        f"{i['kind']}/{i['metadata']['name']}" for i in items if not i["metadata"].get("deletionTimestamp")
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_through_its_whole_life(
    preset: str, cluster: Cluster, plugin_env: dict[str, dict[str, str]]
) -> None:
    helm_name = "helm3" if PRESETS.index(preset) % 2 else "helm4"
    env = plugin_env[helm_name]
    ns = cluster.restricted_namespace(f"lc-{preset[:14].rstrip('-')}")
    release = f"r-{preset[:20]}".rstrip("-")
    try:
        prepare_preset(cluster, preset, ns)
        done = mlops(env, cluster, "install", release, "--preset", preset, "-n", ns, "--timeout", "3m")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"release {release}: revision 1, deployed" in done.stdout
        assert "preflight: the cluster" in done.stdout

        shown = mlops(env, cluster, "status", release, "-n", ns, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        before = _live(cluster, ns, release)
        _check_status(json.loads(shown.stdout), before, release, ns)
        text = mlops(env, cluster, "status", release, "-n", ns)
        assert text.returncode == 0 and f"release {release} in namespace {ns}: revision 1" in text.stdout

        # An upgrade with a changed value: a new revision, the changed pods rolled, generated secrets kept.
        answers = yaml.safe_load((REPO / "values-presets" / f"{preset}.yaml").read_text())
        if (answers.get("mlflow") or {}).get("enabled", True):
            change, rolled = "mlflow.memory=3Gi", f"{release}-mlflow"
        else:
            svc = answers["inference"]["services"][0]
            change, rolled = "inference.services[0].memory=3Gi", f"{release}-{svc['name']}"
        hashes = _pod_template_hashes(cluster, ns, release)
        up = mlops(
            env, cluster, "upgrade", release, "--preset", preset, "--set", change, "-n", ns, "--timeout", "3m"
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"release {release}: revision 2, deployed" in up.stdout
        after = _live(cluster, ns, release)
        if rolled in hashes:  # a Deployment (a KServe predictor is the operator's)
            assert _pod_template_hashes(cluster, ns, release)[rolled] != hashes[rolled]
            dep = next(d for d in after["deployment"] if d["metadata"]["name"] == rolled)
            limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert limits["memory"] == "3Gi"
        assert _secret_data(after) == _secret_data(before)

        back = mlops(env, cluster, "rollback", release, "-n", ns)
        assert back.returncode == 0, back.stderr
        assert "rolled back to revision 1; now revision 3, deployed" in back.stdout
        if rolled in hashes:
            assert _pod_template_hashes(cluster, ns, release)[rolled] == hashes[rolled]
        history = mlops(env, cluster, "history", release, "-n", ns, "-o", "json")
        assert [r["status"] for r in json.loads(history.stdout)] == ["superseded", "superseded", "deployed"]

        gone = mlops(env, cluster, "uninstall", release, "-n", ns)
        assert gone.returncode == 0, gone.stderr
        kept = [f"PersistentVolumeClaim/{p['metadata']['name']}" for p in before["pvc"]]
        kept += [
            f"Secret/{s['metadata']['name']}"
            for s in before["secret"]
            if (s["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"
        ]
        for item in kept:
            assert item.replace("/", " ") in gone.stdout
        deadline = time.monotonic() + 60
        while (left := _left(cluster, ns, release)) and time.monotonic() < deadline:
            if all(x.startswith(("PersistentVolumeClaim/", "Secret/")) for x in left):
                break
            time.sleep(1)
        assert sorted(left) == sorted(kept), left
        assert mlops(env, cluster, "list", "-n", ns, "-o", "json").stdout.strip() == "[]"
        if kept:
            purge = mlops(env, cluster, "uninstall", release, "-n", ns, "--delete-data", "--yes")
            assert purge.returncode == 0, purge.stderr
            deadline = time.monotonic() + 60
            while _left(cluster, ns, release) and time.monotonic() < deadline:
                time.sleep(1)
            assert _left(cluster, ns, release) == []
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_a_failing_upgrade_rolls_back_and_names_the_pod(
    helm_name: str, cluster: Cluster, plugin_env: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    env = plugin_env[helm_name]
    ns = cluster.restricted_namespace(f"lc-fail-{helm_name}")
    stack = tmp_path / "stack"
    try:
        # MLflow on an external PostgreSQL: its schema migration is a pre-upgrade hook Job.
        cluster.kubectl("create", "secret", "generic", "mlflow-db", "-n", ns, "--from-literal=password=pw")
        external = ["--set-string", "mlflow.backendStore.type=postgresql", "--set-string",
                    "mlflow.backendStore.host=db.example.com", "--set-string",
                    "mlflow.backendStore.existingSecret=mlflow-db"]  # fmt: skip
        gen = mlops(env, cluster, "generate", "--preset", "quickstart", *external, "-o", stack, "-q")
        assert gen.returncode == 0, gen.stderr
        first = mlops(env, cluster, "install", "bad", stack, "-n", ns)
        assert first.returncode == 0, first.stdout + first.stderr
        # The MLflow image becomes one the test cluster fails (kwok's `kwok-fail` tag): the pre-upgrade
        # migration hook fails before anything of the release changes.
        values = yaml.safe_load((stack / "values.yaml").read_text())
        values["mlflow"]["image"] = {"tag": "kwok-fail", "driversIncluded": True}
        (stack / "values.yaml").write_text(yaml.safe_dump(values))
        failed = mlops(env, cluster, "upgrade", "bad", stack, "-n", ns, "--timeout", "30s")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        err = failed.stderr
        assert "upgrade of bad failed; helm rolled back to the previous revision" in err
        assert "pre-upgrade hooks failed" in err
        assert "what failed:" in err and "Traceback" not in err
        hook = next(
            line
            for line in err.splitlines()
            if line.strip().startswith("pod ") and "-mlflow-migrate-" in line
        )
        assert "exited 1 (Error)" in hook, err
        assert "last 5 log lines:" in err  # the failing pod's log, read before helm deleted it
        history = json.loads(mlops(env, cluster, "history", "bad", "-n", ns, "-o", "json").stdout)
        assert [r["status"] for r in history] == ["superseded", "failed", "deployed"]
        assert history[-1]["description"] == "Rollback to 1"
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.fixture
def without_trainjobs(cluster: Cluster) -> Iterator[None]:
    """The test cluster serves every CRD of ../shared/crds; this takes TrainJob away for one test."""
    crd = "trainjobs.trainer.kubeflow.org"
    cluster.kubectl("delete", "crd", crd, "--wait=true")
    try:
        yield
    finally:
        cluster.kubectl(
            "apply",
            "--server-side",
            "-f",
            str(REPO.parent / "shared" / "crds" / "trainer.kubeflow.org_trainjobs.yaml"),
        )
        for _ in range(120):  # `kubectl wait` fails while the new CRD has no conditions yet
            done = cluster.kubectl(
                "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s", check=False
            )
            if done.returncode == 0:
                break
            time.sleep(0.5)


def test_preflight_names_every_missing_piece_and_installs_nothing(
    cluster: Cluster, plugin_env: dict[str, dict[str, str]], without_trainjobs: None
) -> None:
    env = plugin_env["helm4"]
    ns = f"lc-pre-{os.getpid()}"
    result = mlops(
        env, cluster, "install", "pre", "--preset", "gpu-training", "-n", ns,
        "--set", "training.jobs[0].gpus=8", "--set-string", "training.jobs[0].operator=trainjob",
        "--set", "training.jobs[0].nodes=2",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert "preflight: the cluster is not ready for this stack (2 problems" in err
    assert "the cluster does not serve TrainJob (trainer.kubeflow.org/v1alpha1)" in err
    assert "fix: install Kubeflow Trainer 2 (TrainJob) first" in err
    assert "8 nvidia.com/gpu requested per pod, but the most one node has is 4 (kwok-gpu-0)" in err
    assert "--skip-preflight" in err and "Traceback" not in err
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0  # nothing created
    assert "pre" not in mlops(env, cluster, "list", "-A").stdout
    # The production preset reads Secrets the platform team makes first; a model comes from a claim.
    missing = mlops(env, cluster, "install", "prod", "--preset", "production", "-n", ns)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    for secret in ("mlflow-db", "mlflow-s3", "mlflow-admin"):
        assert f"the Secret {secret} that the stack reads does not exist in namespace {ns}" in missing.stderr
    claim = mlops(env, cluster, "install", "onnx", "--preset", "inference-onnx", "-n", ns)
    assert claim.returncode == 2
    assert f"the PersistentVolumeClaim models that the stack mounts does not exist in namespace {ns}" in (
        claim.stderr
    )


def test_live_progress_on_a_terminal(cluster: Cluster, plugin_env: dict[str, dict[str, str]]) -> None:
    """On a TTY, install shows what it waits for and why (the scheduler's FailedScheduling); when helm
    gives up, the pod and its event are in the error."""
    import pexpect

    env = plugin_env["helm4"]
    ns = cluster.restricted_namespace("lc-tty")
    try:
        argv = [
            "install",
            "big",
            "--preset",
            "quickstart",
            "-n",
            ns,
            "--set-string",
            "mlflow.cpu=64",
            "--timeout",
            "20s",
        ]
        child = pexpect.spawn(
            env["HELM"],
            ["mlops", *argv],
            env={**env, "KUBECONFIG": str(cluster.kubeconfig)},
            encoding="utf-8",
            timeout=120,
            dimensions=(40, 200),
        )
        child.expect("not ready yet:")
        child.expect("FailedScheduling")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
        output = child.before or ""
        assert "install of big failed; helm removed the release again" in output
        assert "Insufficient cpu" in output
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.fixture(scope="module")
def full_stack(cluster: Cluster, plugin_env: dict[str, dict[str, str]]) -> Iterator[tuple[str, str]]:
    """The full-stack preset (MLflow, a training job, an inference service) installed once."""
    ns = cluster.restricted_namespace("lc-full")
    done = mlops(plugin_env["helm4"], cluster, "install", "fs", "--preset", "full-stack", "-n", ns)
    assert done.returncode == 0, done.stdout + done.stderr
    yield "fs", ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def _follow(
    env: dict[str, str], cluster: Cluster, *args: str, lines: int, seconds: float = 60
) -> tuple[list[str], int]:
    """Run `helm mlops logs -f ...`, read `lines` lines, then stop it with Ctrl-C (SIGINT)."""
    proc = subprocess.Popen(
        [env["HELM"], "mlops", *args],
        env={**env, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while len(got) < lines and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        got.append(line.rstrip("\n"))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()
    return got, proc.returncode


def test_logs_follow_a_training_job_and_an_inference_service(
    cluster: Cluster, plugin_env: dict[str, dict[str, str]], full_stack: tuple[str, str]
) -> None:
    env, (release, ns) = plugin_env["helm4"], full_stack
    job = cluster.get("job", "-n", ns, "-l", "helm-mlops.io/training-job")["items"][0]["metadata"]["name"]
    # A training job: -f ends by itself once the job has finished (kwok's canned log, kwok's exit 0).
    done = mlops(env, cluster, "logs", release, "train-iris", "-f", "-n", ns, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() and all(
        line.startswith(f"[{job}-") and " rank 0] " in line for line in done.stdout.splitlines()
    )
    # An inference service: a server's log never ends; -f follows until Ctrl-C.
    pods = cluster.get("pod", "-n", ns, "-l", "app.kubernetes.io/name=iris")["items"]
    names = {p["metadata"]["name"] for p in pods}
    got, code = _follow(env, cluster, "logs", release, "iris", "-f", "-n", ns, lines=3)
    assert len(got) == 3 and all(line.split("]")[0].lstrip("[") in names for line in got), got
    assert code != 0  # stopped by Ctrl-C, cleanly (no traceback)


def test_restart_rolls_the_pods_and_test_runs_the_hooks(
    cluster: Cluster, plugin_env: dict[str, dict[str, str]], full_stack: tuple[str, str]
) -> None:
    env, (release, ns) = plugin_env["helm3"], full_stack
    before = _pod_template_hashes(cluster, ns, release)
    done = mlops(env, cluster, "restart", release, "iris", "-n", ns)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deployment {release}-iris restarted"
    dep = cluster.get("deployment", f"{release}-iris", "-n", ns)
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    deadline = time.monotonic() + 60
    while _pod_template_hashes(cluster, ns, release).get(f"{release}-iris") == before[f"{release}-iris"]:
        assert time.monotonic() < deadline, "the pods never rolled"
        time.sleep(1)
    assert _pod_template_hashes(cluster, ns, release)[f"{release}-mlflow"] == before[f"{release}-mlflow"]
    everything = mlops(env, cluster, "restart", release, "-n", ns)
    assert everything.returncode == 0 and f"deployment {release}-mlflow restarted" in everything.stdout

    # `helm mlops test` runs every subchart's test hook: each pod admitted and (kwok) completed.
    tested = mlops(env, cluster, "test", release, "-n", ns)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Phase:          Succeeded" in tested.stdout and "Failed" not in tested.stdout


def test_bad_input_is_one_line_with_the_fix(
    cluster: Cluster, plugin_env: dict[str, dict[str, str]], full_stack: tuple[str, str], tmp_path: Path
) -> None:
    env, (release, ns) = plugin_env["helm4"], full_stack

    def fails(code: int, *args: str | Path, extra: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [env["HELM"], "mlops", *map(str, args)],
            env={**env, "KUBECONFIG": str(cluster.kubeconfig), **(extra or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == code, result.stdout + result.stderr  # helm passes the plugin's code on
        assert "Traceback" not in result.stderr
        lines = [x for x in result.stderr.splitlines() if not x.startswith('Error: plugin "mlops"')]
        assert lines[0].startswith("error: ") and any("fix:" in x for x in lines), result.stderr
        return result.stderr

    assert "no release nope in namespace" in fails(2, "status", "nope", "-n", ns)
    assert f"no release {release} in namespace default" in fails(2, "status", release, "-n", "default")
    assert "--namespace" not in fails(2, "rollback", "nope", "-n", ns)
    assert "already exists" in fails(2, "install", release, "--preset", "quickstart", "-n", ns)
    (tmp_path / "plain").mkdir()
    assert "is not a stack generated by helm-mlops" in fails(2, "install", "x", tmp_path / "plain", "-n", ns)
    assert "give exactly one of" in fails(
        2, "install", "x", tmp_path / "plain", "--preset", "quickstart", "-n", ns
    )
    assert "has no component 'nope'" in fails(2, "restart", release, "nope", "-n", ns)
    listed = fails(2, "logs", release, "nope", "-n", ns)
    assert "release fs has no training job or component 'nope'" in listed and "fs-iris" in listed
    assert "nothing of release nope" in fails(2, "logs", "nope", "mlflow", "-n", ns)
    assert "'Bad_Name' is not a valid release name" in fails(2, "status", "Bad_Name", "-n", ns)
    assert "'-x' is not a valid release name" in fails(2, "rollback", "-n", ns, "--", "-x")
    assert "'Bad_NS' is not a valid namespace name" in fails(2, "status", release, "-n", "Bad_NS")


def test_exit_codes_of_the_cli_itself(cluster: Cluster, full_stack: tuple[str, str], tmp_path: Path) -> None:
    """helm missing or too old, and an unreachable cluster, with the CLI run directly (as helm runs
    it: the plugin's helm is the one that calls it, so these are reached through --helm/KUBECONFIG)."""
    import sys

    exe = Path(sys.executable).parent / "helm-mlops"
    release, ns = full_stack

    def run(*args: str | Path, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), **(extra or {})}
        return subprocess.run(
            [str(exe), *map(str, args)], env=env, capture_output=True, text=True, check=False
        )

    assert run("status", "nope", "-n", ns).returncode == 2
    old = tmp_path / "helm"
    old.write_text("#!/bin/sh\necho v3.16.4\n")
    old.chmod(0o755)
    result = run("status", release, "-n", ns, "--helm", str(old))
    assert result.returncode == 2 and "helm-mlops needs Helm 3.17 or newer" in result.stderr
    result = run("status", release, "-n", ns, "--helm", str(tmp_path / "missing"))
    assert result.returncode == 2 and "helm not found" in result.stderr
    dead = tmp_path / "kubeconfig"
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead.write_text(yaml.safe_dump(config))
    result = run("status", release, "-n", ns, extra={"KUBECONFIG": str(dead)})
    assert result.returncode == 3 and "https://127.0.0.1:1 is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_upgrade_moves_the_mlflow_version_from_the_releases(
    cluster: Cluster, plugin_env: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """`upgrade --version mlflow=X` checks X against MLflow's GitHub releases (the API faked locally) and
    rolls the server onto X's image; a version that is no release is refused before anything changes."""
    from tests.support.github import fake_github, release

    releases = {"mlflow/mlflow": [release("v3.17.2", 20), release("v3.16.1", 10), release("v3.16.0", 5)]}
    ns = cluster.restricted_namespace("lc-ver")
    try:
        with fake_github(releases) as api:
            env = {**plugin_env["helm4"], "GITHUB_API_URL": api.url, "HELM_MLOPS_CACHE_DIR": str(tmp_path)}
            env.pop("GITHUB_TOKEN", None)
            done = mlops(env, cluster, "install", "ver", "--preset", "quickstart", "-n", ns)
            assert done.returncode == 0, done.stderr

            def upgrade(version: str) -> subprocess.CompletedProcess[str]:
                argv = [
                    "upgrade",
                    "ver",
                    "--preset",
                    "quickstart",
                    "--version",
                    f"mlflow={version}",
                    "-n",
                    ns,
                ]
                return mlops(env, cluster, *argv)

            bad = upgrade("3.16.7")
            assert bad.returncode == 2 and "mlflow 3.16.7 is not a release of mlflow" in bad.stderr, (
                bad.stderr
            )
            assert "pick one of: 3.17.2, 3.16.1, 3.16.0" in bad.stderr
            old = upgrade("3.8.0")
            assert old.returncode == 2 and "older than the oldest version the chart supports" in old.stderr
            assert len(api.seen()) >= 1
            up = upgrade("3.16.1")
            assert up.returncode == 0, up.stderr
            assert "MLflow 3.16.1 (ghcr.io/mlflow/mlflow:v3.16.1-full)" in up.stdout
            assert "release ver: revision 2, deployed" in up.stdout
            status = json.loads(mlops(env, cluster, "status", "ver", "-n", ns, "-o", "json").stdout)
            assert [m["version"] for m in status["mlflow"]] == ["3.16.1"]
            image = cluster.get("deployment", "ver-mlflow", "-n", ns)["spec"]["template"]["spec"][
                "containers"
            ][0]
            assert image["image"] == "ghcr.io/mlflow/mlflow:v3.16.1-full"
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_an_install_rolls_it_back_through_helm(how: str, cluster: Cluster) -> None:
    """Ctrl-C on a terminal, or SIGTERM to helm-mlops alone (a CI cancel): helm is asked to stop as on
    a terminal, rolls the install back, and the message says so; exit 130, no traceback."""
    import sys

    import pexpect

    ns = cluster.restricted_namespace(f"lc-{how}")
    exe = str(Path(sys.executable).parent / "helm-mlops")
    argv = [
        "install",
        "intr",
        "--preset",
        "quickstart",
        "-n",
        ns,
        "--set-string",
        "mlflow.cpu=64",
        "--timeout",
        "3m",
    ]
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "NO_COLOR": "1"}
    try:
        child = pexpect.spawn(exe, argv, env=env, encoding="utf-8", timeout=120, dimensions=(40, 200))
        child.expect("FailedScheduling")
        if how == "ctrl-c":
            child.sendintr()
        else:
            os.kill(child.pid, signal.SIGTERM)
        child.expect(pexpect.EOF)
        child.close()
        output = child.before or ""
        assert child.exitstatus == 130, output
        name = "SIGINT" if how == "ctrl-c" else "SIGTERM"
        assert f"interrupted ({name}): helm upgrade was stopped" in output, output
        assert "install of intr: helm removed the release: nothing is installed" in output
        assert "Traceback" not in output
        history = cluster.helm("helm4", "history", "intr", "-n", ns, check=False)
        assert history.returncode != 0 and "not found" in history.stderr
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_no_wait_returns_at_once(cluster: Cluster, plugin_env: dict[str, dict[str, str]]) -> None:
    env = plugin_env["helm3"]
    ns = cluster.restricted_namespace("lc-nowait")
    try:
        started = time.monotonic()
        argv = [
            "install",
            "nw",
            "--preset",
            "quickstart",
            "-n",
            ns,
            "--set-string",
            "mlflow.cpu=64",
            "--no-wait",
        ]
        done = mlops(env, cluster, *argv)
        assert done.returncode == 0, done.stderr
        assert "release nw: revision 1, deployed" in done.stdout
        assert time.monotonic() - started < 60  # not helm's 10 minutes for a pod that cannot schedule
        shown = json.loads(mlops(env, cluster, "status", "nw", "-n", ns, "-o", "json").stdout)
        assert shown["mlflow"][0]["ready"] == "0/1"
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
