"""Validates custom resources offline against the openAPIV3Schema of upstream CRDs: types, enums,
required fields and patterns via jsonschema, plus unknown fields (what the API server's strict
field validation rejects), honouring x-kubernetes-preserve-unknown-fields."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml


@functools.cache
def load_crd_schemas(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> schema, for every served version of every CRD in the folder (parsed once:
    the upstream CRDs are megabytes of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served"):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _unknown_fields(obj: Any, schema: dict[str, Any], path: str) -> list[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    problems = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, value in obj.items():
            if props is not None and key in props:
                problems += _unknown_fields(value, props[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                problems += _unknown_fields(value, additional, f"{path}.{key}")
            elif props is not None and not (path == "" and key in ("apiVersion", "kind", "metadata")):
                problems.append(f"unknown field {path}.{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            problems += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return problems


def validate_custom_resource(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    return problems + _unknown_fields(obj, schema, "")
