"""Inference throughput and latency of the helm-mlops runtime against MLServer and KServe's Python
model server, serving the same scikit-learn model on the same machine in one run. Each server is
pinned to CPU 0 and wrk (the load generator) to CPU 1; requests carry one row.

    python hack/bench_inference.py            # rows for docs/benchmarks.md (used by hack/bench.py)
    python hack/bench_inference.py --soak 600  # `make soak`: 10 minutes at concurrency 32
    python hack/bench_inference.py --gpu       # only the GPU table: a torch MLP on --device cpu vs cuda
    python hack/bench_inference.py --monitoring  # only the monitoring on/off table (no peers needed)

The GPU table is measured only where torch (the venv of hack/torch-env.sh) sees a CUDA device;
elsewhere it is left out, never estimated.

The peers run from their own venvs (hack/bench-peers.sh), so their pins never touch ours."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "charts" / "inference-service" / "files"
FEATURES = 20
DURATION = int(os.environ.get("BENCH_SECONDS", "15"))
CONCURRENCY = (32, 128)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_s: float = 0.0  # CPU time of the server's processes over the run (utime + stime)

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, from its processes' CPU time: independent of wrk's core."""
        return self.cpu_s * 1e6 / self.requests if self.requests else 0.0


@dataclass
class Server:
    name: str
    url: str
    body: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str
    cwd: Path
    cpus: str = "0"  # the CPUs the server is pinned to (taskset -c)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(workdir: Path) -> Path:
    """A LogisticRegression on 20 features: about as costly per call as the issue's reference model."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=2000, n_features=FEATURES, n_informative=10, n_classes=3, random_state=0
    )
    path = workdir / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), path)
    __import__("numpy").save(workdir / "reference.npy", x)  # the training rows: --reference
    return path


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, body: str, connections: int, seconds: int, workdir: Path) -> Load:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = _run_wrk(url, script, connections, seconds)
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    return _load(out, errors)


def _run_wrk(url: str, script: Path, connections: int, seconds: int) -> str:
    """wrk on CPU 1 with a Lua script; its output."""
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s"]
    return subprocess.run([*argv, str(script), url], capture_output=True, text=True, check=True).stdout


def _load(out: str, errors: int) -> Load:
    """Throughput and latency from wrk's output; socket errors added to `errors`."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Load(rps, p50, p99, errors, requests)


def malformed_bodies() -> list[str]:
    """What a soak mixes in, one request in ten: each must be refused with a 4xx, never a 5xx."""
    row = [0.1 * i for i in range(FEATURES)]

    def tensor(datatype: str, data: list[object], shape: list[int] | None = None) -> str:
        shape = shape or [1, len(data)]
        return json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]})

    return [
        tensor("FP64", [None, *row[1:]]),  # null
        tensor("FP64", row[:-1]),  # one feature short
        tensor("FP32", [1e300, *row[1:]]),  # too large for FP32
        tensor("INT8", [1000] * FEATURES),  # outside INT8
        tensor("BYTES", ["x"] * FEATURES),  # strings
        tensor("FLOAT", row),  # not a v2 datatype
        '{"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.1,',  # cut short
        '{"inputs": "all of them"}',
    ]


MIXED_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  n, ok, refused, failed, other = 0, 0, 0, 0, 0
  headers = {["Content-Type"] = "application/json"}
end
function request()
  n = n + 1
  local body = good
  if n % 10 == 0 then body = bad[(n / 10) % #bad + 1] end
  return wrk.format("POST", nil, headers, body)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status >= 400 and status < 500 then refused = refused + 1
  elseif status >= 500 then failed = failed + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("counts ok=%d refused=%d failed=%d other=%d\n",
      t:get("ok"), t:get("refused"), t:get("failed"), t:get("other")))
  end
