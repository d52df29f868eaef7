"""Model monitoring in the runtime, for real: a scikit-learn classifier served with a reference sample
(`HM_RUNTIME_REFERENCE`, .csv and .npy), fed rows from the reference's distribution (no drift) and rows
with two features shifted (drift on exactly those two). The drift gauges are checked against
scipy.stats.ks_2samp and a PSI computed here by hand from the reference's deciles; plus the quality
counters, the schema-violation reasons, the feedback route's rolling accuracy, and a --reference that
cannot be used (exit 2 naming the option)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import ks_2samp  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier

from tests.support.charts import REPO, find, template, template_error
from tests.support.servers import free_port, http_json, mlflow_server, runtime_server

pytestmark = pytest.mark.real
RUNTIME = REPO / "charts" / "inference-service" / "files"
NAMES = ["a", "b", "c", "d", "e"]
WINDOW = 1000


def sample(n: int, seed: int) -> np.ndarray:
    """Rows of 5 features: three normal, one categorical (0..3), one uniform; float32-exact values,
    so the server's float32 copy of a row is the row sent."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack(
        [
            rng.normal(0, 1, n),
            rng.normal(5, 2, n),
            rng.normal(-3, 0.5, n),
            rng.integers(0, 4, n).astype(float),
            rng.uniform(0, 10, n),
        ]
    )
    return rows.astype(np.float32).astype(np.float64)


