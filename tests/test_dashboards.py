"""The Grafana dashboards (generator/dashboards.py -> charts/*/files/dashboards/*.json -> a ConfigMap):
the committed JSON is what the generator writes now, every panel is well formed and its PromQL parses
with the real promtool, the inference dashboard covers what issue 13 lists, and the ConfigMap renders
on Helm 4 and Helm 3 with the sidecar's label and folder, and nothing while off."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator import dashboards
from tests.support.charts import CHARTS, REPO, find, helm, template, template_error

CHARTS_WITH_DASHBOARDS = ("inference-service", "mlflow", "training-job")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Variables Grafana defines itself; the dashboards' own come from their templating list.
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s"}
# Values each chart needs to render at all.
RENDER_VALUES: dict[str, dict[str, Any]] = {
    "inference-service": yaml.safe_load(
        (CHARTS / "inference-service/ci/fastapi-inline-values.yaml").read_text()
    ),
    "mlflow": {},
    "training-job": {"script": {"content": "print('train')\n"}},
}
_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")


def board(chart: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (CHARTS / chart / "files" / "dashboards" / f"{chart}.json").read_text()
    )
    return result


def panels(chart: str) -> list[dict[str, Any]]:
    return [p for p in board(chart)["panels"] if p["type"] != "row"]


def exprs(chart: str) -> list[str]:
    return [t["expr"] for p in panels(chart) for t in p["targets"]]


def substituted(expr: str, variables: set[str]) -> str:
    """EXPR with its Grafana variables replaced by plausible values; an unknown one fails the test."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in variables | GRAFANA_BUILTINS, f"${name} is no variable of the dashboard: {expr}"
        return "5m" if name.startswith("__") else f"x-{name}"

    return _VAR.sub(one, expr)


# --- the JSON files ------------------------------------------------------------------------------------


def test_generator_covers_exactly_the_charts_with_dashboards() -> None:
    assert sorted(dashboards.DASHBOARDS) == sorted(CHARTS_WITH_DASHBOARDS)
    for chart in CHARTS_WITH_DASHBOARDS:
        assert (CHARTS / chart / "templates" / "dashboards.yaml").is_file()


