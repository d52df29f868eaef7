"""`helm-mlops sweep best`: one result per trial (its latest attempt), FAILED and KILLED attempts left
out unless asked, NaN and missing metrics last whatever the goal (a property test against a simple
model), and an experiment whose name needs quoting, against a real `mlflow server`."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from generator.cli import cli
from generator.errors import UserError
from generator.sweep import Trial, best, latest_attempts, rank, search_string
from tests.support.servers import mlflow_server


def _trial(
    index: int,
    value: float | None,
    status: str = "FINISHED",
    attempt: int | None = None,
    start: int = 0,
    run_id: str = "",
) -> Trial:
    return Trial(index, run_id or f"r{index}-{attempt}-{start}", status, value, {}, attempt, start)


# Attempts ------------------------------------------------------------------------------------------


def test_a_retried_trial_is_ranked_by_its_latest_attempt_and_a_failed_one_is_left_out() -> None:
    # The issue's case: trial 0's attempt 1 logged 0.05 and exited 1, attempt 2 logged 0.5 and exited 0.
    runs = [
        _trial(0, 0.05, "FAILED", attempt=1, start=100),
        _trial(0, 0.5, "FINISHED", attempt=2, start=200),
        _trial(1, 0.3, "FINISHED", attempt=1, start=150),
        _trial(2, 0.01, "FAILED", attempt=1, start=160),  # its only attempt failed
        _trial(3, 0.02, "KILLED", attempt=1, start=170),
    ]
    ranked, left_out = best(runs, "minimize")
    assert [(t.index, t.value, t.attempts) for t in ranked] == [(1, 0.3, 1), (0, 0.5, 2)]
    assert left_out == 2
    ranked, left_out = best(runs, "minimize", include_failed=True)
    assert [(t.index, t.status) for t in ranked] == [
        (2, "FAILED"),
        (3, "KILLED"),
        (1, "FINISHED"),
        (0, "FINISHED"),
    ]
    assert left_out == 0


def test_without_the_attempt_tag_the_latest_start_time_wins() -> None:
    runs = [
        _trial(0, 0.5, "FINISHED", start=200),
        _trial(0, 0.05, "FAILED", start=100),
        _trial(0, 0.04, "FAILED", start=50),
    ]
    (latest,) = latest_attempts(runs)
    assert (latest.value, latest.status, latest.attempts) == (0.5, "FINISHED", 3)
    # The attempt tag wins over start times (clocks of different nodes may disagree).
    tagged = [
        _trial(1, 0.1, "FINISHED", attempt=2, start=100),
        _trial(1, 0.9, "FAILED", attempt=1, start=300),
    ]
    assert latest_attempts(tagged)[0].value == 0.1
    # Runs without a trial index (not the launcher's) are never merged.
    assert len(latest_attempts([_trial(-1, 0.1), _trial(-1, 0.2, run_id="other")])) == 2


def test_a_failed_latest_attempt_hides_the_trial_even_after_a_finished_one() -> None:
    # One trial = one logical result: the latest attempt is the trial's result, not the best attempt.
    runs = [_trial(0, 0.1, "FINISHED", attempt=1), _trial(0, 0.2, "FAILED", attempt=2)]
    assert best(runs, "minimize") == ([], 1)


# NaN, missing and infinite metrics -------------------------------------------------------------------


def test_the_issue_values_rank_nan_and_missing_last() -> None:
    values: list[float | None] = [0.3, math.nan, 0.1, 0.2, 0.2, None, math.inf]
    runs = [_trial(i, v) for i, v in enumerate(values)]
    assert [t.index for t in rank(runs, "minimize")] == [2, 3, 4, 0, 6, 1, 5]
    assert [t.index for t in rank(runs, "maximize")] == [6, 0, 3, 4, 2, 1, 5]
    mlflow_inf = [_trial(0, 1.7976931348623157e308), _trial(1, -math.inf), _trial(2, math.nan)]
    assert [t.index for t in rank(mlflow_inf, "minimize")] == [1, 0, 2]


def _model_before(a: Trial, b: Trial, goal: str) -> bool:
    """The ranking spelled out pairwise: does `a` come before `b`?"""
    a_ok = a.value is not None and a.value == a.value
    b_ok = b.value is not None and b.value == b.value
    if a_ok != b_ok:
        return a_ok
    if a_ok and b_ok and a.value != b.value:
        assert a.value is not None and b.value is not None
        return a.value < b.value if goal == "minimize" else a.value > b.value
    return (a.index, a.run_id) < (b.index, b.run_id)


values = st.one_of(
    st.none(),
    st.just(math.nan),
    st.floats(allow_nan=False),  # infinities included
    st.sampled_from([0.0, -0.0, 0.1, 1.0]),  # ties
)


@given(
    st.lists(st.tuples(st.integers(0, 20), values), max_size=30), st.sampled_from(["minimize", "maximize"])
)
def test_ranking_matches_the_model(entries: list[tuple[int, float | None]], goal: str) -> None:
    runs = [_trial(index, value, run_id=f"run-{n}") for n, (index, value) in enumerate(entries)]
    ranked = rank(runs, goal)
    assert sorted(t.run_id for t in ranked) == sorted(t.run_id for t in runs)  # a permutation
    for i, a in enumerate(ranked):
        for b in ranked[i + 1 :]:
            assert not _model_before(b, a, goal), (a, b)
    # Whatever the goal, every unscored run follows every scored one.
    flags = [t.value is not None and not math.isnan(t.value) for t in ranked]
    assert flags == sorted(flags, reverse=True)


def test_search_strings_are_quoted_as_mlflow_reads_them() -> None:
    assert search_string("abc", "f") == "'abc'"
    assert search_string("bob's", "f") == '"bob\'s"'
    with pytest.raises(UserError):
        search_string("""a'b"c""", "--sweep-id")


