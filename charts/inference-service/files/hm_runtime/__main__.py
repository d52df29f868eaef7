"""python -m hm_runtime --model PATH_OR_URI [--format F] [--port P] [--name N] [--trust-model] ...

Every option can also come from the environment (HM_RUNTIME_MODEL, HM_RUNTIME_PORT, ...), which is
how the inference-service chart configures it.

--device auto|cpu|cuda|cuda:N (HM_RUNTIME_DEVICE) is resolved before the server starts
(hm_runtime/device.py): a CUDA device that cannot be used exits with status 2 and says why, as does an
explicit CUDA device the framework then fails to start on while the model loads (the server stops);
under `auto` that model loads on the CPU instead, with a log line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

from hm_runtime import device as devices

log = logging.getLogger("hm_runtime")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"HM_RUNTIME_{name}", default)


def _device(text: str) -> str:
    try:
        devices.parse(text)
        return text  # as given, so messages repeat what was asked
    except devices.DeviceError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (HM_RUNTIME_DEVICE; the chart's fastapi.device)") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            "--monitor-sample-rate (HM_RUNTIME_MONITOR_SAMPLE_RATE) must be a fraction in (0, 1], "
            f"not {text!r}"
        )
    return value


def _positive(option: str) -> Any:
    env = "HM_RUNTIME_" + option[2:].upper().replace("-", "_")

    def check(text: str | int) -> int:
        value = int(text) if str(text).isdigit() else 0
        if value < 1:
            raise argparse.ArgumentTypeError(
                f"{option} ({env}) must be a whole number of 1 or more, not {text!r}"
            )
        return value

    return check


def reference(ns: argparse.Namespace) -> Any:
    """The --reference rows and names, read before anything is served; unusable: exit 2 naming it."""
    if not ns.reference:
        return None
    from hm_runtime.monitoring import ReferenceError, read_reference

    try:
        return read_reference(ns.reference)
    except ReferenceError as exc:
        print(f"hm_runtime: error: {exc}", file=sys.stderr)
        sys.exit(2)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hm_runtime", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=_env("MODEL"), help="model file, MLflow model dir, or models:/ URI")
    p.add_argument("--format", default=_env("FORMAT"), help="sklearn, joblib, onnx, torch, keras or mlflow")
    p.add_argument("--name", default=_env("NAME", "model"), help="model name in the v2 protocol")
    p.add_argument("--host", default=_env("HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(_env("PORT", "8000") or 8000))
    p.add_argument("--trust-model", action="store_true", default=_env("TRUST_MODEL", "false") == "true")
    p.add_argument("--sha256", default=_env("SHA256"), help="pinned sha256 of the model file")
    p.add_argument("--no-batching", action="store_true", default=_env("BATCHING", "true") == "false")
    p.add_argument(
        "--device",
        type=_device,
        default=_env("DEVICE", "auto") or "auto",
        help=f"where the model predicts: {devices.CHOICES}",
    )
    p.add_argument(
        "--max-batch-rows",
        type=int,
        default=_env("MAX_BATCH_ROWS"),
        help="most rows per model call; unset or 0: "
        + ", ".join(f"{n} on {kind}" for kind, n in devices.DEFAULT_BATCH_ROWS.items()),
    )
    p.add_argument("--max-batch-wait-ms", type=float, default=float(_env("MAX_BATCH_WAIT_MS", "0") or 0))
    p.add_argument("--max-body-bytes", type=int, default=int(_env("MAX_BODY_BYTES", str(8 << 20)) or 8 << 20))
    p.add_argument("--graceful-seconds", type=int, default=int(_env("GRACEFUL_SECONDS", "25") or 25))
    p.add_argument("--max-concurrency", type=int, default=int(_env("MAX_CONCURRENCY", "512") or 512))
    p.add_argument(
        "--max-buffered-bytes", type=int, default=int(_env("MAX_BUFFERED_BYTES", str(64 << 20)) or 64 << 20)
    )
    p.add_argument("--body-timeout", type=float, default=float(_env("BODY_TIMEOUT", "30") or 30))
    p.add_argument(
        "--max-head-bytes", type=int, default=int(_env("MAX_HEAD_BYTES", str(64 << 10)) or 64 << 10)
    )
    p.add_argument(
        "--reference",
        default=_env("REFERENCE"),
        help="a sample of training rows (.npy, .csv with or without a header, .parquet, or an MLflow "
        "artifact URI such as runs:/ID/reference.csv): turns on data-quality and drift monitoring",
    )
    p.add_argument(
        "--monitor-sample-rate",
        type=_fraction,
        default=_env("MONITOR_SAMPLE_RATE", "1"),
        help="fraction of rows the monitor examines (0 < r <= 1)",
    )
    p.add_argument(
        "--monitor-window",
        type=_positive("--monitor-window"),
        default=_env("MONITOR_WINDOW", "1000"),
        help="rows in the sliding drift window",
    )
    p.add_argument(
        "--monitor-max-features",
        type=_positive("--monitor-max-features"),
        default=_env("MONITOR_MAX_FEATURES", "200"),
        help="monitor at most the first N features (bounds the metrics' feature labels)",
    )
    p.add_argument(
        "--feedback",
        action="store_true",
        default=_env("FEEDBACK", "false") == "true",
        help="POST /v2/models/{name}/feedback with true labels: rolling accuracy (classifiers)",
    )
    p.add_argument(
        "--feedback-window",
        type=_positive("--feedback-window"),
        default=_env("FEEDBACK_WINDOW", "1000"),
        help="labels in the rolling accuracy (hm_accuracy)",
    )
    ns = p.parse_args(argv)
    for name, option in (
        ("TRUST_MODEL", "--trust-model"),
        ("BATCHING", "--no-batching"),
        ("FEEDBACK", "--feedback"),
    ):
        value = _env(name)
        if value is not None and value not in ("true", "false"):
            # The chart writes "true" or "false"; anything else would silently mean "false".
            p.error(f"HM_RUNTIME_{name} ({option}) must be true or false, not {value[:40]!r}")
    if not ns.model:
        p.error("--model (or HM_RUNTIME_MODEL) is required")
    if ns.max_batch_rows is not None and ns.max_batch_rows < 0:
        p.error("argument --max-batch-rows: must be 0 (the device's default) or more")
    return ns


def placement(ns: argparse.Namespace) -> devices.Placement:
    """The device the model will load on, from --device and this machine's facts for its format; a
    CUDA device that cannot be used ends the process with status 2 before anything is served."""
    from hm_runtime.models import ModelError, detect_format

    try:
        fmt = detect_format(ns.model, ns.format)
    except ModelError:  # the model's own error, which the loader reports (readiness stays 503)
        return devices.Placement("cpu", "the model's format is unknown; its load says why")
    facts = devices.Facts() if devices.parse(ns.device) == "cpu" else devices.probe(fmt)
    try:
        return devices.resolve(ns.device, fmt, facts)
    except devices.DeviceError as exc:
        print(f"hm_runtime: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    where = placement(ns)
    ref = reference(ns)
    rows = ns.max_batch_rows or devices.DEFAULT_BATCH_ROWS[where.kind]
    log.info("device %s (%s); at most %d rows per model call", where.device, where.reason, rows)
    import uvicorn

    from hm_runtime.app import Settings, build_app

    app = build_app(
        Settings(
            model=ns.model,
            name=ns.name,
            format=ns.format,
            trust_model=ns.trust_model,
            sha256=ns.sha256,
            batching=not ns.no_batching,
            max_batch_rows=rows,
            device=where.device,
            device_fallback=where.fallback,
            max_batch_wait=ns.max_batch_wait_ms / 1000,
            max_body_bytes=ns.max_body_bytes,
            max_concurrency=ns.max_concurrency,
            max_buffered_bytes=ns.max_buffered_bytes,
            body_timeout=ns.body_timeout,
            reference=ref,
            reference_source=ns.reference or "",
            monitor_sample_rate=ns.monitor_sample_rate,
            monitor_window=ns.monitor_window,
            monitor_max_features=ns.monitor_max_features,
            feedback=ns.feedback,
            feedback_window=ns.feedback_window,
        )
    )
    fatal: list[str] = []
    app.state.on_fatal = fatal.append
    http: Any = "h11"
    try:
        from hm_runtime.limits import LimitedHeadersProtocol  # needs httptools (uvicorn[standard])

        LimitedHeadersProtocol.max_head_bytes = ns.max_head_bytes
        http = LimitedHeadersProtocol
    except ImportError:
        pass
    # uvloop and httptools when installed (uvicorn[standard]); uvicorn drains in-flight requests on SIGTERM.
    config = uvicorn.Config(
        app,
        host=ns.host,
        port=ns.port,
        loop="auto",
        http=http,
        h11_max_incomplete_event_size=ns.max_head_bytes,  # the same cap when h11 serves
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=ns.graceful_seconds,
    )
    server = uvicorn.Server(config)
    app.state.stop = lambda: setattr(server, "should_exit", True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if fatal:  # the model could not start on the device asked for: an error at start, as above
        print(f"hm_runtime: error: {fatal[0]}", file=sys.stderr)
        return 2
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
