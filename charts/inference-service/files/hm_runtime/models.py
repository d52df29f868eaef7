"""Loading a model file (or MLflow URI) into something with one vectorised call: rows in, rows out.

The trust model. Some formats are code: loading or calling them runs what the file's author wrote.
- Pickles (.pkl, .pickle, .joblib) and pickled PyTorch modules run code while they load;
- TorchScript programs can read files and call operators with side effects (PyTorch's security policy
  says to treat them as untrusted code);
- MLflow models (a directory, `models:/`, `runs:/`) load through pyfunc, whose python_model.pkl and
  loader modules are code, and whose registry alias anyone with write access to MLflow can move.
They load only with trust given explicitly (`trust`), or, for a single file, when the exact bytes match a
pinned sha256. An MLflow model has no single file to pin, so only `trust` loads it.
ONNX and Keras (safe mode: Lambda layers refused) are data; a pin, when given, is still checked.

A pinned file is hashed while it is copied, through one open descriptor, into a private directory, and
the copy is what loads: the bytes that were checked are the bytes that run, whatever happens to the path
meanwhile."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("hm_runtime")

EXTENSIONS = {
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".joblib": "joblib",
    ".onnx": "onnx",
    ".pt": "torch",
    ".pth": "torch",
    ".h5": "keras",
    ".keras": "keras",
}
FORMATS = ("sklearn", "joblib", "onnx", "torch", "keras", "mlflow")
CODE_FORMATS = ("sklearn", "joblib", "torch", "mlflow")
TRUST_HINT = (
    "Load only models you trust: pass --trust-model (model.trustModel: true in the chart), "
    "or pin the exact file with --sha256 (model.sha256)"
)


# The Open Inference Protocol v2 datatypes and the numpy dtypes they are read as.
V2_TYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
NUMPY_TO_V2 = {v: k for k, v in V2_TYPES.items()}


_V2_OF_DTYPE: dict[np.dtype[Any], str] = {}


def v2_type(array: np.ndarray) -> str:
    """The v2 datatype of an output: strings and objects (class names) are BYTES."""
    found = _V2_OF_DTYPE.get(array.dtype)
    if found is None:
        found = _V2_OF_DTYPE[array.dtype] = NUMPY_TO_V2.get(str(array.dtype), "BYTES")
    return found


class ModelError(Exception):
    """A model that cannot be loaded; the message says why and what to do."""


class DeviceUnusable(ModelError):
    """An explicit CUDA device (`--device cuda[:N]`) the model's framework could not start on: the
    runtime ends with status 2 rather than serve unready or on another device."""


class InputError(ValueError):
    """Input that does not fit the model; the message names the expected shape. `reason` is its
    hm_schema_violations_total label (metrics.REASONS)."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class LoadedModel:
    name: str
    format: str
    predict: Callable[[np.ndarray], np.ndarray]
    n_features: int | None = None
    input_dtype: str = "float32"
    vectorised: bool = True
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None
    load_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    # NaN in the input stands for a missing value the model handles itself (scikit-learn's allow_nan tag).
    allow_nan: bool = False
    # What v2 model metadata says: the model's own input name where it has one, its output's datatype.
    input_name: str = "input-0"
    output_name: str = "predict"
    output_datatype: str | None = None
    output_shape: list[int] = field(default_factory=lambda: [-1])
    version: str = "1"
    # Where the model predicts: "cpu" or "cuda:N", read off the loaded model (its weights, its session's
    # providers), not the device asked for: a model left on the CPU says so.
    device: str = "cpu"

    def check_rows(self, rows: np.ndarray) -> None:
        if rows.ndim != 2:
            raise InputError(
                f"expected rows of shape [n, {self.n_features or 'features'}], got shape {list(rows.shape)}",
                "shape",
            )
        if self.n_features is not None and rows.shape[1] != self.n_features:
            raise InputError(
                f"expected {self.n_features} features per row (shape [n, {self.n_features}]), "
                f"got {rows.shape[1]}",
                "shape",
            )