# Against a real MLflow server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


def _log_runs(tracking: str, experiment: str, sweep_id: str) -> dict[str, str]:
    """Runs tagged as the launcher tags them; returns run ids by name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    exp = client.create_experiment(experiment)
    ids = {}
    plan: list[tuple[str, int, int | None, float | None, str]] = [
        ("t0-a1", 0, 1, 0.05, "FAILED"),  # retried: the failed attempt logged the best value
        ("t0-a2", 0, 2, 0.5, "FINISHED"),
        ("t1", 1, 1, math.nan, "FINISHED"),
        ("t2", 2, 1, 0.3, "FINISHED"),
        ("t3", 3, 1, None, "FINISHED"),  # never logged the metric
        ("t4", 4, 1, math.inf, "FINISHED"),
        ("t5", 5, None, 0.01, "KILLED"),  # an older launcher: no attempt tag
    ]
    for name, index, attempt, value, status in plan:
        tags = {"helm-mlops.sweep": sweep_id, "helm-mlops.trial": str(index), "mlflow.runName": name}
        if attempt is not None:
            tags["helm-mlops.attempt"] = str(attempt)
        run = client.create_run(exp, tags=tags)
        client.log_param(run.info.run_id, "lr", str(index))
        if value is not None:
            client.log_metric(run.info.run_id, "val_loss", value)
        client.set_terminated(run.info.run_id, status)
        ids[name] = run.info.run_id
    return ids


def _best(tracking: str, *args: str) -> tuple[list[list[str]], str]:
    result = CliRunner().invoke(cli, ["sweep", "best", "--tracking-uri", tracking, *args])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    return rows, result.stderr


@pytest.mark.real
def test_sweep_best_of_an_experiment_with_a_quote_in_its_name(tracking: str) -> None:
    sweep_id = "uid-it's-7"  # a quote in the sweep id too
    ids = _log_runs(tracking, "bob's sweep", sweep_id)
    common = ["--experiment", "bob's sweep", "--sweep-id", sweep_id, "--metric", "val_loss", "--top", "10"]
    rows, err = _best(tracking, *common)
    assert rows[0][:5] == ["TRIAL", "val_loss", "STATUS", "ATTEMPTS", "RUN"]
    # trial 0 once (its latest attempt, 2 attempts); inf as a number; NaN and missing last; KILLED out
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows[1:]] == [
        ("2", "0.3", "FINISHED", "1", ids["t2"]),
        ("0", "0.5", "FINISHED", "2", ids["t0-a2"]),
        ("4", "1.79769e+308", "FINISHED", "1", ids["t4"]),
        ("1", "nan", "FINISHED", "1", ids["t1"]),
        ("3", "-", "FINISHED", "1", ids["t3"]),
    ]
    assert "1 trial(s) FAILED or KILLED not shown" in err
    rows, err = _best(tracking, *common, "--goal", "maximize", "--include-failed")
    assert [r[0] for r in rows[1:]] == ["4", "0", "2", "5", "1", "3"]
    assert not err

    result = CliRunner().invoke(
        cli, ["sweep", "best", "--tracking-uri", tracking, *common[:1], "nobody's", *common[2:]]
    )
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == '--experiment: no MLflow experiment named "nobody\'s"'


@pytest.mark.real
def test_sweep_best_without_runs_says_so(tracking: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking).create_experiment("empty sweep")
    rows, _ = _best(tracking, "--experiment", "empty sweep", "--sweep-id", "u", "--metric", "m")
    assert rows == [["no", "runs", "tagged", "helm-mlops.sweep=u", "in", "experiment", "empty", "sweep"]]
