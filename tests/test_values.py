"""generator.values against the real helm: `--set`, `--set-string` and `--set-json` items must reach a
chart as exactly the values helm itself makes of them. hypothesis writes the items (nested keys, list
indexes, `{a,b}` lists, escapes, values helm types or leaves as strings); each example renders a probe
chart twice, once with helm's own flags and once with the values generator.values built, and the two
`.Values` must be equal. HELM_MLOPS_HYPOTHESIS_EXAMPLES raises the example count."""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.errors import UserError
from generator.values import apply_sets, deep_merge, helm_order, parse_quantity, typed
from tests.support.charts import helm_path

EXAMPLES = int(os.environ.get("HELM_MLOPS_HYPOTHESIS_EXAMPLES", "100"))


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("probe") / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "values.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        "data:\n  values: {{ toJson .Values | quote }}\n"
    )
    return chart


def rendered(helm_name: str, chart: Path, args: list[str], stdin: str | None = None) -> object:
    proc = subprocess.run(
        [helm_path(helm_name), "template", "p", str(chart), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return ("error", proc.stderr.strip().splitlines()[-1])
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("values:"))
    return json.loads(json.loads(line.split(":", 1)[1]))


KEY = st.sampled_from(["a", "b", "image", "tag", "x_y", "k-1"])
PATH = st.lists(
    st.tuples(KEY, st.one_of(st.none(), st.integers(min_value=0, max_value=2))), min_size=1, max_size=3
).map(lambda parts: ".".join(k + (f"[{i}]" if i is not None else "") for k, i in parts))
SCALAR = st.one_of(
    st.sampled_from(
        ["1.0", "true", "False", "null", "NULL", "007", "0", "-3", "+4", "1e3", "", "x", "v1.2.3"]
    ),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.text(alphabet="abcXYZ:/@-_ ", max_size=8),
    st.just("with\\,comma"),
)
VALUE = st.one_of(
    SCALAR,
    st.lists(st.sampled_from(["p", "q", "1", "true"]), max_size=3).map(lambda v: "{" + ",".join(v) + "}"),
)
JSON_VALUE = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.text(alphabet="abc", max_size=4),
    st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    st.dictionaries(st.sampled_from(["p", "q"]), st.booleans(), max_size=2),
).map(json.dumps)
ITEM = st.one_of(
    st.tuples(st.just("--set"), st.lists(st.tuples(PATH, VALUE), min_size=1, max_size=2).map(
        lambda pairs: ",".join(f"{p}={v}" for p, v in pairs)
    )),
    st.tuples(st.just("--set-string"), st.tuples(PATH, SCALAR).map(lambda pv: f"{pv[0]}={pv[1]}")),
    st.tuples(st.just("--set-json"), st.tuples(PATH, JSON_VALUE).map(lambda pv: f"{pv[0]}={pv[1]}")),
)  # fmt: skip


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_set_flags_mean_what_they_mean_to_helm(helm_name: str, probe: Path) -> None:
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.lists(ITEM, min_size=1, max_size=4))
    def check(items: list[tuple[str, str]]) -> None:
        flags = [arg for flag, item in items for arg in (flag, item)]
        theirs = rendered(helm_name, probe, flags)
        # helm applies the flags kind by kind, whatever their order on the command line.
        ordered = helm_order(
            *(
                tuple(i for f, i in items if f == flag)
                for flag in ("--set-json", "--set", "--set-string", "--set-file")
            )
        )
        try:
            ours = apply_sets({}, ordered)
        except UserError:
            assert isinstance(theirs, tuple), f"helm accepted {flags} but helm-mlops refused them: {theirs}"
            return
        mine = rendered(helm_name, probe, ["--values", "-"], json.dumps(ours))
        assert mine == theirs, f"{flags}: helm made {theirs}, helm-mlops {ours}"

    check()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.0", "1.0"),
        ("10", 10),
        ("007", "007"),
        ("0", 0),
        ("TRUE", True),
        ("Null", None),
        ("-3", -3),
        ("1e3", "1e3"),
    ],
)
def test_typed_like_helm(text: str, expected: object) -> None:
    assert typed(text) == expected and type(typed(text)) is type(expected)


