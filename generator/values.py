"""Chart values: deep merge, helm's own `--set` family of flags, the schema check, the one rule for
Kubernetes quantities, and the rules for release and namespace names. Pure functions: no helm, no cluster.

`--set` follows helm's strvals rules (pkg/strvals), so a value means the same here as on helm's own
command line: `a.b=c,d=e`; lists `{x,y}` and indexes `a[0]=x`, `a[0].b=x`; `\\` escapes `,` `.` `=` and
`[`; `true`/`false`/`null` (any case) and integers without a leading zero are typed, everything else
(`1.0`, `1e3`, `007`) stays a string. `--set-string` types nothing, `--set-json` takes JSON values,
`--set-file` reads each value from a file."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from generator.errors import UserError

# Kubernetes' resource.Quantity grammar (apimachinery), as the API server's OpenAPI pattern states it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIX = re.compile(r"([KMGTPE]i|[numkMGTPE])$")
_FACTORS = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def is_quantity(text: object) -> bool:
    return (
        isinstance(text, (str, int, float))
        and not isinstance(text, bool)
        and bool(_QUANTITY.match(str(text)))
    )


def parse_quantity(text: object, field: str) -> Decimal:
    """A resource quantity's value in base units (cores, bytes); it must be greater than zero.
    Raises UserError naming `field`."""
    raw = str(text).strip()
    if not is_quantity(raw):
        raise UserError(
            f"{text!r} is not a Kubernetes quantity",
            field=field,
            hint="use e.g. 500m or 2 for CPU, 512Mi or 4Gi for memory",
        )
    suffix = _SUFFIX.search(raw)
    number = raw[: suffix.start()] if suffix else raw
    try:
        value = Decimal(number) * (_FACTORS[suffix.group(1)] if suffix else 1)
    except InvalidOperation:
        raise UserError(f"{text!r} is not a Kubernetes quantity", field=field) from None
    if value <= 0:
        raise UserError(f"{text!r} must be greater than zero", field=field)
    return value


def requests_above_limits(resources: object) -> list[tuple[str, str, str]]:
    """(name, request, limit) of each resource whose request exceeds its limit, compared as quantities
    (500m < 1, 1Gi > 1000Mi), as the API server refuses them. Malformed quantities are left to
    parse_quantity's callers."""
    if not isinstance(resources, dict):
        return []
    requests, limits = resources.get("requests"), resources.get("limits")
    if not isinstance(requests, dict) or not isinstance(limits, dict):
        return []
    out = []
    for name, request in requests.items():
        limit = limits.get(name)
        if request is None or limit is None or not is_quantity(request) or not is_quantity(limit):
            continue
        try:
            if parse_quantity(request, name) > parse_quantity(limit, name):
                out.append((str(name), str(request), str(limit)))
        except UserError:  # zero or negative: named by the caller's own check
            continue
    return out


# What Kubernetes' CronJob accepts (robfig/cron's standard parser): five fields or a macro.
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_GO_DURATION = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names.index(text.lower()) + low
    raise ValueError(
        f"{text!r} is not a number" + (f" or a name ({names[0]}...{names[-1]})" if names else "")
    )


def _cron_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> None:
    for part in text.split(","):
        span, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{name}: step {step!r} must be a whole number > 0")
        if span in ("*", "?"):
            continue
        first, dash, last = span.partition("-")
        start = _cron_value(first, low, names)
        end = _cron_value(last, low, names) if dash else (high if slash else start)
        for value in (start, end):
            if not low <= value <= high:
                raise ValueError(f"{name}: {value} is outside {low}-{high}")
        if start > end:
            raise ValueError(f"{name}: the range {span} runs backwards")


def cron_problem(schedule: str) -> str | None:
    """Why Kubernetes would refuse `schedule` as a CronJob's schedule, or None: five fields (minute
    hour day-of-month month day-of-week: numbers, names, *, ?, lists, ranges, steps), or a macro
    (@hourly, @daily, ...; @every DURATION)."""
    text = schedule.strip()
    if not text:
        return "it is empty"
    if text.startswith(("TZ=", "CRON_TZ=")):
        return "Kubernetes refuses a time zone inside the schedule; set cronJob.timeZone instead"
    if text.startswith("@"):
        if text in CRON_MACROS:
            return None
        every = text.removeprefix("@every").strip()
        if (
            text.startswith("@every ")
            and every != "0"
            and re.fullmatch(f"(?:{_GO_DURATION.pattern})+", every)
        ):
            return None
        return f"{text.split()[0]} is not one of {', '.join(CRON_MACROS)} or @every DURATION"
    fields = text.split()
    if len(fields) != 5:
        return f"it has {len(fields)} field(s), not 5 (minute hour day-of-month month day-of-week)"
    for field_text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        try:
            _cron_field(field_text, name, low, high, names)
        except ValueError as exc:
            return str(exc)
    return None


