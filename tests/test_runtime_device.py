"""Where the runtime's model predicts: `--device auto|cpu|cuda|cuda:N` (issue 18).

The choice itself (hm_runtime/device.py's `resolve`) is a pure function of the request, the format and
the machine's facts, so every branch runs here on injected facts. The rest is the real thing: real
TorchScript and pickled torch models served on the CPU by `helm-mlops runtime serve` (v2 metadata and
/metrics say `cpu`), an explicit CUDA device refused at start with exit 2 by the real processes, and the
chart's value rendered by Helm 4 and Helm 3 and refused by its schema when wrong.

The GPU tests at the end run only where torch sees a CUDA device; elsewhere they skip with the reason.
They skip under CI=true too: CI machines have no GPU, and the skip-or-fail rule of tests/conftest.py
concerns what CI must have (../shared, the cluster binaries, the torch venv), which a GPU is not."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generator.runtime import _devices, _models
from tests.support.charts import CHARTS, find, template, template_error
from tests.support.servers import http_json, runtime_server

EXE = str(Path(sys.executable).parent / "helm-mlops")
CHART = CHARTS / "inference-service"
RUNTIME = CHART / "files"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"

dev = _devices()
Facts = dev.Facts


# The choice, over injected facts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "fmt", "facts", "device", "why"),
    [
        ("cpu", "torch", Facts(1, torch_gpus=1), "cpu", "--device cpu"),
        ("auto", "torch", Facts(1, torch_gpus=1), "cuda:0", "1 CUDA device(s) usable by torch"),
        ("auto", "torch", Facts(2, torch_gpus=2), "cuda:0", "2 CUDA device(s) usable by torch"),
        ("auto", "torch", Facts(0, torch_gpus=0), "cpu", "no CUDA device is visible"),
        ("auto", "torch", Facts(1, torch_gpus=0), "cpu", "a CPU-only torch build"),
        ("auto", "torch", Facts(1), "cpu", "torch is not installed"),
        ("auto", "onnx", Facts(1, ort_providers=(CUDA_EP, CPU_EP)), "cuda:0", "usable by onnx"),
        ("auto", "onnx", Facts(1, ort_providers=(CPU_EP,)), "cpu", "install onnxruntime-gpu"),
        ("auto", "onnx", Facts(0, ort_providers=(CUDA_EP, CPU_EP)), "cpu", "no CUDA device is visible"),
        ("auto", "keras", Facts(1, keras_backend="tensorflow", keras_gpus=1), "cuda:0", "usable by keras"),
        ("auto", "keras", Facts(1, keras_backend="jax", keras_gpus=0), "cpu", "jax backend lists no GPU"),
        ("auto", "sklearn", Facts(4), "cpu", "predict on the CPU only"),
        ("auto", "joblib", Facts(4), "cpu", "predict on the CPU only"),
        ("auto", "mlflow", Facts(4), "cpu", "pyfunc"),
        ("cuda", "torch", Facts(1, torch_gpus=1), "cuda:0", "--device cuda"),
        ("cuda:1", "torch", Facts(2, torch_gpus=2), "cuda:1", "--device cuda:1"),
        ("cuda:0", "onnx", Facts(1, ort_providers=(CUDA_EP, CPU_EP)), "cuda:0", "--device cuda:0"),
        ("cuda:0", "keras", Facts(1, keras_backend="torch", keras_gpus=1), "cuda:0", "--device cuda:0"),
    ],
)
def test_resolve(asked: str, fmt: str, facts: Any, device: str, why: str) -> None:
    placed = dev.resolve(asked, fmt, facts)
    assert placed.device == device
    assert why in placed.reason, placed.reason
    # Only a GPU that auto chose may fall back to the CPU when its framework then fails to start on it.
    assert placed.fallback == (asked == "auto" and device != "cpu")


@pytest.mark.parametrize(
    ("asked", "fmt", "facts", "message"),
    [
        ("cuda", "torch", Facts(0, torch_gpus=0), "--device cuda cannot be used: no CUDA device is visible"),
        ("cuda:0", "torch", Facts(1, torch_gpus=0), "--device cuda:0 cannot be used: torch sees no CUDA"),
        ("cuda", "torch", Facts(1), "torch is not installed"),
        ("cuda:2", "torch", Facts(2, torch_gpus=2), "--device cuda:2 is out of range: 2 CUDA device(s)"),
        ("cuda:1", "onnx", Facts(1, ort_providers=(CUDA_EP,)), "(cuda:0 to cuda:0)"),
        (
            "cuda",
            "onnx",
            Facts(1, ort_providers=(CPU_EP,)),
            "install onnxruntime-gpu in place of onnxruntime",
        ),
        ("cuda", "onnx", Facts(0, ort_providers=(CUDA_EP,)), "no CUDA device is visible"),
        ("cuda", "keras", Facts(1), "keras is not installed"),
        (
            "cuda",
            "keras",
            Facts(1, keras_backend="tensorflow", keras_gpus=0),
            "tensorflow backend lists no GPU",
        ),
        ("cuda", "sklearn", Facts(1), "sklearn models (scikit-learn-style pickles) predict on the CPU only"),
        ("cuda", "mlflow", Facts(1), "pyfunc"),
    ],
)
def test_explicit_cuda_that_cannot_be_used_is_an_error(
    asked: str, fmt: str, facts: Any, message: str
) -> None:
    with pytest.raises(dev.DeviceError) as caught:
        dev.resolve(asked, fmt, facts)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert "fix:" in text and "--device auto" in text  # the way out is named, never taken silently


@pytest.mark.parametrize(
    "bad",
    [
        *("gpu", "cuda:-1", "cuda:x", "cuda:", "cpu:0", "auto:1", "cuda:01", "", "cuda0"),
        # Strict, as the chart's schema and the answers' are: no case folding, no trimming.
        *("CUDA", " cuda", "Cpu", "cuda ", "AUTO", "cuda:0\n"),
    ],
)
def test_bad_values_are_refused(bad: str) -> None:
    with pytest.raises(dev.DeviceError, match="is not a device: use auto, cpu, cuda or cuda:N"):
        dev.parse(bad)


SAMPLES = [
    "auto",
    "cpu",
    "cuda",
    "cuda:0",
    "cuda:7",
    "cuda:12",
    "gpu",
    "cuda:-1",
    "cuda:x",
    "cuda:",
    "cpu:0",
    "cuda:01",
    "CUDA",
    " cuda",
    "Cpu",
    "",
]


def test_the_chart_the_answers_and_the_runtime_take_the_same_devices() -> None:
    """One rule in three places: the runtime's parse, the chart's schema, the answers' schema. The one
    difference is written down: an empty answer means "unset" (auto; generator/components.py writes no
    chart value for it), which the chart and the runtime's --device refuse."""
    import json
    import re

    from generator.answers_schema import DEVICE

    schema = json.loads((CHART / "values.schema.json").read_text())
    chart = schema["properties"]["fastapi"]["properties"]["device"]["pattern"]
    for sample in SAMPLES:
        try:
            dev.parse(sample)
            runtime = True
        except dev.DeviceError:
            runtime = False
        assert bool(re.match(chart, sample)) == runtime, sample
        assert bool(re.match(DEVICE, sample)) == (runtime or sample == ""), sample
    assert chart == dev.PATTERN


