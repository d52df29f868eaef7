"""Where the project's charts, presets and tools live. helm-mlops runs from its checkout (`make setup`,
or the helm plugin, which is the checkout), so these are paths inside it."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHARTS_DIR = REPO_ROOT / "charts"
PRESETS_DIR = REPO_ROOT / "values-presets"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


def chart_dirs() -> list[Path]:
    return sorted(p.parent for p in CHARTS_DIR.glob("*/Chart.yaml"))


def chart_dir(name: str) -> Path:
    from generator.errors import UserError

    path = CHARTS_DIR / name
    if not (path / "Chart.yaml").is_file():
        known = ", ".join(p.name for p in chart_dirs())
        raise UserError(f"no chart named {name!r}", field="--chart", hint=f"use one of: {known}")
    return path
