"""`helm-mlops logs RELEASE JOB`: the training pods' logs from the start, each line prefixed with its
pod and rank; with -f it keeps following and picks up pods that appear later (retries, the other
nodes of a distributed job, the next trials of a sweep) until the job has finished.

Pod selection, rank and line formatting are pure functions (tested with recorded API objects); the
streaming runs one thread per pod over the Kubernetes client's log stream."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from generator.errors import UserError
from generator.kube.client import Kube, api_message
from generator.kube.status import TRAINING_LABEL, job_phase

RANK_KEYS = (
    ("annotation", "batch.kubernetes.io/job-completion-index"),  # Indexed Job: node rank / trial
    ("label", "training.kubeflow.org/replica-index"),  # PyTorchJob
    ("label", "jobset.sigs.k8s.io/job-index"),  # TrainJob (JobSet)
)


def pod_rank(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    for where, key in RANK_KEYS:
        value = (meta.get("annotations" if where == "annotation" else "labels") or {}).get(key)
        if value is not None:
            role = (meta.get("labels") or {}).get("training.kubeflow.org/replica-type", "")
            return f"{role.lower()}-{value}" if role else str(value)
    return "0"


def matches_job(obj: dict[str, Any], job: str) -> bool:
    """A pod (or Job) belongs to JOB given as the chart alias, the training job's name or the Job's name."""
    labels = obj["metadata"].get("labels") or {}
    return job in (
        obj["metadata"]["name"] if obj.get("kind") == "Job" else None,
        labels.get("app.kubernetes.io/name"),
        labels.get(TRAINING_LABEL),
        labels.get("batch.kubernetes.io/job-name"),
        labels.get("helm-mlops.io/component-name"),  # set on a workload's pods by workload_follower
    )


def select_pods(pods: list[dict[str, Any]], job: str, all_pods: bool) -> list[dict[str, Any]]:
    """The job's pods oldest first; without all_pods only the newest attempt of the first rank."""
    mine = [p for p in pods if matches_job(p, job)]
    mine.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
    if all_pods or not mine:
        return mine
    ranks = sorted({pod_rank(p) for p in mine}, key=lambda r: (len(r), r))
    first = [p for p in mine if pod_rank(p) == ranks[0]]
    return first[-1:]


def prefix(pod: dict[str, Any]) -> str:
    """`[pod rank N]` for training pods, `[pod]` for servers."""
    meta = pod["metadata"]
    ranked = any(
        key in (meta.get("annotations" if where == "annotation" else "labels") or {})
        for where, key in RANK_KEYS
    )
    if not ranked and TRAINING_LABEL not in (meta.get("labels") or {}):
        return f"[{meta['name']}]"
    return f"[{pod['metadata']['name']} rank {pod_rank(pod)}]"


# A line ends at \n, \r\n or a lone \r: progress bars (tqdm) redraw themselves with \r, and each
# redraw shows as a line as soon as it is written instead of once a \n comes.
_EOL = re.compile(rb"\r\n|\r|\n")


