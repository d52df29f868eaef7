"""The release lifecycle of a stack: install, upgrade, rollback, uninstall, list, history, status, test,
restart. helm runs through the adapter (`generator.helm`), the cluster is read through `generator.kube`.

Install and upgrade take a stack directory (`helm-mlops generate`), a preset or an answers file, render
it once (which checks the values), run the preflight against the cluster, then `helm upgrade --install`
with rollback on failure and --wait, while a watcher reports what is not ready yet. When helm fails, the
error carries what the watcher saw: the failing pods, their events and last log lines (the rollback
deletes those pods)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from generator import yamlio
from generator.errors import HelmMlopsError, Interrupted, ToolError, UserError
from generator.helm.adapter import Helm, Revision
from generator.helm.binary import find_helm
from generator.kube.client import Kube
from generator.kube.target import Target, resolve
from generator.paths import command_name
from generator.values import check_namespace, check_release_name

VERSIONED = ("mlflow", "mlserver")  # projects whose version --version moves


class ReleaseFailed(HelmMlopsError):
    """An install or upgrade that failed in the cluster (and was rolled back). Exit code 1."""

    exit_code = 1


@dataclass
class Source:
    """Where a stack comes from: a generated directory, a preset or an answers file, plus answers
    changes (--set ...) and version moves (--version mlflow=3.17.2)."""

    stack_dir: Path | None = None
    preset: str | None = None
    answers_file: str | None = None
    sets: list[tuple[str, str]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    """The cluster a command acts on, and helm bound to it (found when first used)."""

    target: Target
    kube: Kube
    namespace: str
    helm_bin: str | None = None
    _helm: Helm | None = field(default=None, repr=False)

    @property
    def helm(self) -> Helm:
        if self._helm is None:
            binary = find_helm(self.helm_bin)
            self._helm = Helm(binary, kubeconfig=self.target.kubeconfig, kube_context=self.target.context)
        return self._helm


def connect(
    helm_bin: str | None, kubeconfig: Path | None, kube_context: str | None, namespace: str | None
) -> Cluster:
    """The cluster of --kubeconfig/--kube-context (helm's KUBECONFIG and HELM_KUBECONTEXT), the
    namespace of -n (HELM_NAMESPACE), else the context's, else `default`."""
    target = resolve(kubeconfig, kube_context)
    kube = target.kube()
    _ = kube.api_client  # a kubeconfig or context that cannot be used is named now, before helm runs
    chosen = namespace or context_namespace(target) or "default"
    check_namespace(chosen)
    return Cluster(target, kube, chosen, helm_bin)


def context_namespace(target: Target) -> str | None:
    """The namespace of the kubeconfig's context, as helm and kubectl use it when -n is not given."""
    try:
        config = yamlio.loads(target.kubeconfig.read_text(), str(target.kubeconfig)) or {}
        name = target.context or config.get("current-context")
        ctx = next(c["context"] for c in config.get("contexts") or [] if c.get("name") == name)
        return str(ctx.get("namespace") or "") or None
    except Exception:  # a kubeconfig the client will complain about in its own words
        return None


# Releases ------------------------------------------------------------------------------------------


def history(c: Cluster, release: str) -> list[Revision]:
    """The release's revisions, oldest first; [] when there is no such release."""
    check_release_name(release)
    try:
        return sorted(c.helm.history(release, namespace=c.namespace), key=lambda r: r.revision)
    except UserError as exc:
        if exc.field == "helm history" and "not found" in str(exc):  # helm's answer, not a missing helm
            return []
        raise


def require(c: Cluster, release: str) -> list[Revision]:
    revisions = history(c, release)
    if not revisions:
        raise UserError(
            f"no release {release} in namespace {c.namespace} ({c.target.describe()})",
            field="RELEASE",
            hint=f"check the name and the namespace: `helm list -n {c.namespace}` (or -A), "
            "or pass -n NAMESPACE",
        )
    return revisions


def chart_name(revision: Revision) -> str:
    """`quickstart-0.1.0` -> `quickstart` (chart versions are semver: the last dash-digit part)."""
    import re

    match = re.match(r"^(.*?)-(\d+\.\d+\.\d+\S*)$", revision.chart)
    return match.group(1) if match else revision.chart


# Sources -------------------------------------------------------------------------------------------


def _version_sets(versions: list[str], answers: dict[str, Any]) -> list[str]:
    """Apply --version PROJECT=VERSION to the answers (in place), each checked against the project's
    releases (GitHub, its cache, or the bundled list); returns notes."""
    from generator import versions as v
    from generator.github import GitHubReleases

    notes = []
    for item in versions:
        name, _, wanted = item.partition("=")
        if name not in VERSIONED or not wanted:
            raise UserError(
                f"--version {item!r} is not PROJECT=VERSION for a project whose version helm-mlops sets",
                field="--version",
                hint="e.g. --version mlflow=3.17.2 or --version mlserver=1.7.1 "
                "(`helm-mlops versions mlflow` lists them)",
            )
        version = v.check_supported(name, wanted, "--version")
        listing = v.list_versions(name, include_pre=True, source=GitHubReleases.from_env(None))
        known = [x.version for x in listing.versions]
        if version not in known:
            raise UserError(
                f"{name} {version} is not a release of {name} ({listing.source})",
                field="--version",
                hint=f"pick one of: {', '.join(known[:5])} ... (`helm-mlops versions {name}`)",
            )
        notes += [f"warning: {w}" for w in listing.warnings]
        if name == "mlflow":
            mlflow = answers.setdefault("mlflow", {})
            if not mlflow.get("enabled", True):
                raise UserError(
                    "the stack has no MLflow", field="--version", hint="drop --version mlflow=..."
                )
            mlflow["version"] = version
            notes.append(f"MLflow {version} ({v.image_for(name, version)})")
        else:
            services = [
                s for s in (answers.get("inference") or {}).get("services") or [] if s.get("runtime") == name
            ]
            if not services:
                raise UserError(
                    f"the stack has no {name} inference service", field="--version", hint="drop it"
                )
            for svc in services:
                svc["image"] = v.image_for(name, version)
            notes.append(f"{name} {version} for {', '.join(s['name'] for s in services)}")
    return notes


@dataclass
class Prepared:
    chart: Path
    values: dict[str, Any]  # credentials.yaml of a seed request, else {}
    kube_version: str
    notes: list[str]


def is_stack(path: Path) -> bool:
    from generator.generate import MARKER

    return (path / "Chart.yaml").is_file() and (path / MARKER).is_file()


@contextlib.contextmanager
def prepare(release: str, namespace: str, source: Source, helm: Helm) -> Iterator[Prepared]:
    """The stack's chart directory, ready for helm: a stack directory as it is (regenerated in place
    first when --set or --version change it), or a preset/answers file generated into a temporary
    directory that is removed afterwards."""
    from generator import generate

    given = [x for x in (source.stack_dir, source.preset, source.answers_file) if x]
    if len(given) != 1:
        raise UserError(
            "give exactly one of STACK_DIR, --preset or --answers" if given else "nothing to install",
            field="STACK_DIR/--preset/--answers",
            hint="pass a stack directory (helm-mlops generate), --preset NAME or --answers FILE",
        )
    notes: list[str] = []
    tmp: Path | None = None
    try:
        if source.stack_dir is not None:
            out = source.stack_dir
            if not out.is_dir() or not is_stack(out):
                what = "does not exist" if not out.exists() else "is not a stack generated by helm-mlops"
                raise UserError(
                    f"{out} {what} (no Chart.yaml and {generate.MARKER})",
                    field="STACK_DIR",
                    hint="generate one: helm-mlops generate --preset NAME -o DIR (or pass --preset)",
                )
            if source.sets or source.versions:
                loaded = generate.load(preset=None, answers_file=str(out), sets=source.sets)
                notes += _version_sets(source.versions, loaded.answers)
                built = generate.build(loaded)
                notes += generate.write(built.files, out, force=False)
                notes.append(f"regenerated {out} with the changes (its answers.yaml records them)")
        else:
            sets = [("--set-string", f"global.namespace={namespace}")]
            if source.preset:
                _check_stack_name(release)
                sets.append(("--set-string", f"name={release}"))
            loaded = generate.load(
                preset=source.preset, answers_file=source.answers_file, sets=sets + source.sets
            )
            notes += loaded.notes
            notes += _version_sets(source.versions, loaded.answers)
            built = generate.build(loaded)
            tmp = Path(tempfile.mkdtemp(prefix="helm-mlops-stack-"))
            out = tmp / built.name
            generate.write(built.files, out, force=False)
        chart = yamlio.load_mapping(out / "Chart.yaml", f"{out}/Chart.yaml")
        deps = chart.get("dependencies") or []
        if any(d.get("repository") for d in deps) and not list((out / "charts").glob("*.tgz")):
            helm.dependency_build(out)
            notes.append(f"fetched the charts: helm dependency build {out}")
        creds = out / "credentials.yaml"
        values = yamlio.load_mapping(creds, str(creds)) if creds.is_file() else {}
        yield Prepared(out, values, str(chart.get("kubeVersion") or ""), notes)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _check_stack_name(release: str) -> None:
    import re

    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,28}[a-z0-9])?", release):
        raise UserError(
            f"{release!r} cannot name a stack from a preset (its objects are named <release>-<component>)",
            field="RELEASE",
            hint="use at most 30 characters: lower-case letters, digits and '-', starting with a letter",
        )


