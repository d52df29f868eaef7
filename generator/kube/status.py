"""`helm-mlops status`: a release's training jobs (phase, pods, timing, MLflow runs), inference
services (runtime, replicas ready/desired, phase) and pods.

The summaries are pure functions of the API objects (as `kubectl get -o json` prints them), so they
are tested with recorded responses; fetching them is a thin layer over `Kube`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from generator.errors import HelmMlopsError
from generator.kube.client import Kube

TRAINING_LABEL = "helm-mlops.io/training-job"
SERVICE_LABEL = "helm-mlops.io/inference-service"


@dataclass
class JobSummary:
    name: str
    kind: str
    phase: str
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    completions: int | None = None
    started: str = ""
    duration: str = ""
    runs: list[str] = field(default_factory=list)
    sweep_id: str = ""


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if start is None:
        return ""
    seconds = int(((end or now) - start).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def job_phase(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    conditions = {c["type"]: c.get("status") == "True" for c in status.get("conditions") or []}
    if conditions.get("Complete"):
        return "Complete"
    if conditions.get("Failed"):
        return "Failed"
    if conditions.get("FailureTarget"):
        return "Failing"
    if (job.get("spec") or {}).get("suspend") or conditions.get("Suspended"):
        return "Suspended"
    if status.get("active") or status.get("ready"):
        return "Running"
    return "Pending"


# Where `status` finds a training's MLflow run. A finished container: its termination message (the
# launcher writes {"exitCode", "mlflowRunId", "mlflowExperimentId", "trial"}), also in `lastState`
# after an OnFailure restart. A running container has no message yet: the launcher prints one
# well-known line on stderr as soon as the run exists, and `status` reads it from the start of the
# pod's log (the same access as `helm-mlops logs`; no RBAC for the pod itself to patch anything).
RUN_LINE = "[helm-mlops] mlflow-run "
RUN_LINE_BYTES = 256 * 1024  # the line follows the pip output; read at most this much of a log


def _tracking_uri(pod: dict[str, Any]) -> str:
    uri = ""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "MLFLOW_TRACKING_URI" and "value" in env:
                uri = str(env["value"]).rstrip("/")
    return uri


def _link(uri: str, data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    run, exp = data.get("mlflowRunId"), data.get("mlflowExperimentId")
    if not (run and exp):
        return None
    trial = f" (trial {data['trial']})" if "trial" in data else ""
    return f"{uri}/#/experiments/{exp}/runs/{run}{trial}"


def _messages(pod: dict[str, Any]) -> list[str]:
    out = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for key in ("state", "lastState"):
            message = ((status.get(key) or {}).get("terminated") or {}).get("message") or ""
            if message:
                out.append(message)
    return out


def run_line_data(log: str) -> list[dict[str, Any]]:
    """The launcher's `mlflow-run {...}` lines in a log (the last one is the current attempt's)."""
    found = []
    for line in log.splitlines():
        if line.startswith(RUN_LINE):
            try:
                data = json.loads(line[len(RUN_LINE) :])
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append(data)
    return found


def mlflow_links(pods: list[dict[str, Any]], logs: dict[str, str] | None = None) -> list[str]:
    """MLflow run links from the launcher's termination messages (`state` and `lastState`) and, for
    running pods, from the `mlflow-run` line of their logs (`logs`: pod name -> start of its log)."""
    links = []
    for pod in pods:
        uri = _tracking_uri(pod)
        found = []
        for message in _messages(pod):
            try:
                found.append(_link(uri, json.loads(message)))
            except ValueError:
                continue
        log = (logs or {}).get(pod["metadata"]["name"], "")
        found += [_link(uri, data) for data in run_line_data(log)]
        links += [link for link in found if link]
    return sorted(set(links))


def needs_log(pod: dict[str, Any]) -> bool:
    """A pod whose current container runs: its run is known only from its log."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if "running" in (status.get("state") or {}):
            return True
    return False


def running_logs(kube: Kube, namespace: str, pods: list[dict[str, Any]]) -> dict[str, str]:
    """The start of the log of each running pod (for the `mlflow-run` line); a pod whose log cannot
    be read (no access, gone) is skipped: the link then shows once the pod has ended."""
    logs: dict[str, str] = {}
    core = kube.core()
    for pod in pods:
        if not needs_log(pod):
            continue
        name = pod["metadata"]["name"]
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        try:
            text = kube.call(
                f"read the log of pod {name}",
                core.read_namespaced_pod_log,
                name,
                namespace,
                container=containers[0].get("name"),
                limit_bytes=RUN_LINE_BYTES,
            )
        except HelmMlopsError:
            continue
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        if isinstance(text, str):
            logs[name] = text
    return logs


