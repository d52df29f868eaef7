"""The ASGI application. The hot routes (POST /predict and v2 infer) are served straight from the ASGI
server (`Runtime`): no router, no middleware stack, the body parsed with orjson into numpy and the
answer sent as prepared bytes. The other routes are a small Starlette app (FastAPI and pydantic are not
imported: a faster cold start)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hm_runtime import metrics
from hm_runtime.batching import Batcher, WrongLength
from hm_runtime.limits import Budget
from hm_runtime.models import DeviceUnusable, InputError, LoadedModel, ModelError, load, v2_type
from hm_runtime.protocol import (
    V2Context,
    jsonable,
    rows_from_input,
    rows_from_v2,
    split_binary,
    v2_metadata,
    v2_response,
)

if TYPE_CHECKING:
    from hm_runtime.monitoring import Feedback, Monitor

log = logging.getLogger("hm_runtime")


class ErrorLog:
    """Server errors for the log, not the client: each gets an id the client sees; full tracebacks are
    logged at most `burst` times per `window` seconds, the rest as one counted line per window, so a
    client that triggers errors on purpose cannot flood the log."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        self.burst, self.window = burst, window
        self.started, self.count, self.suppressed = 0.0, 0, 0

    def record(self, what: str, exc: BaseException) -> str:
        error_id = uuid.uuid4().hex[:12]
        now = time.monotonic()
        if now - self.started > self.window:
            if self.suppressed:
                log.error(
                    "%d more errors in the last %.0fs (tracebacks not logged)", self.suppressed, self.window
                )
            self.started, self.count, self.suppressed = now, 0, 0
        self.count += 1
        if self.count <= self.burst:
            log.error("%s (error id %s)", what, error_id, exc_info=exc)
        else:
            self.suppressed += 1
        return error_id


@dataclass
class Settings:
    model: str
    name: str = "model"
    format: str | None = None
    trust_model: bool = False
    sha256: str | None = None
    batching: bool = True
    max_batch_rows: int = 64
    max_batch_wait: float = 0.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_concurrency: int = 512  # predictions in flight; beyond: 429 (memory is bounded by the body budget)
    max_buffered_bytes: int = 64 * 1024 * 1024  # request bodies held at once; beyond: 429
    body_timeout: float = 30.0  # seconds a request body may take to arrive; beyond: 408
    device: str = "cpu"  # "cpu" or "cuda:N", resolved from --device before the app is built
    device_fallback: bool = False  # --device auto chose the GPU: the CPU if the framework cannot start on it
    # --reference, read before the app is built (monitoring.read_reference): rows and column names
    reference: tuple[np.ndarray, list[str] | None] | None = None
    reference_source: str = ""
    monitor_sample_rate: float = 1.0
    monitor_window: int = 1000
    monitor_max_features: int = 200
    feedback: bool = False
    feedback_window: int = 1000
    preloaded: LoadedModel | None = None  # loaded before the workers were forked (hm_runtime.workers)
    on_ready: Callable[[], None] | None = None  # a worker's slot, once its model is in
    siblings_ready: Callable[[], bool] | None = None  # every worker has loaded (readiness)


@dataclass
class State:
    settings: Settings
    model: LoadedModel | None = None
    error: str | None = None
    batcher: Batcher | None = None
    loaded: threading.Event = field(default_factory=threading.Event)
    errors: ErrorLog = field(default_factory=ErrorLog)
    in_flight: int = 0
    budget: Budget = field(default_factory=lambda: Budget(0))
    error_id: str = ""
    monitor: Monitor | None = None
    feedback: Feedback | None = None
    classifier: bool = False  # predictions are class labels: remembered for feedback


REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


class _Ids:
    """New request ids: a random prefix per process (a forked worker draws its own) and a counter."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix, self.next = os.urandom(6).hex(), itertools.count().__next__

    def __call__(self) -> str:
        return f"{self.prefix}{self.next():012x}"


_new_id = _Ids()


def _request_id(sent: str | None, body_id: str | None = None) -> str:
    """The client's X-Request-Id when it is a sane token (1-128 of [A-Za-z0-9._:/+=-]), else its v2 body
    "id" when sane, else a new one."""
    for given in (sent, body_id):
        if given is not None and REQUEST_ID.fullmatch(given):
            return given
    return _new_id()


def _is_classifier(model: LoadedModel, out: np.ndarray) -> bool:
    return out.ndim == 1 and (model.predict_proba is not None or out.dtype.kind not in "fc")


class Out(NamedTuple):
    """An answer as the ASGI server sends it: the hot routes send it as it is, the others through
    Starlette (`_response`)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


