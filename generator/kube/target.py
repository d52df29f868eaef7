"""Which cluster a command acts on: the user's (an explicit --kubeconfig, $KUBECONFIG, or
~/.kube/config with a current context), else the embedded local cluster (hack/cluster.sh)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from generator.errors import ToolError, UserError
from generator.kube.client import Kube
from generator.paths import hack_script

EMBEDDED_CLUSTER = "helm-mlops"


@dataclass(frozen=True)
class Target:
    kubeconfig: Path
    embedded: bool
    context: str | None = None  # --kube-context (helm's HELM_KUBECONTEXT for the plugin)

    def kube(self) -> Kube:
        return Kube(self.kubeconfig, self.context)

    def describe(self) -> str:
        return (
            f"embedded local cluster ({self.kubeconfig})"
            if self.embedded
            else f"cluster of {self.kubeconfig}"
        )


def _has_current_context(path: Path) -> bool:
    from generator.yamlio import loads

    try:
        data = loads(path.read_text(), str(path))
    except (OSError, UserError):
        return False
    return isinstance(data, dict) and bool(data.get("current-context"))


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
    script = hack_script("cluster.sh", "the embedded cluster")
    env = {**os.environ, "HELM_MLOPS_CLUSTER": EMBEDDED_CLUSTER}
    for action in ("up", "kubeconfig"):
        proc = subprocess.run(
            ["bash", str(script), action], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ToolError(
                f"could not start the embedded cluster (hack/cluster.sh {action}):\n"
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}\n"
                "  fix: run `make cluster-tools` (builds it from source once), or pass --kubeconfig"
            )
    return Path(proc.stdout.strip())


def resolve(explicit: Path | None, context: str | None = None) -> Target:
    found = user_kubeconfig(explicit)
    if found is not None:
        return Target(found, embedded=False, context=context or None)
    return Target(embedded_cluster(), embedded=True)
