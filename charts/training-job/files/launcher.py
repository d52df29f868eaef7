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


def log(message: str) -> None:
    print(f"[helm-mlops] {message}", file=sys.stderr, flush=True)


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
    code = subprocess.call(argv)
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


class Mlflow:
    """The few REST calls the launcher needs, so it needs no MLflow client in the image."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        user, password = (
            os.environ.get("MLFLOW_TRACKING_USERNAME"),
            os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
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

    def wait(self, timeout: float) -> None:
        """The tracking server may start with the training pod; wait for /health."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=5):
                    return
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"MLflow at {self.uri} is not reachable: {exc}") from exc
                time.sleep(2)

    def experiment_id(self, name: str) -> str:
        try:
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        try:
            return str(self.call("POST", "experiments/create", {"name": name})["experiment_id"])
        except urllib.error.HTTPError:
            # Another pod of the same sweep created it first.
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
            return str(found["experiment"]["experiment_id"])

    def create_run(self, experiment: str, name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        body = {
            "experiment_id": experiment,
            "run_name": name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": v} for k, v in tags.items() if v],
        }
        run_id = str(self.call("POST", "runs/create", body)["run"]["info"]["run_id"])
        if params:
            batch = [{"key": k, "value": str(v)} for k, v in params.items()]
            self.call("POST", "runs/log-batch", {"run_id": run_id, "params": batch})
        return run_id

    def finish(self, run_id: str, exit_code: int) -> None:
        """End the run unless the script already did (its own end_run wins)."""
        info = self.call("GET", "runs/get", {"run_id": run_id})["run"]["info"]
        if info.get("status") == "RUNNING":
            status = (
                "FINISHED" if exit_code == 0 else ("KILLED" if exit_code > TERMINATED_BY_SIGNAL else "FAILED")
            )
            body = {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)}
            self.call("POST", "runs/update", body)


def start_mlflow_run(
    env: dict[str, str], trial: tuple[int, dict[str, Any]] | None
) -> tuple[Mlflow, str] | None:
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
    }
    params: dict[str, Any] = {}
    if trial is not None:
        index, params = trial
        run_name = f"{run_name}-trial-{index}"
        # One tag groups the trials of one sweep run (a re-run of the release is a new Job, a new uid).
        tags["helm-mlops.sweep"] = os.environ.get("HELM_MLOPS_JOB_UID") or tags["helm-mlops.training-job"]
        tags["helm-mlops.trial"] = str(index)
    tags["mlflow.runName"] = run_name
    try:
        client.wait(float(os.environ.get("HELM_MLOPS_MLFLOW_WAIT", "120")))
        experiment = client.experiment_id(os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default")
        run_id = client.create_run(experiment, run_name, tags, params)
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        # Training should not die because tracking is down; the script's own mlflow calls will say more.
        log(f"warning: could not create the MLflow run ({exc}); the script runs without MLFLOW_RUN_ID")
        return None
    env["MLFLOW_RUN_ID"] = run_id
    env["MLFLOW_EXPERIMENT_ID"] = experiment
    link = f"{client.uri}/#/experiments/{experiment}/runs/{run_id}"
    log(f"MLflow run {run_id} in experiment {experiment}: {link}")
    return client, run_id


# Distributed ---------------------------------------------------------------------------------------


def torchrun_args() -> list[str]:
    """torchrun options for this pod. Indexed Job mode derives them from the Job: node rank = the
    completion index, rendezvous on pod 0's stable DNS name. Operator mode passes only the process
    count: the operator exports PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR..., which torchrun reads."""
    mode = os.environ.get("HELM_MLOPS_DISTRIBUTED", "")
    nproc = os.environ.get("HELM_MLOPS_NPROC_PER_NODE", "1")
    if mode != "indexed":
        return [f"--nproc-per-node={os.environ.get('PET_NPROC_PER_NODE', nproc)}"]
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
        ]
    return [
        f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc}",
        f"--node-rank={rank}",
        f"--master-addr={master}",
        f"--master-port={port}",
    ]


