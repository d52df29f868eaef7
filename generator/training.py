"""`helm-mlops train`: options and values files become the training-job chart's values, which are
checked (files, quantities, GPUs, sweep size, schema, the chart's own rules), rendered, and then
written to a directory or installed. Nothing is written or installed until every check passed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator import quantity, sweep_space, yaml_out
from generator.errors import UserError
from generator.paths import chart_dir

CHART = "training-job"


@dataclass
class TrainRequest:
    release: str
    script: Path | None = None
    command: tuple[str, ...] = ()
    script_args: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    requirements_file: Path | None = None
    index_url: str | None = None
    image: str | None = None
    cpu: str | None = None
    memory: str | None = None
    gpus: int | None = None
    nodes: int | None = None
    nproc_per_node: int | None = None
    operator: str | None = None
    sweep_file: Path | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    schedule: str | None = None
    values_files: tuple[Path, ...] = ()
    set_values: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path} does not exist", field=what, hint="pass an existing file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}", field=what) from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping", field=what)
    return data


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"{key} is not a mapping", field=f"--set {dotted}")
    node[keys[-1]] = value


def _parse_set(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UserError(f"{item!r} is not KEY=VALUE", field="--set", hint="e.g. --set job.backoffLimit=0")
    return key, yaml.safe_load(raw) if raw else ""


def build_values(req: TrainRequest) -> dict[str, Any]:
    """The chart values the request stands for; options win over values files, --set wins over all."""
    values: dict[str, Any] = {}
    for path in req.values_files:
        values = deep_merge(values, _read_yaml(path, "--values"))
    if req.script is not None:
        if not req.script.is_file():
            raise UserError(
                f"{req.script} does not exist",
                field="--script",
                hint="pass the path of your training script (a .py file)",
            )
        _set(values, "script.content", req.script.read_text())
        name = req.script.name if req.script.suffix == ".py" else f"{req.script.name}.py"
        _set(values, "script.fileName", name)
    if req.command:
        _set(values, "command", list(req.command))
    if req.script_args:
        _set(values, "script.args", list(req.script_args))
    requirements = list(req.requirements)
    if req.requirements_file is not None:
        if not req.requirements_file.is_file():
            raise UserError(f"{req.requirements_file} does not exist", field="--requirements-file")
        lines = req.requirements_file.read_text().splitlines()
        requirements += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if requirements:
        _set(values, "requirements", requirements)
    if req.index_url:
        _set(values, "pip.indexUrl", req.index_url)
    if req.image:
        repo, _, tag = (
            req.image.rpartition(":") if ":" in req.image.split("/")[-1] else (req.image, "", "latest")
        )
        _set(values, "image.repository", repo)
        _set(values, "image.tag", tag)
    for option, key, text in (("--cpu", "cpu", req.cpu), ("--memory", "memory", req.memory)):
        if text is not None:
            quantity.parse(text, option)
            _set(values, f"resources.requests.{key}", text)
            _set(values, f"resources.limits.{key}", text)
    if req.gpus is not None:
        _set(values, "gpu.count", req.gpus)
    if req.nodes is not None or req.operator is not None or req.nproc_per_node is not None:
        _set(values, "distributed.enabled", True)
        if req.nodes is not None:
            _set(values, "distributed.nodes", req.nodes)
        if req.nproc_per_node is not None:
            _set(values, "distributed.nprocPerNode", req.nproc_per_node)
        if req.operator is not None:
            _set(values, "distributed.operator", req.operator)
    if req.sweep_file is not None:
        sweep = _read_yaml(req.sweep_file, "--sweep")
        values["sweep"] = deep_merge(values.get("sweep", {}), {"enabled": True, **sweep.get("sweep", sweep)})
    if req.tracking_uri:
        _set(values, "mlflow.trackingUri", req.tracking_uri)
    if req.experiment:
        _set(values, "mlflow.experimentName", req.experiment)
    if req.schedule:
        _set(values, "cronJob.schedule", req.schedule)
    for item in req.set_values:
        _set(values, *_parse_set(item))
    return deep_merge(values, req.extra)


def check(values: dict[str, Any]) -> list[str]:
    """Checks that name the option or value to change. Returns notes (e.g. the trial count)."""
    notes: list[str] = []
    for section in ("requests", "limits"):
        for name, text in ((values.get("resources") or {}).get(section) or {}).items():
            quantity.parse(str(text), f"resources.{section}.{name}")
    gpus = int((values.get("gpu") or {}).get("count") or 0)
    dist = values.get("distributed") or {}
    nproc = int(dist.get("nprocPerNode") or 1)
    if dist.get("enabled") and gpus > 0 and nproc > gpus:
        raise UserError(
            f"{nproc} processes per node but only {gpus} GPU(s) per pod",
            field="--nproc-per-node (distributed.nprocPerNode)",
            hint=f"use at most --nproc-per-node {gpus}, or request more with --gpus",
        )
    sweep = values.get("sweep") or {}
    if sweep.get("enabled"):
        count = sweep_space.trial_count(sweep, "sweep")
        notes.append(f"sweep: {count} trials ({sweep.get('strategy', 'grid')})")
    return notes


@dataclass(frozen=True)
class Prepared:
    values: dict[str, Any]
    resources: list[dict[str, Any]]
    notes: list[str]


def prepare(req: TrainRequest, helm: str) -> Prepared:
    from generator.rendering import render
    from generator.values_check import check_values

    values = build_values(req)
    notes = check(values)
    chart = chart_dir(CHART)
    check_values(chart, values, "training-job values")
    resources = render(chart, values, helm, "training-job values", req.release)
    return Prepared(values, resources, notes)


def write_rendered(prepared: Prepared, out_dir: Path) -> list[Path]:
    """values.yaml and one manifest per resource, written to a temporary directory first and moved
    into place at the end, so a failure leaves nothing half-written."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} is not empty", field="--render-to", hint="pass a new or empty directory")
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".helm-mlops-", dir=parent))
    try:
        (staging / "values.yaml").write_text(yaml_out.dump(prepared.values))
        for i, res in enumerate(prepared.resources):
            name = f"{i:02d}-{res['kind'].lower()}-{res['metadata']['name']}.yaml"
            (staging / name).write_text(yaml_out.dump(res))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out_dir.iterdir())


