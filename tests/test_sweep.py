"""Sweep expansion (charts/training-job/files/sweep.py, the code the pods run), property-tested with
hypothesis against an independent model of each strategy, and against the chart's own trial count."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from generator import sweep as sweep_space
from generator.errors import UserError
from tests.support.charts import CHARTS, TemplateError, find, template

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@st.composite
def grid_param(draw: Any, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["int", "float", "categorical", "values"]))
    if kind == "int":
        lo = draw(st.integers(-20, 20))
        return {
            "name": name,
            "type": "int",
            "min": lo,
            "max": lo + draw(st.integers(0, 12)),
            "step": draw(st.integers(1, 4)),
        }
    if kind == "float":
        lo = draw(st.floats(0.001, 10))
        return {
            "name": name,
            "type": "float",
            "min": lo,
            "max": lo * draw(st.floats(1, 100)),
            "count": draw(st.integers(1, 5)),
            "scale": draw(st.sampled_from(["linear", "log"])),
        }
    values = draw(
        st.lists(st.sampled_from(["adam", "sgd", "rmsprop", "lamb"]), min_size=1, max_size=4, unique=True)
    )
    return {"name": name, "type": "categorical", "values": values}


@st.composite
def grid_space(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    return {"strategy": "grid", "parameters": [draw(grid_param(n)) for n in names]}


def _model_values(p: dict[str, Any]) -> list[Any]:
    """An independent statement of what each grid parameter means."""
    if p["type"] == "categorical":
        return list(p["values"])
    if p["type"] == "int":
        return [p["min"] + k * p["step"] for k in range((p["max"] - p["min"]) // p["step"] + 1)]
    n, lo, hi = p["count"], p["min"], p["max"]
    if n == 1:
        return [lo]
    if p["scale"] == "log":
        return [lo * (hi / lo) ** (k / (n - 1)) for k in range(n)]
    return [lo + (hi - lo) * k / (n - 1) for k in range(n)]


@settings(max_examples=200, deadline=None)
@given(grid_space())
def test_grid_gives_every_combination_once_in_index_order(space: dict[str, Any]) -> None:
    expected = list(itertools.product(*(_model_values(p) for p in space["parameters"])))
    plan = sweep_space.plan(space)
    assert len(plan) == len(expected) == sweep_space.trial_count(space)
    names = [p["name"] for p in space["parameters"]]
    for index, params in enumerate(plan):
        assert list(params) == names
        for got, want in zip(params.values(), expected[index], strict=True):
            assert got == want or math.isclose(got, want, rel_tol=1e-9)


@st.composite
def random_space(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    params = []
    for name in names:
        kind = draw(st.sampled_from(["int", "float", "categorical"]))
        if kind == "categorical":
            params.append(
                {"name": name, "type": kind, "values": draw(st.lists(st.integers(), min_size=1, max_size=5))}
            )
        elif kind == "int":
            lo = draw(st.integers(1, 50))
            params.append(
                {
                    "name": name,
                    "type": kind,
                    "min": lo,
                    "max": lo + draw(st.integers(0, 100)),
                    "step": draw(st.integers(1, 5)),
                }
            )
        else:
            lo = draw(st.floats(1e-6, 1.0))
            params.append(
                {
                    "name": name,
                    "type": kind,
                    "min": lo,
                    "max": lo * 1000,
                    "scale": draw(st.sampled_from(["linear", "log"])),
                }
            )
    return {
        "strategy": "random",
        "trials": draw(st.integers(1, 40)),
        "seed": draw(st.integers(0, 2**31)),
        "parameters": params,
    }


@settings(max_examples=200, deadline=None)
@given(random_space(), st.integers(0, 39))
def test_random_trials_are_in_bounds_reproducible_and_independent_of_count(
    space: dict[str, Any], index: int
) -> None:
    index = index % space["trials"]
    params = sweep_space.plan(space)[index]
    for p in space["parameters"]:
        value = params[p["name"]]
        if p["type"] == "categorical":
            assert value in p["values"]
        elif p["type"] == "int":
            assert p["min"] <= value <= p["max"] and (value - p["min"]) % p["step"] == 0
        else:
            assert p["min"] <= value <= p["max"]
    # Same seed, same trial; more trials leave the earlier ones alone.
    assert sweep_space.plan({**space, "trials": space["trials"] + 25})[index] == params
    # Another seed gives another sweep (over a space that has room to differ).
    if any(p["type"] == "float" for p in space["parameters"]):
        assert sweep_space.plan({**space, "seed": space["seed"] + 1})[index] != params


MAGNITUDES = st.floats(1e-12, 1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(MAGNITUDES, st.floats(1, 1e6), st.integers(1, 60), st.sampled_from(["linear", "log"]))
def test_float_grids_lie_within_their_bounds(lo: float, ratio: float, count: int, scale: str) -> None:
    """exp/log and sums overshoot (0.1 came out as 0.10000000000000006): every point is clamped into
    [min, max], the ends are min and max exactly, and the grid keeps its size and order."""
    hi = lo * ratio
    p = {"name": "x", "type": "float", "min": lo, "max": hi, "count": count, "scale": scale}
    values = [t["x"] for t in sweep_space.plan({"strategy": "grid", "parameters": [p]})]
    assert len(values) == count
    assert all(lo <= v <= hi for v in values)
    assert values[0] == lo and (count == 1 or values[-1] == hi)
    assert values == sorted(values)


@settings(max_examples=200, deadline=None)
@given(MAGNITUDES, st.floats(1, 1e6), st.integers(0, 2**31), st.sampled_from(["linear", "log"]))
def test_random_floats_lie_within_their_bounds(lo: float, ratio: float, seed: int, scale: str) -> None:
    p = {"name": "x", "type": "float", "min": lo, "max": lo * ratio, "scale": scale}
    space = {"strategy": "random", "trials": 20, "seed": seed, "parameters": [p]}
    assert all(lo <= t["x"] <= lo * ratio for t in sweep_space.plan(space))


def test_the_readme_log_grid_is_round_and_ends_at_max() -> None:
    p = {"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "count": 4, "scale": "log"}
    assert [t["lr"] for t in sweep_space.plan({"parameters": [p]})] == [0.0001, 0.001, 0.01, 0.1]
    linear = {"name": "m", "type": "float", "min": 0.1, "max": 0.3, "count": 3}  # 0.1 + 0.2 > 0.3
    assert [t["m"] for t in sweep_space.plan({"parameters": [linear]})] == [0.1, 0.2, 0.3]


def test_a_range_wider_than_a_float_does_not_overflow() -> None:
    """-1e308..1e308: max - min is inf, so the sums gave inf (clamped to max) in the middle."""
    p = {"name": "x", "type": "float", "min": -1e308, "max": 1e308}
    assert [t["x"] for t in sweep_space.plan({"parameters": [{**p, "count": 3}]})] == [-1e308, 0.0, 1e308]
    draws = [t["x"] for t in sweep_space.plan({"strategy": "random", "trials": 50, "parameters": [p]})]
    assert all(-1e308 <= x <= 1e308 for x in draws) and len(set(draws)) == 50


def test_a_huge_range_is_counted_before_anything_is_built() -> None:
    """A range of 10**18 values is refused from its size: no list is built (it would fill memory)."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    for space in (
        {"parameters": [{"name": "a", "type": "int", "min": 0, "max": 10**18}]},
        {"parameters": [{"name": "a", "type": "int", "min": 0, "max": 20_000_000}]},
        {"parameters": [{"name": "a", "type": "float", "min": 0, "max": 1, "count": 10**12}]},
    ):
        with pytest.raises(UserError, match="more than 10000"):
            sweep_space.plan(space)
    assert time.monotonic() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_the_largest_plan_is_built_in_linear_time() -> None:
    """10,000 trials of one 10,000-value parameter: each grid is built once, not once per trial."""
    import time

    space = {
        "parameters": [
            {"name": "a", "type": "int", "min": 1, "max": 10_000},
            {"name": "b", "type": "categorical", "values": ["x"]},
        ]
    }
    start = time.monotonic()
    trials = sweep_space.plan(space)
    assert len(trials) == 10_000 and trials[-1] == {"a": 10_000, "b": "x"}
    assert time.monotonic() - start < 2