def summarize_job(
    job: dict[str, Any], pods: list[dict[str, Any]], now: datetime, logs: dict[str, str] | None = None
) -> JobSummary:
    status = job.get("status") or {}
    start, end = _time(status.get("startTime")), _time(status.get("completionTime"))
    if end is None:
        for cond in status.get("conditions") or []:
            if cond["type"] == "Failed" and cond.get("status") == "True":
                end = _time(cond.get("lastTransitionTime"))
    return JobSummary(
        name=job["metadata"]["name"],
        kind="Job",
        phase=job_phase(job),
        active=int(status.get("active") or 0),
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        completions=(job.get("spec") or {}).get("completions"),
        started=status.get("startTime") or "",
        duration=_duration(start, end, now),
        runs=mlflow_links(pods, logs),
        sweep_id=job["metadata"].get("uid", "") if is_sweep(job) else "",
    )


def is_sweep(job: dict[str, Any]) -> bool:
    containers = job["spec"]["template"]["spec"].get("containers") or []
    return any(e.get("name") == "HELM_MLOPS_SWEEP_FILE" for c in containers for e in c.get("env") or [])


def summarize_cronjob(cron: dict[str, Any]) -> JobSummary:
    status = cron.get("status") or {}
    suspended = (cron.get("spec") or {}).get("suspend")
    last = status.get("lastScheduleTime") or "never"
    return JobSummary(
        name=cron["metadata"]["name"],
        kind="CronJob",
        phase=f"{'Suspended' if suspended else 'Scheduled'} ({cron['spec']['schedule']}, last run {last})",
        active=len(status.get("active") or []),
    )


def summarize_custom(
    obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, logs: dict[str, str] | None = None
) -> JobSummary:
    """PyTorchJob (kubeflow.org/v1) and TrainJob: phase from their conditions, counts from pods."""
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    phase = conditions[-1]["type"] if conditions else "Pending"
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    start = _time((obj.get("status") or {}).get("startTime") or obj["metadata"].get("creationTimestamp"))
    end = _time((obj.get("status") or {}).get("completionTime"))
    return JobSummary(
        name=obj["metadata"]["name"],
        kind=obj["kind"],
        phase=phase,
        active=phases.count("Running") + phases.count("Pending"),
        succeeded=phases.count("Succeeded"),
        failed=phases.count("Failed"),
        started=(obj.get("status") or {}).get("startTime") or "",
        duration=_duration(start, end, now),
        runs=mlflow_links(pods, logs),
    )


def format_summaries(summaries: list[JobSummary]) -> list[str]:
    if not summaries:
        return ["no training jobs in this release"]
    lines = [
        f"{'JOB':<40} {'KIND':<10} {'PHASE':<12} {'ACTIVE':>6} {'OK':>4} {'FAILED':>6}  STARTED / DURATION"
    ]
    for s in summaries:
        done = f"{s.succeeded}/{s.completions}" if s.completions else str(s.succeeded)
        when = f"{s.started} / {s.duration}" if s.started else ""
        lines.append(f"{s.name:<40} {s.kind:<10} {s.phase:<12} {s.active:>6} {done:>4} {s.failed:>6}  {when}")
        if s.sweep_id:
            lines.append(f"    sweep id: {s.sweep_id}  (helm-mlops sweep best --sweep-id {s.sweep_id} ...)")
        lines += [f"    MLflow run: {link}" for link in s.runs]
    return lines


# Fetching ------------------------------------------------------------------------------------------


