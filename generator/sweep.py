"""Sweeps: the space, from the one implementation the pods run (the training-job chart ships
files/sweep.py to its launcher and helm-mlops imports that same file, so the CLI's plan, its
validation and the trials the pods run cannot drift apart), and the results, as MLflow recorded them:
the launcher tags every trial's run with `helm-mlops.sweep` (the Job's uid) and `helm-mlops.trial`."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace
from functools import cache
from types import ModuleType
from typing import Any

from generator.errors import ToolError, UserError
from generator.paths import chart_file


@cache
def _module() -> ModuleType:
    path = chart_file("training-job", "sweep.py")
    spec = importlib.util.spec_from_file_location("helm_mlops_chart_sweep", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FORMAT_HINT = (
    "a sweep is {strategy: grid|random, trials: N (random), seed: N, parameters: [{name, type: "
    "int|float|categorical, values: [...] | min, max, step (int) | count (float grid), scale: log}]}; "
    "`helm-mlops sweep plan --help` describes every key"
)


def _guarded(source: str, call: Any, *args: Any) -> Any:
    """Call the pods' sweep code; a malformed space is the user's to fix, whatever Python raised."""
    mod = _module()
    try:
        return call(*args)
    except mod.SweepError as exc:
        raise UserError(str(exc), field=source, hint=FORMAT_HINT) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, MemoryError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise UserError(f"not a valid sweep ({detail})", field=source, hint=FORMAT_HINT) from None


def trial_count(spec: dict[str, Any], source: str = "sweep") -> int:
    """Number of trials; a UserError naming the field for an empty, oversized or malformed space."""
    return int(_guarded(source, _module().trial_count, spec))


def plan(spec: dict[str, Any], source: str = "sweep") -> list[dict[str, Any]]:
    """Every trial's parameters, by completion index."""
    return [dict(t) for t in _guarded(source, _module().all_trials, spec)]


def env_name(name: str) -> str:
    return str(_module().env_name(name))


def format_value(value: Any) -> str:
    return str(_module().format_value(value))


# Results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One MLflow run of a trial. After `latest_attempts`, one per trial: its latest attempt, with
    `attempts` the number of runs the trial made (a retried pod makes a run per attempt)."""

    index: int
    run_id: str
    status: str
    value: float | None
    params: dict[str, str]
    attempt: int | None = None  # the launcher's helm-mlops.attempt tag, when it set one
    start_time: int = 0  # ms since the epoch
    attempts: int = 1


# A run that ended like this is no result: `sweep best` leaves it out unless asked.
FAILED = ("FAILED", "KILLED")


def _call(
    uri: str,
    path: str,
    body: dict[str, Any],
    auth: tuple[str, str] | None,
    method: str = "POST",
    missing: UserError | None = None,
) -> dict[str, Any]:
    import requests

    from generator.values import http_url, one_line

    url = f"{http_url(uri, '--tracking-uri').rstrip('/')}/api/2.0/mlflow/{path}"
    try:
        if method == "GET":
            response = requests.get(url, params=body, auth=auth, timeout=30)
        else:
            response = requests.post(url, json=body, auth=auth, timeout=30)
    except requests.RequestException as exc:
        raise ToolError(
            f"MLflow at {uri} is not reachable ({type(exc).__name__})\n"
            "  fix: check --tracking-uri (port-forward the MLflow Service first when it runs in the cluster)"
        ) from None
    if response.status_code == 401:
        raise UserError(
            "MLflow refused the credentials",
            field="MLFLOW_TRACKING_USERNAME/PASSWORD",
            hint="export the MLflow user and password",
        )
    if response.status_code == 404 and missing is not None:
        raise missing
    if response.status_code >= 400:
        raise ToolError(f"MLflow {path} failed ({response.status_code}): {one_line(response.text)}")
    try:
        return dict(response.json())
    except ValueError:
        raise ToolError(
            f"{uri} answered {path} with something that is not MLflow's JSON: {one_line(response.text)}\n"
            "  fix: point --tracking-uri at the MLflow server itself"
        ) from None


def search_string(value: str, field: str) -> str:
    """VALUE as a string literal of MLflow's search syntax. MLflow takes the text between the outer
    quotes as is (no escapes), so a value with a single quote is written in double quotes; one with
    both kinds cannot be written at all."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise UserError(
        f"{value!r} has both kinds of quotes: MLflow's search syntax cannot match it", field=field
    )


