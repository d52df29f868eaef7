"""The Grafana dashboards of the charts, from one Python source: small builders (panel, row, the
template variables) give the Grafana dashboard JSON model that each chart ships as
files/dashboards/<chart>.json and templates/dashboards.yaml wraps in a ConfigMap for Grafana's
sidecar. `make docs` (`helm-mlops docs`) rewrites the files; `--check` fails on a stale one.

Every query reads its data source from the `$datasource` variable and selects its series by the
labels a ServiceMonitor gives them: `namespace` and `service` (the chart's fullname Service); the
training dashboard reads kube-state-metrics' Job series by `namespace` and `job_name`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from generator.errors import StaleError

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
GRID_WIDTH = 24
PANEL_HEIGHT = 8

Kind = Literal["timeseries", "stat"]


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: Kind = "timeseries"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str
    regex: str = ""


@dataclass(frozen=True)
class Dashboard:
    chart: str
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[Row, ...] = field(default_factory=tuple)


def panel(
    title: str,
    exprs: list[tuple[str, str]] | str,
    unit: str = "short",
    kind: Kind = "timeseries",
    width: int = 12,
    description: str = "",
) -> Panel:
    """A panel; exprs is one PromQL expression or (expression, legend) pairs."""
    pairs = [(exprs, "")] if isinstance(exprs, str) else exprs
    return Panel(title, tuple(Target(e, legend) for e, legend in pairs), unit, kind, width, description)


def _datasource_variable() -> dict[str, Any]:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def _query_variable(var: Variable) -> dict[str, Any]:
    return {
        "current": {},
        "datasource": DATASOURCE,
        "definition": var.query,
        "hide": 0,
        "includeAll": False,
        "label": var.label,
        "multi": False,
        "name": var.name,
        "options": [],
        "query": {"qryType": 1, "query": var.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": var.regex,
        "sort": 1,
        "type": "query",
    }


def _panel_json(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "datasource": DATASOURCE,
        "description": p.description,
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "gridPos": {"h": PANEL_HEIGHT, "w": p.width, "x": x, "y": y},
        "id": panel_id,
        "targets": [
            {
                "datasource": DATASOURCE,
                "expr": t.expr,
                "legendFormat": t.legend or "__auto",
                "range": True,
                "refId": chr(ord("A") + i),
            }
            for i, t in enumerate(p.targets)
        ],
        "title": p.title,
        "type": p.kind,
    }
    if p.kind == "stat":
        body["options"] = {
            "colorMode": "value",
            "graphMode": "area",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        }
    else:
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        }
    return body


def _layout(rows: tuple[Row, ...]) -> list[dict[str, Any]]:
    """Rows one under the other; a row's panels fill the 24-column grid left to right."""
    out: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for row in rows:
        out.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": next_id,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        next_id += 1
        y += 1
        x = 0
        for p in row.panels:
            if x + p.width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            out.append(_panel_json(p, next_id, x, y))
            next_id += 1
            x += p.width
        y += PANEL_HEIGHT
    return out