# Install and upgrade --------------------------------------------------------------------------------


@dataclass
class InstallRequest:
    release: str
    source: Source
    timeout: str = "10m"
    skip_preflight: bool = False
    wait: bool = True


def preflight(c: Cluster, docs: list[dict[str, Any]], kube_version: str) -> None:
    from generator.kube import preflight as pf

    need = pf.needs(docs, kube_version)
    found = pf.problems(need, pf.gather(c.kube, c.namespace, need), c.namespace)
    if found:
        lines = [f"  - {p.what}\n    fix: {p.fix}" for p in found]
        raise UserError(
            f"the cluster is not ready for this stack ({len(found)} problem{'s' if len(found) > 1 else ''}, "
            f"{c.target.describe()}):\n" + "\n".join(lines),
            field="preflight",
            hint="fix the problems above and run again, or pass --skip-preflight",
        )


def install(
    c: Cluster,
    req: InstallRequest,
    *,
    upgrade: bool,
    progress: Callable[[list[str]], None] | None = None,
) -> Iterator[str]:
    """Install (or upgrade) a stack; yields lines for the user. A release that fails in the cluster is
    rolled back by helm and raises ReleaseFailed with what went wrong."""
    from generator.kube.progress import Watcher

    revisions = history(c, req.release)
    if upgrade and not revisions:
        raise UserError(
            f"no release {req.release} in namespace {c.namespace} to upgrade",
            field="RELEASE",
            hint=f"install it first: {command_name()} install {req.release} ... -n {c.namespace}",
        )
    if not upgrade and revisions:
        last = revisions[-1]
        raise UserError(
            f"release {req.release} already exists in namespace {c.namespace} (revision {last.revision}, "
            f"{last.status})",
            field="RELEASE",
            hint=f"upgrade it ({command_name()} upgrade {req.release} ...), or pick another name",
        )
    with prepare(req.release, c.namespace, req.source, c.helm) as prepared:
        yield from prepared.notes
        docs = c.helm.template(
            prepared.chart,
            req.release,
            prepared.values,
            namespace=c.namespace,
            source=str(prepared.chart),
            is_upgrade=upgrade,
        )
        if upgrade:
            new = yamlio.load_mapping(prepared.chart / "values.yaml", f"{prepared.chart}/values.yaml")
            old = c.helm.get_values(req.release, namespace=c.namespace)
            yield from (f"warning: {w}" for w in upgrade_warnings(old, new))
        if req.skip_preflight:
            yield "preflight skipped (--skip-preflight)"
        else:
            preflight(c, docs, prepared.kube_version)
            yield f"preflight: the {c.target.describe()} has what the stack needs"
        created = c.kube.ensure_namespace(c.namespace)
        if created:
            yield f"created namespace {c.namespace} (Pod Security: restricted)"
        verb = "upgrading" if upgrade else "installing"
        yield f"{verb} {req.release} in namespace {c.namespace} with {c.helm.binary.describe()}..."
        watcher = Watcher(c.kube, c.namespace, req.release, on_update=progress)
        try:
            with watcher:
                done = c.helm.install_or_upgrade(
                    req.release,
                    prepared.chart,
                    prepared.values,
                    namespace=c.namespace,
                    source=str(prepared.chart),
                    wait=req.wait,
                    timeout=req.timeout,
                    atomic=req.wait,  # rolling back on failure means waiting: --no-wait does neither
                )
        except ToolError as exc:
            if created:
                _drop_namespace(c)
            raise ReleaseFailed(_failure(c, req.release, upgrade, str(exc), watcher, req.wait)) from None
        except UserError:
            if created:
                _drop_namespace(c)
            raise
        except (Interrupted, KeyboardInterrupt) as exc:
            raise Interrupted(_interrupted(c, req.release, upgrade, str(exc), created)) from None
    yield f"release {done.release}: revision {done.revision}, {done.status} ({done.chart})"
    shown = component_lines(c, req.release)
    yield from (f"  {line}" for line in shown)
    failed = [line.split(":")[0] for line in shown if ": Failed" in line]
    if failed:
        yield (
            f"warning: helm saw the release ready, but {', '.join(failed)} failed since: "
            f"`{command_name()} logs {req.release} COMPONENT -n {c.namespace}` shows why"
        )
    yield f"status: {command_name()} status {req.release} -n {c.namespace}"


