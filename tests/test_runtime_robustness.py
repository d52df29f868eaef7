"""One bad request never fails another, and every bad input gets a 4xx that says what is wrong: the
real runtime (`helm-mlops runtime serve`, batching on as in the chart) with real models, answers
compared with each model's own output.

- A client sending nulls among 7 honest ones: every honest request answered correctly.
- Classifiers trained on class names, in every format that carries them (pickle, joblib, ONNX, MLflow).
- Out-of-range and non-finite values, wrong datatypes: 422 naming the value, where it is and the type.
- Every response counted by endpoint and status code, 5xx included; a model answering the wrong
  number of rows fails only its own request.
- The Open Inference Protocol v2 through a real client (tritonclient, binary tensors and JSON).
- Loading errors that say what was expected; `runtime predict` and `runtime serve --python` errors.
- A property test: random bodies beside honest traffic, never a 5xx, honest answers always right."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from tests.support.charts import REPO
from tests.support.pickled import pickled
from tests.support.servers import http_json, runtime_server

pytestmark = pytest.mark.real
EXE = str(Path(sys.executable).parent / "helm-mlops")
X, Y = load_iris(return_X_y=True)
NAMES = np.array(["setosa", "versicolor", "virginica"])[Y]
ROWS = X[::15]
RUNTIME = REPO / "charts" / "inference-service" / "files"


def v2(rows: Any, datatype: str = "FP64", shape: list[int] | None = None) -> dict[str, Any]:
    flat = np.asarray(rows, dtype=object).reshape(-1).tolist() if shape is None else rows
    shape = shape or list(np.shape(rows))
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": flat}]}


def metric_lines(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return {
        k: float(v) for k, v in (ln.rsplit(" ", 1) for ln in text.splitlines() if ln[:1] not in ("#", ""))
    }


@pytest.fixture(scope="module")
def iris() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, Y)


@pytest.fixture(scope="module")
def iris_url(iris: LogisticRegression, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("iris") / "iris.pkl"
    path.write_bytes(pickle.dumps(iris))
    with runtime_server(path, "--trust-model", "--max-batch-wait-ms", "2") as url:
        yield url


# 1. Fault isolation under batching --------------------------------------------------------------


def test_a_client_sending_nulls_never_fails_its_batched_neighbours(
    iris: LogisticRegression, iris_url: str
) -> None:
    expected = iris.predict(X)
    before = metric_lines(iris_url)

    def client(c: int) -> list[tuple[int, int, Any, int | None]]:
        answers: list[tuple[int, int, Any, int | None]] = []
        for k in range(40):
            if c == 0 and k % 2:
                code, body = http_json(iris_url + "/predict", {"input": [None, 1, 1, 1]})
                answers.append((c, code, body, None))
            else:
                i = (c * 40 + k) % len(X)
                code, body = http_json(iris_url + "/predict", {"input": X[i].tolist()})
                answers.append((c, code, body, i))
        return answers

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [a for part in pool.map(client, range(8)) for a in part]
    valid = [a for a in answers if a[3] is not None]
    bad = [a for a in answers if a[3] is None]
    assert len(valid) == 300 and len(bad) == 20
    for _c, code, body, i in valid:
        assert i is not None and code == 200 and body["prediction"] == [int(expected[i])], (code, body)
    for _c, code, body, _i in bad:
        assert code == 422 and "input[0] is null" in body["error"], body
    after = metric_lines(iris_url)
    counted = {
        code: after.get(f'hm_requests_total{{code="{code}",endpoint="predict"}}', 0)
        - before.get(f'hm_requests_total{{code="{code}",endpoint="predict"}}', 0)
        for code in ("200", "422")
    }
    assert counted == {"200": 300, "422": 20}
    # Requests were really batched: fewer model calls than requests.
    calls = after["hm_batch_rows_count"] - before.get("hm_batch_rows_count", 0)
    assert calls < 300


# 2. String and object outputs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def named() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, NAMES)


@pytest.mark.parametrize("fmt", ["pkl", "joblib", "onnx", "mlflow"])
def test_classifiers_trained_on_class_names_are_served(
    named: LogisticRegression, fmt: str, tmp_path: Path
) -> None:
    expected = list(named.predict(ROWS))
    if fmt == "pkl":
        model = tmp_path / "named.pkl"
        model.write_bytes(pickle.dumps(named))
    elif fmt == "joblib":
        model = tmp_path / "named.joblib"
        joblib.dump(named, model)
    elif fmt == "onnx":
        import onnxruntime as ort
        from skl2onnx import to_onnx

        model = tmp_path / "named.onnx"
        model.write_bytes(
            to_onnx(named, X[:1].astype(np.float32), options={"zipmap": False}).SerializeToString()
        )
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        expected = list(session.run(["label"], {"X": ROWS.astype(np.float32)})[0])
    else:
        import mlflow.sklearn

        model = tmp_path / "named-mlflow"
        mlflow.sklearn.save_model(named, str(model))
    assert set(expected) == {"setosa", "versicolor", "virginica"}
    with runtime_server(model, "--trust-model") as url:
        code, body = http_json(url + "/predict", {"input": ROWS.tolist()})
        assert code == 200 and body["prediction"] == expected, body
        code, one = http_json(url + "/predict", {"input": ROWS[0].tolist()})
        assert code == 200 and one["prediction"] == expected[:1], one
        code, body = http_json(url + "/v2/models/iris/infer", v2(ROWS.tolist()))
        assert code == 200, body
        out = body["outputs"][0]
        assert out["datatype"] == "BYTES" and out["data"] == expected and out["shape"] == [len(ROWS)]
        code, meta = http_json(url + "/v2/models/iris")
        assert code == 200 and meta["outputs"][0]["datatype"] == "BYTES", meta


# 3. Bad client data: 422 naming the value and the datatype -----------------------------------------


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, Y)


@pytest.fixture(scope="module")
def servers(
    iris_url: str,
    forest: RandomForestClassifier,
    iris: LogisticRegression,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    from skl2onnx import to_onnx

    d = tmp_path_factory.mktemp("models")
    joblib.dump(forest, d / "forest.joblib")
    (d / "iris.onnx").write_bytes(
        to_onnx(iris, X[:1].astype(np.float32), options={"zipmap": False}).SerializeToString()
    )
    with (
        runtime_server(d / "forest.joblib", "--trust-model") as rf,
        runtime_server(d / "iris.onnx") as onnx,
    ):
        yield {"lr": iris_url, "rf": rf, "onnx": onnx}


REFUSED = [
    ("lr", "/predict", {"input": [None, 1, 1, 1]}, ["input[0] is null", "finite numbers"]),
    ("lr", "/predict", {"input": [[1, 2, 3, 4], [1, None, 3, 4]]}, ["input[1][1] is null"]),
    ("lr", "v2", v2([[1000, 1, 1, 1]], "INT8"), ["inputs[0].data[0] is 1000", "INT8", "[-128, 127]"]),
    ("lr", "v2", v2([[-1, 1, 1, 1]], "UINT8"), ["inputs[0].data[0] is -1", "UINT8", "[0, 255]"]),
    ("lr", "v2", v2([["a", "b", "c", "d"]], "BYTES"), ["BYTES", "takes numbers"]),
    ("lr", "v2", v2([[1, 1, 1e300, 1]], "FP32"), ["inputs[0].data[2] is 1e+300", "FP32"]),
    ("lr", "v2", v2([[1e300, 1, 1, 1]], "FP16"), ["inputs[0].data[0] is 1e+300", "FP16", "65504"]),
    ("lr", "v2", v2([[1, 1, 1, 1]], "FLOAT"), ["'FLOAT' is not a v2 datatype", "FP32"]),
    ("lr", "v2", v2([[1, "x", 1, 1]], "FP64"), ["inputs[0].data[1] is 'x'", "FP64 takes numbers"]),
    ("lr", "v2", v2([1, 2, 3], "FP64", shape=[2, 4]), ["holds 3 values", "[2, 4]"]),
    ("rf", "/predict", {"input": [1e300, 1, 1, 1]}, ["input[0] is 1e+300", "float32"]),
    ("rf", "v2", v2([[1, 1, 1, 1e300]], "FP64"), ["inputs[0].data[3] is 1e+300", "float32"]),
    ("onnx", "/predict", {"input": [1, None, 1, 1]}, ["input[1] is null", "finite numbers"]),
    ("onnx", "v2", v2([[1, 1, 1, 1e300]], "FP64"), ["1e+300", "float32"]),
    # Values numpy would silently coerce: truncated, parsed from strings, booleans as numbers.
    ("lr", "v2", v2([[1, 2, 3, 1.5]], "INT64"), ["inputs[0].data[3] is 1.5", "INT64 takes whole numbers"]),
    (
        "lr",
        "v2",
        v2([[True, None, "a", 0.5]], "BOOL"),
        ["inputs[0].data[1] is null", "BOOL takes true or false"],
    ),
    ("lr", "v2", v2([["7", 1, 1, 1]], "INT8"), ["inputs[0].data[0] is '7'", "not strings"]),
    ("lr", "v2", v2([[True, False, True, True]], "FP32"), ["inputs[0].data[0] is True", "not true or false"]),
    ("lr", "/predict", {"input": [1, 2, "3", 4]}, ["input[2] is '3'", "not strings"]),
    (
        "lr",
        "v2",
        v2([[1, 2, 3, 2**70]], "INT64"),
        ["inputs[0].data[3] is 1.18059", "INT64 takes whole numbers in"],
    ),
    # Nothing to predict, alone or batched with others: always the same answer.
    ("lr", "v2", v2([], "FP32", shape=[0, 4]), ["holds no rows"]),
    ("lr", "/predict", {"input": [[]]}, ["expected 4 features"]),
    # Requested outputs must be the one served.
    (
        "lr",
        "v2",
        {**v2([[1, 2, 3, 4]]), "outputs": [{"name": "probabilities"}]},
        ["outputs[0].name 'probabilities' is not served", "'predict'"],
    ),
]


@pytest.mark.parametrize(("server", "path", "body", "words"), REFUSED)
def test_bad_values_are_422_naming_value_and_datatype(
    servers: dict[str, str], server: str, path: str, body: Any, words: list[str]
) -> None:
    url = servers[server] + ("/v2/models/iris/infer" if path == "v2" else path)
    code, answer = http_json(url, body)
    assert code == 422, answer
    for word in words:
        assert word in answer["error"], answer


def test_values_a_model_can_take_are_served(
    servers: dict[str, str], iris: LogisticRegression, forest: RandomForestClassifier
) -> None:
    # A forest handles missing values itself (scikit-learn's allow_nan tag): null is NaN for it.
    code, body = http_json(servers["rf"] + "/predict", {"input": [None, 3.0, 5.0, 2.0]})
    assert code == 200 and body["prediction"] == forest.predict([[np.nan, 3.0, 5.0, 2.0]]).tolist(), body
    # Logistic regression computes in float64: 1e300 is a (silly but finite) number for it.
    code, body = http_json(servers["lr"] + "/predict", {"input": [1e300, 1, 1, 1]})
    assert code == 200 and body["prediction"] == iris.predict([[1e300, 1, 1, 1]]).tolist(), body
    code, body = http_json(servers["lr"] + "/v2/models/iris/infer", v2([[5, 3, 1, 0]], "INT8"))
    assert code == 200 and body["outputs"][0]["data"] == iris.predict([[5, 3, 1, 0]]).tolist(), body


# 4. Every response counted; a model answering the wrong number of rows ------------------------------

ODD_MODEL = '''
import numpy as np

class Odd:
    """Doubles the first feature; raises on a row starting 42; answers one row too many for 7."""

    n_features_in_ = 4

    def predict(self, rows):
        rows = np.asarray(rows)
        if (rows[:, 0] == 42).any():
            raise RuntimeError("feature store unreachable")
        if (rows[:, 0] == 7).any():
            return np.zeros(len(rows) + 1)
        return rows[:, 0] * 2
'''


@pytest.fixture
def odd_url(tmp_path: Path) -> Iterator[str]:
    model = pickled(tmp_path, "odd", ODD_MODEL, "Odd")["Odd"]
    env = {"PYTHONPATH": str(tmp_path)}
    with runtime_server(model, "--trust-model", "--max-batch-wait-ms", "3", name="odd", env=env) as url:
        yield url


def test_every_response_is_counted_and_a_wrong_length_answer_fails_only_its_request(odd_url: str) -> None:
    def honest(i: int) -> tuple[int, Any, float]:
        code, body = http_json(odd_url + "/predict", {"input": [float(i % 30 + 10), 0, 0, 0]})
        return code, body, float(i % 30 + 10) * 2

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        good = [pool.submit(honest, i) for i in range(150)]
        raising = [pool.submit(http_json, odd_url + "/predict", {"input": [42, 0, 0, 0]}) for _ in range(10)]
        too_long = [pool.submit(http_json, odd_url + "/predict", {"input": [7, 0, 0, 0]}) for _ in range(10)]
        narrow = [
            pool.submit(http_json, odd_url + "/v2/models/odd/infer", v2([[1, 2, 3]])) for _ in range(10)
        ]
        lost = [pool.submit(http_json, odd_url + "/nowhere") for _ in range(5)]
        for code, body, want in (f.result() for f in good):
            assert code == 200 and body["prediction"] == [want], (code, body)
        for f in raising + too_long:
            code, body = f.result()
            assert code == 500 and "error id" in body["error"] and "feature store" not in body["error"], body
        assert all(f.result()[0] == 422 for f in narrow)
        assert all(f.result()[0] == 404 for f in lost)
    # The batcher lives on.
    assert http_json(odd_url + "/predict", {"input": [3, 0, 0, 0]}) == (200, {"prediction": [6.0]})
    m = metric_lines(odd_url)
    assert m['hm_requests_total{code="200",endpoint="predict"}'] == 151
    assert m['hm_requests_total{code="500",endpoint="predict"}'] == 20
    assert m['hm_requests_total{code="422",endpoint="v2_infer"}'] == 10
    assert m['hm_requests_total{code="404",endpoint="other"}'] == 5
    assert m['hm_request_seconds_count{endpoint="predict"}'] == 171
    assert m['hm_request_seconds_count{endpoint="v2_infer"}'] == 10


def test_an_uncaught_error_is_a_counted_json_500() -> None:
    sys.path.insert(0, str(RUNTIME))
    try:
        from hm_runtime import metrics
        from hm_runtime.app import CountEveryResponse, Counts, ErrorLog, Settings, build_app
    finally:
        sys.path.remove(str(RUNTIME))

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise TypeError("unsupported datatype in numpy array")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def called(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        return sent

    # The routes behind the router: the middleware answers and counts it.
    counter = metrics.REQUESTS.labels("v2_model_metadata", "500")
    before = counter._value.get()
    scope = {"type": "http", "method": "GET", "path": "/v2/models/iris", "headers": []}
    sent = called(CountEveryResponse(broken, ErrorLog(), Counts()), scope)
    assert sent[0]["status"] == 500
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    body = json.loads(sent[1]["body"])
    assert "error id" in body["error"] and "numpy" not in body["error"]
    assert counter._value.get() == before + 1
    # The hot routes, served without the router: the same JSON 500, counted (headers that are not a
    # list of pairs make the handler itself fail).
    counter = metrics.REQUESTS.labels("predict", "500")
    before = counter._value.get()
    app = build_app(Settings(model="unused.joblib"))
    sent = called(app, {"type": "http", "method": "POST", "path": "/predict", "headers": [b"bad"]})
    assert sent[0]["status"] == 500
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert "error id" in json.loads(sent[1]["body"])["error"]
    assert counter._value.get() == before + 1


# 5. The v2 protocol through a real client ---------------------------------------------------------


def test_v2_protocol_through_tritonclient(servers: dict[str, str], iris: LogisticRegression) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(servers["onnx"].removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1")
    meta = client.get_model_metadata("iris")
    assert meta == client.get_model_metadata("iris", model_version="1")
    assert meta["inputs"][0]["name"] == "X"  # the ONNX graph's own input name, not input-0
    rows = ROWS.astype(np.float32)
    expected = iris.predict(ROWS)
    for binary_in in (True, False):
        for binary_out in (None, True, False):
            tensor = triton.InferInput(
                meta["inputs"][0]["name"], list(rows.shape), meta["inputs"][0]["datatype"]
            )
            tensor.set_data_from_numpy(rows, binary_data=binary_in)
            outputs = (
                None if binary_out is None else [triton.InferRequestedOutput("label", binary_data=binary_out)]
            )
            result = client.infer("iris", [tensor], outputs=outputs, model_version="1", request_id="r-7")
            answer = result.get_response()
            assert answer["id"] == "r-7" and answer["model_version"] == "1"
            assert answer["outputs"][0]["datatype"] == meta["outputs"][0]["datatype"] == "INT64"
            np.testing.assert_array_equal(result.as_numpy("label"), expected)
    with pytest.raises(InferenceServerException, match="unknown version '2'"):
        client.infer("iris", [tensor], model_version="2")
    code, body = http_json(servers["onnx"] + "/v2/models/iris/versions/1")
    assert code == 200 and body == meta
    code, body = http_json(servers["onnx"] + "/v2/models/iris/versions/1/infer", v2(ROWS.tolist()))
    assert code == 200 and body["outputs"][0]["data"] == expected.tolist()


# 8. Loading errors say what is wrong and what was expected ---------------------------------------


def _load_error(path: Path, fmt: str | None = None) -> str:
    sys.path.insert(0, str(RUNTIME))
    try:
        from hm_runtime.models import ModelError, load
    finally:
        sys.path.remove(str(RUNTIME))
    with pytest.raises(ModelError) as caught:
        load(str(path), "m", fmt, trust=True)
    return str(caught.value)


def test_loading_errors_say_what_was_expected(iris: LogisticRegression, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").mkdir()
    assert "is a directory, not a model file" in _load_error(tmp_path / "model.onnx")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps(iris)[:60])
    said = _load_error(truncated)
    assert "cannot be read as sklearn" in said and "pickle.dump" in said and "truncated" in said
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04K\x03h\x03.")  # a pickle referring to a memo entry that is not there
    assert "cannot be read as sklearn" in _load_error(garbage)
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"not a protobuf at all")
    assert "expected an ONNX model" in _load_error(bad_onnx)
    broken = tmp_path / "broken-mlflow"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: [unclosed\n")
    said = _load_error(broken)
    assert (
        "cannot be loaded as an MLflow model" in said and "expected a directory with an MLmodel file" in said
    )
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(b"cnosuchmodule\nModel\n.")  # a pickle of a class from a module not installed
    assert "needs the Python module 'nosuchmodule'" in _load_error(foreign)


# 6, 7. runtime serve --python and runtime predict -------------------------------------------------


def test_runtime_predict_exits_nonzero_with_the_servers_message(iris_url: str, odd_url: str) -> None:
    def predict(url: str, data: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [EXE, "runtime", "predict", "--url", url, "--input", data, *extra]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    done = predict(iris_url, "[5.1, 3.5, 1.4, 0.2]")
    assert done.returncode == 0 and "-> 200" in done.stdout
    for data, extra, code, words in (
        ("[1, 2, 3]", [], 2, ["refused the request (422)", "expected 4 features"]),
        ("[1, 2, 3, 4]", ["--name", "nosuch"], 2, ["refused the request (404)", "unknown model 'nosuch'"]),
        ("[[1, 2], 3]", [], 2, ["--input:", "mixes rows and single values"]),
    ):
        done = predict(iris_url, data, *extra)
        assert done.returncode == code and "Traceback" not in done.stderr, done
        for word in words:
            assert word in done.stderr, done.stderr
    done = predict(odd_url, "[42, 0, 0, 0]")
    assert (
        done.returncode == 3 and "the server failed (500)" in done.stderr and "Traceback" not in done.stderr
    )


def test_runtime_serve_checks_the_python_it_is_given(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    for python, words in (
        (str(tmp_path / "bare" / "bin" / "python"), ["lacks starlette, uvicorn", "-m pip install starlette"]),
        ("/etc/passwd", ["--python:", "cannot run /etc/passwd"]),
    ):
        done = subprocess.run(
            [EXE, "runtime", "serve", "--model", str(model), "--python", python],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done
        for word in words:
            assert word in done.stderr, done.stderr


# Hold the line: random requests beside honest traffic ----------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(), finite.map(lambda f: f * 1e300))
values = st.one_of(numbers, st.none(), st.booleans(), st.text(max_size=5))
json_values = st.recursive(
    values,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)
v2_bodies = st.builds(
    lambda shape, datatype, data, name, extra: {
        "inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data, **extra}]
    },
    st.one_of(st.lists(st.integers(-2, 6), max_size=3), json_values),
    st.sampled_from(
        ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "fp32", "X"]
    ),
    st.one_of(
        st.lists(numbers, max_size=12),
        st.lists(st.lists(numbers, min_size=4, max_size=4), max_size=3),
        json_values,
    ),
    st.text(max_size=5),
    st.one_of(st.just({}), st.builds(lambda n: {"parameters": {"binary_data_size": n}}, st.integers(-5, 40))),
)
bodies = st.one_of(
    st.builds(
        lambda d: {"input": d},
        st.one_of(
            st.lists(numbers, max_size=6), st.lists(st.lists(numbers, max_size=5), max_size=3), json_values
        ),
    ),
    v2_bodies,
    json_values,
)


@pytest.fixture(scope="module")
def honest_traffic(iris: LogisticRegression, iris_url: str) -> Iterator[list[str]]:
    """Valid requests and readiness checks sent all along; what went wrong is collected."""
    expected = iris.predict(X)
    problems: list[str] = []
    stop = threading.Event()

    def run(offset: int) -> None:
        i = offset
        while not stop.is_set():
            row = X[i % len(X)]
            code, body = http_json(iris_url + "/predict", {"input": row.tolist()})
            if code != 200 or body["prediction"] != [int(expected[i % len(X)])]:
                problems.append(f"honest request {i}: {code} {body}")
            ready, _ = http_json(iris_url + "/v2/health/ready")
            if ready != 200:
                problems.append(f"not ready: {ready}")
            i += 7

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    yield problems
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not problems, problems[:5]


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=bodies,
    path=st.sampled_from(["/predict", "/v2/models/iris/infer", "/v2/models/iris/versions/1/infer"]),
    header=st.one_of(st.none(), st.integers(-3, 400).map(str), st.just("x")),
)
def test_random_requests_beside_honest_traffic_never_get_a_5xx(
    iris_url: str, honest_traffic: list[str], body: Any, path: str, header: str | None
) -> None:
    raw = json.dumps(body).encode()  # NaN and Infinity appear as JSON's non-standard literals: a 400
    request = urllib.request.Request(
        iris_url + path,
        data=raw + (os.urandom(8) if header else b""),
        headers={
            "Content-Type": "application/json",
            **({"Inference-Header-Content-Length": header} if header else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            code, answer = response.status, response.read()
    except urllib.error.HTTPError as exc:
        code, answer = exc.code, exc.read()
    assert code < 500, (code, answer, body)
    if code >= 400:
        assert json.loads(answer)["error"], answer
    assert not honest_traffic, honest_traffic[:3]


# Models whose inputs are not float64: ONNX int64/int32/float16 graphs, MLflow signatures --------


def _identity_onnx(path: Path, elem: int, name: str) -> None:
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", [name], ["y"])],
        "identity",
        [helper.make_tensor_value_info(name, elem, [None, 4])],
        [helper.make_tensor_value_info("y", elem, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_models_that_take_integers_or_half_floats_get_their_own_types(tmp_path: Path) -> None:
    from onnx import TensorProto
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import Int64TensorType
    from sklearn.linear_model import LinearRegression

    ints = np.random.default_rng(0).integers(0, 10, size=(60, 4))
    regression = LinearRegression().fit(ints, ints[:, 0] * 2 + ints[:, 1])
    (tmp_path / "ints.onnx").write_bytes(
        to_onnx(regression, initial_types=[("ints", Int64TensorType([None, 4]))]).SerializeToString()
    )
    _identity_onnx(tmp_path / "int32.onnx", TensorProto.INT32, "x32")
    _identity_onnx(tmp_path / "fp16.onnx", TensorProto.FLOAT16, "x16")
    rows = [[1, 2, 3, 4], [5, 6, 7, 8]]
    with runtime_server(tmp_path / "ints.onnx") as url:
        code, meta = http_json(url + "/v2/models/iris")
        assert meta["inputs"][0] == {"name": "ints", "datatype": "INT64", "shape": [-1, 4]}
        code, body = http_json(url + "/predict", {"input": rows})
        assert code == 200, body
        np.testing.assert_allclose(
            np.ravel(body["prediction"]), regression.predict(np.array(rows)), rtol=1e-5
        )
        for bad, said in (([1, 2, 3, None], "input[3] is null"), ([1, 2, 3, 1.5], "input[3] is 1.5")):
            code, body = http_json(url + "/predict", {"input": bad})
            assert code == 422 and said in body["error"] and "int64 takes whole numbers" in body["error"], (
                body
            )
        code, body = http_json(url + "/v2/models/iris/infer", v2([[1, 2, 3, 1e19]]))
        assert code == 422 and "inputs[0].data[3] is 1e+19" in body["error"], body
    for model, datatype, too_big in (
        ("int32.onnx", "INT32", "int32 takes whole numbers"),
        ("fp16.onnx", "FP16", "float16"),
    ):
        with runtime_server(tmp_path / model) as url:
            code, meta = http_json(url + "/v2/models/iris")
            assert meta["inputs"][0]["datatype"] == meta["outputs"][0]["datatype"] == datatype, meta
            code, body = http_json(url + "/predict", {"input": rows})
            assert code == 200 and body["prediction"] == rows, body
            code, body = http_json(url + "/v2/models/iris/infer", v2(rows, "INT16"))
            assert code == 200 and body["outputs"][0]["data"] == [v for row in rows for v in row], body
            code, body = http_json(url + "/predict", {"input": [1, 2, 3, 1e10]})
            assert code == 422 and too_big in body["error"], body


def test_mlflow_signatures_decide_the_input_type(tmp_path: Path) -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    frames = {
        "float32-columns": pd.DataFrame(rng.normal(size=(50, 4)).astype(np.float32), columns=list("abcd")),
        "int-columns": pd.DataFrame(rng.integers(0, 10, size=(50, 4)), columns=list("abcd")),
        "float32-tensor": rng.normal(size=(50, 4)).astype(np.float32),
    }
    rows = [[1, 2, 3, 4], [5, 6, 7, 8]]
    for name, x in frames.items():
        target = np.asarray(x)[:, 0] * 3.0
        model = LinearRegression().fit(x, target)
        mlflow.sklearn.save_model(model, str(tmp_path / name), signature=infer_signature(x, model.predict(x)))
        dtype = np.asarray(x).dtype
        given = (
            pd.DataFrame(np.array(rows, dtype=dtype), columns=list("abcd"))
            if name.endswith("columns")
            else np.array(rows, dtype=dtype)
        )
        with runtime_server(tmp_path / name, "--trust-model") as url:
            code, body = http_json(url + "/predict", {"input": rows})
            assert code == 200, (name, body)
            np.testing.assert_allclose(body["prediction"], model.predict(given), rtol=1e-5)
            code, meta = http_json(url + "/v2/models/iris")
            assert meta["inputs"][0]["datatype"] == {"float32": "FP32", "int64": "INT64"}[str(dtype)], meta
            if dtype.kind == "i":
                code, body = http_json(url + "/predict", {"input": [1, 2, 3, 4.5]})
                assert code == 422 and "input[3] is 4.5" in body["error"], body


ODDITIES = '''
import time
import numpy as np

class StopsIterating:
    """Slow enough to run in a worker thread; a negative first value raises StopIteration."""
    n_features_in_ = 4
    def predict(self, rows):
        rows = np.asarray(rows)
        time.sleep(0.01)
        if (rows[:, 0] < 0).any():
            next(iter(()))
        return rows[:, 0]

class Strided:
    """Answers a view: every other element of a float32 copy (a predict_proba(X)[:, 1] wrapper)."""
    n_features_in_ = 4
    def predict(self, rows):
        return np.asarray(rows, dtype=np.float32)[:, 0]

class Fortran:
    """Answers a Fortran-ordered 2-D array, as MultiOutputRegressor does."""
    n_features_in_ = 4
    def predict(self, rows):
        return np.asfortranarray(np.asarray(rows)[:, :2])

class OneShort:
    """Answers one row too few when a row starts with 7."""
    n_features_in_ = 4
    def predict(self, rows):
        rows = np.asarray(rows)
        return rows[:-1, 0] if (rows[:, 0] == 7).any() else rows[:, 0]
'''


@pytest.fixture(scope="module")
def oddities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("oddities")
    pickled(d, "oddities", ODDITIES, "StopsIterating", "Strided", "Fortran", "OneShort")
    return d


def _odd_server(d: Path, cls: str, *args: str) -> Any:
    return runtime_server(d / f"{cls}.pkl", "--trust-model", *args, env={"PYTHONPATH": str(d)})


def test_a_model_raising_stopiteration_fails_only_that_request(oddities: Path) -> None:
    with _odd_server(oddities, "StopsIterating") as url:
        assert http_json(url + "/predict", {"input": [1, 2, 3, 4]}, timeout=10) == (
            200,
            {"prediction": [1.0]},
        )
        code, body = http_json(url + "/predict", {"input": [-1, 2, 3, 4]}, timeout=10)
        assert code == 500 and "error id" in body["error"]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda i: http_json(url + "/predict", {"input": [i - 3, 0, 0, 0]}, timeout=10), range(40)
                )
            )
        for i, (code, body) in enumerate(answers):
            assert (code, body) == (200, {"prediction": [float(i - 3)]}) if i >= 3 else code == 500, (
                i,
                code,
                body,
            )


def test_models_answering_views_and_fortran_arrays_are_served(oddities: Path) -> None:
    rows = [[1, 2, 3, 4], [5, 6, 7, 8]]
    with _odd_server(oddities, "Strided") as url:
        code, meta = http_json(url + "/v2/models/iris")  # learnt at load, before any request
        assert meta["outputs"][0] == {"name": "predict", "datatype": "FP32", "shape": [-1]}, meta
        assert http_json(url + "/predict", {"input": rows}) == (200, {"prediction": [1.0, 5.0]})
        code, body = http_json(url + "/v2/models/iris/infer", v2(rows))
        assert code == 200 and body["outputs"][0]["data"] == [1.0, 5.0], body
    with _odd_server(oddities, "Fortran") as url:
        code, meta = http_json(url + "/v2/models/iris")
        assert meta["outputs"][0]["shape"] == [-1, 2], meta
        assert http_json(url + "/predict", {"input": rows}) == (200, {"prediction": [[1.0, 2.0], [5.0, 6.0]]})
        code, body = http_json(url + "/v2/models/iris/infer", v2(rows))
        assert code == 200 and body["outputs"][0] == {
            "name": "predict",
            "shape": [2, 2],
            "datatype": "FP64",
            "data": [1.0, 2.0, 5.0, 6.0],
        }


def test_a_wrong_number_of_rows_is_the_models_fault_without_batching_too(oddities: Path) -> None:
    with _odd_server(oddities, "OneShort", "--no-batching") as url:
        assert http_json(url + "/predict", {"input": [[1, 0, 0, 0], [2, 0, 0, 0]]}) == (
            200,
            {"prediction": [1.0, 2.0]},
        )
        code, body = http_json(url + "/predict", {"input": [[7, 0, 0, 0], [2, 0, 0, 0]]})
        assert code == 500 and "error id" in body["error"], body


# The edges of the HTTP exchange: encodings, the binary header, departing clients, unknown routes -----


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_compressed_bodies_odd_headers_and_departing_clients(iris: LogisticRegression, iris_url: str) -> None:
    import gzip
    import http.client
    import zlib

    body = json.dumps({"input": X[0].tolist()}).encode()
    want = {"prediction": [int(iris.predict(X[:1])[0])]}
    assert _post(iris_url + "/predict", gzip.compress(body), {"Content-Encoding": "gzip"}) == (200, want)
    assert _post(iris_url + "/predict", zlib.compress(body), {"Content-Encoding": "deflate"}) == (200, want)
    code, answer = _post(iris_url + "/predict", body, {"Content-Encoding": "br"})
    assert code == 415 and "'br' is not supported" in answer["error"]
    code, answer = _post(iris_url + "/predict", b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"})
    assert code == 400 and "not valid gzip" in answer["error"]
    bomb = gzip.compress(b" " * (20 << 20))  # 20 MiB of spaces in about 20 KiB
    code, answer = _post(iris_url + "/predict", bomb, {"Content-Encoding": "gzip"})
    assert code == 413 and "inflates beyond the limit" in answer["error"]
    tensor = json.dumps(v2([[5.1, 3.5, 1.4, 0.2]])).encode()
    for header in ("\u00b2", "9" * 5000, "0", str(len(tensor) + 1)):
        conn = http.client.HTTPConnection(iris_url.removeprefix("http://"), timeout=30)
        conn.putrequest("POST", "/v2/models/iris/infer")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Inference-Header-Content-Length", header.encode().decode("latin-1"))
        conn.putheader("Content-Length", str(len(tensor)))
        conn.endheaders(tensor)
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 422 and "Inference-Header-Content-Length" in answer["error"], (
            header[:9],
            answer,
        )
        assert len(answer["error"]) < 300
        conn.close()
    binary = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}]
    }
    head = json.dumps(binary).encode()
    extra = head + np.array([5.1, 3.5, 1.4, 0.2]).tobytes() + b"junk"
    code, answer = _post(
        iris_url + "/v2/models/iris/infer", extra, {"Inference-Header-Content-Length": str(len(head))}
    )
    assert code == 422 and "4 bytes after" in answer["error"], answer
    code, answer = _post(iris_url + "/nowhere", b"{}", {})
    assert code == 404 and "no route for POST /nowhere" in answer["error"]
    # A client that sends half its body and leaves: counted as 499, not as a server error.
    before = metric_lines(iris_url)
    conn = http.client.HTTPConnection(iris_url.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Length", "1000")
    conn.endheaders(b'{"input": [1,')
    conn.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = metric_lines(iris_url)
        if after.get('hm_requests_total{code="499",endpoint="predict"}', 0) > before.get(
            'hm_requests_total{code="499",endpoint="predict"}', 0
        ):
            break
        time.sleep(0.1)
    assert (
        after['hm_requests_total{code="499",endpoint="predict"}']
        == before.get('hm_requests_total{code="499",endpoint="predict"}', 0) + 1
    )
    assert after.get('hm_requests_total{code="500",endpoint="predict"}', 0) == before.get(
        'hm_requests_total{code="500",endpoint="predict"}', 0
    )
