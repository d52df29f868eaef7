"""The one YAML reader and writer of helm-mlops.

Writing: YAML that helm reads back exactly as written. Helm parses values as YAML 1.1, where a bare
`y`, `n`, `on` or `off` is a boolean; PyYAML (YAML 1.1 too, but without the one-letter forms) leaves
`y` and `n` bare, so a sweep parameter named `n` would reach helm as `false`. Ambiguous strings are
quoted, and multi-line strings are written as literal blocks.

Reading: errors become UserError naming the file (or the option it came from) and the line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from generator.errors import UserError

_AMBIGUOUS = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|true|True|TRUE|false|False|FALSE|~|null|Null|NULL)$"
)
# Numbers to helm's YAML reader that PyYAML (YAML 1.1: a float needs a dot) leaves bare: 1e3, 0o17, 1_000.
_NUMERIC = re.compile(
    r"^[-+]?(\.?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+)$"
)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _AMBIGUOUS.match(value) or _NUMERIC.match(value) else None
    if "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


# libyaml's safe loader parses the charts' commented values.yaml files about 10x faster than PyYAML's
# pure-Python one, with the same YAML 1.1 rules.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else str(problem)


def _duplicate(node: yaml.Node | None) -> tuple[str, int] | None:
    """The first mapping key given twice under one parent (YAML allows it; the last one would win)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    return key.value, key.start_mark.line + 1
                seen.add(key.value)
            found = _duplicate(value)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate(item)
            if found:
                return found
    return None


def loads(text: str, field: str, unique_keys: bool = False) -> Any:
    """Parse YAML text; a syntax error is a UserError naming `field` and the line. With `unique_keys`
    (files people write: answers), a key given twice under one parent is an error too."""
    try:
        if unique_keys:
            found = _duplicate(yaml.compose(text, Loader=_LOADER))
            if found:
                raise UserError(
                    f"the key {found[0]!s} is given twice (line {found[1]}); the last one would win silently",
                    field=field,
                    hint="keep one of them",
                )
        return yaml.load(text, Loader=_LOADER)  # a safe loader (libyaml's when built with it)
    except yaml.YAMLError as exc:
        raise UserError(
            f"not valid YAML ({_problem(exc)})", field=field, hint="fix the YAML syntax"
        ) from None


def read_text(path: Path, field: str, hint: str) -> str:
    """A text file the user named; a UserError that says why when it cannot be read as one."""
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a file", field=field, hint=hint)
    if not path.is_file():
        raise UserError(f"{path} does not exist", field=field, hint=hint)
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text (a binary file?)", field=field, hint=hint) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", field=field, hint=hint) from None


def load_mapping(path: Path, field: str | None = None) -> dict[str, Any]:
    """A YAML file that must hold a mapping (values, answers, sweep files). An empty file is {}."""
    name = field or str(path)
    text = read_text(path, name, "pass an existing YAML file")
    data = loads(text, f"{name} ({path})" if field else name)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"{path} must hold a mapping of keys to values, not a {type(data).__name__}", field=name
        )
    return data
