"""A real scrape: Debian's Prometheus scrapes a real helm-mlops runtime (after a short load with bad requests)
and a real `mlflow server --expose-prometheus`, with scrape configs derived from the charts' rendered
ServiceMonitors. Every PromQL expression of every rendered PrometheusRule and Grafana dashboard must parse,
and the inference and MLflow ones must return data against those real metrics."""

from __future__ import annotations

import json
import pickle
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import CHARTS, template
from tests.support.cluster import Cluster
from tests.support.prometheus import (
    Expression,
    Prometheus,
    PromQLError,
    dashboard_expressions,
    grafana_variables,
    kube_state_metrics,
    kube_state_metrics_binary,
    kube_state_metrics_scrape,
    prometheus,
    prometheus_binary,
    rule_expressions,
    scrape_configs,
    signals,
    substitute,
)
from tests.support.servers import http_json, mlflow_server, runtime_server, unavailable

NAMESPACE = "ml"
RELEASE = "obs"
INFERENCE = CHARTS / "inference-service"
MLFLOW = CHARTS / "mlflow"
# The inference chart's model monitoring (runtime --reference, feedback): its metrics then must be real.
MONITORING = "monitoring" in dict(yaml.safe_load((INFERENCE / "values.yaml").read_text()))


def chart_values(chart: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((chart / "values.yaml").read_text()))


def metrics_values(chart: Path) -> dict[str, Any]:
    return dict(chart_values(chart).get("metrics") or {})


def observed_values(chart: Path) -> dict[str, Any]:
    """The chart's metrics turned on: a ServiceMonitor scraping every second, and the alert rules and
    dashboards wherever the chart has them."""
    metrics: dict[str, Any] = {}
    defaults = metrics_values(chart)
    if "serviceMonitor" in defaults:
        metrics["serviceMonitor"] = {"enabled": True, "interval": "1s"}
        if "scrapeTimeout" in defaults["serviceMonitor"]:
            metrics["serviceMonitor"]["scrapeTimeout"] = "1s"
    if "enabled" in defaults:
        metrics["enabled"] = True
    for extra in ("prometheusRule", "dashboards"):
        if extra in defaults:
            metrics[extra] = {"enabled": True}
    return {"metrics": metrics} if metrics else {}


def dashboard_label(chart: Path) -> str:
    return str((metrics_values(chart).get("dashboards") or {}).get("label") or "grafana_dashboard")


def service_name(docs: list[dict[str, Any]]) -> str:
    """The Service the chart's ServiceMonitor selects (the chart's fullname Service)."""
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    want = monitor["spec"]["selector"]["matchLabels"]
    return str(
        next(
            d["metadata"]["name"]
            for d in docs
            if d["kind"] == "Service" and all(d["metadata"]["labels"].get(k) == v for k, v in want.items())
        )
    )


@dataclass(frozen=True)
class Observed:
    prom: Prometheus
    docs: dict[str, list[dict[str, Any]]]  # chart name -> rendered objects
    services: dict[str, str]  # chart name -> the scraped Service


