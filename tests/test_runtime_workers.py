"""The runtime with --workers: real processes on a real port, a real scikit-learn model and an ONNX
one, real HTTP. Workers are told apart by the request ids they draw (a random prefix per process)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.charts import REPO
from tests.support.servers import free_port, http_json, wait_http

pytestmark = pytest.mark.real

RUNTIME = REPO / "charts" / "inference-service" / "files"
X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, Y), path)
    return path


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@contextmanager
def runtime(
    model: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = model.parent / f"runtime-{port}.log"
    argv = [sys.executable, "-m", "hm_runtime", "--model", str(model), "--trust-model", "--name", "iris"]
    argv += ["--host", "127.0.0.1", "--port", str(port), *args]
    environ = {**os.environ, "PYTHONPATH": str(RUNTIME), **(env or {})}
    proc = subprocess.Popen(argv, env=environ, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v2/health/ready", timeout=120, proc=proc, log=log)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def infer(url: str, row: list[float]) -> tuple[int, str]:
    """One request on its own connection: its status and the id of the worker that drew its request id."""
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}]})
    request = urllib.request.Request(
        url + "/v2/models/iris/infer", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers["X-Request-Id"][:12]


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def test_two_workers_both_serve_and_metrics_sum(model: Path) -> None:
    with runtime(model, "--workers", "2") as (url, proc, log):
        assert len(children(proc.pid)) == 2
        rows = [list(map(float, X[i % len(X)])) for i in range(200)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda r: infer(url, r), rows))
        assert {status for status, _ in answers} == {200}
        workers = {worker for _, worker in answers}
        assert len(workers) == 2, f"one worker took every request: {workers}"
        # Whichever worker answers the scrape, the counters are the sum over both.
        for _ in range(4):
            assert metric(url, 'hm_requests_total{code="200",endpoint="v2_infer"}') == 200
            assert metric(url, "hm_batch_rows_sum") == 200
            assert metric(url, "hm_model_ready") == 1
        assert metric(url, "process_cpu_seconds_total") > 0
        assert "model loaded once" in log.read_text()


def test_a_dead_worker_is_replaced_while_the_pod_stays_ready(model: Path) -> None:
    with runtime(model, "--workers", "2") as (url, proc, log):
        for x in X[:20]:
            assert infer(url, list(map(float, x)))[0] == 200
        first, second = children(proc.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # ready all along: the other worker answers
            assert http_json(url + "/v2/health/ready")[0] == 200
            now = children(proc.pid)
            if len(now) == 2 and first not in now:
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert second in now
        wait_http(url + "/v2/health/ready", timeout=60, proc=proc, log=log)
        for x in X[:20]:
            assert infer(url, list(map(float, x)))[0] == 200
        # The dead worker's requests still count.
        assert metric(url, 'hm_requests_total{code="200",endpoint="v2_infer"}') == 40
        assert f"(pid {first}) ended with signal 9" in log.read_text()


def test_sigterm_drains_every_worker(model: Path) -> None:
    """Requests whose bodies are still arriving when SIGTERM comes are answered; then all exit."""
    with runtime(model, "--workers", "2") as (url, proc, _log):
        workers = children(proc.pid)
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps({"input": [5.1, 3.5, 1.4, 0.2]}).encode()
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sockets = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(head + body[:5])
            sockets.append(s)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # While those drain, a new connection is refused at once (the supervisor let go of the listening
        # socket too), not left waiting unanswered in the backlog.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        answers = []
        for s in sockets:
            s.sendall(body[5:])
            answers.append(s.recv(65536).decode())
            s.close()
        assert all(a.startswith("HTTP/1.1 200") for a in answers), answers
        assert proc.wait(timeout=60) == 0
        for pid in workers:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
            )
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


def test_onnx_loads_in_each_worker(tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx

    path = tmp_path / "iris.onnx"
    path.write_bytes(
        to_onnx(LogisticRegression(max_iter=500).fit(X, Y), X[:1].astype(np.float32)).SerializeToString()
    )
    with runtime(path, "--workers", "2") as (url, proc, log):
        assert len(children(proc.pid)) == 2
        assert "onnx models load in each worker" in log.read_text()
        assert log.read_text().count("ready on cpu") == 2
        assert infer(url, list(map(float, X[0])))[0] == 200


def test_the_default_is_the_cpus_this_process_may_use(model: Path) -> None:
    env = {"HM_RUNTIME_WORKERS": "auto"}
    with runtime(model, env=env) as (_url, proc, _log):
        assert len(children(proc.pid)) == (
            0 if len(os.sched_getaffinity(0)) == 1 else len(os.sched_getaffinity(0))
        )
    port = free_port()
    argv = ["taskset", "-c", "0", sys.executable, "-m", "hm_runtime", "--model", str(model), "--trust-model"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--host", "127.0.0.1"],
        env={**os.environ, "PYTHONPATH": str(RUNTIME), "HM_RUNTIME_WORKERS": "auto"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=120, proc=proc)
        assert children(proc.pid) == []  # one CPU: the runtime itself serves, no supervisor
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_available_cpus_reads_the_cgroup_quota(tmp_path: Path) -> None:
    sys.path.insert(0, str(RUNTIME))
    try:
        from hm_runtime.workers import available_cpus
    finally:
        sys.path.remove(str(RUNTIME))
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == cpus
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: one worker, not two throttled
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(cpus + 8) * 100000} 100000\n")  # more than the affinity
    assert available_cpus(tmp_path) == cpus
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == cpus
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (
            ["--workers", "0"],
            {},
            "--workers (HM_RUNTIME_WORKERS) must be a whole number of 1 or more, or auto, not '0'",
        ),
        ([], {"HM_RUNTIME_WORKERS": "two"}, "not 'two'"),
        (["--workers", "2", "--feedback"], {}, "--workers 2 cannot be used with --feedback"),
    ],
)
def test_bad_worker_counts_exit_2(model: Path, args: list[str], env: dict[str, str], says: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hm_runtime", "--model", str(model), *args],
        env={**os.environ, "PYTHONPATH": str(RUNTIME), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr
