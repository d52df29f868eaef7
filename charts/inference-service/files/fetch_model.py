"""Fetch a model into the pod before the server starts (the inference-service chart's init container).

    fetch_model.py --dest DIR --file NAME [--sha256 HEX] (--url URL | --s3 BUCKET/KEY | --copy PATH)

Downloads go to a temporary name and are renamed into place only once complete and verified, so the
server container never starts with half a model. Standard library only: S3 requests are signed here
(AWS Signature Version 4), so the init container needs no boto3 and runs in the stock python image.
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and are never
printed."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import os
import shutil
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


def download(request: urllib.request.Request, target: Path, retries: int = 5) -> None:
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(request, timeout=60) as response, target.open("wb") as out:
                shutil.copyfileobj(response, out, CHUNK)
            return
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):  # retrying cannot help
                raise SystemExit(f"[fetch-model] {exc.code} {exc.reason} for {request.full_url}") from None
            reason = f"{exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            reason = str(exc)
        if attempt == retries:
            raise SystemExit(f"[fetch-model] giving up on {request.full_url}: {reason}")
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
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="http(s) URL")
    source.add_argument("--s3", help="BUCKET/KEY, with --endpoint and --region")
    source.add_argument("--copy", type=Path, help="a file mounted into the pod (inline ConfigMap)")
    p.add_argument("--endpoint", default="https://s3.amazonaws.com")
    p.add_argument("--region", default="us-east-1")
    ns = p.parse_args(argv)
    ns.dest.mkdir(parents=True, exist_ok=True)
    final = ns.dest / ns.file
    partial = ns.dest / f".{ns.file}.partial"
    started = time.monotonic()
    if ns.copy is not None:
        shutil.copyfile(ns.copy, partial)
        where = str(ns.copy)
    elif ns.url:
        where = urllib.parse.urlsplit(ns.url)._replace(query="").geturl()  # a query may hold a token
        download(urllib.request.Request(ns.url), partial)
    else:
        bucket, _, key = ns.s3.partition("/")
        if not bucket or not key:
            raise SystemExit("[fetch-model] --s3 must be BUCKET/KEY")
        where = f"s3://{bucket}/{key} at {ns.endpoint}"
        download(s3_request(ns.endpoint, ns.region, bucket, key), partial)
    if ns.sha256:
        actual = sha256_of(partial)
        if actual != ns.sha256.lower():
            partial.unlink()
            raise SystemExit(f"[fetch-model] sha256 mismatch for {where}: got {actual}, expected {ns.sha256}")
    os.replace(partial, final)
    log(f"{where} -> {final} ({final.stat().st_size} bytes, {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
