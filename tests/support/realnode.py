"""The test cluster's real node (hack/real-node.sh): start it, put a namespace's pods on it, and serve
what its pods would download (wheels, model files, the S3 emulator) on the pod network's gateway address."""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.charts import REPO
from tests.support.cluster import Cluster, cluster_binaries_dir, cluster_script
from tests.support.servers import free_port, serve

NODE = "real-node-0"
LABEL = "helm-mlops.dev/real-node"
# hack/real-node.sh: the bridge's address on this machine, reachable from every pod.
GATEWAY = "10.244.0.1"
STORAGE_CLASS = "local-path"
PYTHON_IMAGE = "python:3.11-slim"


def cache_dir() -> Path:
    return cluster_binaries_dir().parent


def start() -> str:
    """`hack/real-node.sh up` for the test cluster; its output (build and start times)."""
    return cluster_script("up", "real-node.sh")


def namespace(cluster: Cluster, prefix: str) -> str:
    """A Pod Security "restricted" namespace whose every pod (hooks and `helm test` pods included)
    runs on the real node: the API server's PodNodeSelector and PodTolerationRestriction admission
    plugins add the node selector and the toleration from the namespace's annotations."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
            "annotations": {
                "scheduler.alpha.kubernetes.io/node-selector": f"{LABEL}=true",
                "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
                    [{"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}]
                ),
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    return name


RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def run_pod(
    cluster: Cluster, ns: str, name: str, code: str, image: str = PYTHON_IMAGE, timeout: float = 120
) -> tuple[str, str]:
    """Run `python3 -c CODE` in a restricted pod on the real node; its phase (Succeeded or Failed)
    and logs."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": RESTRICTED,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", code],
                    "securityContext": CONTAINER_RESTRICTED,
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = cluster.get("-n", ns, "pod", name).get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    logs = cluster.kubectl("-n", ns, "logs", name, check=False)
    return phase, logs.stdout + logs.stderr


def pod_on_real_node(pod: dict[str, Any]) -> bool:
    return bool(pod.get("spec", {}).get("nodeName") == NODE)


@contextlib.contextmanager
def http_files(root: Path, log_dir: Path) -> Iterator[str]:
    """A plain HTTP file server for ROOT on the gateway address; yields its base URL."""
    port = free_port()
    url = f"http://{GATEWAY}:{port}"
    argv = [sys.executable, "-m", "http.server", "--bind", GATEWAY, "--directory", str(root), str(port)]
    with serve(argv, log_dir / f"http-{port}.log", url + "/", 30):
        yield url


@contextlib.contextmanager
def moto_s3(log_dir: Path) -> Iterator[str]:
    """moto_server, the S3 emulator (it accepts any signature), on the gateway address (pods reach it; so
    does this machine); yields its URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    url = f"http://{GATEWAY}:{port}"
    with serve([str(exe), "-H", GATEWAY, "-p", str(port)], log_dir / "moto-real.log", url + "/moto-api/", 60):
        yield url


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheelhouse(requirements: list[str]) -> Path:
    """The wheels of REQUIREMENTS (and their dependencies) for this machine's Python, downloaded once into
    the cache, with a PEP 503 "simple" index beside them (`<dir>/simple/`) for pip's --index-url."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    root = cache_dir() / f"realnode-wheels-{key}"
    if not (root / "simple" / "index.html").is_file():
        files = root / "files"
        files.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                "-d",
                str(files),
                *requirements,
            ],
            check=True,
            capture_output=True,
        )
        projects: dict[str, list[str]] = {}
        for wheel in sorted(files.glob("*.whl")):
            projects.setdefault(_normalize(wheel.name.split("-")[0]), []).append(wheel.name)
        simple = root / "simple.tmp"
        simple.mkdir(exist_ok=True)
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
        (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
        for project, wheels in projects.items():
            (simple / project).mkdir(exist_ok=True)
            anchors = "".join(
                f'<a href="../../files/{html.escape(w)}#sha256='
                f'{hashlib.sha256((files / w).read_bytes()).hexdigest()}">{html.escape(w)}</a>\n'
                for w in wheels
            )
            (simple / project / "index.html").write_text(
                f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n"
            )
        simple.rename(root / "simple")
    return root


def image(kind: str) -> str:
    """The reference of one of our own images of the real node (`runtime`, `torch`), as
    hack/build-images.sh names it."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "build-images.sh"), "list"], capture_output=True, text=True, check=True
    )
    return next(ref for ref in proc.stdout.split() if f"/helm-mlops-{kind}:" in ref)
