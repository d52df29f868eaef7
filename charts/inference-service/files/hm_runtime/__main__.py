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
import gc
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


def _workers(text: str) -> int:
    """--workers: a whole number of 1 or more, or `auto` (0 here: decided once the other options are
    known, see workers())."""
    if text == "auto":
        return 0
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"--workers (HM_RUNTIME_WORKERS) must be a whole number of 1 or more, or auto, not {text!r}"
        )
    return value


def workers(ns: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """The number of worker processes as given (0: auto, the CPUs the container may use, one on a
    GPU); model monitoring and feedback keep their state in one process, so they run with one."""
    single = "--reference" if ns.reference else "--feedback" if ns.feedback else None
    if single:
        if ns.workers > 1:
            p.error(
                f"--workers {ns.workers} cannot be used with {single}: model monitoring and feedback keep "
                "their window and predictions in one process; use --workers 1 (or leave it unset)"
            )
        return 1
    return int(ns.workers)  # 0: auto, decided in main() once the device is known


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
    p.add_argument(
        "--workers",
        type=_workers,
        default=_env("WORKERS", "auto"),
        help="worker processes serving the port: a number, or auto (the CPUs this container may use: "
        "CPU affinity and cgroup quota); one with --reference or --feedback",
    )
    ns = p.parse_args(argv)
    ns.workers = workers(ns, p)
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
    # No garbage collection while the server, the framework and the model load: importing scikit-learn
    # and scipy alone allocates enough objects for dozens of collections (about 5-10% of the start).
    # The app collects once after ready, freezes what it loaded and turns collection back on
    # (app._after_load).
    gc.disable()
    ns = parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from hm_runtime import workers as supervisor

    count = ns.workers or supervisor.available_cpus()
    if count > 1:
        supervisor.one_thread_each()  # before numpy and the model's framework are imported
    where = placement(ns)
    if not ns.workers and where.kind == "cuda" and count > 1:
        log.info("one worker on %s (a worker per CPU would each hold the model on the GPU)", where.device)
        count = 1
    ns.workers = count
    if count > 1:
        supervisor.prepare(count)  # before the metrics module is imported
    ref = reference(ns)
    rows = ns.max_batch_rows or devices.DEFAULT_BATCH_ROWS[where.kind]
    log.info("device %s (%s); at most %d rows per model call", where.device, where.reason, rows)
    from hm_runtime.app import Settings

    settings = Settings(
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
    if ns.workers == 1:
        return run(settings, ns)
    return run_workers(settings, ns)


def run_workers(settings: Any, ns: argparse.Namespace) -> int:
    """The supervisor: the socket bound and (where the format allows) the model loaded once, then
    the workers forked (hm_runtime.workers)."""
    import dataclasses

    from hm_runtime import workers as supervisor
    from hm_runtime.models import ModelError, detect_format, load

    sock = config(ns, None).bind_socket()
    sock.set_inheritable(True)
    preloaded = None
    try:
        fmt = detect_format(ns.model, ns.format)
    except ModelError:
        fmt = None  # each worker's load says why (readiness stays 503), as with one worker
    if fmt in supervisor.PRELOADED:
        try:
            preloaded = load(ns.model, ns.name, fmt, ns.trust_model, ns.sha256, settings.device)
        except Exception:  # each worker tries again and reports it as a single runtime does
            preloaded = None
        else:
            log.info("model loaded once in %.2fs, shared by the workers", preloaded.load_seconds)
    else:
        log.info("%s models load in each worker (their runtime does not survive fork)", fmt)
    log.warning("serving on http://%s:%d with %d workers", ns.host, ns.port, ns.workers)
    # What the workers inherit (the libraries, a preloaded model) stays shared with the supervisor: frozen
    # before the fork, so no worker's garbage collections write to (and so copy) those pages.
    gc.collect()
    gc.freeze()

    def serve(index: int, slots: Any) -> int:
        own = dataclasses.replace(
            settings,
            preloaded=preloaded,
            on_ready=lambda: slots.set(index, supervisor.READY),
            siblings_ready=slots.all_ready,
        )
        return run(own, ns, [sock])

    return supervisor.supervise(ns.workers, sock, serve, ns.graceful_seconds)


def config(ns: argparse.Namespace, app: Any) -> Any:
    import uvicorn

    http: Any = "h11"
    try:
        from hm_runtime.limits import LimitedHeadersProtocol  # needs httptools (uvicorn[standard])

        LimitedHeadersProtocol.max_head_bytes = ns.max_head_bytes
        http = LimitedHeadersProtocol
    except ImportError:
        pass
    # uvloop and httptools when installed (uvicorn[standard]); uvicorn drains in-flight requests on SIGTERM.
    return uvicorn.Config(
        app,
        host=ns.host,
        port=ns.port,
        loop="auto",
        http=http,
        ws="none",  # no websocket routes: their protocol is not even imported
        interface="asgi3",
        h11_max_incomplete_event_size=ns.max_head_bytes,  # the same cap when h11 serves
        access_log=False,
        proxy_headers=False,  # nothing here reads the client's address; saves a middleware per request
        log_level="warning",
        timeout_graceful_shutdown=ns.graceful_seconds,
    )


def run(settings: Any, ns: argparse.Namespace, sockets: list[Any] | None = None) -> int:
    """One runtime: the app on uvicorn until SIGTERM; its exit status."""
    import uvicorn

    from hm_runtime.app import build_app

    app = build_app(settings)
    fatal: list[str] = []
    app.state.on_fatal = fatal.append
    server = uvicorn.Server(config(ns, app))
    app.state.stop = lambda: setattr(server, "should_exit", True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if fatal:  # the model could not start on the device asked for: an error at start, as above
        print(f"hm_runtime: error: {fatal[0]}", file=sys.stderr)
        return 2
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