def collect(kube: Kube, namespace: str, release: str) -> list[JobSummary]:
    core, batch = kube.core(), kube.batch()
    selector = f"app.kubernetes.io/instance={release},{TRAINING_LABEL}"
    pods = kube.items(
        f"list pods of {release} in namespace {namespace}",
        core.list_namespaced_pod,
        namespace,
        label_selector=selector,
    )
    now = datetime.now(UTC)
    out: list[JobSummary] = []
    for job in kube.items(
        f"list jobs of {release} in namespace {namespace}",
        batch.list_namespaced_job,
        namespace,
        label_selector=selector,
    ):
        uid = job["metadata"]["uid"]
        mine = [
            p
            for p in pods
            if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/controller-uid") == uid
        ]
        out.append(summarize_job(job, mine, now, running_logs(kube, namespace, mine)))
    for cron in kube.items(
        f"list cronjobs of {release} in namespace {namespace}",
        batch.list_namespaced_cron_job,
        namespace,
        label_selector=selector,
    ):
        out.append(summarize_cronjob(cron))
    for group, version, plural in (
        ("kubeflow.org", "v1", "pytorchjobs"),
        ("trainer.kubeflow.org", "v1alpha1", "trainjobs"),
    ):
        for obj in kube.optional_items(
            f"list {plural} of {release}", group, version, namespace, plural, selector
        ):
            name = obj["metadata"]["labels"][TRAINING_LABEL]
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(TRAINING_LABEL) == name]
            out.append(summarize_custom(obj, mine, now, running_logs(kube, namespace, mine)))
    return sorted(out, key=lambda s: (s.kind, s.name))


# Inference services ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSummary:
    name: str
    runtime: str
    ready: int
    desired: int
    phase: str
    url: str = ""


def summarize_deployment(dep: dict[str, Any], pods: list[dict[str, Any]]) -> ServiceSummary:
    status, labels = dep.get("status") or {}, dep["metadata"].get("labels") or {}
    desired = int((dep.get("spec") or {}).get("replicas", status.get("replicas", 0)) or 0)
    ready = int(status.get("readyReplicas") or 0)
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    if ready and ready >= desired:
        phase = "Running"
    elif "Failed" in phases or any(_crashing(p) for p in pods):
        phase = "Failed"
    else:
        phase = "Pending"
    return ServiceSummary(
        dep["metadata"]["name"], labels.get("helm-mlops.io/runtime", "?"), ready, desired, phase
    )


def _crashing(pod: dict[str, Any]) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in (
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "CreateContainerConfigError",
        ):
            return True
    return False


def summarize_isvc(isvc: dict[str, Any]) -> ServiceSummary:
    status = isvc.get("status") or {}
    conditions = {c["type"]: c.get("status") for c in status.get("conditions") or []}
    phase = (
        "Running"
        if conditions.get("Ready") == "True"
        else ("Failed" if conditions.get("Ready") == "False" else "Pending")
    )
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    return ServiceSummary(
        isvc["metadata"]["name"],
        "kserve",
        1 if phase == "Running" else 0,
        int(predictor.get("minReplicas", 1)),
        phase,
        str(status.get("url") or ""),
    )


def format_services(services: list[ServiceSummary]) -> list[str]:
    if not services:
        return []
    lines = [f"{'SERVICE':<40} {'RUNTIME':<9} {'READY':>7}  PHASE"]
    for s in services:
        url = f"  {s.url}" if s.url else ""
        lines.append(f"{s.name:<40} {s.runtime:<9} {f'{s.ready}/{s.desired}':>7}  {s.phase}{url}")
    return lines


def kserve_services(kube: Kube, namespace: str, release: str) -> list[dict[str, Any]]:
    """The release's KServe InferenceServices (none when KServe is not installed)."""
    return kube.optional_items(
        f"list inferenceservices of {release} in namespace {namespace}",
        "serving.kserve.io",
        "v1beta1",
        namespace,
        "inferenceservices",
        f"app.kubernetes.io/instance={release},{SERVICE_LABEL}",
    )


def collect_services(kube: Kube, namespace: str, release: str) -> list[ServiceSummary]:
    selector = f"app.kubernetes.io/instance={release},{SERVICE_LABEL}"
    pods = kube.items(
        f"list pods of {release} in namespace {namespace}",
        kube.core().list_namespaced_pod,
        namespace,
        label_selector=f"app.kubernetes.io/instance={release}",
    )
    out = []
    for dep in kube.items(
        f"list deployments of {release} in namespace {namespace}",
        kube.apps().list_namespaced_deployment,
        namespace,
        label_selector=selector,
    ):
        match = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
        mine = [p for p in pods if match.items() <= (p["metadata"].get("labels") or {}).items()]
        out.append(summarize_deployment(dep, mine))
    out += [summarize_isvc(i) for i in kserve_services(kube, namespace, release)]
    return sorted(out, key=lambda s: s.name)


