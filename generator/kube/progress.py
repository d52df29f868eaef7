"""What an install or upgrade is waiting for, and why it failed.

While helm runs, a `Watcher` polls the release's pods, Jobs and the namespace's events. `waiting` turns
them into one line per object that is not ready yet, with the reason the cluster gives (FailedScheduling,
ImagePullBackOff, a failing probe); `failing` picks the pods that failed or cannot start. The watcher
keeps the last report of each failing pod (events and last log lines) because a rollback on failure
deletes those pods before the user could look at them. The decisions are pure functions over API
objects; the polling is a thin thread over `Kube`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from generator.kube.client import Kube

BAD_WAITING = {
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
LOG_LINES = 20


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def events_for(events: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    mine = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == kind
        and (e.get("involvedObject") or {}).get("name") == name
    ]
    return sorted(mine, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def event_line(event: dict[str, Any]) -> str:
    count = int(event.get("count") or 1)
    times = f" (x{count})" if count > 1 else ""
    message = " ".join(str(event.get("message") or "").split())
    return f"{event.get('type', 'Normal')} {event.get('reason', '')}{times}: {message}"


def _warning(events: list[dict[str, Any]]) -> str:
    warnings = [e for e in events if e.get("type") == "Warning"]
    return event_line(warnings[-1]).split(" ", 1)[1] if warnings else ""


def pod_reason(pod: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Why a pod is not ready, in the words the cluster uses."""
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason") and waiting["reason"] != "ContainerCreating":
            message = " ".join(str(waiting.get("message") or "").split())
            return f"{cs.get('name')}: {waiting['reason']}" + (f" ({message[:160]})" if message else "")
        if terminated and terminated.get("exitCode", 0) != 0:
            return f"{cs.get('name')}: exited {terminated.get('exitCode')} ({terminated.get('reason', '')})"
    warning = _warning(events_for(events, "Pod", _name(pod)))
    if warning:
        return warning
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("reason"):
            return f"{cond['type']}: {cond['reason']}" + (
                f" ({cond['message']})" if cond.get("message") else ""
            )
    return str(status.get("phase") or "Pending")


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_failed(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason") in BAD_WAITING:
            return True
        terminated = state.get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            return True
    return False


def is_training(obj: dict[str, Any]) -> bool:
    return "helm-mlops.io/training-job" in (obj["metadata"].get("labels") or {})


def waiting(
    pods: list[dict[str, Any]], jobs: list[dict[str, Any]], events: list[dict[str, Any]]
) -> list[str]:
    """One line per pod or Job of the release that is not ready or not done, with the reason. Training
    Jobs and their pods are runs, not part of the stack's health: they are left out."""
    lines = []
    for job in sorted(jobs, key=_name):
        if is_training(job):
            continue
        status = job.get("status") or {}
        done = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if not done:
            hook = ((job["metadata"].get("annotations") or {}).get("helm.sh/hook") or "").split(",")[0]
            what = f"hook job {_name(job)} ({hook})" if hook else f"job {_name(job)}"
            warning = _warning(events_for(events, "Job", _name(job)))
            lines.append(f"{what}: running" + (f", {warning}" if warning else ""))
    for pod in sorted(pods, key=_name):
        if is_training(pod) or pod_ready(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        lines.append(f"pod {_name(pod)}: {pod_reason(pod, events)}")
    return lines


@dataclass
class PodReport:
    """A failing pod as it was last seen: why, its warning events and its last log lines."""

    pod: str
    reason: str
    events: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    owner: str = ""  # the ReplicaSet, Job or StatefulSet the pod belongs to

    def lines(self, alike: int = 0) -> list[str]:
        more = f" (and {alike} more pod{'s' if alike > 1 else ''} of {self.owner} like it)" if alike else ""
        out = [f"pod {self.pod}: {self.reason}{more}"]
        out += [f"  event: {e}" for e in self.events[-8:]]
        if self.logs:
            out.append(f"  last {len(self.logs)} log lines:")
            out += [f"    {line}" for line in self.logs]
        return out


def failing(pods: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[PodReport]:
    """Reports (without logs) for the pods that failed or cannot start, training pods excluded."""
    out = []
    for pod in sorted(pods, key=_name):
        if is_training(pod):
            continue
        mine = events_for(events, "Pod", _name(pod))
        stuck = any(e.get("type") == "Warning" for e in mine) and not pod_ready(pod)
        if pod_failed(pod) or stuck:
            owners = pod["metadata"].get("ownerReferences") or [{}]
            out.append(
                PodReport(
                    _name(pod),
                    pod_reason(pod, events),
                    [event_line(e) for e in mine if e.get("type") == "Warning"],
                    owner=str(owners[0].get("name") or ""),
                )
            )
    return out


def summarize_reports(reports: list[PodReport], mentioned: str = "", most: int = 4) -> list[str]:
    """The reports to show: one pod per owner and reason (a crash-looping Deployment makes many), those
    named in `mentioned` (helm's error) first, at most `most` of them."""
    groups: dict[tuple[str, str], list[PodReport]] = {}
    for report in reports:
        groups.setdefault((report.owner or report.pod, report.reason), []).append(report)
    ordered = sorted(
        groups.values(),
        key=lambda g: (
            not any(r.pod in mentioned or (r.owner and r.owner in mentioned) for r in g),
            g[0].pod,
        ),
    )
    lines = []
    for group in ordered[:most]:
        shown = next((r for r in reversed(group) if r.logs), group[-1])
        lines += shown.lines(alike=len(group) - 1)
    if len(ordered) > most:
        lines.append(f"... and {len(ordered) - most} more failing group(s) of pods")
    return lines


# Polling -------------------------------------------------------------------------------------------


class Watcher:
    """Polls a release's pods, Jobs and events every `interval` seconds in a thread; `on_update` gets
    the waiting lines each round (for a live display); `reports` keeps the last state of each failing pod."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        release: str,
        on_update: Callable[[list[str]], None] | None = None,
        interval: float = 1.5,
    ) -> None:
        self.kube, self.namespace, self.release = kube, namespace, release
        self.on_update, self.interval = on_update, interval
        self.reports: dict[str, PodReport] = {}
        self.last: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="helm-mlops-watch", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a watcher never breaks the install it watches
                self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        core, batch = self.kube.core(), self.kube.batch()
        selector = f"app.kubernetes.io/instance={self.release}"
        pods = self.kube.items("list pods", core.list_namespaced_pod, self.namespace, label_selector=selector)
        jobs = self.kube.items(
            "list jobs", batch.list_namespaced_job, self.namespace, label_selector=selector
        )
        events = self.kube.items("list events", core.list_namespaced_event, self.namespace)
        self.last = waiting(pods, jobs, events)
        tails = 0
        for report in failing(pods, events):
            seen = self.reports.get(report.pod)
            if seen is not None and seen.logs:
                report.logs = seen.logs
            elif tails < 4:  # a crash-looping Deployment makes many pods: a few log reads per round
                tails += 1
                report.logs = self._tail(report.pod)
            self.reports[report.pod] = report
        if self.on_update is not None:
            self.on_update(self.last)

    def _tail(self, pod: str, lines: int = LOG_LINES) -> list[str]:
        try:
            text = self.kube.call(
                f"logs of {pod}",
                self.kube.core().read_namespaced_pod_log,
                pod,
                self.namespace,
                tail_lines=lines,
                _request_timeout=5,
            )
        except Exception:  # no logs yet (the container never started): the events say why
            return []
        return [line for line in str(text or "").splitlines() if line.strip()][-lines:]


class TestLogCollector(Watcher):
    """Reads the logs of a release's `helm test` pods as they finish: helm deletes a passed test's pod
    (hook-delete-policy hook-succeeded) before Helm 3's `helm test --logs` can read it."""

    def __init__(self, kube: Kube, namespace: str, release: str, interval: float = 0.5) -> None:
        super().__init__(kube, namespace, release, interval=interval)
        self.logs: dict[str, list[str]] = {}

    def poll(self) -> None:
        pods = self.kube.items(
            "list test pods",
            self.kube.core().list_namespaced_pod,
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.release}",
        )
        for pod in pods:
            hook = (pod["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
            name = _name(pod)
            done = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if "test" in hook.split(",") and done and name not in self.logs:
                self.logs[name] = self._tail(name, lines=200)

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.poll()  # the last ones, if helm has not deleted them yet
        super().__exit__(*exc)
