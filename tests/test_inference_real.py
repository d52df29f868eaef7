"""The inference-service chart's containers, run for real with the command and env it renders: the
fetch-model init container downloads from the S3 emulator (moto_server, which accepts any signature),
from MinIO (a real S3 server that verifies them), over real TLS with a CA of its own and sha256
verification, or unpacks an inline model; the install-deps init container installs the runtime's lock
into a bare venv from a local wheel index; then the rendered server container serves the model from
only those packages, and a real `mlserver start` serves the model-settings.json the chart generates."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.charts import CHARTS, find, template
from tests.support.podrun import LocalPod, bare_python, lock_wheels
from tests.support.servers import free_port, https_files, minio, minio_binary, moto_s3, tls_ca, wait_http

pytestmark = pytest.mark.real
CHART = CHARTS / "inference-service"
X, Y = load_iris(return_X_y=True)
ROWS = X[::15]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    model = LogisticRegression(max_iter=500).fit(X, Y)
    path = tmp_path_factory.mktemp("model") / "iris.joblib"
    joblib.dump(model, path)
    return path, model


def _spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(find(docs, "Deployment")["spec"]["template"]["spec"])


def _container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def _pod(docs: list[dict[str, Any]], root: Path, **kw: Any) -> LocalPod:
    pod = LocalPod(docs, root, **kw)
    # The runtime's package dir sits inside /opt/helm-mlops/runtime, which is on PYTHONPATH.
    runtime_root = root / "runtime-root"
    package = runtime_root / "hm_runtime"
    package.mkdir(parents=True)
    code = find(docs, "ConfigMap", "t-inference-service-code")["data"]
    for key, text in code.items():
        if key.endswith(".py") and key != "fetch_model.py":
            (package / key).write_text(text)
    pod.mounts["/opt/helm-mlops/runtime"] = runtime_root
    pod.mounts["/opt/helm-mlops/runtime/hm_runtime"] = package
    return pod


@contextmanager
def _serving(pod: LocalPod, spec: dict[str, Any], log: Path) -> Iterator[str]:
    port = free_port()
    pod.extra_env["HM_RUNTIME_PORT"] = str(port)
    proc = pod.start(spec, _container(spec, "server"), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v2/health/ready", timeout=120, proc=proc, log=log)  # 503 until loaded
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _predict(url: str) -> list[int]:
    request = urllib.request.Request(url + "/predict", data=json.dumps({"input": ROWS.tolist()}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.loads(response.read())["prediction"])


def test_s3_emulator_download_then_serve(model_file: tuple[Path, LogisticRegression], tmp_path: Path) -> None:
    path, model = model_file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with moto_s3(tmp_path) as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="AK",
            aws_secret_access_key="SK/x+y",
            region_name="eu-west-1",
        )
        s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.upload_file(str(path), "models", "iris/v3 final/model.joblib")  # a key that needs escaping
        values = {
            "model": {
                "name": "iris",
                "sha256": digest,
                "source": {
                    "type": "s3",
                    "s3": {
                        "endpointUrl": "http://minio.ml.svc:9000",
                        "bucket": "models",
                        "key": "iris/v3 final/model.joblib",
                        "region": "eu-west-1",
                        "existingSecret": "minio",
                    },
                },
            }
        }
        docs = template(CHART, values=values, tmp_dir=tmp_path)
        spec = _spec(docs)
        pod = _pod(
            docs,
            tmp_path / "pod",
            host_map={"http://minio.ml.svc:9000": endpoint},
            extra_secrets={"minio": {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK/x+y"}},
        )
        fetched = pod.run(spec, _container(spec, "fetch-model"))
        assert fetched.returncode == 0, fetched.stderr
        assert "SK/x+y" not in fetched.stderr + fetched.stdout  # credentials never printed
        model_dir = pod.mounts["/opt/helm-mlops/model"]
        assert (model_dir / "model.joblib").read_bytes() == path.read_bytes()
        assert [p.name for p in model_dir.iterdir()] == ["model.joblib"]  # no partial file left
    with _serving(pod, spec, tmp_path / "server.log") as url:
        assert _predict(url) == list(model.predict(ROWS))


@pytest.fixture(scope="module")
def minio_exe() -> Path:
    return minio_binary()


def test_real_s3_verifies_signatures(
    model_file: tuple[Path, LogisticRegression], minio_exe: Path, tmp_path: Path
) -> None:
    """The rendered fetch-model container against MinIO, which checks every request's SigV4 signature
    (the emulator above accepts any): the right keys download the model, under a key with a space and a
    `+`, so the request the fetcher signs is the one the server computes; a wrong secret key and an
    unknown access key id are refused with the 403, S3's reason and what to fix, and nothing is written."""
    path, _ = model_file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    key = "iris/v3 final+1/model.joblib"
    with minio(minio_exe, tmp_path / "minio") as s3:
        client = boto3.client(
            "s3",
            endpoint_url=s3.url,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="models")
        client.upload_file(str(path), "models", key)
        values = {
            "model": {
                "sha256": digest,
                "source": {
                    "type": "s3",
                    "s3": {
                        "endpointUrl": "http://minio.ml.svc:9000",
                        "bucket": "models",
                        "key": key,
                        "existingSecret": "minio",
                    },
                },
            }
        }
        docs = template(CHART, values=values, tmp_dir=tmp_path)
        spec = _spec(docs)
        fetch = _container(spec, "fetch-model")
        wrong = os.urandom(18).hex()
        cases = [
            ("right", s3.access_key, s3.secret_key, ""),
            ("wrong-secret", s3.access_key, wrong, "403 Forbidden for http://127.0.0.1:"),
            ("unknown-key", "AKIDUNKNOWN", s3.secret_key, "403 Forbidden for http://127.0.0.1:"),
        ]
        reasons = {
            "wrong-secret": "SignatureDoesNotMatch: the request's signature does not verify",
            "unknown-key": "InvalidAccessKeyId: the endpoint does not know this access key id",
        }
        for case, access, secret, error in cases:
            pod = _pod(
                docs,
                tmp_path / f"pod-{case}",
                host_map={"http://minio.ml.svc:9000": s3.url},
                extra_secrets={"minio": {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}},
            )
            result = pod.run(spec, fetch)
            model_dir = pod.mounts["/opt/helm-mlops/model"]
            assert s3.secret_key not in result.stderr and wrong not in result.stderr  # never printed
            if not error:
                assert result.returncode == 0, result.stderr
                assert (model_dir / "model.joblib").read_bytes() == path.read_bytes()
                continue
            assert result.returncode != 0 and error in result.stderr, (case, result.stderr)
            assert reasons[case] in result.stderr and "model.source.s3.existingSecret" in result.stderr
            assert "retrying" not in result.stderr  # a refusal is final
            assert not list(model_dir.iterdir()), case  # nothing written