def check_cron(schedule: object, field: str) -> None:
    problem = cron_problem(schedule) if isinstance(schedule, str) else f"{schedule!r} is not text"
    if problem:
        raise UserError(
            f"{schedule!r} is not a cron schedule: {problem}",
            field=field,
            hint="five fields, minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (03:00 daily) "
            "or '*/15 * * * 1-5'; or @hourly, @daily, @weekly, @monthly, @yearly",
        )


# helm's rule for release names (DNS-1123 subdomain, at most 53 characters), Kubernetes' for namespaces.
RELEASE_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def check_release_name(release: str) -> None:
    """helm's rule for release names, checked before helm sees one (a name like `-x` is a flag to it)."""
    if not release:
        why = "it is empty"
    elif len(release) > 53:
        why = f"it has {len(release)} characters, more than 53"
    elif not re.fullmatch(RELEASE_NAME, release):
        why = "it is not a DNS-1123 subdomain"
    else:
        return
    raise UserError(
        f"{release!r} is not a valid release name: {why}",
        field="RELEASE",
        hint="use at most 53 characters: lower-case letters, digits, '-' and '.', starting and ending "
        "with a letter or digit (helm's rule: a DNS-1123 subdomain), e.g. my-release",
    )


def check_namespace(namespace: str) -> None:
    if len(namespace) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace):
        raise UserError(
            f"{namespace!r} is not a valid namespace name",
            field="-n/--namespace",
            hint="use at most 63 characters: lower-case letters, digits and '-', starting and ending with "
            "a letter or digit",
        )


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, maps merged key by key (helm's rule for values files); a new dict."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def http_url(url: str, field: str) -> str:
    """An http(s) URL with a host, else a UserError naming `field`."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a bad port)
    except ValueError as exc:
        raise UserError(
            f"{url!r} is not a URL ({exc})", field=field, hint="e.g. http://localhost:8000"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{url!r} is not an http(s) URL", field=field, hint="e.g. http://localhost:8000")
    return url


def one_line(text: str, limit: int = 200) -> str:
    """A server's answer for an error message: tags stripped, whitespace collapsed, cut short."""
    plain = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return plain if len(plain) <= limit else plain[: limit - 3] + "..."


# --- helm's --set grammar -------------------------------------------------------------------------

MAX_INDEX = 65536  # helm refuses larger list indexes too


class _SetSyntax(Exception):
    pass


def typed(text: str) -> Any:
    """helm's typedVal: what `--set` makes of a value."""
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and re.fullmatch(r"[+-]?[0-9]+", text):
        number = int(text)
        if -(2**63) <= number < 2**63:
            return number
    return text


class _Parser:
    def __init__(self, text: str, mode: str) -> None:
        self.text, self.pos, self.mode = text, 0, mode
        self.empty_at_end = False  # the last value was empty and nothing followed it

    def _until(self, stops: str) -> tuple[str, str | None]:
        """Runes up to one of `stops` (unescaped), and the stop found (None at the end)."""
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char in stops:
                return "".join(out), char
            else:
                out.append(char)
        return "".join(out), None

    def _value(self, raw: str) -> Any:
        if self.mode == "string":
            return raw
        if self.mode == "json":
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise _SetSyntax(f"{raw!r} is not JSON ({exc})") from None
        if self.mode == "file":
            path = Path(raw).expanduser()
            try:
                return path.read_text()
            except UnicodeDecodeError:
                raise _SetSyntax(f"{raw} is not UTF-8 text (a binary file?)") from None
            except OSError as exc:
                raise _SetSyntax(f"cannot read {raw}: {exc.strerror}") from None
        return typed(raw)

    def _read_value(self) -> Any:
        if self.mode == "json":  # the rest is one JSON document
            raw, self.pos = self.text[self.pos :], len(self.text)
            return self._value(raw)
        if self.mode != "file" and self.text.startswith("{", self.pos):
            self.pos += 1
            items: list[Any] = []
            while True:
                raw, stop = self._until(",}")
                if stop is None:
                    raise _SetSyntax("a list `{...}` is missing its closing `}`")
                items.append(self._value(raw))  # helm's `{}` is [""], `{x,}` is ["x", ""]
                if stop == "}":
                    break
            if self.pos < len(self.text):
                if self.text[self.pos] != ",":
                    raise _SetSyntax(f"unexpected {self.text[self.pos]!r} after a list")
                self.pos += 1
            return items
        raw, stop = self._until(",")
        self.empty_at_end = not raw and stop is None
        return self._value(raw)

    def parse_into(self, data: dict[str, Any]) -> None:
        while self.pos < len(self.text):
            self._key(data)

    def _key(self, node: dict[str, Any]) -> None:
        key, stop = self._until("=[,." if self.mode != "json" else "=[.")
        if stop is None:
            raise _SetSyntax(f"key {key!r} has no value (KEY=VALUE)")
        if not key:
            raise _SetSyntax("a key is empty")
        if stop == ",":
            raise _SetSyntax(f"key {key!r} has no value (cannot end with ,)")
        if stop == "=":
            node[key] = self._read_value()
        elif stop == ".":
            child = node.setdefault(key, {})
            if not isinstance(child, dict):  # helm refuses to turn a set value into a map
                raise _SetSyntax(f"{key} is already set to {child!r}, not a map")
            self._key(child)
        else:
            current = node.setdefault(key, [])
            if not isinstance(current, list):
                raise _SetSyntax(f"{key} is already set to {current!r}, not a list")
            node[key] = self._index(current)

    def _index(self, items: list[Any]) -> list[Any]:
        raw, stop = self._until("]")
        if stop is None or not raw.isdigit():
            raise _SetSyntax(f"list index [{raw}] must be a non-negative integer")
        index = int(raw)
        if index > MAX_INDEX:
            raise _SetSyntax(f"list index {index} is larger than {MAX_INDEX}")
        nxt = self.text[self.pos] if self.pos < len(self.text) else ""
        self.pos += 1
        current = items[index] if index < len(items) else None
        if nxt == "=":
            value = self._read_value()
            self.empty_at_end = False  # only a map key's empty value at the end has the quirk below
        elif nxt == ".":
            value = current if isinstance(current, dict) else {}
            self._key(value)
        elif nxt == "[":
            value = self._index(current if isinstance(current, list) else [])
        else:
            raise _SetSyntax(f"expected `=`, `.` or `[` after [{index}]")
        # helm's quirk, kept so a value means the same here: a map inside a list whose last value is
        # empty at the very end (`a[0].b=`) is dropped, and so is every list around it.
        if self.empty_at_end and nxt != "=":
            return items
        items.extend([None] * (index + 1 - len(items)))
        items[index] = value
        return items


SET_FLAGS = {"--set": "typed", "--set-string": "string", "--set-json": "json", "--set-file": "file"}
SET_HINTS = {
    "--set": "write KEY=VALUE, e.g. --set image.tag=1.0 or --set 'requirements={pandas,numpy}'",
    "--set-string": "write KEY=VALUE; the value stays a string, e.g. --set-string image.tag=1.10",
    "--set-json": """write KEY=JSON, e.g. --set-json 'env=[{"name":"A","value":"1"}]'""",
    "--set-file": "write KEY=PATH of a readable text file, e.g. --set-file script.content=train.py",
}


def apply_set(values: dict[str, Any], flag: str, item: str) -> None:
    """Apply one `--set`-style flag (helm's rules) to `values` in place; errors name the flag."""
    parser = _Parser(item, SET_FLAGS[flag])
    try:
        parser.parse_into(values)
    except _SetSyntax as exc:
        raise UserError(f"{exc}", field=f"{flag} {item}", hint=SET_HINTS[flag]) from None


def helm_order(
    set_json: tuple[str, ...] = (),
    set_values: tuple[str, ...] = (),
    set_string: tuple[str, ...] = (),
    set_file: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    """The flags in the order helm applies them (after values files): --set-json, --set, --set-string,
    --set-file."""
    return [
        *(("--set-json", i) for i in set_json),
        *(("--set", i) for i in set_values),
        *(("--set-string", i) for i in set_string),
        *(("--set-file", i) for i in set_file),
    ]


def apply_sets(values: dict[str, Any], sets: list[tuple[str, str]]) -> dict[str, Any]:
    """`(flag, item)` pairs in command-line order over a copy of `values`."""
    out = copy.deepcopy(values)  # values files may hold YAML dates and other non-JSON scalars
    for flag, item in sets:
        apply_set(out, flag, item)
    return out


# --- schema ---------------------------------------------------------------------------------------


def schema_problems(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """Every violation of a JSON Schema (draft-07) with its dotted key path, sorted by path."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(map(str, error.absolute_path)) or "(top level)"
        problems.append(f"{path}: {error.message}")
    return problems


def check_values(chart_dir: Path, values: dict[str, Any], source: str) -> None:
    """Check values against the chart's values.schema.json, every problem listed at once."""
    schema_file = chart_dir / "values.schema.json"
    if not schema_file.is_file():
        return
    problems = schema_problems(json.loads(schema_file.read_text()), values)
    if problems:
        raise UserError(
            f"{len(problems)} invalid value(s) for chart {chart_dir.name}:\n  - " + "\n  - ".join(problems),
            field=source,
            hint=f"see {chart_dir / 'README.md'} for every value, its type and default",
        )
