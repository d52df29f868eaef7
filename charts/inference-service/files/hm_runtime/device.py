"""Where the model runs: `--device auto|cpu|cuda|cuda:N` (HM_RUNTIME_DEVICE, the chart's
`fastapi.device`).

The choice is a pure function (`resolve`) of the request, the model's format and the facts of this
machine (`Facts`: the CUDA devices the driver shows, torch's view of them, onnxruntime's execution
providers, the GPUs Keras' backend lists), so every branch is testable without a GPU; `probe` gathers
the facts for one format, importing only that format's framework.

- `auto`: the first CUDA device when one is visible and the model's framework can use it, else the CPU,
  with the reason logged.
- `cpu`: the CPU.
- `cuda` / `cuda:N`: that CUDA device, or an error at start (exit 2) when it is not usable: no GPU, N out
  of range, or a framework that cannot use it (a CPU-only torch, onnxruntime without
  CUDAExecutionProvider, a scikit-learn pickle). Never a silent CPU fallback.

This module is shared with `helm-mlops runtime serve`, which checks the option with `parse`."""

from __future__ import annotations

import ctypes
import importlib.util
import re
from dataclasses import dataclass

CHOICES = "auto, cpu, cuda or cuda:N (N: the CUDA device's index, 0 for the first)"
# Rows per model call when the user sets none: a GPU call costs about the same for 1 row as for
# hundreds, so a larger batch is what makes it worth having.
DEFAULT_BATCH_ROWS = {"cpu": 64, "cuda": 512}
# The values --device takes, exactly as written (no trimming, no case folding); the chart's schema and
# the answers' (generator/answers_schema.py) use the same pattern, which tests/test_runtime_device.py
# holds together.
PATTERN = r"^(auto|cpu|cuda(:(0|[1-9][0-9]*))?)$"
FIX = (
    "fix: --device auto (the chart's fastapi.device: auto) serves on the CPU when no GPU can be used, "
    "--device cpu always does; or run where a GPU is visible (the chart's gpu.count) with a framework "
    "build that can use it"
)


class DeviceError(ValueError):
    """A device that cannot be used; the message names the option and the fix."""


def parse(text: str) -> str:
    """The device option normalised (`auto`, `cpu`, `cuda:N`); DeviceError for anything else (its
    message leaves the option's name to the caller: --device, HM_RUNTIME_DEVICE). Strict, as the
    chart's schema is: `CUDA`, ` cuda` and `cuda\\n` are refused, not repaired."""
    if not re.fullmatch(PATTERN, text):
        raise DeviceError(f"{text!r} is not a device: use {CHOICES}")
    return "cuda:0" if text == "cuda" else text


@dataclass(frozen=True)
class Facts:
    """What this machine offers the model's framework. None: the framework is not installed (or not
    asked about: `probe` looks only at the model's own framework)."""

    gpus: int = 0  # CUDA devices the driver shows this process (after CUDA_VISIBLE_DEVICES)
    torch_gpus: int | None = None  # torch.cuda.device_count() when torch.cuda.is_available(), else 0
    ort_providers: tuple[str, ...] | None = None  # onnxruntime.get_available_providers()
    keras_backend: str | None = None  # keras.backend.backend()
    keras_gpus: int | None = None  # GPUs that backend lists


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" or "cuda:N"
    reason: str  # why, for the start log
    # True when --device auto chose the GPU: should the framework then fail to start on it (e.g.
    # onnxruntime-gpu without the CUDA or cuDNN libraries), the model loads on the CPU instead, with a
    # log line. An explicit cuda[:N] never falls back: the process ends with status 2.
    fallback: bool = False

    @property
    def kind(self) -> str:
        return self.device.split(":", 1)[0]

    @property
    def index(self) -> int:
        return int(self.device.split(":", 1)[1]) if ":" in self.device else 0


# Formats that predict on the CPU whatever the machine: `cuda` for them is refused without asking it.
CPU_ONLY = ("sklearn", "joblib", "mlflow")


