"""Prometheus metrics of the runtime, in a registry of its own (GET /metrics)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "hm_requests", "Requests by endpoint and status code", ["endpoint", "code"], registry=REGISTRY
)
LATENCY = Histogram(
    "hm_request_seconds",
    "Request latency by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
BATCH_ROWS = Histogram(
    "hm_batch_rows", "Rows per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=REGISTRY
)
# With --workers the values live in PROMETHEUS_MULTIPROC_DIR (hm_runtime.workers): each gauge says how
# the workers' values combine.
LOAD_SECONDS = Gauge(
    "hm_model_load_seconds", "Time the model took to load", registry=REGISTRY, multiprocess_mode="max"
)
READY = Gauge(
    "hm_model_ready",
    "1 once the model is loaded and serving (with workers: in every live worker)",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
DEVICE = Gauge(
    "hm_model_device_info",
    'Where the model predicts: 1 for the device its weights are on ("cpu" or "cuda:N"), set once loaded',
    ["device"],
    registry=REGISTRY,
    multiprocess_mode="max",
)
BATCH_FULL = Counter(
    "hm_batch_full", "Model calls that hit the batch row cap (--max-batch-rows)", registry=REGISTRY
)
SCHEMA_VIOLATIONS = Counter(
    "hm_schema_violations",
    "Requests refused as invalid input (4xx) by reason",
    ["reason"],
    registry=REGISTRY,
)
# The reasons a request is refused as invalid input (hm_schema_violations_total{reason}).
REASONS = (
    "invalid_json",
    "malformed",
    "shape",
    "datatype",
    "non_finite",
    "out_of_range",
    "too_large",
    "encoding",
    "model_refused",
)
for _reason in REASONS:
    SCHEMA_VIOLATIONS.labels(_reason)
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # with workers: hm_runtime.workers.Processes
    ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
_monitoring: list[Any] = []


def monitoring(collector: Any) -> None:
    """The monitoring collector (hm_runtime.monitoring.Collector) in the registry, replacing any
    earlier one."""
    while _monitoring:
        REGISTRY.unregister(_monitoring.pop())
    REGISTRY.register(collector)
    _monitoring.append(collector)


def exposition() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    # Workers: every worker's values, summed (dead workers' counters included), and the processes'.
    from prometheus_client import multiprocess

    from hm_runtime.workers import Processes

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(Processes(os.getppid()))
    for collector in _monitoring:
        registry.register(collector)
    return generate_latest(registry)
