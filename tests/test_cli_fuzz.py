"""Hold the line (issue 15): random argument vectors and `--set` items for `train` and `sweep plan`
end in exit 0 or 2, never a traceback (exit 1) or a tool's raw failure (exit 3), and a failing run
leaves its directory as it was. In-process (tests/support/incli.py), so a run takes milliseconds
when refused and one helm template when accepted."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.support.incli import run_cli
from tests.test_sweep import grid_space, random_space

KEYS = [
    "gpu",
    "gpu.count",
    "resources",
    "resources.requests",
    "resources.requests.cpu",
    "resources.requests.memory",
    "resources.limits.cpu",
    "resources.limits.memory",
    "distributed",
    "distributed.enabled",
    "distributed.nodes",
    "distributed.nprocPerNode",
    "distributed.operator",
    "sweep",
    "sweep.enabled",
    "sweep.strategy",
    "sweep.trials",
    "sweep.seed",
    "sweep.parameters",
    "sweep.parameters[0].name",
    "sweep.parameters[0].type",
    "sweep.parameters[0].min",
    "sweep.parameters[0].max",
    "sweep.parameters[0].step",
    "sweep.parameters[0].count",
    "sweep.parameters[0].scale",
    "sweep.parameters[0].values",
    "image",
    "image.repository",
    "image.tag",
    "cronJob.schedule",
    "script",
    "script.content",
    "script.fileName",
    "command",
    "requirements",
    "env",
    "job.backoffLimit",
    "rerun",
    "mlflow.trackingUri",
]
WORDS = [
    "two", "5", "-1", "0", "1", "true", "null", "{a,b}", "{}", "1.5", "500m", "4Gi", "", "x y", "lr",
    "* * * * *", "99 * * * *", "@daily", "grid", "random", "bayes", "int", "float", "categorical",
    "log", "1e300", "[1,2]", '{"a":1}', "python", "3.12-slim", "é", "a\\,b", "a.b",
]  # fmt: skip
VALUES = st.one_of(st.sampled_from(WORDS), st.text(alphabet="ab1-.:*/ {},=", max_size=8))
GOOD_SETS = st.sampled_from(
    [
        ("--set", "job.backoffLimit", "2"),
        ("--set", "gpu.count", "1"),
        ("--set-string", "image.tag", "3.12-slim"),
        ("--set", "resources.requests.cpu", "500m"),
        ("--set", "resources.limits.memory", "8Gi"),
        ("--set", "cronJob.schedule", "*/5 * * * *"),
        ("--set", "requirements", "{numpy,pandas}"),
        ("--set", "rerun", "abc"),
    ]
)
ANY_SETS = st.tuples(st.sampled_from(["--set", "--set-string", "--set-json"]), st.sampled_from(KEYS), VALUES)
OPTIONS = st.one_of(
    st.tuples(
        st.sampled_from(["--cpu", "--memory"]), st.sampled_from(["1", "500m", "4Gi", "0", "two", "-1"])
    ),
    st.tuples(
        st.sampled_from(["--gpus", "--nodes", "--nproc-per-node"]), st.sampled_from(["0", "1", "2", "x"])
    ),
    st.tuples(
        st.just("--schedule"), st.sampled_from(["0 3 * * *", "not a cron", "99 99 * * *", "@hourly", ""])
    ),
    st.tuples(st.just("--image"), st.sampled_from(["python:3.12", "python:", "reg:5000/a/b", ":", "a b"])),
    st.tuples(st.just("--operator"), st.sampled_from(["none", "pytorchjob", "mpi"])),
    st.tuples(st.just("-r"), st.sampled_from(["numpy", "-e .", ""])),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 30), st.floats(allow_nan=True), st.sampled_from(WORDS)
)
SPEC_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
PARAMETER = st.dictionaries(
    st.sampled_from(["name", "type", "values", "min", "max", "step", "count", "scale", "other"]),
    st.one_of(
        st.sampled_from(["a", "lr", "int", "float", "categorical", "log", "linear"]),
        SPEC_VALUES,
        st.integers(0, 10**7),
    ),
    max_size=7,
)
NUMBERS = st.one_of(st.integers(-5, 50), st.floats(-1e3, 1e3), st.sampled_from([0, 1e-9, 1e300, 10**7]))
GOOD_PARAMETER = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "lr", "b"]), "type": st.sampled_from(["int", "float", "categorical"])},
    optional={
        "min": NUMBERS,
        "max": NUMBERS,
        "step": st.integers(-1, 5),
        "count": st.integers(0, 6),
        "scale": st.sampled_from(["linear", "log"]),
        "values": st.lists(
            st.one_of(st.integers(-3, 3), st.floats(-1, 1), st.sampled_from(["x", "adam"])), max_size=3
        ),
    },
)
NEAR_SPEC = st.fixed_dictionaries(
    {"parameters": st.lists(GOOD_PARAMETER, min_size=1, max_size=3)},
    optional={
        "strategy": st.sampled_from(["grid", "random"]),
        "trials": st.integers(0, 20),
        "seed": st.integers(0, 9),
        "parallelism": st.integers(0, 3),
    },
)
JUNK_SPEC = st.one_of(
    SPEC_VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "strategy": st.sampled_from(["grid", "random", "bayes", None, 1]),
            "trials": st.one_of(st.integers(-1, 20), st.sampled_from(["many", None, 2.5])),
            "seed": st.one_of(st.integers(0, 9), st.sampled_from(["x", None])),
            "parameters": st.one_of(st.lists(st.one_of(PARAMETER, SCALARS), max_size=3), SCALARS),
        },
    ),
)
SPEC = st.one_of(grid_space(), random_space(), NEAR_SPEC, JUNK_SPEC)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _check(args: list[str], folder: Path, before: list[str]) -> int:
    result = run_cli(*args, cwd=folder)
    assert result.returncode in (0, 2), (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, (args, result.stderr)
    event(f"exit {result.returncode}: {result.stderr.splitlines()[0][:40] if result.stderr else ''}")
    if result.returncode == 2:
        assert result.stderr.strip(), args
        assert _listing(folder) == before, (args, result.stderr)  # nothing written, no staging left
    return result.returncode


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(GOOD_SETS, GOOD_SETS, ANY_SETS), max_size=3),
    st.lists(OPTIONS, max_size=2),
    st.one_of(st.none(), st.none(), SPEC),
)
def test_train_exits_0_or_2_and_writes_nothing_when_it_refuses(
    sets: list[tuple[str, str, str]], options: list[tuple[str, str]], spec: Any
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hm-fuzz-"))
    try:
        (folder / "train.py").write_text("print('train')\n")
        args = ["train", "r1", "--script", "train.py", "--skip-preflight", "--render-to", "out"]
        for flag, key, value in sets:
            args += [flag, f"{key}={json.dumps(value) if flag == '--set-json' and value in WORDS else value}"]
        for option in options:
            args += list(option)
        if spec is not None:
            (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
            args += ["--sweep", "sweep.yaml"]
        before = _listing(folder)
        if _check(args, folder, before) == 0:
            assert (folder / "out" / "values.yaml").is_file()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=150, deadline=None)
@given(SPEC, st.booleans())
def test_sweep_plan_exits_0_or_2(spec: Any, wrapped: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hm-fuzz-"))
    try:
        (folder / "sweep.yaml").write_text(yaml.safe_dump({"sweep": spec} if wrapped else spec))
        before = _listing(folder)
        _check(["sweep", "plan", "-f", "sweep.yaml"], folder, before)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
