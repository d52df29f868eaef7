"""`helm-mlops train`: options and values files become the training-job chart's values, which are
checked (files, quantities, GPUs, sweep size, schema, the chart's own rules), rendered, and then
written to a directory or installed. Nothing is written or installed until every check passed."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import sweep, yamlio
from generator.answers import SCRIPT_LIMIT
from generator.components import JobSpec, job_values
from generator.errors import UserError
from generator.helm.adapter import Helm
from generator.paths import chart_dir
from generator.values import (
    apply_sets,
    check_cron,
    deep_merge,
    parse_quantity,
    requests_above_limits,
)

CHART = "training-job"
SCRIPT_TOO_BIG = f"a script travels in a ConfigMap and the chart takes at most {SCRIPT_LIMIT:,} bytes"
SCRIPT_HINT = "ship large code in your image (--image with --command) or on a volume (--set-json volumes=...)"


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
    sets: tuple[tuple[str, str], ...] = ()  # (flag, KEY=VALUE) in helm's order, see values.helm_order
    extra: dict[str, Any] = field(default_factory=dict)


def spec_of(req: TrainRequest) -> JobSpec:
    """The request's options as a JobSpec (files read here), the input of the one builder that stacks
    use too (components.job_values)."""
    spec = JobSpec(
        command=list(req.command),
        script_args=list(req.script_args),
        index_url=req.index_url or None,
        image=req.image or None,
        cpu=req.cpu,
        memory=req.memory,
        gpus=req.gpus,
        nodes=req.nodes,
        nproc_per_node=req.nproc_per_node,
        operator=req.operator,
        tracking_uri=req.tracking_uri or None,
        experiment=req.experiment or None,
        schedule=req.schedule or None,
    )
    if req.script is not None:
        if req.script.is_file() and req.script.stat().st_size > SCRIPT_LIMIT:  # not read into memory
            raise UserError(
                f"{req.script} is {req.script.stat().st_size:,} bytes: {SCRIPT_TOO_BIG}",
                field="--script",
                hint=SCRIPT_HINT,
            )
        spec.script_content = yamlio.read_text(
            req.script, "--script", "pass the path of your training script"
        )
        spec.script_name = req.script.name
    requirements = list(req.requirements)
    if req.requirements_file is not None:
        lines = yamlio.read_text(
            req.requirements_file, "--requirements-file", "pass a requirements.txt (one requirement a line)"
        ).splitlines()
        requirements += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    spec.requirements = requirements
    for option, text in (("--cpu", req.cpu), ("--memory", req.memory)):
        if text is not None:
            parse_quantity(text, option)
    if req.sweep_file is not None:
        space = yamlio.load_mapping(req.sweep_file, "--sweep")
        inner = space.get("sweep", space)
        if not isinstance(inner, dict):
            raise UserError("`sweep` must be a mapping", field=f"--sweep ({req.sweep_file})")
        spec.sweep = dict(inner)
    return spec


def build_values(req: TrainRequest) -> dict[str, Any]:
    """The chart values the request stands for; options win over values files, --set wins over all."""
    values: dict[str, Any] = {}
    for path in req.values_files:
        values = deep_merge(values, yamlio.load_mapping(path, "--values"))
    values = deep_merge(values, job_values(spec_of(req)))
    values = apply_sets(values, list(req.sets))
    return deep_merge(values, req.extra)


def check_quantities(values: dict[str, Any]) -> None:
    """Resource quantities, named in Kubernetes' words (the schema would print its regex instead).
    Safe for any value type: it runs before the schema."""
    resources = values.get("resources") or {}
    for section in ("requests", "limits"):
        entries = resources.get(section) if isinstance(resources, dict) else None
        for name, text in (entries if isinstance(entries, dict) else {}).items():
            if text is not None:  # null deletes a default (helm's rule)
                parse_quantity(text, f"resources.{section}.{name}")


def check(values: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[str]:
    """Checks that name the option or value to change, after the schema judged the types. `defaults`
    (the chart's values.yaml) are what helm merges under `values`: a request is compared with the
    limit the chart will render. Returns notes (e.g. the trial count)."""
    notes: list[str] = []
    content = _section(values, "script").get("content")
    if isinstance(content, str) and len(content.encode()) > SCRIPT_LIMIT:
        raise UserError(
            f"the script is {len(content.encode()):,} bytes: {SCRIPT_TOO_BIG}",
            field="script.content (--script)",
            hint=SCRIPT_HINT,
        )
    merged = deep_merge(defaults or {}, values)
    for name, request, limit in requests_above_limits(merged.get("resources")):
        raise UserError(
            f"the request {request} is above the limit {limit}: Kubernetes refuses such a pod",
            field=f"resources.requests.{name}",
            hint=f"request at most the limit: lower resources.requests.{name} or raise "
            f"resources.limits.{name} (--cpu and --memory set both)",
        )
    image = _section(merged, "image")
    for key in ("repository", "tag"):
        text = image.get(key)
        if not isinstance(text, str) or not text.strip():
            raise UserError(
                f"the image {key} is empty",
                field=f"image.{key} (--image)",
                hint="name the image with its tag, e.g. --image python:3.12-slim",
            )
    tag = image.get("tag")
    if (
        isinstance(tag, str)
        and not tag.startswith("@")
        and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag)
    ):
        raise UserError(
            f"{tag!r} is not an image tag (letters, digits, '_', '.' and '-', at most 128)",
            field="image.tag (--image)",
            hint="e.g. --image python:3.12-slim",
        )
    schedule = _section(merged, "cronJob").get("schedule")
    if schedule:
        check_cron(schedule, "cronJob.schedule (--schedule)")
    gpus = _int(values, "gpu", "count", 0)
    dist = values.get("distributed")
    dist = dist if isinstance(dist, dict) else {}
    nproc = _int(values, "distributed", "nprocPerNode", 1)
    if dist.get("enabled") and gpus > 0 and nproc > gpus:
        raise UserError(
            f"{nproc} processes per node but only {gpus} GPU(s) per pod",
            field="--nproc-per-node (distributed.nprocPerNode)",
            hint=f"use at most --nproc-per-node {gpus}, or request more with --gpus",
        )
    space = values.get("sweep")
    if isinstance(space, dict) and space.get("enabled"):
        count = sweep.trial_count(space, "sweep")
        notes.append(f"sweep: {count} trials ({space.get('strategy', 'grid')})")
    return notes


def _section(values: dict[str, Any], key: str) -> dict[str, Any]:
    node = values.get(key)
    return node if isinstance(node, dict) else {}


def _int(values: dict[str, Any], section: str, key: str, default: int) -> int:
    """An integer value the checks need before the schema runs; a wrong type is the schema's to name."""
    node = values.get(section)
    raw = node.get(key) if isinstance(node, dict) else None
    if raw is None:
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise UserError(
            f"{raw!r} is not an integer", field=f"{section}.{key}", hint=f"e.g. --set {section}.{key}=2"
        ) from None


@dataclass(frozen=True)
class Prepared:
    values: dict[str, Any]
    resources: list[dict[str, Any]]
    notes: list[str]


def prepare(req: TrainRequest, helm: Helm) -> Prepared:
    from generator.values import check_values

    values = build_values(req)
    check_quantities(values)
    chart = chart_dir(CHART, field="charts")
    # The chart's schema judges every value's type before any Python check uses one.
    check_values(chart, values, "training-job values")
    notes = check(values, yamlio.load_mapping(chart / "values.yaml"))
    resources = helm.template(chart, req.release, values, source="training-job values")
    return Prepared(values, resources, notes)


def write_rendered(prepared: Prepared, out_dir: Path) -> list[Path]:
    """values.yaml and one manifest per resource, written to a temporary directory first and moved
    into place at the end, so a failure leaves nothing half-written."""
    hint = "pass a new or empty directory"
    if out_dir.is_symlink():  # dangling or not: writing would land wherever the link points
        raise UserError(f"{out_dir} is a symbolic link", field="--render-to", hint=hint)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a directory", field="--render-to", hint=hint)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} is not empty", field="--render-to", hint=hint)
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {parent}: {exc.strerror}", field="--render-to", hint=hint) from None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".helm-mlops-", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot write in {parent}: {exc.strerror}", field="--render-to", hint=hint) from None
    try:
        (staging / "values.yaml").write_text(yamlio.dump(prepared.values))
        for i, res in enumerate(prepared.resources):
            name = f"{i:02d}-{res['kind'].lower()}-{res['metadata']['name']}.yaml"
            (staging / name).write_text(yamlio.dump(res))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out_dir.iterdir())


