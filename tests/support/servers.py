"""Real servers on 127.0.0.1 for tests: PostgreSQL (Debian's binaries), moto_server (the S3 emulator: it
accepts any signature), MinIO (a real S3 server: it verifies every request's signature), MLflow, an OCI
registry and a static file server over TLS with a CA of its own."""

from __future__ import annotations

import contextlib
import datetime
import functools
import glob
import http.server
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str,
    timeout: float = 120,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Until URL answers without an error status; CONTEXT verifies an https server (its CA)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s:\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 60) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Postgres:
    port: int
    user: str
    password: str
    database: str


@contextlib.contextmanager
def postgres(base: Path, password: str) -> Iterator[Postgres]:
    """A private PostgreSQL cluster on 127.0.0.1 with a password-protected database."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found: run `make system-deps`")
    data = base / "pgdata"
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root.
        run_as = ["runuser", "-u", "postgres", "--"]
        pw = pwd.getpwnam("postgres")
        base.mkdir(parents=True, exist_ok=True)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
        for parent in base.parents:  # postgres must be able to reach its directory
            if str(parent).startswith(("/tmp", "/var/tmp")) and parent != Path("/tmp"):
                os.chmod(parent, os.stat(parent).st_mode | 0o005)
    pwfile = base / "pw"
    pwfile.write_text("bootstrap\n")
    if run_as:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--pwfile",
            str(pwfile),
            "-A",
            "scram-sha-256",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = base / "postgres.log"
    proc = subprocess.Popen(
        [
            *run_as,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(base),
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        env = {**os.environ, "PGPASSWORD": "bootstrap"}
        while subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"postgres did not start: {log}")
            time.sleep(0.3)
        quoted = password.replace("'", "''")
        psql = shutil.which("psql") or str(bindir / "psql")
        # Separate -c: CREATE DATABASE cannot run inside the transaction one multi-statement -c opens.
        subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"CREATE USER mlflow PASSWORD '{quoted}'",
                "-c",
                "CREATE DATABASE mlflow OWNER mlflow",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        yield Postgres(port=port, user="mlflow", password=password, database="mlflow")
    finally:
        stop(proc)


@contextlib.contextmanager
def serve(
    argv: list[str],
    log: Path,
    health_url: str,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Iterator[None]:
    """Run a server in its own session until the block ends; ready once health_url answers (over
    https: verified with CONTEXT)."""
    proc = subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd, env=env
    )
    try:
        wait_http(health_url, timeout=timeout, proc=proc, log=log, context=context)
        yield
    finally:
        stop(proc)


@dataclass(frozen=True)
class Tls:
    ca: Path  # the CA's certificate (PEM): the bundle that verifies the server
    cert: Path  # the server's certificate, signed by the CA
    key: Path


def tls_ca(root: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Tls:
    """A CA of its own (self-signed, made here with `cryptography`) and a server certificate for HOSTS
    (DNS names or IP addresses) that it signed, as PEM files in ROOT."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"helm-mlops test CA {os.urandom(4).hex()}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    root.mkdir(parents=True, exist_ok=True)
    tls = Tls(root / "ca.crt", root / "server.crt", root / "server.key")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tls


@contextlib.contextmanager
def https_files(root: Path, tls: Tls, host: str = "localhost") -> Iterator[tuple[str, list[str]]]:
    """The files in ROOT over real TLS (the server certificate of TLS) on 127.0.0.1; yields the base
    URL (https://HOST:PORT) and the list of paths it served."""
    served: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://{host}:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def moto_s3(log_dir: Path) -> Iterator[str]:
    """moto_server, the S3 emulator (it accepts any signature and any keys); yields its URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    url = f"http://127.0.0.1:{port}"
    with serve([str(exe), "-H", "127.0.0.1", "-p", str(port)], log_dir / "moto.log", url + "/moto-api/", 60):
        yield url


def unavailable(message: str) -> None:
    """What a test cannot run without: a failure in CI (CI=true), a skip that says why elsewhere."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def minio_binary() -> Path:
    """MinIO built by hack/build-minio.sh (cached; the first build takes minutes and needs Go and the Go
    module proxy): its path, or unavailable() when it cannot be built."""
    from tests.support.charts import REPO

    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "build-minio.sh")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        unavailable(f"hack/build-minio.sh failed (Go 1.24+ and its module proxy):\n{proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class S3Server:
    url: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str


@contextlib.contextmanager
def minio(binary: Path, root: Path) -> Iterator[S3Server]:
    """MinIO (hack/build-minio.sh) on 127.0.0.1 with one data directory and fresh root credentials;
    yields its endpoint and the credentials. Unlike moto it checks each request's SigV4 signature."""
    port, console = free_port(), free_port()
    access, secret = f"ak{os.urandom(6).hex()}", os.urandom(18).hex()
    (root / "data").mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "MINIO_ROOT_USER": access,
        "MINIO_ROOT_PASSWORD": secret,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_CI_CD": "1",
    }
    argv = [str(binary), "server", str(root / "data"), "--address", f"127.0.0.1:{port}"]
    argv += ["--console-address", f"127.0.0.1:{console}", "--quiet"]
    url = f"http://127.0.0.1:{port}"
    with serve(argv, root / "minio.log", url + "/minio/health/ready", 120, cwd=root, env=env):
        yield S3Server(url, access, secret)


