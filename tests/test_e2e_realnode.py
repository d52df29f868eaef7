"""Our charts' pods really running: on the test cluster's real node (kubelet, containerd, runc, the CNI
bridge, kube-proxy, CoreDNS, the local-path provisioner; hack/real-node.sh) with locally built images
(hack/build-images.sh), on Helm 4 and Helm 3.

What kwok cannot show and these tests do: kubelet probes sent to the pod IP, a read-only root
filesystem and a non-root UID inside a real container, init containers that really install into an
emptyDir, Service DNS and ClusterIPs between pods, a PersistentVolume that outlives the pod, SIGTERM
from the kubelet during a rolling update, and `kubectl logs` / `port-forward` served by a kubelet.
Pods never reach beyond this machine: wheels, model files and the S3 emulator (moto, which accepts any
signature) are served by the tests on the pod network's gateway address."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import realnode
from tests.support.charts import CHARTS, REPO, TOOLS_BIN
from tests.support.cluster import Cluster

pytestmark = pytest.mark.e2e
HELMS = ["helm4", "helm3"]
MLFLOW = CHARTS / "mlflow"
TRAINING = CHARTS / "training-job"
INFERENCE = CHARTS / "inference-service"
ADMIN = {"username": "admin", "password": "real-node-admin-pass"}


@pytest.fixture
def ns(cluster: Cluster, real_node: str) -> Iterator[str]:
    name = realnode.namespace(cluster, "real")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _values_file(tmp_path: Path, name: str, values: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(values))
    return path


def _secret(cluster: Cluster, ns: str, name: str, data: dict[str, str]) -> None:
    cluster.kubectl(
        "-n", ns, "create", "secret", "generic", name, *(f"--from-literal={k}={v}" for k, v in data.items())
    )


def _pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(cluster.get("-n", ns, "pods", "-l", selector)["items"])


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _get_json(url: str, auth: dict[str, str] | None = None, body: Any = None, timeout: float = 20) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _service(cluster: Cluster, ns: str, release: str) -> dict[str, Any]:
    items = cluster.get("-n", ns, "services", "-l", f"app.kubernetes.io/instance={release}")["items"]
    plain = [s for s in items if s["spec"].get("clusterIP") not in (None, "None")]
    assert plain, f"no ClusterIP Service of {release}: {[s['metadata']['name'] for s in items]}"
    return dict(plain[0])


def _helm(cluster: Cluster, helm_name: str, *args: str | Path, timeout: float = 420) -> str:
    proc = subprocess.run(
        [realnode_helm(helm_name), *map(str, args)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        ns = next((str(a) for i, a in enumerate(args) if i and args[i - 1] == "-n"), "")
        raise AssertionError(
            f"helm {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}\n{_diagnose(cluster, ns)}"
        )
    return proc.stdout + proc.stderr


def realnode_helm(helm_name: str) -> str:
    from tests.support.charts import helm_path

    return helm_path(helm_name)


def _diagnose(cluster: Cluster, ns: str) -> str:
    """What the kubelet saw: pods, events and the last log lines of every container."""
    if not ns:
        return ""
    out = [cluster.kubectl("-n", ns, "get", "pods,pvc,events", "-o", "wide", check=False).stdout]
    for pod in cluster.get("-n", ns, "pods")["items"]:
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            logs = cluster.kubectl(
                "-n", ns, "logs", pod["metadata"]["name"], "-c", c["name"], "--tail=30", check=False
            )
            out.append(f"--- {pod['metadata']['name']}/{c['name']}\n{logs.stdout}{logs.stderr}")
    return "\n".join(out)


def _mlflow_values(auth: bool) -> dict[str, Any]:
    return {
        "persistence": {"storageClass": realnode.STORAGE_CLASS, "size": "1Gi"},
        "auth": {"basic": {"enabled": auth, "existingSecret": "mlflow-admin" if auth else ""}},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
    }


# The training script: the requirement came from the local index into the pod's emptyDir (the root
# filesystem is read-only), and a metric goes to the run the launcher created, through MLflow's REST
# API at the Service's DNS name (MLFLOW_TRACKING_URI), with the credentials the chart passes.
TRAIN_SCRIPT = """
import base64, json, os, sys, urllib.request
import six
assert "/opt/helm-mlops" in six.__file__ or "/tmp" in six.__file__, six.__file__
uri = os.environ["MLFLOW_TRACKING_URI"]
headers = {"Content-Type": "application/json"}
if os.environ.get("MLFLOW_TRACKING_USERNAME"):
    token = base64.b64encode(
        f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}".encode()).decode()
    headers["Authorization"] = "Basic " + token
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "accuracy", "value": 0.93, "timestamp": 0, "step": 0}
request = urllib.request.Request(uri + "/api/2.0/mlflow/runs/log-metric", data=json.dumps(body).encode(),
    headers=headers)
