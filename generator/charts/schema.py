"""Generates a chart's values.schema.json (JSON Schema draft-07, which Helm 3.17+ and Helm 4 enforce)
from its values.yaml: types from the defaults, `additionalProperties: false` on every documented map
so a typo fails, Kubernetes quantity patterns for `resources` and `size`, and the enums, patterns and
bounds listed in values.schema.refine.yaml beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generator import yamlio
from generator.answers_schema import LABEL_KEY, LABEL_VALUE
from generator.errors import StaleError
from generator.values import QUANTITY_PATTERN

# One quantity rule for the CLI and the schema: Kubernetes' own grammar (generator.values).
QUANTITY = {"type": ["string", "integer", "number"], "pattern": QUANTITY_PATTERN}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": QUANTITY},
        "limits": {"type": "object", "additionalProperties": QUANTITY},
    },
}
SIZE = {"type": "string", "pattern": QUANTITY_PATTERN}
# Maps whose keys are the user's own (labels, selectors, Kubernetes objects passed through).
FREE_FORM = {
    "nodeSelector",
    "affinity",
    "podAnnotations",
    "podLabels",
    "commonLabels",
    "commonAnnotations",
    "annotations",
    "labels",
    "podSecurityContext",
    "containerSecurityContext",
}


# Maps of Kubernetes labels: keys and values as the API server validates them, so a bad key fails at
# `helm install` with its value's name instead of at the API server (the answers' own patterns).
LABEL_MAPS = {"labels", "podLabels", "commonLabels"}
LABELS = {
    "type": "object",
    "propertyNames": {"type": "string", "pattern": LABEL_KEY, "maxLength": 317},
    "additionalProperties": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63},
}


def _infer(value: Any, path: str, refine: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if path in refine:
        schema = dict(refine[path])
        if "enum" in schema and "type" not in schema:
            schema["type"] = "string"
        return schema
    last = path.rsplit(".", 1)[-1]
    if last == "resources":
        return RESOURCES
    if last == "size":
        return SIZE
    if last in LABEL_MAPS:
        return LABELS
    if last in FREE_FORM:
        return {"type": "object"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        props = {k: _infer(v, f"{path}.{k}" if path else k, refine) for k, v in value.items()}
        return {"type": "object", "additionalProperties": False, "properties": props}
    return {}


def generate(chart_dir: Path) -> dict[str, Any]:
    values = yamlio.load_mapping(chart_dir / "values.yaml")
    refine_file = chart_dir / "values.schema.refine.yaml"
    refine = yamlio.load_mapping(refine_file) if refine_file.is_file() else {}
    body = _infer(values, "", refine or {})
    body["properties"]["global"] = {"type": "object"}  # set by umbrella charts for all subcharts
    name = yamlio.load_mapping(chart_dir / "Chart.yaml").get("name") or chart_dir.name  # not the folder's
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{name} chart values",
        **body,
    }


def update_schema(chart_dir: Path, check: bool = False) -> bool:
    target = chart_dir / "values.schema.json"
    text = json.dumps(generate(chart_dir), indent=2) + "\n"
    if target.is_file() and target.read_text() == text:
        return False
    if check:
        raise StaleError(f"{target} is out of date with values.yaml: run `helm-mlops docs {chart_dir}`")
    target.write_text(text)
    return True
