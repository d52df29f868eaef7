"""The model fetcher (the inference chart's fetch-model init container, charts/inference-service/files/
fetch_model.py) and the training launcher's MLflow client, attacked for real on 127.0.0.1 and 127.0.0.2:
a truncated body, an oversized model, an https URL that redirects to http, plain http without a pin,
credentials following a redirect to another origin, and a presigned URL's signature in the logs. Each
attack is first shown to reach the fetcher (the server sees the request), then shown to fail."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import importlib.util
import ipaddress
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.charts import CHARTS

pytestmark = pytest.mark.real
FETCH = CHARTS / "inference-service" / "files" / "fetch_model.py"
LAUNCHER = CHARTS / "training-job" / "files" / "launcher.py"
MODEL = os.urandom(4096)
PIN = hashlib.sha256(MODEL).hexdigest()

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def server(
    host: str, handle: Handler, tls: tuple[Path, Path] | None = None
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An HTTP(S) server on host; yields its base URL and the headers of every request it got."""
    seen: list[dict[str, str]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
            handle(self)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((host, 0), H)
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, tls))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"{scheme}://{host}:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()


def send(body: bytes, length: int | None = None, status: int = 200) -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        h.close_connection = True

    return handle


def redirect(to: str) -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", to + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handle


def fetch(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        str(FETCH),
        "--dest",
        str(tmp_path / "model"),
        "--file",
        "m.onnx",
        "--retries",
        "1",
    ]
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


def nothing_written(tmp_path: Path) -> bool:
    return not any((tmp_path / "model").glob("*")) if (tmp_path / "model").exists() else True


def test_a_truncated_body_is_refused(tmp_path: Path) -> None:
    with server("127.0.0.1", send(MODEL[:500], length=1000)) as (url, seen):
        result = fetch(tmp_path, "--url", url + "/m.onnx", "--allow-insecure-http")
    assert seen and result.returncode != 0 and "incomplete body: 500 of 1000 bytes" in result.stderr
    assert nothing_written(tmp_path)


def test_an_oversized_model_is_refused(tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024)
    with server("127.0.0.1", send(big)) as (url, seen):
        declared = fetch(tmp_path, "--url", url + "/m.onnx", "--allow-insecure-http", "--max-size", "1Mi")
    assert seen and declared.returncode != 0 and "more than --max-size (1048576 bytes)" in declared.stderr

    def no_length(h: http.server.BaseHTTPRequestHandler) -> None:  # a chunked body: no size up front
        h.send_response(200)
        h.end_headers()
        h.wfile.write(big)
        h.close_connection = True

    with server("127.0.0.1", no_length) as (url, _):
        streamed = fetch(tmp_path, "--url", url + "/m.onnx", "--allow-insecure-http", "--max-size", "1Mi")
    assert streamed.returncode != 0 and "larger than --max-size" in streamed.stderr
    assert nothing_written(tmp_path)


def test_plain_http_needs_a_pin_or_an_explicit_yes(tmp_path: Path) -> None:
    with server("127.0.0.1", send(MODEL)) as (url, seen):
        refused = fetch(tmp_path, "--url", url + "/m.onnx")
        assert refused.returncode != 0 and "plain http" in refused.stderr and not seen
        assert nothing_written(tmp_path)
        assert fetch(tmp_path, "--url", url + "/m.onnx", "--sha256", PIN).returncode == 0
    assert (tmp_path / "model" / "m.onnx").read_bytes() == MODEL
    s3 = fetch(tmp_path, "--s3", "b/k", "--endpoint", "http://127.0.0.1:9")
    assert s3.returncode != 0 and "plain http" in s3.stderr


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the fetcher trusts it through SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    root = tmp_path_factory.mktemp("tls")
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return root / "cert.pem", root / "key.pem"


