"""`helm test` for the MLflow chart: /health answers, the UI page is served (when the UI is on),
then an experiment is created, read back and deleted through the REST API, which exercises the
backend store. Standard library only, so it runs in any Python image.

Environment: MLFLOW_URL (base URL including any static prefix); MLFLOW_CHECK_UI=1 to check the UI;
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD when basic auth is on.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any


def _request(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    url = os.environ["MLFLOW_URL"].rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        token = base64.b64encode(f"{user}:{os.environ['MLFLOW_TRACKING_PASSWORD']}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def main() -> int:
    deadline = time.monotonic() + 120
    while True:
        try:
            status, body = _request("GET", "/health")
        except OSError as exc:
            status, body = 0, str(exc).encode()
        if status == 200:
            break
        if time.monotonic() > deadline:
            print(f"FAIL /health: {status} {body[:200]!r}")
            return 1
        time.sleep(3)
    print("ok   /health")

    if os.environ.get("MLFLOW_CHECK_UI") == "1":
        status, body = _request("GET", "/")
        if status != 200 or b"<html" not in body.lower():
            print(f"FAIL UI page: {status} {body[:200]!r}")
            return 1
        print("ok   UI page")

    name = f"helm-test-{uuid.uuid4().hex[:12]}"
    status, body = _request("POST", "/api/2.0/mlflow/experiments/create", {"name": name})
    if status != 200:
        print(f"FAIL create experiment: {status} {body[:300]!r}")
        return 1
    experiment_id = json.loads(body)["experiment_id"]
    print(f"ok   created experiment {name} ({experiment_id})")

    status, body = _request("GET", f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}")
    if status != 200 or json.loads(body)["experiment"]["name"] != name:
        print(f"FAIL read back experiment: {status} {body[:300]!r}")
        return 1
    print("ok   read it back")

    status, body = _request("POST", "/api/2.0/mlflow/experiments/delete", {"experiment_id": experiment_id})
    if status != 200:
        print(f"FAIL delete experiment: {status} {body[:300]!r}")
        return 1
    print("ok   deleted it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
