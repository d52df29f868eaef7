"""Prometheus metrics of the runtime, in a registry of its own (GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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


def exposition() -> bytes:
    return generate_latest(REGISTRY)