end
"""


def mixed_wrk(
    url: str, good: str, bad: list[str], connections: int, seconds: int, workdir: Path
) -> tuple[Load, dict[str, int]]:
    """wrk with one request in ten malformed: the load, and the answers counted by kind (the 4xx are
    the malformed ones being refused; 5xx or anything else is an error)."""
    script = workdir / "mixed.lua"
    lua_bad = "{" + ", ".join(json.dumps(b) for b in bad) + "}"
    script.write_text(f"good = {json.dumps(good)}\nbad = {lua_bad}\n{MIXED_LUA}")
    out = _run_wrk(url, script, connections, seconds)
    counts = {k: int(v) for k, v in re.findall(r"(ok|refused|failed|other)=(\d+)", out)}
    return _load(out, counts.get("failed", 0) + counts.get("other", 0)), counts


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MLServer forks workers)."""
    total = 0
    pids = [pid] + [
        int(p)
        for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    ]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


@contextlib.contextmanager
def running(server: Server, log: Path) -> Iterator[tuple[int, float]]:
    """Start pinned to CPU 0; yields (pid, seconds to ready)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["taskset", "-c", server.cpus, *server.argv],
        env=server.env,
        cwd=server.cwd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(server.ready_url, timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        yield proc.pid, time.perf_counter() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (the workers of a multi-worker server)."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(pid: int, url: str, body: str, connections: int, workdir: Path) -> Load:
    """wrk against the server, with the server's CPU time over the run."""
    before = cpu_seconds(pid)
    load = wrk(url, body, connections, DURATION, workdir)
    load.cpu_s = cpu_seconds(pid) - before
    return load


FLOOR = "uvicorn + uvloop + httptools, bare ASGI app (the floor)"
FLOOR_APP = """
BODY = b'{"outputs":[{"name":"predict","shape":[1],"datatype":"INT64","data":[0]}]}'
START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]}
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(START)
    await send({"type": "http.response.body", "body": BODY})
"""


def peer_python(name: str) -> str:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "bench-peers.sh"), name], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"hack/bench-peers.sh {name} failed:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def v2_body() -> str:
    row = [0.1 * i for i in range(FEATURES)]
    return json.dumps({"inputs": [{"name": "x", "shape": [1, FEATURES], "datatype": "FP64", "data": row}]})


MONITORED = "helm-mlops runtime, OIP v2 infer, monitoring on"
MULTI = "helm-mlops runtime, OIP v2 infer, every core"
MONITORING_ARGS = ["--monitor-sample-rate", "1", "--feedback", "--reference"]
MONITORING_ROUNDS = int(os.environ.get("BENCH_MONITORING_ROUNDS", "2"))