REFERENCE = sample(2000, seed=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("monitoring")
    y = (REFERENCE[:, 0] + (REFERENCE[:, 1] - 5) / 2 > 0).astype(int) + (REFERENCE[:, 3] > 2)
    model = HistGradientBoostingClassifier(max_iter=20).fit(REFERENCE, y)
    joblib.dump(model, root / "model.joblib")
    np.save(root / "reference.npy", REFERENCE)
    with (root / "reference.csv").open("w") as f:
        f.write(",".join(NAMES) + "\n")
        for row in REFERENCE:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    np.save(root / "narrow.npy", REFERENCE[:, :3])
    (root / "reference.txt").write_text("1 2 3 4 5\n")
    (root / "garbage.csv").write_text("a,b,c,d,e\n1,2,x,4,5\n")
    (root / "twice.csv").write_text("a,b,c,c,e\n1,2,3,4,5\n")
    return {p.name: p for p in root.iterdir()}


def env(reference: Path, **more: str) -> dict[str, str]:
    return {
        "HM_RUNTIME_REFERENCE": str(reference),
        "HM_RUNTIME_MONITOR_WINDOW": str(WINDOW),
        "HM_RUNTIME_FEEDBACK": "true",
        **more,
    }


@pytest.fixture(scope="module")
def url(files: dict[str, Path]) -> Iterator[str]:
    with runtime_server(
        files["model.joblib"], "--trust-model", name="m", env=env(files["reference.csv"])
    ) as served:
        yield served


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def send(url: str, rows: np.ndarray, batch: int = 50) -> None:
    for start in range(0, len(rows), batch):
        code, body = http_json(url + "/predict", {"input": rows[start : start + batch].tolist()})
        assert code == 200, body


def settled(url: str, rows_total: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The metrics once the monitor has examined `rows_total` rows (a scrape drains what is pending)."""
    deadline = time.monotonic() + 10
    while True:
        metrics = scrape(url)
        if value(metrics, "hm_monitor_rows_total") >= rows_total or time.monotonic() > deadline:
            return metrics
        time.sleep(0.2)


def by_hand(reference: np.ndarray, window: np.ndarray) -> tuple[float, float | None]:
    """PSI over the reference's decile bins (one bin per value for <= 10 distinct values), each
    fraction floored at 1e-4; and KS from scipy (numeric features only)."""
    distinct = np.unique(reference)
    categorical = len(distinct) <= 10
    edges = (
        distinct[1:]
        if categorical
        else np.unique(np.percentile(reference, [10, 20, 30, 40, 50, 60, 70, 80, 90]))
    )
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    expected = np.maximum(np.histogram(reference, bins)[0] / len(reference), 1e-4)
    actual = np.maximum(np.histogram(window, bins)[0] / len(window), 1e-4)
    psi = float(np.sum((actual - expected) * np.log(actual / expected)))
    return psi, None if categorical else float(ks_2samp(reference, window).statistic)


def check_against_hand(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], window: np.ndarray
) -> None:
    for j, name in enumerate(NAMES):
        psi, ks = by_hand(REFERENCE[:, j], window[:, j])
        assert value(metrics, "hm_feature_psi", feature=name) == pytest.approx(psi, abs=1e-9), name
        if ks is None:
            assert ("hm_feature_ks", (("feature", name),)) not in metrics  # categorical: no KS
        else:
            assert value(metrics, "hm_feature_ks", feature=name) == pytest.approx(ks, abs=1e-9), name


def test_no_drift_in_distribution_then_drift_on_exactly_the_shifted_features(url: str) -> None:
    before = value(scrape(url), "hm_monitor_rows_total")
    same = sample(WINDOW, seed=2)
    send(url, same)
    metrics = settled(url, before + WINDOW)
    assert value(metrics, "hm_monitor_rows_total") == before + WINDOW
    assert value(metrics, "hm_monitor_window_rows") == WINDOW
    for name in NAMES:
        assert value(metrics, "hm_feature_psi", feature=name) < 0.1, name
    for name in ("a", "b", "c", "e"):
        assert value(metrics, "hm_feature_ks", feature=name) < 0.1, name
    assert value(metrics, "hm_prediction_psi") < 0.1
    check_against_hand(metrics, same)

    shifted = sample(WINDOW, seed=3)
    shifted[:, 1] += 3.0  # b: 1.5 standard deviations
    shifted[:, 4] = shifted[:, 4] * 0.5 + 6.0  # e: squeezed to the upper part of [0, 10], some beyond
    send(url, shifted)
    metrics = settled(url, before + 2 * WINDOW)
    drifted = {n for n in NAMES if value(metrics, "hm_feature_psi", feature=n) > 0.25}
    assert drifted == {"b", "e"}
    assert {n for n in ("a", "b", "c", "e") if value(metrics, "hm_feature_ks", feature=n) > 0.2} == {"b", "e"}
    check_against_hand(metrics, shifted)
    assert value(metrics, "hm_prediction_psi") > 0.1  # b moves the predicted classes


def test_quality_counters(url: str, files: dict[str, Path]) -> None:
    metrics = scrape(url)
    rows_before = value(metrics, "hm_monitor_rows_total")
    missing = {n: value(metrics, "hm_feature_missing_total", feature=n) for n in NAMES}
    outside = {n: value(metrics, "hm_feature_out_of_range_total", feature=n) for n in NAMES}
    rows = sample(40, seed=4)
    rows[:7, 0] = np.nan  # sent as null: a missing value this model takes
    rows[10:13, 2] = REFERENCE[:, 2].max() + 1
    rows[20:25, 4] = REFERENCE[:, 4].min() - 1
    payload = [[None if np.isnan(v) else float(v) for v in row] for row in rows]
    code, body = http_json(url + "/predict", {"input": payload})
    assert code == 200, body
    metrics = settled(url, rows_before + 40)
    lo, hi = np.nanmin(REFERENCE, axis=0), np.nanmax(REFERENCE, axis=0)
    for j, name in enumerate(NAMES):
        column = rows[:, j]
        assert (
            value(metrics, "hm_feature_missing_total", feature=name) - missing[name] == np.isnan(column).sum()
        )
        beyond = int(np.sum((column < lo[j]) | (column > hi[j])))
        assert value(metrics, "hm_feature_out_of_range_total", feature=name) - outside[name] == beyond, name
    assert value(metrics, "hm_prediction_class_total", **{"class": "0"}) > 0


def test_schema_violations_by_reason(url: str) -> None:
    before = scrape(url)
    cases = [
        (b"{not json", 400, "invalid_json"),
        (json.dumps({"input": [[1, 2, 3]]}).encode(), 422, "shape"),
        (json.dumps({"input": [[1, 2, "x", 4, 5]]}).encode(), 422, "datatype"),
        (b'{"input": [[1, 2, 3, 4, Infinity]]}', 400, "invalid_json"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 1e300]}]}',
            422,
            "out_of_range",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "INT8", "data": [1, 2, 3, 4, 300]}]}',
            422,
            "out_of_range",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}]}',
            422,
            "shape",
        ),
        (json.dumps({"rows": []}).encode(), 422, "malformed"),
    ]
    for raw, status, _reason in cases:
        path = "/v2/models/m/infer" if raw.startswith(b'{"inputs"') else "/predict"
        code, body = http_json(url + path, raw=raw)
        assert code == status, (raw, body)
    after = scrape(url)
    for reason in {r for _, _, r in cases}:
        sent = sum(1 for _, _, r in cases if r == reason)
        delta = value(after, "hm_schema_violations_total", reason=reason) - value(
            before, "hm_schema_violations_total", reason=reason
        )
        assert delta == sent, reason
    assert value(after, "hm_schema_violations_total", reason="non_finite") >= 0  # every reason is exported


def infer(url: str, rows: np.ndarray, request_id: str | None) -> tuple[str, dict[str, Any]]:
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.reshape(-1).tolist()}
    headers = {"Content-Type": "application/json", **({"X-Request-Id": request_id} if request_id else {})}
    request = urllib.request.Request(
        url + "/v2/models/m/infer", json.dumps({"inputs": [tensor]}).encode(), headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["X-Request-Id"], json.loads(response.read())


def test_feedback_gives_rolling_accuracy(url: str) -> None:
    rows = sample(4, seed=5)
    predicted = []
    for k in range(4):
        rid, body = infer(url, rows[k : k + 1], f"req-{k}")
        assert rid == f"req-{k}" and body["id"] == f"req-{k}"
        predicted.append(body["outputs"][0]["data"][0])
    generated, body = infer(url, rows[:1], None)  # no id sent: one is made, in the header and the body
    assert len(generated) >= 16 and body["id"] == generated
    labels = [[p] for p in predicted]
    labels[2] = [predicted[2] + 1]  # 3 of 4 correct
    items = [{"request_id": f"req-{k}", "labels": labels[k]} for k in range(4)]
    code, counts = http_json(url + "/v2/models/m/feedback", items)
    assert code == 200 and counts == {"correct": 3, "incorrect": 1, "unknown": 0}, counts
    code, counts = http_json(url + "/v2/models/m/feedback", {"request_id": "never-seen", "labels": [1]})
    assert code == 200 and counts == {"correct": 0, "incorrect": 0, "unknown": 1}, counts
    metrics = scrape(url)
    assert value(metrics, "hm_accuracy") == pytest.approx(0.75)
    assert value(metrics, "hm_accuracy_labels") == 4
    assert value(metrics, "hm_feedback_total", outcome="correct") == 3
    assert value(metrics, "hm_feedback_total", outcome="incorrect") == 1
    assert value(metrics, "hm_feedback_total", outcome="unknown") == 1
    code, body = http_json(url + "/v2/models/m/feedback", {"request_id": "x"})
    assert code == 422 and "labels" in body["error"], body
    code, body = http_json(url + "/v2/models/m/feedback", raw=b"{oops")
    assert code == 400, body


def test_npy_reference_names_features_f0_to_fn(files: dict[str, Path]) -> None:
    more = {"HM_RUNTIME_MONITOR_SAMPLE_RATE": "0.5", "HM_RUNTIME_FEEDBACK": "false"}
    reference = env(files["reference.npy"], **more)
    with runtime_server(files["model.joblib"], "--trust-model", name="m", env=reference) as served:
        send(served, sample(400, seed=6), batch=100)
        metrics = settled(served, 150)
        examined = value(metrics, "hm_monitor_rows_total")
        assert 150 <= examined <= 250  # about half of 400
        assert {dict(k[1]).get("feature") for k in metrics if k[0] == "hm_feature_psi"} == {
            f"f{i}" for i in range(5)
        }
        code, body = http_json(served + "/v2/models/m/feedback", {"request_id": "x", "labels": [1]})
        assert code == 404 and "--feedback" in body["error"]
        assert value(metrics, "process_resident_memory_bytes") > 0
        assert ("hm_batch_full_total", ()) in metrics


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("missing.csv", "no such file"),
        ("reference.txt", "unknown format"),
        ("garbage.csv", "cannot read it as numbers"),
        ("twice.csv", "column name(s) 'c' appear more than once"),
        ("narrow.npy", "has 3 columns but the model takes 5 features"),
    ],
)
def test_an_unusable_reference_exits_2_naming_the_option(
    files: dict[str, Path], reference: str, says: str
) -> None:
    path = files["model.joblib"].parent / reference  # missing.csv is not there
    argv = [sys.executable, "-m", "hm_runtime", "--model", str(files["model.joblib"]), "--trust-model"]
    argv += ["--port", str(free_port()), "--reference", str(path), "--device", "cpu"]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(RUNTIME)}
    )
    assert proc.returncode == 2, proc.stderr
    assert "--reference" in proc.stderr and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


CHART = REPO / "charts" / "inference-service"


def server_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "server")
    return {e["name"]: e.get("value", "") for e in server["env"]}


def test_the_chart_fetches_the_reference_from_the_models_bucket_and_sets_the_env(tmp_path: Path) -> None:
    docs = template(CHART, values_files=[CHART / "ci" / "fastapi-monitoring-values.yaml"], tmp_dir=tmp_path)
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    fetch = next(c for c in pod["initContainers"] if c["name"] == "fetch-reference")
    command = fetch["command"]
    assert command[command.index("--s3") + 1] == "models/churn/reference.csv"
    assert command[command.index("--dest") + 1] == "/opt/helm-mlops/reference"
    env = server_env(docs)
    assert env["HM_RUNTIME_REFERENCE"] == "/opt/helm-mlops/reference/reference.csv"
    assert env["HM_RUNTIME_MONITOR_SAMPLE_RATE"] == "0.5"
    assert env["HM_RUNTIME_MONITOR_WINDOW"] == "2000"
    assert env["HM_RUNTIME_FEEDBACK"] == "true" and env["HM_RUNTIME_FEEDBACK_WINDOW"] == "500"
    assert {"name": "reference", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]


def test_the_chart_takes_the_reference_from_the_claim_or_mlflow_and_is_off_by_default(tmp_path: Path) -> None:
    pvc = {
        "model": {
            "trustModel": True,
            "source": {"type": "pvc", "pvc": {"claimName": "c", "path": "m/model.pkl"}},
        }
    }
    env = server_env(template(CHART, values=pvc, tmp_dir=tmp_path))
    assert not any(k.startswith(("HM_RUNTIME_REFERENCE", "HM_RUNTIME_MONITOR")) for k in env)
    on = {**pvc, "monitoring": {"enabled": True, "reference": {"file": "m/reference.npy"}}}
    docs = template(CHART, values=on, tmp_dir=tmp_path)
    assert server_env(docs)["HM_RUNTIME_REFERENCE"] == "/opt/helm-mlops/model-src/m/reference.npy"
    assert server_env(docs)["HM_RUNTIME_FEEDBACK"] == "false"
    mlflow = {
        "model": {
            "trustModel": True,
            "source": {
                "type": "mlflow",
                "mlflow": {"uri": "models:/churn/3", "trackingUri": "http://mlflow:5000"},
            },
        },
        "monitoring": {"enabled": True, "reference": {"file": "runs:/abc123/reference.csv"}},
    }
    assert server_env(template(CHART, values=mlflow, tmp_dir=tmp_path))["HM_RUNTIME_REFERENCE"] == (
        "runs:/abc123/reference.csv"
    )


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"runtime": "mlserver"}, "monitoring.enabled: model monitoring runs in the helm-mlops runtime only"),
        (
            {"monitoring": {"enabled": True, "reference": {"file": ""}}},
            "monitoring.reference.file is required",
        ),
        ({"monitoring": {"enabled": True, "sampleRate": 0}}, "sampleRate"),
    ],
)
def test_the_chart_refuses_monitoring_it_cannot_do(tmp_path: Path, values: dict[str, Any], says: str) -> None:
    base: dict[str, Any] = {
        "model": {"trustModel": True, "source": {"type": "pvc", "pvc": {"claimName": "c"}}},
        "monitoring": {"enabled": True, "reference": {"file": "reference.csv"}},
    }
    merged = {**base, **values}
    if "monitoring" in values:
        merged["monitoring"] = {**base["monitoring"], **values["monitoring"]}
    assert says in template_error(CHART, merged, "helm4", tmp_path)


def test_a_reference_logged_in_an_mlflow_run_is_fetched(files: dict[str, Path], tmp_path: Path) -> None:
    import mlflow

    with mlflow_server(tmp_path) as tracking:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_experiment("runtime-monitoring")
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(files["reference.csv"]))
        uri = f"runs:/{run.info.run_id}/reference.csv"
        more = {"MLFLOW_TRACKING_URI": tracking, "HM_RUNTIME_FEEDBACK": "false"}
        with runtime_server(
            files["model.joblib"], "--trust-model", name="m", env=env(Path(uri), **more)
        ) as url:
            rows = sample(200, seed=7)
            send(url, rows)
            metrics = settled(url, 200)
            psi, _ks = by_hand(REFERENCE[:, 1], rows[:, 1])
            assert value(metrics, "hm_feature_psi", feature="b") == pytest.approx(psi, abs=1e-9)


def test_a_regressors_predictions_are_a_histogram_at_the_reference_deciles() -> None:
    sys.path.insert(0, str(RUNTIME))
    from hm_runtime.monitoring import Collector, Monitor, Predictions, Reference
    from prometheus_client import CollectorRegistry, generate_latest

    rng = np.random.default_rng(8)
    reference_predictions = rng.normal(10, 3, 2000)
    monitor = Monitor(
        Reference.build(REFERENCE, NAMES, 200), Predictions.build(reference_predictions, classifier=False)
    )
    served = rng.normal(12, 3, 300)
    monitor.submit(sample(300, seed=9), served)
    registry = CollectorRegistry()
    registry.register(Collector(monitor, None))
    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    edges = np.unique(np.percentile(reference_predictions, [10, 20, 30, 40, 50, 60, 70, 80, 90]))
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in metrics.items()
        if name == "hm_prediction_value_bucket" and dict(labels)["le"] != "+Inf"
    )
    assert [le for le, _ in buckets] == pytest.approx(list(edges), rel=1e-12)
    assert [count for _, count in buckets] == [int(np.sum(served <= edge)) for edge in edges]
    assert value(metrics, "hm_prediction_value_bucket", le="+Inf") == 300
    assert value(metrics, "hm_prediction_value_sum") == pytest.approx(served.sum())
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    p = np.maximum(np.histogram(served, bins)[0] / 300, 1e-4)
    q = np.maximum(np.histogram(reference_predictions, bins)[0] / 2000, 1e-4)
    assert value(metrics, "hm_prediction_psi") == pytest.approx(
        float(np.sum((p - q) * np.log(p / q))), abs=1e-9
    )


@pytest.mark.parametrize(
    ("args", "environ", "says"),
    [
        (
            ["--monitor-sample-rate", "0"],
            {},
            "--monitor-sample-rate (HM_RUNTIME_MONITOR_SAMPLE_RATE) must be",
        ),
        ([], {"HM_RUNTIME_MONITOR_SAMPLE_RATE": "half"}, "must be a fraction in (0, 1], not 'half'"),
        (
            ["--monitor-window", "0"],
            {},
            "--monitor-window (HM_RUNTIME_MONITOR_WINDOW) must be a whole number",
        ),
        ([], {"HM_RUNTIME_FEEDBACK_WINDOW": "-3"}, "--feedback-window (HM_RUNTIME_FEEDBACK_WINDOW) must be"),
        (["--monitor-max-features", "x"], {}, "--monitor-max-features (HM_RUNTIME_MONITOR_MAX_FEATURES)"),
        # A boolean the chart did not write ("1", "True") would silently mean off.
        ([], {"HM_RUNTIME_FEEDBACK": "1"}, "HM_RUNTIME_FEEDBACK (--feedback) must be true or false, not '1'"),
        (
            [],
            {"HM_RUNTIME_TRUST_MODEL": "True"},
            "HM_RUNTIME_TRUST_MODEL (--trust-model) must be true or false",
        ),
    ],
)
def test_bad_monitoring_flags_exit_2_naming_them(args: list[str], environ: dict[str, str], says: str) -> None:
    argv = [sys.executable, "-m", "hm_runtime", "--model", "model.joblib", *args]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(RUNTIME), **environ},
    )
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
