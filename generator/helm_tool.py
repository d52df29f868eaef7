"""Finding and running helm: the pinned binary from `make tools` unless the user names another."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from generator.errors import ToolError
from generator.paths import TOOLS_BIN


def find_helm(explicit: str | None = None) -> str:
    """The helm to run: an explicit path or name, else .tools/bin/helm, else helm on PATH."""
    candidates = [explicit] if explicit else [str(TOOLS_BIN / "helm"), "helm"]
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    wanted = explicit or "helm"
    raise ToolError(f"helm not found ({wanted}); run `make tools` to install the pinned Helm 4 and Helm 3")


def run_helm(helm: str, *args: str | Path) -> str:
    """Run helm and return stdout; a non-zero exit raises ToolError carrying helm's own message."""
    proc = subprocess.run([helm, *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolError(f"helm {args[0]} failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
