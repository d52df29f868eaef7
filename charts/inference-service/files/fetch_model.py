"""Fetch a model into the pod before the server starts (the inference-service chart's init container).

    fetch_model.py --dest DIR --file NAME [--sha256 HEX] [--max-size 20Gi] [--allow-insecure-http]
                   [--ca-bundle PEM] (--url URL | --url-env VAR | --s3 BUCKET/KEY | --copy PATH)

Downloads go to a temporary name and are renamed into place only once complete and verified, so the
server container never starts with half a model:
- a body shorter (or longer) than its Content-Length is a failed attempt, and so is an S3 object whose
  single-part ETag (its MD5) does not match what arrived;
- nothing larger than --max-size is written (the model emptyDir has the same sizeLimit);
- an https URL that redirects to http is refused, and plain http (a URL or an S3 endpoint) is refused
  unless the file is pinned with --sha256 or --allow-insecure-http says so;
- https servers are verified against the system CAs, or only against --ca-bundle (the chart's
  model.caBundle) when given; a certificate that does not verify fails at once, without retries;
- credentials (Authorization, the SigV4 headers) never follow a redirect to another origin;
- a 401, 403 or 404 is final, reported with S3's error code and what to fix (SignatureDoesNotMatch:
  the keys in model.source.s3.existingSecret);
- URLs are printed without their query string or user info (a presigned URL's signature is a secret);
  --url-env reads a URL that is itself a secret from the environment (the chart's existingSecret).
Standard library only: S3 requests are signed here (AWS Signature Version 4), so the init container
needs no boto3 and runs in the stock python image. S3 credentials, the first found, as the AWS SDKs look:
1. static keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN);
2. web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME), exchanged
   for temporary keys by STS AssumeRoleWithWebIdentity (an unsigned POST, the token in its body) at
   --sts-endpoint, else AWS_ENDPOINT_URL_STS, else sts.<AWS_REGION, AWS_DEFAULT_REGION or --region>;
3. the container-credentials endpoint (EKS Pod Identity, ECS): AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
   (on 169.254.170.2) or _FULL_URI (plain http only to loopback or the agents' addresses), with
   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN as Authorization, never through a proxy;
4. none: an unsigned request (a public bucket); a 403 then says which sources were looked for.
Keys, tokens and session tokens are never printed; which source was used is."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.sax.saxutils
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


def log(message: str) -> None:
    print(f"[fetch-model] {message}", file=sys.stderr, flush=True)


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str  # a session token (temporary credentials), or ""
    source: str  # where they came from, for messages (never the keys themselves)
    fix: str  # what to check when S3 refuses them


def s3_request(
    endpoint: str, region: str, bucket: str, key: str, creds: Credentials | None
) -> urllib.request.Request:
    """A GET of s3://bucket/key, path-style (works with AWS, MinIO and other S3 endpoints), signed with
    CREDS (AWS Signature Version 4), or unsigned without them (a public bucket)."""
    base = urllib.parse.urlsplit(endpoint.rstrip("/"))
    path = f"{base.path}/{bucket}/{urllib.parse.quote(key, safe='/~')}"
    url = f"{base.scheme}://{base.netloc}{path}"
    if creds is None:
        return urllib.request.Request(url)  # a public bucket
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": base.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amz_date}
    if creds.token:
        headers["x-amz-security-token"] = creds.token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["GET", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, "UNSIGNED-PAYLOAD"]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    secret = creds.secret_key
    key_bytes = _sign(_sign(_sign(_sign(f"AWS4{secret}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    del headers["host"]
    return urllib.request.Request(url, headers=headers)


SENSITIVE = ("authorization", "x-amz-security-token", "x-amz-content-sha256", "x-amz-date", "cookie")
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class FetchError(Exception):
    """A failure that retrying cannot fix."""


def redact(url: str) -> str:
    """The URL without user info and query (a presigned URL's signature, a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_size(text: str) -> int:
    match = re.fullmatch(r"([0-9]+)(|k|M|G|T|Ki|Mi|Gi|Ti)", text.strip())
    if not match:
        raise SystemExit(f"[fetch-model] --max-size {text!r}: use a size like 500Mi or 20Gi")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https down to http, and without credentials to another origin."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and not newurl.startswith("https://"):
            raise FetchError(f"{redact(req.full_url)} redirects to {redact(newurl)}: refusing to leave https")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in SENSITIVE:
                    del new.headers[name]
            for name in list(new.unredirected_hdrs):
                if name.lower() in SENSITIVE:
                    del new.unredirected_hdrs[name]
        return new


def build_opener(ca_bundle: Path | None = None, proxies: bool = True) -> urllib.request.OpenerDirector:
    """Redirects as above; https verified against CA_BUNDLE alone when given, else the system CAs; the
    environment's HTTP(S)_PROXY / NO_PROXY unless PROXIES is false."""
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    handlers: list[urllib.request.BaseHandler] = [Redirects(), urllib.request.HTTPSHandler(context=context)]
    if not proxies:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


OPENER = build_opener()
_ETAG_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')


# The credential chain (the AWS SDKs' order, those that apply in a pod): static keys from the environment,
# web identity (IRSA) through STS, the container-credentials endpoint (EKS Pod Identity, ECS); else none.
STATIC_FIX = "the keys in model.source.s3.existingSecret"
LOOKED_FOR = (
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, "
    "AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI"
)
UNSIGNED_DENIED = (
    f"the request was unsigned: no S3 credentials were found (looked for {LOOKED_FOR}); "
    "for a private bucket set model.source.s3.existingSecret, an IRSA role "
    "(serviceAccount.annotations eks.amazonaws.com/role-arn) or an EKS Pod Identity association for "
    "the chart's ServiceAccount"
)
ECS_AGENT = "http://169.254.170.2"
# Where a container-credentials endpoint may listen over plain http (the SDKs' rule): loopback, the ECS
# agent and the EKS Pod Identity agent. Anything else must be https: the request carries a token.
_AGENT_HOSTS = {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"}
_STS_VERSION = "2011-06-15"


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _read_token(variable: str) -> str:
    path = _env(variable)
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise FetchError(f"{variable}={path}: cannot read the token ({exc.strerror})") from None
    if not token:
        raise FetchError(f"{variable}={path}: the token file is empty")
    return token


def _xml_field(body: str, name: str) -> str:
    match = re.search(f"<{name}>([^<]*)</{name}>", body)
    return xml.sax.saxutils.unescape(match.group(1)).strip() if match else ""


def _call(
    request: urllib.request.Request,
    opener: urllib.request.OpenerDirector,
    retries: int,
    what: str,
    refused: Callable[[urllib.error.HTTPError], str],
) -> bytes:
    """The body of a small credentials request; 4xx is final (REFUSED says why), the rest is retried."""
    for attempt in range(1, retries + 1):
        try:
            with opener.open(request, timeout=30) as response:
                body: bytes = response.read(1 << 20)
                return body
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                raise FetchError(f"{what}: {exc.code} {exc.reason}{refused(exc)}") from None
            reason = f"{exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise FetchError(
                    f"{what}: the server's TLS certificate does not verify ({exc.reason.verify_message}): "
                    "set model.caBundle to the CA that signed it"
                ) from None
            reason = str(exc.reason)
        except (OSError, ValueError) as exc:
            reason = str(exc)
        if attempt == retries:
            raise FetchError(f"{what}: giving up: {reason}")
        log(f"{what}: attempt {attempt} failed ({reason}); retrying")
        time.sleep(min(2**attempt, 30))
    raise FetchError(f"{what}: no attempt made (--retries {retries})")


_STS_HINTS = {
    "AccessDenied": "the role's trust policy does not allow this ServiceAccount: it must trust the "
    "cluster's OIDC provider with the condition sub = system:serviceaccount:NAMESPACE:SERVICEACCOUNT",
    "InvalidIdentityToken": "STS does not accept the token: register the cluster's OIDC provider in IAM "
    "(audience sts.amazonaws.com)",
    "ExpiredTokenException": "the service account token has expired",
    "IDPCommunicationError": "STS could not reach the cluster's OIDC issuer",
}


def _sts_refused(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(8192).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    code = _xml_field(body, "Code")
    if not code:
        return ""
    return f": {code}: {_STS_HINTS.get(code, _xml_field(body, 'Message')[:200] or 'see the STS error code')}"


def sts_endpoint(override: str, region: str) -> str:
    """Where AssumeRoleWithWebIdentity goes: --sts-endpoint (model.source.s3.stsEndpointUrl), else
    AWS_ENDPOINT_URL_STS, else the regional endpoint of AWS_REGION / AWS_DEFAULT_REGION / --region."""
    if override or _env("AWS_ENDPOINT_URL_STS"):
        return override or _env("AWS_ENDPOINT_URL_STS")
    region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or region
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


def web_identity(
    endpoint: str, opener: urllib.request.OpenerDirector, retries: int, allow_http: bool
) -> Credentials:
    """STS AssumeRoleWithWebIdentity with the projected token (IRSA): an unsigned POST of the Query API,
    the token in the body (never in a URL), the temporary credentials parsed from the XML answer."""
    role = _env("AWS_ROLE_ARN")
    token = _read_token("AWS_WEB_IDENTITY_TOKEN_FILE")
    if endpoint.startswith("http://") and not allow_http:
        raise FetchError(
            f"the STS endpoint {redact(endpoint)} is plain http and the request carries the service account "
            "token: use https (model.source.s3.stsEndpointUrl) or set model.allowInsecureHttp=true"
        )
    session = _env("AWS_ROLE_SESSION_NAME") or f"helm-mlops-fetch-model-{int(time.time())}"
    form = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": _STS_VERSION,
        "RoleArn": role,
        "RoleSessionName": session,
        "WebIdentityToken": token,
    }
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        method="POST",
    )
    what = f"STS AssumeRoleWithWebIdentity at {redact(endpoint)} for {role}"
    body = _call(request, opener, retries, what, _sts_refused).decode("utf-8", "replace")
    access, secret, session_token = (
        _xml_field(body, f) for f in ("AccessKeyId", "SecretAccessKey", "SessionToken")
    )
    if not (access and secret and session_token):
        raise FetchError(f"{what}: the answer holds no credentials (not an STS endpoint?)")
    return Credentials(
        access,
        secret,
        session_token,
        source=f"web identity (AWS_ROLE_ARN {role} through STS)",
        fix=f"the policies of the role {role} (s3:GetObject)",
    )


