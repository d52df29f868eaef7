"""`helm-mlops status`: each training job of a release with its phase, pods, timing and MLflow run.

The summaries are pure functions of the API objects (as `kubectl get -o json` prints them), so they
are tested with recorded responses; fetching them is a thin layer over the Kubernetes client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TRAINING_LABEL = "helm-mlops.io/training-job"


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


def mlflow_links(pods: list[dict[str, Any]]) -> list[str]:
    """MLflow run links from the launcher's termination messages (and the pods' tracking URI)."""
    links = []
    for pod in pods:
        uri = ""
        for container in (pod.get("spec") or {}).get("containers") or []:
            for env in container.get("env") or []:
                if env.get("name") == "MLFLOW_TRACKING_URI" and "value" in env:
                    uri = str(env["value"]).rstrip("/")
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message") or ""
            try:
                data = json.loads(message)
            except ValueError:
                continue
            run, exp = data.get("mlflowRunId"), data.get("mlflowExperimentId")
            if run and exp:
                trial = f" (trial {data['trial']})" if "trial" in data else ""
                links.append(f"{uri}/#/experiments/{exp}/runs/{run}{trial}")
    return sorted(set(links))


def summarize_job(job: dict[str, Any], pods: list[dict[str, Any]], now: datetime) -> JobSummary:
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
        runs=mlflow_links(pods),
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


def summarize_custom(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime) -> JobSummary:
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
        runs=mlflow_links(pods),
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


def _raw(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    response = call(*args, _preload_content=False, **kwargs)
    return dict(json.loads(response.data))


def collect(kubeconfig: Path, namespace: str, release: str) -> list[JobSummary]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    selector = f"app.kubernetes.io/instance={release},{TRAINING_LABEL}"
    pods = _raw(core.list_namespaced_pod, namespace, label_selector=selector)["items"]
    now = datetime.now(UTC)
    out: list[JobSummary] = []
    for job in _raw(batch.list_namespaced_job, namespace, label_selector=selector)["items"]:
        uid = job["metadata"]["uid"]
        mine = [
            p
            for p in pods
            if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/controller-uid") == uid
        ]
        out.append(summarize_job(job, mine, now))
    for cron in _raw(batch.list_namespaced_cron_job, namespace, label_selector=selector)["items"]:
        out.append(summarize_cronjob(cron))
    for group, version, plural in (
        ("kubeflow.org", "v1", "pytorchjobs"),
        ("trainer.kubeflow.org", "v1alpha1", "trainjobs"),
    ):
        try:
            listed: Any = custom.list_namespaced_custom_object(
                group, version, namespace, plural, label_selector=selector
            )
            items = listed["items"]
        except ApiException as exc:
            if exc.status == 404:  # the operator's CRD is not installed
                continue
            raise
        for obj in items:
            name = obj["metadata"]["labels"][TRAINING_LABEL]
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(TRAINING_LABEL) == name]
            out.append(summarize_custom(obj, mine, now))
    return sorted(out, key=lambda s: (s.kind, s.name))
