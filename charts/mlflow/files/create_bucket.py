"""Creates the artifact bucket in the in-cluster MinIO (helm hook Job). Idempotent: an existing
bucket is left as it is. Uses boto3 from the MLflow "full" image; credentials come from env.

It waits for MinIO to answer (up to MLFLOW_HELM_WAIT_SECONDS), but not for credentials MinIO refuses:
three refusals in a row end the Job at once with the Secret to check, instead of minutes of "waiting"."""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# MinIO's answers to keys it does not know or a secret that does not match: no amount of waiting helps.
REFUSED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidClientTokenId"}


def main() -> int:
    bucket = os.environ["MLFLOW_HELM_BUCKET"]
    s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    deadline = time.monotonic() + float(os.environ.get("MLFLOW_HELM_WAIT_SECONDS", "300"))
    refusals = 0
    while True:
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            break
        except (BotoCoreError, ClientError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            refusals = refusals + 1 if code in REFUSED else 0
            if refusals >= 3:
                print(
                    f"MinIO refuses the credentials ({code}): the keys this Job reads (artifactStore.minio"
                    ".existingSecret and its existingSecretAccessKeyKey/existingSecretSecretKeyKey, or the "
                    "generated Secret) must be the root user and password MinIO runs with"
                )
                return 1
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
