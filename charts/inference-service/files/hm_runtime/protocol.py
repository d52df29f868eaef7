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

from hm_runtime.models import NUMPY_TO_V2, V2_TYPES, InputError, LoadedModel, v2_type

FLOAT64 = np.dtype(np.float64)  # what JSON numbers are read as


def jsonable(out: np.ndarray) -> Any:
    """An output orjson can write: numeric arrays as they are (orjson serialises them natively),
    strings, bytes and objects (a classifier trained on class names) as a list of plain values."""
    if out.dtype.kind in "biuf":
        return np.ascontiguousarray(out)  # orjson writes C-contiguous arrays only (a model may answer a view)
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
    """The position of a value in the data as the client sent it, e.g. `input[1][3]`."""
    index = np.unravel_index(flat_index, shape) if shape else ()
    return where + "".join(f"[{int(i)}]" for i in index)


def _describe(value: Any, nan: str = "null") -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and value != value:
        return nan  # JSON has no NaN: in a JSON body a NaN was a null
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


def _refuse_first(
    a: np.ndarray, bad: np.ndarray, where: str, why: str, nan: str = "null", reason: str = "datatype"
) -> None:
    if bad.any():
        i = int(np.argmax(bad.reshape(-1)))
        raise InputError(
            f"{_where(where, a.shape, i)} is {_describe(a.reshape(-1)[i].item(), nan)}: {why}", reason
        )


def _misfit(value: Any, target: np.dtype[Any], label: str) -> str | None:
    """Why one JSON value cannot be a `target` number (None when it can; null becomes NaN for floats)."""
    if isinstance(value, bool):
        return None if target.kind == "b" else f"{label} takes numbers, not true or false"
    if value is None:
        return None if target.kind == "f" else f"{label} takes {_kind_words(target)}, not null"
    if isinstance(value, (int, float)):
        if target.kind == "b":
            return None if value in (0, 1) else f"{label} takes true or false"
        if target.kind in "iu":
            info = np.iinfo(target)
            if isinstance(value, float) and not value.is_integer():
                return f"{label} takes whole numbers"
            return None if info.min <= value <= info.max else f"outside {label}'s range {_range_of(target)}"
        return None if abs(value) <= float(np.finfo(np.float64).max) else f"outside {label}'s range"
    if isinstance(value, str):
        return f"{label} takes numbers, not strings (strings go as BYTES to a model that takes them)"
    return f"{label} takes numbers, as one row or a list of equally long rows"


def _kind_words(target: np.dtype[Any]) -> str:
    return {"b": "true or false", "i": "whole numbers", "u": "whole numbers"}.get(target.kind, "numbers")


def _parse(data: Any, target: np.dtype[Any], where: str, label: str) -> np.ndarray:
    """JSON data (one row, rows, or a v2 tensor's flat or nested data) as `target` numbers. numpy reads
    plain numbers fast; anything else (nulls, strings, huge integers) is judged value by value and the
    first misfit is named with its position."""
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise InputError(
            f"{where} must be {label} numbers, as one row or a list of equally long rows", "shape"
        ) from None
    if raw.dtype.kind not in "biuf":  # nulls, strings, objects, integers beyond 64 bits
        values = np.asarray(data, dtype=object).reshape(-1).tolist()  # as sent: numpy made all strings
        for i, value in enumerate(values):
            why = _misfit(value, target, label)
            if why:
                reason = "out_of_range" if "range" in why else "datatype"
                raise InputError(f"{_where(where, raw.shape, i)} is {_describe(value)}: {why}", reason)
        raw = np.asarray(data, dtype=np.float64 if target.kind == "f" else target)
    elif raw.dtype.kind == "b" and target.kind != "b":
        _refuse_first(raw, np.ones(raw.shape, bool), where, f"{label} takes numbers, not true or false")
    return _cast(raw, target, where, label)


