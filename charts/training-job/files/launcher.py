"""helm-mlops training launcher: runs inside the training pod, as PID 1 of the container.

    launcher.py run [--script FILE] -- [ARGS...]     run the training (the pod's command)
    launcher.py worker -- ARGV...                    one torchrun worker (started by torchrun)
    launcher.py check [--script FILE]                what `helm test` runs

`run` installs the requirements into a writable directory, picks this trial's sweep parameters,
creates the MLflow run, starts the script (under torchrun when distributed), forwards SIGTERM and
SIGINT so Kubernetes termination stops training cleanly, and exits with the script's exit code.
Its settings come from HELM_MLOPS_* variables the chart sets; everything else in the environment is
passed through. Standard library only: it runs in the stock python image before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import py_compile
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TERMINATED_BY_SIGNAL = 128  # shell convention: exit code 128 + signal number
KILLED_CODES = (TERMINATED_BY_SIGNAL + signal.SIGKILL, TERMINATED_BY_SIGNAL + signal.SIGTERM)  # 137, 143
RUN_LINE = "mlflow-run "  # the well-known log line `helm-mlops status` reads while the pod runs


def log(message: str) -> None:
    """One line, one write(2) to stderr: a signal handler that logs between two lines never splits
    a line (print() writes in pieces and is not reentrant)."""
    data = f"[helm-mlops] {message}\n".encode(errors="replace")
    while data:
        try:
            data = data[os.write(2, data) :]
        except InterruptedError:
            continue
        except OSError:
            return


class Terminated(BaseException):
    """A termination request (SIGTERM/SIGINT) before the training started: nothing more is started."""


class Signals:
    """SIGTERM/SIGINT handling for the launcher's whole life, installed first thing (as PID 1 a signal
    without a handler is dropped). Before the training starts a request raises Terminated (it
    interrupts pip and the wait for MLflow); while a child runs it is forwarded to the child's process
    group; afterwards it is only recorded (closing the MLflow run goes on within the grace period)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.first_at: float | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.raise_before_child = True

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.handle)

    def handle(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        if self.first_at is None:
            self.first_at = time.monotonic()
        name = signal.Signals(signum).name
        child = self.child
        if child is not None and child.poll() is None:
            if len(self.received) == 1:
                log(f"received {name}, stopping the training")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)
            return
        if len(self.received) == 1:
            log(f"received {name}, stopping")
        if self.raise_before_child and child is None:
            raise Terminated(signum)

    @property
    def stopping(self) -> bool:
        return bool(self.received)


SIGNALS = Signals()


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def state_dir() -> Path:
    path = Path(os.environ.get("HELM_MLOPS_STATE_DIR") or "/tmp/helm-mlops")
    path.mkdir(parents=True, exist_ok=True)
    return path


# Requirements --------------------------------------------------------------------------------------


def install_requirements(env: dict[str, str]) -> None:
    """pip install into <state>/site (the image's root filesystem is read-only) and put it on the
    child's PYTHONPATH and PATH. pip reads PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and PIP_TRUSTED_HOST."""
    req = os.environ.get("HELM_MLOPS_REQUIREMENTS_FILE")
    if not req:
        return
    site = state_dir() / "site"
    argv = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    argv += ["--no-input", "--target", str(site), "-r", req]
    argv += json.loads(os.environ.get("HELM_MLOPS_PIP_ARGS") or "[]")
    log(f"installing requirements from {req}")
    started = time.monotonic()
    code, _ = run_child(argv, dict(os.environ))
    SIGNALS.raise_before_child = True
    if SIGNALS.stopping:
        raise Terminated(SIGNALS.received[0])
    if code != 0:
        log(f"pip install failed with exit code {code}")
        raise SystemExit(code)
    log(f"requirements installed in {time.monotonic() - started:.1f}s")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(site / "bin"), env.get("PATH", "")))


# Sweep ---------------------------------------------------------------------------------------------