# Pods -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodStatus:
    name: str
    component: str
    phase: str
    ready: str


def summarize_pod(pod: dict[str, Any]) -> PodStatus:
    meta, status, spec = pod["metadata"], pod.get("status") or {}, pod.get("spec") or {}
    statuses = status.get("containerStatuses") or []
    ready = f"{sum(1 for s in statuses if s.get('ready'))}/{len(spec.get('containers') or [])}"
    component = (meta.get("labels") or {}).get("app.kubernetes.io/component", "")
    return PodStatus(str(meta.get("name", "?")), component, status.get("phase") or "Unknown", ready)


def pod_statuses(kube: Kube, namespace: str, release: str) -> list[PodStatus]:
    pods = kube.items(
        f"list pods of {release} in namespace {namespace}",
        kube.core().list_namespaced_pod,
        namespace,
        label_selector=f"app.kubernetes.io/instance={release}",
    )
    return sorted((summarize_pod(p) for p in pods), key=lambda p: p.name)


# Workloads (Deployments, StatefulSets) and MLflow ---------------------------------------------------------

NAME_LABEL, COMPONENT_LABEL = "app.kubernetes.io/name", "app.kubernetes.io/component"


def workloads(kube: Kube, namespace: str, release: str) -> list[dict[str, Any]]:
    """The release's Deployments and StatefulSets (with `kind` set, as kubectl shows them)."""
    selector = f"app.kubernetes.io/instance={release}"
    apps = kube.apps()
    out = []
    for kind, fn in (
        ("Deployment", apps.list_namespaced_deployment),
        ("StatefulSet", apps.list_namespaced_stateful_set),
    ):
        for obj in kube.items(f"list {kind}s of {release}", fn, namespace, label_selector=selector):
            obj["kind"] = kind
            out.append(obj)
    return sorted(out, key=lambda o: (o["kind"], o["metadata"]["name"]))


