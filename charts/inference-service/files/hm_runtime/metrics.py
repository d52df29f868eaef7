"""Prometheus metrics of the runtime, in a registry of its own (GET /metrics)."""

from __future__ import annotations

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
LOAD_SECONDS = Gauge("hm_model_load_seconds", "Time the model took to load", registry=REGISTRY)
READY = Gauge("hm_model_ready", "1 once the model is loaded and serving", registry=REGISTRY)
DEVICE = Gauge(
    "hm_model_device_info",
    'Where the model predicts: 1 for the device its weights are on ("cpu" or "cuda:N"), set once loaded',
    ["device"],
    registry=REGISTRY,
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
    return generate_latest(REGISTRY)