def _agent_url_allowed(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host in _AGENT_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def container_credentials(ca_bundle: Path | None, retries: int) -> Credentials:
    """The container-credentials endpoint (EKS Pod Identity's agent, ECS): a GET with the token from
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN as Authorization; JSON credentials back."""
    relative = _env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    url = ECS_AGENT + relative if relative else _env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if not _agent_url_allowed(url):
        raise FetchError(
            f"AWS_CONTAINER_CREDENTIALS_FULL_URI {redact(url)}: plain http only to loopback or the "
            "ECS/EKS Pod Identity agent's address; use https"
        )
    headers: dict[str, str] = {}
    if _env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"):
        headers["Authorization"] = _read_token("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    elif _env("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        headers["Authorization"] = _env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    what = f"the container-credentials endpoint {redact(url)}"
    # Never through a proxy: the agent is local to the node, and the token must not leave it.
    opener = build_opener(ca_bundle, proxies=False)

    def refused(exc: urllib.error.HTTPError) -> str:
        return (
            ": check the EKS Pod Identity association of the chart's ServiceAccount (or the ECS task role)"
            if exc.code in (401, 403, 404)
            else ""
        )

    body = _call(urllib.request.Request(url, headers=headers), opener, retries, what, refused)
    try:
        answer = json.loads(body)
        access, secret, token = (str(answer[f]) for f in ("AccessKeyId", "SecretAccessKey", "Token"))
    except (ValueError, KeyError, TypeError):
        raise FetchError(
            f"{what}: the answer is not JSON with AccessKeyId, SecretAccessKey and Token"
        ) from None
    return Credentials(
        access,
        secret,
        token,
        source=f"the container-credentials endpoint {redact(url)} (EKS Pod Identity, ECS)",
        fix="the policies of the role associated with the chart's ServiceAccount (s3:GetObject)",
    )


def resolve_credentials(
    region: str, sts: str, ca_bundle: Path | None, retries: int, allow_http: bool
) -> Credentials | None:
    """The first source that is configured, in the SDKs' order; None: sign nothing (a public bucket)."""
    access, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
    if access or secret:
        if not (access and secret):
            missing = "AWS_SECRET_ACCESS_KEY" if access else "AWS_ACCESS_KEY_ID"
            raise FetchError(f"{missing} is empty while the other key is set: check {STATIC_FIX}")
        return Credentials(
            access, secret, _env("AWS_SESSION_TOKEN"), "static keys from the environment", STATIC_FIX
        )
    if _env("AWS_WEB_IDENTITY_TOKEN_FILE") and _env("AWS_ROLE_ARN"):
        endpoint = sts_endpoint(sts, region)
        return web_identity(endpoint, build_opener(ca_bundle), retries, allow_http)
    if _env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or _env("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return container_credentials(ca_bundle, retries)
    return None


def _copy(response: object, target: Path, max_bytes: int) -> tuple[int, str]:
    """Stream the body to `target`; returns its size and MD5."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with target.open("wb") as out:
        while block := response.read(CHUNK):  # type: ignore[attr-defined]
            size += len(block)
            if max_bytes and size > max_bytes:
                raise FetchError(
                    f"the model is larger than --max-size ({max_bytes} bytes): refusing the rest"
                )
            md5.update(block)
            out.write(block)
    return size, md5.hexdigest()


# What an S3 endpoint's error <Code> means for the chart's values (the body never holds credentials);
# {fix} is what to check for the credentials in use.
_S3_HINTS = {
    "SignatureDoesNotMatch": "the request's signature does not verify (a wrong secret access key?): "
    "check {fix}",
    "InvalidAccessKeyId": "the endpoint does not know this access key id: check {fix}",
    "AccessDenied": "these credentials may not read the object: check the bucket policy, or {fix}",
    "InvalidToken": "the endpoint does not accept the session token: check {fix}",
    "ExpiredToken": "the session token has expired: check {fix}",
    "NoSuchBucket": "check model.source.s3.bucket",
    "NoSuchKey": "check model.source.s3.key",
    "RequestTimeTooSkewed": "the pod's clock is too far from the endpoint's",
}


def s3_code(exc: urllib.error.HTTPError) -> str:
    """The <Code> of an S3 error response's XML body, or ''."""
    try:
        body = exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    match = re.search(r"<Code>([A-Za-z]{1,64})</Code>", body)
    return match.group(1) if match else ""


def s3_error(exc: urllib.error.HTTPError, fix: str = STATIC_FIX, denied: str = "") -> str:
    """': <Code>: what to fix' from an S3 error response, or '' for anything else. DENIED replaces the
    hint of a 401/403 (an unsigned request: what to configure)."""
    code = s3_code(exc)
    if denied and exc.code in (401, 403):
        return f"{': ' + code if code else ''}: {denied}"
    if not code:
        return ""
    return f": {code}: {_S3_HINTS[code].format(fix=fix)}" if code in _S3_HINTS else f": {code}"


def download(
    request: urllib.request.Request,
    target: Path,
    retries: int = 5,
    max_bytes: int = 0,
    opener: urllib.request.OpenerDirector = OPENER,
    fix: str = STATIC_FIX,
    denied: str = "",
) -> None:
    """Stream REQUEST into TARGET with retries; FIX and DENIED shape the message of a refusal (s3_error)."""
    where = redact(request.full_url)
    for attempt in range(1, retries + 1):
        try:
            with opener.open(request, timeout=60) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and max_bytes and int(declared) > max_bytes:
                    raise FetchError(f"{where} is {declared} bytes, more than --max-size ({max_bytes} bytes)")
                size, md5 = _copy(response, target, max_bytes)
                etag = _ETAG_MD5.match(response.headers.get("ETag") or "")
            if declared is not None and size != int(declared):
                raise OSError(f"incomplete body: {size} of {declared} bytes")
            if etag and "x-amz-request-id" in {k.lower() for k in response.headers} and etag.group(1) != md5:
                raise OSError(f"the body's MD5 {md5} is not the object's ETag {etag.group(1)}")
            return
        except FetchError as exc:
            target.unlink(missing_ok=True)
            raise SystemExit(f"[fetch-model] {exc}") from None
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):  # retrying cannot help
                raise SystemExit(
                    f"[fetch-model] {exc.code} {exc.reason} for {where}{s3_error(exc, fix, denied)}"
                ) from None
            reason = f"{exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):  # retrying cannot help either
                target.unlink(missing_ok=True)
                raise SystemExit(
                    f"[fetch-model] {where}: the server's TLS certificate does not verify "
                    f"({exc.reason.verify_message}): set model.caBundle to the CA that signed it"
                ) from None
            reason = str(exc.reason)
        except (OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc))
        target.unlink(missing_ok=True)
        if attempt == retries:
            raise SystemExit(f"[fetch-model] giving up on {where}: {reason}")
        log(f"attempt {attempt} failed ({reason}); retrying")
        time.sleep(min(2**attempt, 30))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fetch_model.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--file", required=True, help="file name of the model in --dest")
    p.add_argument("--sha256", default="")
    p.add_argument("--max-size", default="0", help="refuse models larger than this (e.g. 20Gi; 0: no limit)")
    p.add_argument("--allow-insecure-http", action="store_true", help="allow plain http without a sha256 pin")
    p.add_argument("--retries", type=int, default=5, help="attempts before giving up")
    p.add_argument(
        "--ca-bundle", type=Path, help="PEM CAs that verify https servers (instead of the system's)"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="http(s) URL")
    source.add_argument("--url-env", help="environment variable holding the URL (a secret one)")
    source.add_argument("--s3", help="BUCKET/KEY, with --endpoint and --region")
    source.add_argument("--copy", type=Path, help="a file mounted into the pod (inline ConfigMap)")
    p.add_argument("--endpoint", default="https://s3.amazonaws.com")
    p.add_argument("--region", default="us-east-1")
    p.add_argument(
        "--sts-endpoint",
        default="",
        help="STS endpoint for web identity (default: AWS_ENDPOINT_URL_STS, else the region's)",
    )
    ns = p.parse_args(argv)
    max_bytes = parse_size(ns.max_size)
    url = os.environ.get(ns.url_env, "") if ns.url_env else ns.url
    if ns.url_env and not url:
        raise SystemExit(f"[fetch-model] {ns.url_env} is empty: the Secret holding the model URL is missing")
    remote = url or (ns.endpoint if ns.s3 else "")
    if remote.startswith("http://") and not ns.sha256 and not ns.allow_insecure_http:
        raise SystemExit(
            f"[fetch-model] {redact(remote)} is plain http: anyone on the path can change the model. Pin it "
            "with model.sha256, use https, or set model.allowInsecureHttp=true"
        )
    opener = OPENER
    if ns.ca_bundle is not None:
        try:
            opener = build_opener(ns.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(
                f"[fetch-model] --ca-bundle {ns.ca_bundle}: not a readable PEM bundle ({exc}): "
                "check the key model.caBundle.key of model.caBundle.existingConfigMap"
            ) from None
    ns.dest.mkdir(parents=True, exist_ok=True)
    final = ns.dest / ns.file
    partial = ns.dest / f".{ns.file}.partial"
    started = time.monotonic()
    if ns.copy is not None:
        if max_bytes and ns.copy.stat().st_size > max_bytes:
            raise SystemExit(f"[fetch-model] {ns.copy} is larger than --max-size ({max_bytes} bytes)")
        partial.write_bytes(ns.copy.read_bytes())
        where = str(ns.copy)
    elif url:
        where = redact(url)
        download(urllib.request.Request(url), partial, ns.retries, max_bytes, opener)
    else:
        bucket, _, key = ns.s3.partition("/")
        if not bucket or not key:
            raise SystemExit("[fetch-model] --s3 must be BUCKET/KEY")
        where = f"s3://{bucket}/{key} at {redact(ns.endpoint)}"
        try:
            creds = resolve_credentials(
                ns.region, ns.sts_endpoint, ns.ca_bundle, ns.retries, ns.allow_insecure_http
            )
        except FetchError as exc:
            raise SystemExit(f"[fetch-model] {exc}") from None
        log(
            f"S3 credentials: {creds.source}"
            if creds
            else f"S3 credentials: none found ({LOOKED_FOR}): unsigned"
        )
        download(
            s3_request(ns.endpoint, ns.region, bucket, key, creds),
            partial,
            ns.retries,
            max_bytes,
            opener,
            fix=creds.fix if creds else STATIC_FIX,
            denied="" if creds else UNSIGNED_DENIED,
        )
    if ns.sha256:
        actual = sha256_of(partial)
        if actual != ns.sha256.lower():
            partial.unlink()
            raise SystemExit(f"[fetch-model] sha256 mismatch for {where}: got {actual}, expected {ns.sha256}")
    else:
        log(f"warning: {where} is not pinned (model.sha256): whoever can change it changes what is served")
    os.replace(partial, final)
    log(f"{where} -> {final} ({final.stat().st_size} bytes, {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