def exit_files() -> Path:
    path = state_dir() / "worker-exit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def failing_worker_code() -> int | None:
    """torchrun exits 1 whatever its workers returned; the workers record their own exit codes.
    The lowest rank that failed by itself (not killed by torchrun) decides."""
    found: list[tuple[int, int]] = []
    for item in exit_files().glob("rank-*"):
        code = int(item.read_text() or "0")
        if code != 0:
            found.append((int(item.name.removeprefix("rank-")), code))
    return min(found)[1] if found else None


# Running a child with signals forwarded -------------------------------------------------------------


def run_child(argv: list[str], env: dict[str, str]) -> tuple[int, bool]:
    """Run argv; forward SIGTERM/SIGINT to its process group. Returns (exit code, signalled)."""
    child = subprocess.Popen(argv, env=env, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        log(f"received {signal.Signals(signum).name}, stopping the training")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = child.wait()
    if code < 0:  # killed by a signal
        code = TERMINATED_BY_SIGNAL - code
    return code, bool(received)


def write_termination_message(payload: dict[str, Any]) -> None:
    """Kubernetes shows this in the pod's status (state.terminated.message): `helm-mlops status`
    reads the MLflow run from it without access to the logs."""
    path = Path(os.environ.get("HELM_MLOPS_TERMINATION_LOG", "/dev/termination-log"))
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(payload)[:4000])


def command_run(script: str | None, args: list[str]) -> int:
    env = dict(os.environ)
    install_requirements(env)
    trial = sweep_trial()
    if trial is not None:
        args = apply_trial(*trial, env, args)
    distributed = os.environ.get("HELM_MLOPS_DISTRIBUTED")
    node_rank = int(os.environ.get("JOB_COMPLETION_INDEX", os.environ.get("PET_NODE_RANK", "0")) or 0)
    # One MLflow run per training: the first node's processes log to it.
    tracked = start_mlflow_run(env, trial) if not distributed or node_rank == 0 else None

    target = [sys.executable, script, *args] if script else args
    if not target:
        log("nothing to run: give --script FILE or a command after --")
        return 2
    if distributed:
        env["HELM_MLOPS_EXIT_DIR"] = str(exit_files())
        argv = [sys.executable, "-m", "torch.distributed.run", *torchrun_args()]
        argv += ["--no-python", sys.executable, str(Path(__file__).resolve()), "worker", "--", *target]
        log("torchrun " + " ".join(argv[3 : argv.index("--no-python")]))
    else:
        argv = target
    started = time.time()
    code, signalled = run_child(argv, env)
    if distributed and code != 0 and not signalled:
        code = failing_worker_code() or code
    log(f"training exited with code {code} after {time.time() - started:.1f}s")
    result: dict[str, Any] = {"exitCode": code}
    if trial is not None:
        result.update(trial=trial[0], params=trial[1])
    if tracked is not None:
        client, run_id = tracked
        result.update(mlflowRunId=run_id, mlflowExperimentId=env["MLFLOW_EXPERIMENT_ID"])
        try:
            client.finish(run_id, code)
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            log(f"warning: could not close MLflow run {run_id}: {exc}")
    write_termination_message(result)
    return code


def command_worker(argv: list[str]) -> int:
    """One torchrun worker: run the training and record its exit code for the node's launcher, unless
    torchrun itself stopped it (another rank failed first)."""
    code, signalled = run_child(argv, dict(os.environ))
    exit_dir = os.environ.get("HELM_MLOPS_EXIT_DIR")
    if exit_dir and not signalled:
        Path(exit_dir, f"rank-{os.environ.get('RANK', '0')}").write_text(str(code))
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
            print(f"ok: MLflow at {client.uri} answers with these credentials")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"FAIL: MLflow at {client.uri}: {exc}")
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