urllib.request.urlopen(request, timeout=30).read()
print("trained with six", six.__version__, "from", six.__file__, flush=True)
"""


@pytest.fixture(scope="module")
def wheel_index(real_node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PEP 503 index on the gateway address with the training script's requirement."""
    root = realnode.wheelhouse(["six==1.17.0"])
    with realnode.http_files(root, tmp_path_factory.mktemp("index")) as url:
        yield url + "/simple/"


# Helm 4 with MLflow's basic auth (Prometheus scrapes the metrics-proxy sidecar, the job authenticates);
# Helm 3 without (Prometheus scrapes MLflow itself at the pod IP: its Host header must be accepted).
@pytest.mark.parametrize(
    ("helm_name", "auth"), [("helm4", True), ("helm3", False)], ids=["helm4-auth", "helm3"]
)
def test_mlflow_and_training_on_the_real_node(
    cluster: Cluster, ns: str, helm_name: str, auth: bool, wheel_index: str, tmp_path: Path
) -> None:
    _secret(cluster, ns, "mlflow-admin", ADMIN)
    creds = ADMIN if auth else None
    values = _values_file(tmp_path, "mlflow", _mlflow_values(auth))
    _helm(cluster, helm_name, "install", "mlf", MLFLOW, "-n", ns, "-f", values, "--wait", "--timeout", "300s")

    # The server pod is on the real node, passed its kubelet probes, and never restarted.
    (pod,) = [
        p for p in _pods(cluster, ns, "app.kubernetes.io/instance=mlf") if p["status"]["phase"] == "Running"
    ]
    assert pod["spec"]["nodeName"] == realnode.NODE
    assert _ready(pod)
    assert all(s["restartCount"] == 0 for s in pod["status"]["containerStatuses"]), pod["status"]
    pod_ip = pod["status"]["podIP"]
    assert pod_ip.startswith("10.244.0."), pod_ip
    # The SQLite file lives on a real directory the provisioner made on this machine.
    (claim,) = cluster.get("-n", ns, "pvc")["items"]
    assert claim["status"]["phase"] == "Bound"
    pv = cluster.get("pv", claim["spec"]["volumeName"])
    data_dir = Path(pv["spec"]["hostPath"]["path"])

    # Prometheus's path: the ServiceMonitor's port at the pod IP, no credentials held by Prometheus.
    (monitor,) = cluster.get("-n", ns, "servicemonitors")["items"]
    endpoint = monitor["spec"]["endpoints"][0]
    assert "basicAuth" not in endpoint  # Prometheus holds no MLflow credential
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    scrape = f"http://{pod_ip}:{ports[endpoint['port']]}{endpoint.get('path', '/metrics')}"
    with urllib.request.urlopen(scrape, timeout=20) as response:
        metrics = response.read().decode()
    assert response.status == 200 and "# TYPE" in metrics and "mlflow" in metrics, metrics[:500]

    # helm test: the chart's test pod, really run by the kubelet.
    out = _helm(cluster, helm_name, "test", "mlf", "-n", ns, "--timeout", "180s")
    assert re.search(r"Phase:\s+Succeeded", out), out

    # A training job logs to MLflow through the Service's DNS name; its requirement is pip-installed
    # from the local index under a read-only root filesystem.
    service = _service(cluster, ns, "mlf")
    svc_name, svc_port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    tracking = f"http://{svc_name}.{ns}.svc.cluster.local:{svc_port}"
    train_values = _values_file(
        tmp_path,
        "train",
        {
            "script": {"content": TRAIN_SCRIPT},
            "requirements": ["six==1.17.0"],
            "pip": {"indexUrl": wheel_index, "trustedHosts": [realnode.GATEWAY]},
            "mlflow": {
                "trackingUri": tracking,
                "experimentName": "real-node",
                "existingSecret": "mlflow-admin" if auth else "",
            },
            "job": {"backoffLimit": 0},
        },
    )
    _helm(cluster, helm_name, "install", "trn", TRAINING, "-n", ns, "-f", train_values)
    job = _wait_job(cluster, ns, "trn")
    (train_pod,) = _pods(cluster, ns, f"job-name={job}")
    assert train_pod["spec"]["nodeName"] == realnode.NODE
    logs = cluster.kubectl("-n", ns, "logs", f"job/{job}").stdout
    assert "trained with six 1.17.0" in logs, logs

    # The run, read back through the ClusterIP from this machine (kube-proxy's rules for local traffic).
    base = f"http://{service['spec']['clusterIP']}:{svc_port}"
    experiment = _get_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=real-node", creds)
    experiment_id = experiment["experiment"]["experiment_id"]
    runs = _get_json(f"{base}/api/2.0/mlflow/runs/search", creds, {"experiment_ids": [experiment_id]})["runs"]
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["info"]["status"] == "FINISHED", run["info"]
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"accuracy": 0.93}

    # `helm-mlops logs` and `kubectl logs` read the kubelet's logs; port-forward reaches the pod.
    mlops = subprocess.run(
        [str(REPO / ".venv" / "bin" / "helm-mlops"), "logs", "trn", job, "-n", ns],
        env={**cluster.env, "HELM_MLOPS_HELM": realnode_helm(helm_name)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert mlops.returncode == 0 and "trained with six 1.17.0" in mlops.stdout, mlops.stdout + mlops.stderr
    server_logs = cluster.kubectl("-n", ns, "logs", pod["metadata"]["name"], "-c", "mlflow").stdout
    assert "Listening at" in server_logs or "Uvicorn running" in server_logs or "Serving" in server_logs, (
        server_logs[-2000:]
    )
    with _port_forward(cluster, ns, f"svc/{svc_name}", svc_port) as local:
        health = urllib.request.urlopen(f"http://127.0.0.1:{local}/health", timeout=20).read()
    assert health.strip() == b"OK"

    # An upgrade rolls the server pod (SIGTERM from the kubelet); the data stays on the volume.
    upgraded = {**_mlflow_values(auth), "podAnnotations": {"rolled": "1"}}
    values = _values_file(tmp_path, "mlflow2", upgraded)
    _helm(cluster, helm_name, "upgrade", "mlf", MLFLOW, "-n", ns, "-f", values, "--wait", "--timeout", "300s")
    (new_pod,) = [
        p
        for p in _pods(cluster, ns, "app.kubernetes.io/instance=mlf")
        if p["status"]["phase"] == "Running" and p["metadata"].get("deletionTimestamp") is None
    ]
    assert new_pod["metadata"]["uid"] != pod["metadata"]["uid"]
    assert new_pod["spec"]["nodeName"] == realnode.NODE and _ready(new_pod)
    runs = _get_json(f"{base}/api/2.0/mlflow/runs/search", creds, {"experiment_ids": [experiment_id]})["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run["info"]["run_id"]]

    # Uninstall: pods gone; the claim is kept (retainOnUninstall) with the data on the real directory.
    _helm(cluster, helm_name, "uninstall", "trn", "-n", ns, "--wait")
    started = time.monotonic()
    _helm(cluster, helm_name, "uninstall", "mlf", "-n", ns, "--wait")
    # The server stops on the kubelet's SIGTERM, well before the 30 s grace period ends in a SIGKILL.
    while _pods(cluster, ns, "app.kubernetes.io/instance=mlf") and time.monotonic() - started < 60:
        time.sleep(0.5)
    stopped_after = time.monotonic() - started
    assert not _pods(cluster, ns, "app.kubernetes.io/instance=mlf")
    assert stopped_after < 20, f"the MLflow pod took {stopped_after:.0f}s to stop: SIGTERM was ignored"
    assert cluster.get("-n", ns, "pvc")["items"], "the data claim should be kept"
    assert any(data_dir.iterdir()), f"{data_dir} is empty"


def _wait_job(cluster: Cluster, ns: str, release: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = cluster.get("-n", ns, "jobs", "-l", f"app.kubernetes.io/instance={release}")["items"]
        for job in jobs:
            conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
            if conditions.get("Complete") == "True":
                return str(job["metadata"]["name"])
            if conditions.get("Failed") == "True":
                raise AssertionError(f"job {job['metadata']['name']} failed:\n{_diagnose(cluster, ns)}")
        time.sleep(1)
    raise AssertionError(f"no job of {release} completed in {timeout}s:\n{_diagnose(cluster, ns)}")


class _PortForward:
    def __init__(self, cluster: Cluster, ns: str, target: str, port: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.local = int(s.getsockname()[1])
        self.proc = subprocess.Popen(
            [str(TOOLS_BIN / "kubectl"), "-n", ns, "port-forward", target, f"{self.local}:{port}"],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def __enter__(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "Forwarding from" in line, line + self.proc.stdout.read()
        return self.local

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _port_forward(cluster: Cluster, ns: str, target: str, port: int) -> _PortForward:
    return _PortForward(cluster, ns, target, port)


# --- distributed training: two real pods, torchrun with gloo through the headless Service ----------

DDP_SCRIPT = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(f"rank {rank}/{world} sum {t.item():.0f}", flush=True)
dist.destroy_process_group()
"""


def test_torchrun_across_two_real_pods(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    image = realnode.image("torch")
    values = _values_file(
        tmp_path,
        "ddp",
        {
            "image": {"repository": image.rsplit(":", 1)[0], "tag": image.rsplit(":", 1)[1]},
            "script": {"content": DDP_SCRIPT},
            "distributed": {"enabled": True, "nodes": 2, "nprocPerNode": 1, "backend": "gloo"},
            "job": {"backoffLimit": 0},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        },
    )
    _helm(cluster, "helm4", "install", "ddp", TRAINING, "-n", ns, "-f", values)
    job = _wait_job(cluster, ns, "ddp", timeout=420)
    pods = _pods(cluster, ns, f"job-name={job}")
    assert len(pods) == 2 and all(p["spec"]["nodeName"] == realnode.NODE for p in pods)
    assert len({p["status"]["podIP"] for p in pods}) == 2
    out = "".join(cluster.kubectl("-n", ns, "logs", p["metadata"]["name"]).stdout for p in pods)
    # 1 + 2 summed across the two pods: both joined the same process group through the network.
    assert sorted(re.findall(r"rank (\d)/2 sum 3", out)) == ["0", "1"], out


# --- inference: a model fetched from the S3 emulator by the init container, served, rolled without a
# dropped request


@pytest.fixture(scope="module")
def s3_model(real_node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An iris model in the S3 emulator (moto) on the gateway address; yields the endpoint and the file's
    sha256."""
    import boto3
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("s3")
    x, y = load_iris(return_X_y=True)
    path = root / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), path)
    with realnode.moto_s3(root) as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="AK",
            aws_secret_access_key="SK",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="models")
        s3.upload_file(str(path), "models", "iris/model.joblib")
        yield endpoint, hashlib.sha256(path.read_bytes()).hexdigest()


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.mark.parametrize("helm_name", HELMS)
def test_inference_from_s3_emulator_rolls_without_dropping_requests(
    cluster: Cluster, ns: str, helm_name: str, s3_model: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, digest = s3_model
    _secret(cluster, ns, "s3", {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
    image = realnode.image("runtime")
    base_values: dict[str, Any] = {
        "replicaCount": 2,
        "model": {
            "name": "iris",
            "sha256": digest,
            "source": {
                "type": "s3",
                "s3": {
                    "endpointUrl": endpoint,
                    "bucket": "models",
                    "key": "iris/model.joblib",
                    "existingSecret": "s3",
                },
            },
        },
        "fastapi": {
            "image": {"repository": image.rsplit(":", 1)[0], "tag": image.rsplit(":", 1)[1]},
            "prebuilt": True,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }
    values = _values_file(tmp_path, "inf", base_values)
    _helm(
        cluster, helm_name, "install", "inf", INFERENCE, "-n", ns, "-f", values, "--wait", "--timeout", "300s"
    )
    pods = [
        p for p in _pods(cluster, ns, "app.kubernetes.io/instance=inf") if p["status"]["phase"] == "Running"
    ]
    assert len(pods) == 2 and all(p["spec"]["nodeName"] == realnode.NODE and _ready(p) for p in pods)

    # Another pod calls the Service by its DNS name.
    service = _service(cluster, ns, "inf")
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    code = (
        "import json, urllib.request\n"
        f"body = json.dumps({{'input': {ROWS}}}).encode()\n"
        f"r = urllib.request.Request('http://{name}:{port}/predict', data=body,"
        " headers={'Content-Type': 'application/json'})\n"
        "print(urllib.request.urlopen(r, timeout=30).read().decode())\n"
    )
    phase, logs = realnode.run_pod(cluster, ns, "client", code)
    assert phase == "Succeeded", logs
    assert json.loads(logs.strip().splitlines()[-1])["prediction"] == [0, 2], logs

    out = _helm(cluster, helm_name, "test", "inf", "-n", ns, "--timeout", "180s")
    assert re.search(r"Phase:\s+Succeeded", out), out

    # A rolling update under light load (two clients through the ClusterIP): not one request fails.
    url = f"http://{service['spec']['clusterIP']}:{port}/predict"
    stop = threading.Event()
    results: list[str] = []

    def client() -> None:
        body = json.dumps({"input": ROWS}).encode()
        while not stop.is_set():
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    results.append("ok" if response.status == 200 else f"status {response.status}")
            except (urllib.error.URLError, OSError) as e:
                results.append(f"{type(e).__name__}: {e}")
            time.sleep(0.02)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        rolled = _values_file(tmp_path, "inf2", {**base_values, "podAnnotations": {"rolled": "1"}})
        _helm(
            cluster,
            helm_name,
            "upgrade",
            "inf",
            INFERENCE,
            "-n",
            ns,
            "-f",
            rolled,
            "--wait",
            "--timeout",
            "300s",
        )
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [r for r in results if r != "ok"]
    assert len(results) > 50 and not failures, (len(results), failures[:10])
    new = [
        p
        for p in _pods(cluster, ns, "app.kubernetes.io/instance=inf")
        if p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    assert {p["metadata"]["uid"] for p in new}.isdisjoint({p["metadata"]["uid"] for p in pods})
    _helm(cluster, helm_name, "uninstall", "inf", "-n", ns, "--wait")


def test_cluster_dns_and_readonly_root(cluster: Cluster, ns: str) -> None:
    """The restricted pod really is non-root with a read-only root, and resolves Services by name."""
    code = (
        "import os, socket\n"
        "print('uid', os.getuid())\n"
        "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print('root', e.errno)\n"
        "print('dns', socket.gethostbyname('kubernetes.default.svc.cluster.local'))\n"
    )
    phase, logs = realnode.run_pod(cluster, ns, "probe", code)
    assert phase == "Succeeded", logs
    assert "uid 1000" in logs and "root 30" in logs, logs  # EROFS
    api = cluster.get("-n", "default", "service", "kubernetes")["spec"]["clusterIP"]
    assert f"dns {api}" in logs, logs
