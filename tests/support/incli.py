"""The CLI run in-process, as `helm-mlops ARGS` runs it (cli.main: the same exit codes and messages),
for tests that run it many times (property tests): milliseconds a run instead of a new interpreter."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from generator.cli import main


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, cwd: Path | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    handler = signal.getsignal(signal.SIGTERM)  # main() turns SIGTERM into Ctrl-C: undone after
    code: int | str | None = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(old)
        signal.signal(signal.SIGTERM, handler)
    return Result(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())
