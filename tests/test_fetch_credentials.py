"""Where the model fetcher (charts/inference-service/files/fetch_model.py, the fetch-model init container)
gets S3 credentials, run for real: static keys (with a session token), web identity (IRSA) exchanged at
moto's STS for temporary keys, the container-credentials endpoint of EKS Pod Identity and ECS (a local
server that checks the token), and nothing at all (an unsigned request, whose 403 says what to
configure, from a local server and from MinIO). moto accepts any signature, so a recording proxy in
front of it keeps what the fetcher really sent: the S3 request must carry the session token STS handed
out and be signed with its keys (the signature recomputed by botocore). MinIO verifies signatures and
session tokens: temporary keys from its own STS download the model as static keys and through a
container-credentials endpoint."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.charts import CHARTS, find, template, template_error
from tests.support.podrun import LocalPod
from tests.support.servers import minio, minio_binary, moto_s3

pytestmark = pytest.mark.real
CHART = CHARTS / "inference-service"
FETCH = CHART / "files" / "fetch_model.py"
MODEL = os.urandom(4096)
PIN = hashlib.sha256(MODEL).hexdigest()
ROLE = "arn:aws:iam::123456789012:role/model-reader"
AUTH_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answer: bytes = b""


@dataclass
class Recorder:
    url: str
    seen: list[Seen] = field(default_factory=list)


@contextlib.contextmanager
def recording_proxy(upstream: str) -> Iterator[Recorder]:
    """A reverse proxy on 127.0.0.1 in front of UPSTREAM that keeps every request and its answer."""
    target = urllib.parse.urlsplit(upstream)
    recorder = Recorder("")

    class H(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            item = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            recorder.seen.append(item)
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            item.answer = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(item.answer)))
            self.end_headers()
            self.wfile.write(item.answer)
            conn.close()

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def local_server(handle: Handler) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A plain HTTP server on 127.0.0.1 answering with HANDLE; yields its URL and the requests' headers."""
    seen: list[dict[str, str]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
            handle(self)

        do_GET = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def answer(status: int, body: bytes, content_type: str = "application/xml") -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def fetch(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """fetch_model.py with ENV as the only AWS_* variables (nothing inherited from the test run)."""
    base = {k: v for k, v in os.environ.items() if k not in AUTH_ENV and not k.endswith(("_PROXY", "_proxy"))}
    argv = [sys.executable, str(FETCH), "--dest", str(tmp_path / "model"), "--file", "m.onnx"]
    return subprocess.run(
        [*argv, "--retries", "1", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        check=False,
        timeout=120,
    )


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Recorder]:
    """moto (S3 and STS on one port) holding s3://models/m.onnx, behind a recording proxy."""
    with moto_s3(tmp_path) as endpoint, recording_proxy(endpoint) as recorder:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="y",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="m.onnx", Body=MODEL)
        yield recorder


def s3_get(recorder: Recorder) -> Seen:
    [get] = [s for s in recorder.seen if s.method == "GET" and s.path == "/models/m.onnx"]
    return get


def assert_signed_with(get: Seen, url: str, access: str, secret: str, token: str) -> None:
    """GET carries TOKEN and a SigV4 signature by ACCESS/SECRET, recomputed here by botocore."""
    assert get.headers["x-amz-security-token"] == token
    authorization = get.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={access}/"), authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    request = AWSRequest(
        method="GET", url=url + get.path, headers={k: get.headers[k] for k in signed if k != "host"}
    )
    request.context["timestamp"] = get.headers["x-amz-date"]
    auth = S3SigV4Auth(Credentials(access, secret, token), "s3", "us-east-1")
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert authorization.endswith(f"Signature={signature}")