class LineSplitter:
    """Splits a byte stream into lines in time linear in its length, however long a line is: each
    chunk is scanned once, from where the previous line ended, and the pieces of an unfinished line
    are kept as they came (never concatenated) until its end joins them once."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []  # the unfinished line, in pieces
        self._after_cr = False  # the last chunk ended with \r: a \n starting the next one belongs to it

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        pos = 1 if self._after_cr and chunk[:1] == b"\n" else 0
        lines = []
        for match in _EOL.finditer(chunk, pos):
            piece = chunk[pos : match.start()]
            line = b"".join([*self.parts, piece]) if self.parts else piece
            self.parts = []
            pos = match.end()
            if line or match.group() != b"\r":  # an empty \r segment is a redraw's start, not a line
                lines.append(line)
        if pos < len(chunk):
            self.parts.append(chunk if pos == 0 else chunk[pos:])
        self._after_cr = chunk.endswith(b"\r")
        return lines

    def finish(self) -> bytes | None:
        """What is left after the last line end, if anything."""
        if not self.parts:
            return None
        rest, self.parts = b"".join(self.parts), []
        return rest


def format_lines(pod: dict[str, Any], chunks: Iterable[bytes]) -> Iterator[str]:
    """Split a log byte stream into prefixed lines (a line may arrive in several chunks)."""
    head = prefix(pod)
    splitter = LineSplitter()
    for chunk in chunks:
        for line in splitter.feed(chunk):
            yield f"{head} {line.decode(errors='replace')}"
    rest = splitter.finish()
    if rest is not None:
        yield f"{head} {rest.decode(errors='replace')}"


def finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def started(pod: dict[str, Any]) -> bool:
    """Logs exist once a container has started (running or terminated)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def restarts(pod: dict[str, Any]) -> int:
    """Which run of the container the log API serves now: an OnFailure restart starts a new log."""
    return sum(int(s.get("restartCount") or 0) for s in _statuses(pod))


def has_log(pod: dict[str, Any]) -> bool:
    """A run of the container has a log: it started, or it ended and the next waits (CrashLoopBackOff),
    when the log API serves the run that ended."""
    return started(pod) or any("terminated" in (s.get("lastState") or {}) for s in _statuses(pod))


def running(pod: dict[str, Any]) -> bool:
    return any("running" in (s.get("state") or {}) for s in _statuses(pod))


QUEUE_LINES = 10_000  # lines read ahead of the consumer; readers wait while it is full


@dataclass(frozen=True)
class _End:
    """A reader's last item: its pod's stream ended."""

    name: str


