"""The local kwok cluster for e2e tests, and small helpers around kubectl and helm against it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.charts import REPO, TOOLS_BIN, helm_path

CLUSTER_NAME = os.environ.get("HELM_MLOPS_TEST_CLUSTER", "helm-mlops-test")


def _versions() -> dict[str, str]:
    lines = (REPO / "hack" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def cluster_binaries_dir() -> Path:
    cache = Path(
        os.environ.get("HELM_MLOPS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "helm-mlops"
    )
    return cache / f"kube-{_versions()['KUBE_VERSION']}"


def cluster_script(action: str, script: str = "cluster.sh") -> str:
    """`hack/<script> <action>` for the test cluster; its output. (hack/real-node.sh takes the same.)"""
    env = {**os.environ, "HELM_MLOPS_CLUSTER": CLUSTER_NAME}
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / script), action],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hack/{script} {action} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


@dataclass
class Cluster:
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(TOOLS_BIN / "kubectl"), *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", *args, "-o", "json").stdout))

    def helm(self, helm_name: str, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [helm_path(helm_name), *map(str, args)], env=self.env, capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def restricted_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        self.kubectl(
            "label",
            "namespace",
            name,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        )
        return name
