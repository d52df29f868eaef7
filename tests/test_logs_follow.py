"""`helm-mlops logs -f` never drops output: every line reaches a slow consumer whether the pod finishes
while followed or had already finished, a stream cut after the job finished is said in a line, line
splitting is linear on output without newlines (proved by counting the bytes scanned and the pieces
kept, not by timing), and \\r-only progress output (tqdm) shows as lines."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any, cast

import pytest

from generator.kube import logs
from generator.kube.logs import LineSplitter, LogFollower, format_lines

LINES = 200_000


def _pod(name: str, phase: str) -> dict[str, Any]:
    state = {"terminated": {"exitCode": 0}} if phase in ("Succeeded", "Failed") else {"running": {}}
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": "2026-11-23T12:00:00Z",
            "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
            "labels": {"app.kubernetes.io/name": "training-job"},
        },
        "status": {"phase": phase, "containerStatuses": [{"name": "train", "state": state}]},
    }


def _output(count: int, chunk: int = 4096) -> Iterator[bytes]:
    """`count` numbered lines, cut into chunks regardless of line ends (as an HTTP stream is)."""
    data = b"".join(b"line %d\n" % i for i in range(count))
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def _slow(lines: Iterable[str], every: int = 10_000, pause: float = 0.05) -> list[str]:
    """A consumer much slower than the linger: it pauses `pause` s every `every` lines."""
    out = []
    for n, line in enumerate(lines):
        out.append(line)
        if n % every == 0:
            time.sleep(pause)
    return out


def _expected(count: int) -> list[str]:
    return [f"[j-0-a rank 0] line {i}" for i in range(count)]


def test_a_pod_finishing_while_followed_prints_every_line_to_a_slow_consumer() -> None:
    state = {"listed": 0}

    def list_pods() -> list[dict[str, Any]]:
        state["listed"] += 1  # the pod finishes during the follow
        return [_pod("j-0-a", "Running" if state["listed"] < 3 else "Succeeded")]

    def stream(name: str, follow: bool) -> Iterable[bytes]:
        assert follow
        return _output(LINES)  # the kubelet closes the stream when the container exits

    def job_state() -> str:
        return "done" if state["listed"] >= 3 else "running"

    follower = LogFollower(
        list_pods, stream, job_state, "training-job", all_pods=False, follow=True, poll=0.01, linger=0.05
    )
    assert _slow(follower.lines()) == _expected(LINES)


def test_an_already_finished_pod_prints_every_line_to_a_slow_consumer() -> None:
    def stream(name: str, follow: bool) -> Iterable[bytes]:
        assert not follow  # a finished pod is read to its end
        return _output(LINES)

    follower = LogFollower(
        lambda: [_pod("j-0-a", "Succeeded")],
        stream,
        lambda: "done",
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.01,
        linger=0.01,
    )
    assert _slow(follower.lines()) == _expected(LINES)


def test_the_linger_waits_for_queued_lines_then_says_the_stream_was_cut() -> None:
    release = threading.Event()

    def stream(name: str, follow: bool) -> Iterator[bytes]:
        yield from _output(50_000)
        release.wait(30)  # then the stream hangs open (a node gone)

    follower = LogFollower(
        lambda: [_pod("j-0-a", "Running")],
        stream,
        lambda: "done",
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.01,
        linger=0.05,
    )
    try:
        out = _slow(follower.lines(), every=5_000)
    finally:
        release.set()
    assert out[:-1] == _expected(50_000)
    assert out[-1].startswith("[j-0-a rank 0] (log stream still open and silent 0.05s after the job finished")


def test_a_consumer_pausing_longer_than_the_linger_loses_nothing() -> None:
    # The linger counts only time spent waiting on an empty queue, never the consumer's time.
    def stream(name: str, follow: bool) -> Iterable[bytes]:
        return _output(1000, chunk=100)

    follower = LogFollower(
        lambda: [_pod("j-0-a", "Running")],
        stream,
        lambda: "done",
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.01,
        linger=0.02,
    )
    assert _slow(follower.lines(), every=100, pause=0.1) == _expected(1000)


def test_inference_pods_that_never_finish_are_followed_until_the_consumer_stops() -> None:
    release = threading.Event()

    def stream(name: str, follow: bool) -> Iterator[bytes]:
        yield from _output(3000)
        release.wait(30)

    follower = LogFollower(
        lambda: [_pod("j-0-a", "Running")],
        stream,
        lambda: "running",  # workload_follower's state: a server never finishes
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.01,
        linger=0.01,
    )
    lines = cast(Generator[str, None, None], follower.lines())
    got = [next(lines) for _ in range(3000)]
    assert got == _expected(3000)
    lines.close()
    release.set()


# Line splitting -------------------------------------------------------------------------------------


class _CountingEol:
    """Stands in for logs._EOL and counts the bytes each scan covers."""

    def __init__(self) -> None:
        self.scanned = 0
        self.scans = 0

    def finditer(self, chunk: bytes, pos: int = 0) -> Iterator[re.Match[bytes]]:
        self.scanned += len(chunk) - pos
        self.scans += 1
        return re.compile(rb"\r\n|\r|\n").finditer(chunk, pos)


@pytest.mark.parametrize("size_mb", [1, 8])
def test_splitting_a_line_without_newlines_scans_each_byte_once_and_never_concatenates(
    monkeypatch: pytest.MonkeyPatch, size_mb: int
) -> None:
    counter = _CountingEol()
    monkeypatch.setattr(logs, "_EOL", counter)
    chunks = [bytes([65 + n % 26]) * 4096 for n in range(size_mb * 256)]
    splitter = LineSplitter()
    for n, chunk in enumerate(chunks):
        assert splitter.feed(chunk) == []
        # the unfinished line is the chunks themselves, kept as they came: nothing copied per chunk
        assert len(splitter.parts) == n + 1 and splitter.parts[-1] is chunk
    # one scan per chunk, each byte scanned exactly once: the work is linear in the output
    assert (counter.scans, counter.scanned) == (len(chunks), size_mb * 2**20)
    assert splitter.feed(b"!\nnext") == [b"".join(chunks) + b"!"]  # one join makes the line
    assert splitter.parts == [b"next"]
    assert counter.scanned == size_mb * 2**20 + 6
    assert splitter.finish() == b"next"


def test_a_long_line_among_short_ones_is_scanned_once() -> None:
    counter = _CountingEol()
    data = b"a\n" + b"x" * 5_000_000 + b"\nb\r\nc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logs, "_EOL", counter)
        pod = _pod("j-0-a", "Running")
        out = list(format_lines(pod, (data[i : i + 4096] for i in range(0, len(data), 4096))))
    assert [len(line) for line in out] == [
        len("[j-0-a rank 0] a"),
        len("[j-0-a rank 0] ") + 5_000_000,
        16,
        16,
    ]
    assert counter.scanned == len(data)


def test_carriage_returns_end_lines_for_display() -> None:
    pod = _pod("j-0-a", "Running")
    # tqdm: each redraw starts with \r; the bar closes with \n. \r\n is one end, even split across chunks.
    chunks = [
        b"\r  0%|",
        b"\r 50%|#####",
        b"\r100%|##########|\n",
        b"done\r",
        b"\nnext\r\n",
        b"\r\n",
        b"tail",
    ]
    assert [line.removeprefix("[j-0-a rank 0] ") for line in format_lines(pod, chunks)] == [
        "  0%|",
        " 50%|#####",
        "100%|##########|",
        "done",
        "next",
        "",  # an empty line written as \r\n is still a line
        "tail",
    ]
    splitter = LineSplitter()
    assert splitter.feed(b"a\r") == [b"a"]  # shown at once, not when the \n comes
    assert splitter.feed(b"\nb\n") == [b"b"]


# Containers restarted in place (restartPolicy OnFailure) -----------------------------------------------


def _run(phase: str, restart: int, state: str) -> dict[str, Any]:
    pod = _pod("j-0-a", phase)
    status: dict[str, Any] = {"name": "train", "restartCount": restart, "state": {state: {}}}
    if state == "waiting":
        status["lastState"] = {"terminated": {"exitCode": 1}}
    pod["status"]["containerStatuses"] = [status]
    return pod


def test_a_container_restarted_in_place_is_followed_into_its_next_run() -> None:
    listings = iter(
        [
            [_run("Running", 0, "running")],
            [_run("Running", 0, "waiting")],  # run 0 ended, back-off before run 1
            [_run("Running", 1, "running")],
        ]
    )
    final = [_run("Succeeded", 1, "terminated")]
    opened: list[tuple[str, bool]] = []

    def stream(name: str, follow: bool) -> Iterable[bytes]:
        opened.append((name, follow))
        run = len(opened) - 1  # the log API serves the container's current run
        return [b"run %d: epoch 1\n" % run, b"run %d: exit\n" % run]

    def list_pods() -> list[dict[str, Any]]:
        return next(listings, final)

    state = {"calls": 0}

    def job_state() -> str:
        state["calls"] += 1
        return "done" if state["calls"] > 4 else "running"

    follower = LogFollower(
        list_pods, stream, job_state, "training-job", all_pods=False, follow=True, poll=0.02, linger=0.05
    )
    assert list(follower.lines()) == [
        "[j-0-a rank 0] run 0: epoch 1",
        "[j-0-a rank 0] run 0: exit",
        "[j-0-a rank 0] run 1: epoch 1",
        "[j-0-a rank 0] run 1: exit",
    ]
    assert opened == [("j-0-a", True), ("j-0-a", True)]


def test_runs_of_a_container_missed_between_two_looks_are_said() -> None:
    listings = iter([[_run("Running", 0, "running")], [_run("Running", 3, "running")]])
    final = [_run("Succeeded", 3, "terminated")]
    count = {"n": 0}

    def stream(name: str, follow: bool) -> Iterable[bytes]:
        count["n"] += 1
        return [b"a run\n"]

    follower = LogFollower(
        lambda: next(listings, final),
        stream,
        lambda: "done" if count["n"] >= 2 else "running",
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.02,
    )
    assert list(follower.lines()) == [
        "[j-0-a rank 0] a run",
        "[j-0-a rank 0] (2 earlier run(s) of its container not read here: "
        "`kubectl logs --previous j-0-a` has the one before this)",
        "[j-0-a rank 0] a run",
    ]


def test_a_stream_the_server_closes_while_the_container_runs_is_said() -> None:
    state = {"listed": 0}

    def list_pods() -> list[dict[str, Any]]:
        state["listed"] += 1
        return [_pod("j-0-a", "Running" if state["listed"] < 40 else "Succeeded")]

    follower = LogFollower(
        list_pods,
        lambda name, follow: [b"before the cut\n"],  # ends although the container runs on
        lambda: "done" if state["listed"] >= 40 else "running",
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.01,
        linger=0.05,
    )
    assert list(follower.lines()) == [
        "[j-0-a rank 0] before the cut",
        "[j-0-a rank 0] (log stream closed by the server while the container still runs: "
        "later output is not shown here; run `logs -f` again)",
    ]
