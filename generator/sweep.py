"""Sweeps: the space, from the one implementation the pods run (the training-job chart ships
files/sweep.py to its launcher and helm-mlops imports that same file, so the CLI's plan, its
validation and the trials the pods run cannot drift apart), and the results, as MLflow recorded them:
the launcher tags every trial's run with `helm-mlops.sweep` (the Job's uid) and `helm-mlops.trial`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
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
    "int|float|categorical, values: [...] | min, max, step (int) | count (float grid), scale: log}]}"
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
    mod = _module()
    count = trial_count(spec, source)
    return [dict(_guarded(source, mod.trial_params, spec, i)) for i in range(count)]


def env_name(name: str) -> str:
    return str(_module().env_name(name))


def format_value(value: Any) -> str:
    return str(_module().format_value(value))


# Results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    index: int
    run_id: str
    status: str
    value: float | None
    params: dict[str, str]


def _call(uri: str, path: str, body: dict[str, Any], auth: tuple[str, str] | None) -> dict[str, Any]:
    import requests

    from generator.values import http_url, one_line

    url = f"{http_url(uri, '--tracking-uri').rstrip('/')}/api/2.0/mlflow/{path}"
    try:
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
    if response.status_code >= 400:
        raise ToolError(f"MLflow {path} failed ({response.status_code}): {one_line(response.text)}")
    try:
        return dict(response.json())
    except ValueError:
        raise ToolError(
            f"{uri} answered {path} with something that is not MLflow's JSON: {one_line(response.text)}\n"
            "  fix: point --tracking-uri at the MLflow server itself"
        ) from None


def trials(
    uri: str, experiment: str, sweep_id: str, metric: str, auth: tuple[str, str] | None = None
) -> list[Trial]:
    found = _call(uri, "experiments/search", {"filter": f"name = '{experiment}'", "max_results": 1}, auth)
    experiments = found.get("experiments") or []
    if not experiments:
        raise UserError(f"no MLflow experiment named {experiment!r}", field="--experiment")
    body = {
        "experiment_ids": [experiments[0]["experiment_id"]],
        "filter": f"tags.`helm-mlops.sweep` = '{sweep_id}'",
        "max_results": 10000,
    }
    out = []
    for run in _call(uri, "runs/search", body, auth).get("runs") or []:
        data = run.get("data") or {}
        tags = {t["key"]: t["value"] for t in data.get("tags") or []}
        metrics = {m["key"]: m["value"] for m in data.get("metrics") or []}
        value = metrics.get(metric)
        out.append(
            Trial(
                index=int(tags.get("helm-mlops.trial", -1)),
                run_id=run["info"]["run_id"],
                status=run["info"].get("status", ""),
                value=float(value) if value is not None else None,
                params={p["key"]: p["value"] for p in data.get("params") or []},
            )
        )
    return out


def rank(found: list[Trial], goal: str) -> list[Trial]:
    """Best first; trials without the metric (failed, still running) last, by index."""
    scored = [t for t in found if t.value is not None]
    unscored = sorted((t for t in found if t.value is None), key=lambda t: t.index)
    scored.sort(key=lambda t: (t.value if goal == "minimize" else -(t.value or 0.0), t.index))
    return scored + unscored
