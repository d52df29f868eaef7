"""Hyperparameter sweep spaces: which parameters trial N of a sweep gets.

Shipped in the training-job chart's ConfigMap (the launcher imports it inside the pod) and imported
by helm-mlops itself (validation, `helm-mlops sweep plan`), so both always agree. Standard library
only: it runs in the stock python image.

A spec is the chart's `sweep` values: {"strategy": "grid"|"random", "trials": N, "seed": S,
"parameters": [{"name", "type": "int"|"float"|"categorical", "values" | "min"/"max"/"step"/"count",
"scale": "linear"|"log"}]}.
- grid: every combination; trial i is the mixed-radix decomposition of i over the parameters' value
  lists, the first parameter varying slowest.
- random: trial i draws from a generator seeded with (seed, i) alone, so a trial's parameters do not
  depend on how many trials there are or on which other trials ran.
A float grid starts at min and ends at max exactly; the points between are rounded to 12 significant
digits and clamped to [min, max] (exp/log and sums overshoot: the log grid 0.0001..0.1 used to end at
0.10000000000000006). Random floats are clamped to [min, max] too.

`validate` checks every key's type before any value is used, so a malformed spec is a SweepError
naming the field, never a TypeError from deep inside.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

MAX_TRIALS = 10_000


class SweepError(ValueError):
    """A sweep spec that cannot be expanded; the message names the field."""


def _where(i: int, p: Any) -> str:
    name = p.get("name", "?") if isinstance(p, dict) else "?"
    return f"sweep.parameters[{i}] ({name})"


_SCALARS = (str, int, float, bool)
_KEYS = {"name", "type", "values", "min", "max", "step", "count", "scale"}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def validate(spec: Any) -> None:
    """The spec's shape and types, each key judged before any is used; a SweepError naming the field.
    The chart's values.schema.json states the same types for helm (and `helm-mlops` checks it too)."""
    if not isinstance(spec, dict):
        raise SweepError(f"sweep must be a mapping, got {_kind(spec)}")
    strategy = spec.get("strategy", "grid")
    if strategy not in ("grid", "random"):
        raise SweepError(f"sweep.strategy must be grid or random, got {strategy!r}")
    for key in ("trials", "seed"):
        if key in spec and spec[key] is not None and not _whole(spec[key]):
            raise SweepError(f"sweep.{key} must be a whole number, got {spec[key]!r}")
    params = spec.get("parameters")
    if params is None:
        params = []
    if not isinstance(params, list):
        raise SweepError(f"sweep.parameters must be a list of parameters, got {_kind(params)}")
    for i, p in enumerate(params):
        where = _where(i, p)
        if not isinstance(p, dict):
            raise SweepError(f"{where} must be a mapping {{name, type, ...}}, got {p!r}")
        unknown = sorted(str(k) for k in p if k not in _KEYS)
        if unknown:
            known = ", ".join(sorted(_KEYS))
            raise SweepError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {known}")
        name = p.get("name")
        if not isinstance(name, str) or not name:
            raise SweepError(f"{where}: name must be a non-empty string, got {name!r}")
        kind = p.get("type")
        if kind not in ("int", "float", "categorical"):
            raise SweepError(f"{where}: type must be int, float or categorical, got {kind!r}")
        values = p.get("values")
        if values is not None:
            if not isinstance(values, list):
                raise SweepError(f"{where}: values must be a list, e.g. [a, b], got {values!r}")
            for k, v in enumerate(values):
                if not isinstance(v, _SCALARS):
                    raise SweepError(f"{where}: values[{k}] must be a string, number or boolean, got {v!r}")
                if kind == "int" and not (_whole(v) or (_finite(v) and float(v).is_integer())):
                    raise SweepError(f"{where}: values[{k}] must be a whole number (type int), got {v!r}")
                if kind == "float" and not _finite(v):
                    raise SweepError(f"{where}: values[{k}] must be a number (type float), got {v!r}")
        for key in ("min", "max"):
            if key in p and not _finite(p[key]):
                raise SweepError(f"{where}: {key} must be a finite number, got {p[key]!r}")
            if key in p and kind == "int" and not float(p[key]).is_integer():
                raise SweepError(f"{where}: {key} must be a whole number (type int), got {p[key]!r}")
        for key in ("step", "count"):
            if key in p and p[key] is not None and (not _whole(p[key]) or p[key] < 1):
                raise SweepError(f"{where}: {key} must be a whole number >= 1, got {p[key]!r}")
        if p.get("scale", "linear") not in ("linear", "log"):
            raise SweepError(f"{where}: scale must be linear or log, got {p.get('scale')!r}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _tidy(values: list[float], lo: float, hi: float) -> list[float]:
    """Grid points with min and max exactly at the ends, the points between rounded to 12 significant
    digits and clamped to [lo, hi]; unrounded (but clamped) where rounding would merge two points."""
    clamped = [lo, *(min(hi, max(lo, v)) for v in values[1:-1]), hi]
    rounded = [lo, *(min(hi, max(lo, float(f"{v:.12g}"))) for v in clamped[1:-1]), hi]
    return rounded if len(set(rounded)) == len(set(clamped)) else clamped


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _typed(p: dict[str, Any]) -> list[Any]:
    """A parameter's listed values in its declared type. Helm's toJson writes 10.0 as 10, so without
    this a float parameter would reach the pod as an int and the CLI's plan would disagree."""
    values = list(p["values"])
    if p.get("type") == "float":
        return [float(v) for v in values]
    if p.get("type") == "int":
        return [int(v) for v in values]
    return values


def grid_values(p: dict[str, Any], i: int = 0) -> list[Any]:
    """The values a parameter takes in a grid sweep."""
    where = _where(i, p)
    if p.get("values"):
        return _typed(p)
    kind = p.get("type")
    lo, hi = _bounds(p, where)
    if kind == "int":
        raw_step = p.get("step") or 1
        if isinstance(raw_step, bool) or not isinstance(raw_step, int) or raw_step <= 0:
            raise SweepError(f"{where}: step must be a whole number > 0, got {raw_step!r}")
        # Counted before anything is built, so a huge range is refused instead of filling memory.
        if (int(hi) - int(lo)) // raw_step + 1 > MAX_TRIALS:
            raise SweepError(f"{where}: more than {MAX_TRIALS} values between min and max; raise step")
        return list(range(int(lo), int(hi) + 1, raw_step))
    if kind == "float":
        count = p.get("count") or 0
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise SweepError(f"{where}: a float grid needs count (a whole number of points) or values")
        if count > MAX_TRIALS:
            raise SweepError(f"{where}: count {count} is more than {MAX_TRIALS} points")
        if count == 1:
            return [lo]
        if p.get("scale") == "log":
            if lo <= 0:
                raise SweepError(f"{where}: scale=log needs min > 0")
            a, b = math.log(lo), math.log(hi)
            points = [math.exp(a + (b - a) * k / (count - 1)) for k in range(count)]
        elif math.isfinite(hi - lo):
            points = [lo + (hi - lo) * k / (count - 1) for k in range(count)]
        else:  # hi - lo overflows (-1e308..1e308): weigh the ends instead
            points = [lo * (1 - k / (count - 1)) + hi * (k / (count - 1)) for k in range(count)]
        return _tidy(points, lo, hi)
    raise SweepError(f"{where}: type must be int, float or categorical, got {kind!r}")


def trial_count(spec: dict[str, Any]) -> int:
    """Number of trials; raises SweepError for a malformed or empty space or more than MAX_TRIALS.
    Counted from the sizes alone: no range is built before its length is known to be within bounds."""
    validate(spec)
    params = spec.get("parameters") or []
    if spec.get("strategy", "grid") == "random":
        for i, p in enumerate(params):
            _check_random(p, i)
        n = int(spec.get("trials") or 0)
        if n <= 0:
            raise SweepError("sweep.trials must be at least 1 for a random sweep")
    else:
        if not params:
            raise SweepError("sweep.parameters is empty: a grid sweep needs at least one parameter")
        n = 1
        for i, p in enumerate(params):
            size = len(grid_values(p, i))
            if size == 0:
                raise SweepError(f"{_where(i, p)} has no values, so the sweep has 0 trials")
            n = min(n * size, MAX_TRIALS + 1)
    if n > MAX_TRIALS:
        raise SweepError(
            f"the sweep has more than {MAX_TRIALS} trials (one Indexed Job): narrow sweep.parameters "
            "or use strategy=random with fewer sweep.trials"
        )
    names = [p.get("name") for p in params]
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    if dupes:
        raise SweepError(f"sweep.parameters: duplicate names {', '.join(dupes)}")
    return n


def _bounds(p: dict[str, Any], where: str) -> tuple[float, float]:
    """min and max of a numeric parameter given as a range (not as values)."""
    if p.get("type") == "categorical":
        raise SweepError(f"{where}: a categorical parameter needs values")
    if "min" not in p or "max" not in p:
        raise SweepError(f"{where}: set min and max, or values")
    lo, hi = _number(p["min"], where, "min"), _number(p["max"], where, "max")
    if hi < lo:
        raise SweepError(f"{where}: max must be >= min")
    return lo, hi


def _check_random(p: dict[str, Any], i: int) -> None:
    where = _where(i, p)
    if p.get("values"):
        return
    lo, _ = _bounds(p, where)
    if p.get("scale") == "log" and lo <= 0:
        raise SweepError(f"{where}: scale=log needs min > 0")
    if p.get("type") not in ("int", "float"):
        raise SweepError(f"{where}: type must be int, float or categorical, got {p.get('type')!r}")


def _draw(rng: random.Random, p: dict[str, Any]) -> Any:
    if p.get("values"):
        return rng.choice(_typed(p))
    lo, hi = float(p["min"]), float(p["max"])
    log = p.get("scale") == "log"
    if p["type"] == "int":
        step = int(p.get("step") or 1)
        if log:
            return min(int(hi), max(int(lo), round(math.exp(rng.uniform(math.log(lo), math.log(hi))))))
        return int(lo) + step * rng.randrange((int(hi) - int(lo)) // step + 1)
    if log:
        return min(hi, max(lo, math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    if not math.isfinite(hi - lo):  # uniform() would overflow to inf: weigh the ends instead
        share = rng.random()
        return min(hi, max(lo, lo * (1 - share) + hi * share))
    return min(hi, max(lo, rng.uniform(lo, hi)))


def trial_params(spec: dict[str, Any], index: int) -> dict[str, Any]:
    """The parameters of trial `index` (0-based)."""
    total = trial_count(spec)
    if not 0 <= index < total:
        raise SweepError(f"trial index {index} is outside the sweep's {total} trials")
    params = spec.get("parameters") or []
    if spec.get("strategy", "grid") == "random":
        rng = random.Random(f"helm-mlops-sweep/{spec.get('seed', 0)}/{index}")
        return {p["name"]: _draw(rng, p) for p in params}
    out: dict[str, Any] = {}
    rest = index
    for i in reversed(range(len(params))):
        values = grid_values(params[i], i)
        rest, digit = divmod(rest, len(values))
        out[params[i]["name"]] = values[digit]
    return {p["name"]: out[p["name"]] for p in params}


def all_trials(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every trial's parameters by index, as trial_params gives them one by one, with each grid
    parameter's values built once (at most MAX_TRIALS trials, checked first)."""
    total = trial_count(spec)
    params = spec.get("parameters") or []
    if spec.get("strategy", "grid") == "random":
        return [trial_params(spec, i) for i in range(total)]
    grids = [grid_values(p, i) for i, p in enumerate(params)]
    names = [p["name"] for p in params]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grids)]


def env_name(name: str) -> str:
    """HPARAM_<NAME>: upper case, every character outside [A-Z0-9_] as `_`."""
    return "HPARAM_" + "".join(c if c.isalnum() else "_" for c in name.upper())


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
