"""`ui` and `predict` without a cluster: how a Service leads to a pod and port, how SERVICE and --data
are understood, how a refused websocket upgrade reads, and the tunnel's piping and shutdown (its
websocket replaced by a plain TCP connection to a local echo server). The real thing, through a
kube-apiserver, is tests/test_e2e_access.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.access import matches_service, read_data, static_prefix
from generator.errors import ToolError, UserError
from generator.kube import portforward
from generator.kube.client import Kube, handshake, translate
from generator.runtime import request_body


def _pod(
    name: str, *, ready: bool = True, created: str = "2026-01-01T00:00:00Z", **extra: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created, **extra},
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "ports": [{"name": "http", "containerPort": 8000}],
                    "readinessProbe": {"httpGet": {"path": "/mlflow/health", "port": "http"}},
                }
            ]
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


SERVICE: dict[str, Any] = {
    "metadata": {"name": "s"},
    "spec": {
        "ports": [
            {"name": "metrics", "port": 9090, "targetPort": 9090},
            {"name": "http", "port": 80, "targetPort": "http"},
        ]
    },
}


def test_service_port_target_port_and_pod() -> None:
    assert portforward.pick_port(SERVICE, None)["port"] == 80  # the http port, not the first
    assert portforward.pick_port(SERVICE, 9090)["name"] == "metrics"
    assert portforward.pick_port(SERVICE, "9090")["name"] == "metrics"
    with pytest.raises(UserError, match=r"Service s has no port grpc \(ports: metrics:9090, http:80\)"):
        portforward.pick_port(SERVICE, "grpc")
    pod = _pod("a")
    assert portforward.target_port(SERVICE["spec"]["ports"][1], pod) == 8000  # named targetPort
    assert portforward.target_port({"port": 80}, pod) == 80  # no targetPort: the port
    with pytest.raises(UserError, match="no container port named grpc"):
        portforward.target_port({"port": 81, "targetPort": "grpc"}, pod)
    pods = [
        _pod("new", created="2026-01-02T00:00:00Z"),
        _pod("old", created="2026-01-01T00:00:00Z"),
        _pod("older-not-ready", ready=False, created="2025-01-01T00:00:00Z"),
        _pod("going", created="2024-01-01T00:00:00Z", deletionTimestamp="2026-01-03T00:00:00Z"),
    ]
    chosen = portforward.choose_pod(pods)
    assert chosen is not None and chosen["metadata"] == pods[1]["metadata"]
    assert portforward.choose_pod(pods[2:]) is None
    target = portforward.Backend("ns", "s", 80, "old", 8000, _pod("old"))
    assert target.readiness_path() == "/mlflow/health" and static_prefix(target) == "/mlflow"
    assert static_prefix(portforward.Backend("ns", "s", 80, "p", 8000, {"spec": {"containers": [{}]}})) == ""


def test_a_refused_websocket_upgrade_reads_like_any_api_error() -> None:
    from kubernetes.client.exceptions import ApiException

    reason = (
        "Handshake status 404 Not Found -+-+- {'audit-id': 'x', 'content-type': 'application/json'} -+-+- "
        '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \\"web-1\\" not found",'
        '"reason":"NotFound","code":404}\n'
    )
    assert handshake(reason) == (404, 'pods "web-1" not found')
    assert handshake("Handshake status 400 Bad Request -+-+- {} -+-+- not json") == (400, "400 Bad Request")
    assert handshake("[Errno 111] Connection refused") is None
    error = translate(ApiException(status=0, reason=reason), "port-forward to pod web-1", "https://k:6443")
    assert isinstance(error, UserError) and 'not found on https://k:6443 (pods "web-1" not found)' in str(
        error
    )
    refused = translate(
        ApiException(status=0, reason="[Errno 111] Connection refused"), "pf", "https://k:6443"
    )
    assert isinstance(refused, ToolError) and "is not reachable ([Errno 111] Connection refused)" in str(
        refused
    )
    bad = translate(
        ApiException(status=0, reason=reason.replace("404 Not Found", "400 Bad Request")), "pf", "h"
    )
    assert isinstance(bad, ToolError) and "answered 400" in str(bad)


def test_service_names_and_data() -> None:
    deployment = {
        "metadata": {
            "name": "quickstart-iris",
            "labels": {
                "app.kubernetes.io/name": "iris",
                "helm-mlops.io/inference-service": "quickstart-iris",
            },
        }
    }
    for given in ("iris", "quickstart-iris"):
        assert matches_service(deployment, given, "pf")
    assert not matches_service(deployment, "iri", "pf")
    plain = {
        "metadata": {
            "name": "rel-inference-service",
            "labels": {"app.kubernetes.io/name": "inference-service"},
        }
    }
    assert matches_service(plain, "inference-service", "rel")
    assert read_data("[1, 2]") == "[1, 2]"
    assert read_data("@-", stdin=lambda: "[3]") == "[3]"
    with pytest.raises(UserError, match=r"--data: cannot read /no/such.json \(No such file or directory\)"):
        read_data("@/no/such.json")
    assert request_body("[1, 2]", None, "--data") == ("/predict", {"input": [1, 2]})
    path, body = request_body("[[1, 2], [3, 4]]", "iris", "--data")
    assert path == "/v2/models/iris/infer" and body["inputs"][0]["shape"] == [2, 2]
    whole = '{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}'
    assert request_body(whole, "iris", "--data")[1]["inputs"][0]["name"] == "x"  # sent as is
    for bad, message in (("[1,", "not JSON"), ("[]", "must be a JSON list"), ("[[1], 2]", "mixes rows")):
        with pytest.raises(UserError, match=f"--data: {message}"):
            request_body(bad, None, "--data")


# The tunnel -------------------------------------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server that answers every chunk with the chunk upper-cased."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    def run() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=one, args=(conn,), name="echo", daemon=True).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


class FakePortForward:
    """What kubernetes.stream.portforward returns, over plain TCP to `port`."""

    def __init__(self, port: int, error: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self._error = error

    def socket(self, port: int) -> socket.socket:
        return self.sock

    def error(self, port: int) -> str | None:
        return self._error

    def close(self) -> None:
        self.sock.close()


UNUSED = Kube(Path("/nonexistent/kubeconfig"))  # the fakes below stand in for its API calls


def _target() -> portforward.Backend:
    return portforward.Backend("ns", "svc", 80, "pod-1", 8000, _pod("pod-1"))


def test_tunnel_pipes_each_connection_and_closes_its_threads(
    echo_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[FakePortForward] = []

    def fake_open(self: portforward.Tunnel) -> FakePortForward:
        opened.append(FakePortForward(echo_server))
        return opened[-1]

    monkeypatch.setattr(portforward.Tunnel, "_open", fake_open)
    before = set(threading.enumerate())
    with portforward.forward(UNUSED, _target()) as tunnel:
        assert tunnel.port > 0 and tunnel.url == f"http://127.0.0.1:{tunnel.port}"
        clients = [socket.create_connection(("127.0.0.1", tunnel.port)) for _ in range(3)]
        for i, client in enumerate(clients):
            client.sendall(f"hello {i}".encode())
            assert client.recv(100) == f"HELLO {i}".encode()
        clients[0].close()  # one client goes; the others keep working
        clients[1].sendall(b"still")
        assert clients[1].recv(100) == b"STILL"
        # Leaving the block with connections still open (Ctrl-C while a browser is connected).
    for client in clients[1:]:
        assert client.recv(100) == b""  # closed by the tunnel
        client.close()
    assert len(opened) == 3 and all(pf.sock.fileno() == -1 for pf in opened)
    # Every thread the tunnel started has ended (the client library's own websocket thread aside).
    assert [t for t in threading.enumerate() if t not in before and t.name != "echo"] == []
    with socket.socket() as s:  # the listener is gone
        assert s.connect_ex(("127.0.0.1", tunnel.port)) != 0


def test_tunnel_reports_connection_failures(echo_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: portforward.Tunnel) -> Any:
        raise UserError("port-forward to pod pod-1: forbidden by https://k:6443")

    seen: list[str] = []
    monkeypatch.setattr(portforward.Tunnel, "_open", refused)
    with (
        portforward.forward(UNUSED, _target(), on_error=seen.append) as tunnel,
        socket.create_connection(("127.0.0.1", tunnel.port)) as client,
    ):
        assert client.recv(100) == b""  # closed at once
    assert seen == ["port-forward to pod pod-1: forbidden by https://k:6443"] == tunnel.errors
    # The pod's side fails after connecting (kubelet: nothing listens on the port).
    monkeypatch.setattr(
        portforward.Tunnel,
        "_open",
        lambda self: FakePortForward(echo_server, "dial tcp 127.0.0.1:8000: refused"),
    )
    with portforward.forward(UNUSED, _target()) as tunnel:
        with socket.create_connection(("127.0.0.1", tunnel.port)) as client:
            client.sendall(b"x")
            assert client.recv(10) == b"X"
            client.shutdown(socket.SHUT_WR)
            assert client.recv(10) == b""
        for _ in range(50):
            if tunnel.errors:
                break
            threading.Event().wait(0.05)
    assert tunnel.errors == ["pod pod-1 port 8000: dial tcp 127.0.0.1:8000: refused"]
    # The client library's websocket thread dying: a line among the errors, not a traceback.
    monkeypatch.setattr(portforward.Tunnel, "_open", refused)
    hook = threading.excepthook
    with portforward.forward(UNUSED, _target()) as tunnel:

        def boom() -> None:
            raise RuntimeError("Unexpected channel number: 7")

        thread = threading.Thread(target=boom)
        thread.start()
        thread.join()
    assert tunnel.errors == ["port-forward connection failed: RuntimeError: Unexpected channel number: 7"]
    assert threading.excepthook is hook  # restored


def test_a_port_in_use_names_the_option() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as caught:
            portforward.bind(port)
    assert str(caught.value) == (
        f"--port: 127.0.0.1:{port} is already in use\n  fix: pick another port (0: any free one)"
    )
    free = portforward.bind(0)
    assert free.getsockname()[1] > 0
    free.close()