def _cast(a: np.ndarray, target: np.dtype[Any], where: str, owner: str, nan: str = "null") -> np.ndarray:
    """`a` as `target`, refusing what would wrap, truncate or overflow to infinity (the first such
    value named): `owner` names the type, e.g. "FP32" or "the model's int64"."""
    if a.dtype == target:
        return a
    if target.kind in "iu":
        info = np.iinfo(target)
        why = f"{owner} takes whole numbers in {_range_of(target)}"
        if a.dtype.kind == "f":
            upper = 2.0 ** (info.bits - (1 if info.min < 0 else 0))  # the first value out of range
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(a) | (a != np.trunc(a)) | (a < float(info.min)) | (a >= upper)
            _refuse_first(a, bad, where, why, nan, "out_of_range")
        elif a.dtype.kind in "iu":
            source = np.iinfo(a.dtype)
            bad = np.zeros(a.shape, bool)
            if source.max > info.max:
                bad |= a > info.max
            if source.min < info.min:
                bad |= a < info.min
            _refuse_first(a, bad, where, why, nan, "out_of_range")
        return a.astype(target)
    if target.kind == "f":
        if a.dtype.kind == "f" and a.dtype.itemsize <= target.itemsize:
            return a.astype(target)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = a.astype(target)
        bad = np.isinf(cast) & ~np.isinf(a) if a.dtype.kind == "f" else np.isinf(cast)
        _refuse_first(
            a, bad, where, f"too large for {owner} (range {_range_of(target)})", nan, "out_of_range"
        )
        return cast
    if target.kind == "b":
        _refuse_first(a, (a != 0) & (a != 1), where, f"{owner} takes true or false (1 or 0)", nan)
        return a.astype(bool)
    raise InputError(f"{where} cannot be given to a model that takes {target.name}", "datatype")


def as_model_input(values: np.ndarray, model: LoadedModel, where: str, nan: str = "null") -> np.ndarray:
    """The values in the model's own dtype, all finite (NaN allowed where the model says it handles
    missing values): checked per request, before a request can join a batch, and reported by their
    position in the data as sent."""
    rows = _cast(values, np.dtype(model.input_dtype), where, f"the model's {model.input_dtype}", nan)
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        finite = np.isfinite(rows)
        bad = ~finite & ~np.isnan(rows) if model.allow_nan else ~finite
        accepts = "numbers or null (a missing value)" if model.allow_nan else "finite numbers"
        _refuse_first(
            values, bad, where, f"this model takes {accepts} ({model.input_dtype})", nan, "non_finite"
        )
    return rows


