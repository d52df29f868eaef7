"""Which cluster a command acts on: the user's (an explicit --kubeconfig, $KUBECONFIG, or
~/.kube/config with a current context), else the embedded local cluster (hack/cluster.sh)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from generator.errors import ToolError, UserError
from generator.paths import REPO_ROOT

EMBEDDED_CLUSTER = "helm-mlops"


@dataclass(frozen=True)
class Target:
    kubeconfig: Path
    embedded: bool

    def describe(self) -> str:
        return (
            f"embedded local cluster ({self.kubeconfig})"
            if self.embedded
            else f"cluster of {self.kubeconfig}"
        )


def _has_current_context(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    return bool(data.get("current-context"))


def user_kubeconfig(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(
                f"{explicit} does not exist", field="--kubeconfig", hint="pass an existing kubeconfig file"
            )
        return explicit
    env = os.environ.get("KUBECONFIG")
    if env:
        first = Path(env.split(os.pathsep)[0])
        if not first.is_file():
            raise UserError(
                f"KUBECONFIG points at {first}, which does not exist",
                field="KUBECONFIG",
                hint="unset it to use the embedded local cluster, or point it at a kubeconfig",
            )
        return first
    default = Path.home() / ".kube" / "config"
    return default if default.is_file() and _has_current_context(default) else None


def embedded_cluster() -> Path:
    """Start (or reuse) the embedded cluster and return its kubeconfig."""
    script = REPO_ROOT / "hack" / "cluster.sh"
    env = {**os.environ, "HELM_MLOPS_CLUSTER": EMBEDDED_CLUSTER}
    up = subprocess.run(["bash", str(script), "up"], env=env, capture_output=True, text=True, check=False)
    if up.returncode != 0:
        raise ToolError(
            f"could not start the embedded cluster:\n{(up.stderr or up.stdout).strip()}\n"
            "  fix: run `make cluster-tools` (builds it from source once), or pass --kubeconfig"
        )
    path = subprocess.run(
        ["bash", str(script), "kubeconfig"], env=env, capture_output=True, text=True, check=True
    )
    return Path(path.stdout.strip())


def resolve(explicit: Path | None) -> Target:
    found = user_kubeconfig(explicit)
    if found is not None:
        return Target(found, embedded=False)
    return Target(embedded_cluster(), embedded=True)
