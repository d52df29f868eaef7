"""Values that install would refuse later are refused by the charts themselves, with the value named, so
plain helm users get the message too (issue 15, item 13): requests above limits (every container whose
resources are values), cron schedules Kubernetes cannot parse, inline model base64 that is not base64,
ingress hosts that are not DNS names, and images with an empty tag (which used to break the YAML).

The chart helpers behind them are checked against Kubernetes' own parsers: the quantity helper against
`kubernetes.utils.quantity.parse_quantity`, the cron helper against robfig/cron v3 (what the CronJob
validation calls), built from the Go module cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import localcontext
from pathlib import Path
from typing import Any, NoReturn

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity

from tests.support.charts import CHARTS, REPO, find, pod_specs, template, template_error

NAMES = ["training-job", "mlflow", "inference-service"]
PVC_MODEL = {"model": {"trustModel": True, "source": {"type": "pvc", "pvc": {"claimName": "models"}}}}
# The least each chart needs to render.
BASE: dict[str, dict[str, Any]] = {
    "training-job": {"script": {"content": "print('train')\n"}},
    "mlflow": {},
    "inference-service": PVC_MODEL,
}
HELMS = ["helm4", "helm3"]
PG = {"backendStore": {"type": "postgresql", "postgresql": {"inCluster": True}}}
MINIO = {"artifactStore": {"type": "minio", "minio": {"inCluster": True}}}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _at(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for "a.b"."""
    head, *rest = path.split(".")
    return {head: _at(".".join(rest), value) if rest else value}


# --- requests above limits -------------------------------------------------------------------------