def _experiment_id(uri: str, experiment: str, auth: tuple[str, str] | None) -> str:
    """By name through get-by-name: no search filter to quote, whatever the name holds."""
    missing = UserError(f"no MLflow experiment named {experiment!r}", field="--experiment")
    found = _call(uri, "experiments/get-by-name", {"experiment_name": experiment}, auth, "GET", missing)
    return str(found["experiment"]["experiment_id"])


def _number(value: Any) -> float | None:
    """A metric value as MLflow's JSON gives it: a number, or NaN/Infinity as numbers or strings."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def trials(
    uri: str, experiment: str, sweep_id: str, metric: str, auth: tuple[str, str] | None = None
) -> list[Trial]:
    """Every run tagged with the sweep (all attempts of every trial), paged through runs/search."""
    body: dict[str, Any] = {
        "experiment_ids": [_experiment_id(uri, experiment, auth)],
        "filter": f"tags.`helm-mlops.sweep` = {search_string(sweep_id, '--sweep-id')}",
        "max_results": 1000,
    }
    out = []
    while True:
        page = _call(uri, "runs/search", body, auth)
        for run in page.get("runs") or []:
            data = run.get("data") or {}
            info = run.get("info") or {}
            tags = {t["key"]: t["value"] for t in data.get("tags") or []}
            metrics = {m["key"]: m["value"] for m in data.get("metrics") or []}
            attempt = tags.get("helm-mlops.attempt", "")
            out.append(
                Trial(
                    index=int(tags.get("helm-mlops.trial", -1)),
                    run_id=info["run_id"],
                    status=info.get("status", ""),
                    value=_number(metrics.get(metric)),
                    params={p["key"]: p["value"] for p in data.get("params") or []},
                    attempt=int(attempt) if attempt.isdigit() else None,
                    start_time=int(info.get("start_time") or 0),
                )
            )
        token = page.get("next_page_token")
        if not token:
            return out
        body["page_token"] = token


def latest_attempts(found: list[Trial]) -> list[Trial]:
    """One run per trial: its latest attempt (by the launcher's attempt tag where every run of the
    trial has one, else by start time), carrying how many attempts the trial made. Runs without a
    trial index stand alone."""
    groups: dict[int | str, list[Trial]] = {}
    for t in found:
        groups.setdefault(t.index if t.index >= 0 else t.run_id, []).append(t)
    out = []
    for runs in groups.values():
        if all(t.attempt is not None for t in runs):
            latest = max(runs, key=lambda t: (t.attempt or 0, t.start_time, t.run_id))
        else:
            latest = max(runs, key=lambda t: (t.start_time, t.run_id))
        out.append(replace(latest, attempts=len(runs)))
    return out


def scored(t: Trial) -> bool:
    """Has a value to rank by: NaN and a missing metric have none; infinities are numbers."""
    return t.value is not None and not math.isnan(t.value)


def rank(found: list[Trial], goal: str) -> list[Trial]:
    """Best first by the metric (ties by index); runs with a NaN or missing metric (failed, still
    running, diverged) last by index, whatever the goal."""
    sign = 1.0 if goal == "minimize" else -1.0
    ranked = sorted(
        (t for t in found if scored(t)), key=lambda t: (sign * (t.value or 0.0), t.index, t.run_id)
    )
    return ranked + sorted((t for t in found if not scored(t)), key=lambda t: (t.index, t.run_id))


def best(found: list[Trial], goal: str, include_failed: bool = False) -> tuple[list[Trial], int]:
    """The trials ranked as `sweep best` shows them: latest attempts only, FAILED and KILLED left out
    unless include_failed. Returns them and how many trials were left out."""
    latest = latest_attempts(found)
    kept = latest if include_failed else [t for t in latest if t.status not in FAILED]
    return rank(kept, goal), len(latest) - len(kept)
