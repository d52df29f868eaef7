"""Entrypoint of every MLflow container the chart runs (server, migration, schema wait, gc).

It builds the backend store URI from environment variables that Kubernetes fills from Secrets, so a
password never appears in a pod spec, an argument list or a log line, and it URL-encodes the password,
which shell string concatenation cannot do safely.

Usage: python entrypoint.py {server|upgrade|wait-schema|gc} [extra arguments for mlflow]

Environment:
  MLFLOW_HELM_DB_DIALECT    sqlite | postgresql+psycopg2 | postgresql+psycopg | mysql+pymysql | mysql+mysqldb
  MLFLOW_HELM_SQLITE_PATH   path of the SQLite file (sqlite)
  MLFLOW_HELM_DB_HOST/PORT/NAME/USER/PASSWORD/SSLMODE  (server databases)
  MLFLOW_HELM_DB_WAIT_SECONDS   how long upgrade/wait-schema wait for the database (default 300)
  MLFLOW_HELM_AUTH=basic, MLFLOW_HELM_AUTH_DEFAULT_PERMISSION  configure basic auth (server);
  the admin comes from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD, read by MLflow itself
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        sys.exit(f"entrypoint: environment variable {name} is required")
    return value


def backend_uri(redact: bool = False) -> str:
    dialect = _env("MLFLOW_HELM_DB_DIALECT")
    if dialect == "sqlite":
        path = _env("MLFLOW_HELM_SQLITE_PATH")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return f"sqlite:///{path}"
    user = quote(_env("MLFLOW_HELM_DB_USER"), safe="")
    password = "***" if redact else quote(_env("MLFLOW_HELM_DB_PASSWORD"), safe="")
    host = _env("MLFLOW_HELM_DB_HOST")
    port = _env("MLFLOW_HELM_DB_PORT")
    name = quote(_env("MLFLOW_HELM_DB_NAME"), safe="")
    uri = f"{dialect}://{user}:{password}@{host}:{port}/{name}"
    sslmode = os.environ.get("MLFLOW_HELM_DB_SSLMODE")
    if sslmode:
        uri += f"?sslmode={quote(sslmode, safe='')}"
    return uri


def _log(message: str) -> None:
    print(f"[entrypoint] {message}", flush=True)


def _engine() -> Any:
    import sqlalchemy

    return sqlalchemy.create_engine(backend_uri(), pool_pre_ping=True)


def _wait_until(what: str, check: Callable[[], str | None]) -> None:
    """Call check() until it returns None (ready) or the deadline passes; it returns a reason otherwise."""
    deadline = time.monotonic() + float(os.environ.get("MLFLOW_HELM_DB_WAIT_SECONDS", "300"))
    last_report = 0.0
    while True:
        reason = check()
        if reason is None:
            return
        now = time.monotonic()
        if now > deadline:
            sys.exit(f"entrypoint: gave up waiting for {what}: {reason}")
        if now - last_report > 10:
            _log(f"waiting for {what}: {reason}")
            last_report = now
        time.sleep(2)


def _schema_revision(engine: Any) -> str | None:
    from mlflow.store.db.utils import _get_schema_version

    revision: str | None = _get_schema_version(engine)  # type: ignore[no-untyped-call]
    return revision


def wait_for_database(engine: Any) -> None:
    def reachable() -> str | None:
        try:
            with engine.connect():
                return None
        except Exception as exc:  # any driver error means "not yet"
            return type(exc).__name__ + ": " + str(exc).splitlines()[0]

    _wait_until(f"the database at {backend_uri(redact=True)}", reachable)


def upgrade() -> int:
    """Create an empty schema, or migrate an existing one to MLflow's head revision."""
    from mlflow.store.db.utils import _get_latest_schema_revision, _initialize_tables, _upgrade_db

    engine = _engine()
    wait_for_database(engine)
    current, head = _schema_revision(engine), _get_latest_schema_revision()  # type: ignore[no-untyped-call]
    if current is None:
        _log(f"empty database: creating the MLflow schema at revision {head}")
        _initialize_tables(engine)  # type: ignore[no-untyped-call]
    elif current != head:
        _log(f"migrating the MLflow schema from {current} to {head}")
        _upgrade_db(engine)  # type: ignore[no-untyped-call]
    else:
        _log(f"schema already at {head}")
    return 0


