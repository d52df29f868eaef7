"""Model trust, attacked for real: models that are code run only with explicit trust or a pin that is
checked against the very bytes that load.

- An MLflow pyfunc whose loader runs code (it writes a marker file) is refused by `runtime serve` and by
  the runtime as the pods run it, with no flag and with a sha256 pin; with --trust-model it loads, and
  the marker proves the code ran (the attack is real).
- A TorchScript program that reads a file it was never given (torch.from_file) is refused without trust;
  with trust, /predict returns the file's bytes (the leak is real).
- A pinned pickle swapped on disk between the check and the load: the checked bytes load, the swapped-in
  pickle never runs."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.charts import REPO
from tests.support.servers import free_port, http_json, wait_http

pytestmark = pytest.mark.real
EXE = str(Path(sys.executable).parent / "helm-mlops")
RUNTIME_FILES = REPO / "charts" / "inference-service" / "files"


def runtime_refuses(model: Path, *args: str, python: str = sys.executable) -> str:
    """Run the runtime as a pod does (python -m hm_runtime, trust from the environment, here none):
    it must stay live and never become ready. Returns its log, where the reason is (the readiness
    body only names an error id)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(RUNTIME_FILES), "HM_RUNTIME_TRUST_MODEL": "false"}
    argv = [python, "-m", "hm_runtime", "--model", str(model), "--port", str(port), *args]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()
            try:
                if http_json(url + "/v2/health/live")[0] == 200:
                    code, body = http_json(url + "/v2/health/ready")
                    if code == 503 and "error id" in body.get("error", ""):
                        assert http_json(url + "/predict", {"input": [[1.0, 2.0, 3.0, 4.0]]})[0] == 503
                        assert str(model) not in body["error"]
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the runtime neither loaded nor refused the model"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    return out


def cli_refuses(model: Path, *args: str) -> str:
    result = subprocess.run(
        [EXE, "runtime", "serve", "--model", str(model), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def serve_and_predict(model: Path, rows: list[list[float]], *args: str, python: str | None = None) -> Any:
    port = free_port()
    argv = [EXE, "runtime", "serve", "--model", str(model), "--port", str(port), *args]
    if python:
        argv += ["--python", python]
    log = model.parent / f"serve-{port}.log"
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v2/health/ready", timeout=120, proc=proc, log=log)  # 503 until loaded
        code, body = http_json(url + "/predict", {"input": rows})
        assert code == 200, body
        return body["prediction"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


EVIL_PYFUNC = """
import sys
import mlflow.pyfunc

class Evil(mlflow.pyfunc.PythonModel):  # defined in __main__: cloudpickle stores it by value
    def load_context(self, context):
        open(MARKER, "w").write("code ran at load")
    def predict(self, context, model_input, params=None):
        return [0] * len(model_input)

MARKER = sys.argv[2]
mlflow.pyfunc.save_model(sys.argv[1], python_model=Evil())
"""


def test_an_mlflow_model_runs_code_only_with_trust(tmp_path: Path) -> None:
    model, marker = tmp_path / "evil-model", tmp_path / "marker"
    script = tmp_path / "make.py"
    script.write_text(EVIL_PYFUNC)
    subprocess.run([sys.executable, str(script), str(model), str(marker)], check=True, capture_output=True)
    assert (model / "MLmodel").is_file()
    marker.unlink()  # save_model loads the model once to check it

    assert "--trust-model" in cli_refuses(model) and "MLflow model" in cli_refuses(model)
    assert "no single file" in cli_refuses(model, "--sha256", "0" * 64)
    assert "--trust-model" in runtime_refuses(model)
    assert "cannot be verified" in runtime_refuses(model, "--sha256", "0" * 64)
    assert not marker.exists(), "the model's code ran without trust"

    assert serve_and_predict(model, [[1.0, 2.0]], "--trust-model") == [0]
    assert marker.read_text() == "code ran at load"  # what trust lets in is real code


LEAK = """
import sys
import torch

class Leak(torch.nn.Module):
    def __init__(self, path: str, size: int) -> None:
        super().__init__()
        self.path, self.size = path, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=False, size=self.size, dtype=torch.uint8)
        return data.to(torch.float32).unsqueeze(0).repeat(x.shape[0], 1)

torch.jit.script(Leak(sys.argv[2], int(sys.argv[3]))).save(sys.argv[1])
"""


def test_torchscript_is_code(torch_python: str, tmp_path: Path) -> None:
    secret = tmp_path / "mounted-secret"
    secret.write_bytes(b"hunter2")
    model = tmp_path / "leak.pt"
    script = tmp_path / "make.py"
    script.write_text(LEAK)
    made = subprocess.run(
        [torch_python, str(script), str(model), str(secret), str(len(b"hunter2"))],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert "TorchScript" in cli_refuses(model, "--python", torch_python)
    assert "runs code" in runtime_refuses(model, python=torch_python)
    leaked = serve_and_predict(model, [[1.0]], "--trust-model", python=torch_python)
    assert bytes(int(v) for v in leaked[0]) == b"hunter2"  # what TorchScript can do once trusted
    pin = hashlib.sha256(model.read_bytes()).hexdigest()
    assert serve_and_predict(model, [[1.0]], "--sha256", pin, python=torch_python) == leaked  # a pin is trust


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_the_pinned_bytes_are_the_bytes_that_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.runtime import _models

    models = _models()
    x, y = load_iris(return_X_y=True)
    iris = LogisticRegression(max_iter=300).fit(x, y)
    path, marker = tmp_path / "model.pkl", tmp_path / "marker"
    good = pickle.dumps(iris)
    path.write_bytes(good)
    pin = hashlib.sha256(good).hexdigest()

    def swap(checked: Path) -> None:  # an attacker with write access to the model's folder
        checked.write_bytes(pickle.dumps(_Evil(marker)))

    monkeypatch.setattr(models, "_after_verify", swap)
    loaded = models.load(str(path), "m", None, trust=False, sha256=pin)
    assert path.read_bytes() != good, "the swap must have happened for this test to mean anything"
    assert not marker.exists()
    assert np.array_equal(loaded.predict(x[:5]), iris.predict(x[:5]))
    # Unpinned and untrusted, the swapped-in pickle is refused before it is opened.
    with pytest.raises(models.ModelError, match="is a pickle"):
        models.load(str(path), "m", None, trust=False, sha256=None)
    assert not marker.exists()