def test_docs_check_passes_and_fails_on_a_stale_dashboard(tmp_path: Path) -> None:
    """`helm-mlops docs --check` over the committed charts passes; a hand-edited JSON fails it (exit 4,
    naming the file), and `helm-mlops docs` writes it back to what the generator gives."""
    cli = [sys.executable, "-m", "generator", "docs", "--check"]
    ok = subprocess.run(
        [*cli, *(str(CHARTS / c) for c in CHARTS_WITH_DASHBOARDS)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    chart = tmp_path / "mlflow"
    shutil.copytree(CHARTS / "mlflow", chart)
    target = chart / "files" / "dashboards" / "mlflow.json"
    committed = target.read_text()
    edited = json.loads(committed)
    edited["title"] = "edited by hand"
    target.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    stale = subprocess.run([*cli, str(chart)], capture_output=True, text=True)
    assert stale.returncode == 4, stale.stdout + stale.stderr
    assert "mlflow.json" in stale.stderr and "make docs" in stale.stderr
    fixed = subprocess.run([*cli[:-1], str(chart)], capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr
    assert target.read_text() == committed


@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_json_is_sorted_and_ends_with_a_newline(chart: str) -> None:
    text = (CHARTS / chart / "files" / "dashboards" / f"{chart}.json").read_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(
    ("chart", "uid"),
    [
        ("inference-service", "helm-mlops-inference"),
        ("mlflow", "helm-mlops-mlflow"),
        ("training-job", "helm-mlops-training"),
    ],
)
def test_dashboard_model(chart: str, uid: str) -> None:
    d = board(chart)
    assert d["uid"] == uid and len(uid) <= 40  # Grafana's uid limit
    assert "helm-mlops" in d["tags"] and d["title"] and isinstance(d["schemaVersion"], int)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    # The contract's variables: every dashboard selects by $namespace and $service.
    assert {"namespace", "service"} <= set(variables)
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == DATASOURCE
            assert v["definition"].startswith("label_values(")


@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_every_panel_is_well_formed_and_laid_out(chart: str) -> None:
    d = board(chart)
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    names = {v["name"] for v in d["templating"]["list"]}
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
        assert p["title"].strip()
        if p["type"] == "row":
            continue
        assert p["type"] in ("timeseries", "stat")
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, p["title"]
            assert t["expr"].strip(), p["title"]
            substituted(t["expr"], names)  # every variable it uses is defined
            assert "[$__rate_interval]" in t["expr"] or "rate(" not in t["expr"], t["expr"]


def _promtool_check(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make system-deps`")
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)


def test_promtool_parses_every_panel_expression(tmp_path: Path) -> None:
    """All panel queries of all dashboards, variables filled in, in one rule file for the real promtool."""
    every: list[str] = []
    for chart in CHARTS_WITH_DASHBOARDS:
        names = {v["name"] for v in board(chart)["templating"]["list"]}
        every += [substituted(e, names) for e in exprs(chart)]
    result = _promtool_check(every, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(every)} rules found" in result.stdout
    # The same check fails on a broken query, so the pass above means something.
    broken = _promtool_check([*every, "sum by (le (rate(x[5m]))"], tmp_path)
    assert broken.returncode != 0


# What issue 13 asks of the inference dashboard: each item, and the series a panel must read for it.
INFERENCE_ITEMS = {
    "requests/s": r"rate\(hm_requests_total\{",
    "latency percentiles": r"histogram_quantile\(0\.9\d?, .*hm_request_seconds_bucket",
    "errors by code": r"sum by \(code\) \(rate\(hm_requests_total\{[^}]*code=~",
    "rows per model call": r"hm_batch_rows_(sum|bucket)",
    "replicas": r"kube_deployment_status_replicas_available|hm_model_ready",
    "cpu": r"process_cpu_seconds_total",
    "memory": r"process_resident_memory_bytes",
    "feature drift": r"hm_feature_psi",
    "feature KS drift": r"hm_feature_ks",
    "missing values": r"hm_feature_missing_total",
    "out of range": r"hm_feature_out_of_range_total",
    "prediction drift": r"hm_prediction_psi",
    "rolling accuracy": r"hm_accuracy\{",
}


@pytest.mark.parametrize("item", INFERENCE_ITEMS)
def test_inference_dashboard_has_each_issue_item(item: str) -> None:
    found = [e for e in exprs("inference-service") if re.search(INFERENCE_ITEMS[item], e)]
    assert found, f"no inference panel query for {item!r} (pattern {INFERENCE_ITEMS[item]})"


def test_per_feature_panels_split_by_feature() -> None:
    by_title = {p["title"]: p for p in panels("inference-service")}
    for title in ("Feature drift (PSI)", "Feature drift (KS)", "Missing values by feature"):
        assert any("by (feature)" in t["expr"] for t in by_title[title]["targets"]), title
        assert any(t["legendFormat"] == "{{feature}}" for t in by_title[title]["targets"]), title


@pytest.mark.parametrize(
    ("chart", "needed"),
    [
        # Names a real `mlflow server --expose-prometheus` exports (MLflow 3's prometheus_flask_exporter).
        ("mlflow", ["mlflow_http_request_total", "mlflow_http_request_duration_seconds_bucket", "up{"]),
        (
            "training-job",
            [
                "kube_job_status_active",
                "kube_job_status_succeeded",
                "kube_job_status_failed",
                "kube_job_status_start_time",
                'resource="nvidia_com_gpu"',
            ],
        ),
    ],
)
def test_mlflow_and_training_read_their_series(chart: str, needed: list[str]) -> None:
    joined = "\n".join(exprs(chart))
    assert [n for n in needed if n not in joined] == []


def test_every_query_selects_the_release() -> None:
    """Each query narrows to the dashboard's namespace (and service where the series have one), so two
    releases never mix; `or vector(0)` fallbacks aside."""
    for chart in CHARTS_WITH_DASHBOARDS:
        for e in exprs(chart):
            selectors = re.findall(r"[a-z_:]+\{([^}]*)\}", e)
            assert selectors, e
            for s in selectors:
                assert 'namespace="$namespace"' in s, e
                assert "$service" in s, e


# --- the ConfigMap -------------------------------------------------------------------------------------

ON = {
    "enabled": True,
    "label": "grafana_dashboard",
    "labelValue": "yes",
    "folder": "ML Platform",
    "folderAnnotation": "grafana-folder",
    "namespace": "monitoring",
    "labels": {"team": "ml"},
}


def _with_dashboards(chart: str, settings: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(json.dumps(RENDER_VALUES[chart]))
    values.setdefault("metrics", {})["dashboards"] = settings
    return values


def _dashboard_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_off_by_default(chart: str, helm_name: str, tmp_path: Path) -> None:
    docs = template(CHARTS / chart, values=RENDER_VALUES[chart], helm_name=helm_name, tmp_dir=tmp_path)
    assert _dashboard_maps(docs) == []
    assert not any("grafana_dashboard" in (d["metadata"].get("labels") or {}) for d in docs)


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_configmap_carries_the_dashboard_for_the_sidecar(chart: str, helm_name: str, tmp_path: Path) -> None:
    docs = template(
        CHARTS / chart,
        values=_with_dashboards(chart, ON),
        helm_name=helm_name,
        release="obs",
        namespace="ml",
        tmp_dir=tmp_path,
    )
    cm = find(docs, "ConfigMap", f"obs-{chart}-dashboard")
    meta = cm["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["grafana_dashboard"] == "yes"
    assert meta["labels"]["team"] == "ml"
    assert meta["labels"]["app.kubernetes.io/part-of"] == "helm-mlops"
    assert meta["labels"]["app.kubernetes.io/component"] == "dashboard"
    assert meta["annotations"] == {"grafana-folder": "ML Platform"}
    assert list(cm["data"]) == [f"{chart}.json"]
    text = cm["data"][f"{chart}.json"]
    assert json.loads(text) == board(chart)
    assert text == (CHARTS / chart / "files" / "dashboards" / f"{chart}.json").read_text().rstrip("\n")
    assert len(text.encode()) < 1024 * 1024  # a ConfigMap's limit


@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_default_label_release_namespace_and_no_folder(chart: str, tmp_path: Path) -> None:
    docs = template(
        CHARTS / chart, values=_with_dashboards(chart, {"enabled": True}), namespace="ml", tmp_dir=tmp_path
    )
    (cm,) = _dashboard_maps(docs)
    assert cm["metadata"]["namespace"] == "ml"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "grafana_folder" not in (cm["metadata"].get("annotations") or {})


@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_bad_label_or_namespace_is_refused_by_name(chart: str, tmp_path: Path) -> None:
    error = template_error(
        CHARTS / chart, _with_dashboards(chart, {"enabled": True, "label": "not a label!"}), "helm4", tmp_path
    )
    assert "metrics.dashboards.label" in error or "/metrics/dashboards/label" in error, error
    error = template_error(
        CHARTS / chart,
        _with_dashboards(chart, {"enabled": True, "namespace": "Monitoring"}),
        "helm4",
        tmp_path,
    )
    assert "dashboards" in error and "namespace" in error, error


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("chart", CHARTS_WITH_DASHBOARDS)
def test_helm_lint_strict_with_dashboards_on(chart: str, helm_name: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(_with_dashboards(chart, ON)))
    result = helm(helm_name, "lint", "--strict", CHARTS / chart, "-f", values)
    assert result.code == 0, result.stdout + result.stderr


def test_training_job_name_ignores_the_dashboard_values(tmp_path: Path) -> None:
    """Turning the dashboard on is no change to the training run: the Job keeps its name."""
    chart = CHARTS / "training-job"
    off = find(template(chart, values=RENDER_VALUES["training-job"], tmp_dir=tmp_path), "Job")
    on = find(template(chart, values=_with_dashboards("training-job", ON), tmp_dir=tmp_path), "Job")
    assert off["metadata"]["name"] == on["metadata"]["name"]


def test_chart_files_ship_the_dashboards() -> None:
    """Neither .helmignore nor the packaging drops files/dashboards: the chart archive helm-mlops builds
    (honouring .helmignore) carries the JSON byte for byte."""
    from generator.charts.package import chart_files

    for chart in CHARTS_WITH_DASHBOARDS:
        rel = f"files/dashboards/{chart}.json"
        shipped = dict(chart_files(CHARTS / chart))
        assert shipped.get(rel) == (CHARTS / chart / rel).read_bytes(), sorted(shipped)[:20]
    assert "graft charts" in (REPO / "MANIFEST.in").read_text()


# --- what the queries compute: the real promtool evaluates them on given series ----------------------


def _panel_expr(chart: str, title: str, index: int = 0) -> str:
    (p,) = [p for p in panels(chart) if p["title"] == title]
    expr: str = p["targets"][index]["expr"]
    return expr.replace("$__rate_interval", "5m").replace("$namespace", "ml").replace("$service", "s")


def _promtool_eval(
    tmp_path: Path, series: dict[str, str], expr: str, expected: list[tuple[str, float]]
) -> subprocess.CompletedProcess[str]:
    """promtool test rules: SERIES (one sample a minute) loaded, EXPR evaluated at 10m, EXPECTED asked for."""
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    case = {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "promql_expr_test": [
            {
                "expr": expr,
                "eval_time": "10m",
                "exp_samples": [{"labels": labels, "value": value} for labels, value in expected],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": ["empty.yaml"], "tests": [case]}))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make system-deps`")
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, cwd=tmp_path
    )


SEL = 'namespace="ml", service="s"'


@pytest.mark.parametrize(
    "labels",
    [
        'endpoint="predict"',  # scraped as it is exported
        'endpoint="http", exported_endpoint="predict"',  # a ServiceMonitor without honorLabels
    ],
)
def test_requests_by_endpoint_reads_the_runtimes_endpoint(labels: str, tmp_path: Path) -> None:
    series = {f'hm_requests_total{{{SEL}, {labels}, code="200"}}': "0+60x10"}  # 1/s
    expr = _panel_expr("inference-service", "Requests/s by endpoint")
    ok = _promtool_eval(tmp_path, series, expr, [('{endpoint="predict"}', 1.0)])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = _promtool_eval(tmp_path, series, expr, [('{endpoint="http"}', 1.0)])
    assert wrong.returncode != 0


def test_missing_share_per_feature_and_zero_when_none(tmp_path: Path) -> None:
    expr = _panel_expr("inference-service", "Missing values by feature")
    rows = {f"hm_monitor_rows_total{{{SEL}}}": "0+60x10"}  # 1 row/s examined
    some = {**rows, f'hm_feature_missing_total{{{SEL}, feature="age"}}': "0+6x10"}  # 0.1/s missing
    result = _promtool_eval(tmp_path, some, expr, [('{feature="age"}', 0.1)])
    assert result.returncode == 0, result.stdout + result.stderr
    result = _promtool_eval(tmp_path, rows, expr, [("{}", 0.0)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_training_duration_for_finished_and_running_jobs(tmp_path: Path) -> None:
    sel = 'namespace="ml"'
    series = {
        f'kube_job_status_start_time{{{sel}, job_name="s-0123456789"}}': "60x10",  # started at 60 s
        f'kube_job_status_completion_time{{{sel}, job_name="s-0123456789"}}': "360x10",  # done at 360 s
        f'kube_job_status_start_time{{{sel}, job_name="s-abcdefabcd"}}': "420x10",  # still running
        f'kube_job_status_start_time{{{sel}, job_name="other-0123456789"}}': "0x10",  # another release
    }
    expr = _panel_expr("training-job", "Job duration")
    expected = [('{job_name="s-0123456789"}', 300.0), ('{job_name="s-abcdefabcd"}', 600.0 - 420.0)]
    result = _promtool_eval(tmp_path, series, expr, expected)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mlflow_migration_panel_selects_the_migration_jobs_the_chart_renders(tmp_path: Path) -> None:
    """The panel's job_name pattern, $service set to the release's Service, matches the migration Job
    the chart really renders (a wrong pattern reads 0 forever: the panel falls back to vector(0))."""
    docs = template(
        CHARTS / "mlflow",
        values_files=[CHARTS / "mlflow/ci/alerts-values.yaml"],
        release="m1",
        tmp_dir=tmp_path,
    )
    jobs = [d["metadata"]["name"] for d in docs if d["kind"] == "Job" and "migrat" in d["metadata"]["name"]]
    [service] = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Service" and d["spec"].get("ports", [{}])[0].get("name") == "http"
    ]
    assert jobs, "the alerts scenario (a database backend) renders a migration Job"
    patterns = set(re.findall(r'job_name=~"([^"]+)"', "\n".join(exprs("mlflow"))))
    assert patterns
    for pattern in patterns:
        regex = pattern.replace("$service", re.escape(service))
        assert all(re.fullmatch(regex, job) for job in jobs), (pattern, jobs)
