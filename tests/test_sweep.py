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
        return p["values"]
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
            assert p["min"] <= value <= p["max"] * (1 + 1e-12)
    # Same seed, same trial; more trials leave the earlier ones alone.
    assert sweep_space.plan({**space, "trials": space["trials"] + 25})[index] == params
    # Another seed gives another sweep (over a space that has room to differ).
    if any(p["type"] == "float" for p in space["parameters"]):
        assert sweep_space.plan({**space, "seed": space["seed"] + 1})[index] != params


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
        ({"strategy": "grid", "parameters": [{"name": "a", "type": "int", "min": 1, "max": 101}] * 1}, None),
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
def test_bad_spaces_name_the_field(space: dict[str, Any], words: str | None, tmp_path: Path) -> None:
    if words is None:  # 101 trials: fine
        assert sweep_space.trial_count(space) == 101
        return
    with pytest.raises(UserError) as err:
        sweep_space.trial_count(space)
    assert words in str(err.value) and "sweep" in str(err.value)
    # The chart refuses the same space on its own (helm install without helm-mlops).
    values = {"script": {"content": "print(1)"}, "sweep": {"enabled": True, **space}}
    with pytest.raises(TemplateError) as helm_err:
        template(CHARTS / "training-job", values=values, tmp_dir=tmp_path)
    assert "sweep" in str(helm_err.value)