@pytest.mark.parametrize(
    ("name", "device"),
    [
        ("/job:localhost/replica:0/task:0/device:GPU:1", "cuda:1"),  # TensorFlow
        ("/job:localhost/replica:0/task:0/device:CPU:0", "cpu"),
        ("cuda:0", "cuda:0"),  # torch
        ("cpu", "cpu"),
        ("gpu:2", "cuda:2"),  # jax: platform:id
        ("cuda", "cuda:0"),
    ],
)
def test_keras_device_names(name: str, device: str) -> None:
    """Where Keras' variables live, in each backend's words, said as the runtime says it."""
    assert _models().device_name(name) == device


def test_onnx_providers_put_cuda_first() -> None:
    models = _models()
    assert models.onnx_providers("cuda:1") == [(CUDA_EP, {"device_id": 1}), CPU_EP]
    assert models.onnx_providers("cpu") == [CPU_EP]


# The real processes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pickle

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("iris") / "iris.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=300).fit(x, y)))
    return path


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize("bad", ["gpu", "cuda:-1", "cuda:x"])
def test_cli_refuses_a_bad_device(iris_pickle: Path, bad: str) -> None:
    done = _run([EXE, "runtime", "serve", "--model", str(iris_pickle), "--trust-model", "--device", bad])
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: --device: {bad!r} is not a device"), done.stderr
    assert "fix: --device auto" in done.stderr and "Traceback" not in done.stderr