def _mlflow_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """MLflow's values by alias: the top level of an mlflow chart release, or each stack component with
    a backend store."""
    if "backendStore" in values:
        return {"mlflow": values}
    return {k: v for k, v in values.items() if isinstance(v, dict) and "backendStore" in v}


def upgrade_warnings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What an upgrade changes that data does not follow: MLflow's stores, or its version going down
    (its database migrations do not reverse)."""
    from generator.kube.status import image_version
    from generator.versions import parse

    out = []
    before, after = _mlflow_values(old), _mlflow_values(new)
    for alias in sorted(set(before) & set(after)):
        a, b = before[alias], after[alias]
        for store in ("backendStore", "artifactStore"):
            was, now = (a.get(store) or {}).get("type"), (b.get(store) or {}).get("type")
            if was and now and was != now:
                out.append(
                    f"{alias}: {store}.type changes from {was} to {now}: what MLflow already stored stays "
                    f"in the {was} store, out of its reach (move it first if you need it)"
                )
        old_v = parse(image_version(f"x:{(a.get('image') or {}).get('tag') or ''}"))
        new_v = parse(image_version(f"x:{(b.get('image') or {}).get('tag') or ''}"))
        if old_v is not None and new_v is not None and new_v < old_v:
            out.append(
                f"{alias}: MLflow goes down from {old_v} to {new_v}: its database was migrated for {old_v} "
                "and MLflow's migrations do not run backwards"
            )
    return out


def _failure(c: Cluster, release: str, upgrade: bool, error: str, watcher: Any, rolled_back: bool) -> str:
    rolled = "rolled back to the previous revision" if upgrade else "removed the release again"
    if not rolled_back:
        rolled = "left the release as it failed (--no-wait: no rollback)"
    if not upgrade:  # helm-mlops installs with `helm upgrade --install`: say what the user ran
        error = error.replace("helm upgrade failed:", "helm install failed:", 1)
    lines = [f"{'upgrade' if upgrade else 'install'} of {release} failed; helm {rolled}", error]
    if watcher.reports:
        from generator.kube.progress import summarize_reports

        lines.append("what failed:")
        lines += [f"  {x}" for x in summarize_reports(list(watcher.reports.values()), error)]
    elif watcher.last:
        lines.append("still not ready when helm gave up:")
        lines += [f"  {x}" for x in watcher.last]
    if not upgrade and rolled_back:
        try:
            kept = leftovers(c.kube, c.namespace, release)[0]
        except HelmMlopsError:
            kept = []
        if kept:
            shown = ", ".join(f"{k.kind} {k.name}" for k in kept)
            lines.append(
                f"left on purpose (retention policy): {shown}; "
                f"`{command_name()} uninstall {release} -n {c.namespace} --delete-data` deletes them"
            )
    lines.append(
        f"  fix: correct the cause above and run the {'upgrade' if upgrade else 'install'} again"
        + (
            f" (`{command_name()} status {release} -n {c.namespace}` shows the release now)"
            if upgrade
            else ""
        )
    )
    return "\n".join(lines)


def _interrupted(c: Cluster, release: str, upgrade: bool, said: str, created: bool) -> str:
    """What a Ctrl-C or SIGTERM during helm left: helm was asked to stop as on a terminal (it rolls back
    with rollback-on-failure), so say what the release is now."""
    verb = "upgrade" if upgrade else "install"
    try:
        revisions = history(c, release)
    except HelmMlopsError:
        revisions = None
    if revisions == []:
        if created:
            _drop_namespace(c)
        state = "helm removed the release: nothing is installed"
        fix = "nothing to clean up; run the install again when ready"
    elif revisions:
        last = revisions[-1]
        state = f"the release is at revision {last.revision}, {last.status}"
        fix = f"see `{command_name()} history {release} -n {c.namespace}`" + (
            ""
            if last.status == "deployed"
            else f"; then `{command_name()} rollback {release}` or `uninstall` it"
        )
    else:
        state = "the release's state is unknown"
        fix = f"see `{command_name()} history {release} -n {c.namespace}`"
    return f"{said.splitlines()[0] if said else 'interrupted'}; {verb} of {release}: {state}\n  fix: {fix}"


def _drop_namespace(c: Cluster) -> None:
    """A namespace created for a release that failed goes again (nothing else was put in it)."""
    with contextlib.suppress(HelmMlopsError):
        c.kube.call(f"delete namespace {c.namespace}", c.kube.core().delete_namespace, c.namespace)


def component_lines(c: Cluster, release: str) -> list[str]:
    from generator.kube.status import collect, collect_services, workloads

    lines = []
    for w in workloads(c.kube, c.namespace, release):
        if w["metadata"].get("labels", {}).get("helm-mlops.io/inference-service"):
            continue
        status, spec = w.get("status") or {}, w.get("spec") or {}
        ready = f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1) or 0)}"
        lines.append(f"{w['kind'].lower()} {w['metadata']['name']}: ready {ready}")
    for svc in collect_services(c.kube, c.namespace, release):
        lines.append(
            f"inference service {svc.name}: {svc.phase}, {svc.runtime}, ready {svc.ready}/{svc.desired}"
        )
    for job in collect(c.kube, c.namespace, release):
        lines.append(f"training {job.kind.lower()} {job.name}: {job.phase}")
    return lines


# Rollback, uninstall -----------------------------------------------------------------------------


def rollback(c: Cluster, release: str, revision: int | None, timeout: str = "10m") -> Iterator[str]:
    revisions = require(c, release)
    numbers = [r.revision for r in revisions]
    if revision is not None and revision not in numbers:
        raise UserError(
            f"release {release} has no revision {revision} (it has {', '.join(map(str, numbers))})",
            field="REVISION",
            hint=f"see {command_name()} history {release} -n {c.namespace}",
        )
    if revision is None and len(revisions) < 2:
        raise UserError(
            f"release {release} has only revision {numbers[0]}: nothing to roll back to",
            field="REVISION",
            hint="upgrade it instead",
        )
    try:
        c.helm.rollback(release, revision, namespace=c.namespace, wait=True, timeout=timeout)
    except ToolError as exc:
        raise ReleaseFailed(f"rollback of {release} failed:\n{exc}") from None
    now = require(c, release)[-1]
    target = revision if revision is not None else numbers[-2]
    yield f"release {release}: rolled back to revision {target}; now revision {now.revision}, {now.status}"


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    why: str


def leftovers(kube: Kube, namespace: str, release: str) -> tuple[list[Leftover], list[Leftover]]:
    """What of a release remains after `helm uninstall`: (kept on purpose: volume claims and Secrets
    under a keep policy; others: hook objects helm leaves behind, e.g. a failed hook's Job)."""
    core, batch = kube.core(), kube.batch()
    kept, other = [], []
    selector = f"app.kubernetes.io/instance={release}"
    for pvc in kube.items("list volume claims", core.list_namespaced_persistent_volume_claim, namespace,
                          label_selector=selector):  # fmt: skip
        kept.append(Leftover("PersistentVolumeClaim", pvc["metadata"]["name"], "the release's data"))
    for sel in (selector, f"app.kubernetes.io/part-of={release}"):
        for secret in kube.items("list secrets", core.list_namespaced_secret, namespace, label_selector=sel):
            notes = secret["metadata"].get("annotations") or {}
            if notes.get("helm.sh/resource-policy") == "keep":
                kept.append(Leftover("Secret", secret["metadata"]["name"], "credentials kept with the data"))
            elif notes.get("helm.sh/hook"):
                other.append(Leftover("Secret", secret["metadata"]["name"], "hook"))
    for kind, fn in (
        ("Job", batch.list_namespaced_job),
        ("Pod", core.list_namespaced_pod),
        ("ConfigMap", core.list_namespaced_config_map),
    ):
        for obj in kube.items(f"list {kind}s", fn, namespace, label_selector=selector):
            if (obj["metadata"].get("annotations") or {}).get("helm.sh/hook"):
                other.append(Leftover(kind, obj["metadata"]["name"], "hook"))
    return sorted(set(kept), key=str), sorted(set(other), key=str)


def delete(kube: Kube, namespace: str, item: Leftover) -> None:
    from kubernetes import client

    core, batch = kube.core(), kube.batch()
    fn = {
        "PersistentVolumeClaim": core.delete_namespaced_persistent_volume_claim,
        "Secret": core.delete_namespaced_secret,
        "ConfigMap": core.delete_namespaced_config_map,
        "Pod": core.delete_namespaced_pod,
        "Job": batch.delete_namespaced_job,
    }[item.kind]
    body = client.V1DeleteOptions(propagation_policy="Background")
    kube.call(f"delete {item.kind} {item.name}", fn, item.name, namespace, body=body, missing_ok=True)


def uninstall(
    c: Cluster,
    release: str,
    *,
    delete_data: bool,
    confirm: Callable[[list[Leftover]], bool],
    timeout: str = "10m",
) -> Iterator[str]:
    if history(c, release):
        c.helm.uninstall(release, namespace=c.namespace, wait=True, timeout=timeout)
        yield f"release {release} uninstalled from namespace {c.namespace}"
    elif not delete_data or not any(leftovers(c.kube, c.namespace, release)):
        require(c, release)  # names the missing release
    else:
        yield f"release {release} is not installed; what it kept remains in namespace {c.namespace}"
    kept, other = leftovers(c.kube, c.namespace, release)
    for item in other:
        delete(c.kube, c.namespace, item)
    if other:
        yield f"removed {len(other)} hook object(s) helm leaves behind"
    if not kept:
        return
    if delete_data and confirm(kept):
        for item in kept:
            delete(c.kube, c.namespace, item)
            yield f"deleted {item.kind} {item.name} ({item.why})"
        return
    yield "kept on purpose (the charts' retention policy):"
    for item in kept:
        yield f"  {item.kind} {item.name} ({item.why})"
    yield f"delete them too: {command_name()} uninstall {release} -n {c.namespace} --delete-data"


# List, history, status, test, restart -------------------------------------------------------------


def list_releases(c: Cluster, all_namespaces: bool) -> list[dict[str, Any]]:
    """helm-mlops releases: stacks generated by helm-mlops and releases of its charts."""
    from generator.stack import GENERATOR_ANNOTATION

    ours = ("mlflow", "training-job", "inference-service")
    rows: list[dict[str, Any]] = []
    for rel in c.helm.list_releases(namespace=None if all_namespaces else c.namespace):
        chart = str(rel.get("chart", ""))
        name = chart_name(Revision(release="", namespace="", revision=0, status="", chart=chart))
        if name not in ours:
            meta = _metadata(c, str(rel["name"]), str(rel["namespace"]))
            if GENERATOR_ANNOTATION not in (meta.get("annotations") or {}):
                continue
        rows.append(
            {
                "name": str(rel["name"]),
                "namespace": str(rel["namespace"]),
                "revision": int(rel.get("revision") or 0),
                "status": str(rel.get("status", "")),
                "chart": chart,
                "app_version": str(rel.get("app_version", "")),
                "updated": iso_time(str(rel.get("updated", ""))),
            }
        )
    return rows


def iso_time(text: str) -> str:
    """helm's times (`2026-11-24 11:53:25.48 +0000 UTC` in list, RFC 3339 in history) as one form,
    to the second, in UTC: 2026-11-24T11:53:25Z."""
    import re
    from datetime import UTC, datetime

    match = re.match(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?", text)
    if not match:
        return text
    offset = (match.group(3) or "Z").replace("Z", "+00:00")
    if ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    when = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}{offset}").astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _metadata(c: Cluster, release: str, namespace: str) -> dict[str, Any]:
    import json

    try:
        out = c.helm.run(["get", "metadata", release, "--namespace", namespace, "-o", "json"], cluster=True)
        return dict(json.loads(out or b"{}"))
    except (HelmMlopsError, ValueError):
        return {}


def history_rows(c: Cluster, release: str) -> list[dict[str, Any]]:
    return [
        {
            "revision": r.revision,
            "updated": iso_time(r.updated),
            "status": r.status,
            "chart": r.chart,
            "app_version": r.app_version,
            "description": r.description,
        }
        for r in require(c, release)
    ]


def status_data(c: Cluster, release: str) -> dict[str, Any]:
    """The release and its live components as data (`status -o json`)."""
    from generator.kube import status as st

    check_release_name(release)
    kube, ns = c.kube, c.namespace
    pods = kube.items(f"list pods of {release} in namespace {ns}", kube.core().list_namespaced_pod, ns,
                      label_selector=f"app.kubernetes.io/instance={release}")  # fmt: skip
    last = require(c, release)[-1]
    values = c.helm.get_values(release, namespace=c.namespace)
    chart = chart_name(last)
    services = kube.items("list services", kube.core().list_namespaced_service, ns,
                          label_selector=f"app.kubernetes.io/instance={release}")  # fmt: skip
    routes = _routes(kube, ns, release)
    mlflow = []
    for w in st.workloads(kube, ns, release):
        if w["kind"] == "Deployment" and st.is_mlflow(w):
            alias = (w["metadata"].get("labels") or {}).get(st.NAME_LABEL, "mlflow")
            own = values if chart == "mlflow" else dict(values.get(alias) or {})
            summary = st.summarize_mlflow(
                w, st.pods_of(w, pods), services, routes, own, f"{command_name()} ui {release} -n {ns}"
            )
            mlflow.append(asdict(summary))
    service_rows = []
    for svc in st.collect_services(kube, ns, release):
        row = asdict(svc)
        backing = next((s for s in services if s["metadata"]["name"] == svc.name), None)
        port = next((p.get("port") for p in (backing or {}).get("spec", {}).get("ports") or []), 80)
        row["endpoint"] = (
            f"http://{svc.name}.{ns}.svc.cluster.local:{port}" if backing else row.get("url", "")
        )
        row["external_url"] = st.external_url(routes, svc.name) or (
            svc.url if svc.runtime == "kserve" else ""
        )
        service_rows.append(row)
    return {
        "release": release,
        "namespace": ns,
        "revision": last.revision,
        "status": last.status,
        "chart": last.chart,
        "app_version": last.app_version,
        "updated": last.updated,
        "mlflow": mlflow,
        "training": [asdict(j) for j in st.collect(kube, ns, release)],
        "services": service_rows,
    }


def _routes(kube: Kube, namespace: str, release: str) -> list[dict[str, Any]]:
    from kubernetes import client

    selector = f"app.kubernetes.io/instance={release}"
    net = client.NetworkingV1Api(kube.api_client)
    out = []
    for obj in kube.items("list ingresses", net.list_namespaced_ingress, namespace, label_selector=selector):
        obj["kind"] = "Ingress"
        out.append(obj)
    for obj in kube.optional_items(
        "list httproutes", "gateway.networking.k8s.io", "v1", namespace, "httproutes", selector
    ):
        obj["kind"] = "HTTPRoute"
        out.append(obj)
    return out


def status_lines(data: dict[str, Any]) -> list[str]:
    """`status` as text: the release, then one block per component."""
    from generator.kube.status import JobSummary, format_summaries

    lines = [
        f"release {data['release']} in namespace {data['namespace']}: revision {data['revision']}, "
        f"{data['status']} ({data['chart']}, updated {str(data['updated'])[:19]})"
    ]
    for m in data["mlflow"]:
        lines += [
            "",
            f"MLflow {m['name']}",
            f"  installed:       {'yes' if m['installed'] else 'no'}, ready {m['ready']}",
            f"  version:         {m['version']} ({m['image']})",
            f"  namespace:       {m['namespace']}",
            f"  backend store:   {m['backend_store']}",
            f"  artifact store:  {m['artifact_store']}",
            f"  in-cluster URL:  {m['in_cluster_url']}",
            f"  tracking UI:     {m['tracking_url']}" + ("" if m["ui"] else " (UI off: REST API only)"),
        ]
    if data["training"]:
        lines.append("")
        lines += format_summaries([JobSummary(**j) for j in data["training"]])
    if data["services"]:
        from generator.kube.status import ServiceSummary, format_services

        lines.append("")
        fields = ("name", "runtime", "ready", "desired", "phase", "url")
        rows = format_services([ServiceSummary(**{k: s[k] for k in fields}) for s in data["services"]])
        lines.append(rows[0])
        for s, row in zip(data["services"], rows[1:], strict=True):
            lines.append(row)
            lines.append(f"    endpoint: {s['endpoint']}")
            if s["external_url"]:
                lines.append(f"    external: {s['external_url']}")
    if not data["mlflow"] and not data["training"] and not data["services"]:
        lines.append("no components of helm-mlops' charts in this release")
    return lines


def run_tests(c: Cluster, release: str, timeout: str = "5m") -> Iterator[str]:
    from generator.kube.progress import TestLogCollector

    require(c, release)
    # Helm 4 reads the test pods' logs before deleting passed ones (hook-succeeded); Helm 3's --logs
    # fails once they are gone, so with Helm 3 they are read here as the pods finish.
    own_logs = c.helm.binary.major >= 4
    collector = TestLogCollector(c.kube, c.namespace, release, interval=0.2)
    try:
        with collector if not own_logs else contextlib.nullcontext(collector):
            out = c.helm.test(release, namespace=c.namespace, timeout=timeout, logs=own_logs)
    except ToolError as exc:
        logs = [f"  [{pod}] {line}" for pod, lines in sorted(collector.logs.items()) for line in lines]
        shown = "\n".join(["logs of the test pods:", *logs]) if logs else ""
        message = str(exc).removeprefix("helm test failed:\n")
        raise ReleaseFailed(f"helm test {release} failed:\n{message}\n{shown}".rstrip()) from None
    yield from out.rstrip().splitlines()
    if own_logs:
        return
    for pod, lines in sorted(collector.logs.items()):
        yield ""
        yield f"POD LOGS: {pod}"
        yield from lines
    suites = out.count("TEST SUITE:")
    if len(collector.logs) < suites:
        yield ""
        yield (
            f"({len(collector.logs)} of {suites} test pods' logs read: Helm 3 deletes a passed test pod "
            "before its logs can be read, Helm 4 shows them all)"
        )


def restart(c: Cluster, release: str, component: str | None) -> Iterator[str]:
    """What `kubectl rollout restart` does: a new pod-template annotation, so the pods roll."""
    from datetime import UTC, datetime

    from generator.kube.status import component_names, match_workloads, workloads

    require(c, release)
    objs = workloads(c.kube, c.namespace, release)
    chosen = objs if component in (None, "all") else match_workloads(objs, component)
    if not chosen:
        names = ", ".join(component_names(objs)) or "none"
        raise UserError(
            f"release {release} has no component {component!r} (Deployments and StatefulSets: {names})",
            field="COMPONENT",
            hint="name one of those, a chart alias (e.g. mlflow), or `all`",
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}
    }
    apps = c.kube.apps()
    for obj in chosen:
        fn = (
            apps.patch_namespaced_deployment
            if obj["kind"] == "Deployment"
            else apps.patch_namespaced_stateful_set
        )
        c.kube.call(
            f"restart {obj['kind']} {obj['metadata']['name']}",
            fn,
            obj["metadata"]["name"],
            c.namespace,
            patch,
        )
        yield f"{obj['kind'].lower()} {obj['metadata']['name']} restarted"
