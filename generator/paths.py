"""Where helm-mlops finds its charts, presets and the files the CLI shares with the pods.

Three layouts, in this order:
- ``HELM_MLOPS_CHARTS=DIR``: another charts root (its ``values-presets/`` beside it, if any);
- a source checkout (``make setup`` or the helm plugin): ``<repo>/charts`` and ``<repo>/values-presets``;
- an installed wheel: the copies the build puts in the package (``generator/_data/``, see setup.py).

Only the checkout has ``hack/`` (the embedded cluster) and ``.tools/bin`` (the pinned helm).

What helm-mlops caches (the GitHub releases of `helm-mlops versions`) lives under ``cache_dir()``."""

from __future__ import annotations

import os
from functools import cache
from importlib.resources import files
from pathlib import Path

from generator.errors import UserError

CHARTS_ENV = "HELM_MLOPS_CHARTS"
CACHE_ENV = "HELM_MLOPS_CACHE_DIR"
_PACKAGE = Path(__file__).resolve().parent


def command_name() -> str:
    """How the user calls us: `helm mlops` as a helm plugin (helm sets HELM_PLUGIN_DIR), else the CLI."""
    return "helm mlops" if os.environ.get("HELM_PLUGIN_DIR") else "helm-mlops"


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None when installed from a wheel."""
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "charts").is_dir() and (root / "hack").is_dir():
        return root
    return None


@cache
def _data_root() -> Path:
    root = checkout_root()
    if root is not None:
        return root
    return Path(str(files("generator") / "_data"))


def charts_root() -> Path:
    env = os.environ.get(CHARTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise UserError(
                f"{path} is not a directory",
                field=CHARTS_ENV,
                hint="point it at a folder of charts, or unset it",
            )
        return path
    return _data_root() / "charts"


def presets_dir() -> Path:
    env = os.environ.get(CHARTS_ENV)
    if env and (Path(env).expanduser().parent / "values-presets").is_dir():
        return Path(env).expanduser().parent / "values-presets"
    return _data_root() / "values-presets"


def tools_bin() -> Path | None:
    root = checkout_root()
    return root / ".tools" / "bin" if root is not None else None


def hack_script(name: str, needed_for: str) -> Path:
    """A script of the checkout's hack/ folder; from a wheel, a UserError that says what to do."""
    root = checkout_root()
    if root is None:
        raise UserError(
            f"{needed_for} needs a source checkout of helm-mlops (this one is installed from a wheel)",
            field=needed_for,
            hint="pass --kubeconfig (or set KUBECONFIG) to use your cluster, or run from a git clone "
            "after `make setup`",
        )
    return root / "hack" / name


def chart_dirs() -> list[Path]:
    return sorted(p.parent for p in charts_root().glob("*/Chart.yaml"))


def chart_dir(name: str, field: str = "--chart") -> Path:
    root = charts_root()
    path = root / name
    if "/" in name or name in ("", ".", "..") or not (path / "Chart.yaml").is_file():
        known = ", ".join(p.name for p in chart_dirs())
        if not known:
            raise UserError(
                f"{root} holds no charts (no */Chart.yaml)",
                field=CHARTS_ENV if os.environ.get(CHARTS_ENV) else "charts",
                hint=f"point {CHARTS_ENV} at the folder holding mlflow/, training-job/, inference-service/",
            )
        raise UserError(f"no chart named {name!r} in {root}", field=field, hint=f"use one of: {known}")
    return path


def chart_file(chart: str, *parts: str) -> Path:
    """A file the CLI shares with a chart's pods (files/sweep.py, files/hm_runtime)."""
    field = CHARTS_ENV if os.environ.get(CHARTS_ENV) else "charts"
    return chart_dir(chart, field=field).joinpath("files", *parts)


def cache_dir() -> Path:
    """``$HELM_MLOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/helm-mlops``, else ``~/.cache/helm-mlops``
    (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # XDG: absolute only
    return base / "helm-mlops"