MALFORMED = [
    (None, "sweep must be a mapping"),
    ([1, 2], "sweep must be a mapping"),
    ({"parameters": ["lr"]}, "sweep.parameters[0] (?) must be a mapping"),
    ({"parameters": {"lr": 1}}, "sweep.parameters must be a list"),
    ({"strategy": "bayes", "parameters": []}, "sweep.strategy must be grid or random"),
    ({"strategy": "random", "trials": "many", "parameters": []}, "sweep.trials must be a whole number"),
    ({"seed": 1.5, "parameters": []}, "sweep.seed must be a whole number"),
    ({"parameters": [{"name": "a", "type": "int", "min": 1, "max": 3, "step": "two"}]}, "step must be"),
    ({"parameters": [{"name": "a", "type": "float", "min": 1, "max": 3, "count": 0}]}, "count must be"),
    ({"parameters": [{"name": "a", "type": "categorical", "values": 5}]}, "values must be a list"),
    ({"parameters": [{"name": "a", "type": "categorical", "values": "abc"}]}, "values must be a list"),
    ({"parameters": [{"name": "a", "type": "int", "values": ["x", "y"]}]}, "values[0] must be a whole"),
    ({"parameters": [{"name": "a", "type": "float", "values": [1, "y"]}]}, "values[1] must be a number"),
    ({"parameters": [{"name": "a", "type": "categorical", "values": [[1]]}]}, "values[0] must be a"),
    ({"parameters": [{"type": "int", "min": 1, "max": 3}]}, "name must be a non-empty string"),
    ({"parameters": [{"name": "a", "type": "bool", "values": [1]}]}, "type must be int, float or"),
    ({"parameters": [{"name": "a", "type": "int", "min": "0", "max": 3}]}, "min must be a finite number"),
    # An int range from 0.5 gave 0, below its min.
    ({"parameters": [{"name": "a", "type": "int", "min": 0.5, "max": 3}]}, "min must be a whole number"),
    ({"parameters": [{"name": "a", "type": "float", "min": 0, "max": math.inf, "count": 2}]}, "max must be"),
    (
        {"parameters": [{"name": "a", "type": "float", "min": 1, "max": 2, "count": 2, "scale": "ln"}]},
        "scale must",
    ),
    ({"parameters": [{"name": "a", "type": "int", "min": 1, "max": 2, "stpe": 2}]}, "unknown key(s) stpe"),
]


