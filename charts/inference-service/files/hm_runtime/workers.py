"""--workers N: N processes serve one port, so a pod given several CPUs uses them all.

The supervisor (the process the container starts) binds the socket, loads the model once where its
format survives fork (scikit-learn pickles and joblib files: plain Python objects and numpy arrays,
shared copy-on-write), then forks the workers. ONNX Runtime sessions, TorchScript, Keras and MLflow
models keep thread pools and library state that do not survive fork: each worker loads those itself.

Each worker is a whole runtime (its own event loop and batcher) accepting from the shared socket.
- /metrics: prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, a private directory), so
  whichever worker answers a scrape reports counters and histograms summed over all workers, dead ones
  included; process CPU and memory are summed over the supervisor and its workers.
- Readiness: a worker answers ready only once every worker has loaded (one shared byte per worker).
  A worker that dies is replaced; meanwhile the pod stays ready as long as another worker serves.
- SIGTERM (or SIGINT) is passed to every worker, which drains its requests as a single runtime does;
  the supervisor exits once all have. A worker that cannot start on the device asked for (exit 2) stops
  them all with status 2.

Model monitoring (--reference) and --feedback keep their windows and remembered predictions in one
process, so they run with one worker."""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("hm_runtime")

# The formats a supervisor loads before forking (see the module's docstring).
PRELOADED = ("sklearn", "joblib")
LOADING, READY, REPLACING = 0, 1, 2
# The libraries' own thread pools: one thread per worker, the workers are the parallelism.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its CPU affinity, capped by the cgroup's CPU quota (cgroup v2
    cpu.max or v1 cpu.cfs_quota_us) rounded down, at least 1."""
    cpus = len(os.sched_getaffinity(0))
    quota: float | None = None
    try:
        limit, period = (cgroup / "cpu.max").read_text().split()[:2]
        if limit != "max":
            quota = int(limit) / int(period)
    except (OSError, ValueError):
        try:
            limit = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
            if int(limit) > 0:
                quota = int(limit) / int(period)
        except (OSError, ValueError):
            pass
    if quota is not None:
        cpus = min(cpus, math.floor(quota))
    return max(1, cpus)


def one_thread_each() -> None:
    """One thread in the numeric libraries' pools (unless set): the workers are the parallelism, and a
    single-threaded OpenMP pool is safe to fork. Before numpy is imported."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def prepare(workers: int) -> None:
    """Before the metrics module is imported in a multi-worker supervisor: the private directory of
    prometheus_client's multiprocess mode (removed when the supervisor ends)."""
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hm-runtime-metrics-")
    log.info("%d workers; metrics summed through %s", workers, os.environ["PROMETHEUS_MULTIPROC_DIR"])


class Slots:
    """One byte per worker, shared by all: LOADING, READY or REPLACING (a replacement loading)."""

    def __init__(self, count: int) -> None:
        self.memory = mmap.mmap(-1, count)  # anonymous and shared: forked workers see the same bytes

    def set(self, index: int, value: int) -> None:
        self.memory[index] = value

    def all_ready(self) -> bool:
        """Ready once no worker is still in its first load and at least one serves."""
        held = self.memory[:]
        return LOADING not in held and READY in held


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


class Processes:
    """process_cpu_seconds_total and process_resident_memory_bytes summed over the supervisor and its
    workers (resident memory counts pages shared copy-on-write once per process)."""

    def __init__(self, supervisor: int) -> None:
        self.supervisor = supervisor
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cpu, rss = 0.0, 0
        for pid in [self.supervisor, *children(self.supervisor)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            cpu += (int(fields[11]) + int(fields[12])) / self.ticks
            rss += int(fields[21]) * self.page
        yield CounterMetricFamily(
            "process_cpu_seconds", "CPU seconds of the supervisor and its workers", value=cpu
        )
        yield GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory of the supervisor and its workers", value=rss
        )


def supervise(
    count: int,
    sock: socket.socket,
    serve: Callable[[int, Slots], int],
    graceful: float,
) -> int:
    """Fork `count` workers, each running `serve(index, slots)` (its exit status), replace any that
    dies, and pass SIGTERM/SIGINT on. The supervisor's status: 0 after a drain, 2 when a worker could
    not start on its device."""

    slots = Slots(count)
    pids: dict[int, int] = {}  # pid -> worker index
    started: dict[int, float] = {}
    stopping = False

    def fork(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 1
            try:
                status = serve(index, slots)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        pids[pid], started[index] = index, time.monotonic()

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        # The supervisor's copy of the listening socket goes first: once the workers close theirs, a new
        # connection is refused at once (as with one worker) instead of waiting, unanswered, in the
        # backlog until the supervisor exits. No worker is forked after this.
        sock.close()
        for pid in list(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return _supervise(count, fork, pids, started, slots, lambda: stopping, stop, graceful)
    finally:
        import shutil

        shutil.rmtree(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)


def _supervise(
    count: int,
    fork: Callable[[int], None],
    pids: dict[int, int],
    started: dict[int, float],
    slots: Slots,
    stopping: Callable[[], bool],
    stop: Callable[[int, Any], None],
    graceful: float,
) -> int:
    from prometheus_client import multiprocess

    for index in range(count):
        fork(index)
    # The supervisor's own gauge files would hold a 0 for hm_model_ready among the live processes.
    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
    status = 0
    deadline: float | None = None
    while pids:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:  # polled, so a signal is acted on at once and a worker stuck draining is killed
            if stopping():
                deadline = deadline or time.monotonic() + graceful + 5
                if time.monotonic() > deadline:
                    for left in pids:
                        os.kill(left, signal.SIGKILL)
            time.sleep(0.1)
            continue
        index = pids.pop(pid)
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        code = os.waitstatus_to_exitcode(raw)
        if stopping():
            continue
        if code == 2:  # the worker could not start on its device: the whole runtime stops, as one would
            status = 2
            stop(signal.SIGTERM, None)
            continue
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        lived = time.monotonic() - started[index]
        log.error("worker %d (pid %d) ended with %s after %.1fs; starting a new one", index, pid, how, lived)
        slots.set(index, REPLACING)
        if lived < 5:  # a worker that dies at once again and again: do not spin
            time.sleep(1)
        if not stopping():
            fork(index)
    return status
