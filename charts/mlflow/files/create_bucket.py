"""Creates the artifact bucket in the in-cluster MinIO (helm hook Job). Idempotent: an existing
bucket is left as it is. Uses boto3 from the MLflow "full" image; credentials come from env."""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    bucket = os.environ["MLFLOW_HELM_BUCKET"]
    s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    deadline = time.monotonic() + float(os.environ.get("MLFLOW_HELM_WAIT_SECONDS", "300"))
    while True:
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            break
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                print(f"gave up waiting for MinIO: {exc}")
                return 1
            print(f"waiting for MinIO: {exc}", flush=True)
            time.sleep(3)
    if bucket in existing:
        print(f"bucket {bucket} exists")
    else:
        s3.create_bucket(Bucket=bucket)
        print(f"created bucket {bucket}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
