"""The inference runtime, for real: models of every format are made here (scikit-learn pickle and
joblib, ONNX through skl2onnx, MLflow model dir and registry alias, TorchScript and a pickled torch
module, Keras .h5 and .keras), served through `helm-mlops runtime serve`, and every answer of
`/predict` and of the v2 `infer` is compared with the model's own in-process prediction."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.charts import REPO
from tests.support.pickled import pickled
from tests.support.servers import free_port, http_json, mlflow_server, runtime_server

pytestmark = pytest.mark.real
EXE = str(Path(sys.executable).parent / "helm-mlops")
X, Y = load_iris(return_X_y=True)
ROWS = X[::15]  # 10 rows from all three classes


@pytest.fixture(scope="module")
def iris() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, Y)


def serving(
    model: Path | str, *args: str, python: str | None = None, env: dict[str, str] | None = None
) -> AbstractContextManager[str]:
    return runtime_server(model, *args, python=python, env=env)


def _assert_serves(url: str, expected: np.ndarray, rows: np.ndarray = ROWS, datatype: str = "FP64") -> None:
    code, body = http_json(url + "/predict", {"input": rows.tolist()})
    assert code == 200, body
    np.testing.assert_allclose(np.asarray(body["prediction"]), expected, rtol=1e-5, atol=1e-6)
    code, one = http_json(url + "/predict", {"input": rows[0].tolist()})  # one row, not a batch
    assert code == 200 and np.allclose(np.asarray(one["prediction"]), expected[:1], rtol=1e-5, atol=1e-6), one
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": datatype, "data": rows.reshape(-1).tolist()}
    code, v2 = http_json(url + "/v2/models/iris/infer", {"id": "r1", "inputs": [tensor]})
    assert code == 200, v2
    out = v2["outputs"][0]
    assert v2["id"] == "r1" and out["shape"][0] == len(rows)
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), expected, rtol=1e-5, atol=1e-6)


# scikit-learn, ONNX, MLflow -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_sklearn_pickles(iris: LogisticRegression, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"iris{suffix}"
    if suffix == ".joblib":
        joblib.dump(iris, path)
    else:
        path.write_bytes(pickle.dumps(iris))
    with serving(path, "--trust-model") as url:
        _assert_serves(url, iris.predict(ROWS))
        # The test interface: the response with its status and latency.
        shown = subprocess.run(
            [
                EXE,
                "runtime",
                "predict",
                "--url",
                url,
                "--input",
                json.dumps(ROWS[:2].tolist()),
                "--name",
                "iris",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0 and " -> 200 in " in shown.stdout and " ms" in shown.stdout, shown.stderr
        assert json.loads(shown.stdout.split("\n", 1)[1])["outputs"][0]["data"] == list(
            iris.predict(ROWS[:2])
        )
        code, meta = http_json(url + "/v2/models/iris")
        assert (
            code == 200
            and meta["inputs"][0]["shape"] == [-1, 4]
            and meta["platform"] in ("sklearn", "joblib")
        )


def test_onnx_from_skl2onnx(iris: LogisticRegression, tmp_path: Path) -> None:
    import onnxruntime
    from skl2onnx import to_onnx

    path = tmp_path / "iris.onnx"
    path.write_bytes(to_onnx(iris, X[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: ROWS.astype(np.float32)})[0]
    assert list(expected) == list(iris.predict(ROWS))
    with serving(path) as url:
        _assert_serves(url, expected, datatype="FP32")


def test_mlflow_model_dir_and_registry_alias(iris: LogisticRegression, tmp_path: Path) -> None:
    local = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(iris, str(local), input_example=X[:2])
    with serving(local, "--trust-model") as url:  # MLflow models are code: trust is explicit
        _assert_serves(url, iris.predict(ROWS))
    with mlflow_server(tmp_path) as tracking:
        mlflow.set_tracking_uri(tracking)
        # Name the experiment: the fluent API remembers the active one from earlier tests' servers.
        mlflow.set_experiment("runtime-registry")
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                iris, name="model", registered_model_name="iris-clf", input_example=X[:2]
            )
        client = mlflow.MlflowClient(tracking)
        client.set_registered_model_alias("iris-clf", "champion", "1")
        with serving(
            "models:/iris-clf@champion", "--trust-model", env={"MLFLOW_TRACKING_URI": tracking}
        ) as url:
            _assert_serves(url, iris.predict(ROWS))


# Trust, bad input, batching, shutdown ---------------------------------------------------------------


def test_pickles_need_trust_or_a_pin(iris: LogisticRegression, tmp_path: Path) -> None:
    path = tmp_path / "iris.pkl"
    path.write_bytes(pickle.dumps(iris))
    refused = subprocess.run(
        [EXE, "runtime", "serve", "--model", str(path)], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2 and "--trust-model" in refused.stderr and "runs code" in refused.stderr
    import hashlib

    pin = hashlib.sha256(path.read_bytes()).hexdigest()
    with serving(path, "--sha256", pin) as url:
        _assert_serves(url, iris.predict(ROWS))
    # The runtime itself refuses a file that does not match its pin: alive, never ready, error said.
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "charts" / "inference-service" / "files")}
    argv = [
        sys.executable,
        "-m",
        "hm_runtime",
        "--model",
        str(path),
        "--sha256",
        "0" * 64,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if http_json(url + "/v2/health/live")[0] == 200:
                    code, body = http_json(url + "/v2/health/ready")
                    if code == 503 and "failed to load (error id" in body["error"]:
                        assert "sha256" not in body["error"]  # the reason is the operator's, in the log
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert http_json(url + "/predict", {"input": [1, 2, 3, 4]})[0] == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert "failed to load" in out and "not the pinned" in out


def test_bad_requests_get_clear_errors(iris: LogisticRegression, tmp_path: Path) -> None:
    path = tmp_path / "iris.joblib"
    joblib.dump(iris, path)
    with serving(path, "--trust-model") as url:
        code, body = http_json(url + "/predict", {"input": [[1, 2, 3]]})
        assert code == 422 and "expected 4 features per row (shape [n, 4])" in body["error"]
        code, body = http_json(url + "/predict", raw=b"{not json")
        assert code == 400 and "not valid JSON" in body["error"]
        code, body = http_json(url + "/predict", {"rows": [1, 2, 3, 4]})
        assert code == 422 and '{"input": [...]}' in body["error"]
        code, body = http_json(url + "/predict", {"input": [[1, 2, 3, 4], [1, 2]]})
        assert code == 422
        code, body = http_json(url + "/v2/models/other/infer", {"inputs": []})
        assert code == 404 and "iris" in body["error"]
        code, body = http_json(
            url + "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3]}]},
        )
        assert code == 422 and "shape" in body["error"]
        # A 12 MB body is refused from its headers, before the server reads it (default limit 8 MiB).
        import http.client

        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(12 * 1024 * 1024))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and b"exceeds the limit of 8388608 bytes" in response.read()
        conn.close()


def test_concurrent_requests_are_batched_and_split_back_correctly(
    iris: LogisticRegression, tmp_path: Path
) -> None:
    path = tmp_path / "iris.pkl"
    path.write_bytes(pickle.dumps(iris))
    expected = iris.predict(X)
    with serving(path, "--trust-model", "--max-batch-wait-ms", "2") as url:

        def one(i: int) -> tuple[int, int]:
            code, body = http_json(url + "/predict", {"input": X[i].tolist()})
            assert code == 200
            return i, body["prediction"][0]

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = dict(pool.map(one, list(range(len(X))) * 2))
        assert answers == {i: int(expected[i]) for i in range(len(X))}
        metrics = urllib.request.urlopen(url + "/metrics").read().decode()
        values = dict(
            line.rsplit(" ", 1)
            for line in metrics.splitlines()
            if line.startswith(("hm_batch_rows_sum", "hm_batch_rows_count"))
        )
        assert float(values["hm_batch_rows_sum"]) == 2 * len(X)
        assert float(values["hm_batch_rows_count"]) < 2 * len(X)  # some calls carried several requests
        assert 'hm_requests_total{code="200",endpoint="predict"} 300.0' in metrics
        assert "hm_model_load_seconds" in metrics and "hm_request_seconds_bucket" in metrics


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
            import time
            import numpy as np

            class Slow:
                n_features_in_ = 2

                def predict(self, rows):
                    time.sleep(1.0)
                    return np.asarray(rows).sum(axis=1)
            """
    )
    path = pickled(tmp_path, "slowmodel", code, "Slow")["Slow"]
    port = free_port()
    argv = [EXE, "runtime", "serve", "--model", str(path), "--trust-model", "--port", str(port)]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if http_json(url + "/v2/health/ready")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http_json, url + "/predict", {"input": [1.0, 2.0]})
        time.sleep(0.3)  # the request is inside predict now
        proc.send_signal(signal.SIGTERM)
        assert pending.result(timeout=30) == (200, {"prediction": [3.0]})
    # uvicorn re-raises the SIGTERM once drained, so the exit status says how it was stopped.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")


