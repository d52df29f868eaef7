"""Request and response bodies: the seed's `{"input": [...]}` / `{"prediction": [...]}` and the Open
Inference Protocol v2 tensors. Parsing errors raise InputError with a message for the client that names
the bad value, where it is and the datatype it had to fit.

Every request's rows are checked here, before the request can join a batch: cast to the model's own
dtype without overflow, and finite (NaN only where the model declares it handles missing values), so
one client's data can never fail another client's model call."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from hm_runtime.models import InputError, LoadedModel

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


def v2_type(array: np.ndarray) -> str:
    """The v2 datatype of an output: strings and objects (class names) are BYTES."""
    return NUMPY_TO_V2.get(str(array.dtype), "BYTES")


def jsonable(out: np.ndarray) -> Any:
    """An output orjson can write: numeric arrays as they are (orjson serialises them natively),
    strings, bytes and objects (a classifier trained on class names) as a list of plain values."""
    if out.dtype.kind in "biuf":
        return out
    return [_plain(v) for v in out.tolist()] if out.ndim else _plain(out.item())


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _where(where: str, shape: tuple[int, ...], flat_index: int) -> str:
    index = np.unravel_index(flat_index, shape) if shape else ()
    return where + "".join(f"[{int(i)}]" for i in index)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and value != value:
        return "null"  # JSON has no NaN: a NaN here was a null
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _range_of(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return f"[{info.min}, {info.max}]"
    if dtype.kind == "f":
        return f"±{float(np.finfo(dtype).max):.6g}"
    return "true or false"


def _first_misfit(data: Any, dtype: np.dtype[Any]) -> tuple[int, Any] | None:
    """The first value (flat index, value) in JSON data that `dtype` cannot hold: walked one value at a
    time, on the error path only."""
    try:
        flat = np.asarray(data, dtype=object).reshape(-1)
    except ValueError:
        return None
    for i, value in enumerate(flat.tolist()):
        if isinstance(value, (list, dict)):  # ragged rows: a shape problem, not a value
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if dtype.kind == "b" and isinstance(value, bool):
                continue
            return i, value
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if isinstance(value, float) and not value.is_integer():
                return i, value
            if not (info.min <= value <= info.max):
                return i, value
        elif dtype.kind == "f" and value == value and abs(value) > float(np.finfo(dtype).max):
            return i, value
    return None


def _parse(data: Any, dtype: str, where: str, datatype: str) -> np.ndarray:
    """JSON data as an array of `dtype`, refusing (not wrapping or rounding to infinity) what does not fit."""
    target = np.dtype(dtype)
    try:
        with np.errstate(over="raise", invalid="raise"):
            return np.asarray(data, dtype=target)
    except (FloatingPointError, OverflowError, ValueError, TypeError) as exc:
        misfit = _first_misfit(data, target)
        if misfit is not None:
            i, value = misfit
            try:
                at = _where(where, np.shape(data), i) if isinstance(data, list) else where
            except ValueError:
                at = where
            if not isinstance(value, (int, float)) or (isinstance(value, bool) and target.kind != "b"):
                raise InputError(
                    f"{at} is {_describe(value)}: {datatype} takes numbers only"
                    + (
                        " (send strings as BYTES to a model that takes them)"
                        if isinstance(value, str)
                        else ""
                    )
                ) from None
            raise InputError(
                f"{at} is {_describe(value)}, outside {datatype}'s range {_range_of(target)}"
            ) from None
        raise InputError(
            f"{where} must be numbers of {datatype}, as one row or a list of equally long rows: {exc}"
        ) from None


def as_model_input(rows: np.ndarray, model: LoadedModel, where: str, datatype: str) -> np.ndarray:
    """The rows in the model's own dtype, all finite (NaN allowed where the model says it handles
    missing values): checked per request, before a request can join a batch."""
    target = np.dtype(model.input_dtype)
    if rows.dtype == object or rows.dtype.kind in "SU":
        raise InputError(
            f"{where} must be numbers for this model ({model.input_dtype}), not {datatype} strings"
        )
    original = rows
    if rows.dtype != target:
        try:
            with np.errstate(over="raise", invalid="raise"):
                rows = rows.astype(target)
        except FloatingPointError:
            bad = np.abs(original.astype(np.float64)) > float(np.finfo(target).max)
            i = int(np.argmax(bad.reshape(-1)))
            raise InputError(
                f"{_where(where, original.shape, i)} is {_describe(original.reshape(-1)[i].item())}, "
                f"too large for the model's {model.input_dtype} (range {_range_of(target)})"
            ) from None
        if target.kind in "iu" and not np.array_equal(rows, original):
            i = int(np.argmax((rows != original).reshape(-1)))
            raise InputError(
                f"{_where(where, original.shape, i)} is {_describe(original.reshape(-1)[i].item())}, "
                f"which the model's {model.input_dtype} cannot hold (range {_range_of(target)})"
            )
    if rows.dtype.kind == "f":
        finite = np.isfinite(rows)
        if not finite.all():
            bad = ~finite & ~np.isnan(rows) if model.allow_nan else ~finite
            if bad.any():
                i = int(np.argmax(bad.reshape(-1)))
                value = original.reshape(-1)[i].item()
                accepts = "numbers or null (missing)" if model.allow_nan else "finite numbers"
                raise InputError(
                    f"{_where(where, rows.shape, i)} is {_describe(value)}: this model takes {accepts} "
                    f"({datatype} as {model.input_dtype})"
                )
    return rows


def split_binary(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a body in the v2 binary tensor extension: the request's
    `Inference-Header-Content-Length` says how long its JSON is (tritonclient's default)."""
    if header_length is None:
        return raw, b""
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise InputError(
            f"Inference-Header-Content-Length {header_length!r} must be the length of the body's JSON part "
            f"(at most {len(raw)} bytes here)"
        )
    size = int(header_length)
    return raw[:size], raw[size:]


