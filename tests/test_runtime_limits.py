"""The runtime's limits under abuse, for real: large bodies sent at once, uploads that stall, a huge
request head, and more requests than it takes. Memory stays bounded (RSS read from /proc), liveness
answers quickly throughout, and each abuser gets its status: 429 with Retry-After, 408, 431."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.servers import free_port, wait_http

pytestmark = pytest.mark.real
EXE = str(Path(sys.executable).parent / "helm-mlops")
MiB = 1 << 20


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def big_body(size: int) -> bytes:
    row = b"[5.1, 3.5, 1.4, 0.2],"
    count = size // len(row)
    return b'{"input": [' + row * (count - 1) + b"[5.1, 3.5, 1.4, 0.2]]}"


def post(port: int, body: bytes, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def live_latency(port: int) -> float:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v2/health/live")
    assert conn.getresponse().status == 200
    conn.close()
    return time.perf_counter() - started


def test_abuse_keeps_memory_bounded_and_liveness_fast(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), tmp_path / "iris.joblib")
    port = free_port()
    log = tmp_path / "server.log"
    argv = [EXE, "runtime", "serve", "--model", str(tmp_path / "iris.joblib"), "--trust-model"]
    argv += ["--port", str(port)]
    env_limits = {
        "HM_RUNTIME_MAX_BUFFERED_BYTES": str(24 * MiB),
        "HM_RUNTIME_BODY_TIMEOUT": "3",
        "HM_RUNTIME_MAX_CONCURRENCY": "16",
    }
    proc = subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **env_limits}
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=120, proc=proc, log=log)
        baseline = rss_mib(proc.pid)
        peak = baseline
        latencies = []

        # 40 uploads that stall after 7 MiB: each is cut off after the body timeout (408 or a closed
        # connection); meanwhile the buffered bytes stay within the budget.
        def stall() -> str:
            sock = socket.create_connection(("127.0.0.1", port))
            head = (
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {8 * MiB - 1}\r\n\r\n"
            )
            sock.sendall(head.encode())
            try:
                sock.sendall(b" " * (7 * MiB))
                sock.settimeout(15)
                return sock.recv(200).decode(errors="replace").split("\r\n")[0]
            except OSError as exc:
                return f"closed: {exc}"
            finally:
                sock.close()

        with concurrent.futures.ThreadPoolExecutor(48) as pool:
            stalls = [pool.submit(stall) for _ in range(40)]
            bodies = [pool.submit(post, port, big_body(8 * MiB - 1024)) for _ in range(8)]
            deadline = time.monotonic() + 20
            while not all(f.done() for f in stalls + bodies) and time.monotonic() < deadline:
                peak = max(peak, rss_mib(proc.pid))
                latencies.append(live_latency(port))
                time.sleep(0.2)
            stalled = [f.result() for f in stalls]
            large = [f.result()[0] for f in bodies]
        assert all(s.startswith(("HTTP/1.1 408", "HTTP/1.1 429", "closed")) for s in stalled), stalled
        assert any(s.startswith("HTTP/1.1 408") for s in stalled)
        assert set(large) <= {200, 429}, large
        assert peak - baseline < 400, f"RSS grew from {baseline:.0f} to {peak:.0f} MiB"
        assert max(latencies) < 1.0, f"liveness took {max(latencies):.2f}s under load"
        # Once the abuse stops, the budget is whole again: a large body is served.
        assert post(port, big_body(8 * MiB - 1024))[0] == 200

        # A 100 MB header is refused after 64 KiB, not buffered.
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < 100 * MiB:
                sock.sendall(b"a" * MiB)
                sent += MiB
        except OSError:
            pass
        sock.settimeout(5)
        answer = sock.recv(200).decode(errors="replace")
        sock.close()
        assert answer.startswith("HTTP/1.1 431"), answer
        assert sent < 100 * MiB  # the server closed the connection long before
        assert rss_mib(proc.pid) - baseline < 400

        # More requests in flight than allowed: the extra ones get 429 with Retry-After at once.
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            results = list(pool.map(lambda _: post(port, big_body(2 * MiB)), range(64)))
        codes = [code for code, _, _ in results]
        assert set(codes) <= {200, 429} and 200 in codes
        assert all(h.get("retry-after") == "1" for code, h, _ in results if code == 429)
        ok = json.loads(post(port, b'{"input": [5.1, 3.5, 1.4, 0.2]}')[2])
        assert ok["prediction"] == [0]  # and it still serves
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