def to_json(d: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON model of d."""
    return {
        "annotations": {"list": []},
        "description": d.description,
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": _layout(d.rows),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["helm-mlops", d.chart],
        "templating": {"list": [_datasource_variable(), *(_query_variable(v) for v in d.variables)]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": d.title,
        "uid": d.uid,
        "version": 1,
    }


def render(d: Dashboard) -> str:
    return json.dumps(to_json(d), indent=2, sort_keys=True) + "\n"


# Dashboards ----------------------------------------------------------------------------------------


def _service_variables(metric: str) -> tuple[Variable, ...]:
    return (
        Variable("namespace", "Namespace", f"label_values({metric}, namespace)"),
        Variable("service", "Service", f'label_values({metric}{{namespace="$namespace"}}, service)'),
    )


def _rate_of(metric: str, sel: str, by: str) -> str:
    """rate() of METRIC; grouped by the runtime's `endpoint` label, that label is taken from
    `exported_endpoint` where the scrape renamed it (a ServiceMonitor sets its own `endpoint`, the
    port name, and without honorLabels the runtime's becomes `exported_endpoint`)."""
    rate = f"rate({metric}{{{sel}}}[{RATE}])"
    if "endpoint" not in by.split(", "):
        return rate
    return f'label_replace({rate}, "endpoint", "$1", "exported_endpoint", "(.+)")'


def _rate(metric: str, sel: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} ({_rate_of(metric, sel, by)})"


def _quantiles(bucket: str, sel: str, by: str = "") -> list[tuple[str, str]]:
    grouping = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({grouping}) ({_rate_of(bucket, sel, grouping)}))",
            f"p{int(q * 100)}{suffix}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _error_ratio(counter: str, sel: str, code_label: str) -> str:
    """5xx responses over all responses; 0, not nothing, while there are none."""
    errors = _rate(counter, f'{sel}, {code_label}=~"5.."')
    return f"({errors} or vector(0)) / {_rate(counter, sel)}"


def _prediction_distribution(sel: str) -> str:
    """Classifiers: predictions/s per class; regressors: the median and p95 predicted value (as
    class="p50"/"p95"). One expression, so it shows data for either kind of model."""
    values = _rate("hm_prediction_value_bucket", sel, "le")
    medians = [
        f'label_replace(histogram_quantile({q}, {values}), "class", "p{int(q * 100)}", "", "")'
        for q in (0.5, 0.95)
    ]
    return " or ".join([_rate("hm_prediction_class_total", sel, "class"), *medians])


def _ratio_per_feature(counter: str, sel: str) -> str:
    """Share of the examined rows that COUNTER counted, per feature; 0 while it counted none."""
    examined = _rate("hm_monitor_rows_total", sel)
    return f"({_rate(counter, sel, 'feature')} / on() group_left() {examined}) or on() (0 * {examined})"


def inference() -> Dashboard:
    s = 'namespace="$namespace", service="$service"'
    deploy = 'namespace="$namespace", deployment="$service"'
    traffic = Row(
        "Traffic",
        (
            panel(
                "Requests/s by endpoint",
                [(_rate("hm_requests_total", s, "endpoint"), "{{endpoint}}")],
                "reqps",
            ),
            panel("Latency percentiles", _quantiles("hm_request_seconds_bucket", s, "endpoint"), "s"),
            panel(
                "Errors by code",
                [(_rate("hm_requests_total", f'{s}, code=~"[45].."', "code"), "{{code}}")],
                "reqps",
                description="Responses with a 4xx or 5xx status, per status code.",
            ),
            panel(
                "Error ratio (5xx)",
                _error_ratio("hm_requests_total", s, "code"),
                "percentunit",
                "stat",
                6,
            ),
            panel(
                "Invalid input by reason",
                [(_rate("hm_schema_violations_total", s, "reason"), "{{reason}}")],
                "reqps",
                "timeseries",
                6,
            ),
        ),
    )
    batching = Row(
        "Batching",
        (
            panel(
                "Rows per model call",
                [
                    (f"{_rate('hm_batch_rows_sum', s)} / {_rate('hm_batch_rows_count', s)}", "mean"),
                    *_quantiles("hm_batch_rows_bucket", s)[1:2],
                ],
            ),
            panel(
                "Batch saturation",
                f"{_rate('hm_batch_full_total', s)} / {_rate('hm_batch_rows_count', s)}",
                "percentunit",
                description="Share of model calls that hit the batch row cap.",
            ),
        ),
    )
    capacity = Row(
        "Capacity",
        (
            panel(
                "Replicas",
                [
                    (f"count(hm_model_ready{{{s}}} == 1) or vector(0)", "model ready"),
                    (f"sum(kube_deployment_status_replicas_available{{{deploy}}})", "available"),
                    (f"sum(kube_deployment_spec_replicas{{{deploy}}})", "desired"),
                ],
            ),
            panel(
                "CPU by pod",
                [(f"sum by (pod) (rate(process_cpu_seconds_total{{{s}}}[{RATE}]))", "{{pod}}")],
                "short",
                description="CPU seconds per second of the runtime process.",
            ),
            panel(
                "Memory by pod",
                [(f"sum by (pod) (process_resident_memory_bytes{{{s}}})", "{{pod}}")],
                "bytes",
            ),
            panel("Model load time", f"max(hm_model_load_seconds{{{s}}})", "s", "stat", 6),
            panel(
                "Device",
                [(f"count by (device) (hm_model_device_info{{{s}}})", "{{device}}")],
                "short",
                "stat",
                6,
            ),
        ),
    )
    drift = Row(
        "Drift and data quality",
        (
            panel("Feature drift (PSI)", [(f"max by (feature) (hm_feature_psi{{{s}}})", "{{feature}}")]),
            panel("Feature drift (KS)", [(f"max by (feature) (hm_feature_ks{{{s}}})", "{{feature}}")]),
            panel(
                "Missing values by feature",
                [(_ratio_per_feature("hm_feature_missing_total", s), "{{feature}}")],
                "percentunit",
            ),
            panel(
                "Out of reference range by feature",
                [(_ratio_per_feature("hm_feature_out_of_range_total", s), "{{feature}}")],
                "percentunit",
            ),
            panel("Prediction drift (PSI)", [(f"max(hm_prediction_psi{{{s}}})", "prediction PSI")]),
            panel(
                "Prediction distribution",
                [(_prediction_distribution(s), "{{class}}")],
                description=(
                    "Classifiers: predictions/s per class; regressors: percentiles of the predicted value."
                ),
            ),
            panel(
                "Monitored rows",
                [
                    (_rate("hm_monitor_rows_total", s), "examined rows/s"),
                    (f"sum(hm_monitor_window_rows{{{s}}})", "rows in drift window"),
                ],
            ),
        ),
    )
    accuracy = Row(
        "Accuracy",
        (
            panel("Rolling accuracy", [(f"min by (pod) (hm_accuracy{{{s}}})", "{{pod}}")], "percentunit"),
            panel(
                "Feedback by outcome", [(_rate("hm_feedback_total", s, "outcome"), "{{outcome}}")], "reqps"
            ),
            panel("Labels in accuracy window", f"sum(hm_accuracy_labels{{{s}}})", "short", "stat", 6),
        ),
    )
    return Dashboard(
        "inference-service",
        "helm-mlops-inference",
        "helm-mlops / Inference service",
        "Traffic, latency, batching, capacity, drift, data quality and accuracy of a helm-mlops"
        " inference service.",
        _service_variables("hm_requests_total"),
        (traffic, batching, capacity, drift, accuracy),
    )


def mlflow() -> Dashboard:
    s = 'namespace="$namespace", service="$service"'
    job = 'namespace="$namespace", job_name=~"$service-migrate.*"'
    server = Row(
        "Server",
        (
            panel("Targets up", f"sum(up{{{s}}})", "short", "stat", 6),
            panel(
                "Error ratio (5xx)",
                _error_ratio("mlflow_http_request_total", s, "status"),
                "percentunit",
                "stat",
                6,
            ),
            panel(
                "Requests/s by method",
                [(_rate("mlflow_http_request_total", s, "method"), "{{method}}")],
                "reqps",
            ),
            panel(
                "Responses by status",
                [(_rate("mlflow_http_request_total", s, "status"), "{{status}}")],
                "reqps",
            ),
            panel("Latency percentiles", _quantiles("mlflow_http_request_duration_seconds_bucket", s), "s"),
        ),
    )
    migration = Row(
        "Database migration",
        (
            panel(
                "Migration job pods",
                [
                    (f"sum(kube_job_status_active{{{job}}}) or vector(0)", "active"),
                    (f"sum(kube_job_status_succeeded{{{job}}}) or vector(0)", "succeeded"),
                    (f"sum(kube_job_status_failed{{{job}}}) or vector(0)", "failed"),
                ],
            ),
        ),
    )
    return Dashboard(
        "mlflow",
        "helm-mlops-mlflow",
        "helm-mlops / MLflow",
        "Requests, errors and latency of the MLflow tracking server (--expose-prometheus) and its"
        " migration job.",
        _service_variables("mlflow_http_request_total"),
        (server, migration),
    )


def training() -> Dashboard:
    j = 'namespace="$namespace", job_name=~"$service-.*"'
    pods = 'namespace="$namespace", pod=~"$service-.*"'
    gpu, cpu, mem = (f'{pods}, resource="{r}"' for r in ("nvidia_com_gpu", "cpu", "memory"))
    phases = Row(
        "Jobs",
        (
            panel(
                "Jobs by phase",
                [
                    (f"count(kube_job_status_active{{{j}}} > 0) or vector(0)", "active"),
                    (f"count(kube_job_status_succeeded{{{j}}} > 0) or vector(0)", "succeeded"),
                    (f"count(kube_job_status_failed{{{j}}} > 0) or vector(0)", "failed"),
                ],
            ),
            panel(
                "Pods by phase",
                [
                    (f"sum(kube_job_status_active{{{j}}})", "active"),
                    (f"sum(kube_job_status_succeeded{{{j}}})", "succeeded"),
                    (f"sum(kube_job_status_failed{{{j}}})", "failed"),
                ],
            ),
            panel(
                "Job duration",
                [
                    (
                        f"max by (job_name) ((kube_job_status_completion_time{{{j}}}"
                        f" or on(namespace, job_name) (0 * kube_job_status_start_time{{{j}}} + time()))"
                        f" - on(namespace, job_name) kube_job_status_start_time{{{j}}})",
                        "{{job_name}}",
                    ),
                ],
                "s",
            ),
            panel(
                "Completions (trials) done",
                f"sum(kube_job_status_succeeded{{{j}}}) / sum(kube_job_spec_completions{{{j}}})",
                "percentunit",
                description="Succeeded pods over the completions asked for: a sweep's trials done.",
            ),
        ),
    )
    resources = Row(
        "Resources",
        (
            panel(
                "GPU requests",
                [
                    (
                        f"sum(kube_pod_container_resource_requests{{{gpu}}}) or vector(0)",
                        "GPUs",
                    )
                ],
            ),
            panel(
                "CPU and memory requests",
                [
                    (
                        f"sum(kube_pod_container_resource_requests{{{cpu}}}) or vector(0)",
                        "CPU cores",
                    ),
                    (
                        f"sum(kube_pod_container_resource_requests{{{mem}}}) or vector(0)",
                        "memory bytes",
                    ),
                ],
            ),
        ),
    )
    return Dashboard(
        "training-job",
        "helm-mlops-training",
        "helm-mlops / Training jobs",
        "Training Jobs by phase, their duration and the GPUs they request (kube-state-metrics).",
        (
            Variable("namespace", "Namespace", "label_values(kube_job_status_start_time, namespace)"),
            # A Job is `<fullname>-<10 hex digits>` (a CronJob's `<fullname>-<minutes>`): the variable is
            # the release's fullname, what the other dashboards' `service` is.
            Variable(
                "service",
                "Training",
                'label_values(kube_job_status_start_time{namespace="$namespace"}, job_name)',
                regex="/^(.*)-[0-9a-f]{8,10}$/",
            ),
        ),
        (phases, resources),
    )


DASHBOARDS = {"inference-service": inference, "mlflow": mlflow, "training-job": training}


def dashboard_file(chart_dir: Path, chart: str) -> Path:
    return chart_dir / "files" / "dashboards" / f"{chart}.json"


def update_dashboard(chart_dir: Path, chart: str, check: bool = False) -> Path | None:
    """Write chart_dir's dashboard JSON when it differs. Returns the path written (None when up to date
    or the chart has no dashboard); with check, raises StaleError instead of writing."""
    build = DASHBOARDS.get(chart)
    if build is None:
        return None
    target = dashboard_file(chart_dir, chart)
    text = render(build())
    if target.is_file() and target.read_text() == text:
        return None
    if check:
        raise StaleError(f"{target} is out of date with generator/dashboards.py: run `make docs`")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target
