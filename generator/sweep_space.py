"""Sweep spaces, from the one implementation the pods run: the training-job chart ships
files/sweep.py to its launcher, and helm-mlops imports that same file, so the CLI's plan, its
validation and the trials the pods run cannot drift apart."""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType
from typing import Any

from generator.errors import UserError
from generator.paths import chart_dir


@cache
def _module() -> ModuleType:
    path = chart_dir("training-job") / "files" / "sweep.py"
    spec = importlib.util.spec_from_file_location("helm_mlops_chart_sweep", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trial_count(spec: dict[str, Any], source: str = "sweep") -> int:
    """Number of trials; a UserError naming the field for an empty or oversized space."""
    mod = _module()
    try:
        return int(mod.trial_count(spec))
    except mod.SweepError as exc:
        raise UserError(str(exc), field=source, hint="see `helm-mlops sweep plan --help`") from None


def plan(spec: dict[str, Any], source: str = "sweep") -> list[dict[str, Any]]:
    """Every trial's parameters, by completion index."""
    mod = _module()
    count = trial_count(spec, source)
    return [dict(mod.trial_params(spec, i)) for i in range(count)]


def env_name(name: str) -> str:
    return str(_module().env_name(name))


def format_value(value: Any) -> str:
    return str(_module().format_value(value))