def servers(model: Path, workdir: Path) -> list[Server]:
    row = [0.1 * i for i in range(FEATURES)]
    env = {**os.environ, "PYTHONPATH": str(RUNTIME)}
    port = free_port()
    base = [sys.executable, "-m", "hm_runtime", "--model", str(model), "--trust-model", "--name", "bench"]
    ours = [*base, "--port", str(port), "--host", "127.0.0.1", "--workers", "1"]
    out = [
        Server(
            "helm-mlops runtime, OIP v2 infer",
            f"http://127.0.0.1:{port}/v2/models/bench/infer",
            v2_body(),
            ours,
            env,
            f"http://127.0.0.1:{port}/v2/health/ready",
            workdir,
        ),
    ]
    # The floor: the same ASGI server stack answering a constant JSON body, nothing of ours.
    (workdir / "floor_app.py").write_text(FLOOR_APP)
    fport = free_port()
    out.append(
        Server(
            FLOOR,
            f"http://127.0.0.1:{fport}/v2/models/bench/infer",
            v2_body(),
            [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(fport), "--host", "127.0.0.1"]
            + ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
            env,
            f"http://127.0.0.1:{fport}/",
            workdir,
        )
    )
    if BEFORE_REF:  # the runtime as it was at that commit, in the venv its own sklearn lock makes
        before = runtime_at(BEFORE_REF, workdir)
        bport = free_port()
        old = [pod_python("sklearn", before / "requirements" / "sklearn.txt"), "-m", "hm_runtime"]
        out.append(
            Server(
                f"helm-mlops runtime at {BEFORE_REF} (before), OIP v2 infer",
                f"http://127.0.0.1:{bport}/v2/models/bench/infer",
                v2_body(),
                [*old, *base[3:], "--port", str(bport), "--host", "127.0.0.1"],
                {**os.environ, "PYTHONPATH": str(before)},
                f"http://127.0.0.1:{bport}/v2/health/ready",
                workdir,
            )
        )
    # Every core: one worker per CPU, the server on all CPUs (wrk shares them).
    cpus = len(os.sched_getaffinity(0))
    wport = free_port()
    wours = [*base, "--port", str(wport), "--host", "127.0.0.1", "--workers", str(cpus)]
    out.append(
        Server(
            f"{MULTI} ({cpus} workers on {cpus} CPUs, wrk on the same CPUs)",
            f"http://127.0.0.1:{wport}/v2/models/bench/infer",
            v2_body(),
            wours,
            env,
            f"http://127.0.0.1:{wport}/v2/health/ready",
            workdir,
            cpus=",".join(str(c) for c in sorted(os.sched_getaffinity(0))),
        )
    )
    # The same server with monitoring on (every row examined, feedback remembered): its cost in req/s.
    out.append(
        Server(
            MONITORED,
            out[0].url,
            out[0].body,
            [*ours, *MONITORING_ARGS, str(model.parent / "reference.npy")],
            env,
            out[0].ready_url,
            workdir,
        )
    )
    # MLServer: one model, one process (parallel_workers 0), the sklearn runtime, v2 protocol.
    mls_dir = workdir / "mlserver"
    (mls_dir / "bench").mkdir(parents=True)
    (mls_dir / "bench" / "model.joblib").write_bytes(model.read_bytes())
    (mls_dir / "bench" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "bench",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    mport, gport, metrics = free_port(), free_port(), free_port()
    (mls_dir / "settings.json").write_text(
        json.dumps(
            {
                "http_port": mport,
                "grpc_port": gport,
                "metrics_port": metrics,
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    mls_python = peer_python("mlserver")
    out.append(
        Server(
            "MLServer 1.7.1 (mlserver-sklearn), OIP v2 infer",
            f"http://127.0.0.1:{mport}/v2/models/bench/infer",
            v2_body(),
            [str(Path(mls_python).parent / "mlserver"), "start", str(mls_dir)],
            dict(os.environ),
            f"http://127.0.0.1:{mport}/v2/health/ready",
            mls_dir,
        )
    )
    # KServe's Python model server with the usual custom-model class, v1 protocol (its native JSON path).
    kport = free_port()
    (workdir / "kserve_model.py").write_text(
        "import sys, joblib, numpy as np, kserve\n"
        "class Bench(kserve.Model):\n"
        "    def __init__(self):\n"
        "        super().__init__('bench')\n"
        f"        self.model = joblib.load({str(model)!r})\n"
        "        self.ready = True\n"
        "    def predict(self, payload, headers=None):\n"
        "        return {'predictions': self.model.predict(np.asarray(payload['instances'])).tolist()}\n"
        f"kserve.ModelServer(http_port={kport}, grpc_port={free_port()}, enable_grpc=False, workers=1, enable_latency_logging=False).start([Bench()])\n"
    )
    out.append(
        Server(
            "KServe 0.21.0 Python model server, v1 predict",
            f"http://127.0.0.1:{kport}/v1/models/bench:predict",
            json.dumps({"instances": [row]}),
            [peer_python("kserve"), str(workdir / "kserve_model.py")],
            dict(os.environ),
            f"http://127.0.0.1:{kport}/v1/models/bench",
            workdir,
        )
    )
    # Ours on the seed's /predict body, for the record.
    out.append(
        Server(
            "helm-mlops runtime, POST /predict",
            f"http://127.0.0.1:{port}/predict",
            json.dumps({"input": row}),
            ours,
            env,
            f"http://127.0.0.1:{port}/v2/health/ready",
            workdir,
        )
    )
    return out


def measure_all(workdir: Path) -> list[tuple[Server, float, float, dict[int, Load]]]:
    model = make_model(workdir)
    results = []
    for server in servers(model, workdir):
        with running(server, workdir / f"{server.name.split()[0]}.log") as (pid, ready_s):
            wrk(server.url, server.body, 32, 3, workdir)  # warm-up
            loads = {c: measured(pid, server.url, server.body, c, workdir) for c in CONCURRENCY}
            results.append((server, ready_s, rss_mb(pid), loads))
            print(f"{server.name}: {loads}", file=sys.stderr, flush=True)
    return results


def markdown(results: list[tuple[Server, float, float, dict[int, Load]]]) -> list[str]:
    base = next(r for r in results if r[0].name.startswith("MLServer"))
    floor = next(r for r in results if r[0].name == FLOOR)
    lines = [
        f"Same scikit-learn model (LogisticRegression, {FEATURES} features, 3 classes, joblib), 1-row requests,",
        f"each server pinned to CPU 0 and wrk to CPU 1 (except the every-core row), {DURATION} s per "
        "concurrency after a 3 s warm-up. Server CPU per request is the server's own CPU time (all its "
        "processes) over the run divided by the requests answered, so it does not depend on wrk's core.",
        "",
        "| Server | Concurrency | req/s | p50 | p99 | errors | server CPU per request | req/s vs floor "
        "| req/s vs MLServer | ready after | RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for server, ready_s, rss, loads in results:
        for c, load in loads.items():
            lines.append(
                f"| {server.name} | {c} | {load.rps:.0f} | {load.p50_ms:.1f} ms | {load.p99_ms:.1f} ms | "
                f"{load.errors} | {load.cpu_us:.0f} µs | {load.rps / floor[3][c].rps:.2f} | "
                f"{load.rps / base[3][c].rps:.2f}x | {ready_s:.1f} s | {rss:.0f} MiB |"
            )
    plain = next((r for r in results if r[0].name == "helm-mlops runtime, OIP v2 infer"), None)
    monitored = next((r for r in results if r[0].name == MONITORED), None)
    if plain and monitored:
        ratios = ", ".join(
            f"{monitored[3][c].rps / plain[3][c].rps:.3f} at concurrency {c}" for c in plain[3]
        )
        lines += ["", f"Monitoring on vs off (req/s, same run, same model and body): {ratios}."]
    return lines


def monitoring_table(workdir: Path) -> list[str]:
    """The helm-mlops runtime on the same model and body with monitoring off and on (--reference, every
    row examined, --feedback), measured one after the other in the same run."""
    model = make_model(workdir)
    port = free_port()
    base = [sys.executable, "-m", "hm_runtime", "--model", str(model), "--trust-model", "--name", "bench"]
    base += ["--port", str(port), "--host", "127.0.0.1"]
    env = {**os.environ, "PYTHONPATH": str(RUNTIME)}
    url, ready = f"http://127.0.0.1:{port}/v2/models/bench/infer", f"http://127.0.0.1:{port}/v2/health/ready"
    modes = {"off": base, "on": [*base, *MONITORING_ARGS, str(workdir / "reference.npy")]}
    loads: dict[str, dict[int, Load]] = {"off": {}, "on": {}}
    # Off and on alternate, MONITORING_ROUNDS times each; the best req/s of each stands (a shared
    # machine's noise only ever slows a round down).
    for _round in range(MONITORING_ROUNDS):
        for mode, argv in modes.items():
            server = Server(f"monitoring {mode}", url, v2_body(), argv, env, ready, workdir)
            with running(server, workdir / f"monitoring-{mode}.log"):
                wrk(url, server.body, 32, 3, workdir)  # warm-up
                for c in CONCURRENCY:
                    load = wrk(url, server.body, c, DURATION, workdir)
                    if c not in loads[mode] or load.rps > loads[mode][c].rps:
                        loads[mode][c] = load
            print(f"monitoring {mode}: {loads[mode]}", file=sys.stderr, flush=True)
    lines = [
        f"helm-mlops runtime, OIP v2 infer, the same model with monitoring off and on (--reference of "
        f"{FEATURES} features, sample rate 1, --feedback), {DURATION} s per concurrency, same run; off and on "
        f"alternate {MONITORING_ROUNDS} times, the best round of each shown.",
        "",
        "| Monitoring | Concurrency | req/s | p50 | p99 | errors | req/s on vs off |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        for c, load in loads[mode].items():
            ratio = load.rps / loads["off"][c].rps
            lines.append(
                f"| {mode} | {c} | {load.rps:.0f} | {load.p50_ms:.1f} ms | {load.p99_ms:.1f} ms | "
                f"{load.errors} | {ratio:.3f} |"
            )
    return lines


TORCH_MODELS = """
import numpy as np, torch, keras
net = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)).eval()
torch.jit.script(net).save("model.pt")
m = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)])
m.save("model.h5")
m.save("model.keras")
"""


def format_models(workdir: Path, model: Path) -> list[tuple[str, Path, str, list[str]]]:
    """(label, model, venv, extra args) for every format the runtime serves; venv: the lock whose venv
    serves it (sklearn, onnx, mlflow: what the chart's install-deps installs, as in a pod), or torch
    (hack/torch-env.sh) for TorchScript and Keras."""
    import joblib
    import mlflow.sklearn
    from skl2onnx import to_onnx

    estimator = joblib.load(model)
    pkl = workdir / "model.pkl"
    pkl.write_bytes(__import__("pickle").dumps(estimator))
    onnx = workdir / "model.onnx"
    onnx.write_bytes(to_onnx(estimator, np_zeros(), options={"zipmap": False}).SerializeToString())
    mlflow_dir = workdir / "mlflow-model"
    mlflow.sklearn.save_model(estimator, str(mlflow_dir))
    out = [
        ("scikit-learn .pkl", pkl, "sklearn", ["--trust-model"]),
        ("scikit-learn .joblib", model, "sklearn", ["--trust-model"]),
        ("ONNX (skl2onnx)", onnx, "onnx", []),
        ("MLflow model dir (sklearn flavor)", mlflow_dir, "mlflow", ["--trust-model"]),
    ]
    if torch_python():
        env = {**os.environ, "KERAS_BACKEND": "torch"}
        subprocess.run(
            [torch_python(), "-c", TORCH_MODELS], cwd=workdir, env=env, check=True, capture_output=True
        )
        out += [
            ("TorchScript .pt", workdir / "model.pt", "torch", ["--trust-model"]),
            ("Keras .h5 (torch backend)", workdir / "model.h5", "torch", []),
            ("Keras .keras (torch backend)", workdir / "model.keras", "torch", []),
        ]
    return out


def torch_python() -> str:
    """The torch venv's python (hack/torch-env.sh), or "" where it cannot be made."""
    done = subprocess.run(["bash", str(REPO / "hack" / "torch-env.sh")], capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else ""


def pod_python(fmt: str, lock: Path | None = None) -> str:
    """The python of a venv holding requirements/<fmt>.txt (or `lock`): what install-deps installs."""
    argv = ["bash", str(REPO / "hack" / "runtime-env.sh"), fmt, *([str(lock)] if lock else [])]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"hack/runtime-env.sh {fmt} failed:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def np_zeros() -> object:
    import numpy as np

    return np.zeros((1, FEATURES), dtype=np.float32)


# BENCH_BEFORE_REF=<commit>: the cold-start table also starts the runtime as it was at that commit (its
# code and its locks, in the same run), for a change's before and after.
BEFORE_REF = os.environ.get("BENCH_BEFORE_REF", "")
STARTS = 3  # cold starts per format and version: the median is reported


def runtime_at(ref: str, workdir: Path) -> Path:
    """The runtime's files (code and locks) as they were at `ref`."""
    dest = workdir / f"runtime-at-{ref}"
    dest.mkdir(exist_ok=True)
    files = "charts/inference-service/files"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, files], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / files


def cold_start(python: str, runtime: Path, path: Path, extra: list[str], workdir: Path) -> tuple[float, float]:
    """Median seconds from exec to ready over STARTS starts, and the RSS after load of the last."""
    times, rss = [], 0.0
    for _ in range(STARTS):
        port = free_port()
        server = Server(
            path.name,
            "",
            "",
            [python, "-m", "hm_runtime", "--model", str(path), "--port", str(port), "--host", "127.0.0.1", *extra],
            {**os.environ, "PYTHONPATH": str(runtime), "KERAS_BACKEND": "torch"},
            f"http://127.0.0.1:{port}/v2/health/ready",
            workdir,
        )
        with running(server, workdir / "format.log") as (pid, ready_s):
            times.append(ready_s)
            rss = rss_mb(pid)
    return sorted(times)[len(times) // 2], rss


def format_table(workdir: Path) -> list[str]:
    """Cold start to ready and RSS after load, per format (one process per model, pinned to CPU 0),
    each format in the venv a pod has for it; with BENCH_BEFORE_REF, also the runtime at that commit."""
    model = workdir / "model.joblib" if (workdir / "model.joblib").exists() else make_model(workdir)
    before = runtime_at(BEFORE_REF, workdir) if BEFORE_REF else None
    head = "| Format | Ready after (cold start) | RSS after load |"
    if before is not None:
        head = f"| Format | Ready after (cold start) | at {BEFORE_REF} (before) | RSS after load |"
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for label, path, venv, extra in format_models(workdir, model):
        python = torch_python() if venv == "torch" else pod_python(venv)
        ready_s, rss = cold_start(python, RUNTIME, path, extra, workdir)
        cells = [label, f"{ready_s:.2f} s"]
        if before is not None:
            old = torch_python() if venv == "torch" else pod_python(venv, before / "requirements" / f"{venv}.txt")
            try:
                cells.append(f"{cold_start(old, before, path, extra, workdir)[0]:.2f} s")
            except RuntimeError as exc:  # e.g. a lock that lacked what the model needs
                print(f"{label} at {BEFORE_REF}: {exc}", file=sys.stderr)
                cells.append("did not load")
        lines.append("| " + " | ".join([*cells, f"{rss:.0f} MiB"]) + " |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


# A model large enough for the GPU to matter: a 1024-4096-4096-1000 MLP (about 25 M parameters).
GPU_FEATURES = 1024
GPU_BATCHES = (1, 8, 64)
GPU_CONCURRENCY = 8
GPU_MODEL = """
import json, torch
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 4096), torch.nn.ReLU(),
    torch.nn.Linear(4096, 1000),
).eval()
torch.jit.script(net).save("gpu-mlp.pt")
cuda = torch.cuda.is_available() and torch.cuda.device_count() > 0
print(json.dumps({"cuda": cuda, "name": torch.cuda.get_device_name(0) if cuda else ""}))
"""


def gpu_table(workdir: Path) -> list[str]:
    """rows/s of the same TorchScript MLP served with --device cpu and --device cuda, 1, 8 and 64 rows
    per /predict request at concurrency 8; [] where torch sees no CUDA device (nothing is estimated)."""
    torch_env = subprocess.run(["bash", str(REPO / "hack" / "torch-env.sh")], capture_output=True, text=True)
    if torch_env.returncode != 0:
        return []
    torch_python = torch_env.stdout.strip().splitlines()[-1]
    made = subprocess.run(
        [torch_python, "-c", GPU_MODEL], cwd=workdir, check=True, capture_output=True, text=True
    )
    facts = json.loads(made.stdout.strip().splitlines()[-1])
    if not facts["cuda"]:
        return []
    loads: dict[tuple[str, int], Load] = {}
    for device in ("cpu", "cuda"):
        port = free_port()
        argv = [torch_python, "-m", "hm_runtime", "--model", str(workdir / "gpu-mlp.pt"), "--trust-model"]
        argv += ["--device", device, "--port", str(port), "--host", "127.0.0.1"]
        server = Server(
            f"torch MLP on {device}",
            f"http://127.0.0.1:{port}/predict",
            "",
            argv,
            {**os.environ, "PYTHONPATH": str(RUNTIME)},
            f"http://127.0.0.1:{port}/v2/health/ready",
            workdir,
        )
        with running(server, workdir / f"gpu-{device}.log"):
            for batch in GPU_BATCHES:
                rows = [[((i * 7 + j) % 100) / 100 for j in range(GPU_FEATURES)] for i in range(batch)]
                body = json.dumps({"input": rows})
                wrk(server.url, body, GPU_CONCURRENCY, 3, workdir)  # warm-up (CUDA kernels, allocator)
                loads[(device, batch)] = wrk(server.url, body, GPU_CONCURRENCY, DURATION, workdir)
    lines = [
        f"TorchScript MLP 1024-4096-4096-1000 (about 25 M parameters) served by the helm-mlops runtime "
        f"with `--device cpu` and `--device cuda` on {facts['name']}; /predict with 1, 8 and 64 rows per "
        f"request at concurrency {GPU_CONCURRENCY}, server process on CPU 0 (torch's CPU threads "
        f"included), {DURATION} s per row after a 3 s warm-up.",
        "",
        "| Rows per request | CPU req/s | CPU p50 | CUDA req/s | CUDA p50 | CUDA rows/s vs CPU | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in GPU_BATCHES:
        cpu, cuda = loads[("cpu", batch)], loads[("cuda", batch)]
        lines.append(
            f"| {batch} | {cpu.rps:.0f} | {cpu.p50_ms:.1f} ms | {cuda.rps:.0f} | {cuda.p50_ms:.1f} ms | "
            f"{cuda.rps / cpu.rps:.1f}x | {cpu.errors + cuda.errors} |"
        )
    return lines


NOTES = [
    "- The floor row is uvicorn (uvloop + httptools) answering a constant JSON body from a bare ASGI",
    "  callable: what any Python server on this stack costs before doing anything. `req/s vs floor` is",
    "  ours over it in the same run. Server CPU per request is the server processes' utime + stime over",
    "  the run divided by the answers, so it does not depend on wrk's core.",
    "- The `(before)` rows (BENCH_BEFORE_REF) run the runtime as it was at that commit, in the venv its",
    "  own locks make, in the same run: the change measured against itself, not against an old table.",
    "- Where the time went before (py-spy, 10 s at 200 Hz under wrk -c32, v2 infer, 4.4k req/s, 225 µs of",
    "  server CPU per request): the FastAPI/Starlette stack around the handler (ServerErrorMiddleware,",
    "  ExceptionMiddleware, AsyncExitStackMiddleware, the router, FastAPI's body-limit and telemetry",
    "  middleware: about a quarter of the samples), `asyncio.wait_for` around every body read (a task per",
    "  chunk, about 5%), uvicorn's ProxyHeadersMiddleware (4%), uvicorn's transport writes and parsing",
    "  (about 17%, the floor's share), the model's predict (4%), parsing and checks (4%), `str(dtype)` per",
    "  answer (2%).",
    "- What changed, by measured effect at concurrency 32 on one core: POST /predict and v2 infer served",
    "  straight from the ASGI callable (no router, no middleware stack; body read from `receive` with one",
    "  deadline sweep per server instead of a timer per request; answers as prepared bytes; proxy headers",
    "  off): 4.4k -> 10-12k req/s. Then (a) the answer's status line and headers written together with",
    "  its body in one writev instead of two writes (on loopback each write is a system call that also",
    "  delivers the segment: about 5 µs each; not under `Expect: 100-continue`); (b) the batcher lets the",
    "  event loop take one more turn before each batch, so the requests read in that turn join it: 30 rows",
    "  per model call instead of 15 at 32 clients, halving scikit-learn's fixed 0.1 ms per call per",
    "  request; (c) a shortcut for the plain v2 body (one numeric tensor, nothing optional: 7 -> 4 µs,",
    "  proven equal to the full path by a hypothesis test); (d) fewer coroutines per request: 12k -> 16k.",
    "- Where the time goes now (py-spy, same setup, v2 infer): uvicorn and the event loop about 60% of",
    "  the samples (the writev 12%, its send/receive cycle, epoll, the keep-alive timer per answer), ours",
    "  about 28% (dispatch, body, parsing and checks, batching, JSON out), scikit-learn's predict about 3%.",
    "- The every-core row runs one worker per CPU with the server unpinned; on a 2-CPU machine wrk runs",
    "  on the same CPUs, so the row shows the workers sharing two cores with the load generator, not two",
    "  free cores.",
    "- MLServer runs with `parallel_workers: 0` (one process, as on one core) and its sklearn runtime;",
    "  KServe with one worker, request latency logging off, and the custom-model class its docs describe.",
    "- Cold starts: each format in the venv a pod has for it (hack/runtime-env.sh: what install-deps",
    "  installs from requirements/<format>.txt; TorchScript and Keras in hack/torch-env.sh's venv), the",
    "  median of 3 starts from exec to the first 200 of /v2/health/ready (polled every 10 ms). What",
    "  changed: FastAPI and pydantic neither imported nor installed (starlette directly), no garbage",
    "  collection while the framework and model load (the one full collection a second after ready),",
    "  monitoring code imported only when monitoring is on, no websocket protocol. scikit-learn's own",
    "  import (scipy.stats among it) is about 0.7 s of the .pkl/.joblib figure.",
    "- The MLflow row `did not load` before: MLflow 3 saves scikit-learn models with skops by default,",
    "  which the mlflow lock lacked, so such a model failed to load in a pod; the lock now pins skops.",
    "- `make soak` runs the runtime for 10 minutes at concurrency 32, one request in ten malformed, and",
    "  reports errors and RSS growth.",
]


def soak(seconds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = make_model(workdir)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "hm_runtime",
            "--model",
            str(model),
            "--trust-model",
            "--name",
            "bench",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ]
        server = Server(
            "soak",
            f"http://127.0.0.1:{port}/v2/models/bench/infer",
            v2_body(),
            argv,
            {**os.environ, "PYTHONPATH": str(RUNTIME)},
            f"http://127.0.0.1:{port}/v2/health/ready",
            workdir,
        )
        bad = malformed_bodies()
        with running(server, workdir / "soak.log") as (pid, _ready):
            mixed_wrk(server.url, server.body, bad, 32, 10, workdir)
            before = rss_mb(pid)
            load, counts = mixed_wrk(server.url, server.body, bad, 32, seconds, workdir)
            after = rss_mb(pid)
    growth = (after - before) / before * 100
    answered = sum(counts.values())
    share = counts.get("refused", 0) / answered * 100 if answered else 0.0
    # One request in ten is malformed: all of them, and none of the valid ones, must be refused.
    ok = load.errors == 0 and growth < 10 and 9.5 <= share <= 10.5
    result = (
        f"soak {seconds} s at concurrency 32, one request in ten malformed: {load.rps:.0f} req/s, "
        f"p99 {load.p99_ms:.1f} ms, {counts.get('ok', 0)} answered 200, {counts.get('refused', 0)} "
        f"refused with a 4xx ({share:.1f}%), {load.errors} errors (5xx, other codes, socket errors), "
        f"RSS {before:.0f} -> {after:.0f} MiB ({growth:+.1f}%)"
    )
    print(result)
    record_soak(
        f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {result}: {'pass' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


SOAK_HEADING = "## Soak (`make soak`)"


def record_soak(line: str) -> None:
    """Keep the latest soak result in docs/benchmarks.md (hack/bench.py carries it over)."""
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    head = text.split(SOAK_HEADING)[0].rstrip()
    intro = (
        "The runtime under wrk at concurrency 32, 1-row v2 requests with one in ten malformed (null, "
        "a feature short, FP32 overflow, INT8 out of range, BYTES, an unknown datatype, cut-short JSON, "
        "no tensor list), server on CPU 0: every malformed request refused with a 4xx, zero errors (5xx, "
        "other codes, socket errors) and RSS growth under 10% pass."
    )
    doc.write_text(f"{head}\n\n{SOAK_HEADING}\n\n{intro}\n\n{line}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--soak", type=int, help="run only the soak, for this many seconds")
    parser.add_argument("--gpu", action="store_true", help="run only the GPU table (needs a CUDA device)")
    parser.add_argument("--monitoring", action="store_true", help="run only the monitoring on/off table")
    ns = parser.parse_args()
    if ns.monitoring:
        with tempfile.TemporaryDirectory() as tmp:
            print("\n".join(monitoring_table(Path(tmp))))
        return 0
    if ns.soak:
        return soak(ns.soak)
    if ns.gpu:
        with tempfile.TemporaryDirectory() as tmp:
            table = gpu_table(Path(tmp))
        print("\n".join(table) if table else "no CUDA device visible to torch: no GPU table", file=sys.stderr)
        return 0 if table else 1
    with tempfile.TemporaryDirectory() as tmp:
        lines = markdown(measure_all(Path(tmp)))
        lines += ["", *monitoring_table(Path(tmp))]
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
