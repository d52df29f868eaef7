"""A small fault-injecting HTTP proxy for tests: forwards every request to a real server (an
`mlflow server`) unless a rule answers it first, so clients see the faults a real deployment has
(5xx from an overloaded server, 401/403 from an auth proxy, a server that is down)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Fault:
    path: str  # the request path contains this
    status: int
    body: str = ""
    times: int = 1  # how many matching requests get the fault (then they pass through)
    method: str = ""  # "" = any


@dataclass
class FaultProxy:
    upstream: str  # http://127.0.0.1:PORT
    faults: list[Fault] = field(default_factory=list)
    basic_auth: tuple[str, str] | None = None  # require these credentials (401 otherwise)
    down: bool = False  # close every connection without an answer
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    url: str = ""

    def add(self, path: str, status: int, body: str = "", times: int = 1, method: str = "") -> None:
        self.faults.append(Fault(path, status, body, times, method))

    def count(self, path: str, status: int | None = None) -> int:
        return sum(1 for _, p, s in self.seen if path in p and (status is None or s == status))


def _handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    target = urllib.parse.urlsplit(proxy.upstream)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            with lock:
                proxy.seen.append((self.command, self.path, status))

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
            if proxy.down:
                with lock:
                    proxy.seen.append((self.command, self.path, 0))
                self.close_connection = True
                return
            if proxy.basic_auth is not None:
                user, password = proxy.basic_auth
                expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._reply(401, b"You are not authenticated.", [("Content-Type", "text/plain")])
                    return
            with lock:
                fault = next(
                    (
                        f
                        for f in proxy.faults
                        if f.times > 0 and f.path in self.path and f.method in ("", self.command)
                    ),
                    None,
                )
                if fault is not None:
                    fault.times -= 1
            if fault is not None:
                self._reply(fault.status, fault.body.encode(), [("Content-Type", "application/json")])
                return
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
            conn.request(self.command, self.path, body=data or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            self._reply(response.status, body, response.getheaders())

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    return Handler


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream=upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