def sweep_trial() -> tuple[int, dict[str, Any]] | None:
    """(index, parameters) of this pod's trial, or None outside a sweep."""
    spec_file = os.environ.get("HELM_MLOPS_SWEEP_FILE")
    if not spec_file:
        return None
    sys.path.insert(0, str(HERE))
    import sweep

    spec = json.loads(Path(spec_file).read_text())
    index = int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    return index, sweep.trial_params(spec, index)


def apply_trial(index: int, params: dict[str, Any], env: dict[str, str], args: list[str]) -> list[str]:
    import sweep

    spec = json.loads(Path(os.environ["HELM_MLOPS_SWEEP_FILE"]).read_text())
    env["HELM_MLOPS_TRIAL_INDEX"] = str(index)
    env["HELM_MLOPS_TRIAL_PARAMS"] = json.dumps(params)
    for name, value in params.items():
        env[sweep.env_name(name)] = sweep.format_value(value)
    log(f"trial {index}: {json.dumps(params)}")
    if spec.get("passAsArgs", True):
        args = args + [f"--{name}={sweep.format_value(value)}" for name, value in params.items()]
    return args


# MLflow ---------------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(uri without user:password@, user, password): MLflow's client sends a URI's credentials as basic
    auth; the launcher does the same and never prints them."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri, None, None
    host = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    return bare, user, password


