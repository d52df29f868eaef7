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


def answers_table(schema: dict[str, Any]) -> str:
    """The answers format as a markdown table: every field's path, type and description."""
    rows = ["| field | type | description |", "|---|---|---|"]

    def kind(node: dict[str, Any]) -> str:
        if "const" in node:
            return f"`{node['const']}`"
        if "enum" in node:
            return " \\| ".join(f"`{v}`" for v in node["enum"] if v != "") or "string"
        if "anyOf" in node:
            return " or ".join(kind(n) for n in node["anyOf"])
        t = node.get("type", "any")
        return " or ".join(t) if isinstance(t, list) else str(t)

    def walk(node: dict[str, Any], path: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            here = f"{path}.{key}" if path else key
            text = str(child.get("description", "")).replace("|", "\\|").replace("\n", " ")
            if (
                child.get("type") == "array"
                and isinstance(child.get("items"), dict)
                and "properties" in child["items"]
            ):
                rows.append(f"| `{here}[]` | list | {text or child['items'].get('description', '')} |")
                walk(child["items"], f"{here}[]")
            else:
                rows.append(f"| `{here}` | {kind(child)} | {text} |")
                if child.get("type") == "object":
                    walk(child, here)

    walk(schema, "")
    return "\n".join(rows) + "\n"


ANSWERS_START, ANSWERS_END = "<!-- answers-table:start -->", "<!-- answers-table:end -->"


def update_answers_docs(check: bool = False) -> list[tuple[Path, bool]]:
    """Publish the answers format in a checkout: docs/answers.schema.json and the field table of
    docs/answers.md. Returns (path, changed) per file; with check, raises StaleError instead of writing."""
    import json

    from generator.answers_schema import SCHEMA
    from generator.paths import checkout_root

    root = checkout_root()
    if root is None:
        return []
    out = []
    schema_path = root / "docs" / "answers.schema.json"
    doc_path = root / "docs" / "answers.md"
    wanted = {schema_path: json.dumps(SCHEMA, indent=2) + "\n"}
    if doc_path.is_file():
        text = doc_path.read_text()
        if ANSWERS_START in text and ANSWERS_END in text:
            head, rest = text.split(ANSWERS_START, 1)
            _, tail = rest.split(ANSWERS_END, 1)
            wanted[doc_path] = f"{head}{ANSWERS_START}\n{answers_table(SCHEMA)}{ANSWERS_END}{tail}"
    for path, text in wanted.items():
        if path.is_file() and path.read_text() == text:
            out.append((path, False))
            continue
        if check:
            raise StaleError(f"{path} is out of date with generator/answers_schema.py: run `make docs`")
        path.write_text(text)
        out.append((path, True))
    return out
