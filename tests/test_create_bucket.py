"""The mlflow chart's bucket Job script (charts/mlflow/files/create_bucket.py) against a real MinIO: it
creates the bucket once and leaves it alone after; credentials MinIO refuses end it at once with the
values to check (it used to report them as "waiting for MinIO" until its 300 s deadline); an endpoint
that never answers ends it at the deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.charts import CHARTS
from tests.support.servers import free_port, minio, minio_binary

SCRIPT = CHARTS / "mlflow" / "files" / "create_bucket.py"


def run(endpoint: str, access: str, secret: str, wait: int) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "MLFLOW_HELM_BUCKET": "mlflow",
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "MLFLOW_HELM_WAIT_SECONDS": str(wait),
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # A subprocess timeout far below `wait`: a script that kept waiting on refused credentials fails here.
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=90
    )


@pytest.mark.real
def test_the_bucket_is_created_once_and_refused_credentials_end_the_job(tmp_path: Path) -> None:
    with minio(minio_binary(), tmp_path / "minio") as s3:
        first = run(s3.url, s3.access_key, s3.secret_key, wait=60)
        assert first.returncode == 0 and "created bucket mlflow" in first.stdout, first.stdout + first.stderr
        again = run(s3.url, s3.access_key, s3.secret_key, wait=60)
        assert again.returncode == 0 and "bucket mlflow exists" in again.stdout, again.stdout + again.stderr

        for access, secret, code in (
            (s3.access_key, "not-the-secret", "SignatureDoesNotMatch"),
            ("nobody", s3.secret_key, "InvalidAccessKeyId"),
        ):
            refused = run(s3.url, access, secret, wait=600)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            last = refused.stdout.strip().splitlines()[-1]
            assert last.startswith(f"MinIO refuses the credentials ({code})"), refused.stdout
            assert "existingSecretAccessKeyKey" in last and secret not in refused.stdout


@pytest.mark.real
def test_an_endpoint_that_never_answers_ends_at_the_deadline() -> None:
    proc = run(f"http://127.0.0.1:{free_port()}", "a", "b", wait=4)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].startswith("gave up waiting for MinIO"), proc.stdout