def redact(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """Redirects keep the basic-auth header only within the same origin (scheme, host, port): a
    redirect elsewhere never receives the MLflow credentials."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", auth)
        return new


_OPENER = urllib.request.build_opener(_SameOriginAuth)


class MlflowRefused(Exception):
    """MLflow answered with an error that waiting will not fix (4xx): the server's own message."""


class MlflowUnavailable(Exception):
    """MLflow stayed unreachable (or answered 5xx) until the deadline."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, (urllib.error.URLError, OSError, ValueError))


def _http_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode(errors="replace").strip()
    except Exception:  # the body is a courtesy
        body = ""
    with contextlib.suppress(ValueError, AttributeError):
        data = json.loads(body)
        body = f"{data.get('error_code', '')}: {data.get('message', body)}".strip(": ")
    return f"HTTP {exc.code} {exc.reason}" + (f": {body[:1000]}" if body else "")


class Mlflow:
    """The few REST calls the launcher needs, so it needs no MLflow client in the image."""

    def __init__(self, uri: str) -> None:
        bare, uri_user, uri_password = split_credentials(uri.rstrip("/"))
        self.uri = bare
        self.shown = redact(uri.rstrip("/"))
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or uri_user
        password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or uri_password
        self.headers = {"Content-Type": "application/json"}
        self.auth = ""
        if user and password:
            self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        if self.auth:  # unredirected: _SameOriginAuth decides whether a redirect gets it
            request.add_unredirected_header("Authorization", self.auth)
        with _OPENER.open(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read() or b"{}")
            return result

    def retrying(
        self, deadline: float, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """call() again on connection errors and 5xx, with backoff, until `deadline` (monotonic);
        4xx raise MlflowRefused with the server's message at once (except what the caller handles)."""
        delay = 1.0
        while True:
            try:
                return self.call(method, path, body)
            except urllib.error.HTTPError as exc:
                if not _is_transient(exc):
                    raise MlflowRefused(
                        f"MLflow at {self.shown} refused {path}: {_http_message(exc)}"
                    ) from exc
                error: BaseException = exc
                reason = _http_message(exc)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error, reason = exc, str(exc)
            if time.monotonic() + delay > deadline:
                raise MlflowUnavailable(f"MLflow at {self.shown}: {path} failed: {reason}") from error
            log(f"MLflow at {self.shown}: {path} failed ({reason}); retrying in {delay:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def wait(self, timeout: float) -> None:
        """The tracking server may start with the training pod; wait for /health (connection errors
        and 5xx), saying so. 4xx (a wrong path, a proxy that refuses) fail at once."""
        deadline = time.monotonic() + timeout
        said = 0.0
        while True:
            request = urllib.request.Request(f"{self.uri}/health")
            if self.auth:
                request.add_unredirected_header("Authorization", self.auth)
            try:
                with _OPENER.open(request, timeout=5):
                    if said:
                        log(f"MLflow at {self.shown} answers")
                    return
            except urllib.error.HTTPError as exc:
                if not _is_transient(exc):
                    raise MlflowRefused(f"MLflow at {self.shown}: {_http_message(exc)}") from exc
                reason = _http_message(exc)
            except (urllib.error.URLError, OSError) as exc:
                reason = str(getattr(exc, "reason", exc))
            now = time.monotonic()
            if now > deadline:
                raise MlflowUnavailable(
                    f"MLflow at {self.shown} is not reachable after {timeout:.0f}s: {reason}"
                )
            if not said or now - said >= 15:
                log(f"waiting for MLflow at {self.shown} ({reason})")
                said = now
            time.sleep(2)

    def experiment_id(self, name: str, deadline: float) -> str:
        """The experiment's id, created when missing. A 404 is "missing" only with MLflow's own
        RESOURCE_DOES_NOT_EXIST; any other 4xx (a wrong path, credentials) is refused at once."""
        lookup = {"experiment_name": name}
        try:
            found = self.retrying(deadline, "GET", "experiments/get-by-name", lookup)
            return str(found["experiment"]["experiment_id"])
        except MlflowRefused as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
        try:
            created = self.retrying(deadline, "POST", "experiments/create", {"name": name})
            return str(created["experiment_id"])
        except MlflowRefused as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
            # Another pod of the same sweep created it first.
            found = self.retrying(deadline, "GET", "experiments/get-by-name", lookup)
            return str(found["experiment"]["experiment_id"])

    def end_earlier_attempts(self, experiment: str, tags: dict[str, str], deadline: float) -> int:
        """Runs of earlier attempts of this trial (same Job uid and completion index) still RUNNING:
        their pod is gone (a retry of the same trial runs only after the earlier pod ended), so end
        them as FAILED. Returns how many runs earlier attempts made (for the attempt tag)."""
        uid, index = tags.get("helm-mlops.job-uid"), tags.get("helm-mlops.completion-index")
        if not uid or index is None:
            return 0
        flt = f"tags.`helm-mlops.job-uid` = '{uid}' and tags.`helm-mlops.completion-index` = '{index}'"
        body = {"experiment_ids": [experiment], "filter": flt, "max_results": 1000}
        found = self.retrying(deadline, "POST", "runs/search", body).get("runs") or []
        for run in found:
            info = run.get("info") or {}
            if info.get("status") == "RUNNING":
                log(f"ending MLflow run {info['run_id']} of an earlier attempt (its pod is gone) as FAILED")
                end = {"run_id": info["run_id"], "status": "FAILED", "end_time": int(time.time() * 1000)}
                self.retrying(deadline, "POST", "runs/update", end)
        return len(found)

    def create_run(
        self, experiment: str, name: str, tags: dict[str, str], params: dict[str, Any], deadline: float
    ) -> str:
        """runs/create with every tag in the same request; the trial's params follow in one log-batch.
        If they cannot be logged, the run is deleted: no orphan run tagged as this trial."""
        body = {
            "experiment_id": experiment,
            "run_name": name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": v} for k, v in tags.items() if v],
        }
        run_id = str(self.retrying(deadline, "POST", "runs/create", body)["run"]["info"]["run_id"])
        if params:
            batch = [{"key": k, "value": str(v)} for k, v in params.items()]
            try:
                self.retrying(deadline, "POST", "runs/log-batch", {"run_id": run_id, "params": batch})
            except Exception:  # not on Terminated: the next attempt ends a run left behind
                with contextlib.suppress(Exception):
                    self.call("POST", "runs/delete", {"run_id": run_id})
                raise
        return run_id

    def finish(self, run_id: str, exit_code: int, killed: bool, deadline: float) -> str:
        """End the run unless the script already did (its own end_run wins); retried until `deadline`.
        Returns the status the run has now."""
        info = self.retrying(deadline, "GET", "runs/get", {"run_id": run_id})["run"]["info"]
        status = str(info.get("status"))
        if status == "RUNNING":
            status = run_status(exit_code, killed)
            body = {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)}
            self.retrying(deadline, "POST", "runs/update", body)
        return status


def run_status(exit_code: int, killed: bool) -> str:
    """FINISHED for 0; KILLED when the pod was asked to stop (SIGTERM from the kubelet) or the
    script died of SIGKILL/SIGTERM (137/143); FAILED for everything else, crashes included
    (134 abort, 139 segfault, sys.exit(200))."""
    if exit_code == 0:
        return "FINISHED"
    return "KILLED" if killed or exit_code in KILLED_CODES else "FAILED"


def start_mlflow_run(
    env: dict[str, str], trial: tuple[int, dict[str, Any]] | None
) -> tuple[Mlflow, str] | None:
    """Create this attempt's MLflow run. Waits (saying so) while MLflow is unreachable or answers 5xx,
    up to HELM_MLOPS_MLFLOW_WAIT seconds; raises MlflowRefused (4xx: credentials, a wrong URI, a deleted
    experiment) and MlflowUnavailable (still down) so the pod fails before the training starts."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not env_flag("HELM_MLOPS_MLFLOW_CREATE_RUN", True) or "MLFLOW_RUN_ID" in os.environ:
        return None
    if not uri.startswith(("http://", "https://")):
        return None
    client = Mlflow(uri)
    run_name = os.environ.get("HELM_MLOPS_RUN_NAME") or os.environ.get("HELM_MLOPS_TRAINING_JOB", "training")
    tags = {
        "helm-mlops.release": os.environ.get("HELM_MLOPS_RELEASE", ""),
        "helm-mlops.training-job": os.environ.get("HELM_MLOPS_TRAINING_JOB", ""),
        "helm-mlops.pod": os.environ.get("HELM_MLOPS_POD", ""),
        "helm-mlops.job-uid": os.environ.get("HELM_MLOPS_JOB_UID", ""),
        "helm-mlops.completion-index": os.environ.get("JOB_COMPLETION_INDEX", "0"),
    }
    params: dict[str, Any] = {}
    if trial is not None:
        index, params = trial
        run_name = f"{run_name}-trial-{index}"
        # One tag groups the trials of one sweep run (a re-run of the release is a new Job, a new uid).
        tags["helm-mlops.sweep"] = os.environ.get("HELM_MLOPS_JOB_UID") or tags["helm-mlops.training-job"]
        tags["helm-mlops.trial"] = str(index)
    tags["mlflow.runName"] = run_name
    wait = float(os.environ.get("HELM_MLOPS_MLFLOW_WAIT", "120"))
    client.wait(wait)
    deadline = time.monotonic() + wait
    try:
        experiment = client.experiment_id(os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default", deadline)
        earlier = client.end_earlier_attempts(experiment, tags, deadline)
        tags["helm-mlops.attempt"] = str(earlier + 1)
        run_id = client.create_run(experiment, run_name, tags, params, deadline)
    except KeyError as exc:  # an answer without the expected field: not an MLflow tracking server?
        raise MlflowRefused(f"MLflow at {client.shown} answered without {exc}") from exc
    env["MLFLOW_RUN_ID"] = run_id
    env["MLFLOW_EXPERIMENT_ID"] = experiment
    bare, user, password = split_credentials(uri)
    if user is not None:  # the script's MLflow client gets them as variables, never in a printable URI
        env["MLFLOW_TRACKING_URI"] = bare
        env.setdefault("MLFLOW_TRACKING_USERNAME", user)
        env.setdefault("MLFLOW_TRACKING_PASSWORD", password or "")
    link = f"{client.uri}/#/experiments/{experiment}/runs/{run_id}"
    log(f"MLflow run {run_id} in experiment {experiment}: {link}")
    line: dict[str, Any] = {"mlflowRunId": run_id, "mlflowExperimentId": experiment}
    if trial is not None:
        line["trial"] = trial[0]
    log(RUN_LINE + json.dumps(line))
    return client, run_id


# Distributed ---------------------------------------------------------------------------------------


def torchrun_args() -> list[str]:
    """torchrun options for this pod. Indexed Job mode derives them from the Job: node rank = the
    completion index, rendezvous on pod 0's stable DNS name. Operator mode passes only the process
    count: the operator exports PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR..., which torchrun reads."""
    mode = os.environ.get("HELM_MLOPS_DISTRIBUTED", "")
    nproc = os.environ.get("HELM_MLOPS_NPROC_PER_NODE", "1")
    timeout = os.environ.get("HELM_MLOPS_RDZV_TIMEOUT")
    # The static rendezvous reads `timeout`, the c10d (elastic) one `join_timeout`; each ignores the other.
    rdzv_conf = [f"--rdzv-conf=timeout={timeout},join_timeout={timeout}"] if timeout else []
    if mode != "indexed":
        return [f"--nproc-per-node={os.environ.get('PET_NPROC_PER_NODE', nproc)}", *rdzv_conf]
    nnodes = int(os.environ["HELM_MLOPS_NNODES"])
    master = os.environ["HELM_MLOPS_MASTER_ADDR"]
    port = os.environ.get("HELM_MLOPS_MASTER_PORT", "29500")
    rank = int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    min_nodes = os.environ.get("HELM_MLOPS_MIN_NODES")
    if min_nodes:
        job = os.environ.get("HELM_MLOPS_JOB_UID") or os.environ.get("HELM_MLOPS_TRAINING_JOB", "job")
        return [
            f"--nnodes={min_nodes}:{nnodes}",
            f"--nproc-per-node={nproc}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={master}:{port}",
            f"--rdzv-id={job}",
            f"--max-restarts={os.environ.get('HELM_MLOPS_MAX_RESTARTS', '3')}",
            *rdzv_conf,
        ]
    return [
        f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc}",
        f"--node-rank={rank}",
        f"--master-addr={master}",
        f"--master-port={port}",
        *rdzv_conf,
    ]


def exit_files() -> Path:
    path = state_dir() / "worker-exit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def failing_worker_code(signalled: bool) -> int | None:
    """torchrun exits 1 whatever its workers returned; the workers record their own exit codes.
    The lowest rank that failed by itself (not stopped by torchrun) decides. When the pod was asked
    to stop (SIGTERM reached torchrun and the workers), the workers' own codes decide: the lowest
    rank's non-zero code, or 0 when every worker exited 0."""
    own: list[tuple[int, int]] = []
    stopped: list[tuple[int, int]] = []
    for item in exit_files().glob("rank-*"):
        text = item.read_text().split()
        if not text:
            continue
        entry = (int(item.name.removeprefix("rank-")), int(text[0]))
        (stopped if "signalled" in text[1:] else own).append(entry)
    failed = sorted(e for e in own if e[1] != 0)
    if failed:
        return failed[0][1]
    if signalled and (own or stopped):
        codes = sorted(e for e in own + stopped if e[1] != 0)
        return codes[0][1] if codes else 0
    return None


# Running a child with signals forwarded -------------------------------------------------------------


def grace_seconds() -> float:
    """The pod's terminationGracePeriodSeconds (the chart passes it): SIGKILL follows SIGTERM after it."""
    try:
        return float(os.environ.get("HELM_MLOPS_GRACE_SECONDS") or 30)
    except ValueError:
        return 30.0


def close_budget() -> float:
    """Seconds of the grace period kept for closing the MLflow run after the training stopped."""
    return min(15.0, grace_seconds() / 3)


def run_child(argv: list[str], env: dict[str, str], stop_within: float | None = None) -> tuple[int, bool]:
    """Run argv in its own process group; SIGTERM/SIGINT are forwarded to the group (Signals).
    With `stop_within`, a child still running that many seconds after the first signal is killed,
    so that the launcher has the rest of the grace period to close the MLflow run.
    Returns (exit code, whether a termination signal was received)."""
    before = len(SIGNALS.received)
    # From here on a signal no longer raises Terminated: one that arrives while the child starts is
    # forwarded to it below, later ones by the handler. The caller decides when raising resumes (only
    # install_requirements does: pip is not the training).
    SIGNALS.raise_before_child = False
    child = subprocess.Popen(argv, env=env, start_new_session=True)
    SIGNALS.child = child
    if len(SIGNALS.received) > before:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, SIGNALS.received[-1])
    try:
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                first = SIGNALS.first_at
                if stop_within is not None and first is not None and time.monotonic() - first > stop_within:
                    log(f"the training did not stop {stop_within:.0f}s after the signal: killing it")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                    stop_within = None
    finally:
        SIGNALS.child = None
    if code < 0:  # killed by a signal
        code = TERMINATED_BY_SIGNAL - code
    return code, SIGNALS.stopping