def rows_from_input(payload: Any, model: LoadedModel, _blob: bytes = b"") -> tuple[np.ndarray, bool]:
    """(rows, single): one row `[1, 2, 3]` or a batch `[[1, 2, 3], ...]` as a 2-D array."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise InputError('the body must be a JSON object {"input": [...]}: one row or a list of rows')
    rows = _parse(payload["input"], "float64", "input", "JSON numbers")
    single = rows.ndim == 1
    model.check_rows(rows.reshape(1, -1) if single else rows)
    rows = as_model_input(rows, model, "input", "JSON numbers")
    return (rows.reshape(1, -1) if single else rows), single


def _datatype(tensor: dict[str, Any]) -> str:
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype.upper() not in V2_TYPES:
        raise InputError(
            f"inputs[0].datatype {_describe(datatype)} is not a v2 datatype: use one of {', '.join(V2_TYPES)}"
        )
    return datatype.upper()


def _binary_data(tensor: dict[str, Any], blob: bytes, datatype: str, shape: list[int]) -> np.ndarray:
    """A tensor sent in binary (parameters.binary_data_size): little-endian, row-major."""
    size = tensor["parameters"]["binary_data_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > len(blob):
        raise InputError(
            f"inputs[0].parameters.binary_data_size {_describe(size)} does not fit the {len(blob)} "
            "binary bytes after the JSON"
        )
    dtype = np.dtype(V2_TYPES[datatype]).newbyteorder("<")
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        raise InputError(f"inputs[0] sends {size} binary bytes; shape {shape} of {datatype} needs {expected}")
    return np.frombuffer(blob[:size], dtype=dtype).astype(dtype.newbyteorder("="))


def rows_from_v2(payload: Any, model: LoadedModel, blob: bytes = b"") -> tuple[np.ndarray, V2Context]:
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise InputError('the body must be {"inputs": [{"name", "shape", "datatype", "data"}]}')
    tensor = payload["inputs"][0]
    if not isinstance(tensor, dict):
        raise InputError('inputs[0] must be an object {"name", "shape", "datatype", "data"}')
    parameters = tensor.get("parameters")
    binary = isinstance(parameters, dict) and "binary_data_size" in parameters
    missing = [k for k in ("shape", "datatype", "data") if k not in tensor and not (k == "data" and binary)]
    if missing:
        raise InputError(f"inputs[0] needs {', '.join(missing)}: a tensor is {{name, shape, datatype, data}}")
    datatype = _datatype(tensor)
    shape = tensor["shape"]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise InputError(f"inputs[0].shape must be a list of sizes like [2, 4], not {_describe(shape)}")
    if datatype == "BYTES":
        raise InputError(
            f"inputs[0] is BYTES (strings): this model takes numbers ({model.input_dtype}); "
            "send FP32, FP64 or INT64"
        )
    if binary:
        rows = _binary_data(tensor, blob, datatype, shape)
    else:
        rows = _parse(tensor["data"], V2_TYPES[datatype], "inputs[0].data", datatype)
    if rows.size != math.prod(shape):
        raise InputError(
            f"inputs[0].data holds {rows.size} values but its shape {shape} needs {math.prod(shape)}"
        )
    rows = rows.reshape(shape)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    model.check_rows(rows)
    request_id = payload.get("id")
    return as_model_input(rows, model, "inputs[0].data", datatype), V2Context(
        request_id if isinstance(request_id, str) else None, _wants_binary(payload)
    )


class V2Context(NamedTuple):
    request_id: str | None
    binary_output: bool


def _wants_binary(payload: dict[str, Any]) -> bool:
    """Whether the client asked for outputs in binary: for all (`binary_data_output`) or for ours."""
    parameters = payload.get("parameters")
    if isinstance(parameters, dict) and parameters.get("binary_data_output") is True:
        return True
    outputs = payload.get("outputs")
    return isinstance(outputs, list) and any(
        isinstance(o, dict)
        and isinstance(o.get("parameters"), dict)
        and o["parameters"].get("binary_data") is True
        for o in outputs
    )


def _binary(out: np.ndarray) -> bytes:
    if out.dtype.kind in "biuf":
        return np.ascontiguousarray(out, dtype=out.dtype.newbyteorder("<")).tobytes()
    parts = []
    for value in jsonable(out.reshape(-1)):
        encoded = str(value).encode()
        parts.append(len(encoded).to_bytes(4, "little") + encoded)
    return b"".join(parts)


def v2_response(
    model: LoadedModel, out: np.ndarray, context: V2Context
) -> dict[str, Any] | tuple[dict[str, Any], bytes]:
    """The v2 response body; with the binary output the client asked for, (JSON part, binary part)."""
    output: dict[str, Any] = {"name": model.output_name, "shape": list(out.shape), "datatype": v2_type(out)}
    blob = b""
    if context.binary_output:
        blob = _binary(out)
        output["parameters"] = {"binary_data_size": len(blob)}
    else:
        output["data"] = jsonable(out.reshape(-1))
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": [output]}
    if context.request_id is not None:
        body["id"] = context.request_id
    return (body, blob) if context.binary_output else body


def v2_metadata(model: LoadedModel) -> dict[str, Any]:
    width = model.n_features if model.n_features is not None else -1
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": model.format,
        "inputs": [
            {
                "name": model.input_name,
                "datatype": NUMPY_TO_V2.get(model.input_dtype, "FP32"),
                "shape": [-1, width],
            }
        ],
        "outputs": [
            {
                "name": model.output_name,
                "datatype": model.output_datatype or "FP64",
                "shape": model.output_shape,
            }
        ],
    }
