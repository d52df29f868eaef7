"""Values documentation: reads the `# --` comments of a chart's values.yaml (helm-docs style) and
renders the Markdown table that the chart README embeds between two marker comments."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import yamlio
from generator.errors import StaleError, UserError

START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
_CONT = re.compile(r"^ *# ?(?P<text>.*)$")


@dataclass(frozen=True)
class ValueDoc:
    key: str
    type: str
    default: str
    description: str


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


# bool before int: a bool is an int in Python.
_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (str, "string"),
    (list, "list"),
    (dict, "object"),
)


def _type_name(value: Any) -> str:
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), "null")


def _default(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return f"`{text}`" if len(text) <= 80 else f"`{text[:77]}...`"


def parse_values_docs(values_file: Path) -> list[ValueDoc]:
    """Every documented key, in file order. A documented map whose children are documented too is
    a section heading and gets no row of its own."""
    text = values_file.read_text()
    values = yamlio.loads(text, str(values_file)) or {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        doc = _DOC.match(line)
        if doc:
            pending = [doc.group("text")]
            continue
        if pending is not None and line.strip().startswith("#"):
            cont = _CONT.match(line)
            if cont:
                pending.append(cont.group("text"))
            continue
        key = _KEY.match(line)
        if not key:
            if line.strip():
                pending = None
            continue
        indent = len(key.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([p for _, p in stack] + [key.group("key")])
        stack.append((indent, key.group("key")))
        if pending is not None:
            found.append((path, " ".join(t.strip() for t in pending).strip()))
            pending = None
    documented = {path for path, _ in found}
    rows = []
    for path, description in found:
        value = _lookup(values, path)
        if isinstance(value, dict) and any(d.startswith(path + ".") for d in documented):
            continue
        rows.append(ValueDoc(path, _type_name(value), _default(value), description))
    return rows


def undocumented_keys(values_file: Path) -> list[str]:
    """Keys that no table row covers: a row covers its key and everything below it; an
    undocumented map, or a section heading, passes the question on to its children."""
    values = yamlio.load_mapping(values_file)
    covered = {d.key for d in parse_values_docs(values_file)}
    missing: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in covered:
                continue
            if isinstance(value, dict) and value:
                walk(value, path + ".")
            else:
                missing.append(path)

    walk(values, "")
    return missing


def render_table(rows: list[ValueDoc]) -> str:
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for row in rows:
        description = row.description.replace("|", r"\|")
        default = row.default.replace("|", r"\|")
        lines.append(f"| `{row.key}` | {row.type} | {default} | {description} |")
    return "\n".join(lines) + "\n"


def update_readme(chart_dir: Path, check: bool = False) -> bool:
    """Rewrite the values table in chart_dir/README.md. Returns True when the file changed (or, with
    check, raises StaleError when it would)."""
    readme = chart_dir / "README.md"
    values = chart_dir / "values.yaml"
    if not values.is_file():
        raise UserError(f"no values.yaml in {chart_dir}", field="CHART_DIR", hint="pass a chart directory")
    if not readme.is_file():
        raise UserError(
            f"{readme} does not exist", field="CHART_DIR", hint=f"create it with the lines {START} and {END}"
        )
    current = readme.read_text()
    if START not in current or END not in current:
        raise UserError(
            f"{readme} lacks the markers {START} / {END}", hint="add both lines where the table goes"
        )
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{render_table(parse_values_docs(values))}{END}{tail}"
    if updated == current:
        return False
    if check:
        raise StaleError(f"{readme} is out of date with {values}: run `make docs`")
    readme.write_text(updated)
    return True


def update_answers_schema(check: bool = False) -> tuple[Path, bool] | None:
    """Publish the answers format's schema as docs/answers.schema.json in a checkout (None elsewhere).
    Returns (path, changed); with check, raises StaleError instead of writing."""
    import json

    from generator.answers_schema import SCHEMA
    from generator.paths import checkout_root

    root = checkout_root()
    if root is None:
        return None
    path = root / "docs" / "answers.schema.json"
    text = json.dumps(SCHEMA, indent=2) + "\n"
    if path.is_file() and path.read_text() == text:
        return path, False
    if check:
        raise StaleError(f"{path} is out of date with generator/answers_schema.py: run `make docs`")
    path.write_text(text)
    return path, True
