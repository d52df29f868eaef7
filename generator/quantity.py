"""Kubernetes resource quantities, checked before anything is rendered so the message can name the
option the user typed."""

from __future__ import annotations

import re
from decimal import Decimal

from generator.errors import UserError

_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_FACTORS = {
    "": Decimal(1),
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


def parse(text: str, field: str) -> Decimal:
    """The quantity's value in base units (cores, bytes). Raises UserError naming `field`."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise UserError(
            f"{text!r} is not a Kubernetes quantity",
            field=field,
            hint="use e.g. 500m or 2 for CPU, 512Mi or 4Gi for memory",
        )
    value = Decimal(match["num"]) * _FACTORS[match["suffix"] or ""]
    if value <= 0:
        raise UserError(f"{text!r} must be greater than zero", field=field)
    return value