def _load_runtime(url: str) -> None:
    """A short load: good predictions (one row and batches), V2 infers, and a few bad requests."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    good = [("/predict", {"input": x[i % 150].tolist()}) for i in range(60)]
    good += [("/predict", {"input": x[i : i + 8].tolist()}) for i in range(0, 80, 8)]
    v2 = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": x[:2].reshape(-1).tolist()}]}
    good += [("/v2/models/iris/infer", v2)] * 10
    bad = [("/predict", {"input": [None, 1, 1, 1]}), ("/predict", {"wrong": 1}), ("/predict", {"input": "x"})]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda r: http_json(url + r[0], r[1])[0], good + bad * 3))
    assert codes.count(200) == len(good), codes
    assert all(400 <= c < 500 for c in codes[len(good) :]), codes
    for path in ("/v2/health/ready", "/v2/health/live", "/metrics"):
        urllib.request.urlopen(url + path, timeout=30).read()
    if MONITORING:  # true labels for earlier predictions (by X-Request-Id): the rolling accuracy
        feedback = []
        for i in range(12):
            body = json.dumps(
                {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": x[i * 12].tolist()}]}
            )
            request = urllib.request.Request(
                url + "/v2/models/iris/infer",
                body.encode(),
                {"Content-Type": "application/json", "X-Request-Id": f"r{i}-{time.monotonic_ns()}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                feedback.append({"request_id": response.headers["X-Request-Id"], "labels": [int(y[i * 12])]})
        code, counts = http_json(url + "/v2/models/iris/feedback", feedback)
        assert code == 200, counts


def _mlflow_store_outage(url: str, database: Path) -> None:
    """A real server error: a write while the backend store is locked (an SQLite exclusive transaction held
    here) fails after SQLite's busy timeout (5 s) with a 5xx, which MLflow's metrics count."""
    import sqlite3
    import urllib.error

    def create(name: str) -> int:
        data = json.dumps({"name": name}).encode()
        request = urllib.request.Request(
            url + "/api/2.0/mlflow/experiments/create", data, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    lock = sqlite3.connect(database, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        code = create("locked")
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    assert 500 <= code < 600, code  # 503 (TEMPORARILY_UNAVAILABLE) for a locked database


def _load_mlflow(url: str) -> None:
    """Real MLflow API calls: an experiment, runs with params and metrics, searches and a 404."""
    api = url + "/api/2.0/mlflow"
    code, body = http_json(api + "/experiments/create", {"name": "observability"})
    assert code == 200, body
    exp = body["experiment_id"]
    for i in range(3):
        code, run = http_json(api + "/runs/create", {"experiment_id": exp, "start_time": 1})
        assert code == 200, run
        run_id = run["run"]["info"]["run_id"]
        assert (
            http_json(
                api + "/runs/log-metric",
                {"run_id": run_id, "key": "acc", "value": i, "timestamp": 1, "step": 0},
            )[0]
            == 200
        )
        assert (
            http_json(api + "/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 2})[0] == 200
        )
    assert http_json(api + "/runs/search", {"experiment_ids": [exp]})[0] == 200
    assert http_json(api + "/experiments/get?experiment_id=999999")[0] == 404


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    if prometheus_binary() is None:
        unavailable("prometheus is not installed: run `make system-deps`")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("observability")
    (root / "mlflow").mkdir()
    model = root / "iris.pkl"
    model.write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(*load_iris(return_X_y=True))))
    inference_values: dict[str, Any] = {**observed_values(INFERENCE), "model": {"name": "iris"}}
    scenario = INFERENCE / "ci" / "fastapi-inline-values.yaml"
    if MONITORING:  # monitoring (a reference from the model's source: not inline) turns on its rules too
        scenario = INFERENCE / "ci" / "fastapi-monitoring-values.yaml"
        inference_values["monitoring"] = {"enabled": True, "feedback": {"enabled": True}}
        # The drift alerts wait for a window of minRows rows; the short load fills fewer than the default.
        drift = {"minRows": 20}
        rules = {"featureDrift": drift, "predictionDrift": drift}
        inference_values["metrics"]["prometheusRule"]["rules"] = rules
    x, _ = load_iris(return_X_y=True)
    reference = root / "reference.csv"
    reference.write_text("f0,f1,f2,f3\n" + "".join(",".join(map(str, row)) + "\n" for row in x))
    # The runtime's monitoring, as the chart sets it (HM_RUNTIME_* env); a runtime without it ignores these.
    monitoring_env = {
        "HM_RUNTIME_REFERENCE": str(reference),
        "HM_RUNTIME_MONITOR_WINDOW": "200",
        "HM_RUNTIME_FEEDBACK": "true",
    }
    docs = {
        "inference-service": template(
            INFERENCE,
            values=inference_values,
            values_files=[scenario],
            release=RELEASE,
            namespace=NAMESPACE,
            tmp_dir=root,
        ),
        "mlflow": template(
            MLFLOW, values=observed_values(MLFLOW), release=RELEASE, namespace=NAMESPACE, tmp_dir=root
        ),
    }
    services = {chart: service_name(rendered) for chart, rendered in docs.items()}
    with (
        runtime_server(
            model, "--trust-model", "--max-batch-wait-ms", "2", name="iris", env=monitoring_env
        ) as runtime_url,
        mlflow_server(root / "mlflow", expose_prometheus=root / "mlflow-metrics") as mlflow_url,
    ):
        addresses = {
            f"{services['inference-service']}/http": runtime_url.removeprefix("http://"),
            f"{services['mlflow']}/http": mlflow_url.removeprefix("http://"),
        }
        configs = [c for rendered in docs.values() for c in scrape_configs(rendered, addresses)]
        _load_runtime(runtime_url)
        _load_mlflow(mlflow_url)
        _mlflow_store_outage(mlflow_url, root / "mlflow" / "mlflow.db")
        with prometheus(root / "prometheus", configs) as prom:
            prom.wait_scraped(jobs=len(configs), scrapes=5)
            # A second round of load between scrapes so rate() over the window sees increases.
            _load_runtime(runtime_url)
            _load_mlflow_more(mlflow_url)
            prom.wait_scraped(jobs=len(configs), scrapes=10)
            yield Observed(prom, docs, services)


def _load_mlflow_more(url: str) -> None:
    api = url + "/api/2.0/mlflow"
    assert http_json(api + "/experiments/search", {"max_results": 10})[0] == 200
    assert http_json(api + "/experiments/get-by-name?experiment_name=observability")[0] == 200


# --- the harness itself ---------------------------------------------------------------------------------


def _monitor(path: str, port: str) -> list[dict[str, Any]]:
    labels = {"app": "x"}
    return [
        {"kind": "Service", "metadata": {"name": "svc", "namespace": "ns", "labels": labels},
         "spec": {"ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 90}]}},
        {"kind": "ServiceMonitor", "metadata": {"name": "mon", "namespace": "ns"},
         "spec": {"selector": {"matchLabels": labels}, "endpoints": [{"port": port, "path": path,
                                                                        "interval": "7s"}]}},
    ]  # fmt: skip


def test_scrape_config_follows_the_servicemonitor() -> None:
    addresses = {"svc/http": "127.0.0.1:1", "svc/metrics": "127.0.0.1:2"}
    [one] = scrape_configs(_monitor("/metrics", "http"), addresses)
    [two] = scrape_configs(_monitor("/other", "metrics"), addresses)
    assert (one["metrics_path"], one["static_configs"], one["scrape_interval"]) == (
        "/metrics", [{"targets": ["127.0.0.1:1"]}], "7s",
    )  # fmt: skip
    assert (two["metrics_path"], two["static_configs"]) == ("/other", [{"targets": ["127.0.0.1:2"]}])
    labels = {r["target_label"]: r["replacement"] for r in two["relabel_configs"]}
    assert labels == {
        "namespace": "ns",
        "service": "svc",
        "endpoint": "metrics",
        "pod": "svc-0",
        "job": "svc",
    }
    with pytest.raises(LookupError, match="port 'grpc'; Service svc has none"):
        scrape_configs(_monitor("/metrics", "grpc"), addresses)


def test_signals_drop_thresholds_and_absent() -> None:
    assert signals('sum(rate(a{x="1"}[5m])) / sum(rate(b[5m])) > 0.05') == [
        'sum(rate(a{x="1"}[5m])) / sum(rate(b[5m]))'
    ]
    assert signals("max(c) == 0 and on(service) d > bool 3") == ["max(c)", "d"]
    assert signals("absent(up{job='x'})") == ["up{job='x'}"]
    assert signals("absent_over_time(hm_model_ready{a='b'}[10m])") == ["hm_model_ready{a='b'}"]
    assert signals('e{le="+Inf", x=">"} unless f') == ['e{le="+Inf", x=">"}', "f"]


def test_substitute_grafana_variables() -> None:
    variables = grafana_variables("ml", "obs-svc")
    got = substitute('rate(x{namespace="$namespace",service="${service}"}[$__rate_interval])', variables)
    assert got == 'rate(x{namespace="ml",service="obs-svc"}[15s])'
    assert substitute('label_replace(x, "a", "$1", "b", "(.*)")', variables).count("$1") == 1
    with pytest.raises(KeyError, match=r"\$feature"):
        substitute("x{feature=~'$feature'}", variables)


@pytest.mark.real
def test_harness_up_and_parse_errors(observed: Observed) -> None:
    """`up` returns the derived targets with the Operator's labels; a broken expression is a parse error."""
    up = {
        (s["metric"]["service"], s["metric"]["job"], s["metric"]["namespace"], s["value"][1])
        for s in observed.prom.query("up")
    }
    assert up == {(svc, svc, NAMESPACE, "1") for svc in observed.services.values()}
    with pytest.raises(PromQLError, match="bad_data"):
        observed.prom.query("sum(rate(hm_requests_total[5m])")
    assert observed.prom.query("hm_requests_total_that_does_not_exist") == []