def wait_schema() -> int:
    """Block until the schema is at the head revision this MLflow expects (set by the migration Job)."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    engine = _engine()
    wait_for_database(engine)
    head = _get_latest_schema_revision()  # type: ignore[no-untyped-call]

    def current() -> str | None:
        revision = _schema_revision(engine)
        return None if revision == head else f"schema at {revision}, expected {head}"

    _wait_until("the schema migration", current)
    _log(f"schema at {head}")
    return 0


def _write_auth_config() -> None:
    """Point MLflow's basic-auth app at its permission database. The admin credentials reach MLflow
    as MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD straight from the Secret, never through this file."""
    if os.environ.get("MLFLOW_HELM_AUTH") != "basic":
        return
    permission = os.environ.get("MLFLOW_HELM_AUTH_DEFAULT_PERMISSION", "READ")
    if os.environ["MLFLOW_HELM_DB_DIALECT"] == "sqlite":
        path = os.path.join(os.path.dirname(_env("MLFLOW_HELM_SQLITE_PATH")), "basic_auth.db")
        auth_db = f"sqlite:///{path}"
    else:
        auth_db = backend_uri()
    config_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "basic_auth.ini")
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        # configparser interpolates '%', which URL-encoded passwords contain.
        handle.write(
            "[mlflow]\n"
            f"default_permission = {permission}\n"
            f"database_uri = {auth_db.replace('%', '%%')}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = config_path


def server(args: list[str]) -> int:
    _write_auth_config()
    # The URI (with the database password) goes in the environment: a command line is readable by
    # every process of the node (/proc/PID/cmdline), the environment only by the same user.
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend_uri()
    argv = ["mlflow", "server", *args]
    _log("mlflow server (MLFLOW_BACKEND_STORE_URI=" + backend_uri(redact=True) + ") " + " ".join(args))
    os.execvp(argv[0], argv)


def _artifacts_destination(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("--artifacts-destination="):
            return arg.split("=", 1)[1]
        if arg == "--artifacts-destination" and i + 1 < len(args):
            return args[i + 1]
    return None


def _resolve_proxied_artifacts(destination: str) -> None:
    """Runs logged through a proxying server have `mlflow-artifacts:/EXP/RUN/artifacts` URIs, which
    `mlflow gc` can only resolve through an http tracking URI (a server), not the database it opens:
    it fails on the first deleted run. The server stores them under --artifacts-destination, so map
    them there, as the server itself does."""
    from urllib.parse import urlparse

    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry,
        get_artifact_repository,
    )

    root = destination.rstrip("/")

    def repository(artifact_uri: str, *args: Any, **kwargs: Any) -> Any:
        return get_artifact_repository(root + "/" + urlparse(artifact_uri).path.lstrip("/"))

    _artifact_repository_registry.register("mlflow-artifacts", repository)  # type: ignore[no-untyped-call]


def gc(args: list[str]) -> int:
    # `mlflow gc` has no environment variable for --backend-store-uri; without the flag it opens the
    # store of MLFLOW_TRACKING_URI, which keeps the password off the command line. It runs in this
    # process (its command line is this one's) so that proxied artifact URIs resolve.
    os.environ["MLFLOW_TRACKING_URI"] = backend_uri()
    destination = _artifacts_destination(args)
    if destination:
        _resolve_proxied_artifacts(destination)
    _log("mlflow gc (store " + backend_uri(redact=True) + ") " + " ".join(args))
    from mlflow.cli import cli

    cli.main(args=["gc", *args], prog_name="mlflow")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit(__doc__)
    verb, rest = argv[0], argv[1:]
    if verb == "server":
        return server(rest)
    if verb == "upgrade":
        return upgrade()
    if verb == "wait-schema":
        return wait_schema()
    if verb == "gc":
        return gc(rest)
    sys.exit(f"entrypoint: unknown verb {verb!r}; expected server, upgrade, wait-schema or gc")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
