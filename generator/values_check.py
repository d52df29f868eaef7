"""Checks values against a chart's values.schema.json before helm runs, so every problem is reported
at once with its dotted key path (helm stops at the schema's first complaint per key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generator.errors import UserError


def schema_problems(chart_dir: Path, values: dict[str, Any]) -> list[str]:
    import jsonschema

    schema_file = chart_dir / "values.schema.json"
    if not schema_file.is_file():
        return []
    validator = jsonschema.Draft7Validator(json.loads(schema_file.read_text()))
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(map(str, error.absolute_path)) or "(top level)"
        problems.append(f"{path}: {error.message}")
    return problems


def check_values(chart_dir: Path, values: dict[str, Any], source: str) -> None:
    problems = schema_problems(chart_dir, values)
    if problems:
        raise UserError(
            f"{len(problems)} invalid value(s) for chart {chart_dir.name}:\n  - " + "\n  - ".join(problems),
            field=source,
            hint=f"see {chart_dir / 'README.md'} for every value, its type and default",
        )


# Markers of helm output that blame the values rather than the tool (schema and chart `fail` checks).
VALUE_ERROR_MARKERS = ("Invalid values for the", "values don't meet the specifications")


def is_values_error(helm_message: str) -> bool:
    return any(marker in helm_message for marker in VALUE_ERROR_MARKERS)