@pytest.mark.real
def test_harness_reports_each_bad_expression(observed: Observed) -> None:
    """Hand-written rules and panels through the same evaluation: a quiet alert whose series exist passes;
    a panel on a metric nobody exports, a broken expression and an unknown variable fail by name."""
    service = observed.services["inference-service"]
    sel = '{namespace="$namespace", service="$service"}'
    good = [
        Expression("PrometheusRule r / alert Quiet", f"sum(rate(hm_requests_total{sel}[1m])) > 1e9"),
        Expression("PrometheusRule r / alert NotReady", f"max(hm_model_ready{sel}) == 0"),
        Expression(
            "dashboard d / panel 'Errors'", f"sum by (code) (rate(hm_requests_total{sel}[$__rate_interval]))"
        ),
        Expression(
            "dashboard d / panel 'p95'",
            f"histogram_quantile(0.95, sum by (le) (rate(hm_request_seconds_bucket{sel}[$__rate_interval])))",
        ),
    ]
    assert evaluate(observed.prom, good, grafana_variables(NAMESPACE, service)) == []
    bad = [
        Expression("dashboard d / panel 'Ghost'", f"rate(hm_no_such_metric{sel}[5m])"),
        Expression("PrometheusRule r / alert Broken", "sum(rate(hm_requests_total[5m])"),
        Expression("dashboard d / panel 'Feature'", "hm_feature_psi{feature=~'$feature'}"),
        Expression(
            "dashboard d / panel 'Elsewhere'", 'hm_model_ready{namespace="$namespace", service="other"}'
        ),
    ]
    failures = evaluate(observed.prom, bad, grafana_variables(NAMESPACE, service))
    assert [f.split(":", 1)[0] for f in failures] == [b.source for b in bad], failures
    assert "bad_data" in failures[1] and "$feature" in failures[2]