def write_termination_message(payload: dict[str, Any]) -> None:
    """Kubernetes shows this in the pod's status (state.terminated.message, lastState after a
    restart): `helm-mlops status` reads the MLflow run from it without access to the logs. Kept
    short (the kubelet keeps 4096 bytes): identifiers only, never cut into invalid JSON."""
    path = Path(os.environ.get("HELM_MLOPS_TERMINATION_LOG", "/dev/termination-log"))
    text = json.dumps(payload)
    for optional in ("reason", "trial"):
        if len(text) > 4000 and optional in payload:
            payload = {k: v for k, v in payload.items() if k != optional}
            text = json.dumps(payload)
    if len(text) > 4000:
        text = json.dumps({"exitCode": payload.get("exitCode")})
    with contextlib.suppress(OSError):
        path.write_text(text)


def close_run(tracked: tuple[Mlflow, str] | None, code: int, killed: bool) -> None:
    """End the launcher's MLflow run, retrying with backoff; when the pod was asked to stop, within
    what is left of the grace period."""
    if tracked is None:
        return
    client, run_id = tracked
    if SIGNALS.first_at is not None:
        deadline = SIGNALS.first_at + grace_seconds() - 2
    else:
        deadline = time.monotonic() + float(os.environ.get("HELM_MLOPS_MLFLOW_WAIT", "120"))
    try:
        status = client.finish(run_id, code, killed, max(deadline, time.monotonic() + 1))
        log(f"MLflow run {run_id}: {status}")
    except (MlflowRefused, MlflowUnavailable, KeyError) as exc:
        log(f"warning: could not close MLflow run {run_id}: {exc}; the next attempt of this trial ends it")