def test_static_keys_sign_with_the_session_token_and_come_first(s3: Recorder, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("web-identity-token-never-used")
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDSTATIC",
        "AWS_SECRET_ACCESS_KEY": "static/secret+key",
        "AWS_SESSION_TOKEN": "static-session-token",
        # Configured too, but static keys win: STS and the container endpoint are never asked.
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": ROLE,
        "AWS_ENDPOINT_URL_STS": s3.url,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds",
    }
    result = fetch(tmp_path, "--s3", "models/m.onnx", "--endpoint", s3.url, "--sha256", PIN, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "m.onnx").read_bytes() == MODEL
    assert [s.method for s in s3.seen] == ["GET"]  # no STS call
    assert_signed_with(s3_get(s3), s3.url, "AKIDSTATIC", "static/secret+key", "static-session-token")
    assert "static keys from the environment" in result.stderr
    assert "static/secret+key" not in result.stderr and "static-session-token" not in result.stderr


def test_web_identity_is_exchanged_at_sts_for_temporary_keys(s3: Recorder, tmp_path: Path) -> None:
    """IRSA: the projected token goes to STS AssumeRoleWithWebIdentity (unsigned, in the POST body);
    the S3 request is signed with the keys STS returned and carries its session token. The chart's
    model.source.s3.stsEndpointUrl and env reach the rendered fetch-model container."""
    jwt = "eyJhbGciOiJSUzI1NiJ9." + os.urandom(24).hex()
    token_file = tmp_path / "token"
    token_file.write_text(jwt + "\n")
    values = {
        "model": {
            "sha256": PIN,
            "allowInsecureHttp": True,
            "source": {
                "type": "s3",
                "s3": {
                    "endpointUrl": "http://minio.ml.svc:9000",
                    "stsEndpointUrl": "http://sts.ml.svc:9000",
                    "bucket": "models",
                    "key": "m.onnx",
                },
            },
        },
        # What EKS's webhook injects for an eks.amazonaws.com/role-arn annotation, given here through
        # the chart's env (which must reach the init container).
        "env": [
            {"name": "AWS_ROLE_ARN", "value": ROLE},
            {"name": "AWS_ROLE_SESSION_NAME", "value": "fetch-test"},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/token"},
        ],
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    container = next(c for c in spec["initContainers"] if c["name"] == "fetch-model")
    pod = LocalPod(
        docs,
        tmp_path / "pod",
        host_map={
            "http://minio.ml.svc:9000": s3.url,
            "http://sts.ml.svc:9000": s3.url,
            "/var/run/secrets/eks.amazonaws.com/token": str(token_file),
        },
    )
    result = pod.run(spec, container)
    assert result.returncode == 0, result.stderr
    assert (pod.mounts["/opt/helm-mlops/model"] / "m.onnx").read_bytes() == MODEL

    sts, get = s3.seen
    assert (sts.method, sts.path) == ("POST", "/") and "authorization" not in sts.headers
    form = urllib.parse.parse_qs(sts.body.decode())
    assert form == {
        "Action": ["AssumeRoleWithWebIdentity"],
        "Version": ["2011-06-15"],
        "RoleArn": [ROLE],
        "RoleSessionName": ["fetch-test"],
        "WebIdentityToken": [jwt],
    }
    ns = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
    creds = ET.fromstring(sts.answer).find(".//sts:Credentials", ns)
    assert creds is not None
    issued = {child.tag.split("}")[1]: child.text or "" for child in creds}
    assert_signed_with(get, s3.url, issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
    assert f"web identity (AWS_ROLE_ARN {ROLE} through STS)" in result.stderr
    for secret in (jwt, issued["SecretAccessKey"], issued["SessionToken"]):
        assert secret not in result.stderr + result.stdout


STS_DENIED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
    b"</Error><RequestId>1</RequestId></ErrorResponse>"
)


def test_sts_refusals_and_plain_http_are_one_line(tmp_path: Path) -> None:
    jwt = "eyJ." + os.urandom(12).hex()
    (tmp_path / "token").write_text(jwt)
    env = {"AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "token"), "AWS_ROLE_ARN": ROLE}
    with local_server(answer(403, STS_DENIED)) as (sts, seen):
        args = ["--s3", "models/m.onnx", "--endpoint", "http://127.0.0.1:9", "--sha256", PIN]
        plain = fetch(tmp_path, *args, "--sts-endpoint", sts, env=env)
        assert plain.returncode == 1 and not seen  # the token never went over plain http
        assert "STS endpoint" in plain.stderr and "model.source.s3.stsEndpointUrl" in plain.stderr
        denied = fetch(tmp_path, *args, "--allow-insecure-http", env={**env, "AWS_ENDPOINT_URL_STS": sts})
    assert len(seen) == 1 and denied.returncode == 1
    [line] = denied.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"[fetch-model] STS AssumeRoleWithWebIdentity at {sts} for {ROLE}: 403")
    assert "AccessDenied: the role's trust policy does not allow this ServiceAccount" in line
    assert "Traceback" not in denied.stderr and jwt not in denied.stderr
    missing = fetch(tmp_path, *args, env={**env, "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 1 and "AWS_WEB_IDENTITY_TOKEN_FILE=" in missing.stderr
    assert "cannot read the token" in missing.stderr and "Traceback" not in missing.stderr


def test_the_container_credentials_endpoint_with_its_token(s3: Recorder, tmp_path: Path) -> None:
    """EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI with the token file as Authorization
    (ECS: AWS_CONTAINER_AUTHORIZATION_TOKEN); the S3 request is signed with the keys it returned."""
    agent_token = "pod-identity-" + os.urandom(12).hex()
    (tmp_path / "agent-token").write_text(agent_token + "\n")
    issued = {
        "AccessKeyId": "ASIAPODIDENTITY",
        "SecretAccessKey": "pod/identity+secret",
        "Token": "pod-identity-session-" + os.urandom(12).hex(),
        "Expiration": "2099-01-01T00:00:00Z",
    }

    def agent(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != agent_token:
            answer(401, b'{"message": "invalid token"}', "application/json")(h)
        else:
            answer(200, json.dumps(issued).encode(), "application/json")(h)

    with local_server(agent) as (url, seen):
        args = ["--s3", "models/m.onnx", "--endpoint", s3.url, "--sha256", PIN]
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url + "/v1/credentials"}
        ok = fetch(
            tmp_path,
            *args,
            env={**env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "agent-token")},
        )
        assert ok.returncode == 0, ok.stderr
        assert seen[0][":path"] == "/v1/credentials"
        assert_signed_with(s3_get(s3), s3.url, "ASIAPODIDENTITY", "pod/identity+secret", issued["Token"])
        assert "the container-credentials endpoint" in ok.stderr
        for secret in (agent_token, issued["SecretAccessKey"], issued["Token"]):
            assert secret not in ok.stderr

        s3.seen.clear()
        wrong = fetch(tmp_path, *args, env={**env, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "not-the-token"})
        assert wrong.returncode == 1 and not s3.seen  # nothing went to S3
        [line] = wrong.stderr.strip().splitlines()[-1:]
        assert line.startswith(f"[fetch-model] the container-credentials endpoint {url}/v1/credentials: 401")
        assert "EKS Pod Identity association" in line and "not-the-token" not in wrong.stderr

    # Plain http elsewhere than loopback or the agents' addresses would hand the token to anyone.
    far = fetch(tmp_path, *args, env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.255.0.1/creds"})
    assert far.returncode == 1 and "plain http only to loopback" in far.stderr


DENIED = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"


def _assert_unsigned_denied(result: subprocess.CompletedProcess[str], headers: dict[str, str] | None) -> None:
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()[-1:]
    assert (
        "403 Forbidden for http://127.0.0.1:" in line and ": AccessDenied: the request was unsigned" in line
    )
    for words in (
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "model.source.s3.existingSecret",
        "eks.amazonaws.com/role-arn",
        "EKS Pod Identity",
    ):
        assert words in line, line
    assert "Traceback" not in result.stderr and "retrying" not in result.stderr
    if headers is not None:
        assert "authorization" not in headers


def test_an_unsigned_request_refused_says_what_to_configure(tmp_path: Path) -> None:
    with local_server(answer(403, DENIED)) as (url, seen):
        result = fetch(tmp_path, "--s3", "models/m.onnx", "--endpoint", url, "--sha256", PIN, env={})
    assert len(seen) == 1
    _assert_unsigned_denied(result, seen[0])
    assert "S3 credentials: none found" in result.stderr


def test_minio_verifies_temporary_keys_and_refuses_unsigned_requests(tmp_path: Path) -> None:
    """MinIO checks every signature and session token: temporary keys from its own STS (AssumeRole)
    download the model given as static keys with AWS_SESSION_TOKEN and from a container-credentials
    endpoint; a wrong session token is refused; an unsigned request to the private bucket gets the 403
    that says what to configure, and nothing is written."""
    with minio(minio_binary(), tmp_path / "minio") as server:
        root = {"aws_access_key_id": server.access_key, "aws_secret_access_key": server.secret_key}
        client = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", **root)
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="m.onnx", Body=MODEL)
        sts = boto3.client("sts", endpoint_url=server.url, region_name="us-east-1", **root)
        temporary = sts.assume_role(RoleArn="arn:xxx:xxx:xxx:xxxx", RoleSessionName="fetch-test")[
            "Credentials"
        ]
        args = ["--s3", "models/m.onnx", "--endpoint", server.url, "--sha256", PIN]
        keys = {
            "AWS_ACCESS_KEY_ID": temporary["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": temporary["SecretAccessKey"],
            "AWS_SESSION_TOKEN": temporary["SessionToken"],
        }
        ok = fetch(tmp_path / "static", *args, env=keys)
        assert ok.returncode == 0, ok.stderr
        assert (tmp_path / "static" / "model" / "m.onnx").read_bytes() == MODEL
        wrong = fetch(
            tmp_path / "wrong", *args, env={**keys, "AWS_SESSION_TOKEN": "not" + keys["AWS_SESSION_TOKEN"]}
        )
        assert wrong.returncode == 1 and "403 Forbidden" in wrong.stderr, wrong.stderr
        assert not (tmp_path / "wrong" / "model" / "m.onnx").exists()

        issued = {
            "AccessKeyId": keys["AWS_ACCESS_KEY_ID"],
            "SecretAccessKey": keys["AWS_SECRET_ACCESS_KEY"],
            "Token": keys["AWS_SESSION_TOKEN"],
        }
        with local_server(answer(200, json.dumps(issued).encode(), "application/json")) as (agent, seen):
            env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": agent + "/v1/credentials"}
            through_agent = fetch(tmp_path / "agent", *args, env=env)
        assert seen and through_agent.returncode == 0, through_agent.stderr
        assert (tmp_path / "agent" / "model" / "m.onnx").read_bytes() == MODEL
        for result in (ok, wrong, through_agent):
            assert keys["AWS_SECRET_ACCESS_KEY"] not in result.stderr
            assert keys["AWS_SESSION_TOKEN"] not in result.stderr

        result = fetch(tmp_path / "unsigned", *args, env={})
        _assert_unsigned_denied(result, None)
        assert not (tmp_path / "unsigned" / "model" / "m.onnx").exists()


def test_the_container_endpoint_is_never_asked_through_a_proxy(tmp_path: Path) -> None:
    """HTTP_PROXY points at a closed port: the S3 request (not in NO_PROXY) cannot get through it, the
    request to the container-credentials endpoint (the token with it) does not even try."""
    issued = {"AccessKeyId": "ASIAX", "SecretAccessKey": "s", "Token": "t"}
    with (
        local_server(answer(200, json.dumps(issued).encode(), "application/json")) as (agent, seen),
        local_server(answer(200, MODEL, "application/octet-stream")) as (s3, s3_seen),
    ):
        env = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent + "/v1/credentials",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
        }
        result = fetch(tmp_path, "--s3", "models/m.onnx", "--endpoint", s3, "--sha256", PIN, env=env)
    assert len(seen) == 1 and seen[0][":path"] == "/v1/credentials"  # reached directly
    assert (
        result.returncode == 1 and "Connection refused" in result.stderr and not s3_seen
    )  # S3 via the proxy


def test_the_sts_endpoint_follows_the_region_and_its_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("helm_mlops_fetch_under_test", FETCH)
    assert spec and spec.loader
    fetcher = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fetcher)  # its dataclass looks itself up there
    spec.loader.exec_module(fetcher)
    for name in AUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    assert fetcher.sts_endpoint("", "eu-west-1") == "https://sts.eu-west-1.amazonaws.com"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert fetcher.sts_endpoint("", "eu-west-1") == "https://sts.us-west-2.amazonaws.com"
    monkeypatch.setenv("AWS_REGION", "cn-north-1")  # EKS's webhook sets it; China has its own domain
    assert fetcher.sts_endpoint("", "eu-west-1") == "https://sts.cn-north-1.amazonaws.com.cn"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "https://sts.example")
    assert fetcher.sts_endpoint("", "eu-west-1") == "https://sts.example"
    assert fetcher.sts_endpoint("https://sts.chart", "eu-west-1") == "https://sts.chart"  # the chart's value


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_env_and_env_from_reach_the_fetch_container(helm_name: str, tmp_path: Path) -> None:
    env: list[dict[str, Any]] = [
        {"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
    ]
    env_from = [{"secretRef": {"name": "aws-extra"}}, {"configMapRef": {"name": "proxy"}}]
    for source in (
        {"type": "s3", "s3": {"bucket": "b", "key": "m.onnx", "existingSecret": "s3"}},
        {"type": "https", "https": {"url": "https://models.example/m.onnx"}},
    ):
        values = {"model": {"source": source}, "env": env, "envFrom": env_from}
        docs = template(CHART, values=values, helm_name=helm_name, tmp_dir=tmp_path)
        spec = find(docs, "Deployment")["spec"]["template"]["spec"]
        fetch_model = next(c for c in spec["initContainers"] if c["name"] == "fetch-model")
        names = [e["name"] for e in fetch_model["env"]]
        expected = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] if source["type"] == "s3" else []
        assert names == [*expected, "HTTPS_PROXY", "HF_TOKEN"]  # the chart's own first, the user's last
        assert fetch_model["env"][-2:] == env and fetch_model["envFrom"] == env_from
        server = next(c for c in spec["containers"] if c["name"] == "server")
        assert server["envFrom"] == env_from and server["env"][-2:] == env
        # pip in install-deps goes through the same proxy.
        install = next(c for c in spec["initContainers"] if c["name"] == "install-deps")
        assert install["env"][-2:] == env and install["envFrom"] == env_from
    irsa = {
        "model": {
            "source": {
                "type": "s3",
                "s3": {"bucket": "b", "key": "m.onnx", "stsEndpointUrl": "https://sts.internal"},
            }
        },
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": ROLE}},
    }
    docs = template(CHART, values=irsa, helm_name=helm_name, tmp_dir=tmp_path)
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    fetch_model = next(c for c in spec["initContainers"] if c["name"] == "fetch-model")
    assert "env" not in fetch_model and "envFrom" not in fetch_model  # nothing the webhook's env would fight
    command = fetch_model["command"]
    assert command[command.index("--sts-endpoint") + 1] == "https://sts.internal"
    assert find(docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_a_plain_http_sts_endpoint_needs_an_explicit_yes(helm_name: str, tmp_path: Path) -> None:
    s3 = {"bucket": "b", "key": "m.onnx", "stsEndpointUrl": "http://sts.internal"}
    values: dict[str, Any] = {"model": {"sha256": PIN, "source": {"type": "s3", "s3": s3}}}
    message = template_error(CHART, values, helm_name, tmp_path)
    assert "model.source.s3.stsEndpointUrl: plain http exposes the service account token" in message
    assert "model.allowInsecureHttp=true" in message
    values["model"]["allowInsecureHttp"] = True
    template(CHART, values=values, helm_name=helm_name, tmp_dir=tmp_path)  # accepted when said so