# --- every rule and dashboard expression ----------------------------------------------------------------


def from_kube_state_metrics(expr: str) -> bool:
    return "kube_" in expr


def evaluate(
    prom: Prometheus,
    expressions: list[Expression],
    variables: dict[str, str],
    needs_data: Callable[[str], bool] = lambda expr: True,
) -> list[str]:
    """What is wrong with EXPRESSIONS against the real scrape, one line each naming the rule or panel:
    a parse error, an unknown Grafana variable, or no data (for a rule: its signals, see signals()) where
    NEEDS_DATA says the scrape has the series."""
    failures: list[str] = []
    for item in expressions:
        try:
            expr = substitute(item.expr, variables)
            prom.query(expr)  # must parse whole
            checks = signals(expr) if item.source.startswith("PrometheusRule") else [expr]
            failures += [
                f"{item.source}: no data for {c}" for c in checks if needs_data(c) and not prom.query(c)
            ]
        except (PromQLError, KeyError) as exc:
            failures.append(f"{item.source}: {exc}\n  {item.expr}")
    return failures


def _expressions(chart: str, docs: list[dict[str, Any]]) -> tuple[list[Expression], list[Expression]]:
    return rule_expressions(docs), dashboard_expressions(docs, dashboard_label(CHARTS / chart))