JSON_TYPE = (b"content-type", b"application/json")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Out:
    data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    raw = [JSON_TYPE, (b"content-length", b"%d" % len(data))]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return Out(status, data, raw)


async def _send(send: Any, out: Out) -> None:
    """An answer sent straight through the ASGI server (the hot routes, no Starlette)."""
    await send({"type": "http.response.start", "status": out.status, "headers": out.headers})
    await send({"type": "http.response.body", "body": out.body})


def _response(out: Out) -> Response:
    response = Response(out.body, out.status)
    response.raw_headers = list(out.headers)
    return response


def _endpoint(path: str) -> str:
    """The metrics label of a request path: a fixed set, whatever the client sends."""
    if path == "/predict":
        return "predict"
    if path.startswith("/v2/models/"):
        if path.endswith("/infer"):
            return "v2_infer"
        if path.endswith("/feedback"):
            return "feedback"
        return "v2_model_ready" if path.endswith("/ready") else "v2_model_metadata"
    if path.startswith("/v2/health/"):
        return "health"
    return {"/v2": "v2_server_metadata", "/metrics": "metrics"}.get(path, "other")


def _sklearn_refused(exc: BaseException) -> bool:
    """A ValueError raised by scikit-learn's own input validation: the input's fault, not the model's
    (e.g. a value too large for the float32 that a pipeline's trees compare in)."""
    if not isinstance(exc, ValueError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "sklearn.utils.validation":
            return True
        tb = tb.tb_next
    return False


class Counts:
    """hm_requests_total by endpoint and status code and hm_request_seconds by endpoint, with the
    label children looked up once."""

    def __init__(self) -> None:
        self.latency: dict[str, Any] = {}
        self.counters: dict[tuple[str, int], Any] = {}

    def __call__(self, endpoint: str, status: int, seconds: float) -> None:
        latency = self.latency.get(endpoint)
        if latency is None:
            latency = self.latency[endpoint] = metrics.LATENCY.labels(endpoint)
        latency.observe(seconds)
        counter = self.counters.get((endpoint, status))
        if counter is None:
            counter = self.counters[(endpoint, status)] = metrics.REQUESTS.labels(endpoint, str(status))
        counter.inc()


class CountEveryResponse:
    """ASGI middleware of the routes other than the hot ones: every response counted by endpoint and
    status code and timed, 4xx and 5xx included, and an exception no handler caught answered as a JSON
    500 with an error id (the traceback goes to the log, rate-limited), never as a bare text page. A
    client that goes away before its body arrived is counted as 499 (nginx's "client closed request"),
    not as a 5xx."""

    def __init__(self, app: Any, errors: ErrorLog, counts: Counts) -> None:
        self.app, self.errors, self.count = app, errors, counts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = False

        async def send_counted(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status, sent = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except ClientDisconnect:
            if not sent:
                status = 499
        except Exception as exc:
            if sent:
                raise
            await _response(_unhandled(self.errors, scope, exc))(scope, receive, send_counted)
        finally:
            self.count(_endpoint(scope.get("path", "")), status, time.perf_counter() - started)


def _unhandled(errors: ErrorLog, scope: Any, exc: Exception) -> Out:
    """A JSON 500 with an error id for an exception no handler caught; the traceback to the log."""
    error_id = errors.record(f"unhandled error on {scope.get('path')}", exc)
    return _error(500, f"internal error (error id {error_id}); the details are in the server log")


def _decoded(raw: bytes, encoding: str, limit: int) -> bytes | Out:
    """A gzip or deflate body (tritonclient's request_compression_algorithm) inflated within the body
    limit, so a small compressed body cannot expand without bound; other encodings are refused (415)."""
    import zlib

    if encoding not in ("gzip", "deflate"):
        shown = encoding if len(encoding) <= 20 else encoding[:20] + "..."
        return _refused(
            415, f"Content-Encoding {shown!r} is not supported: send gzip, deflate or identity", "encoding"
        )
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        return _refused(400, f"the body is not valid {encoding} data: {exc}", "encoding")
    if len(out) > limit or inflater.unconsumed_tail:
        return _refused(413, f"the {encoding} body inflates beyond the limit of {limit} bytes", "too_large")
    return out


def _error(status: int, message: str) -> Out:
    return _json({"error": message}, status)


def _refused(status: int, message: str, reason: str) -> Out:
    """A 4xx for invalid input, counted in hm_schema_violations_total{reason}."""
    metrics.SCHEMA_VIOLATIONS.labels(reason).inc()
    return _error(status, message)


BUSY = {"Retry-After": "1"}
SETTLE_SECONDS = 1.0  # after the model is in: the one full garbage collection (`_after_load`)
LARGE_BODY = 256 * 1024  # bodies above this are parsed in a thread, off the event loop


class BodyClock:
    """The deadlines of request bodies being read (--body-timeout): one sweep every `period` seconds
    cancels the reads past theirs, which then answer 408, instead of a timer per request."""

    def __init__(self) -> None:
        self.reading: dict[asyncio.Task[Any], float] = {}
        self.late: set[asyncio.Task[Any]] = set()

    async def run(self, period: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for task, deadline in list(self.reading.items()):
                if now >= deadline and task not in self.late:
                    self.late.add(task)
                    task.cancel()


async def _body(
    receive: Any, declared: str | None, settings: Settings, budget: Budget, clock: BodyClock
) -> bytes | Out:
    """The request body, read from the ASGI `receive`, within the per-request limit, the server's
    budget and the time allowed; `declared` is its Content-Length header, if any."""
    limit = settings.max_body_bytes
    size_declared = int(declared) if declared is not None and declared.isdigit() else None
    if size_declared is not None and size_declared > limit:
        return _refused(
            413, f"request body of {declared} bytes exceeds the limit of {limit} bytes", "too_large"
        )
    chunks: list[bytes] = []
    size = 0
    # A declared body reserves its whole size at once, so concurrent uploads cannot each hold a part
    # of the budget and all fail; a chunked one reserves as it arrives.
    reserved = size_declared or 0
    if reserved and not budget.take(reserved):
        return _json({"error": "the server is busy receiving other requests; retry shortly"}, 429, BUSY)
    task = asyncio.current_task()
    assert task is not None
    clock.reading[task] = asyncio.get_running_loop().time() + settings.body_timeout
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            if size + len(chunk) > limit or (reserved and size + len(chunk) > reserved):
                return _refused(
                    413,
                    f"request body exceeds the limit of {limit} bytes (or its Content-Length)",
                    "too_large",
                )
            if not reserved and not budget.take(len(chunk)):
                return _json(
                    {"error": "the server is busy receiving other requests; retry shortly"}, 429, BUSY
                )
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except asyncio.CancelledError:
        if task not in clock.late:
            raise
        clock.late.discard(task)
        task.uncancel()
        return _error(408, f"the request body did not arrive within {settings.body_timeout:g}s")
    finally:
        del clock.reading[task]
        budget.give(reserved or size)


def build_app(settings: Settings) -> Runtime:
    state = State(settings)
    state.budget = Budget(settings.max_buffered_bytes)
    clock, count = BodyClock(), Counts()
    app: Starlette  # made below; the loader reaches its state (the process's hooks) once it runs

    def load_model() -> None:
        try:
            model = settings.preloaded or load(
                settings.model,
                settings.name,
                settings.format,
                settings.trust_model,
                settings.sha256,
                settings.device,
                cpu_fallback=settings.device_fallback,
            )
        except DeviceUnusable as exc:
            # An explicit CUDA device the framework could not start on: an error at start, never a
            # server that stays up unready. `python -m hm_runtime` stops the server and exits with 2.
            fatal(str(exc))
        except ModelError as exc:
            state.error, state.error_id = str(exc), uuid.uuid4().hex[:12]
            log.error("model %s failed to load (error id %s): %s", settings.model, state.error_id, exc)
        except Exception as exc:
            state.error, state.error_id = f"{type(exc).__name__}: {exc}", uuid.uuid4().hex[:12]
            log.exception("model %s failed to load (error id %s)", settings.model, state.error_id)
        else:
            if settings.reference is not None or settings.feedback:
                try:
                    start_monitoring(model)
                except ValueError as exc:  # a --reference that does not fit the model: as above
                    fatal(str(exc))
                    return
            state.model = model
            # Where the weights actually are (models.py reads it off the loaded model), not --device.
            metrics.DEVICE.labels(model.device).set(1)
            metrics.LOAD_SECONDS.set(model.load_seconds)
            metrics.READY.set(1)
            if settings.on_ready is not None:
                settings.on_ready()
            log.warning(
                "model %s (%s) ready on %s in %.2fs",
                settings.name,
                model.format,
                model.device,
                model.load_seconds,
            )
        finally:
            state.loaded.set()

    def fatal(message: str) -> None:
        state.error, state.error_id = message, uuid.uuid4().hex[:12]
        on_fatal, stop = getattr(app.state, "on_fatal", None), getattr(app.state, "stop", None)
        if on_fatal is None or stop is None:  # the app on its own (tests): unready, as other errors
            log.error("model %s failed to load (error id %s): %s", settings.model, state.error_id, message)
        else:
            on_fatal(message)
            stop()

    def start_monitoring(model: LoadedModel) -> None:
        """The monitor (with --reference) and the feedback store (with --feedback), once the model is in."""
        from hm_runtime.monitoring import Collector, Feedback, Monitor, Predictions, Reference  # only then

        monitor: Monitor | None = None
        if settings.reference is not None:
            data, names = settings.reference
            where = f"--reference {settings.reference_source!r} (HM_RUNTIME_REFERENCE)"
            if model.n_features is not None and data.shape[1] != model.n_features:
                raise ValueError(
                    f"{where} has {data.shape[1]} columns but the model takes {model.n_features} features: "
                    "give a sample of the model's own training rows"
                )
            if names is not None and len(names) != data.shape[1]:
                raise ValueError(f"{where} names {len(names)} columns but holds {data.shape[1]}")
            reference = Reference.build(data, names, settings.monitor_max_features)
            try:
                out = np.asarray(model.predict(reference.rows.astype(model.input_dtype)))
            except Exception as exc:
                raise ValueError(f"the model cannot predict the rows of {where}: {exc}") from None
            predictions = None
            if out.ndim == 1 and len(out) == len(reference.rows):
                predictions = Predictions.build(out, _is_classifier(model, out))
            monitor = Monitor(
                reference,
                predictions,
                window=settings.monitor_window,
                sample_rate=settings.monitor_sample_rate,
            )
            monitor.start()
            state.monitor = monitor
        if settings.feedback:
            state.feedback = Feedback(window=settings.feedback_window)
            labels = model.output_datatype
            state.classifier = model.predict_proba is not None or (
                labels is not None and not labels.startswith("FP")
            )
        metrics.monitoring(Collector(monitor, state.feedback))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Load in a thread: liveness answers at once, readiness once the model is in.
        loader = asyncio.get_running_loop().run_in_executor(None, load_model)
        watcher = asyncio.ensure_future(_after_load(loader))
        sweeper = asyncio.ensure_future(clock.run(min(0.5, settings.body_timeout / 4)))
        yield
        watcher.cancel()
        sweeper.cancel()
        if state.batcher is not None:
            await state.batcher.stop()
        if state.monitor is not None:
            state.monitor.stop()

    async def _after_load(loader: Awaitable[None]) -> None:
        await loader
        if state.model is not None and settings.batching and state.model.vectorised:
            state.batcher = Batcher(
                state.model.predict,
                max_rows=settings.max_batch_rows,
                max_wait=settings.max_batch_wait,
                observe=metrics.BATCH_ROWS.observe,
                full=metrics.BATCH_FULL.inc,
                after=state.monitor.submit if state.monitor is not None else None,
            )
            state.batcher.start()
        # Everything loaded so far (libraries, the model) lives for the whole process: one collection,
        # then out of the collector's reach (gc.freeze), so full collections under load do not walk it
        # again and again; then collection back on (`python -m hm_runtime` turns it off while loading).
        # A moment after ready: collecting a freshly imported framework holds the interpreter for tens
        # of milliseconds, which would otherwise delay the first readiness answer.
        await asyncio.sleep(SETTLE_SECONDS)
        if state.model is not None:
            gc.collect()
            gc.freeze()
        gc.enable()

    async def no_route(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        return _response(
            _error(
                code,
                f"no route for {request.method} {request.url.path[:200]}: this server answers POST /predict, "
                "POST /v2/models/{name}/infer, POST /v2/models/{name}/feedback, "
                "GET /v2/models/{name}[/ready], /v2/health/live|ready and /metrics",
            )
        )

    app = Starlette(lifespan=lifespan, exception_handlers={404: no_route, 405: no_route})

    def unbatched(rows: np.ndarray) -> np.ndarray:
        """The model on one request's rows, without the batcher (--no-batching, or a model that takes
        one row at a time)."""
        assert state.model is not None
        if not state.model.vectorised:
            out = np.concatenate([state.model.predict(rows[i : i + 1]) for i in range(len(rows))])
        else:
            out = np.asarray(state.model.predict(rows))
        if out.ndim == 0 or len(out) != len(rows):  # the batcher's rule, without batching too
            raise WrongLength(
                f"the model returned {'a scalar' if out.ndim == 0 else f'{len(out)} rows'} "
                f"for {len(rows)} input rows"
            )
        return out

    def not_ready() -> Out:
        # The reason (paths, library internals) is for the operator's log, not for any caller.
        if state.error:
            return _error(
                503, f"model failed to load (error id {state.error_id}): the reason is in the server log"
            )
        return _error(503, "model is loading")

    Parse = Callable[[Any, LoadedModel, bytes], tuple[np.ndarray, Any]]
    Reply = Callable[[LoadedModel, np.ndarray, Any], Any]

    async def serve(
        headers: dict[bytes, bytes], receive: Any, parse: Parse, reply: Reply, model: LoadedModel
    ) -> Out:
        """Body -> rows -> (batched) model call -> response, with the errors a client can act on."""
        declared = headers.get(b"content-length")
        raw = await _body(
            receive, None if declared is None else declared.decode("latin-1"), settings, state.budget, clock
        )
        if isinstance(raw, Out):
            return raw
        encoding = headers.get(b"content-encoding")
        if encoding is not None and (encoding := encoding.strip().lower()) != b"identity":
            raw = _decoded(raw, encoding.decode("latin-1"), settings.max_body_bytes)
            if isinstance(raw, Out):
                return raw
        split = headers.get(b"inference-header-content-length")

        def decode() -> tuple[np.ndarray, Any]:
            head, blob = split_binary(raw, None if split is None else split.decode("latin-1"))
            return parse(orjson.loads(head), model, blob)

        try:
            # A large body parses in a thread, so health checks and small requests go on meanwhile.
            rows, context = await asyncio.to_thread(decode) if len(raw) > LARGE_BODY else decode()
        except orjson.JSONDecodeError as exc:
            return _refused(400, f"body is not valid JSON: {exc}", "invalid_json")
        except InputError as exc:
            return _refused(422, str(exc), exc.reason)
        try:
            batcher = state.batcher
            out = await batcher.submit(rows) if batcher is not None else unbatched(rows)
        except Exception as exc:
            if _sklearn_refused(exc):
                return _refused(422, f"the model refused this input: {exc}", "model_refused")
            error_id = state.errors.record("model call failed", exc)
            return _error(
                500,
                f"the model failed on this input (error id {error_id}); the details are in the server log",
            )
        if model.output_datatype is None:  # no signature said it: learnt from the first answer
            model.output_datatype, model.output_shape = v2_type(out), [-1, *out.shape[1:]]
        # The request id: the client's X-Request-Id if sane, else its v2 body "id" if sane, else new.
        body_id = getattr(context, "request_id", None)
        sent = headers.get(b"x-request-id")
        request_id = _request_id(sent.decode("latin-1") if sent is not None else None, body_id)
        if body_id is None and isinstance(context, V2Context):
            context = V2Context(request_id, context.binary_output)  # v2 responses carry it as "id"
        if state.monitor is not None and state.batcher is None:  # batched: the batcher hands it over
            state.monitor.submit(rows, out)  # an append: the monitor's thread examines it later
        if state.feedback is not None and state.classifier:
            state.feedback.remember(request_id, out)
        body = reply(model, out, context)
        rid = (b"x-request-id", request_id.encode())
        if isinstance(body, tuple):  # the v2 binary extension: JSON, then the tensor's bytes
            head = orjson.dumps(body[0], option=orjson.OPT_SERIALIZE_NUMPY)
            data = head + body[1]
            return Out(
                200,
                data,
                [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", b"%d" % len(data)),
                    (b"inference-header-content-length", b"%d" % len(head)),
                    rid,
                ],
            )
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        return Out(200, data, [JSON_TYPE, (b"content-length", b"%d" % len(data)), rid])

    def predict_reply(_model: LoadedModel, out: np.ndarray, _single: Any) -> Any:
        return {"prediction": jsonable(out)}

    def unknown(name: str, version: str | None) -> Out | None:
        """404 for a model name or version this server does not serve (versions: the one loaded, "1")."""
        if name != settings.name:
            return _error(404, f"unknown model {name!r}; this server serves {settings.name!r}")
        if version is not None and version != "1":
            return _error(
                404, f"unknown version {version!r} of model {name!r}; this server serves version '1'"
            )
        return None

    def starlette(handler: Callable[[Request], Awaitable[Out]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return _response(await handler(request))

        return endpoint

    def _unknown(request: Request) -> Out | None:
        return unknown(request.path_params["name"], request.path_params.get("version"))

    async def feedback(request: Request) -> Out:
        """True labels for earlier predictions: {"request_id": ID, "labels": [..]} or a list of such
        items; answered with the counts by outcome (unknown: an id not or no longer remembered)."""
        if (refused := _unknown(request)) is not None:
            return refused
        if state.feedback is None:
            return _error(
                404,
                "feedback is off: start the runtime with --feedback "
                "(the chart's monitoring.feedback.enabled)",
            )
        if not state.classifier:
            return _error(
                409,
                "feedback scores class labels; this model's predictions are not classes (no accuracy for it)",
            )
        raw = await _body(
            request.receive, request.headers.get("content-length"), settings, state.budget, clock
        )
        if isinstance(raw, Out):
            return raw
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        items = payload if isinstance(payload, list) else [payload]
        shape = 'the body must be {"request_id": "...", "labels": [...]} or a list of such objects'
        for k, item in enumerate(items):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("request_id"), str)
                or not isinstance(item.get("labels"), list)
                or not item["labels"]
                or not all(isinstance(v, (str, int, float)) for v in item["labels"])
            ):
                return _error(422, f"item {k}: {shape}; labels are one class per predicted row")
        totals = {"correct": 0, "incorrect": 0, "unknown": 0}
        for k, item in enumerate(items):
            try:
                counts = state.feedback.label(item["request_id"], item["labels"])
            except ValueError as exc:
                return _error(422, f"item {k}: {exc}")
            for outcome, n in counts.items():
                totals[outcome] += n
        return _json(totals)

    async def live(_request: Request) -> Out:
        return _json({"live": True})

    async def ready(_request: Request) -> Out:
        if state.model is None:
            return not_ready()
        # With --workers, whichever worker answers the probe: ready once every worker has loaded.
        if settings.siblings_ready is not None and not settings.siblings_ready():
            return _error(503, "other workers are loading the model")
        return _json({"ready": True})

    async def model_ready(request: Request) -> Out:
        return _unknown(request) or await ready(request)

    async def model_metadata(request: Request) -> Out:
        if (refused := _unknown(request)) is not None:
            return refused
        if state.model is None:
            return not_ready()
        return _json(v2_metadata(state.model))

    async def server_metadata(_request: Request) -> Out:
        from hm_runtime import __version__

        return _json({"name": "helm-mlops-runtime", "version": __version__, "extensions": []})

    async def prometheus(_request: Request) -> Response:
        # With monitoring, a scrape recomputes the drift gauges (bounded by the window and the reference):
        # in a thread, so requests go on meanwhile.
        body = await asyncio.to_thread(metrics.exposition) if state.monitor else metrics.exposition()
        return Response(body, media_type="text/plain; version=0.0.4")

    routes: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/v2/models/{name}/feedback", starlette(feedback), ["POST"]),
        ("/v2/models/{name}/ready", starlette(model_ready), ["GET"]),
        ("/v2/models/{name}/versions/{version}/ready", starlette(model_ready), ["GET"]),
        ("/v2/models/{name}", starlette(model_metadata), ["GET"]),
        ("/v2/models/{name}/versions/{version}", starlette(model_metadata), ["GET"]),
        ("/v2/health/live", starlette(live), ["GET"]),
        ("/v2/health/ready", starlette(ready), ["GET"]),
        ("/v2", starlette(server_metadata), ["GET"]),
        ("/metrics", prometheus, ["GET"]),
    ]
    for path, handler, methods in routes:
        app.router.add_route(path, handler, methods=methods)
    app.add_middleware(CountEveryResponse, errors=state.errors, counts=count)
    app.state.runtime = state

    async def hot(
        scope: Any, receive: Any, send: Any, endpoint: str, name: str | None, version: str | None
    ) -> None:
        """POST /predict and the v2 infer routes, straight from the ASGI server: no router, no
        middleware stack, the body read from `receive` and the answer sent as prepared bytes."""
        started = time.perf_counter()
        status = 500  # what a request cancelled mid-way (the server stopping) counts as
        try:
            headers = {k: v for k, v in scope["headers"] if k in HOT_HEADERS}
            model = state.model
            if name is not None and (refused := unknown(name, version)) is not None:
                out = refused
            elif model is None:
                out = not_ready()
            elif state.in_flight >= settings.max_concurrency:
                out = _json({"error": "too many requests in flight; retry shortly"}, 429, BUSY)
            else:
                state.in_flight += 1
                try:
                    if name is None:
                        out = await serve(headers, receive, rows_from_input, predict_reply, model)
                    else:
                        out = await serve(headers, receive, rows_from_v2, v2_response, model)
                finally:
                    state.in_flight -= 1
            status = out.status
        except ClientDisconnect:
            status = 499
            return
        except Exception as exc:
            out = _unhandled(state.errors, scope, exc)
        finally:
            # Counted before the answer leaves: a client that has its answer finds it in /metrics.
            count(endpoint, status, time.perf_counter() - started)
        await _send(send, out)

    return Runtime(app, hot, count)


HOT_HEADERS = frozenset(
    (b"content-length", b"content-encoding", b"inference-header-content-length", b"x-request-id")
)


class Runtime:
    """The ASGI application: the hot routes (POST /predict, POST /v2/models/{name}[/versions/{v}]/infer)
    go to `hot`; everything else (health, metadata, feedback, metrics, lifespan, 404s) to Starlette."""

    def __init__(self, app: Starlette, hot: Callable[..., Awaitable[None]], count: Counts) -> None:
        self.app, self.hot, self.count = app, hot, count
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            route = _hot_route(scope["path"])
            if route is not None:
                if scope["method"] == "POST":
                    return await self.hot(scope, receive, send, *route)
                return await self.wrong_method(scope, send, route[0])
        await self.app(scope, receive, send)

    async def wrong_method(self, scope: Any, send: Any, endpoint: str) -> None:
        """405 with `Allow: POST` for another method on a hot route, counted as its endpoint's."""
        out = _json(
            {"error": f"{scope['method'][:10]} is not allowed on {scope['path'][:200]}: send POST"},
            405,
            {"Allow": "POST"},
        )
        self.count(endpoint, 405, 0.0)
        await _send(send, out)


def _hot_route(path: str) -> tuple[str, str | None, str | None] | None:
    """(endpoint, model name, version) of a hot route's path, None for any other path."""
    if path == "/predict":
        return "predict", None, None
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        parts = path[11:-6].split("/")
        if len(parts) == 1 and parts[0]:
            return "v2_infer", parts[0], None
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return "v2_infer", parts[0], parts[2]
    return None