def detect_format(model: str, explicit: str | None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise ModelError(f"unknown format {explicit!r}: use one of {', '.join(FORMATS)}")
        return explicit
    if model.startswith("models:/") or model.startswith("runs:/"):
        return "mlflow"
    path = Path(model)
    if path.is_dir() and (path / "MLmodel").is_file():
        return "mlflow"
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(f"cannot tell the format of {model}: give --format ({', '.join(FORMATS)})")
    return fmt


def require_trust(what: str, kind: str, trust: bool, pin: str | None) -> None:
    if trust or (pin and kind != "mlflow"):
        return
    if kind == "mlflow":
        raise ModelError(
            f"{what} is an MLflow model: loading it runs code stored with the model (pyfunc). An MLflow "
            "model has no single file to pin, so only --trust-model (model.trustModel: true) loads it"
        )
    raise ModelError(f"{what} is {_CODE_KIND[kind]}: loading it runs code stored in the file. {TRUST_HINT}")


_CODE_KIND = {
    "sklearn": "a pickle",
    "joblib": "a pickle (joblib)",
    "torch": "a PyTorch model (TorchScript or a pickled module)",
}

# Called between verifying a pinned file and loading it (tests use it to swap the file on disk).
_after_verify: Callable[[Path], None] = lambda path: None  # noqa: E731


@contextlib.contextmanager
def _pinned_copy(path: Path, pin: str) -> Iterator[Path]:
    """A private copy of `path` whose sha256 is `pin`, made from one open descriptor."""
    digest = hashlib.sha256()
    private = Path(tempfile.mkdtemp(prefix="hm-model-"))  # mode 0700: this process's alone
    copy = private / path.name
    try:
        with path.open("rb") as source, copy.open("wb") as target:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                target.write(block)
        actual = digest.hexdigest()
        if actual != pin.lower():
            raise ModelError(f"{path} has sha256 {actual}, not the pinned {pin}: refusing to load it")
        copy.chmod(0o400)
        _after_verify(path)
        yield copy
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _features(model: Any) -> int | None:
    n = getattr(model, "n_features_in_", None)
    return int(n) if n is not None else None


def _load_pickled(path: Path, fmt: str) -> Any:
    if fmt == "joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as handle:
        return pickle.load(handle)


def _final_step(model: Any) -> Any:
    steps = getattr(model, "steps", None)  # a Pipeline: its last step predicts
    return steps[-1][1] if isinstance(steps, list) and steps and isinstance(steps[-1], tuple) else model


def _computes_in_float32(model: Any) -> bool:
    """Trees and forests compare features as float32: rows are cast (and refused when too large) before
    the call, as scikit-learn would do inside it."""
    if hasattr(model, "tree_"):
        return True
    estimators = getattr(model, "estimators_", None)
    if estimators is None:
        return False
    try:
        first = np.ravel(np.asarray(estimators, dtype=object))[0]
    except (IndexError, ValueError):
        return False
    return hasattr(first, "tree_")


def _allows_nan(model: Any) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # not a scikit-learn estimator, or an older scikit-learn
        return False


def _sklearn_output(model: Any) -> str | None:
    classes = getattr(_final_step(model), "classes_", None)
    if classes is not None:
        return v2_type(np.asarray(classes))
    return None


def _from_estimator(name: str, fmt: str, model: Any) -> LoadedModel:
    if not hasattr(model, "predict"):
        raise ModelError(f"the object in the {fmt} file ({type(model).__name__}) has no predict method")
    proba = getattr(model, "predict_proba", None)
    return LoadedModel(
        name,
        fmt,
        predict=lambda rows: np.asarray(model.predict(rows)),
        n_features=_features(model),
        input_dtype="float32" if _computes_in_float32(model) else "float64",
        predict_proba=(lambda rows: np.asarray(proba(rows))) if callable(proba) else None,
        details={"class": f"{type(model).__module__}.{type(model).__name__}"},
        allow_nan=_allows_nan(model),
        output_datatype=_sklearn_output(model),
    )


ONNX_TO_V2 = {
    "float": "FP32",
    "double": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
    "string": "BYTES",
}


ONNX_TO_NUMPY = {
    "float": "float32",
    "double": "float64",
    "float16": "float16",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint64": "uint64",
    "uint32": "uint32",
    "uint16": "uint16",
    "uint8": "uint8",
    "bool": "bool",
}


def onnx_providers(device: str) -> list[Any]:
    """onnxruntime's providers for the device: on CUDA the CUDA provider for that device first, then
    the CPU for the operators it lacks."""
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _onnx_session(
    path: Path, device: str, cpu_fallback: bool, factory: Callable[..., Any]
) -> tuple[Any, str]:
    """The session and the device it really runs on. onnxruntime falls back to the CPU (a warning, or
    an error in some builds) when CUDAExecutionProvider cannot start, e.g. onnxruntime-gpu without the
    CUDA or cuDNN libraries: under --device auto (`cpu_fallback`) the model then loads on the CPU with a
    log line; under an explicit cuda[:N] that is DeviceUnusable."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One request thread per pod: onnxruntime's own thread pool would fight the server for the CPU.
    options.intra_op_num_threads = int(os.environ.get("HM_RUNTIME_ONNX_THREADS", "1"))
    if device == "cpu":
        return factory(str(path), options, providers=onnx_providers("cpu")), "cpu"
    try:
        session = factory(str(path), options, providers=onnx_providers(device))
        providers = list(session.get_providers())
        cuda = providers[:1] == ["CUDAExecutionProvider"]
        failure = "" if cuda else f"it fell back to {', '.join(providers)}"
    except Exception as exc:  # onnxruntime's own error while starting the provider, or the model's
        failure = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}".strip()
    if not failure:
        return session, device
    # On the CPU: a model that fails there too fails on its own account (its error, not the device's).
    cpu = factory(str(path), options, providers=onnx_providers("cpu"))
    why = f"onnxruntime could not start CUDAExecutionProvider on {device} ({failure})"
    if not cpu_fallback:
        raise DeviceUnusable(
            f"--device {device} cannot be used: {why}; fix: install the CUDA and cuDNN libraries "
            "onnxruntime-gpu needs (or an image that has them), or serve with --device auto or cpu"
        )
    log.warning("--device auto: %s; serving on the CPU", why)
    return cpu, "cpu"


def _load_onnx(
    name: str,
    path: Path,
    device: str = "cpu",
    cpu_fallback: bool = False,
    factory: Callable[..., Any] | None = None,
) -> LoadedModel:
    import onnxruntime as ort

    session, device = _onnx_session(path, device, cpu_fallback, factory or ort.InferenceSession)
    first = session.get_inputs()[0]
    dtype = ONNX_TO_NUMPY.get(first.type.removeprefix("tensor(").removesuffix(")"))
    if dtype is None:
        raise ModelError(
            f"{path}: its input {first.name!r} is {first.type}; this runtime feeds numeric tensors "
            f"({', '.join(sorted(ONNX_TO_NUMPY))})"
        )
    width = first.shape[1] if len(first.shape) == 2 and isinstance(first.shape[1], int) else None
    outputs = [o.name for o in session.get_outputs()]
    proba_name = next((o for o in outputs if "prob" in o.lower()), None)
    out_type = session.get_outputs()[0].type  # e.g. tensor(int64), tensor(string)

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([outputs[0]], {first.name: rows.astype(dtype, copy=False)})[0])

    def predict_proba(rows: np.ndarray) -> np.ndarray:
        result = session.run([proba_name], {first.name: rows.astype(dtype, copy=False)})[0]
        if isinstance(result, list):  # zipmap output: a dict per row
            return np.asarray([[row[k] for k in sorted(row)] for row in result])
        return np.asarray(result)

    return LoadedModel(
        name,
        "onnx",
        predict,
        width,
        dtype,
        predict_proba=predict_proba if proba_name else None,
        details={"input": first.name, "outputs": outputs},
        input_name=first.name,
        output_name=outputs[0],
        output_datatype=ONNX_TO_V2.get(out_type.removeprefix("tensor(").removesuffix(")")),
        output_shape=[-1 if not isinstance(d, int) else d for d in session.get_outputs()[0].shape] or [-1],
        device=device,
    )


def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _load_torch(name: str, path: Path, device: str = "cpu") -> LoadedModel:
    import torch

    target = torch.device(device)
    if is_torchscript(path):
        module = torch.jit.load(str(path), map_location=target)
        kind = "torchscript"
    else:
        module = torch.load(str(path), map_location=target, weights_only=False)
        if not callable(module):
            raise ModelError(
                f"{path} holds a {type(module).__name__}, not a module: save the model, not a state_dict"
            )
        kind = "module"
    if hasattr(module, "to"):
        module = module.to(target)  # buffers and parameters the map did not cover (e.g. made in __init__)
    module.eval()
    first = next(iter(getattr(module, "parameters", lambda: iter(()))()), None)
    width = int(first.shape[1]) if first is not None and first.dim() == 2 else None
    # Where the weights are (parameters, else buffers); a module with neither computes where its inputs
    # are sent, which is the target.
    weight = first if first is not None else next(iter(getattr(module, "buffers", lambda: iter(()))()), None)
    actual = str(weight.device) if weight is not None else str(target)

    def predict(rows: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        with torch.inference_mode():
            out = module(batch.to(target, non_blocking=True) if target.type != "cpu" else batch)
        return np.asarray(out.detach().cpu().numpy())  # back in host memory before it is serialised

    return LoadedModel(
        name,
        "torch",
        predict,
        width,
        "float32",
        details={"kind": kind},
        output_datatype="FP32",
        device=actual,
    )


def _load_keras(name: str, path: Path, device: str = "cpu") -> LoadedModel:
    from hm_runtime.device import keras_backend

    keras_backend()
    import keras

    # Keras 3's device scope (tf.device, torch's or jax's default device): "gpu:N" or "cpu:0". It is
    # per thread, so each call enters it again (predictions run in the batcher's thread).
    scope = f"gpu:{device.split(':', 1)[1]}" if device.startswith("cuda") else "cpu:0"
    with keras.device(scope):
        model = keras.models.load_model(str(path), compile=False)
    shape = getattr(model, "input_shape", None)
    width = shape[1] if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int) else None

    def predict(rows: np.ndarray) -> np.ndarray:
        with keras.device(scope):
            return np.asarray(model.predict(rows.astype("float32"), verbose=0))

    return LoadedModel(
        name,
        "keras",
        predict,
        width,
        "float32",
        details={"backend": keras.backend.backend()},
        output_datatype="FP32",
        device=_keras_device(model, device),
    )


def device_name(text: str) -> str:
    """A framework's name for a device as this runtime says it: "cuda:N" for a GPU, else "cpu".
    TensorFlow: "/job:localhost/replica:0/task:0/device:GPU:1"; torch: "cuda:1"; jax: "gpu:1"/"cuda:1"."""
    found = re.search(r"(gpu|cuda)(?::(\d+))?$", text.strip().lower())
    if found is None:
        return "cpu"
    return f"cuda:{found.group(2) or 0}"


def _keras_device(model: Any, requested: str) -> str:
    """Where a Keras model's variables live, whatever its backend; the requested device for a model
    with no variables (it computes where its scope puts it)."""
    weights = list(getattr(model, "weights", None) or [])
    if not weights:
        return requested
    value = getattr(weights[0], "value", weights[0])
    devices = getattr(value, "devices", None)
    if callable(devices):  # a jax array: the devices it is placed on
        try:
            first = sorted(devices(), key=lambda d: int(d.id))[0]
            return device_name(f"{first.platform}:{first.id}")
        except Exception:  # an array jax can no longer describe: fall through to .device
            pass
    return device_name(str(getattr(value, "device", "") or requested))


def _load_mlflow(name: str, uri: str) -> LoadedModel:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(uri)
    schema = model.metadata.get_input_schema()
    width: int | None = None
    columns: list[str] | None = None
    types: list[np.dtype[Any]] = []
    dtype = "float64"
    if schema is not None and schema.is_tensor_spec():
        # A tensor signature: the model takes an array of that dtype and shape; MLflow refuses others.
        spec = schema.inputs[0]
        dtype = str(np.dtype(spec.type))
        shape = tuple(spec.shape or ())
        width = int(shape[1]) if len(shape) == 2 and shape[1] not in (-1, None) else None
    elif schema is not None:
        columns = schema.input_names()
        width = len(columns)
        try:
            types = [np.dtype(t) for t in schema.numpy_types()]
        except Exception:  # a column type numpy cannot name (e.g. a string column): left to MLflow
            types = []
        numeric = [t for t in types if t.kind in "biuf"]
        if types and len(numeric) == len(types) and len(set(types)) == 1:
            dtype = str(types[0])  # one type for every column: rows are checked and cast to it
    per_column = bool(types) and len(set(types)) > 1

    def predict(rows: np.ndarray) -> np.ndarray:
        if columns:
            import pandas as pd

            frame = pd.DataFrame(rows, columns=columns)
            if per_column:  # columns of several types: each cast to its own, as the signature says
                frame = frame.astype({c: t for c, t in zip(columns, types, strict=True) if t.kind in "biuf"})
            return np.asarray(model.predict(frame))
        return np.asarray(model.predict(rows))

    return LoadedModel(
        name,
        "mlflow",
        predict,
        width,
        dtype,
        details={"uri": uri, "flavors": list(model.metadata.flavors)},
        output_datatype=_mlflow_output(model.metadata.get_output_schema()),
    )


def _mlflow_output(schema: Any) -> str | None:
    """The v2 datatype of the model's first output, from its signature (None without one)."""
    try:
        first = schema.numpy_types()[0]
    except Exception:  # no signature, or one numpy cannot describe
        return None
    return NUMPY_TO_V2.get(str(np.dtype(first)), "BYTES")


def load(
    model: str,
    name: str,
    fmt: str | None = None,
    trust: bool = False,
    sha256: str | None = None,
    device: str = "cpu",
    cpu_fallback: bool = False,
) -> LoadedModel:
    """The model, loaded onto `device` ("cpu" or "cuda:N", as hm_runtime.device resolved it);
    `cpu_fallback` (--device auto) lets a framework that cannot start on the GPU load it on the CPU."""
    started = time.perf_counter()
    kind = detect_format(model, fmt)
    if kind == "mlflow":
        if sha256:
            raise ModelError(
                f"{model} is an MLflow model: a sha256 pin cannot be verified for it (no single file). "
                "Drop the pin and pass --trust-model if you trust the model and who can change it"
            )
        require_trust(model, kind, trust, None)
        with _explained(model, "loaded as an MLflow model", _EXPECTED["mlflow"]):
            loaded = _load_mlflow(name, model)
    else:
        path = Path(model)
        if path.is_dir():
            raise ModelError(
                f"{path} is a directory, not a model file: give the model file inside it, or an MLflow "
                "model directory (one holding an MLmodel file)"
            )
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        if kind in CODE_FORMATS:
            require_trust(str(path), kind, trust, sha256)
        with _pinned_copy(path, sha256) if sha256 else contextlib.nullcontext(path) as source:
            loaded = _load_file(name, kind, source, device, cpu_fallback)
    loaded.predict = _guarded(loaded.predict)
    _learn_output(loaded)
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def _guarded(predict: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The model's call, with a StopIteration it raises turned into an ordinary error: asyncio cannot
    carry a StopIteration through a future, and the request would never be answered."""

    def call(rows: np.ndarray) -> np.ndarray:
        try:
            return predict(rows)
        except StopIteration as exc:
            raise RuntimeError("the model raised StopIteration") from exc

    return call


def _learn_output(model: LoadedModel) -> None:
    """The datatype and shape of the model's answers, from one prediction on a row of zeros at load,
    so v2 metadata is right before the first request. A model that refuses zeros keeps what its
    loader declared; the first answer then tells."""
    if model.n_features is None:
        return
    try:
        out = np.asarray(model.predict(np.zeros((1, model.n_features), dtype=model.input_dtype)))
    except Exception:  # the model's own business; requests will show it
        return
    if out.ndim >= 1 and len(out) == 1:
        model.output_datatype, model.output_shape = v2_type(out), [-1, *out.shape[1:]]


_EXPECTED = {
    "sklearn": "a pickle written by pickle.dump (or joblib.dump) of a fitted estimator",
    "joblib": "a file written by joblib.dump of a fitted estimator",
    "onnx": "an ONNX model (a protobuf file, e.g. from skl2onnx or torch.onnx.export)",
    "torch": "a TorchScript file (torch.jit.save) or a whole module saved with torch.save",
    "keras": "a Keras model saved with model.save (.keras or .h5)",
    "mlflow": "a directory with an MLmodel file as mlflow.<flavor>.save_model writes it, or a models:/ or "
    "runs:/ URI that MLFLOW_TRACKING_URI's server knows",
}


def _load_file(
    name: str, kind: str, path: Path, device: str = "cpu", cpu_fallback: bool = False
) -> LoadedModel:
    with _explained(str(path), f"read as {kind}", _EXPECTED[kind]):
        if kind in ("sklearn", "joblib"):
            return _from_estimator(name, kind, _load_pickled(path, kind))
        if kind == "onnx":
            return _load_onnx(name, path, device, cpu_fallback)
        if kind == "torch":
            return _load_torch(name, path, device)
        return _load_keras(name, path, device)


@contextlib.contextmanager
def _explained(what: str, action: str, expected: str) -> Iterator[None]:
    """A loader's failure as a ModelError that says what went wrong and what was expected."""
    try:
        yield
    except ModelError:
        raise
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"{what} needs the Python module {exc.name!r}, which this runtime does not have: install the "
            "package that provides it next to the runtime (the chart's fastapi.requirements; the venv of "
            "`helm-mlops runtime serve --python`)"
        ) from exc
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        raise ModelError(
            f"{what} cannot be {action} ({detail[:300]}); expected {expected}. "
            "It may be truncated or in another format: give --format, or save the model again"
        ) from exc