@pytest.mark.real
@pytest.mark.parametrize("chart", ["inference-service", "mlflow"])
def test_every_expression_parses_and_returns_data(observed: Observed, chart: str) -> None:
    docs = observed.docs[chart]
    rules, panels = _expressions(chart, docs)
    defaults = metrics_values(CHARTS / chart)
    # Once a chart has the values, rendering them on must give expressions: never a silent pass.
    if "prometheusRule" in defaults:
        assert rules, f"{chart}: metrics.prometheusRule.enabled=true rendered no PrometheusRule expressions"
    if "dashboards" in defaults:
        assert panels, f"{chart}: metrics.dashboards.enabled=true rendered no dashboard panel expressions"
    variables = grafana_variables(NAMESPACE, observed.services[chart])
    # kube-state-metrics series (deployments, HPAs) are real in the cluster test below, not here.
    failures = evaluate(observed.prom, rules + panels, variables, lambda c: not from_kube_state_metrics(c))
    assert not failures, "\n".join(failures)


@pytest.mark.real
def test_the_scraped_metrics_are_the_contracts(observed: Observed) -> None:
    """The metric names the rules and dashboards are written against exist in the real scrape."""
    names = set(
        json.loads(urllib.request.urlopen(observed.prom.url + "/api/v1/label/__name__/values").read())["data"]
    )
    assert {
        "hm_requests_total",
        "hm_request_seconds_bucket",
        "hm_batch_rows_count",
        "hm_model_ready",
    } <= names
    if MONITORING:  # the contract's monitoring series, real after the load, the feedback and the bad requests
        monitoring = {"hm_schema_violations_total", "hm_batch_full_total", "process_cpu_seconds_total"}
        monitoring |= {"hm_monitor_rows_total", "hm_monitor_window_rows", "hm_feature_psi", "hm_feature_ks"}
        monitoring |= {"hm_prediction_psi", "hm_prediction_class_total", "hm_feedback_total", "hm_accuracy"}
        assert monitoring <= names, sorted(monitoring - names)
    # What MLflow 3's --expose-prometheus really exports (prometheus_flask_exporter with its prefix).
    mlflow = {"mlflow_http_request_total", "mlflow_http_request_duration_seconds_bucket"}
    assert mlflow <= names, f"mlflow server --expose-prometheus: {sorted(n for n in names if 'mlflow' in n)}"
    codes = {s["metric"]["status"] for s in observed.prom.query("mlflow_http_request_total")}
    assert {"200", "404"} <= codes and any(c.startswith("5") for c in codes), codes
    # The runtime's own `endpoint` label meets the ServiceMonitor's target label `endpoint` (the port
    # name): the chart's ServiceMonitor honours the runtime's labels, so the rules' endpoint selector
    # (predict, v2_infer) meets the runtime's own value, never the port name or an exported_endpoint.
    refused = observed.prom.query('sum by (endpoint, exported_endpoint) (hm_requests_total{code=~"4.."})')
    assert [s["metric"] for s in refused] == [{"endpoint": "predict"}], refused


# --- kube_* series: kube-state-metrics against the test cluster -----------------------------------------

TRAINING = CHARTS / "training-job"


@dataclass(frozen=True)
class ClusterObserved:
    prom: Prometheus
    namespace: str
    releases: dict[str, tuple[Path, dict[str, Any], list[Path]]]  # release -> chart, values, values files


def _install_values(chart: Path) -> dict[str, Any]:
    """What the install turns on beyond the ci scenario: the inference service's HPA, so the
    kube_horizontalpodautoscaler_* series exist (MLflow's on SQLite refuses several replicas)."""
    return {"autoscaling": {"enabled": True}} if chart == INFERENCE else {}