# PyTorch and Keras (served from the torch venv) -------------------------------------------------------


def _in_torch_venv(torch_python: str, code: str, tmp_path: Path) -> np.ndarray:
    """Build a model in the torch venv; it saves files and prints its predictions for ROWS as JSON."""
    script = tmp_path / "make_model.py"
    script.write_text(textwrap.dedent(code))
    np.save(tmp_path / "rows.npy", ROWS)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [torch_python, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    return np.asarray(json.loads(out.stdout.strip().splitlines()[-1]))


NETDEF = """
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.softmax(self.layer(x), dim=1)
"""
# A pickled module names its class by module path, so the class lives in an importable module
# (netdef.py), as it must for the server in a pod.
TORCH_MODEL = """
import json
import numpy as np
import torch
from netdef import Net

torch.manual_seed(0)
net = Net().eval()
torch.jit.script(net).save("scripted.pt")
torch.save(net, "module.pt")
rows = torch.from_numpy(np.load("rows.npy").astype(np.float32))
print(json.dumps(net(rows).detach().numpy().tolist()))
"""


def test_torchscript_and_pickled_module(torch_python: str, tmp_path: Path) -> None:
    (tmp_path / "netdef.py").write_text(NETDEF)
    expected = _in_torch_venv(torch_python, TORCH_MODEL, tmp_path)
    import hashlib

    scripted = tmp_path / "scripted.pt"
    pin = hashlib.sha256(scripted.read_bytes()).hexdigest()
    with serving(scripted, "--sha256", pin, python=torch_python) as url:  # TorchScript is code: pinned
        _assert_serves(url, expected, datatype="FP32")
    refused = subprocess.run(
        [EXE, "runtime", "serve", "--model", str(tmp_path / "module.pt"), "--python", torch_python],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "a PyTorch model" in refused.stderr and "runs code" in refused.stderr
    # The pickled module's class lives in make_model.py: the server needs it importable, as in a pod.
    with serving(
        tmp_path / "module.pt", "--trust-model", python=torch_python, env={"PYTHONPATH": str(tmp_path)}
    ) as url:
        _assert_serves(url, expected, datatype="FP32")


KERAS_MODEL = """
import json
import numpy as np
import keras

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
)
model.save("model.h5")
model.save("model.keras")
print(json.dumps(model.predict(np.load("rows.npy").astype("float32"), verbose=0).tolist()))
"""


@pytest.mark.parametrize("file", ["model.h5", "model.keras"])
def test_keras(torch_python: str, tmp_path: Path, file: str) -> None:
    expected = _in_torch_venv(torch_python, KERAS_MODEL, tmp_path)
    with serving(tmp_path / file, python=torch_python) as url:
        _assert_serves(url, expected, datatype="FP32")
