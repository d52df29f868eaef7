"""The charts' PrometheusRules (metrics.prometheusRule): rendered by real helm (4 and 3), checked by the
real promtool (`check rules`) and unit-tested with it (`test rules`, tests/promtool/<chart>.yaml: each
alert fires on bad series with its labels and annotations, and stays quiet on healthy ones and on
another release's series); runbook anchors exist in docs/runbooks.md; values reach the expressions;
the schema refuses bad values; the object passes the upstream PrometheusRule CRD."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import REPO, template, template_error
from tests.support.crds import load_crd_schemas, validate_custom_resource
from tests.support.servers import mlflow_server, runtime_server

CHARTS = REPO / "charts"
PROMTOOL_TESTS = REPO / "tests" / "promtool"
RUNBOOKS = REPO / "docs" / "runbooks.md"
# chart -> the ci scenario that turns the rules on (release t, namespace ml in the promtool tests).
SCENARIOS = {
    "inference-service": "fastapi-alerts-values.yaml",
    "mlflow": "alerts-values.yaml",
    "training-job": "sweep-alerts-values.yaml",
}
# A scenario of each chart without the rules.
PLAIN = {
    "inference-service": "fastapi-inline-values.yaml",
    "mlflow": "incluster-postgresql-minio-values.yaml",
    "training-job": "sweep-grid-values.yaml",
}
# The monitoring alerts: a reference sample beside an S3 model (inline models take no reference).
MONITORING_MODEL = {"source": {"type": "s3", "s3": {"bucket": "models", "key": "m/model.pkl"}}}
MONITORING = {
    "model": MONITORING_MODEL,
    "monitoring": {"enabled": True, "reference": {"file": "m/reference.csv"}, "feedback": {"enabled": True}},
}


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed: run `make system-deps`")
    return exe


def _ci(chart: str) -> Path:
    return CHARTS / chart / "ci" / SCENARIOS[chart]


def _rule_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "PrometheusRule"]


def _render_rules(
    chart: Path, values: dict[str, Any] | None, ci: Path, helm_name: str, tmp: Path
) -> dict[str, Any]:
    docs = template(chart, values_files=[ci], values=values, helm_name=helm_name, tmp_dir=tmp)
    [rule] = _rule_objects(docs)
    return rule


def _alerts(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def _promtool_run(tmp: Path, rule: dict[str, Any], test_file: Path) -> None:
    rules = tmp / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    shutil.copy(test_file, tmp / test_file.name)
    test = subprocess.run(
        [_promtool(), "test", "rules", test_file.name], capture_output=True, text=True, cwd=tmp
    )
    assert test.returncode == 0, test.stdout + test.stderr


def _tested_alerts(test_file: Path) -> set[str]:
    spec = yaml.safe_load(test_file.read_text())
    return {t["alertname"] for group in spec["tests"] for t in group["alert_rule_test"]}


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("chart", list(SCENARIOS))
def test_rules_pass_promtool_check_and_unit_tests(chart: str, helm_name: str, tmp_path: Path) -> None:
    rule = _render_rules(CHARTS / chart, None, _ci(chart), helm_name, tmp_path)
    test_file = PROMTOOL_TESTS / f"{chart}.yaml"
    # Every rendered alert has a unit test, and every unit-tested alert is rendered.
    assert set(_alerts(rule)) == _tested_alerts(test_file)
    _promtool_run(tmp_path, rule, test_file)


def test_monitoring_rules_pass_promtool(tmp_path: Path) -> None:
    chart = CHARTS / "inference-service"
    rule = _render_rules(chart, MONITORING, _ci("inference-service"), "helm4", tmp_path)
    test_file = PROMTOOL_TESTS / "inference-service-monitoring.yaml"
    both = _tested_alerts(test_file) | _tested_alerts(PROMTOOL_TESTS / "inference-service.yaml")
    assert set(_alerts(rule)) == both
    _promtool_run(tmp_path, rule, test_file)


def test_monitoring_rules_follow_monitoring_and_feedback(tmp_path: Path) -> None:
    chart = CHARTS / "inference-service"
    ci = _ci("inference-service")
    off = set(_alerts(_render_rules(chart, None, ci, "helm4", tmp_path)))
    assert not {a for a in off if "Drift" in a or "Accuracy" in a or "Missing" in a}
    no_feedback = {
        "model": MONITORING_MODEL,
        "monitoring": {
            "enabled": True,
            "reference": {"file": "m/reference.csv"},
            "feedback": {"enabled": False},
        },
    }
    mon = set(_alerts(_render_rules(chart, no_feedback, ci, "helm4", tmp_path)))
    assert "HelmMlopsInferenceFeatureDrift" in mon and "HelmMlopsInferenceAccuracyDrop" not in mon


@pytest.mark.parametrize("chart", list(SCENARIOS))
def test_defaults_render_no_rules(chart: str) -> None:
    docs = template(CHARTS / chart, values_files=[CHARTS / chart / "ci" / PLAIN[chart]])
    assert docs and not _rule_objects(docs)


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_runbook_url_points_at_a_runbook_section(tmp_path: Path) -> None:
    anchors = {_github_anchor(m) for m in re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(), re.M)}
    rules = [_render_rules(CHARTS / c, None, _ci(c), "helm4", tmp_path) for c in SCENARIOS]
    rules.append(
        _render_rules(CHARTS / "inference-service", MONITORING, _ci("inference-service"), "helm4", tmp_path)
    )
    seen: set[str] = set()
    for rule in rules:
        for name, alert in _alerts(rule).items():
            base, _, anchor = alert["annotations"]["runbook_url"].partition("#")
            assert base == "https://github.com/helm-mlops/helm-mlops/blob/main/docs/runbooks.md"
            assert anchor in anchors, f"{name}: no section #{anchor} in docs/runbooks.md"
            assert alert["annotations"]["summary"] and alert["annotations"]["description"]
            assert alert["labels"]["severity"] in {"critical", "warning"}
            assert re.fullmatch(r"HelmMlops(Inference|Mlflow|Training)[A-Z][A-Za-z0-9]+", name)
            seen.add(name)
    # 13 inference (6 runtime/Kubernetes + 7 monitoring), 4 MLflow, 3 training alerts.
    assert len(seen) == 20


# (chart, rule key, value key, new value, alert name): each threshold reaches its alert's expression.
THRESHOLDS = [
    ("inference-service", "errorRatio", "threshold", 0.123, "HelmMlopsInferenceErrorRatio"),
    ("inference-service", "latencyP99", "seconds", 0.75, "HelmMlopsInferenceLatencyP99"),
    ("inference-service", "batchSaturated", "threshold", 0.66, "HelmMlopsInferenceBatchSaturated"),
    ("inference-service", "featureDrift", "psiThreshold", 0.31, "HelmMlopsInferenceFeatureDrift"),
    ("inference-service", "featureDrift", "ksThreshold", 0.42, "HelmMlopsInferenceFeatureDriftKS"),
    ("inference-service", "predictionDrift", "psiThreshold", 0.27, "HelmMlopsInferencePredictionDrift"),
    ("inference-service", "missingValues", "threshold", 0.011, "HelmMlopsInferenceMissingValues"),
    ("inference-service", "outOfRange", "threshold", 0.022, "HelmMlopsInferenceOutOfRange"),
    ("inference-service", "schemaViolations", "threshold", 0.033, "HelmMlopsInferenceSchemaViolations"),
    ("inference-service", "accuracyDrop", "threshold", 0.71, "HelmMlopsInferenceAccuracyDrop"),
    ("inference-service", "accuracyDrop", "minLabels", 77, "HelmMlopsInferenceAccuracyDrop"),
    ("mlflow", "errorRatio", "threshold", 0.123, "HelmMlopsMlflowErrorRatio"),
    ("mlflow", "latencyP99", "seconds", 4.5, "HelmMlopsMlflowLatencyP99"),
    ("training-job", "jobTooLong", "expectedSeconds", 5400, "HelmMlopsTrainingJobTooLong"),
    ("training-job", "sweepTrialsFailed", "threshold", 3, "HelmMlopsTrainingSweepTrialsFailed"),
]


def _values(chart: str, rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"metrics": {"prometheusRule": {"rules": rules, **extra}}}
    if chart == "inference-service":
        values.update(MONITORING)
    return values


def _chart_for(chart: str, tmp: Path) -> Path:
    return CHARTS / "inference-service" if chart == "inference-service" else CHARTS / chart


@pytest.mark.parametrize(("chart", "rule", "key", "value", "alert"), THRESHOLDS)
def test_each_threshold_and_for_reaches_its_alert(
    chart: str, rule: str, key: str, value: float, alert: str, tmp_path: Path
) -> None:
    path = _chart_for(chart, tmp_path)
    values = _values(chart, {rule: {key: value, "for": "17m", "severity": "critical"}})
    changed = _alerts(_render_rules(path, values, _ci(chart), "helm4", tmp_path))[alert]
    assert re.search(rf"[<>]=? {re.escape(str(value))}\b", changed["expr"]), changed["expr"]
    assert changed["for"] == "17m" and changed["labels"]["severity"] == "critical"


@pytest.mark.parametrize(
    ("chart", "key", "alert"),
    [
        ("inference-service", "down", "HelmMlopsInferenceDown"),
        ("mlflow", "migrationFailed", "HelmMlopsMlflowMigrationFailed"),
        ("training-job", "jobFailed", "HelmMlopsTrainingJobFailed"),
    ],
)
def test_rules_toggle_and_additional_rules(chart: str, key: str, alert: str, tmp_path: Path) -> None:
    path = _chart_for(chart, tmp_path)
    default = _alerts(_render_rules(path, _values(chart, {}), _ci(chart), "helm4", tmp_path))
    assert alert in default
    extra = [{"alert": "MyOwnAlert", "expr": "vector(1) > 0", "labels": {"severity": "warning"}}]
    values = _values(chart, {key: {"enabled": False}}, additionalRules=extra, labels={"release": "kps"})
    rule = _render_rules(path, values, _ci(chart), "helm4", tmp_path)
    alerts = _alerts(rule)
    assert set(alerts) == set(default) - {alert} | {"MyOwnAlert"}
    assert rule["metadata"]["labels"]["release"] == "kps"


@pytest.mark.parametrize(
    ("chart", "bad", "field"),
    [
        ("inference-service", {"rules": {"down": {"for": "five minutes"}}}, "for"),
        ("mlflow", {"rules": {"latencyP99": {"seconds": 0}}}, "seconds"),
        ("training-job", {"rules": {"jobFailed": {"severity": "page"}}}, "severity"),
        ("mlflow", {"rateWindow": "5"}, "rateWindow"),
        ("inference-service", {"rules": {"errorRatio": {"threshold": 5}}}, "threshold"),
    ],
)
def test_schema_refuses_bad_values(chart: str, bad: dict[str, Any], field: str, tmp_path: Path) -> None:
    values = yaml.safe_load(_ci(chart).read_text())
    values["metrics"]["prometheusRule"].update(bad)
    error = template_error(CHARTS / chart, values, "helm4", tmp_path)
    assert "prometheusRule" in error and field in error, error


@pytest.mark.parametrize("chart", list(SCENARIOS))
def test_rule_object_matches_upstream_crd(chart: str, shared_crds: Path, tmp_path: Path) -> None:
    schemas = load_crd_schemas(shared_crds)
    rule = _render_rules(CHARTS / chart, None, _ci(chart), "helm4", tmp_path)
    assert validate_custom_resource(rule, schemas[("monitoring.coreos.com/v1", "PrometheusRule")]) == []
    # A misspelt field is caught, so the check above can fail.
    broken = json.loads(json.dumps(rule))
    broken["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    assert validate_custom_resource(broken, schemas[("monitoring.coreos.com/v1", "PrometheusRule")])


def test_inference_runtimes_other_than_fastapi_get_the_kubernetes_rules_only(tmp_path: Path) -> None:
    on = {"metrics": {"prometheusRule": {"enabled": True}}}
    mlserver = _render_rules(
        CHARTS / "inference-service",
        on,
        CHARTS / "inference-service/ci/mlserver-sklearn-values.yaml",
        "helm4",
        tmp_path,
    )
    assert set(_alerts(mlserver)) == {"HelmMlopsInferenceDown"}
    kserve = _render_rules(
        CHARTS / "inference-service",
        on,
        CHARTS / "inference-service/ci/kserve-sklearn-values.yaml",
        "helm4",
        tmp_path,
    )
    down = _alerts(kserve)["HelmMlopsInferenceDown"]["expr"]
    [isvc] = [
        d
        for d in template(
            CHARTS / "inference-service",
            values_files=[CHARTS / "inference-service/ci/kserve-sklearn-values.yaml"],
        )
        if d["kind"] == "InferenceService"
    ]
    # KServe's raw-deployment predictor Deployment is <InferenceService name>-predictor.
    assert f'deployment=~"{isvc["metadata"]["name"]}-predictor(-.*)?"' in down


def test_training_job_names_match_what_the_chart_creates(tmp_path: Path) -> None:
    chart = CHARTS / "training-job"
    docs = template(chart, values_files=[_ci("training-job")])
    [job] = [d for d in docs if d["kind"] == "Job"]
    expr = _alerts(_rule_objects(docs)[0])["HelmMlopsTrainingJobFailed"]["expr"]
    pattern = re.search(r'job_name=~"([^"]+)"', expr)
    assert pattern and re.fullmatch(pattern.group(1), job["metadata"]["name"])
    assert not re.fullmatch(pattern.group(1), "other-training-job-abc")
    cron = yaml.safe_load((chart / "ci" / "cronjob-image-values.yaml").read_text())
    cron["metrics"] = {"prometheusRule": {"enabled": True}}
    cron_docs = template(chart, values=cron, tmp_dir=tmp_path)
    [cronjob] = [d for d in cron_docs if d["kind"] == "CronJob"]
    cexpr = _alerts(_rule_objects(cron_docs)[0])["HelmMlopsTrainingJobFailed"]["expr"]
    cpattern = re.search(r'job_name=~"([^"]+)"', cexpr)
    # The CronJob controller names its Jobs <CronJob name>-<scheduled time in minutes>.
    assert cpattern and re.fullmatch(cpattern.group(1), f"{cronjob['metadata']['name']}-29123456")
    # No deadline and no expected duration: no too-long rule.
    assert "HelmMlopsTrainingJobTooLong" not in _alerts(_rule_objects(cron_docs)[0])


KUBE_STATE_METRICS = re.compile(r"^kube_")


def _expr_metrics(rule: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for alert in _alerts(rule).values():
        names |= set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", alert["expr"]))
    return {n for n in names if not KUBE_STATE_METRICS.match(n)}


def _exposed(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def _iris_model(tmp: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path = tmp / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), path)
    return path


def test_inference_rules_use_the_names_the_real_runtime_exports(tmp_path: Path) -> None:
    rule = _render_rules(
        CHARTS / "inference-service", MONITORING, _ci("inference-service"), "helm4", tmp_path
    )
    used = _expr_metrics(rule)
    assert {"hm_requests_total", "hm_request_seconds_bucket", "hm_model_ready", "hm_batch_rows_count"} <= used
    import numpy as np
    from sklearn.datasets import load_iris

    reference = tmp_path / "reference.npy"
    np.save(reference, load_iris(return_X_y=True)[0])
    model = _iris_model(tmp_path)
    # helm-mlops runtime serve's own flags, which reach the runtime's --reference and --feedback.
    with runtime_server(
        model, "--trust-model", "--reference", str(reference), "--feedback", name="iris"
    ) as url:
        for body in ({"input": [[5.1, 3.5, 1.4, 0.2]] * 4}, {"input": [[1.0]]}):
            request = urllib.request.Request(
                url + "/predict", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    request_id = resp.headers["X-Request-Id"]
            except urllib.error.HTTPError as exc:
                assert exc.code == 422
        feedback = json.dumps({"request_id": request_id, "labels": [0, 0, 0, 1]}).encode()
        urllib.request.urlopen(
            urllib.request.Request(
                url + "/v2/models/iris/feedback", data=feedback, headers={"Content-Type": "application/json"}
            ),
            timeout=30,
        ).close()
        exposed = ""
        for _ in range(50):  # the monitor's gauges follow the responses, off the request path
            exposed = _exposed(url)
            if "hm_feature_psi{" in exposed and "hm_accuracy " in exposed:
                break
            time.sleep(0.2)
    series = set(re.findall(r"^([a-z_]+)[{ ]", exposed, re.M))
    assert used <= series, used - series
    # The label values the rules match on are the runtime's.
    assert re.search(r'^hm_requests_total\{(?=[^}]*endpoint="predict")(?=[^}]*code="200")', exposed, re.M)
    assert re.search(r'^hm_request_seconds_bucket\{[^}]*endpoint="predict"', exposed, re.M)


def test_mlflow_rules_use_the_names_the_real_mlflow_exports(tmp_path: Path) -> None:
    rule = _render_rules(CHARTS / "mlflow", None, _ci("mlflow"), "helm4", tmp_path)
    used = _expr_metrics(rule)
    assert used == {"mlflow_http_request_total", "mlflow_http_request_duration_seconds_bucket"}
    with mlflow_server(tmp_path, expose_prometheus=tmp_path / "prometheus") as url:
        urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=30).close()
        exposed = _exposed(url)
    series = set(re.findall(r"^([a-z_]+)[{ ]", exposed, re.M))
    assert used <= series, used - series
    assert re.search(r'^mlflow_http_request_total\{[^}]*status="200"', exposed, re.M)


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("chart", list(SCENARIOS))
def test_label_maps_take_only_kubernetes_labels(chart: str, helm_name: str, tmp_path: Path) -> None:
    """A label the API server would refuse fails the render, naming it (the rule's selector labels and
    the pods' labels alike); a good one renders."""
    values = yaml.safe_load(_ci(chart).read_text())
    values["metrics"]["prometheusRule"]["labels"] = {"bad key!": "x"}
    error = template_error(CHARTS / chart, values, helm_name, tmp_path)
    assert "bad key!" in error, error
    values["metrics"]["prometheusRule"]["labels"] = {"release": "kube-prometheus-stack"}
    values["podLabels"] = {"team": "no spaces allowed"}
    error = template_error(CHARTS / chart, values, helm_name, tmp_path)
    assert "no spaces allowed" in error or "podLabels.team" in error, error  # Helm 4 the value, 3 the path
    values["podLabels"] = {"example.com/team": "vision"}
    rule = _render_rules(CHARTS / chart, values, _ci(chart), helm_name, tmp_path)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
