"""`helm-mlops runtime serve` and `runtime predict`.

serve: the inference runtime the chart runs in pods, run here. The runtime is the chart's own code
(charts/inference-service/files/hm_runtime), started with `python -m hm_runtime` in this interpreter
or in one given with --python (for a venv that has torch or keras).

predict: one request to a served model, shown with its status and latency (the seed product's "test
interface")."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from generator.errors import ToolError, UserError
from generator.paths import chart_file


def runtime_root() -> Path:
    """The folder holding the hm_runtime package (the chart's files/)."""
    return chart_file("inference-service")


@dataclass(frozen=True)
class ServeRequest:
    model: str
    format: str | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    name: str = "model"
    trust_model: bool = False
    sha256: str | None = None
    python: str | None = None
    batching: bool = True
    max_batch_rows: int | None = None  # None: the runtime's default for the device it resolves
    max_batch_wait_ms: float = 0.0
    device: str = "auto"
    reference: str | None = None  # model monitoring: a sample of training rows (or an MLflow artifact URI)
    monitor_sample_rate: float | None = None
    feedback: bool = False
    # None: the runtime's default; 0: `auto`, said explicitly (both: the CPUs it may use, 1 with monitoring)
    workers: int | None = None


def _runtime_module(name: str) -> ModuleType:
    """One of the runtime's modules, loaded from the chart, so the CLI and the pods agree."""
    path = runtime_root() / "hm_runtime" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"helm_mlops_runtime_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@cache
def _models() -> ModuleType:
    """The runtime's models.py: its formats and trust rule."""
    return _runtime_module("models")


@cache
def _devices() -> ModuleType:
    """The runtime's device.py: the --device values it takes (resolved by the runtime at start, in the
    interpreter that has the model's framework)."""
    return _runtime_module("device")


def check(req: ServeRequest) -> str:
    """The model's format, after the checks that name the option to fix."""
    uri = req.model.startswith(("models:/", "runs:/"))
    path = Path(req.model)
    if not uri and not path.exists():
        raise UserError(
            f"{req.model} does not exist",
            field="--model",
            hint="pass a model file, an MLflow model dir or models:/ URI",
        )
    models = _models()
    formats = ", ".join(models.FORMATS)
    if req.format is not None and req.format not in models.FORMATS:
        raise UserError(f"unknown format {req.format!r}", field="--format", hint=f"use one of {formats}")
    fmt: str | None = req.format or (
        "mlflow" if uri or (path / "MLmodel").is_file() else models.EXTENSIONS.get(path.suffix.lower())
    )
    if fmt is None:
        raise UserError(
            f"cannot tell the format of {req.model}",
            field="--format",
            hint=f"pass one of {formats}",
        )
    if req.sha256 is not None and (
        len(req.sha256) != 64 or not all(c in "0123456789abcdefABCDEF" for c in req.sha256)
    ):
        raise UserError(
            "must be 64 hexadecimal characters", field="--sha256", hint="sha256sum MODEL_FILE | cut -d' ' -f1"
        )
    # The runtime's own trust rule (hm_runtime/models.py), so the CLI refuses exactly what the pods do.
    try:
        if fmt == "mlflow" and req.sha256:
            raise models.ModelError("an MLflow model has no single file that a sha256 pin could verify")
        if fmt in models.CODE_FORMATS:
            models.require_trust(req.model, fmt, req.trust_model, req.sha256)
    except models.ModelError as exc:
        raise UserError(
            str(exc),
            field="--sha256" if req.sha256 else "--trust-model",
            hint="see `helm-mlops runtime serve --help`",
        ) from None
    devices = _devices()
    try:
        device = devices.parse(req.device)
    except devices.DeviceError as exc:
        raise UserError(
            str(exc), field="--device", hint="--device auto (a GPU when one can be used), cpu, or cuda:0"
        ) from None
    if device.startswith("cuda") and fmt in devices.CPU_ONLY:
        # No machine can change this: refused here, before anything is started or printed.
        _, why = devices.usable_gpus(fmt, devices.Facts())
        raise UserError(
            f"{req.device} cannot be used: {why}", field="--device", hint="--device auto or --device cpu"
        )
    if req.workers is not None and req.workers < 0:
        raise UserError(
            f"must be 1 or more (or auto), not {req.workers}",
            field="--workers",
            hint="--workers 1 or more, or leave it out for one per CPU this machine lets the runtime use",
        )
    if req.workers is not None and req.workers > 1 and (req.reference or req.feedback):
        # The runtime exits 2 for this too: the monitor's windows and the feedback's prediction memory
        # are per process, so several workers would report wrong totals.
        given = " and ".join(
            f for f, on in (("--reference", req.reference), ("--feedback", req.feedback)) if on
        )
        raise UserError(
            f"--workers {req.workers} with {given}: model monitoring keeps one worker (its windows and "
            "prediction memory are per process, so several workers would report wrong totals)",
            field="--workers",
            hint=f"leave --workers out (1 with {given}) or pass --workers 1",
        )
    if req.python is not None and not Path(req.python).is_file():
        raise UserError(
            f"{req.python} does not exist",
            field="--python",
            hint="pass the python of a venv with the model's framework",
        )
    _check_server_packages(req.python)
    return str(fmt)


SERVER_PACKAGES = ("starlette", "uvicorn", "orjson", "prometheus_client", "numpy")


def _check_server_packages(python: str | None) -> None:
    """The runtime's own packages must import in the interpreter that will serve."""
    if python is None:
        missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise UserError(
                f"this helm-mlops lacks the serving packages ({', '.join(missing)})",
                field="runtime serve",
                hint="pip install 'helm-mlops[serve]', or pass --python of a venv that has them",
            )
        return
    import subprocess

    probe = (
        "import importlib.util,sys; "
        "print(' '.join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))"
    )
    try:
        done = subprocess.run(
            [python, "-c", probe, *SERVER_PACKAGES], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise UserError(
            f"cannot run {python}: {exc.strerror}", field="--python", hint="pass a python interpreter"
        ) from None
    if done.returncode != 0:
        raise UserError(
            f"{python} is not a working python", field="--python", hint="pass a python interpreter"
        )
    if done.stdout.strip():
        raise UserError(
            f"{python} lacks {done.stdout.strip().replace(' ', ', ')}",
            field="--python",
            hint=f"{python} -m pip install starlette 'uvicorn[standard]' orjson prometheus-client numpy",
        )


def argv_env(req: ServeRequest, fmt: str) -> tuple[list[str], dict[str, str]]:
    python = req.python or sys.executable
    argv = [python, "-m", "hm_runtime", "--model", req.model, "--format", fmt, "--name", req.name]
    argv += ["--host", req.host, "--port", str(req.port), "--device", req.device]
    if req.max_batch_rows is not None:
        argv += ["--max-batch-rows", str(req.max_batch_rows)]
    argv += ["--max-batch-wait-ms", str(req.max_batch_wait_ms)]
    if req.trust_model:
        argv.append("--trust-model")
    if req.sha256:
        argv += ["--sha256", req.sha256]
    if not req.batching:
        argv.append("--no-batching")
    if req.reference:
        argv += ["--reference", req.reference]
    if req.monitor_sample_rate is not None:
        argv += ["--monitor-sample-rate", str(req.monitor_sample_rate)]
    if req.feedback:
        argv.append("--feedback")
    if req.workers is not None:
        argv += ["--workers", str(req.workers) if req.workers else "auto"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(runtime_root()), env.get("PYTHONPATH", "")) if p)
    return argv, env


def serve(req: ServeRequest) -> None:
    """Replace this process with the runtime, so signals (Ctrl-C, SIGTERM) reach the server itself."""
    fmt = check(req)
    argv, env = argv_env(req, fmt)
    print(
        f"serving {req.model} ({fmt}) as {req.name!r} on http://{req.host}:{req.port}",
        file=sys.stderr,
        flush=True,
    )
    os.execve(argv[0], argv, env)


ROWS_HINT = (
    'one row: "[5.1, 3.5, 1.4, 0.2]", rows: "[[5.1, 3.5, 1.4, 0.2], [...]]", or a JSON object sent as is'
)


def request_body(data: str, name: str | None, field: str = "--input") -> tuple[str, Any]:
    """The path and JSON body of a prediction request: `/predict` with {"input": rows}, or with a model
    `name` the Open Inference Protocol v2 `infer` with the rows as one FP64 tensor. A JSON object is
    taken as the complete body (the protocol's own form)."""
    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise UserError(
            f"not JSON: {exc}", field=field, hint=f"e.g. {field} '[5.1, 3.5, 1.4, 0.2]'"
        ) from None
    path = f"/v2/models/{name}/infer" if name else "/predict"
    if isinstance(rows, dict):
        return path, rows
    if not isinstance(rows, list) or not rows:
        raise UserError("must be a JSON list: one row or a list of rows", field=field, hint=ROWS_HINT)
    if any(isinstance(r, list) for r in rows) and not all(isinstance(r, list) and r for r in rows):
        raise UserError("mixes rows and single values", field=field, hint=ROWS_HINT)
    if not name:
        return path, {"input": rows}
    batch = rows if isinstance(rows[0], list) else [rows]
    flat = [v for row in batch for v in row]
    tensor = {"name": "input-0", "shape": [len(batch), len(batch[0])], "datatype": "FP64", "data": flat}
    return path, {"inputs": [tensor]}


def send(
    url: str,
    path: str,
    body: Any,
    *,
    field: str = "--input",
    shown: str | None = None,
    session: Any = None,
    unreachable: str = "check --url (for a service in a cluster: helm-mlops predict RELEASE SERVICE)",
) -> Iterator[str]:
    """POST the body and show the status and latency, then the answer; a refused request (4xx) is a
    UserError naming `field`, a failing server (5xx) a ToolError. `shown` replaces the URL in the
    output (a port-forward's local address means nothing to the reader)."""
    import requests

    endpoint = f"{url.rstrip('/')}{path}"
    started = time.perf_counter()
    try:
        response = (session or requests).post(endpoint, json=body, timeout=60)
    except requests.RequestException as exc:
        raise ToolError(
            f"{shown or endpoint} is not reachable ({type(exc).__name__})\n  fix: {unreachable}"
        ) from None
    latency = (time.perf_counter() - started) * 1000
    yield f"POST {shown or endpoint} -> {response.status_code} in {latency:.1f} ms"
    try:
        answer = response.json()
        yield json.dumps(answer, indent=2)
    except ValueError:
        answer = {"error": response.text}
        yield response.text
    if response.status_code >= 400:
        message = answer.get("error", response.reason) if isinstance(answer, dict) else response.reason
        if response.status_code < 500:
            raise UserError(
                f"the server refused the request ({response.status_code}): {message}", field=field
            )
        raise ToolError(f"the server failed ({response.status_code}): {message}")


def predict(url: str, data: str, name: str | None) -> Iterator[str]:
    from generator.values import http_url

    http_url(url, "--url")
    path, body = request_body(data, name)
    yield from send(url, path, body)