def test_https_never_redirects_down_to_http(tmp_path: Path, tls: tuple[Path, Path]) -> None:
    env = {"SSL_CERT_FILE": str(tls[0])}
    with server("127.0.0.1", send(MODEL)) as (plain, plain_seen):
        with server("127.0.0.1", redirect(plain), tls=tls) as (secure, seen):
            result = fetch(tmp_path, "--url", secure + "/m.onnx", "--sha256", PIN, env=env)
            assert seen, "the https server must have been asked"
        assert result.returncode != 0 and "refusing to leave https" in result.stderr
        assert not plain_seen and nothing_written(tmp_path)
    with server("127.0.0.1", send(MODEL), tls=tls) as (secure, _):  # https itself is fine, unpinned too
        ok = fetch(tmp_path, "--url", secure + "/m.onnx", env=env)
    assert ok.returncode == 0 and "is not pinned" in ok.stderr


def test_s3_credentials_never_follow_a_redirect_elsewhere(tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_SESSION_TOKEN": "tok3n",
    }
    with (
        server("127.0.0.2", send(MODEL)) as (elsewhere, elsewhere_seen),
        server("127.0.0.1", redirect(elsewhere)) as (endpoint, seen),
    ):
        result = fetch(tmp_path, "--s3", "models/m.onnx", "--endpoint", endpoint, "--sha256", PIN, env=env)
    assert result.returncode == 0, result.stderr
    assert "authorization" in seen[0] and seen[0]["x-amz-security-token"] == "tok3n"  # signed at the origin
    assert elsewhere_seen and not {"authorization", "x-amz-security-token", "x-amz-date"} & set(
        elsewhere_seen[0]
    )
    assert (tmp_path / "model" / "m.onnx").read_bytes() == MODEL


def test_a_presigned_urls_signature_never_reaches_the_log(tmp_path: Path) -> None:
    query = "?X-Amz-Credential=AK%2F20260101&X-Amz-Signature=deadbeefcafe&token=hunter2"
    for status in (403, 500):
        with server("127.0.0.1", send(b"no", status=status)) as (url, seen):
            result = fetch(tmp_path, "--url", url + "/m.onnx" + query, "--sha256", PIN)
        assert seen and seen[0][":path"].endswith("hunter2")  # the secret really was used
        assert result.returncode != 0 and url + "/m.onnx" in result.stderr
        assert "deadbeefcafe" not in result.stderr and "hunter2" not in result.stderr
    with server("127.0.0.1", send(MODEL)) as (url, seen):  # the URL from a Secret, through the env
        ok = fetch(
            tmp_path,
            "--url-env",
            "HM_FETCH_URL",
            "--sha256",
            PIN,
            env={"HM_FETCH_URL": url + "/m.onnx" + query},
        )
    assert ok.returncode == 0 and "hunter2" not in ok.stderr + ok.stdout


def test_the_launcher_keeps_mlflow_credentials_at_their_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("helm_mlops_launcher_under_test", LAUNCHER)
    assert spec and spec.loader
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pa55")
    reply = send(b'{"experiment": {"experiment_id": "1"}}')
    with (
        server("127.0.0.2", reply) as (other, other_seen),
        server("127.0.0.1", redirect(other)) as (mlflow, seen),
    ):
        result: Any = launcher.Mlflow(mlflow).call("GET", "experiments/get-by-name", {"experiment_name": "x"})
    assert result["experiment"]["experiment_id"] == "1"
    assert seen[0]["authorization"].startswith("Basic ")
    assert other_seen and "authorization" not in other_seen[0]

    def moved(h: http.server.BaseHTTPRequestHandler) -> None:  # a redirect within the origin keeps it
        if h.path.startswith("/api/"):
            h.send_response(307)
            h.send_header("Location", "/moved" + h.path)
            h.send_header("Content-Length", "0")
            h.end_headers()
        else:
            reply(h)

    with server("127.0.0.1", moved) as (mlflow, same_seen):
        launcher.Mlflow(mlflow).call("GET", "experiments/get-by-name", {"experiment_name": "x"})
    assert same_seen[1][":path"].startswith("/moved/") and same_seen[1]["authorization"].startswith("Basic ")
