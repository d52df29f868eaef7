"""One client cannot hurt another through the runtime, and no caller learns the server's internals:
the real runtime, batching on, under concurrent traffic.

- Attackers send v2 BYTES tensors (their own strings), NaN and out-of-range numbers while honest
  clients send valid rows: every honest request gets 200 with its own correct answer, every attacker a
  4xx that names the problem, and no response carries another client's data.
- A model that raises on one particular row (a trusted pickle whose error message holds an internal
  path): the batch it joins is retried request by request, so only that request fails, with a 500 that
  names an error id and not the path; the log holds the detail, with tracebacks capped per minute."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.pickled import pickled
from tests.support.servers import free_port, http_json, wait_http

pytestmark = pytest.mark.real
EXE = str(Path(sys.executable).parent / "helm-mlops")

MODEL_CODE = '''
import numpy as np

class Picky:
    """Doubles the first feature; fails on a row whose first value is 42, naming an internal path."""

    n_features_in_ = 4

    def predict(self, rows):
        rows = np.asarray(rows)
        if (rows[:, 0] == 42).any():
            raise ValueError("cannot open /srv/internal/feature-store/secret.parquet")
        return rows[:, 0] * 2
'''


@contextmanager
def picky_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    model = pickled(tmp_path, "picky", MODEL_CODE, "Picky")["Picky"]
    port = free_port()
    log = tmp_path / "server.log"
    argv = [
        EXE,
        "runtime",
        "serve",
        "--model",
        str(model),
        "--trust-model",
        "--port",
        str(port),
    ]
    argv += ["--name", "picky", "--max-batch-wait-ms", "3"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v2/health/ready", timeout=120, proc=proc, log=log)
        yield url, log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


ATTACKS = [
    (
        "v2",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["EVIL-1", "b", "c", "d"]}]},
    ),
    ("v2", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1e300, 1, 1, 1]}]}),
    ("v2", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT8", "data": [1000, 1, 1, 1]}]}),
    ("predict", {"input": [None, 1, 1, 1]}),
    ("predict", {"input": ["1e400", 1, 1, 1]}),
]


def test_no_client_can_fail_or_read_another(tmp_path: Path) -> None:
    with picky_server(tmp_path) as (url, log):

        def honest(i: int) -> tuple[int, Any, float]:
            value = float(i % 40)
            code, body = http_json(url + "/predict", {"input": [value, 0, 0, 0]})
            return code, body, value

        def attack(i: int) -> tuple[int, Any]:
            kind, body = ATTACKS[i % len(ATTACKS)]
            path = "/v2/models/picky/infer" if kind == "v2" else "/predict"
            return http_json(url + path, body)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            good = [pool.submit(honest, i) for i in range(300)]
            bad = [pool.submit(attack, i) for i in range(100)]
            culprits = [pool.submit(http_json, url + "/predict", {"input": [42, 0, 0, 0]}) for _ in range(20)]
            results = [f.result() for f in good]
            attacks = [f.result() for f in bad]
            failures = [f.result() for f in culprits]

        for code, body, value in results:
            assert code == 200 and body["prediction"] == [value * 2], (code, body)
            assert "EVIL" not in json.dumps(body)
        for code, body in attacks:
            assert 400 <= code < 500 and "EVIL" not in json.dumps(body), (code, body)
        for code, body in failures:
            assert code == 500 and "error id" in body["error"] and "/srv/internal" not in body["error"]
        text = log.read_text()
        assert "/srv/internal/feature-store/secret.parquet" in text  # the operator still learns why
        assert text.count("model call failed (error id") == 5  # 20 failures, tracebacks capped at 5 a minute
        assert text.count("Traceback") == 5