def test_runtime_refuses_a_bad_device_from_the_environment(iris_pickle: Path) -> None:
    done = _run(
        [sys.executable, "-m", "hm_runtime", "--model", str(iris_pickle), "--trust-model"],
        env={"PYTHONPATH": str(RUNTIME), "HM_RUNTIME_DEVICE": "cuda:-1"},
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hm_runtime: error: argument --device: 'cuda:-1' is not a device"), last
    assert "HM_RUNTIME_DEVICE" in last and "fastapi.device" in last and "Traceback" not in done.stderr


def test_cuda_for_a_pickle_fails_at_start(iris_pickle: Path) -> None:
    """A scikit-learn pickle cannot use a GPU, whatever the machine: the CLI refuses `cuda` before it
    starts or prints anything, in its own error/fix form; the runtime itself (a pod) exits with 2 too."""
    done = _run([EXE, "runtime", "serve", "--model", str(iris_pickle), "--trust-model", "--device", "cuda"])
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: --device: cuda cannot be used: sklearn models (scikit-learn-style pickles) predict on "
        "the CPU only\n  fix: --device auto or --device cpu\n"
    ), done.stderr
    done = _run(
        [sys.executable, "-m", "hm_runtime", "--model", str(iris_pickle), "--trust-model"],
        env={"PYTHONPATH": str(RUNTIME), "HM_RUNTIME_DEVICE": "cuda:0"},
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hm_runtime: error: --device cuda:0 cannot be used: sklearn models"), last
    assert "fix: --device auto" in last and "Traceback" not in done.stderr


def test_max_batch_rows_zero_is_the_devices_default(iris_pickle: Path, tmp_path: Path) -> None:
    """--max-batch-rows 0 means what the chart's fastapi.batching.maxRows: 0 means: 64 on the CPU."""
    log = tmp_path / "server.log"
    with runtime_server(iris_pickle, "--trust-model", "--max-batch-rows", "0", "--device", "cpu", log=log):
        pass
    assert "device cpu (--device cpu); at most 64 rows per model call" in log.read_text(), log.read_text()
    done = _run([EXE, "runtime", "serve", "--help"])
    assert "0 or unset: 64 on CPU, 512 on CUDA" in " ".join(done.stdout.split()), done.stdout


# ONNX when onnxruntime cannot start CUDA ----------------------------------------------------------
# onnxruntime-gpu without the CUDA or cuDNN libraries lists CUDAExecutionProvider, then starts the
# session on the CPU (a warning; some builds raise). Here the facts say "a GPU and that provider", and
# the real onnxruntime (a CPU build) does what the GPU build does without its libraries: falls back.


@pytest.fixture(scope="module")
def iris_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    path = tmp_path_factory.mktemp("onnx") / "iris.onnx"
    path.write_bytes(to_onnx(LogisticRegression(max_iter=300).fit(x, y), x[:1]).SerializeToString())
    return path


def _cuda_falls_back(path: str, options: Any, providers: list[Any]) -> Any:
    """onnxruntime-gpu without its CUDA libraries: the session it makes runs on the CPU."""
    import onnxruntime

    return onnxruntime.InferenceSession(path, options, providers=[CPU_EP])


def _cuda_raises(path: str, options: Any, providers: list[Any]) -> Any:
    """A build that raises instead (onnxruntime's message for a missing cuDNN, spread over lines)."""
    import onnxruntime

    if CUDA_EP in [p[0] if isinstance(p, tuple) else p for p in providers]:
        raise RuntimeError("Failed to load library libonnxruntime_providers_cuda.so:\nlibcudnn.so.9")
    return onnxruntime.InferenceSession(path, options, providers=providers)


@pytest.mark.parametrize("factory", [_cuda_falls_back, _cuda_raises])
def test_onnx_auto_falls_back_to_the_cpu_and_cuda_is_refused(
    iris_onnx: Path, factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    models = _models()
    with caplog.at_level("WARNING", logger="hm_runtime"):
        loaded = models._load_onnx("iris", iris_onnx, "cuda:0", cpu_fallback=True, factory=factory)
    assert loaded.device == "cpu"  # what metadata and /metrics will say: where it really runs
    assert loaded.predict(np.zeros((1, 4), dtype=np.float32)).shape == (1,)
    [line] = [r.getMessage() for r in caplog.records if "CUDAExecutionProvider" in r.getMessage()]
    assert line.startswith("--device auto: onnxruntime could not start CUDAExecutionProvider on cuda:0")
    assert line.endswith("; serving on the CPU"), line
    with pytest.raises(models.DeviceUnusable) as caught:
        models._load_onnx("iris", iris_onnx, "cuda:0", cpu_fallback=False, factory=factory)
    text = str(caught.value)
    assert text.startswith("--device cuda:0 cannot be used: onnxruntime could not start CUDA"), text
    assert "fix: install the CUDA and cuDNN libraries" in text and "\n" not in text


# The runtime with the facts of a GPU machine whose onnxruntime-gpu cannot start CUDA (the probe
# replaced, everything else real: argument parsing, placement, loading, the server, its exit status).
FAKE_GPU = (
    "import sys; import hm_runtime.device as d; "
    "d.probe = lambda fmt: d.Facts(1, ort_providers=('CUDAExecutionProvider', 'CPUExecutionProvider')); "
    "from hm_runtime.__main__ import main; sys.exit(main())"
)


def test_onnx_runtime_auto_serves_on_the_cpu_when_cuda_will_not_start(
    iris_onnx: Path, tmp_path: Path
) -> None:
    from tests.support.servers import free_port, wait_http

    port = free_port()
    log = tmp_path / "server.log"
    argv = [sys.executable, "-c", FAKE_GPU, "--model", str(iris_onnx), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--name", "iris"]
    env = {**os.environ, "PYTHONPATH": str(RUNTIME), "HM_RUNTIME_DEVICE": "auto"}
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v2/health/ready", timeout=60, proc=proc, log=log)
        code, meta = http_json(url + "/v2/models/iris")
        assert code == 200 and meta["parameters"] == {"device": "cpu"}, meta
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'hm_model_device_info{device="cpu"} 1.0' in metrics, metrics
        assert 'device="cuda:0"' not in metrics, metrics
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "device cuda:0 (--device auto: 1 CUDA device(s) usable by onnx)" in text, text
    assert "--device auto: onnxruntime could not start CUDAExecutionProvider on cuda:0" in text, text
    assert "ready on cpu" in text, text


def test_onnx_runtime_explicit_cuda_that_will_not_start_exits_2(iris_onnx: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-c", FAKE_GPU, "--model", str(iris_onnx)),
            *("--host", "127.0.0.1", "--port", "0", "--device", "cuda:0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(RUNTIME)},
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "hm_runtime: error: --device cuda:0 cannot be used: onnxruntime could not start "
        "CUDAExecutionProvider on cuda:0"
    ), last
    assert "fix: install the CUDA and cuDNN libraries" in last and "Traceback" not in done.stderr


def test_cuda_for_onnx_without_the_cuda_provider_fails_at_start(tmp_path: Path) -> None:
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    if CUDA_EP in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDAExecutionProvider (onnxruntime-gpu)")
    x, y = load_iris(return_X_y=True)
    path = tmp_path / "iris.onnx"
    path.write_bytes(to_onnx(LogisticRegression(max_iter=300).fit(x, y), x[:1]).SerializeToString())
    done = _run([EXE, "runtime", "serve", "--model", str(path), "--device", "cuda:0"])
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "--device cuda:0 cannot be used: onnxruntime has no CUDAExecutionProvider" in last, last
    assert "install onnxruntime-gpu" in last and "Traceback" not in done.stderr


# Real torch models ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_gpus(torch_python: str) -> int:
    """CUDA devices torch sees in the torch venv (asked once: importing torch takes seconds)."""
    probe = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    return int(_run([torch_python, "-c", probe]).stdout.strip() or 0)


@pytest.fixture(scope="module")
def torch_models(torch_python: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """scripted.pt and module.pt (the runtime tests' net) and their CPU predictions for ROWS."""
    from tests.test_runtime_real import NETDEF, TORCH_MODEL, _in_torch_venv

    folder = tmp_path_factory.mktemp("torch")
    (folder / "netdef.py").write_text(NETDEF)
    return folder, _in_torch_venv(torch_python, TORCH_MODEL, folder)


def _with_path(folder: Path) -> dict[str, str]:
    """PYTHONPATH with the folder of the pickled module's class (netdef.py), as a pod would have it."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)}


def _serves_on(url: str, device: str, expected: np.ndarray) -> None:
    from tests.test_runtime_real import ROWS

    code, meta = http_json(url + "/v2/models/iris")
    assert code == 200 and meta["parameters"] == {"device": device}, meta
    code, body = http_json(url + "/predict", {"input": ROWS.tolist()})
    assert code == 200, body
    np.testing.assert_allclose(np.asarray(body["prediction"]), expected, rtol=1e-4, atol=1e-5)
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert f'hm_model_device_info{{device="{device}"}} 1.0' in metrics, metrics


@pytest.mark.parametrize(("file", "device"), [("scripted.pt", "cpu"), ("module.pt", "auto")])
def test_torch_served_on_the_cpu(
    torch_python: str,
    torch_gpus: int,
    torch_models: tuple[Path, np.ndarray],
    tmp_path: Path,
    file: str,
    device: str,
) -> None:
    if device == "auto" and torch_gpus:
        pytest.skip("torch sees a CUDA device here: auto serves on it (test_torch_on_cuda)")
    folder, expected = torch_models
    model = folder / file
    pin = hashlib.sha256(model.read_bytes()).hexdigest()
    log = tmp_path / "server.log"
    args = ("--sha256", pin) if file == "scripted.pt" else ("--trust-model",)
    with runtime_server(
        model, *args, "--device", device, python=torch_python, env=_with_path(folder), log=log
    ) as url:
        _serves_on(url, "cpu", expected)
    text = log.read_text()
    assert "device cpu (" in text and "at most 64 rows per model call" in text, text
    if device == "auto":
        assert "serving on the CPU because" in text, text
        assert "no CUDA device is visible" in text or "torch sees no CUDA device" in text, text


# The device the runtime reports is where the weights are. To see that without a GPU: load onto torch's
# "meta" device with the original bug put back (the map and .to() leave the weights on the CPU): the
# model must say cpu, not the device it was asked for.
LEFT_ON_THE_CPU = """
import sys, torch
from hm_runtime import models
torch.nn.Module.to = lambda self, *a, **k: self
real_jit, real_load = torch.jit.load, torch.load
torch.jit.load = lambda f, map_location=None, **k: real_jit(f, map_location="cpu", **k)
torch.load = lambda f, map_location=None, **k: real_load(f, map_location="cpu", **k)
print(models._load_torch("m", models.Path(sys.argv[1]), sys.argv[2]).device)
"""


@pytest.mark.parametrize("file", ["scripted.pt", "module.pt"])
def test_torch_reports_where_the_weights_are(
    torch_python: str, torch_models: tuple[Path, np.ndarray], file: str
) -> None:
    folder, _ = torch_models
    env = {"PYTHONPATH": os.pathsep.join((str(RUNTIME), str(folder)))}
    done = _run([torch_python, "-c", LEFT_ON_THE_CPU, str(folder / file), "meta"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cpu", done.stdout
    honest = LEFT_ON_THE_CPU.replace("torch.nn.Module.to = lambda self, *a, **k: self\n", "")
    honest = honest.split("real_jit")[0] + LEFT_ON_THE_CPU.split("\n")[-2] + "\n"
    done = _run([torch_python, "-c", honest, str(folder / file), "meta"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "meta", done.stdout  # moved, and said so


def test_torch_cuda_without_a_gpu_fails_at_start(
    torch_python: str, torch_gpus: int, torch_models: tuple[Path, np.ndarray]
) -> None:
    if torch_gpus:
        pytest.skip("torch sees a CUDA device here (test_torch_on_cuda covers it)")
    folder, _ = torch_models
    done = _run(
        [
            *(EXE, "runtime", "serve", "--model", str(folder / "scripted.pt"), "--trust-model"),
            *("--device", "cuda", "--python", torch_python),
        ]
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hm_runtime: error: --device cuda cannot be used:"), last
    assert "fix: --device auto" in last and "Traceback" not in done.stderr


# The chart ------------------------------------------------------------------------------------------

PVC = {"model": {"trustModel": True, "source": {"type": "pvc", "pvc": {"claimName": "m", "path": "net.pt"}}}}


def _server_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in server["env"]}


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_chart_renders_the_device(tmp_path: Path, helm_name: str) -> None:
    env = _server_env(template(CHART, values=PVC, helm_name=helm_name, tmp_dir=tmp_path))
    assert (env["HM_RUNTIME_DEVICE"], env["HM_RUNTIME_MAX_BATCH_ROWS"]) == ("auto", "0")
    values = {**PVC, "fastapi": {"device": "cuda:1", "batching": {"maxRows": 128}}, "gpu": {"count": 2}}
    env = _server_env(template(CHART, values=values, helm_name=helm_name, tmp_dir=tmp_path))
    assert (env["HM_RUNTIME_DEVICE"], env["HM_RUNTIME_MAX_BATCH_ROWS"]) == ("cuda:1", "128")
    gpu = template(
        CHART,
        values_files=[CHART / "ci" / "fastapi-torch-gpu-values.yaml"],
        helm_name=helm_name,
        tmp_dir=tmp_path,
    )
    assert _server_env(gpu)["HM_RUNTIME_DEVICE"] == "cuda"
    # Under runtime: kserve the same runtime is KServe's custom predictor for .pt files.
    kserve = template(
        CHART,
        values_files=[CHART / "ci" / "kserve-torch-serverless-values.yaml"],
        values={"fastapi": {"device": "cuda:0"}, "gpu": {"count": 1}},
        helm_name=helm_name,
        tmp_dir=tmp_path,
    )
    [predictor] = find(kserve, "InferenceService")["spec"]["predictor"]["containers"]
    assert {e["name"]: e.get("value") for e in predictor["env"]}["HM_RUNTIME_DEVICE"] == "cuda:0"


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("bad", ["gpu", "cuda:-1", "cuda:x"])
def test_chart_schema_refuses_a_bad_device(tmp_path: Path, helm_name: str, bad: str) -> None:
    error = template_error(CHART, {**PVC, "fastapi": {"device": bad}}, helm_name, tmp_path)
    assert "fastapi.device" in error or "/fastapi/device" in error, error


# On a GPU: the same models on CUDA ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cuda_python(torch_python: str, torch_gpus: int) -> str:
    """The torch venv, where torch sees a CUDA device; a skip otherwise (also under CI=true)."""
    if not torch_gpus:
        pytest.skip("no CUDA device visible to torch: the GPU tests run on a machine with one")
    return torch_python


@pytest.mark.parametrize(
    ("file", "device"), [("scripted.pt", "cuda"), ("module.pt", "auto"), ("scripted.pt", "cuda:0")]
)
def test_torch_on_cuda(
    cuda_python: str, torch_models: tuple[Path, np.ndarray], tmp_path: Path, file: str, device: str
) -> None:
    """On the GPU, answers equal the CPU's within float32 tolerance, metadata and /metrics say cuda:0."""
    folder, expected = torch_models
    log = tmp_path / "server.log"
    with runtime_server(
        folder / file,
        "--trust-model",
        "--device",
        device,
        python=cuda_python,
        env=_with_path(folder),
        log=log,
    ) as url:
        _serves_on(url, "cuda:0", expected)
        if shutil.which("nvidia-smi"):  # the driver's own view: the server's process holds GPU memory
            query = ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"]
            pids = {int(p) for p in _run(query).stdout.split() if p.strip().isdigit()}
            assert _server_pid(url) in pids, (pids, _server_pid(url))
    text = log.read_text()
    assert "device cuda:0 (" in text and "at most 512 rows per model call" in text, text


def _server_pid(url: str) -> int:
    """The runtime serving on the URL's port (`runtime serve` replaces itself with it: one pid)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"hm_runtime" in argv and b"--port" in argv and argv[argv.index(b"--port") + 1] == port.encode():
            return int(proc.name)
    raise AssertionError(f"no hm_runtime process on port {port}")