@pytest.fixture(scope="module")
def cluster_observed(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterObserved]:
    """Helm 4 installs of the inference-service and mlflow charts and of four training-jobs (a Job that
    succeeds, a grid sweep, a one-GPU Job, a Job whose pod fails: kwok fails images tagged kwok-fail) in
    a fresh namespace; kube-state-metrics watches it and Prometheus scrapes it (honor_labels)."""
    if prometheus_binary() is None:
        unavailable("prometheus is not installed: run `make system-deps`")
    ksm = kube_state_metrics_binary()
    root = tmp_path_factory.mktemp("observability-cluster")
    ns = cluster.restricted_namespace("obs")
    releases: dict[str, tuple[Path, dict[str, Any], list[Path]]] = {
        "inf": (INFERENCE, {"model": {"name": "iris"}}, [INFERENCE / "ci" / "fastapi-inline-values.yaml"]),
        "mlf": (MLFLOW, {}, [MLFLOW / "ci" / "default-values.yaml"]),
        "train": (TRAINING, {}, [TRAINING / "ci" / "default-values.yaml"]),
        "sweep": (TRAINING, {}, [TRAINING / "ci" / "sweep-grid-values.yaml"]),
        "gpu": (TRAINING, {"gpu": {"count": 1}}, [TRAINING / "ci" / "default-values.yaml"]),
        "bad": (
            TRAINING,
            {"image": {"tag": "kwok-fail"}, "job": {"backoffLimit": 0}},
            [TRAINING / "ci" / "default-values.yaml"],
        ),
    }
    try:
        for release, (chart, values, files) in releases.items():
            given = root / f"{release}.yaml"
            given.write_text(yaml.safe_dump({**values, **_install_values(chart)}))
            args = ["install", release, str(chart), "-n", ns, "-f", *map(str, files), "-f", str(given)]
            wait = ["--wait", "--timeout", "180s"] if chart != TRAINING else []
            cluster.helm("helm4", *args, *wait)
        with (
            kube_state_metrics(ksm, cluster.kubeconfig, [ns], root) as address,
            prometheus(root / "prometheus", [kube_state_metrics_scrape(address)]) as prom,
        ):
            prom.wait_scraped(jobs=1, scrapes=3)
            # Until the Jobs have finished as kwok makes them: the plain one complete, the bad one failed.
            deadline = time.monotonic() + 120
            sel = f'namespace="{ns}"'
            while time.monotonic() < deadline:
                done = prom.query(f"sum(kube_job_status_succeeded{{{sel}}}) > 0")
                failed = prom.query(f"sum(kube_job_status_failed{{{sel}}}) > 0")
                if done and failed:
                    break
                time.sleep(1)
            else:
                raise AssertionError(f"the training Jobs did not finish: {cluster.get('jobs', '-n', ns)}")
            prom.wait_scraped(jobs=1, scrapes=10)
            yield ClusterObserved(prom, ns, releases)
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.e2e
def test_kube_state_metrics_series_are_real(cluster_observed: ClusterObserved) -> None:
    """The contract's kube_* series exist for the releases: the Jobs (one failed), the Deployments."""
    prom, ns = cluster_observed.prom, cluster_observed.namespace
    failed = {s["metric"]["job_name"] for s in prom.query(f'kube_job_status_failed{{namespace="{ns}"}} > 0')}
    assert failed and all(name.startswith("bad-training-job") for name in failed), failed
    jobs = {s["metric"]["job_name"] for s in prom.query(f'kube_job_status_succeeded{{namespace="{ns}"}} > 0')}
    assert any(name.startswith("train-training-job") for name in jobs), jobs
    deployments = {
        s["metric"]["deployment"]
        for s in prom.query(f'kube_deployment_status_replicas_available{{namespace="{ns}"}}')
    }
    assert {"inf-inference-service", "mlf-mlflow"} <= deployments, deployments
    gpus = prom.query(f'kube_pod_container_resource_requests{{namespace="{ns}", resource="nvidia_com_gpu"}}')
    assert gpus and all(s["metric"]["pod"].startswith("gpu-training-job") for s in gpus), gpus
    hpas = prom.query(f'kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{ns}"}}')
    assert [s["metric"]["horizontalpodautoscaler"] for s in hpas] == ["inf-inference-service"], hpas
    # A hand-written training rule and panel through the same evaluation as the charts' ones.
    sel = 'namespace="$namespace", job_name=~"$service-.*"'
    good = [
        Expression(
            "PrometheusRule r / alert JobFailed", f"max by (job_name) (kube_job_status_failed{{{sel}}}) > 0"
        ),
        Expression("dashboard d / panel 'Active'", f"sum(kube_job_status_active{{{sel}}})"),
    ]
    ghost = [Expression("dashboard d / panel 'Ghost'", 'kube_job_status_failed{job_name="no-such-job"}')]
    variables = grafana_variables(ns, "bad-training-job")
    assert evaluate(prom, good, variables) == []
    assert [f.split(":", 1)[0] for f in evaluate(prom, ghost, variables)] == ["dashboard d / panel 'Ghost'"]