def usable_gpus(fmt: str, facts: Facts) -> tuple[int, str]:
    """How many CUDA devices the format's framework can use here, and when none, why not."""
    none = "no CUDA device is visible to this process" if facts.gpus == 0 else ""
    if fmt == "torch":
        if facts.torch_gpus is None:
            return 0, "torch is not installed"
        if facts.torch_gpus == 0:
            return 0, none or "torch sees no CUDA device (a CPU-only torch build, or a driver it cannot use)"
        return facts.torch_gpus, ""
    if fmt == "onnx":
        if facts.ort_providers is None:
            return 0, "onnxruntime is not installed"
        if "CUDAExecutionProvider" not in facts.ort_providers:
            return 0, (
                "onnxruntime has no CUDAExecutionProvider (providers: "
                f"{', '.join(facts.ort_providers) or 'none'}): install onnxruntime-gpu in place of "
                "onnxruntime"
            )
        return facts.gpus, none
    if fmt == "keras":
        if facts.keras_gpus is None:
            return 0, "keras is not installed"
        if facts.keras_gpus == 0:
            return 0, none or f"keras' {facts.keras_backend or 'backend'} backend lists no GPU"
        return facts.keras_gpus, ""
    if fmt == "mlflow":
        return 0, "MLflow models predict through pyfunc, which this runtime does not place on a GPU"
    return 0, f"{fmt} models (scikit-learn-style pickles) predict on the CPU only"


def resolve(requested: str, fmt: str, facts: Facts) -> Placement:
    """The device to serve `fmt` on, given the facts; DeviceError when an explicit CUDA device cannot
    be used."""
    asked, requested = requested, parse(requested)
    if requested == "cpu":
        return Placement("cpu", "--device cpu")
    count, why = usable_gpus(fmt, facts)
    if requested == "auto":
        if count:
            return Placement("cuda:0", f"--device auto: {count} CUDA device(s) usable by {fmt}", True)
        return Placement("cpu", f"--device auto: serving on the CPU because {why}")
    index = int(requested.split(":", 1)[1])
    if not count:
        raise DeviceError(f"--device {asked} cannot be used: {why}; {FIX}")
    if index >= count:
        raise DeviceError(
            f"--device {asked} is out of range: {count} CUDA device(s) usable by {fmt} "
            f"(cuda:0 to cuda:{count - 1}); fix: use one of those, or --device auto"
        )
    return Placement(requested, f"--device {requested}")


def driver_gpus() -> int:
    """CUDA devices the driver shows this process (libcuda's cuDeviceGetCount); 0 without a driver."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


def keras_backend() -> None:
    """Keras 3 defaults to TensorFlow; without it installed, use the backend that is."""
    import os

    if "KERAS_BACKEND" in os.environ or importlib.util.find_spec("tensorflow"):
        return
    for backend in ("torch", "jax"):
        if importlib.util.find_spec(backend):
            os.environ["KERAS_BACKEND"] = backend
            return


def probe(fmt: str) -> Facts:
    """The facts that matter for `fmt`, importing only its framework."""
    gpus = driver_gpus()
    if fmt == "torch":
        if importlib.util.find_spec("torch") is None:
            return Facts(gpus)
        import torch

        return Facts(gpus, torch_gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if fmt == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            return Facts(gpus)
        import onnxruntime

        return Facts(gpus, ort_providers=tuple(onnxruntime.get_available_providers()))
    if fmt == "keras":
        keras_backend()
        if importlib.util.find_spec("keras") is None:
            return Facts(gpus)
        import keras

        backend = keras.backend.backend()
        return Facts(gpus, keras_backend=backend, keras_gpus=_keras_gpus(backend))
    return Facts(gpus)


def _keras_gpus(backend: str) -> int:
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend == "jax":
        import jax

        return len([d for d in jax.devices() if d.platform == "gpu"])
    return 0