# Every resources value of every chart (the containers with fixed resources are fixed below their limits).
RESOURCE_PATHS = [
    ("training-job", "resources", {}),
    ("training-job", "tests.resources", {}),
    ("mlflow", "resources", {}),
    ("mlflow", "migration.resources", PG),
    ("mlflow", "postgresql.resources", PG),
    ("mlflow", "artifactStore.minio.resources", MINIO),
    (
        "mlflow",
        "gc.resources",
        {"gc": {"enabled": True}, **PG, **MINIO},
    ),
    ("inference-service", "resources", {}),
]


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize(
    ("chart", "path", "extra"), RESOURCE_PATHS, ids=[f"{c}:{p}" for c, p, _ in RESOURCE_PATHS]
)
def test_requests_above_limits_are_refused_for_every_resources_value(
    chart: str, path: str, extra: dict[str, Any], helm_name: str, tmp_path: Path
) -> None:
    values = _merge(BASE[chart], extra)
    # The scenario renders as it is (so the refusal below is the resources' doing).
    template(CHARTS / chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    bad = _at(path, {"requests": {"cpu": "4", "memory": "1500Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}})
    message = template_error(CHARTS / chart, _merge(values, bad), helm_name, tmp_path)
    assert f"{path}.requests.cpu (4) is above {path}.limits.cpu (1)" in message, message
    assert f"{path}.requests.memory (1500Mi) is above {path}.limits.memory (1Gi)" in message, message


@pytest.mark.parametrize("chart", NAMES)
def test_equal_quantities_in_other_units_are_not_above_their_limits(chart: str, tmp_path: Path) -> None:
    resources = {
        "requests": {"cpu": "1000m", "memory": "1024Mi", "ephemeral-storage": "0.5Gi"},
        "limits": {"cpu": 1, "memory": "1Gi", "ephemeral-storage": "512Mi"},
    }
    docs = template(CHARTS / chart, values=_merge(BASE[chart], {"resources": resources}), tmp_dir=tmp_path)
    rendered = [
        c["resources"]
        for _, spec in pod_specs(docs)
        for c in spec["containers"]
        if c.get("resources", {}).get("requests", {}).get("cpu") == "1000m"
    ]
    assert rendered, "the resources reach a container"


@pytest.mark.parametrize("helm_name", HELMS)
def test_every_resource_name_is_compared_ephemeral_storage_and_gpus_included(
    helm_name: str, tmp_path: Path
) -> None:
    chart = CHARTS / "training-job"
    resources = {"requests": {"ephemeral-storage": "2G"}, "limits": {"ephemeral-storage": "1Gi"}}
    message = template_error(
        chart, _merge(BASE["training-job"], {"resources": resources}), helm_name, tmp_path
    )
    assert (
        "resources.requests.ephemeral-storage (2G) is above resources.limits.ephemeral-storage (1Gi)"
        in message
    )
    gpus = {"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 1}}
    message = template_error(
        CHARTS / "inference-service", _merge(PVC_MODEL, {"resources": gpus}), helm_name, tmp_path
    )
    assert "resources.requests.nvidia.com/gpu (2) is above resources.limits.nvidia.com/gpu (1)" in message


# --- the quantity helper against Kubernetes' parser -----------------------------------------------

PROBE = """{{- $out := list -}}
{{- range .Values.probe.quantities }}{{ $out = append $out (include "CHART.quantity" .) }}{{ end -}}
{{- range .Values.probe.crons }}{{ $out = append $out (include "CHART.cronError" (list "s" . "")) }}{{ end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: probe
data:
  out: {{ toJson $out | quote }}
"""


def _probe(
    tmp_path: Path, chart: str, helm_name: str, quantities: tuple[Any, ...] = (), crons: tuple[str, ...] = ()
) -> list[str]:
    """The chart's own helpers applied to each input: the chart, copied with a probe template added
    (and its schema dropped, which would refuse the `probe` value)."""
    copy = tmp_path / "chart" / chart
    if not copy.exists():
        shutil.copytree(CHARTS / chart, copy)
        (copy / "values.schema.json").unlink()
        (copy / "templates" / "zz-probe.yaml").write_text(PROBE.replace("CHART", chart))
    values = {**BASE[chart], "probe": {"quantities": list(quantities), "crons": list(crons)}}
    docs = template(
        copy, values=values, helm_name=helm_name, tmp_dir=tmp_path, extra=["-s", "templates/zz-probe.yaml"]
    )
    out = json.loads(find(docs, "ConfigMap", "probe")["data"]["out"])
    assert len(out) == len(quantities) + len(crons)
    return list(out)


def _kube(quantity: Any) -> float:
    with localcontext() as ctx:
        ctx.prec = 200  # exact: 999999.9999Ei has 29 digits
        return float(parse_quantity(quantity))  # type: ignore[no-untyped-call]


FIXED_QUANTITIES: list[Any] = [
    "500m", "0.5", "1", "1000m", "1Gi", "1.5Gi", "1024Mi", "1e3", "1E3", "1E", "1e-3", "1.", ".5",
    "+1k", "-1m", "1n", "250u", "12Mi", "3Ti", "2Pi", "1Ei", "7P", "1.e3", "0", "0.000001",
    "123456789", 4, 0.25, 2000000,
]  # fmt: skip


@pytest.mark.parametrize("helm_name", ["helm4", "helm3", "helm3.17"])
def test_quantity_helper_agrees_with_kubernetes(helm_name: str, tmp_path: Path) -> None:
    got = _probe(tmp_path, "training-job", helm_name, quantities=tuple(FIXED_QUANTITIES))
    for quantity, value in zip(FIXED_QUANTITIES, got, strict=True):
        assert float(value) == _kube(quantity), (quantity, value)
    # Not quantities: nothing (the schema names them), so no comparison happens.
    assert (
        _probe(tmp_path, "training-job", helm_name, quantities=("2 cores", "4GB", "1e1.5", "Gi")) == [""] * 4
    )


_DIGITS = "0123456789"
_NUMBER = st.one_of(
    st.text(_DIGITS, min_size=1, max_size=6),
    st.builds("{}.{}".format, st.text(_DIGITS, min_size=1, max_size=6), st.text(_DIGITS, max_size=4)),
    st.builds(".{}".format, st.text(_DIGITS, min_size=1, max_size=4)),
)
_SUFFIX = st.one_of(
    st.sampled_from(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "", "k", "M", "G", "T", "P", "E"]),
    st.builds(
        "{}{}{}".format,
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.text(_DIGITS, min_size=1, max_size=2),
    ),
)
# Kubernetes' quantity grammar: <signedNumber><suffix>.
QUANTITY = st.builds("{}{}{}".format, st.sampled_from(["", "+", "-"]), _NUMBER, _SUFFIX)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quantities=st.lists(QUANTITY, min_size=30, max_size=60))
def test_quantity_helper_agrees_with_kubernetes_on_generated_quantities(
    quantities: list[str], tmp_path: Path
) -> None:
    got = _probe(tmp_path, "training-job", "helm4", quantities=tuple(quantities))
    for quantity, value in zip(quantities, got, strict=True):
        assert float(value) == _kube(quantity), (quantity, value)


def _helpers_section(chart: str) -> str:
    text = (CHARTS / chart / "templates" / "_helpers.tpl").read_text()
    section = text[text.index("{{/* Checks ---") :]
    return section.replace(f'"{chart}.', '"CHART.')


def test_the_check_helpers_are_the_same_in_every_chart() -> None:
    first = _helpers_section(NAMES[0])
    for chart in NAMES[1:]:
        assert _helpers_section(chart) == first, f"{chart}'s check helpers differ from {NAMES[0]}'s"


# --- cron schedules ------------------------------------------------------------------------------

GOOD_SCHEDULES = [
    "0 3 * * *", "*/5 * * * *", "0 0 1 JAN-MAR mon-FRI", "0 0 * * sun,sat", "08 09 * * *",
    "5/15 * * * *", "? * ? * ?", "0-59/10 0-23 1-31 1-12 0-6", "  0 3 * * 1  ", "@daily", "@hourly",
    "@weekly", "@monthly", "@yearly", "@annually", "@midnight", "@every 1h30m", "0\t3 * * *",
    "1,,3 * * * *",  # robfig/cron drops empty list items
]  # fmt: skip
BAD_SCHEDULES = [
    ("not a cron", "3 fields instead of 5"),
    ("99 99 * * *", 'the minute field "99" goes above 59'),
    ("0 24 * * *", 'the hour field "24" goes above 23'),
    ("0 0 0 * *", 'the day of month field "0" starts below 1'),
    ("0 0 * 13 *", 'the month field "13" goes above 12'),
    ("0 0 * * 7", 'the day of week field "7" goes above 6'),
    ("0 0 * FOO *", '"FOO" is not a number or a name'),
    ("*/0 * * * *", "is 0"),
    ("5-3 * * * *", "ends before it starts"),
    ("1-2-3 * * * *", "more than one -"),
    ("*/2/3 * * * *", "more than one /"),
    ("0 3 * * * *", "6 fields instead of 5"),
    ("@fortnightly", "not a descriptor"),
    ("CRON_TZ=UTC 0 3 * * *", "TZ="),
    ("TZ=Europe/Berlin 0 3 * * *", "TZ="),
    ("", "0 fields"),
]


@pytest.mark.parametrize("helm_name", HELMS)
def test_cron_schedules_kubernetes_refuses_are_refused_naming_the_value(
    helm_name: str, tmp_path: Path
) -> None:
    chart = CHARTS / "training-job"
    for schedule in GOOD_SCHEDULES:
        values = {**BASE["training-job"], "cronJob": {"schedule": schedule}}
        docs = template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
        assert find(docs, "CronJob")["spec"]["schedule"] == schedule
    for schedule, why in BAD_SCHEDULES[:-1]:  # an empty cronJob.schedule means a one-off Job
        message = template_error(
            chart, {**BASE["training-job"], "cronJob": {"schedule": schedule}}, helm_name, tmp_path
        )
        assert f"cronJob.schedule ({json.dumps(schedule)}) is not a schedule Kubernetes accepts" in message
        assert why in message, message
    message = template_error(
        chart, {**BASE["training-job"], "cronJob": {"schedule": "TZ=UTC 0 3 * * *"}}, helm_name, tmp_path
    )
    assert "set cronJob.timeZone" in message, message


@pytest.mark.parametrize("helm_name", HELMS)
def test_cron_time_zone_is_an_explicit_iana_name(helm_name: str, tmp_path: Path) -> None:
    chart = CHARTS / "training-job"
    for zone in ["Europe/Berlin", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires"]:
        values = {**BASE["training-job"], "cronJob": {"schedule": "@daily", "timeZone": zone}}
        docs = template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
        assert find(docs, "CronJob")["spec"]["timeZone"] == zone
    for zone in ["Local", "local", "Europe Berlin", "/etc/localtime", "UTC;rm"]:
        values = {**BASE["training-job"], "cronJob": {"schedule": "@daily", "timeZone": zone}}
        message = template_error(chart, values, helm_name, tmp_path)
        assert f"cronJob.timeZone ({json.dumps(zone)}) is not a time zone Kubernetes accepts" in message


@pytest.mark.parametrize("helm_name", HELMS)
def test_mlflow_gc_schedule_is_checked(helm_name: str, tmp_path: Path) -> None:
    chart = CHARTS / "mlflow"
    gc = {"gc": {"enabled": True}, **PG, **MINIO}
    docs = template(
        chart, values=_merge(gc, {"gc": {"schedule": "@daily"}}), helm_name=helm_name, tmp_dir=tmp_path
    )
    assert find(docs, "CronJob")["spec"]["schedule"] == "@daily"
    for schedule, why in BAD_SCHEDULES:
        message = template_error(chart, _merge(gc, {"gc": {"schedule": schedule}}), helm_name, tmp_path)
        assert f"gc.schedule ({json.dumps(schedule)}) is not a schedule Kubernetes accepts" in message, (
            message
        )
        assert why in message, message
    # Without gc, its schedule is not used and not checked.
    template(chart, values={"gc": {"schedule": "whenever"}}, helm_name=helm_name, tmp_dir=tmp_path)


ORACLE_SRC = REPO / "tests" / "support" / "cronoracle"


def _skip_or_fail(message: str) -> NoReturn:
    """CI builds the cluster tools (and so fetches robfig/cron) before the tests: there it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def cron_oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """robfig/cron v3's ParseStandard as a program, built offline from the Go module cache (where
    `make cluster-tools` leaves it: kube-apiserver vendors the same module)."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None)
    if go is None:
        _skip_or_fail("no Go toolchain for the cron oracle (make cluster-tools installs one)")
    build = tmp_path_factory.mktemp("cronoracle")
    for name in ("go.mod", "main.go"):
        shutil.copy(ORACLE_SRC / name, build / name)
    env = {"GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOSUMDB": "off", "GOTOOLCHAIN": "local"}
    proc = subprocess.run(
        [go, "build", "-o", str(build / "oracle"), "."],
        cwd=build,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    if proc.returncode != 0:
        why = proc.stderr[-300:]
        _skip_or_fail(f"robfig/cron v3.0.1 is not in the Go module cache (make cluster-tools): {why}")
    return build / "oracle"


def _robfig(oracle: Path, schedules: list[str]) -> list[bool]:
    out = subprocess.run(
        [str(oracle)], input="".join(s + "\n" for s in schedules), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(out) == len(schedules)
    return [line == "ok" for line in out]


def _kubernetes_accepts(oracle: Path, schedules: list[str]) -> list[bool]:
    # The CronJob validation: ParseStandard, and no TZ in a new object's schedule.
    return [ok and "TZ" not in s for s, ok in zip(schedules, _robfig(oracle, schedules), strict=True)]


_ATOM = st.one_of(
    st.sampled_from(["*", "?", "jan", "DEC", "Mon", "sun", "sat", "xyz", "", "00", "+5"]),
    st.integers(0, 70).map(str),
)
_RANGE = st.one_of(_ATOM, st.builds("{}-{}".format, _ATOM, _ATOM))
_PART = st.one_of(
    _RANGE, st.builds("{}/{}".format, _RANGE, st.sampled_from(["0", "1", "2", "15", "x", "+3"]))
)
_FIELD = st.lists(_PART, min_size=1, max_size=3).map(",".join)
SCHEDULE = st.one_of(
    st.lists(_FIELD, min_size=4, max_size=6).map(" ".join),
    st.lists(_FIELD, min_size=5, max_size=5).map(" ".join),
    st.sampled_from(["@daily", "@every 5m", "@every 1x", "@Daily", "@reboot", "TZ=UTC 0 * * * *"]),
)


def test_cron_helper_agrees_with_kubernetes_on_the_tables(cron_oracle: Path, tmp_path: Path) -> None:
    schedules = GOOD_SCHEDULES + [s for s, _ in BAD_SCHEDULES]
    got = _probe(tmp_path, "mlflow", "helm4", crons=tuple(schedules))
    assert [not e for e in got] == _kubernetes_accepts(cron_oracle, schedules)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedules=st.lists(SCHEDULE, min_size=40, max_size=80))
def test_cron_helper_agrees_with_kubernetes_on_generated_schedules(
    schedules: list[str], cron_oracle: Path, tmp_path: Path
) -> None:
    got = _probe(tmp_path, "mlflow", "helm4", crons=tuple(schedules))
    accepted = _kubernetes_accepts(cron_oracle, schedules)
    for schedule, error, ok in zip(schedules, got, accepted, strict=True):
        assert (not error) == ok, (schedule, error)


# --- inline model base64, ingress hosts, image tags --------------------------------------------------

INLINE = {"model": {"trustModel": True, "source": {"type": "inline", "inline": {"fileName": "m.pkl"}}}}


@pytest.mark.parametrize("helm_name", HELMS)
def test_inline_model_base64_must_be_base64(helm_name: str, tmp_path: Path) -> None:
    chart = CHARTS / "inference-service"
    for bad in ["not base64!", "abc", "YWJj=", "YWJjZA", "YW-jZA==", "YWJj\x00"]:
        message = template_error(
            chart, _merge(INLINE, {"model": {"source": {"inline": {"base64": bad}}}}), helm_name, tmp_path
        )
        assert "model.source.inline.base64 is not base64" in message, (bad, message)
    # Line breaks (base64's 76-column output) are fine: the ConfigMap gets the bytes without them.
    good = "YWJj\nZGVm\nZw==\n"
    values = _merge(INLINE, {"model": {"source": {"inline": {"base64": good}}}})
    docs = template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    assert find(docs, "ConfigMap", "t-inference-service-model")["binaryData"] == {"m.pkl": "YWJjZGVmZw=="}


HOST_CASES = [
    ("mlflow", {}),
    ("inference-service", PVC_MODEL),
]


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize(("chart", "base"), HOST_CASES, ids=[c for c, _ in HOST_CASES])
def test_ingress_host_and_route_hostnames_must_be_dns_names(
    chart: str, base: dict[str, Any], helm_name: str, tmp_path: Path
) -> None:
    for bad in [
        "bad_host!",
        "Example.com",
        "a..b",
        "-a.example.com",
        "*",
        "a.*.example.com",
        "x" * 64 + ".com",
    ]:
        message = template_error(
            CHARTS / chart, _merge(base, {"ingress": {"enabled": True, "host": bad}}), helm_name, tmp_path
        )
        assert "ingress/host" in message or "ingress.host" in message, (bad, message)
        message = template_error(
            CHARTS / chart,
            _merge(
                base, {"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}], "hostnames": [bad]}}
            ),
            helm_name,
            tmp_path,
        )
        assert "httpRoute/hostnames/0" in message or "httpRoute.hostnames.0" in message, (bad, message)
    for good in ["ml.example.com", "*.example.com", "localhost", "a-1.b-2.example"]:
        values = _merge(base, {"ingress": {"enabled": True, "host": good}})
        docs = template(CHARTS / chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
        assert find(docs, "Ingress")["spec"]["rules"][0]["host"] == good


IMAGE_CASES = [
    ("training-job", "image", {}),
    ("inference-service", "fastapi.image", {}),
    ("inference-service", "mlserver.image", {"runtime": "mlserver"}),
    ("mlflow", "postgresql.image", PG),
    ("mlflow", "artifactStore.minio.image", MINIO),
]


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize(("chart", "path", "extra"), IMAGE_CASES, ids=[f"{c}:{p}" for c, p, _ in IMAGE_CASES])
def test_an_empty_image_tag_is_refused_naming_the_value_not_a_yaml_error(
    chart: str, path: str, extra: dict[str, Any], helm_name: str, tmp_path: Path
) -> None:
    values = _merge(BASE[chart], extra)
    template(CHARTS / chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    message = template_error(CHARTS / chart, _merge(values, _at(f"{path}.tag", "")), helm_name, tmp_path)
    assert f"{path}.tag is empty" in message, message
    assert "YAML parse error" not in message, message


def test_images_are_quoted_and_a_digest_tag_pins_by_digest(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    docs = template(
        CHARTS / "training-job", values={**BASE["training-job"], "image": {"tag": digest}}, tmp_dir=tmp_path
    )
    images = {c["image"] for _, spec in pod_specs(docs) for c in spec["containers"]}
    assert images == {f"python@{digest}"}


def test_mlflow_empty_image_tag_means_the_app_version(tmp_path: Path) -> None:
    docs = template(CHARTS / "mlflow", values={"image": {"tag": ""}}, tmp_dir=tmp_path)
    version = (CHARTS / "mlflow" / "Chart.yaml").read_text().split('appVersion: "', 1)[1].split('"', 1)[0]
    images = {c["image"] for _, spec in pod_specs(docs) for c in spec["containers"]}
    assert images == {f"ghcr.io/mlflow/mlflow:v{version}-full"}, images
