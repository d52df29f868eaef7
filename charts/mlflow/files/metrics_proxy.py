"""The MLflow pod's metrics port when basic auth is on. MLflow's basic auth fails closed, so /metrics
answers only its admins; this sidecar fetches it inside the pod, as the admin (credentials from the
pod's environment, filled from their Secret), and serves it on its own port without credentials. So
Prometheus needs no MLflow credential, and the NetworkPolicy admits its namespace to this port only.
Standard library only: it runs in the MLflow image.

Environment: MLFLOW_URL (the server inside the pod), MLFLOW_TRACKING_USERNAME/PASSWORD (the admin),
METRICS_PORT (default 9090)."""

from __future__ import annotations

import base64
import http.server
import os
import signal
import sys
import urllib.error
import urllib.request

UPSTREAM = os.environ.get("MLFLOW_URL", "http://127.0.0.1:5000").rstrip("/") + "/metrics"
_CREDENTIALS = (
    f"{os.environ.get('MLFLOW_TRACKING_USERNAME', '')}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
)
AUTH = "Basic " + base64.b64encode(_CREDENTIALS.encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/metrics", "/healthz"):
            self._send(404, b"only /metrics and /healthz\n", "text/plain")
            return
        if self.path.startswith("/healthz"):
            self._send(200, b"ok\n", "text/plain")
            return
        request = urllib.request.Request(UPSTREAM)
        request.add_unredirected_header("Authorization", AUTH)  # never follows a redirect
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
                kind = response.headers.get("Content-Type", "text/plain; version=0.0.4")
        except (urllib.error.URLError, OSError) as exc:
            status = getattr(exc, "code", 502)
            self._send(
                502 if status in (401, 403) else int(status), b"upstream metrics unavailable\n", "text/plain"
            )
            return
        self._send(200, body, kind)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # scrapes every few seconds: no access log
        pass


def _stop(signum: int, _frame: object) -> None:
    sys.exit(0)


def main() -> None:
    # The container's PID 1: without a handler the kernel drops SIGTERM and the kubelet waits the whole
    # grace period to SIGKILL it (seen on the test cluster's real node).
    signal.signal(signal.SIGTERM, _stop)
    port = int(os.environ.get("METRICS_PORT", "9090"))
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
