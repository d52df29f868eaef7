"""Request and response bodies: the seed's `{"input": [...]}` / `{"prediction": [...]}` and the Open
Inference Protocol v2 tensors. Parsing errors raise InputError with a message for the client."""

from __future__ import annotations

from typing import Any

import numpy as np

from hm_runtime.models import InputError, LoadedModel

V2_TYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
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


def v2_type(array: np.ndarray) -> str:
    return NUMPY_TO_V2.get(str(array.dtype), "BYTES")


def as_model_input(rows: np.ndarray, model: LoadedModel, where: str) -> np.ndarray:
    """The rows in the model's own dtype, all finite: checked per request, before a request can join a
    batch, so one client's data can never fail another's call."""
    target = np.dtype(model.input_dtype)
    if rows.dtype == object or rows.dtype.kind in "SU":
        raise InputError(f"{where} must be numbers for this model ({model.input_dtype}), not strings")
    if rows.dtype != target:
        with np.errstate(over="raise", invalid="raise"):
            try:
                cast = rows.astype(target)
            except (FloatingPointError, OverflowError, ValueError) as exc:
                raise InputError(f"{where} does not fit the model's {model.input_dtype}: {exc}") from None
        if target.kind in "iu" and not np.array_equal(cast, rows):
            raise InputError(f"{where} holds values outside the model's {model.input_dtype} range")
        rows = cast
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        raise InputError(f"{where} holds NaN, Infinity or a number too large for {model.input_dtype}")
    return rows


def rows_from_input(payload: Any, model: LoadedModel) -> tuple[np.ndarray, bool]:
    """(rows, single): one row `[1, 2, 3]` or a batch `[[1, 2, 3], ...]` as a 2-D array."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise InputError('the body must be a JSON object {"input": [...]}: one row or a list of rows')
    try:
        rows = np.asarray(payload["input"], dtype=model.input_dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"input must be numbers, as one row or a list of equally long rows: {exc}") from None
    single = rows.ndim == 1
    if single:
        rows = rows.reshape(1, -1)
    model.check_rows(rows)
    return as_model_input(rows, model, "input"), single


def rows_from_v2(payload: Any, model: LoadedModel) -> tuple[np.ndarray, str | None]:
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise InputError('the body must be {"inputs": [{"name", "shape", "datatype", "data"}]}')
    tensor = payload["inputs"][0]
    try:
        shape = [int(n) for n in tensor["shape"]]
        dtype = V2_TYPES[str(tensor["datatype"]).upper()]
        rows = np.asarray(tensor["data"], dtype=dtype).reshape(shape)
    except KeyError as exc:
        raise InputError(
            f"inputs[0] needs shape, datatype (one of {', '.join(V2_TYPES)}) and data: missing {exc}"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"inputs[0].data does not fit its shape and datatype: {exc}") from None
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    model.check_rows(rows)
    return as_model_input(rows, model, "inputs[0].data"), payload.get("id")


def v2_response(model: LoadedModel, out: np.ndarray, request_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": "1",
        "outputs": [
            {"name": "predict", "shape": list(out.shape), "datatype": v2_type(out), "data": out.reshape(-1)}
        ],
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def v2_metadata(model: LoadedModel) -> dict[str, Any]:
    width = model.n_features if model.n_features is not None else -1
    return {
        "name": model.name,
        "versions": ["1"],
        "platform": model.format,
        "inputs": [
            {"name": "input-0", "datatype": NUMPY_TO_V2.get(model.input_dtype, "FP32"), "shape": [-1, width]}
        ],
        "outputs": [{"name": "predict", "datatype": "FP32", "shape": [-1]}],
    }