@pytest.mark.parametrize(("space", "words"), MALFORMED, ids=[w for _, w in MALFORMED])
def test_malformed_spaces_are_named_before_any_value_is_used(space: Any, words: str) -> None:
    """The pods' own code judges each key's type first: a SweepError naming the field, never a
    TypeError or AttributeError from inside (and never a silent reading such as 'abc' as a, b, c)."""
    with pytest.raises(UserError) as err:
        sweep_space.plan(space)
    assert words in str(err.value)
    assert "Error:" not in str(err.value)  # not a Python exception's text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(space=grid_space())
# Found by hypothesis: helm reads a bare `n` (or `y`, `on`, `off`) as a YAML 1.1 boolean.
@example(
    space={"strategy": "grid", "parameters": [{"name": "n", "type": "categorical", "values": ["y", "off"]}]}
)
def test_the_chart_runs_as_many_completions_as_the_launcher_has_trials(
    space: dict[str, Any], tmp_path: Path
) -> None:
    """Helm computes completions in Go templates; the launcher computes trials in Python: they must agree."""
    values = {"script": {"content": "print(1)"}, "sweep": {"enabled": True, **space}}
    job = find(template(CHARTS / "training-job", values=values, tmp_dir=tmp_path), "Job")
    assert job["spec"]["completions"] == sweep_space.trial_count(space)
    assert job["spec"]["completionMode"] == "Indexed"


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"strategy": "grid", "parameters": []}, "at least one parameter"),
        (
            {
                "strategy": "random",
                "trials": 0,
                "parameters": [{"name": "a", "type": "int", "min": 1, "max": 2}],
            },
            "sweep.trials",
        ),
        (
            {
                "strategy": "grid",
                "parameters": [
                    {"name": "a", "type": "int", "min": 1, "max": 101},
                    {"name": "b", "type": "int", "min": 1, "max": 100},
                ],
            },
            "more than 10000 trials",
        ),
        ({"strategy": "grid", "parameters": [{"name": "a", "type": "categorical"}]}, "needs values"),
        (
            {"strategy": "grid", "parameters": [{"name": "a", "type": "float", "min": 0, "max": 1}]},
            "needs count",
        ),
        (
            {
                "strategy": "grid",
                "parameters": [
                    {"name": "a", "type": "float", "min": 0, "max": 1, "count": 3, "scale": "log"}
                ],
            },
            "min > 0",
        ),
    ],
)
def test_bad_spaces_name_the_field(space: dict[str, Any], words: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        sweep_space.trial_count(space)
    assert words in str(err.value) and "sweep" in str(err.value)
    # The chart refuses the same space on its own (helm install without helm-mlops).
    values = {"script": {"content": "print(1)"}, "sweep": {"enabled": True, **space}}
    with pytest.raises(TemplateError) as helm_err:
        template(CHARTS / "training-job", values=values, tmp_dir=tmp_path)
    assert "sweep" in str(helm_err.value)


def test_a_grid_over_the_101_values_of_one_int_is_accepted(tmp_path: Path) -> None:
    """Beside the bad spaces: one int from 1 to 101 is 101 trials, for the CLI and for the chart."""
    space = {"strategy": "grid", "parameters": [{"name": "a", "type": "int", "min": 1, "max": 101}]}
    assert sweep_space.trial_count(space) == 101
    values = {"script": {"content": "print(1)"}, "sweep": {"enabled": True, **space}}
    job = find(template(CHARTS / "training-job", values=values, tmp_dir=tmp_path), "Job")
    assert job["spec"]["completions"] == 101