@pytest.mark.e2e
@pytest.mark.parametrize("release", ["inf", "mlf"])
def test_kube_expressions_return_data(cluster_observed: ClusterObserved, release: str) -> None:
    """The inference and MLflow rules and panels on kube_* series, evaluated for the installed release:
    they must parse and return data."""
    chart, expressions = _release_expressions(cluster_observed, release)
    expressions = [e for e in expressions if from_kube_state_metrics(e.expr)]
    failures = evaluate(
        cluster_observed.prom,
        expressions,
        grafana_variables(cluster_observed.namespace, f"{release}-{chart.name}"),
    )
    assert not failures, "\n".join(failures)


TRAINING_RELEASES = ("train", "sweep", "gpu", "bad")


@pytest.mark.e2e
def test_training_expressions_return_data(cluster_observed: ClusterObserved) -> None:
    """Every training rule and panel, evaluated for each installed training release: each must parse for
    every release, and return data for at least one (a failed-Job alert has series only where a Job
    failed: the `bad` release; a GPU panel only where GPUs are requested: `gpu`)."""
    hard: list[str] = []
    no_data: dict[str, list[str]] = {}  # rule or panel (release-neutral) -> its no-data failures
    seen: dict[str, int] = {}  # rule or panel -> releases it was evaluated for
    for release in TRAINING_RELEASES:
        chart, expressions = _release_expressions(cluster_observed, release)
        fullname = f"{release}-{chart.name}"

        def neutral(source: str, fullname: str = fullname) -> str:
            return source.replace(fullname, "<fullname>")

        variables = grafana_variables(cluster_observed.namespace, fullname)
        for e in expressions:
            key = neutral(e.source)
            seen[key] = seen.get(key, 0) + 1
            failures = evaluate(cluster_observed.prom, [e], variables)
            empty = [f for f in failures if f.startswith(f"{e.source}: no data for ")]
            hard += [f for f in failures if f not in empty]
            if empty:
                no_data.setdefault(key, []).append("\n".join(empty))
    hard += [fails[0] for key, fails in no_data.items() if len(fails) == seen[key]]
    assert not hard, "\n".join(hard)


def _release_expressions(observed: ClusterObserved, release: str) -> tuple[Path, list[Expression]]:
    """The rules and panels of an installed release, rendered with its values and metrics on."""
    chart, values, files = observed.releases[release]
    docs = template(
        chart,
        values={**values, **_install_values(chart), **observed_values(chart)},
        values_files=files,
        release=release,
        namespace=observed.namespace,
    )
    rules, panels = _expressions(chart.name, docs)
    defaults = metrics_values(chart)
    if "prometheusRule" in defaults:
        assert rules, (
            f"{chart.name}: metrics.prometheusRule.enabled=true rendered no PrometheusRule expressions"
        )
    if "dashboards" in defaults:
        assert panels, (
            f"{chart.name}: metrics.dashboards.enabled=true rendered no dashboard panel expressions"
        )
    return chart, rules + panels