def test_set_file_reads_the_file(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('a,b')\n")
    assert apply_sets({"script": {"fileName": "t.py"}}, [("--set-file", f"script.content={script}")]) == {
        "script": {"fileName": "t.py", "content": "print('a,b')\n"}
    }


def test_deep_merge_merges_maps_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [2], "e": 3}, "d": {"x": 1}}) == {
        "a": {"b": 1, "c": [2], "e": 3},
        "d": {"x": 1},
    }
    assert base == {"a": {"b": 1, "c": [1]}, "d": 1}


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), (".5", Decimal("0.5")), ("2", Decimal(2)), ("1Gi", Decimal(2**30)),
     ("1e3", Decimal(1000)), ("1.5k", Decimal(1500)), ("100u", Decimal("0.0001"))],
)  # fmt: skip
def test_quantities_follow_kubernetes(text: str, value: Decimal) -> None:
    assert parse_quantity(text, "cpu") == value


@pytest.mark.parametrize("text", ["2x", "1GB", "", "Gi", "1.2.3", "-1", "0"])
def test_bad_quantities_name_the_field(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_quantity(text, "--memory")
    assert caught.value.field == "--memory"


def test_sets_apply_over_values_that_are_not_json() -> None:
    import datetime

    base = {"job": {"startAfter": datetime.date(2026, 1, 1)}}
    assert apply_sets(base, [("--set", "job.backoffLimit=2")]) == {
        "job": {"startAfter": datetime.date(2026, 1, 1), "backoffLimit": 2}
    }


CRON_OK = [
    "0 3 * * *",
    "*/15 * * * 1-5",
    "0 0 1 jan-mar MON",
    "5/10 * * * *",
    "0 3 ? * sun",
    "0-59/5 0,12 1-31 * 0-6",
]
CRON_OK += ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@every 1h30m"]
CRON_BAD = {
    "not a cron": "3 field(s)",
    "* * * *": "4 field(s)",
    "99 99 * * *": "minute: 99 is outside 0-59",
    "0 24 * * *": "hour: 24 is outside 0-23",
    "0 0 0 * *": "day of month: 0 is outside 1-31",
    "0 0 * 13 *": "month: 13 is outside 1-12",
    "0 0 * * 7": "day of week: 7 is outside 0-6",
    "0 0 * foo *": "'foo' is not a number or a name (jan...dec)",
    "5-1 * * * *": "runs backwards",
    "*/0 * * * *": "step '0'",
    "1,,2 * * * *": "'' is not a number",
    "@often": "@often is not one of",
    "TZ=UTC 0 3 * * *": "cronJob.timeZone",
    " ": "empty",
}


def test_cron_schedules_as_kubernetes_parses_them() -> None:
    """robfig/cron's standard parser (what a CronJob's schedule goes through): issue 15 (13)."""
    from generator.values import cron_problem

    for schedule in CRON_OK:
        assert cron_problem(schedule) is None, schedule
    for schedule, words in CRON_BAD.items():
        problem = cron_problem(schedule)
        assert problem is not None and words in problem, (schedule, problem)


def test_requests_above_limits_compare_quantities() -> None:
    from generator.values import requests_above_limits

    def above(req: dict[str, object], lim: dict[str, object]) -> list[str]:
        return [name for name, _, _ in requests_above_limits({"requests": req, "limits": lim})]

    assert above({"cpu": "500m", "memory": "1000Mi"}, {"cpu": 1, "memory": "1Gi"}) == []
    assert above({"cpu": "1", "memory": "1Gi"}, {"cpu": "1000m", "memory": "1024Mi"}) == []
    assert above({"cpu": "1001m", "memory": "1Gi"}, {"cpu": "1", "memory": "1000Mi"}) == ["cpu", "memory"]
    assert above({"cpu": "4"}, {"memory": "1Gi"}) == []  # no limit to exceed
    assert above({"cpu": "x"}, {"cpu": "1"}) == []  # malformed: parse_quantity's callers name it