def match_workloads(objs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The workloads a user means by `name`: the object's own name, else an inference service's name,
    else a chart alias (its server), else a component (minio, postgresql), else `<alias>-<component>`;
    the first kind of match that finds any wins."""

    def labels(o: dict[str, Any]) -> dict[str, str]:
        return dict(o["metadata"].get("labels") or {})

    tiers = (
        lambda o: o["metadata"]["name"] == name,
        lambda o: labels(o).get(SERVICE_LABEL) == name,
        lambda o: labels(o).get(NAME_LABEL) == name and labels(o).get(COMPONENT_LABEL) == "server",
        lambda o: labels(o).get(COMPONENT_LABEL) == name,
        lambda o: f"{labels(o).get(NAME_LABEL)}-{labels(o).get(COMPONENT_LABEL)}" == name,
    )
    for test in tiers:
        found = [o for o in objs if test(o)]
        if found:
            return found
    return []


def component_names(objs: list[dict[str, Any]]) -> list[str]:
    """How the user may name each workload (for hints)."""
    return sorted({str(o["metadata"]["name"]) for o in objs})


def pods_of(workload: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    match = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return [p for p in pods if match and match.items() <= (p["metadata"].get("labels") or {}).items()]


def is_mlflow(workload: dict[str, Any]) -> bool:
    labels = workload["metadata"].get("labels") or {}
    return (
        str(labels.get("helm.sh/chart", "")).startswith("mlflow-") and labels.get(COMPONENT_LABEL) == "server"
    )


def image_version(image: str) -> str:
    """MLflow's version from its image tag: ghcr.io/mlflow/mlflow:v3.17.2-full -> 3.17.2."""
    tag = image.rsplit("@", 1)[0]
    tag = tag.rsplit(":", 1)[1] if ":" in tag.rsplit("/", 1)[-1] else ""
    match = re.match(r"v?(\d+\.\d+\.\d+(?:rc\d+)?)", tag)
    return match.group(1) if match else (tag or "unknown")


def describe_backend(values: dict[str, Any]) -> str:
    store = values.get("backendStore") or {}
    kind = str(store.get("type") or "sqlite")
    if kind == "sqlite":
        return f"sqlite ({(store.get('sqlite') or {}).get('file', 'mlflow.db')} on the data volume)"
    db = store.get(kind) or {}
    if db.get("inCluster"):
        return f"{kind} (in the release, database {db.get('database', 'mlflow')})"
    host = str(db.get("host", "?")).rsplit("@", 1)[-1]  # never a user:password@ someone put there
    where = f"{host}:{db.get('port', '')}".rstrip(":")
    return f"{kind} ({where}/{db.get('database', 'mlflow')})"


def describe_artifacts(values: dict[str, Any]) -> str:
    store = values.get("artifactStore") or {}
    kind = str(store.get("type") or "pvc")
    spec = store.get(kind) or {}
    proxied = " (proxied by the server)" if store.get("proxied", True) and kind != "pvc" else ""
    if kind == "pvc":
        return f"pvc ({spec.get('path', 'artifacts')} on the data volume)"
    if kind in ("s3", "gcs"):
        scheme = "s3" if kind == "s3" else "gs"
        return f"{kind} ({scheme}://{spec.get('bucket', '')}/{spec.get('prefix', '')}){proxied}".replace(
            "/)", ")"
        )
    if kind == "minio":
        where = "in the release" if spec.get("inCluster") else spec.get("endpointUrl", "")
        return f"minio ({where}, bucket {spec.get('bucket', 'mlflow')}){proxied}"
    if kind == "azure":
        return f"azure ({spec.get('storageAccount', '')}/{spec.get('container', '')}){proxied}"
    return kind


def external_url(routes: list[dict[str, Any]], service: str) -> str:
    """The Ingress or HTTPRoute address that sends traffic to `service`, if any."""
    for obj in routes:
        spec = obj.get("spec") or {}
        if obj.get("kind") == "Ingress":
            tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
            for rule in spec.get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    backend = ((path.get("backend") or {}).get("service") or {}).get("name")
                    if backend == service and rule.get("host"):
                        scheme = "https" if rule["host"] in tls_hosts else "http"
                        return f"{scheme}://{rule['host']}{path.get('path', '/')}"
        else:  # HTTPRoute
            for rule in spec.get("rules") or []:
                if any(ref.get("name") == service for ref in rule.get("backendRefs") or []):
                    hosts = spec.get("hostnames") or []
                    if hosts:
                        match = ((rule.get("matches") or [{}])[0].get("path") or {}).get("value", "/")
                        return f"http://{hosts[0]}{match}"
    return ""


@dataclass
class MlflowStatus:
    name: str
    installed: bool
    version: str
    image: str
    namespace: str
    ready: str
    backend_store: str
    artifact_store: str
    service: str
    in_cluster_url: str
    tracking_url: str
    ui: bool = True


def summarize_mlflow(
    dep: dict[str, Any],
    pods: list[dict[str, Any]],
    services: list[dict[str, Any]],
    routes: list[dict[str, Any]],
    values: dict[str, Any],
    ui_command: str,
) -> MlflowStatus:
    """The seed panel's MLflow fields from the live Deployment, Service and routes, and the release's
    values for the stores (never their credentials)."""
    meta, spec = dep["metadata"], dep.get("spec") or {}
    namespace = str(meta.get("namespace", ""))
    containers = (spec.get("template") or {}).get("spec", {}).get("containers") or []
    server = next(
        (c for c in containers if c.get("name") in ("mlflow", "server")), containers[0] if containers else {}
    )
    running = [
        s.get("image", "")
        for p in pods
        for s in (p.get("status") or {}).get("containerStatuses") or []
        if s.get("name") == server.get("name")
    ]
    image = str(running[0] if running else server.get("image", ""))
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    svc = next(
        (s for s in services if match and (s.get("spec") or {}).get("selector") == match),
        None,
    )
    svc_name = str(svc["metadata"]["name"]) if svc else ""
    port = next((p.get("port") for p in (svc or {}).get("spec", {}).get("ports") or []), 5000)
    status = dep.get("status") or {}
    ready = f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1) or 0)}"
    url = external_url(routes, svc_name) if svc_name else ""
    return MlflowStatus(
        name=str(meta["name"]),
        installed=True,
        version=image_version(image),
        image=image,
        namespace=namespace,
        ready=ready,
        backend_store=describe_backend(values),
        artifact_store=describe_artifacts(values),
        service=svc_name,
        in_cluster_url=f"http://{svc_name}.{namespace}.svc.cluster.local:{port}" if svc_name else "",
        tracking_url=url or ui_command,
        ui=bool((values.get("ui") or {}).get("enabled", True)),
    )
