"""The runtime's per-request shortcuts give the same answers as the full paths they skip.

- A plain v2 body (one numeric tensor, shape [n, k], nothing optional) is read by a shortcut; under
  hypothesis, every body (plain or not, valid or not) gets from `rows_from_v2` exactly what the full
  tensor path gives: the same rows, dtype and context, or the same error and reason.
- The batcher takes one event-loop turn before each batch: requests submitted in that turn join it.
- A POST's answer leaves in one write (head and body joined), except under `Expect: 100-continue`, whose
  interim answer must reach the client before it sends the body: proven on the real server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.servers import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "charts" / "inference-service" / "files"
sys.path.insert(0, str(RUNTIME))
try:
    from hm_runtime.batching import Batcher
    from hm_runtime.limits import HeadWithBody
    from hm_runtime.models import InputError, LoadedModel
    from hm_runtime.protocol import _plain_v2, _tensor_rows, rows_from_v2
finally:
    sys.path.remove(str(RUNTIME))

K = 3


def model(dtype: str, allow_nan: bool) -> LoadedModel:
    return LoadedModel(
        "m", "sklearn", lambda rows: rows[:, 0], n_features=K, input_dtype=dtype, allow_nan=allow_nan
    )


def outcome(read: Any, payload: Any, loaded: LoadedModel) -> tuple[Any, ...]:
    try:
        rows, context = read(payload, loaded)
    except InputError as exc:
        return ("refused", str(exc), exc.reason)
    return ("rows", rows.dtype.str, rows.shape, rows.tobytes(), context)


VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(-(2**70), 2**70),
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 3))
    k = draw(st.sampled_from([K, K, K, 2]))
    size = n * k + draw(st.sampled_from([0, 0, 0, 1, -1]))
    data: Any = draw(st.lists(VALUES, min_size=max(size, 0), max_size=max(size, 0)))
    if draw(st.booleans()) and size == n * k and k:
        data = [data[i : i + k] for i in range(0, len(data), k)]  # nested rows
    tensor: dict[str, Any] = {
        "name": "x",
        "shape": draw(st.sampled_from([[n, k], [n, k], [n * k], [n, k, 1], [n, "3"]])),
        "datatype": draw(
            st.sampled_from(["FP64", "FP32", "FP16", "INT64", "INT32", "fp64", "BOOL", "BYTES"])
        ),
        "data": data,
    }
    body: dict[str, Any] = {"inputs": [tensor]}
    extra = draw(st.sampled_from(["", "", "id", "bad-id", "outputs", "parameters", "tensor-parameters"]))
    if extra == "id":
        body["id"] = draw(st.text(max_size=8))
    elif extra == "bad-id":
        body["id"] = 7
    elif extra == "outputs":
        body["outputs"] = [{"name": "predict"}]
    elif extra == "parameters":
        body["parameters"] = {"binary_data_output": True}
    elif extra == "tensor-parameters":
        tensor["parameters"] = {}
    return body


@settings(max_examples=400, deadline=None, derandomize=True)
@given(body=bodies(), dtype=st.sampled_from(["float64", "float32"]), allow_nan=st.booleans())
def test_the_plain_body_shortcut_answers_as_the_full_path(
    body: dict[str, Any], dtype: str, allow_nan: bool
) -> None:
    loaded = model(dtype, allow_nan)
    full = outcome(lambda p, m: _tensor_rows(p, m, b""), body, loaded)
    assert outcome(rows_from_v2, body, loaded) == full


def test_the_shortcut_takes_plain_bodies() -> None:
    """Not a dead branch: plain numeric bodies are read by the shortcut, others are left to the full path."""
    loaded = model("float64", False)
    plain = {"inputs": [{"name": "x", "shape": [2, K], "datatype": "FP32", "data": [1, 2, 3, 4.5, 5, 6]}]}
    rows, context = _plain_v2(plain, loaded) or pytest.fail("the shortcut refused a plain body")
    assert rows.tolist() == [[1, 2, 3], [4.5, 5, 6]] and rows.dtype == np.float64
    assert context.request_id is None and context.binary_output is False
    with_id = {**plain, "id": "abc"}
    assert (_plain_v2(with_id, loaded) or pytest.fail("refused"))[1].request_id == "abc"
    for other in (
        {**plain, "outputs": [{"name": "predict"}]},
        {"inputs": [{**plain["inputs"][0], "data": [1, None, 3, 4, 5, 6]}]},  # a null: the full path decides
        {"inputs": [{**plain["inputs"][0], "shape": [0, K], "data": []}]},
    ):
        assert _plain_v2(other, loaded) is None
    too_big = {"inputs": [{"name": "x", "shape": [1, K], "datatype": "FP32", "data": [1, 1e39, 3]}]}
    with pytest.raises(InputError, match=r"inputs\[0\]\.data\[1\] is 1e\+39"):
        _plain_v2(too_big, loaded)


def test_the_batcher_waits_one_loop_turn_for_company() -> None:
    sizes: list[int] = []

    async def scenario() -> list[list[float]]:
        batcher = Batcher(lambda rows: rows[:, 0] * 2, observe=sizes.append)
        batcher.start()
        loop = asyncio.get_running_loop()
        first = [batcher.submit(np.array([[float(i)]])) for i in range(10)]
        later: list[asyncio.Future[np.ndarray]] = []
        # Submitted in the loop turn after the batcher was woken: they join the first batch.
        loop.call_soon(lambda: later.extend(batcher.submit(np.array([[float(i)]])) for i in range(10, 20)))
        await asyncio.sleep(0)
        answers = [(await f).tolist() for f in first + later]
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert answers == [[2.0 * i] for i in range(20)]
    assert sizes == [20]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, parts: Any) -> None:
        self.calls.append(("writelines", list(parts)))

    def is_closing(self) -> bool:
        return False


def test_the_request_id_is_the_header_else_the_body_id_else_new() -> None:
    from hm_runtime.app import _request_id

    assert _request_id("trace-1", "body-1") == "trace-1"
    assert _request_id("bad id with spaces", "body-1") == "body-1"
    assert _request_id(None, "body-1") == "body-1"
    made = _request_id("bad id", "also bad")
    assert made not in ("bad id", "also bad") and len(made) == 24 and made != _request_id(None, None)


def test_head_and_body_leave_in_one_write() -> None:
    recorder = Recorder()
    transport = HeadWithBody(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
    assert recorder.calls == []
    transport.write(b"body")
    transport.write(b"more")
    assert recorder.calls == [
        ("writelines", [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n", b"body"]),
        ("write", b"more"),
    ]
    assert transport.is_closing() is False  # everything else is the transport's


@pytest.mark.real
def test_expect_100_continue_is_answered_before_the_body(tmp_path: Path) -> None:
    """A client that waits for `100 Continue` before sending its body (as curl does for large bodies)
    gets it at once, then its answer; a plain POST on the same server gets its whole answer."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "m.joblib"
    joblib.dump(LogisticRegression().fit([[0.0, 0.0], [1.0, 1.0]], [0, 1]), path)
    port = free_port()
    argv = [sys.executable, "-m", "hm_runtime", "--model", str(path), "--trust-model", "--port", str(port)]
    server = subprocess.Popen(
        [*argv, "--host", "127.0.0.1"],
        cwd=RUNTIME,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=60)
        body = b'{"input": [1.0, 1.0]}'
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
            )
            s.settimeout(2)
            interim = s.recv(1024)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(body)
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"prediction":[1]}')
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"prediction":[1]}')
        # Another method on a hot route: 405 naming the method, with Allow: POST, counted as its endpoint.
        for method, route in (("GET", "/predict"), ("HEAD", "/v2/models/model/infer"), ("PUT", "/predict")):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"{method} {route} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode())
                answer = s.recv(65536) if method == "HEAD" else _read_answer(s)
            assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), answer
            assert b"\r\nallow: POST\r\n" in answer
            said = f'{{"error":"{method} is not allowed on {route}: send POST"}}'
            assert method == "HEAD" or answer.endswith(said.encode())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'hm_requests_total{code="405",endpoint="predict"} 2.0' in metrics
        assert 'hm_requests_total{code="405",endpoint="v2_infer"} 1.0' in metrics
    finally:
        server.terminate()
        server.wait(timeout=30)


def _read_answer(s: socket.socket) -> bytes:
    """One HTTP answer with a content-length, read whole."""
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        if _ and b"content-length: " in head:
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) >= length:
                return data
    raise AssertionError(f"no whole answer: {data!r}")