@contextlib.contextmanager
def mlflow_server(root: Path, prometheus: bool = False) -> Iterator[str]:
    """A real `mlflow server` (SQLite backend, proxied artifacts in a temp dir); yields its URL. With
    `prometheus`, it serves /metrics too (`--expose-prometheus`, as the chart's `metrics.enabled`)."""
    port = free_port()
    exe = Path(sys.executable).parent / "mlflow"
    argv = [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    argv += [
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    if prometheus:
        (root / "prometheus").mkdir(exist_ok=True)
        argv += ["--expose-prometheus", str(root / "prometheus")]
    url = f"http://127.0.0.1:{port}"
    with serve(argv, root / "mlflow-server.log", url + "/health", 120, cwd=root):
        yield url


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    username: str
    password: str
    ca_file: Path | None = None  # TLS mode: the CA (PEM) that signed the server's certificate


@contextlib.contextmanager
def oci_registry(
    root: Path, username: str = "ci", password: str = "", tls: bool = False
) -> Iterator[Registry]:
    """Debian's docker-registry (distribution 2.8) with htpasswd basic auth, on plain HTTP or, with
    TLS, on https with a server certificate for 127.0.0.1 and localhost signed by a throwaway CA of
    its own (tls_ca; Registry.ca_file is that CA, what `helm --ca-file` takes); yields where it
    listens and its credentials."""
    import bcrypt

    exe = shutil.which("docker-registry")
    if exe is None:
        raise RuntimeError("docker-registry is not installed: run `make system-deps`")
    password = password or os.urandom(9).hex()
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    (root / "htpasswd").write_text(
        f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n"
    )
    certs = tls_ca(root / "tls", hosts=("127.0.0.1", "localhost")) if tls else None
    tls_config = f", tls: {{certificate: {certs.cert}, key: {certs.key}}}" if certs else ""
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}', headers: {{X-Content-Type-Options: [nosniff]}}{tls_config}}}\n"
        f"auth: {{htpasswd: {{realm: helm-mlops-test, path: {root / 'htpasswd'}}}}}\n"
    )
    scheme = "https" if certs else "http"
    context = ssl.create_default_context(cafile=str(certs.ca)) if certs else None
    with serve(
        [exe, "serve", str(root / "config.yml")],
        root / "registry.log",
        f"{scheme}://127.0.0.1:{port}/",
        60,
        context=context,
    ):
        yield Registry(f"127.0.0.1:{port}", username, password, certs.ca if certs else None)


def http_json(url: str, body: Any = None, raw: bytes | None = None, timeout: float = 60) -> tuple[int, Any]:
    """A JSON request (POST when there is a body) and the status with the decoded answer, errors too."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@contextlib.contextmanager
def runtime_server(
    model: Path | str,
    *args: str,
    name: str = "iris",
    python: str | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[str]:
    """`helm-mlops runtime serve` on a free port, once ready (503 until the model is in); stopped with
    SIGTERM as a pod is. The server's output goes to `log` (a temp file by default)."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "helm-mlops")
    argv = [exe, "runtime", "serve", "--model", str(model), "--port", str(port), "--name", name, *args]
    if python:
        argv += ["--python", python]
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"runtime-{port}.log"
    proc = subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v2/health/ready", timeout=120, proc=proc, log=log)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