def gpu_nodes(kubeconfig: Path, resource: str) -> list[str]:
    """Nodes whose allocatable resources include the GPU resource."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))  # type: ignore[no-untyped-call]
    names = []
    for node in api.list_node().items:
        allocatable = (node.status.allocatable if node.status else None) or {}
        if str(allocatable.get(resource, "0")) not in ("0", ""):
            names.append(str(node.metadata.name if node.metadata else "?"))
    return names


def preflight_gpus(values: dict[str, Any], kubeconfig: Path) -> str | None:
    """A problem message when the job asks for GPUs the cluster has none of, else None."""
    gpu = values.get("gpu") or {}
    count = int(gpu.get("count") or 0)
    resource = str(gpu.get("resourceName") or "nvidia.com/gpu")
    if count <= 0 or gpu_nodes(kubeconfig, resource):
        return None
    return f"{count} {resource} requested per pod, but no node of the cluster has {resource}"


def run_train(
    req: TrainRequest,
    helm_bin: str | None,
    *,
    namespace: str,
    kubeconfig: Path | None,
    render_to: Path | None,
    skip_preflight: bool,
) -> Iterator[str]:
    from generator.helm_tool import find_helm

    helm = find_helm(helm_bin)
    prepared = prepare(req, helm)
    yield from prepared.notes
    if render_to is not None:
        from generator.target import user_kubeconfig

        configured = user_kubeconfig(kubeconfig)
        if configured is not None and not skip_preflight:
            try:
                problem = preflight_gpus(prepared.values, configured)
            except Exception as exc:
                problem = None
                yield f"preflight skipped: cluster not reachable ({type(exc).__name__})"
            if problem:
                yield f"warning: {problem}; the pods would stay Pending"
        files = write_rendered(prepared, render_to)
        yield f"wrote {len(files)} files to {render_to}"
        return

    from generator import release as lifecycle
    from generator.target import resolve

    target = resolve(kubeconfig)
    if not skip_preflight:
        problem = preflight_gpus(prepared.values, target.kubeconfig)
        if problem:
            raise UserError(
                problem,
                field="--gpus (gpu.count)",
                hint="add GPU nodes, drop --gpus, or pass --skip-preflight "
                "when an autoscaler adds GPU nodes on demand",
            )
    lifecycle.ensure_namespace(target.kubeconfig, namespace)
    done = lifecycle.install(
        helm,
        target.kubeconfig,
        chart_dir(CHART),
        req.release,
        namespace,
        prepared.values,
        "training-job values",
    )
    yield f"release {done.release}: revision {done.revision}, {done.status} in {target.describe()}"
    yield done.notes.strip()