class LogFollower:
    """Streams the logs of a release's training pods. `list_pods()` returns pod dicts, `stream(name,
    follow)` an iterable of byte chunks, `job_state()` "missing", "running" or "done"; injected so the
    follow logic runs against recorded responses in tests and the Kubernetes API in use."""

    def __init__(
        self,
        list_pods: Callable[[], list[dict[str, Any]]],
        stream: Callable[[str, bool], Iterable[bytes]],
        job_state: Callable[[], str],
        job: str,
        *,
        all_pods: bool,
        follow: bool,
        poll: float = 2.0,
        linger: float = 10.0,
    ) -> None:
        self.list_pods, self.stream, self.job_state = list_pods, stream, job_state
        self.job, self.all_pods, self.follow, self.poll = job, all_pods, follow, poll
        # How long a stream may stay open after the job finished: a kubelet closes it when the
        # container exits, but a stream that hangs (a node gone, a simulated kubelet) must not.
        self.linger = linger

    def _reader(self, pod: dict[str, Any], key: str, follow: bool, out: queue.Queue[str | _End]) -> None:
        try:
            for line in format_lines(pod, self.stream(pod["metadata"]["name"], follow)):
                out.put(line)  # blocks while the queue is full: the consumer sets the pace, nothing drops
        except Exception as exc:
            out.put(f"{prefix(pod)} (log stream ended: {api_message(exc)})")
        finally:
            out.put(_End(key))

    def lines(self) -> Iterator[str]:
        out: queue.Queue[str | _End] = queue.Queue(maxsize=QUEUE_LINES)
        # A stream per run of a pod's container (pod name and restart count): a container restarted
        # in place (restartPolicy OnFailure) has a new log, read as the pod's next stream.
        seen: dict[str, dict[str, Any]] = {}
        last_run: dict[str, int] = {}  # pod name -> the latest run read
        reading: set[str] = set()  # streams that have not ended
        followed: set[str] = set()  # ... of those, the streams opened with follow (they can hang open)
        closed: dict[str, float] = {}  # followed streams that ended, and when
        first = True
        # Following ends once the job finished and every stream ended. A followed stream still open
        # then is given `linger` seconds of silence (time spent waiting on an empty queue, never the
        # consumer's time) before it is cut, which is said in a line. A stream read without follow
        # (a finished pod) is always read to its end: its request has a timeout.
        quiet_since: float | None = None
        while True:
            pods = select_pods(self.list_pods(), self.job, self.all_pods)
            # Following a job whose pods are not created yet (suspended, queued) waits for them.
            if first and not pods and (not self.follow or self.job_state() == "missing"):
                raise UserError(
                    f"no pods of {self.job!r} in this release",
                    field="COMPONENT",
                    hint="pass a training job, inference service or other component as "
                    "`helm-mlops status` lists it (or its chart alias)",
                )
            first = False
            # A followed stream ends when its container run ends. One that ended while the same run
            # still goes on `linger` seconds later was closed by the server: said, never silent.
            for pod in pods:
                key = f"{pod['metadata']['name']}#{restarts(pod)}"
                gone_on = key in closed and running(pod) and not finished(pod)
                if gone_on and time.monotonic() - closed[key] > self.linger:
                    del closed[key]
                    yield (
                        f"{prefix(pod)} (log stream closed by the server while the container still "
                        "runs: later output is not shown here; run `logs -f` again)"
                    )
            for pod in pods:
                name, run = pod["metadata"]["name"], restarts(pod)
                key = f"{name}#{run}"
                if key in seen or not has_log(pod) or run < last_run.get(name, 0):
                    continue
                missed = run - last_run[name] - 1 if name in last_run else run
                if missed > 0:
                    yield (
                        f"{prefix(pod)} ({missed} earlier run(s) of its container not read here: "
                        f"`kubectl logs --previous {name}` has the one before this)"
                    )
                seen[key], last_run[name] = pod, run
                reading.add(key)
                # Only a running container is followed; a finished one is read to its end.
                follow = self.follow and running(pod) and not finished(pod)
                if follow:
                    followed.add(key)
                threading.Thread(target=self._reader, args=(pod, key, follow, out), daemon=True).start()
            deadline = time.monotonic() + self.poll
            while reading and time.monotonic() < deadline:
                try:
                    item = out.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if isinstance(item, _End):
                    reading.discard(item.name)
                    if item.name in followed:
                        followed.discard(item.name)
                        closed[item.name] = time.monotonic()
                    continue
                yield item
                if quiet_since is not None:
                    quiet_since = time.monotonic()
            if not self.follow:
                if not reading:
                    return
                continue
            if reading:
                if reading - followed or self.job_state() != "done":
                    continue
                now = time.monotonic()
                if quiet_since is None:
                    quiet_since = now
                elif now - quiet_since > self.linger and out.empty():
                    for key in sorted(followed):
                        name = seen[key]["metadata"]["name"]
                        yield (
                            f"{prefix(seen[key])} (log stream still open and silent {self.linger:g}s "
                            "after the job finished: stopped following it; "
                            f"`kubectl logs {name}` shows whatever came later)"
                        )
                    return
                continue
            # Done once the job finished and no pod is left unread (a pod that finished between two
            # polls still gets printed; one that never started has no log).
            if self.job_state() == "done" and all(
                f"{p['metadata']['name']}#{restarts(p)}" in seen or not has_log(p)
                for p in select_pods(self.list_pods(), self.job, self.all_pods)
            ):
                return
            time.sleep(self.poll)  # no stream open: wait for pods to start, without spinning


