"""`helm-mlops runtime predict`: one request to a served model, shown with its status and latency (the
seed product's "test interface")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from generator.errors import ToolError, UserError


def predict(url: str, data: str, name: str | None) -> Iterator[str]:
    import requests

    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise UserError(
            f"not JSON: {exc}", field="--input", hint='e.g. --input "[5.1, 3.5, 1.4, 0.2]"'
        ) from None
    if not isinstance(rows, list) or not rows:
        raise UserError("must be a JSON list: one row or a list of rows", field="--input")
    if name:
        batch = rows if isinstance(rows[0], list) else [rows]
        flat = [v for row in batch for v in row]
        body = {
            "inputs": [
                {"name": "input-0", "shape": [len(batch), len(batch[0])], "datatype": "FP64", "data": flat}
            ]
        }
        endpoint = f"{url.rstrip('/')}/v2/models/{name}/infer"
    else:
        body, endpoint = {"input": rows}, f"{url.rstrip('/')}/predict"
    started = time.perf_counter()
    try:
        response = requests.post(endpoint, json=body, timeout=60)
    except requests.RequestException as exc:
        raise ToolError(f"{endpoint} is not reachable: {exc}") from None
    latency = (time.perf_counter() - started) * 1000
    yield f"POST {endpoint} -> {response.status_code} in {latency:.1f} ms"
    try:
        yield json.dumps(response.json(), indent=2)
    except ValueError:
        yield response.text