def split_binary(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a body in the v2 binary tensor extension: the request's
    `Inference-Header-Content-Length` says how long its JSON is (tritonclient's default)."""
    if header_length is None:
        return raw, b""
    size = (
        int(header_length)
        if header_length.isascii() and header_length.isdigit() and len(header_length) < 16
        else -1
    )
    if not 0 < size <= len(raw):
        shown = header_length if len(header_length) <= 20 else header_length[:20] + "..."
        raise InputError(
            f"Inference-Header-Content-Length {shown!r} must be the length of the body's JSON part "
            f"(1 to {len(raw)} bytes here)"
        )
    return raw[:size], raw[size:]


def rows_from_input(payload: Any, model: LoadedModel, _blob: bytes = b"") -> tuple[np.ndarray, bool]:
    """(rows, single): one row `[1, 2, 3]` or a batch `[[1, 2, 3], ...]` as a 2-D array."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise InputError('the body must be a JSON object {"input": [...]}: one row or a list of rows')
    values = _parse(payload["input"], FLOAT64, "input", "JSON")
    single = values.ndim == 1
    rows = values.reshape(1, -1) if single else values
    model.check_rows(rows)
    if not len(rows):
        raise InputError("input holds no rows: send one row [..] or a list of rows [[..], ..]", "shape")
    return as_model_input(rows if not single else values, model, "input").reshape(rows.shape), single


def _datatype(tensor: dict[str, Any]) -> str:
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype.upper() not in V2_TYPES:
        raise InputError(
            f"inputs[0].datatype {_describe(datatype)} is not a v2 datatype: "
            f"use one of {', '.join(V2_TYPES)}",
            "datatype",
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
    if len(blob) != size:
        raise InputError(f"the body carries {len(blob) - size} bytes after inputs[0]'s {size} binary bytes")
    return np.frombuffer(blob[:size], dtype=dtype).astype(dtype.newbyteorder("="))


PLAIN_TENSOR = frozenset(("name", "shape", "datatype", "data"))
NUMERIC = {name: np.dtype(V2_TYPES[name]) for name in ("FP64", "FP32", "FP16", "INT64", "INT32")}


def _plain_v2(payload: Any, model: LoadedModel) -> tuple[np.ndarray, V2Context] | None:
    """The common body: one tensor of plain numbers, shape [n, k], no parameters, no requested outputs,
    perhaps an "id"; its rows, cast and checked exactly as below but without the checks of what it
    does not carry. None for anything else (and for every mistake): the full path then says why."""
    if type(payload) is not dict:
        return None
    inputs, request_id = payload.get("inputs"), payload.get("id")
    if len(payload) != (1 if request_id is None else 2) or type(inputs) is not list or len(inputs) != 1:
        return None
    if request_id is not None and type(request_id) is not str:
        return None
    tensor = inputs[0]
    if type(tensor) is not dict or tensor.keys() != PLAIN_TENSOR:
        return None
    shape, target = tensor["shape"], NUMERIC.get(tensor["datatype"])
    if target is None or type(shape) is not list or len(shape) != 2:
        return None
    n, k = shape
    if type(n) is not int or type(k) is not int or n <= 0 or k != model.n_features:
        return None
    try:
        values = np.asarray(tensor["data"])
    except (ValueError, TypeError, OverflowError):
        return None
    if values.dtype.kind not in "iuf" or values.size != n * k:
        return None
    values = _cast(values, target, "inputs[0].data", tensor["datatype"])
    checked = as_model_input(values, model, "inputs[0].data")
    return checked.reshape(n, k), V2Context(request_id, False)


def rows_from_v2(payload: Any, model: LoadedModel, blob: bytes = b"") -> tuple[np.ndarray, V2Context]:
    """The rows of a v2 infer body (its first input tensor), in the model's dtype, checked."""
    return _plain_v2(payload, model) or _tensor_rows(payload, model, blob)


def _tensor_rows(payload: Any, model: LoadedModel, blob: bytes) -> tuple[np.ndarray, V2Context]:
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
        raise InputError(
            f"inputs[0].shape must be a list of sizes like [2, 4], not {_describe(shape)}", "shape"
        )
    if datatype == "BYTES":
        raise InputError(
            f"inputs[0] is BYTES (strings): this model takes numbers ({model.input_dtype}); "
            "send FP32, FP64 or INT64",
            "datatype",
        )
    if binary:
        values = _binary_data(tensor, blob, datatype, shape)
    else:
        values = _parse(tensor["data"], np.dtype(V2_TYPES[datatype]), "inputs[0].data", datatype)
    if values.size != math.prod(shape):
        raise InputError(
            f"inputs[0].data holds {values.size} values but its shape {shape} needs {math.prod(shape)}",
            "shape",
        )
    rows: np.ndarray = values.reshape(shape)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    model.check_rows(rows)
    if not len(rows):
        raise InputError(f"inputs[0] holds no rows (shape {shape})", "shape")
    _check_outputs(payload, model)
    request_id = payload.get("id")
    checked = as_model_input(values, model, "inputs[0].data", "NaN" if binary else "null")
    return checked.reshape(rows.shape), V2Context(
        request_id if isinstance(request_id, str) else None, _wants_binary(payload)
    )


def _check_outputs(payload: dict[str, Any], model: LoadedModel) -> None:
    """Requested outputs must be the one this server returns (the model's first output)."""
    outputs = payload.get("outputs")
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise InputError('outputs must be a list of {"name": ...} objects')
    for k, output in enumerate(outputs):
        if output.get("name") != model.output_name:
            raise InputError(
                f"outputs[{k}].name {_describe(output.get('name'))} is not served: this server returns "
                f"{model.output_name!r} (the model's metadata lists it)"
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
        # The protocol's optional model parameters (as MLServer's metadata has them): where it runs.
        "parameters": {"device": model.device},
    }
