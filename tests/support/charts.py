"""Rendering and linting charts with the real helm binaries (Helm 4, 3.18, 3.17)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator import paths, yamlio
from generator.helm.binary import find_helm

_root = paths.checkout_root()
assert _root is not None, "the tests run from a source checkout"
REPO: Path = _root
CHARTS = paths.charts_root()
TOOLS_BIN = REPO / ".tools" / "bin"
SHARED = REPO.parent / "shared"

# name -> binary; the version each must report, so a wrong binary on PATH cannot pass silently.
HELMS = {"helm4": ("helm", "v4."), "helm3": ("helm3", "v3.18."), "helm3.17": ("helm3.17", "v3.17.")}


def helm_path(name: str) -> str:
    binary, prefix = HELMS[name]
    pinned = TOOLS_BIN / binary
    found = find_helm(str(pinned) if pinned.is_file() else binary)
    if not found.version.startswith(prefix):
        raise RuntimeError(
            f"{found.describe()} is not the {prefix}x that {name} stands for: run `make tools`"
        )
    return found.path


def chart_dirs() -> list[Path]:
    return paths.chart_dirs()


def ci_values(chart: Path) -> list[Path]:
    return sorted((chart / "ci").glob("*-values.yaml"))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def helm(helm_name: str, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(
        [helm_path(helm_name), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def template(
    chart: Path,
    *,
    values: dict[str, Any] | None = None,
    values_files: list[Path] | None = None,
    helm_name: str = "helm4",
    release: str = "t",
    namespace: str = "ml",
    extra: list[str] | None = None,
    tmp_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """helm template, returning every rendered object (hooks and tests included)."""
    args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
    for f in values_files or []:
        args += ["-f", f]
    if values is not None:
        target = (
            tmp_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        ) / f"values-{os.getpid()}-{id(values)}.yaml"
        target.write_text(yamlio.dump(values))
        args += ["-f", target]
    args += extra or []
    result = helm(helm_name, *args)
    if result.code != 0:
        raise TemplateError(result.stderr)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template_error(chart: Path, values: dict[str, Any], helm_name: str, tmp_dir: Path) -> str:
    """The error helm prints for values that must be rejected; fails when helm accepts them."""
    try:
        template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_dir)
    except TemplateError as exc:
        return str(exc)
    raise AssertionError(f"helm accepted values that must be rejected: {values}")


class TemplateError(Exception):
    pass


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in matches]}"
    )
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(description, pod spec) for every workload kind that carries a pod template."""
    out = []
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "Pod":
            out.append((f"Pod/{name}", d["spec"]))
        elif kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
            out.append((f"{kind}/{name}", d["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            out.append((f"CronJob/{name}", d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind == "PyTorchJob":
            for role, replica in d["spec"]["pytorchReplicaSpecs"].items():
                out.append((f"PyTorchJob/{name}/{role}", replica["template"]["spec"]))
    return out