def follower(
    kube: Kube, namespace: str, release: str, job: str, *, follow: bool, all_pods: bool
) -> LogFollower:
    """Logs of a training job, or else of a Deployment/StatefulSet of the release (an inference
    service, MLflow, its database), whichever `job` names."""
    core = kube.core()
    training = kube.items(
        f"list pods of {release} in namespace {namespace}",
        core.list_namespaced_pod,
        namespace,
        label_selector=f"app.kubernetes.io/instance={release},{TRAINING_LABEL}",
    )
    if not any(matches_job(p, job) for p in training):
        from generator.kube.status import match_workloads, workloads

        objs = workloads(kube, namespace, release)
        found = match_workloads(objs, job)
        if found:
            return workload_follower(kube, namespace, found, job, follow=follow, all_pods=all_pods)
        jobs = kube.items(
            f"list jobs of {release} in namespace {namespace}",
            kube.batch().list_namespaced_job,
            namespace,
            label_selector=f"app.kubernetes.io/instance={release},{TRAINING_LABEL}",
        )
        if not any(matches_job(j, job) for j in jobs):  # not a job whose pods are yet to come either
            names = sorted(
                {str((p["metadata"].get("labels") or {}).get(TRAINING_LABEL)) for p in training + jobs}
                | {str(o["metadata"]["name"]) for o in objs}
            )
            if not names:
                raise UserError(
                    f"nothing of release {release} in namespace {namespace}",
                    field="RELEASE",
                    hint=f"check the name and the namespace: `helm list -n {namespace}` (or -A)",
                )
            raise UserError(
                f"release {release} has no training job or component {job!r}",
                field="COMPONENT",
                hint=f"name one of: {', '.join(names)} (or a chart alias in the stack, e.g. mlflow)",
            )
    return training_follower(kube, namespace, release, job, follow=follow, all_pods=all_pods)


def workload_follower(
    kube: Kube,
    namespace: str,
    found: list[dict[str, Any]],
    name: str,
    *,
    follow: bool,
    all_pods: bool,
) -> LogFollower:
    """Logs of the pods of Deployments/StatefulSets: newest pod first (all with all_pods); following
    never ends by itself (a server runs until stopped)."""
    from generator.kube.status import pods_of

    core = kube.core()

    def list_pods() -> list[dict[str, Any]]:
        pods = kube.items(f"list pods in namespace {namespace}", core.list_namespaced_pod, namespace)
        mine = [p for w in found for p in pods_of(w, pods) if not p["metadata"].get("deletionTimestamp")]
        for pod in mine:  # every pod of the workload counts as `name`
            pod["metadata"].setdefault("labels", {})["helm-mlops.io/component-name"] = name
        return mine

    def state() -> str:
        return "running" if list_pods() else "missing"

    return LogFollower(list_pods, _streamer(kube, namespace), state, name, all_pods=all_pods, follow=follow)


def _streamer(kube: Kube, namespace: str) -> Callable[[str, bool], Iterable[bytes]]:
    core = kube.core()

    def stream(name: str, follow_it: bool) -> Iterable[bytes]:
        response: Any = kube.call(
            f"logs of pod {name}",
            core.read_namespaced_pod_log,
            name,
            namespace,
            follow=follow_it,
            _preload_content=False,
            _request_timeout=None if follow_it else kube.timeout,
        )
        return response.stream(4096)  # type: ignore[no-any-return]

    return stream


def training_follower(
    kube: Kube, namespace: str, release: str, job: str, *, follow: bool, all_pods: bool
) -> LogFollower:
    core, batch = kube.core(), kube.batch()
    selector = f"app.kubernetes.io/instance={release},{TRAINING_LABEL}"

    def list_pods() -> list[dict[str, Any]]:
        return kube.items(
            f"list pods of {release} in namespace {namespace}",
            core.list_namespaced_pod,
            namespace,
            label_selector=selector,
        )

    stream = _streamer(kube, namespace)

    def job_state() -> str:
        jobs = [
            j
            for j in kube.items(
                f"list jobs of {release} in namespace {namespace}",
                batch.list_namespaced_job,
                namespace,
                label_selector=selector,
            )
            if matches_job(j, job)
        ]
        if jobs:
            return "done" if all(job_phase(j) in ("Complete", "Failed") for j in jobs) else "running"
        # PyTorchJob and TrainJob pods belong to no Job of ours: done when every pod has finished.
        pods = select_pods(list_pods(), job, all_pods=True)
        if not pods:
            return "missing"
        return "done" if all(finished(p) for p in pods) else "running"

    return LogFollower(list_pods, stream, job_state, job, all_pods=all_pods, follow=follow)