def command_run(script: str | None, args: list[str]) -> int:
    SIGNALS.install()  # first: as PID 1, a SIGTERM without a handler is lost
    env = dict(os.environ)
    trial: tuple[int, dict[str, Any]] | None = None
    tracked: tuple[Mlflow, str] | None = None
    result: dict[str, Any] = {}
    try:
        install_requirements(env)
        trial = sweep_trial()
        if trial is not None:
            args = apply_trial(*trial, env, args)
            result["trial"] = trial[0]
        distributed = os.environ.get("HELM_MLOPS_DISTRIBUTED")
        node_rank = int(os.environ.get("JOB_COMPLETION_INDEX", os.environ.get("PET_NODE_RANK", "0")) or 0)
        # One MLflow run per training: the first node's processes log to it.
        if not distributed or node_rank == 0:
            tracked = start_mlflow_run(env, trial)
        if tracked is not None:
            result.update(mlflowRunId=tracked[1], mlflowExperimentId=env["MLFLOW_EXPERIMENT_ID"])
        target = [sys.executable, script, *args] if script else args
        if not target:
            log("nothing to run: give --script FILE or a command after --")
            return 2
        if distributed:
            for stale in exit_files().glob("rank-*"):  # an earlier attempt in this pod (OnFailure)
                stale.unlink()
            env["HELM_MLOPS_EXIT_DIR"] = str(exit_files())
            argv = [sys.executable, "-m", "torch.distributed.run", *torchrun_args()]
            argv += ["--no-python", sys.executable, str(Path(__file__).resolve()), "worker", "--", *target]
            log("torchrun " + " ".join(argv[3 : argv.index("--no-python")]))
        else:
            argv = target
        if SIGNALS.stopping:
            raise Terminated(SIGNALS.received[0])
        started = time.time()
        code, signalled = run_child(argv, env, stop_within=max(1.0, grace_seconds() - close_budget()))
    except Terminated as stop:
        signum = int(stop.args[0]) if stop.args else signal.SIGTERM
        log(f"{signal.Signals(signum).name} before the training started: it is not started")
        code = TERMINATED_BY_SIGNAL + signal.SIGTERM
        result["exitCode"] = code
        SIGNALS.raise_before_child = False
        close_run(tracked, code, killed=True)
        write_termination_message(result)
        return code
    except (MlflowRefused, MlflowUnavailable) as exc:
        log(str(exc))
        log("the training does not start without its MLflow run (mlflow.createRun=false runs it untracked)")
        write_termination_message({**result, "exitCode": 1, "reason": "MLflow"})
        return 1
    SIGNALS.raise_before_child = False  # from here on a signal is only recorded: closing goes on
    if distributed and code != 0:
        workers = failing_worker_code(signalled)
        code = code if workers is None else workers
    log(f"training exited with code {code} after {time.time() - started:.1f}s")
    result["exitCode"] = code
    close_run(tracked, code, killed=signalled)
    write_termination_message({"exitCode": code, **result})
    return code


