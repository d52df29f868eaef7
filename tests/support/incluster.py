"""The MLflow chart's in-cluster PostgreSQL and MinIO StatefulSets, run on this machine from their render.

PostgreSQL: the container renders no command (the official image's entrypoint runs); what that entrypoint
does with the rendered environment is done here with Debian's PostgreSQL binaries: initdb of $PGDATA
(which must lie on the data volume) with $POSTGRES_USER and $POSTGRES_PASSWORD, the server, then
$POSTGRES_DB created for that user. The volumes are temp dirs (tests/support/podrun.py), the Service
port (5432) a free local one. MinIO: the rendered args and env run with a `minio` binary."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.podrun import LocalPod
from tests.support.servers import postgres_bin, stop


def _run_as_postgres(paths: list[Path]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, hand it the directories and run it as `postgres`."""
    if os.geteuid() != 0:
        return []
    pw = pwd.getpwnam("postgres")
    for path in paths:
        os.chown(path, pw.pw_uid, pw.pw_gid)
        for parent in path.parents:  # it must be able to reach them
            if str(parent).startswith(("/tmp", "/var/tmp")) and parent != Path("/tmp"):
                os.chmod(parent, os.stat(parent).st_mode | 0o005)
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def postgres_container(
    pod: LocalPod, spec: dict[str, Any], container: dict[str, Any], port: int
) -> Iterator[dict[str, str]]:
    """The StatefulSet's PostgreSQL on 127.0.0.1:port, from the rendered env and volume mounts; yields
    that env (mount paths mapped). `pod.mounts` must map the volumeClaimTemplate's mount path."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found: run `make system-deps`")
    argv, env = pod.command(spec, container)
    assert argv == [], f"the PostgreSQL container renders a command: {argv} (the image's entrypoint runs)"
    pgdata, socket_dir = Path(env["PGDATA"]), pod.mounts["/var/run/postgresql"]
    pgdata.mkdir(parents=True, exist_ok=True)
    pwfile = pod.root / "pwfile"
    pwfile.write_text(env["POSTGRES_PASSWORD"] + "\n")
    run_as = _run_as_postgres([pgdata, socket_dir, pwfile, pod.mounts["/tmp"]])
    initdb = [*run_as, str(bindir / "initdb"), "-D", str(pgdata), "-U", env["POSTGRES_USER"]]
    subprocess.run(
        [*initdb, "--pwfile", str(pwfile), "-A", "scram-sha-256", "--no-sync"],
        check=True,
        capture_output=True,
    )
    pwfile.unlink()
    log = pod.root / "postgresql.log"
    server = [*run_as, str(bindir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(
        [*server, "-k", str(socket_dir), "-c", "fsync=off"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        probe = {**env, "PGPORT": str(port)}
        deadline = time.monotonic() + 60
        while subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1"], env=probe).returncode:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"postgres did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        if env["POSTGRES_DB"] != "postgres":
            psql = shutil.which("psql") or str(bindir / "psql")
            connect = [psql, "-h", "127.0.0.1", "-p", str(port), "-U", env["POSTGRES_USER"], "-d", "postgres"]
            subprocess.run(
                [*connect, "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{env["POSTGRES_DB"]}"'],
                env={**os.environ, "PGPASSWORD": env["POSTGRES_PASSWORD"]},
                check=True,
                capture_output=True,
            )
        yield env
    finally:
        stop(proc)
