"""Rendering a chart through pyhelm3 (the helm driver), as helm would install it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from generator.errors import ToolError, UserError
from generator.values_check import is_values_error


def render(
    chart: Path, values: dict[str, Any], helm: str, source: str, release: str = "demo"
) -> list[dict[str, Any]]:
    """Rendered resources (hooks and tests included) as helm would install them. Rendering, unlike
    `helm lint`, runs the chart's `fail` checks, so values the chart rejects surface here."""
    from pyhelm3 import Client
    from pyhelm3.errors import Error as PyHelmError

    async def _render() -> list[dict[str, Any]]:
        client = Client(executable=helm)
        loaded = await client.get_chart(chart)
        return list(await client.template_resources(loaded, release, values))

    try:
        return asyncio.run(_render())
    except PyHelmError as exc:
        message = (
            exc.stderr.decode(errors="replace")
            .replace("Use --debug flag to render out invalid YAML", "")
            .strip()
        )
        if is_values_error(message):
            raise UserError(message, field=source, hint="change the values named above") from None
        raise ToolError(f"helm template failed: {message}") from None
