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
needs no boto3 and runs in the stock python image. Credentials come from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and are never printed."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


def log(message: str) -> None:
    print(f"[fetch-model] {message}", file=sys.stderr, flush=True)


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def s3_request(endpoint: str, region: str, bucket: str, key: str) -> urllib.request.Request:
    """A GET of s3://bucket/key, path-style (works with AWS, MinIO and other S3 endpoints)."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    base = urllib.parse.urlsplit(endpoint.rstrip("/"))
    path = f"{base.path}/{bucket}/{urllib.parse.quote(key, safe='/~')}"
    url = f"{base.scheme}://{base.netloc}{path}"
    if not access or not secret:
        return urllib.request.Request(url)  # a public bucket
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": base.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amz_date}
    token = os.environ.get("AWS_SESSION_TOKEN")
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["GET", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, "UNSIGNED-PAYLOAD"]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_bytes = _sign(_sign(_sign(_sign(f"AWS4{secret}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}"
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


def build_opener(ca_bundle: Path | None = None) -> urllib.request.OpenerDirector:
    """Redirects as above; https verified against CA_BUNDLE alone when given, else the system CAs."""
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    return urllib.request.build_opener(Redirects, urllib.request.HTTPSHandler(context=context))


OPENER = build_opener()
_ETAG_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')


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


# What an S3 endpoint's error <Code> means for the chart's values (the body never holds credentials).
_S3_HINTS = {
    "SignatureDoesNotMatch": "the request's signature does not verify (a wrong secret access key?): "
    "check the keys in model.source.s3.existingSecret",
    "InvalidAccessKeyId": "the endpoint does not know this access key id: check the keys in "
    "model.source.s3.existingSecret",
    "AccessDenied": "these credentials may not read the object: check the bucket policy, or the keys in "
    "model.source.s3.existingSecret",
    "NoSuchBucket": "check model.source.s3.bucket",
    "NoSuchKey": "check model.source.s3.key",
    "RequestTimeTooSkewed": "the pod's clock is too far from the endpoint's",
}


def s3_error(exc: urllib.error.HTTPError) -> str:
    """': <Code>: what to fix' from an S3 error response's XML body, or '' for anything else."""
    try:
        body = exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    match = re.search(r"<Code>([A-Za-z]{1,64})</Code>", body)
    if not match:
        return ""
    code = match.group(1)
    return f": {code}: {_S3_HINTS[code]}" if code in _S3_HINTS else f": {code}"


def download(
    request: urllib.request.Request,
    target: Path,
    retries: int = 5,
    max_bytes: int = 0,
    opener: urllib.request.OpenerDirector = OPENER,
) -> None:
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
                    f"[fetch-model] {exc.code} {exc.reason} for {where}{s3_error(exc)}"
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
        download(s3_request(ns.endpoint, ns.region, bucket, key), partial, ns.retries, max_bytes, opener)
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