def test_https_download_is_verified(model_file: tuple[Path, LogisticRegression], tmp_path: Path) -> None:
    """The model over real TLS from a server whose certificate a CA of its own signed: with that CA as
    `model.caBundle` the download verifies and the model is served; a sha256 pin that does not match,
    the system CAs (no caBundle) or another CA's bundle fail, at once, with a clear error and nothing
    written."""
    path, model = model_file
    served = tmp_path / "www"
    served.mkdir()
    (served / "iris.joblib").write_bytes(path.read_bytes())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tls = tls_ca(tmp_path / "tls")
    other = tls_ca(tmp_path / "other-tls")  # a CA that did not sign the server's certificate
    with https_files(served, tls) as (base, requests):
        assert base.startswith("https://localhost:")
        cases = [
            ("verifies", tls.ca, digest, ""),
            ("pin-mismatch", tls.ca, "0" * 64, "sha256 mismatch"),
            ("system-cas", None, digest, "TLS certificate does not verify"),
            ("other-ca", other.ca, digest, "TLS certificate does not verify"),
        ]
        for case, bundle, pin, error in cases:
            # A URL that holds a token is a secret: it comes from an existing Secret, never the values.
            values: dict[str, Any] = {
                "model": {
                    "sha256": pin,
                    "source": {
                        "type": "https",
                        "https": {"existingSecret": "model-url", "fileName": "iris.joblib"},
                    },
                }
            }
            if bundle is not None:
                values["model"]["caBundle"] = {"existingConfigMap": "model-ca", "key": "ca.pem"}
            docs = template(CHART, values=values, tmp_dir=tmp_path)
            assert "s3cr3t" not in str(docs)
            spec = _spec(docs)
            pod = _pod(docs, tmp_path / f"pod-{case}")
            if bundle is not None:  # the kubelet's projection of the user's ConfigMap `model-ca`
                (tmp_path / f"ca-{case}").mkdir()
                (tmp_path / f"ca-{case}" / "ca.pem").write_bytes(bundle.read_bytes())
                pod.mounts["/opt/helm-mlops/ca"] = tmp_path / f"ca-{case}"
            pod.extra_secrets["model-url"] = {"url": f"{base}/iris.joblib?token=s3cr3t"}
            before = len(requests)
            result = pod.run(spec, _container(spec, "fetch-model"))
            target = pod.mounts["/opt/helm-mlops/model"] / "iris.joblib"
            assert "s3cr3t" not in result.stderr  # a URL's query may hold a token
            if not error:
                assert result.returncode == 0 and target.read_bytes() == path.read_bytes(), result.stderr
                with _serving(pod, spec, tmp_path / "server.log") as url:
                    assert _predict(url) == list(model.predict(ROWS))
                continue
            assert result.returncode != 0 and error in result.stderr, (case, result.stderr)
            assert not list(target.parent.iterdir()), case  # nothing half-written
            if bundle is not tls.ca:  # refused in the handshake: no request, no retry (5 would take 30s)
                assert len(requests) == before and "retrying" not in result.stderr, case
                assert "model.caBundle" in result.stderr
            else:
                assert requests[before:] == ["/iris.joblib?token=s3cr3t"], case


