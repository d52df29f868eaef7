"""YAML that helm reads back exactly as written. Helm parses values as YAML 1.1, where a bare `y`, `n`,
`on` or `off` is a boolean; PyYAML (YAML 1.1 too, but without the one-letter forms) leaves `y` and
`n` bare. A sweep parameter named `n` would reach helm as `false`."""

from __future__ import annotations

import re
from typing import Any

import yaml

_AMBIGUOUS = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|true|True|TRUE|false|False|FALSE|~|null|Null|NULL)$"
)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _AMBIGUOUS.match(value) else None
    if "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