def rerun_nonce(helm: Helm, release: str, namespace: str, values: dict[str, Any]) -> str | None:
    """The `rerun` value that makes `train` again a new run. The chart names the training objects by a
    hash of the values, so `train` twice with the same script would leave the first run alone; for a
    release that exists, the revision this install becomes (unique within the release) is the nonce.
    None for a first install and when the values set a `rerun` of their own (--set rerun=..., a values
    file): the user's choice wins. --render-to never gets here, so rendering stays deterministic."""
    if values.get("rerun"):
        return None
    try:
        history = helm.history(release, namespace=namespace)
    except UserError as exc:
        if "release: not found" in str(exc):
            return None
        raise
    if not history:
        return None
    return str(max(r.revision for r in history) + 1)


def run_train(
    req: TrainRequest,
    helm_bin: str | None,
    *,
    namespace: str,
    kubeconfig: Path | None,
    render_to: Path | None,
    skip_preflight: bool,
    kube_context: str | None = None,
) -> Iterator[str]:
    from generator.helm.binary import find_helm
    from generator.kube.preflight import preflight_gpus

    helm = Helm(find_helm(helm_bin))
    prepared = prepare(req, helm)
    yield from prepared.notes
    if render_to is not None:
        from generator.kube.target import user_kubeconfig

        configured = user_kubeconfig(kubeconfig)
        if configured is not None and not skip_preflight:
            from generator.errors import HelmMlopsError
            from generator.kube.client import Kube

            try:
                problem = preflight_gpus(prepared.values, Kube(configured, kube_context))
            except HelmMlopsError as exc:
                problem = None
                yield f"preflight skipped: {str(exc).splitlines()[0]}"
            if problem:
                yield f"warning: {problem}; the pods would stay Pending"
        files = write_rendered(prepared, render_to)
        yield f"wrote {len(files)} files to {render_to}"
        return

    from generator.kube.target import resolve

    target = resolve(kubeconfig, kube_context)
    kube = target.kube()
    if not skip_preflight:
        problem = preflight_gpus(prepared.values, kube)
        if problem:
            raise UserError(
                problem,
                field="--gpus (gpu.count)",
                hint="add GPU nodes, drop --gpus, or pass --skip-preflight "
                "when an autoscaler adds GPU nodes on demand",
            )
    kube.ensure_namespace(namespace)
    cluster_helm = Helm(helm.binary, kubeconfig=target.kubeconfig, kube_context=target.context)
    values = prepared.values
    nonce = rerun_nonce(cluster_helm, req.release, namespace, values)
    if nonce is not None:
        values = {**values, "rerun": nonce}
        yield f"release {req.release} exists: a new run (rerun={nonce}; --set rerun=... chooses)"
    done = cluster_helm.install_or_upgrade(
        req.release,
        chart_dir(CHART),
        values,
        namespace=namespace,
        source="training-job values",
    )
    yield f"release {done.release}: revision {done.revision}, {done.status} in {target.describe()}"
    yield done.notes.strip()