def test_inline_model(model_file: tuple[Path, LogisticRegression], tmp_path: Path) -> None:
    import base64

    path, model = model_file
    values = {
        "model": {
            "trustModel": True,
            "source": {
                "type": "inline",
                "inline": {"fileName": "iris.joblib", "base64": base64.b64encode(path.read_bytes()).decode()},
            },
        }
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec = _spec(docs)
    pod = _pod(docs, tmp_path / "pod")
    assert pod.run(spec, _container(spec, "fetch-model")).returncode == 0
    with _serving(pod, spec, tmp_path / "server.log") as url:
        assert _predict(url) == list(model.predict(ROWS))


@contextmanager
def _mlserver(model_bytes: bytes, mlserver_python: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`mlserver start` with the chart's rendered settings and command (the pod's paths mapped here, free
    ports instead of 8080-8082), serving `model_bytes` as the claim's iris/model.joblib. Yields the base
    URL and the rendered readiness probe path, once the server answers its liveness path."""
    values = {
        "runtime": "mlserver",
        "mlserver": {"parallelWorkers": 0, "adaptiveBatching": {"maxBatchSize": 8, "maxBatchTime": 0.01}},
        "model": {
            "name": "iris",
            "trustModel": True,
            "source": {"type": "pvc", "pvc": {"claimName": "models", "path": "iris/model.joblib"}},
        },
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec = _spec(docs)
    server = _container(spec, "server")
    claim = tmp_path / "claim"
    (claim / "iris").mkdir(parents=True)
    (claim / "iris" / "model.joblib").write_bytes(model_bytes)
    pod = LocalPod(
        docs, tmp_path / "pod", mounts={"/opt/helm-mlops/model-src": claim}, python=mlserver_python
    )
    argv, env = pod.command(spec, server)
    settings_dir = pod.mounts["/opt/helm-mlops/mlserver"]
    port = free_port()
    settings = json.loads((settings_dir / "settings.json").read_text())
    settings.update(
        http_port=port, grpc_port=free_port(), metrics_port=free_port(), metrics_dir=str(tmp_path / "metrics")
    )
    (settings_dir / "settings.json").write_text(json.dumps(settings))
    model_settings = settings_dir / "model-settings.json"
    model_settings.write_text(pod.map_text(model_settings.read_text()))
    assert argv[:2] == ["mlserver", "start"]
    argv[0] = str(Path(mlserver_python).parent / "mlserver")
    log = tmp_path / "mlserver.log"
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + server["livenessProbe"]["httpGet"]["path"], timeout=120, proc=proc, log=log)
        yield url, server["readinessProbe"]["httpGet"]["path"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_real_mlserver_serves_the_generated_model_settings(
    model_file: tuple[Path, LogisticRegression], mlserver_python: str, tmp_path: Path
) -> None:
    path, model = model_file
    with _mlserver(path.read_bytes(), mlserver_python, tmp_path) as (url, ready):
        deadline = time.monotonic() + 120
        while _status(url + ready) != 200:
            assert time.monotonic() < deadline, "the rendered readiness path never answered 200"
            time.sleep(0.3)
        body = {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(ROWS.shape),
                    "datatype": "FP64",
                    "data": ROWS.reshape(-1).tolist(),
                }
            ]
        }
        request = urllib.request.Request(
            url + "/v2/models/iris/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            out = json.loads(response.read())["outputs"][0]
        assert np.asarray(out["data"]).tolist() == list(model.predict(ROWS))
        # Without its model, MLServer's own /v2/health/ready still answers 200 (issue 14, item 10); the
        # chart's readiness path does not, so such a pod leaves the Service.
        unload = urllib.request.Request(url + "/v2/repository/models/iris/unload", data=b"", method="POST")
        urllib.request.urlopen(unload, timeout=30).close()
        statuses = (_status(url + "/v2/health/ready"), _status(url + ready))
        assert statuses[0] == 200 and statuses[1] >= 400, statuses


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> str:
    return bare_python(tmp_path_factory.mktemp("bare-venv") / "venv")


def _onnx_model(model: LogisticRegression, dest: Path) -> Path:
    from skl2onnx import to_onnx

    onx = to_onnx(model, X[:1].astype(np.float32), options={"zipmap": False})
    dest.write_bytes(onx.SerializeToString())
    return dest


# Each lock with a model of its format: what install-deps installs must be enough to load and serve it.
LOCKS = {"sklearn": "iris/model.joblib", "onnx": "iris/model.onnx"}

# Run inside the server's interpreter, flags and environment: where each module the runtime needs came
# from, and whether anything of the test venv is importable.
WHERE = """
import importlib, json, sys
mods = ["hm_runtime.app", "hm_runtime.__main__", "numpy", "starlette", "uvicorn", "orjson"]
mods += ["prometheus_client"]
mods += sys.argv[1:]
found = {m: importlib.import_module(m).__file__ for m in mods}
leaks = []
for m in ("pytest", "boto3", "helm_mlops", "generator", "pip"):
    try:
        importlib.import_module(m)
        leaks.append(m)
    except ImportError:
        pass
print(json.dumps({"found": found, "leaks": leaks, "path": sys.path}))
"""


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_install_deps_from_a_local_index_then_serve_from_only_those_deps(
    lock: str, model_file: tuple[Path, LogisticRegression], bare: str, tmp_path: Path
) -> None:
    """The rendered install-deps init container, run for real by a bare python (a venv with only pip,
    as the chart's python image) from a local wheel index of the lock (--no-index): the lock installs
    with --require-hashes and wheels only; then the rendered server runs on that python with `-s -S` and
    PYTHONPATH as rendered (runtime + deps, no site-packages, nothing inherited), loads a real model
    and predicts. A dependency the lock lacks stops the server; a lock whose hash was changed (a
    tampered mirror) is refused before anything is installed."""
    path, model = model_file
    claim = tmp_path / "claim"
    model_path = claim / LOCKS[lock]
    model_path.parent.mkdir(parents=True)
    if lock == "sklearn":
        model_path.write_bytes(path.read_bytes())
    else:
        _onnx_model(model, model_path)
    values = {
        "model": {
            "name": "iris",
            "trustModel": True,
            "source": {"type": "pvc", "pvc": {"claimName": "models", "path": LOCKS[lock]}},
        }
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    lock_file = CHART / "files" / "requirements" / f"{lock}.txt"
    code = find(docs, "ConfigMap", "t-inference-service-code")
    assert code["data"]["requirements.txt"].strip() == lock_file.read_text().strip()  # the lock it renders
    spec = _spec(docs)
    install = _container(spec, "install-deps")
    assert install["args"][:2] == ["--require-hashes", "--only-binary=:all:"]
    offline = {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(lock_wheels(lock_file)),
        "PIP_CONFIG_FILE": os.devnull,
    }

    pod = _pod(
        docs, tmp_path / "pod", python=bare, isolated=True, mounts={"/opt/helm-mlops/model-src": claim}
    )
    pod.extra_env.update(offline)
    result = pod.run(spec, install, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    deps = pod.mounts["/opt/helm-mlops/deps"]
    assert (deps / "uvicorn").is_dir() and (
        deps / ("sklearn" if lock == "sklearn" else "onnxruntime")
    ).is_dir()
    for key in offline:
        del pod.extra_env[key]

    pod.python_flags = ("-s", "-S")
    server = _container(spec, "server")
    argv, env = pod.command(spec, server)
    assert argv == [bare, "-s", "-S", "-m", "hm_runtime"]
    runtime = pod.mounts["/opt/helm-mlops/runtime"]
    assert env["PYTHONPATH"] == f"{runtime}:{deps}"
    where = subprocess.run(
        [*argv[:3], "-c", WHERE, "sklearn" if lock == "sklearn" else "onnxruntime"],
        env=env,
        cwd=pod.cwd(server),
        capture_output=True,
        text=True,
        check=False,
    )
    assert where.returncode == 0, where.stderr
    report = json.loads(where.stdout)
    assert report["leaks"] == [], report  # not even pip: the bare venv's site-packages is off too
    for module, file in report["found"].items():
        assert Path(file).is_relative_to(deps) or Path(file).is_relative_to(runtime), (module, file)

    with _serving(pod, spec, tmp_path / "server.log") as url:
        assert _predict(url) == list(model.predict(ROWS))

    # A lock without orjson (deleted from what it installed): the server cannot start.
    for gone in deps.glob("orjson*"):
        shutil.rmtree(gone)
    pod.extra_env["HM_RUNTIME_PORT"] = str(free_port())
    broken = pod.start(spec, server, tmp_path / "broken.log")
    assert broken.wait(timeout=120) != 0
    assert "No module named 'orjson'" in (tmp_path / "broken.log").read_text()

    # Every hash pinned for starlette (its wheel and its sdist) replaced: what the index serves no longer
    # matches what the chart pinned.
    lines, inside = [], False
    for ln in code["data"]["requirements.txt"].splitlines():
        inside = ln.startswith("starlette==") or (inside and ln.startswith(" "))
        lines.append(re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, ln) if inside else ln)
    code["data"]["requirements.txt"] = "\n".join(lines)
    tampered = LocalPod(docs, tmp_path / "tampered", python=bare, isolated=True, extra_env=dict(offline))
    refused = tampered.run(spec, install, timeout=600)
    assert refused.returncode != 0 and "hash" in (refused.stdout + refused.stderr).lower()
    assert not list((tampered.mounts["/opt/helm-mlops/deps"]).iterdir())  # refused before installing