def command_worker(argv: list[str]) -> int:
    """One torchrun worker: run the training and record its exit code for the node's launcher, with
    whether torchrun stopped it (another rank failed first, or the pod is being terminated)."""
    SIGNALS.install()
    SIGNALS.raise_before_child = False
    code, signalled = run_child(argv, dict(os.environ))
    exit_dir = os.environ.get("HELM_MLOPS_EXIT_DIR")
    if exit_dir:
        text = f"{code} signalled" if signalled else str(code)
        Path(exit_dir, f"rank-{os.environ.get('RANK', '0')}").write_text(text)
    return code


def command_check(script: str | None) -> int:
    """What `helm test` runs: the script compiles, the sweep expands, MLflow answers."""
    problems = 0
    if script:
        try:
            py_compile.compile(
                script, cfile=str(Path(os.environ.get("TMPDIR", "/tmp")) / "check.pyc"), doraise=True
            )
            print(f"ok: {script} compiles")
        except py_compile.PyCompileError as exc:
            print(f"FAIL: {script} does not compile: {exc.msg}")
            problems += 1
    if os.environ.get("HELM_MLOPS_SWEEP_FILE"):
        sys.path.insert(0, str(HERE))
        import sweep

        spec = json.loads(Path(os.environ["HELM_MLOPS_SWEEP_FILE"]).read_text())
        try:
            count = sweep.trial_count(spec)
            print(f"ok: sweep of {count} trials; trial 0 = {json.dumps(sweep.trial_params(spec, 0))}")
        except sweep.SweepError as exc:
            print(f"FAIL: sweep: {exc}")
            problems += 1
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        client = Mlflow(uri)
        try:
            client.wait(float(os.environ.get("HELM_MLOPS_MLFLOW_WAIT", "30")))
            client.call("POST", "experiments/search", {"max_results": 1})
            print(f"ok: MLflow at {client.shown} answers with these credentials")
        except urllib.error.HTTPError as exc:
            print(f"FAIL: MLflow at {client.shown}: {_http_message(exc)}")
            problems += 1
        except (MlflowRefused, MlflowUnavailable) as exc:
            print(f"FAIL: {exc}")
            problems += 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"FAIL: MLflow at {client.shown}: {exc}")
            problems += 1
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--script")
    run.add_argument("rest", nargs=argparse.REMAINDER)
    worker = sub.add_parser("worker")
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    check = sub.add_parser("check")
    check.add_argument("--script")
    ns = parser.parse_args(argv)
    rest = [a for a in getattr(ns, "rest", [])]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if ns.command == "run":
        return command_run(ns.script, rest)
    if ns.command == "worker":
        return command_worker(rest)
    return command_check(ns.script)


if __name__ == "__main__":
    sys.exit(main())
