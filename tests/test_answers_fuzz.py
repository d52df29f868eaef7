"""`helm-mlops generate` under hypothesis: random answers built from the answers schema, and mutations of
the presets. Every case must end in a stack (exit 0 with Chart.yaml, values.yaml, answers.yaml and the
vendored charts) or in exit 2 naming the answer at fault and writing nothing: never exit 1, never a
traceback, never a partial output directory or a staging directory left behind. Then a spread of the
stacks generate accepted goes through helm lint --strict, helm template, kubernetes-validate --strict,
the CRDs (../shared/crds) and Pod Security restricted: a stack generate accepts must pass them all.

Cost: generate runs in-process (~15 ms a stack, less for a refused one), so every case runs it; helm
costs ~0.5 s a stack, so only HELM_MLOPS_FUZZ_RENDER stacks (default 60) meet it.

- HELM_MLOPS_FUZZ_EXAMPLES: cases over the three fuzz tests (default 2,000: 1,000 random, 700
  mutated presets, 300 plausible answers feeding the helm check).
- HELM_MLOPS_FUZZ_RENDER: stacks checked with helm (default 60).
- HELM_MLOPS_FUZZ_SEED: explore other cases. Without it every run is derandomized (hypothesis seeds
  itself from each test's code), so CI and a laptop run the same cases, a failure replays as is, and
  the helm check is deterministic; with it, the runs draw from that seed instead.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from generator import answers, cli, generate, stackcheck, yamlio
from generator.answers_schema import FORMATS, RUNTIMES, SCHEMA
from generator.errors import HelmMlopsError
from generator.helm.adapter import Helm
from generator.helm.binary import find_helm
from tests.conftest import IN_CI
from tests.support.charts import REPO, SHARED, helm_path

TOTAL = int(os.environ.get("HELM_MLOPS_FUZZ_EXAMPLES") or 2000)
RENDER = int(os.environ.get("HELM_MLOPS_FUZZ_RENDER") or 60)
SEED = os.environ.get("HELM_MLOPS_FUZZ_SEED")
SHARES = {"random": 0.5, "mutated": 0.35, "plausible": 0.15}
KNOWN_ROOTS = {
    "apiVersion",
    "kind",
    "name",
    "description",
    "global",
    "mlflow",
    "monitoring",
    "training",
    "inference",
}
MLFLOW_VERSION = generate.default_mlflow_version()


def fuzz(share: str) -> Callable[[Any], Any]:
    """hypothesis settings for one fuzz test: its share of the cases, derandomized unless a seed is set."""
    chosen = settings(
        max_examples=max(1, round(TOTAL * SHARES[share])),
        deadline=None,
        derandomize=SEED is None,
        database=None,
        print_blob=True,
        report_multiple_bugs=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )

    def apply(test: Any) -> Any:
        test = chosen(test)
        return seed(int(SEED))(test) if SEED is not None else test

    return apply


# Values: plausible ones (a stack generate should accept), and bad ones -----------------------------

GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2**31, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["", " ", "0", "-1", "1.5.5", "lots", "yes", "null", "~", "ünïcødé ✓", "a" * 300, "\t", "1e400"]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.lists(st.sampled_from([1, "a", None, {"k": "v"}]), max_size=2),
    st.sampled_from([{}, {"nested": {"deep": [1]}}, {"enabled": True}]),
).map(copy.deepcopy)  # mutations change what they draw: never the constants above

GOOD_QUANTITIES = ["1", "2", "500m", "250m", "0.5", "1Gi", "512Mi", "2Gi", "100M", "1e3", 1, 2, 0.5, "1.5Gi"]
BAD_QUANTITIES = ["0", "-1", "0.0", "1.5.5", "lots", "", " 1", "1Zi", "1e", ".", "Infinity", 0, -1, 0.0]
BAD_QUANTITIES += [10**30, 1e308, "\u0661", "1 Gi", "0m", "-500m"]

# Text that YAML reads as something else, or that breaks a template writing it unquoted.
HOSTILE = ["a: b", "#x", "- x", "{x: 1}", "[x]", "*a", "&a b", "!t x", "%x", "@x", "`x`", "'q", '"q', "x\ny"]
HOSTILE += [" lead", "trail ", "yes", "null", "1e3", "0x10", "~", "a\\b", "{{ .Values }}"]

# pools[key] = (plausible, bad): leaves whose schema (a pattern, free text) a generic strategy would
# rarely satisfy, or whose interesting values are known.
POOLS: dict[str, tuple[list[Any], list[Any]]] = {
    "name": (
        ["iris", "train", "a", "serve-1", "ddp", "x" * 30, "m0", "default", "model-a", "job-2", "a1"],
        [
            "",
            "Iris",
            "-a",
            "a-",
            "a_b",
            "x" * 31,
            "ä",
            "a.b",
            "mlflow",
            "global",
            "credentials",
            "stack",
            "1",
            "on",
            "null",
            "1e3",
            "0x1f",
        ],
    ),
    "description": (["A stack", "", "ünïcødé ✓ stack: with a colon"], ["x" * 2000, "line\nbreak", *HOSTILE]),
    "namespace": (
        ["mlops", "team-a", "default", "x" * 63],
        ["", "Mlops", "x" * 64, "a_b", "-ns", "123", "yes"],
    ),
    "imageRegistry": (
        ["", "registry.local:5000", "mirror.example.com/library"],
        ["http://x", "a b", "reg:port"],
    ),
    "storageClass": (["", "standard", "fast-ssd"], ["Fast SSD", "a" * 300, *HOSTILE]),
    "version": (
        [MLFLOW_VERSION, f"v{MLFLOW_VERSION}"],
        ["3.1.0", "2.0.0", "9.9.9", "3.9", "latest", "", "v"],
    ),
    "serviceName": (["", "mlflow-service", "tracking"], ["Mlflow", "1abc", "x" * 51, "a-"]),
    "host": (
        ["ml.example.com", "iris.example.com", "a.b.c.example.org", "*.example.com", "localhost"],
        ["Example.com", "a..b", "-a.com", "ml.example.com.", "ümlaut.de", "a b", "http://x.com", ""],
    ),
    "path": (["/", "/mlflow", "/api/v1"], ["mlflow", "", "/a b", "//x", "/a/../b", "/a: b", "/#x", "/x\ny"]),
    "className": (["", "nginx", "traefik"], ["Nginx Class", "a" * 300, *HOSTILE]),
    "secretName": (["", "mlflow-tls", "iris-tls"], ["Bad_Secret", "a" * 300, *HOSTILE]),
    "certManagerIssuer": (["", "letsencrypt"], ["Let's Encrypt", "a b", *HOSTILE]),
    "existingSecret": (["mlflow-db", "s3-creds", "creds.v1"], ["", "Bad_Secret", "-x", "x" * 254]),
    "existingSecretPasswordKey": (["password", "pg-password"], ["", "a b", "ä", *HOSTILE]),
    "existingClaim": (["", "mlflow-data"], ["Bad Claim", "a" * 300, *HOSTILE]),
    "database": (["mlflow", "ml"], ["", "a b", *HOSTILE]),
    "user": (["mlflow", "admin"], ["", "a:b", *HOSTILE]),
    "sslMode": (["require", "verify-full", ""], ["yes please", *HOSTILE]),
    "endpoint": (
        ["https://minio.example.com", "http://minio.minio.svc:9000", "https://s3.eu-west-1.amazonaws.com"],
        ["minio:9000", "ftp://x", "", "http://", "https:// spaced"],
    ),
    "bucket": (["mlflow", "ml-artifacts", "models"], ["", "Bad Bucket", *HOSTILE]),
    "prefix": (["", "team-a", "a/b"], ["/leading", *HOSTILE]),
    "region": (["eu-west-1", "us-east-1", ""], ["Europe", *HOSTILE]),
    "storageAccount": (["mlstore"], ["", "Bad Account", *HOSTILE]),
    "uri": (
        [
            "models:/iris@champion",
            "models:/iris/3",
            "runs:/abc123/model",
            "s3://models/iris/model.onnx",
            "s3://models/xgb/model.bst",
            "s3://models/m.pkl",
            "https://example.com/models/model.onnx",
            "https://example.com/models/m.joblib",
            "pvc://models/iris/model.onnx",
            "pvc://models/xgb/model.bst",
            "pvc://models/lgb/model.txt",
            "pvc://models/m.pt",
            "pvc://models/keras/model.keras",
        ],
        [
            "",
            "models:/iris",
            "models:/a b@c",
            "runs:/",
            "s3://bucket/",
            "s3://",
            "pvc://models/",
            "pvc://Models/x.onnx",
            "http://example.com/model.onnx",
            "https://user:pw@example.com/m.onnx",
            "https://example.com/m.onnx?token=x",
            "https://example.com/model",
            "ftp://example.com/m.onnx",
            "file:///tmp/m.pkl",
            "/abs/model.onnx",
        ],
    ),
    "sha256": (["", hashlib.sha256(b"model").hexdigest()], ["abc", "A" * 64, "g" * 64]),
    "trackingUri": (
        ["", "http://mlflow.other.svc:5000", "https://mlflow.example.com"],
        ["mlflow:5000", "x y", *HOSTILE],
    ),
    "image": (
        [
            "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            "python:3.11-slim",
            "registry.local:5000/team/bento:1.0",
            "ghcr.io/acme/iris-bento:2024.1",
            "nvcr.io/nvidia/pytorch:24.05-py3",
            "repo/img@sha256:" + "a" * 64,
        ],
        ["", "bento", "UPPER:1", "a b:1", ":", "x:", "registry.local:5000/no-tag", "-x:1"],
    ),
    "schedule": (
        ["0 3 * * *", "@daily", "*/15 * * * *", "0 0 * * 0"],
        ["", "@reboot", "* * * *", "not a cron", "60 * * * * *"],
    ),
    "experiment": (["iris", "exp 1", ""], ["x" * 1000, *HOSTILE]),
    "indexUrl": (
        ["", "https://pypi.example.com/simple"],
        ["https://user:pw@pypi.example.com/simple", "not a url", "ftp://x", *HOSTILE],
    ),
    "script.fileName": (
        ["train.py", "train_2.py", "a.b.py"],
        ["", "train", "a b.py", "../x.py", "a:b.py", "ä.py"],
    ),
    "inline.fileName": (
        ["model.onnx", "m.pkl", "model.joblib", "model.bst"],
        ["", "model", "a b.onnx", "../x.onnx", "a:b.onnx", "ä.onnx", "x/y.onnx", *HOSTILE],
    ),
    "mountPath": (["/data", "/mnt/models", "/scratch"], ["data", "", "/"]),
    "claimName": (["data", "models"], ["", "Bad Claim", *HOSTILE]),
    "base64": (
        [base64.b64encode(b"\x00model bytes").decode(), "QUFB"],
        ["", "not base64!!", "QUF", "====", "ä"],
    ),
    "defaultPermission": (["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"], ["read", "ADMIN"]),
}
POOLS["args"] = ([["--epochs", "3"], [], ["--lr=0.1"]], [[1, 2], "--epochs 3", [None], HOSTILE])
POOLS["command"] = ([["python", "-c", "print(1)"], ["bash", "-c", "echo hi"]], [[], "python train.py", [1]])
POOLS["requirements"] = (
    [["scikit-learn>=1.5,<2", "mlflow-skinny>=3.1,<4"], []],
    [["-e ."], "numpy", [None], HOSTILE],
)
POOLS["content"] = (
    ["print('hello')\n", "import mlflow\nmlflow.log_metric('x', 1)\n"],
    ["", None, "x" * 950_000],
)
POOLS["file"] = (["train.py"], ["missing.py", "binary.py", ".", "sub/", "train.py\x00"])
POOLS["labels"] = (
    [{}, {"team": "ml"}, {"app.kubernetes.io/part-of": "ml", "cost-center": "a-1"}],
    [{"team": 1}, {"bad key!": "x"}, {"team": "x" * 64}, {"t": "ä"}, {"": "x"}, ["team=ml"]],
)
POOLS["imagePullSecrets"] = ([[], ["regcred"], ["a", "b"]], [["Bad_Secret"], [""], "regcred", [None]])
POOLS["secrets"] = ([[], ["s3-creds"], ["a", "b.c"]], [["Bad_Secret"], [""], "s3-creds", [{"name": "x"}]])
POOLS["env"] = (
    [
        {},
        {"LOG_LEVEL": "debug"},
        {"A": "1", "B_2": "x"},
        [{"name": "FOO", "value": "bar"}],
        [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
    ],
    [
        {"1X": "a"},
        {"FOO": 1},
        {"A B": "x"},
        [{"name": "a b"}],
        [{"value": "x"}],
        [{"name": "X", "bogus": 1}],
        [{"name": "X", "value": 3}],
        [{"name": "X"}, {"name": "X"}],
        ["FOO=bar"],
        "FOO=bar",
    ],
)
POOLS["sweep"] = (
    [
        {
            "strategy": "grid",
            "parameters": [{"name": "n", "type": "int", "values": [1, 2]}],
            "objective": {"metric": "accuracy", "goal": "maximize"},
        },
        {
            "strategy": "random",
            "trials": 4,
            "parallelism": 2,
            "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "scale": "log"}],
        },
        {"strategy": "grid", "parameters": [{"name": "depth", "type": "int", "min": 2, "max": 8, "step": 2}]},
        {"parameters": [{"name": "kernel", "type": "categorical", "values": ["rbf", "linear"]}]},
    ],
    [
        {},
        {"strategy": "grid", "parameters": []},
        {
            "strategy": "random",
            "trials": 0,
            "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}],
        },
        {"strategy": "grid", "parameters": [{"name": "x", "type": "int", "min": 5, "max": 1}]},
        {"strategy": "grid", "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}]},
        {
            "strategy": "random",
            "trials": 5,
            "parameters": [{"name": "x", "type": "float", "min": -1, "max": 1, "scale": "log"}],
        },
        {"strategy": "grid", "parameters": [{"name": "a", "type": "int", "values": list(range(200))}] * 2},
        {
            "strategy": "grid",
            "parameters": [
                {"name": "a", "type": "int", "values": [1]},
                {"name": "a", "type": "int", "values": [2]},
            ],
        },
        {"strategy": "annealing", "parameters": [{"name": "a", "type": "int", "values": [1]}]},
        {"parameters": [{"name": "n", "type": "categorical"}]},
        {"bogus": 1},
        {"parameters": "n=1,2"},
    ],
)
POOLS["volumes"] = (
    [
        [],
        [{"name": "data", "mountPath": "/data", "claimName": "datasets", "readOnly": True}],
        [{"name": "scratch", "mountPath": "/scratch", "emptyDir": True}],
        [{"name": "out", "mountPath": "/out", "size": "5Gi"}],
    ],
    [
        [{"name": "data", "mountPath": "/data"}],
        [{"name": "data", "mountPath": "/data", "claimName": "x", "emptyDir": True}],
        [
            {"name": "a", "mountPath": "/a", "emptyDir": True},
            {"name": "a", "mountPath": "/b", "emptyDir": True},
        ],
        [
            {"name": "a", "mountPath": "/a", "emptyDir": True},
            {"name": "b", "mountPath": "/a", "emptyDir": True},
        ],
        [{"name": "data", "mountPath": "/tmp", "emptyDir": True}],
        [{"name": "script", "mountPath": "/x", "emptyDir": True}],
        [{"name": "Data", "mountPath": "/data", "emptyDir": True}],
        [{"name": "data", "mountPath": "/data", "size": "0"}],
        [{"name": "data", "mountPath": "/data", "emptyDir": False}],
    ],
)
QUANTITY_KEYS = {"cpu", "memory", "size"}
UNKNOWN_KEYS = ["replica", "Name", "enabled ", "extra", "x-y", "apiversion", "values", "1"]
SEED_KEYS = ["script", "modelFile", "backendStore", "image", "command"]  # seed-shaped requests' keys


def pool(draw: Any, key: str, bad_pct: int) -> Any:
    good, bad = POOLS[key]
    chosen = bad if bad and draw(st.integers(0, 99)) < bad_pct else good
    return copy.deepcopy(draw(st.sampled_from(chosen)))


def quantity(draw: Any, bad_pct: int) -> Any:
    bad = draw(st.integers(0, 99)) < bad_pct
    return draw(st.sampled_from(BAD_QUANTITIES if bad else GOOD_QUANTITIES))


def from_schema(
    draw: Any, node: dict[str, Any], key: str, chaos: int, depth: int = 0, parent: str = ""
) -> Any:
    """A value for `node` of the answers schema (`key` in `parent`): plausible, except that each leaf
    is garbage with probability `chaos` percent (and pools hand out their bad values twice as often)."""
    if chaos and draw(st.integers(0, 99)) < chaos:
        return draw(GARBAGE)
    if key in QUANTITY_KEYS and "properties" not in node:
        return quantity(draw, chaos)
    for name in (f"{parent}.{key}", key):
        if name in POOLS:
            return pool(draw, name, chaos * 2)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return draw(st.sampled_from(node["enum"]))
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties")
        if props is None:
            return draw(
                st.dictionaries(st.sampled_from(["a", "b", "team"]), st.sampled_from(["x", "1"]), max_size=2)
            )
        required = node.get("required", [])
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or draw(st.integers(0, 99)) < (60 if depth else 75):
                out[name] = from_schema(draw, sub, name, chaos, depth + 1, key)
        if chaos and draw(st.integers(0, 99)) < chaos:
            extra = draw(st.sampled_from(UNKNOWN_KEYS + (SEED_KEYS if depth == 0 else [])))
            out[extra] = draw(GARBAGE)
        return out
    if kind == "array":
        count = draw(st.integers(0, 3))
        return [from_schema(draw, node["items"], key, chaos, depth + 1, parent) for _ in range(count)]
    if isinstance(kind, list):  # one of several types
        return from_schema(draw, {**node, "type": draw(st.sampled_from(kind))}, key, chaos, depth, parent)
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "number":
        return draw(st.integers(-5, 100) | st.floats(-10, 10, allow_nan=False))
    if kind == "integer":
        low, high = node.get("minimum", 0), node.get("maximum", 10)
        if chaos and draw(st.integers(0, 99)) < chaos:
            return draw(st.sampled_from([low - 1, high + 1, float(low), 1.5, str(low)]))
        return draw(st.integers(low, min(high, low + 4)) | st.sampled_from([low, high]))
    if kind == "string":
        if "pattern" in node:
            return draw(st.from_regex(node["pattern"], fullmatch=True).filter(lambda s: len(s) <= 30))
        return draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10))
    return draw(GARBAGE)


def job(draw: Any, chaos: int) -> dict[str, Any]:
    """A training job: the schema's, with a script or a command more often than chance gives."""
    out = from_schema(draw, SCHEMA["properties"]["training"]["properties"]["jobs"]["items"], "jobs", chaos, 2)
    if not isinstance(out, dict):  # garbage at the job's own level: keep a job to change further
        out = {"name": pool(draw, "name", chaos), "command": out}
    if not chaos and "script" not in out and "command" not in out:
        out["script"] = {"content": "print(1)\n"}
    return out


@st.composite
def random_answers(draw: Any, chaos_levels: tuple[int, ...] = (0, 1, 3, 10, 25)) -> Any:
    """Answers built from the schema's structure; chaos (percent of garbage leaves) varies by case.
    Without chaos, the rules across fields are mostly followed too (see tidy)."""
    chaos = draw(st.sampled_from(chaos_levels))
    data = from_schema(draw, SCHEMA, "", chaos)
    if isinstance(data, dict) and isinstance(data.get("training"), dict) and draw(st.booleans()):
        data["training"]["jobs"] = [job(draw, chaos) for _ in range(draw(st.integers(1, 2)))]
    if not chaos:
        tidy(draw, data)
    return data


def tidy(draw: Any, data: dict[str, Any]) -> None:
    """Bring schema-built answers closer to the rules across fields (answers.cross_checks), so that a
    good share of them make a stack: one of script/command, one kind of job, stores with their
    settings, models with a source, unique names. Not all of them: the rest is the rules' to catch."""
    names = {str(data.get("name"))}

    def unique(item: dict[str, Any]) -> None:
        while item.get("name") in names or item.get("name") in answers.RESERVED_NAMES:
            item["name"] = f"c{len(names)}"
        names.add(item["name"])

    for item in (data.get("training") or {}).get("jobs") or []:
        unique(item)
        if item.get("command") and item.get("script"):
            del item[draw(st.sampled_from(["command", "script"]))]
        script = item.get("script")
        if script is not None:
            script.pop(draw(st.sampled_from(["file", "content"])), None)
            if not script.get("file") and not script.get("content"):
                script["content"] = "print(1)\n"
        elif not item.get("command"):
            item["command"] = ["python", "-c", "print(1)"]
        mode = draw(st.sampled_from(["plain", "schedule", "sweep", "distributed"]))
        for key, kind in (
            ("schedule", "schedule"),
            ("sweep", "sweep"),
            ("nodes", "distributed"),
            ("procsPerNode", "distributed"),
            ("operator", "distributed"),
        ):
            if mode != kind:
                item.pop(key, None)
        if item.get("gpus"):
            item["image"] = POOLS["image"][0][0]
            if item.get("procsPerNode"):
                item["procsPerNode"] = min(item["procsPerNode"], item["gpus"])
        if item.get("operator") == "trainjob":
            item.pop("secrets", None)
    mlflow = data.get("mlflow") or {}
    backend = mlflow.get("backendStore") or {}
    if backend.get("type") in ("postgresql", "mysql"):
        backend.update(host="db.example.com", existingSecret="db-secret")
        if backend["type"] == "mysql":
            backend.pop("inCluster", None)
    elif backend:
        backend.pop("inCluster", None)
    store = mlflow.get("artifactStore") or {}
    kind = store.get("type", "pvc")
    if kind != "minio":
        store.pop("inCluster", None)
    if kind in ("s3", "gcs", "azure", "minio"):
        store.setdefault("bucket", "mlflow")
        store["bucket"] = store["bucket"] or "mlflow"
    if kind in ("gcs", "azure") or (kind == "minio" and not store.get("inCluster", True)):
        store["existingSecret"] = "store-creds"
    if kind == "minio" and not store.get("inCluster", True):
        store["endpoint"] = "https://minio.example.com"
    if kind == "azure":
        store["storageAccount"] = "mlstore"
    if mlflow.get("replicas", 1) > 1 and (backend.get("type", "sqlite") == "sqlite" or kind == "pvc"):
        mlflow["replicas"] = 1
    if mlflow.get("replicas", 1) < 2:
        mlflow.pop("podDisruptionBudget", None)
    for item in (data.get("inference") or {}).get("services") or []:
        unique(item)
        model = item.setdefault("model", {})
        if not model.get("uri") and not (model.get("inline") or {}).get("base64"):
            model.pop("inline", None)
            model["uri"] = draw(st.sampled_from(POOLS["uri"][0]))
        model["trust"] = True
        model.pop("sha256", None)
        if item.get("runtime") == "bentoml":
            item["image"] = "ghcr.io/acme/iris-bento:2024.1"
        if item.get("gpus"):
            item["image"] = POOLS["image"][0][0]
        hpa = item.get("hpa") or {}
        if hpa.get("maxReplicas", 3) < hpa.get("minReplicas", 1):
            hpa["maxReplicas"] = hpa["minReplicas"]


# Mutations of the presets --------------------------------------------------------------------------

PRESETS = {
    path.stem: yaml.safe_load(path.read_text())
    for path in sorted((REPO / "values-presets").glob("*.yaml"))
    if "apiVersion: helm-mlops/" in path.read_text()
}


def paths_in(data: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path below `data` (keys and list indexes)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*at, key)
            yield from paths_in(value, (*at, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield (*at, i)
            yield from paths_in(value, (*at, i))


def get_parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def section(data: dict[str, Any], top: str, key: str) -> list[Any]:
    """data[top][key] as a list, created when missing or not a list."""
    if not isinstance(data.get(top), dict):
        data[top] = {}
    if not isinstance(data[top].get(key), list):
        data[top][key] = []
    items: list[Any] = data[top][key]
    return items


def a_service(draw: Any, data: dict[str, Any], bad_pct: int) -> dict[str, Any]:
    """One of the services (a new one when there is none)."""
    services = section(data, "inference", "services")
    dicts = [s for s in services if isinstance(s, dict)]
    if not dicts or draw(st.integers(0, 9)) == 0:
        new = {"name": pool(draw, "name", bad_pct), "model": {"uri": pool(draw, "uri", bad_pct)}}
        if draw(st.booleans()):
            new["model"]["trust"] = True
        services.append(new)
        return new
    found: dict[str, Any] = draw(st.sampled_from(dicts))
    return found


def a_job(draw: Any, data: dict[str, Any], bad_pct: int) -> dict[str, Any]:
    jobs = section(data, "training", "jobs")
    dicts = [j for j in jobs if isinstance(j, dict)]
    if not dicts or draw(st.integers(0, 9)) == 0:
        new = job(draw, bad_pct // 10)
        jobs.append(new)
        return new
    found: dict[str, Any] = draw(st.sampled_from(dicts))
    return found


def a_mapping(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    node = data
    for key in keys:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    return node


Mutation = Callable[[Any, dict[str, Any], int], None]  # (draw, answers, bad_pct): changes answers


def m_delete(draw: Any, data: dict[str, Any], bad: int) -> None:
    paths = list(paths_in(data))
    if paths:
        path = draw(st.sampled_from(paths))
        del get_parent(data, path)[path[-1]]


def m_replace(draw: Any, data: dict[str, Any], bad: int) -> None:
    paths = list(paths_in(data))
    if paths:
        path = draw(st.sampled_from(paths))
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        parent = get_parent(data, path)
        if key in QUANTITY_KEYS:
            parent[path[-1]] = quantity(draw, bad)
        elif key in POOLS and draw(st.booleans()):
            parent[path[-1]] = pool(draw, key, bad)
        else:
            parent[path[-1]] = draw(GARBAGE)


def m_retype(draw: Any, data: dict[str, Any], bad: int) -> None:
    paths = list(paths_in(data))
    if paths:
        path = draw(st.sampled_from(paths))
        parent = get_parent(data, path)
        value = parent[path[-1]]
        how = draw(st.sampled_from(["list", "map", "str", "null", "json"]))
        parent[path[-1]] = {  # type: ignore[no-untyped-call]
            "list": lambda: [value],
            "map": lambda: {"value": value},
            "str": lambda: str(value),
            "null": lambda: None,
            "json": lambda: json.dumps(value, default=str),
        }[how]()


def m_unknown_key(draw: Any, data: dict[str, Any], bad: int) -> None:
    maps = [p for p in paths_in(data) if isinstance(get_parent(data, p)[p[-1]], dict)]
    target = get_parent(data, path)[path[-1]] if maps and (path := draw(st.sampled_from(maps))) else data
    target[draw(st.sampled_from([*UNKNOWN_KEYS, 1, "x.y"]))] = draw(GARBAGE)


def m_duplicate(draw: Any, data: dict[str, Any], bad: int) -> None:
    items = section(data, *draw(st.sampled_from([("training", "jobs"), ("inference", "services")])))
    if items:
        twin = copy.deepcopy(draw(st.sampled_from(items)))
        if isinstance(twin, dict) and draw(st.booleans()):
            twin["name"] = pool(draw, "name", bad)
        items.append(twin)


def m_runtime(draw: Any, data: dict[str, Any], bad: int) -> None:
    extra = ["triton", "", "FastAPI"] if bad else []
    a_service(draw, data, bad)["runtime"] = draw(st.sampled_from(RUNTIMES + extra))


def m_format(draw: Any, data: dict[str, Any], bad: int) -> None:
    extra = ["pickle", "ONNX", "tensorflow"] if bad else []
    model = a_mapping(a_service(draw, data, bad), "model")
    model["format"] = draw(st.sampled_from(FORMATS + extra))


def m_uri(draw: Any, data: dict[str, Any], bad: int) -> None:
    model = a_mapping(a_service(draw, data, bad), "model")
    model.pop("inline", None)
    model["uri"] = pool(draw, "uri", bad)
    if not bad:
        model["trust"] = True


def m_trust(draw: Any, data: dict[str, Any], bad: int) -> None:
    model = a_mapping(a_service(draw, data, bad), "model")
    for key in ("trust", "sha256"):
        if draw(st.booleans()):
            model[key] = draw(st.booleans()) if key == "trust" else pool(draw, "sha256", bad)


def m_inline(draw: Any, data: dict[str, Any], bad: int) -> None:
    model = a_mapping(a_service(draw, data, bad), "model")
    model.pop("uri", None)
    inline = {"base64": pool(draw, "base64", bad), "fileName": pool(draw, "inline.fileName", bad)}
    if bad and draw(st.integers(0, 19)) == 0:  # about 1 MiB: rare, PyYAML reads it slowly
        inline["base64"] = "QUFB" * (answers.INLINE_LIMIT // 4 + 1)
    model["inline"] = inline


def m_hpa(draw: Any, data: dict[str, Any], bad: int) -> None:
    low = draw(st.integers(1, 5))
    high = draw(st.integers(1, 5)) if bad else draw(st.integers(low, 6))
    hpa = {"enabled": True, "minReplicas": low, "maxReplicas": high}
    if draw(st.booleans()):
        hpa["targetCPU"] = draw(st.integers(1, 100))
    a_service(draw, data, bad)["hpa"] = hpa


def m_replicas(draw: Any, data: dict[str, Any], bad: int) -> None:
    if draw(st.booleans()):
        a_service(draw, data, bad)["replicas"] = draw(st.integers(0, 3))
    else:
        mlflow = a_mapping(data, "mlflow")
        mlflow["replicas"] = draw(st.integers(1, 3))
        mlflow["podDisruptionBudget"] = draw(st.booleans())


def m_gpus(draw: Any, data: dict[str, Any], bad: int) -> None:
    target = a_job(draw, data, bad) if draw(st.booleans()) else a_service(draw, data, bad)
    target["gpus"] = draw(st.integers(1, 4))
    if bad and draw(st.booleans()):
        target.pop("image", None)
    else:
        target["image"] = pool(draw, "image", 0)


def m_distributed(draw: Any, data: dict[str, Any], bad: int) -> None:
    target = a_job(draw, data, bad)
    target["nodes"] = draw(st.integers(1, 4))
    target["procsPerNode"] = draw(st.integers(1, 4))
    target["operator"] = draw(st.sampled_from(["none", "pytorchjob", "trainjob"]))
    if bad and draw(st.booleans()):
        target["schedule"] = "0 3 * * *"
    else:
        for key in ("schedule", "sweep"):
            target.pop(key, None)


def m_job_field(draw: Any, data: dict[str, Any], bad: int) -> None:
    target = a_job(draw, data, bad)
    key = draw(
        st.sampled_from(
            [
                "schedule",
                "sweep",
                "env",
                "volumes",
                "secrets",
                "indexUrl",
                "experiment",
                "trackingUri",
                "requirements",
                "image",
            ]
        )
    )
    target[key] = pool(draw, key, bad)


def m_script(draw: Any, data: dict[str, Any], bad: int) -> None:
    target = a_job(draw, data, bad)
    how = draw(st.sampled_from(["content", "file", "command", "both", "args"]))
    if how == "content":
        target["script"] = {
            "content": pool(draw, "content", bad),
            "fileName": pool(draw, "script.fileName", bad),
        }
        target.pop("command", None)
    elif how == "file":
        target["script"] = {"file": pool(draw, "file", bad)}
        target.pop("command", None)
    elif how == "command":
        target.pop("script", None)
        target["command"] = pool(draw, "command", bad)
        target["image"] = pool(draw, "image", bad)
    elif how == "both":
        target["command"] = pool(draw, "command", 0)
    else:
        a_mapping(target, "script")["args"] = pool(draw, "args", bad)


def m_service_field(draw: Any, data: dict[str, Any], bad: int) -> None:
    target = a_service(draw, data, bad)
    key = draw(st.sampled_from(["env", "secrets", "image", "cpu", "memory"]))
    target[key] = quantity(draw, bad) if key in QUANTITY_KEYS else pool(draw, key, bad)


def m_model_field(draw: Any, data: dict[str, Any], bad: int) -> None:
    model = a_mapping(a_service(draw, data, bad), "model")
    key = draw(st.sampled_from(["endpoint", "region", "existingSecret", "trackingUri"]))
    model[key] = pool(draw, key, bad)


def m_ingress(draw: Any, data: dict[str, Any], bad: int) -> None:
    target = a_mapping(data, "mlflow") if draw(st.booleans()) else a_service(draw, data, bad)
    ingress: dict[str, Any] = {"enabled": True}
    if not bad or draw(st.booleans()):
        ingress["host"] = pool(draw, "host", bad)
    for key in ("path", "className"):
        if draw(st.booleans()):
            ingress[key] = pool(draw, key, bad)
    if draw(st.booleans()):
        ingress["tls"] = {"enabled": True}
        for key in ("secretName", "certManagerIssuer"):
            if draw(st.booleans()):
                ingress["tls"][key] = pool(draw, key, bad)
    target["ingress"] = ingress


def m_mlflow_enabled(draw: Any, data: dict[str, Any], bad: int) -> None:
    a_mapping(data, "mlflow")["enabled"] = draw(st.booleans())


def m_backend(draw: Any, data: dict[str, Any], bad: int) -> None:
    kind = draw(st.sampled_from(["sqlite", "postgresql", "mysql"]))
    store: dict[str, Any] = {"type": kind}
    if kind != "sqlite":
        if kind == "postgresql" and draw(st.booleans()):
            store["inCluster"] = True
        elif not bad or draw(st.booleans()):
            store.update(host="db.example.com", existingSecret=pool(draw, "existingSecret", bad))
        for key in ("port", "database", "user", "existingSecretPasswordKey", "sslMode"):
            if draw(st.booleans()):
                store[key] = draw(st.integers(1, 65535)) if key == "port" else pool(draw, key, bad)
    a_mapping(data, "mlflow")["backendStore"] = store


def m_artifacts(draw: Any, data: dict[str, Any], bad: int) -> None:
    kind = draw(st.sampled_from(["pvc", "minio", "s3", "gcs", "azure"]))
    store: dict[str, Any] = {"type": kind}
    for key in ("bucket", "prefix", "region", "existingSecret", "endpoint", "storageAccount"):
        if draw(st.integers(0, 99)) < (40 if bad else 70):
            store[key] = pool(draw, key, bad)
    if kind == "minio":
        store["inCluster"] = draw(st.booleans())
        if store["inCluster"] and draw(st.booleans()):
            store["size"] = quantity(draw, bad)
    a_mapping(data, "mlflow")["artifactStore"] = store


def m_mlflow_field(draw: Any, data: dict[str, Any], bad: int) -> None:
    mlflow = a_mapping(data, "mlflow")
    key = draw(
        st.sampled_from(["version", "serviceName", "ui", "metrics", "cpu", "memory", "persistence", "auth"])
    )
    if key in ("ui", "metrics"):
        mlflow[key] = draw(st.booleans())
    elif key in QUANTITY_KEYS:
        mlflow[key] = quantity(draw, bad)
    elif key == "persistence":
        mlflow[key] = {"size": quantity(draw, bad), "existingClaim": pool(draw, "existingClaim", bad)}
    elif key == "auth":
        mlflow[key] = {
            "enabled": draw(st.booleans()),
            "defaultPermission": pool(draw, "defaultPermission", bad),
        }
        if draw(st.booleans()):
            mlflow[key]["existingSecret"] = pool(draw, "existingSecret", bad)
    else:
        mlflow[key] = pool(draw, key, bad)


def m_global(draw: Any, data: dict[str, Any], bad: int) -> None:
    g = a_mapping(data, "global")
    key = draw(
        st.sampled_from(
            ["namespace", "imageRegistry", "storageClass", "labels", "imagePullSecrets", "strictSecurity"]
        )
    )
    g[key] = draw(st.booleans()) if key == "strictSecurity" else pool(draw, key, bad)


def m_names(draw: Any, data: dict[str, Any], bad: int) -> None:
    targets: list[dict[str, Any]] = [data]
    for top, key in (("training", "jobs"), ("inference", "services")):
        targets += [x for x in section(data, top, key) if isinstance(x, dict)]
    draw(st.sampled_from(targets))["name"] = pool(draw, "name", bad)


def m_header(draw: Any, data: dict[str, Any], bad: int) -> None:
    key = draw(st.sampled_from(["apiVersion", "kind", "description"]))
    data[key] = draw(st.sampled_from(["helm-mlops/v2", "Stack", "stack", "", "helm-mlops/v1", None]))


def m_new_component(draw: Any, data: dict[str, Any], bad: int) -> None:
    chaos = bad // 10
    if draw(st.booleans()):
        section(data, "training", "jobs").append(job(draw, chaos))
    else:
        schema = SCHEMA["properties"]["inference"]["properties"]["services"]["items"]
        section(data, "inference", "services").append(from_schema(draw, schema, "services", chaos, 2))


MUTATIONS: list[Mutation] = [
    m_delete,
    m_replace,
    m_retype,
    m_unknown_key,
    m_duplicate,
    m_runtime,
    m_format,
    m_uri,
    m_trust,
    m_inline,
    m_hpa,
    m_replicas,
    m_gpus,
    m_distributed,
    m_job_field,
    m_script,
    m_service_field,
    m_model_field,
    m_ingress,
    m_mlflow_enabled,
    m_backend,
    m_artifacts,
    m_mlflow_field,
    m_global,
    m_names,
    m_header,
    m_new_component,
]
# Plausible changes only (no garbage, no deletions): most of what they make is a stack generate accepts.
PLAUSIBLE: list[Mutation] = [
    m_runtime,
    m_format,
    m_uri,
    m_trust,
    m_inline,
    m_hpa,
    m_replicas,
    m_gpus,
    m_distributed,
    m_job_field,
    m_script,
    m_service_field,
    m_model_field,
    m_ingress,
    m_mlflow_enabled,
    m_backend,
    m_artifacts,
    m_mlflow_field,
    m_global,
    m_names,
    m_new_component,
]


@dataclass
class Case:
    """What a case writes: answers (as YAML or JSON), or raw text/bytes."""

    answers: Any
    form: str = "yaml"  # yaml | json | raw
    raw: bytes = b""
    nested: bool = False  # -o names a directory whose parents do not exist yet


# Whole-file changes: what YAML itself can do to an answers file.
RAW_EDITS = [
    lambda text: text.replace("name: ", "name: 2024-01-01 #", 1),
    lambda text: text + "\nname: !!binary aGVsbG8=\n",
    lambda text: text + "\nglobal: !!set {a, b}\n",
    lambda text: text + "\nglobal: !!python/object:os.system {}\n",
    lambda text: text + "\n? [a, b]\n: c\n",
    lambda text: text + "\nmlflow: &a {enabled: true}\ninference: *a\n",
    lambda text: text + "\nname: x\nname: y\n",
    lambda text: text.replace("  ", "\t", 1),
    lambda text: text[: len(text) // 2],
    lambda text: "- " + text.replace("\n", "\n  "),
    lambda text: "",
    lambda text: "null\n",
    lambda text: "just a string\n",
    lambda text: text + "\n...\n---\nname: second\n",
    lambda text: text + "\nmlflow:\n  cpu: 1e400\n  memory: .nan\n",
    lambda text: text + "\nglobal: {1: a, ~: b, 2.5: c, true: d}\n",
    lambda text: text + "\nglobal: {labels: {1: a}}\n",
]


@st.composite
def mutated_preset(draw: Any, plausible: bool = False) -> Case:
    data = copy.deepcopy(PRESETS[draw(st.sampled_from(sorted(PRESETS)))])
    bad = 0 if plausible else draw(st.sampled_from([10, 30, 60]))
    for _ in range(draw(st.integers(1, 3))):
        draw(st.sampled_from(PLAUSIBLE if plausible else MUTATIONS))(draw, data, bad)
    if plausible:
        return Case(data)
    form = draw(st.sampled_from(["yaml"] * 6 + ["json", "raw"]))
    if form == "raw":
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        edited = draw(st.sampled_from(RAW_EDITS))(text)
        raw = edited.encode() if draw(st.integers(0, 9)) else b"\xff\xfe" + edited.encode("utf-16-le")
        return Case(data, "raw", raw)
    return Case(data, form, nested=draw(st.integers(0, 9)) == 0)


# Running a case ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    output: str
    folder: Path  # the case's own folder: the answers file, the files it names, the output
    out: Path
    text: str  # the answers file, as written


def write_answers(case: Case, path: Path) -> str:
    if case.form == "raw":
        path.write_bytes(case.raw)
        return case.raw.decode(errors="replace")
    if case.form == "json":
        text = json.dumps(case.answers, ensure_ascii=False, default=str)
    else:
        try:
            text = yaml.safe_dump(case.answers, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:
            text = json.dumps(case.answers, default=str)
    path.write_text(text)
    return text


def run_case(root: Path, case: Case) -> Outcome:
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root))
    answers_path = folder / "answers.yaml"
    (folder / "train.py").write_text("print('trained')\n")
    (folder / "binary.py").write_bytes(b"\xff\xfe\x00bad")
    (folder / "sub").mkdir()
    text = write_answers(case, answers_path)
    out = folder / ("new" / Path("parents") / "stack" if case.nested else Path("stack"))
    buffer = io.StringIO()
    with redirect_stdout(buffer), redirect_stderr(buffer):
        try:
            cli.main(["generate", "--answers", str(answers_path), "-o", str(out), "-q"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Outcome(code, buffer.getvalue(), folder, out, text)


def named_fields(output: str) -> list[str]:
    """The fields an error names: `path: message` lines, and root-level unknown/missing keys."""
    found = []
    for line in output.splitlines():
        line = line.strip().removeprefix("error: ")
        if line.startswith(("unknown key(s) ", "missing required key(s): ")):
            name = line.split(" ", 2)[2].split(";")[0].split(": ")[-1].split(",")[0].strip()
            # A key with spaces around it is shown as a JSON string, so its spaces stay visible.
            found.append(json.loads(name) if name.startswith('"') and name.endswith('"') else name)
        elif ": " in line and not line.startswith("fix: "):
            found.append(line.split(": ", 1)[0])
    return found


def root_of(field: str) -> str:
    return re.split(r"[.\[ ]", field, maxsplit=1)[0]


def python_reprs(output: str, text: str) -> list[str]:
    """Python spellings in an error that the answers file does not hold itself (a YAML syntax error
    is PyYAML's own words: `could not find expected ':'`)."""
    if "not valid YAML" in output:
        return []
    found = [w for w in ("True", "False", "None") if re.search(rf"\b{w}\b", output) and w not in text]
    found += [m for m in re.findall(r"'[^'\n]{1,40}'", output) if m not in text and m[1:-1] in text]
    found += [m for m in ("{'", "['", "Decimal(", "datetime.") if m in output and m not in text]
    return found


def check(outcome: Outcome, case: Case) -> None:
    said = f"exit {outcome.code}\n--- output:\n{outcome.output}\n--- answers:\n{outcome.text[:3000]}"
    assert outcome.code in (0, 2), said
    assert "Traceback" not in outcome.output and "this is a bug" not in outcome.output, said
    left = (
        sorted(p.name for p in outcome.out.parent.iterdir() if p.name.startswith("."))
        if outcome.out.parent.is_dir()
        else []
    )
    assert not left, f"staging directories left behind: {left}\n{said}"
    if outcome.code == 2:
        assert not outcome.out.exists(), f"exit 2 but {outcome.out} exists\n{said}"
        fields = named_fields(outcome.output)
        top = set(case.answers) if isinstance(case.answers, dict) else set()
        assert any(
            root_of(f) in KNOWN_ROOTS or f.startswith("--answers") or f in map(str, top) for f in fields
        ), f"the error names no answer field (found {fields})\n{said}"
        assert not python_reprs(outcome.output, outcome.text), (
            f"Python reprs {python_reprs(outcome.output, outcome.text)}\n{said}"
        )
        return
    out = outcome.out
    for name in ("Chart.yaml", "values.yaml", "answers.yaml", "values.schema.json"):
        assert (out / name).is_file(), f"{name} missing\n{said}"
    chart = yaml.safe_load((out / "Chart.yaml").read_text())
    for dep in chart.get("dependencies") or []:
        assert (out / "charts" / f"{dep['name']}-{dep['version']}.tgz").is_file(), (
            f"{dep} not vendored\n{said}"
        )
    saved = yaml.safe_load((out / "answers.yaml").read_text())
    assert answers.validate(saved) == [], f"the saved answers.yaml does not validate\n{said}"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    saved = {
        k: os.environ.pop(k)
        for k in ("HELM_DEBUG", "HELM_MLOPS_DEBUG", "HELM_MLOPS_CHARTS")
        if k in os.environ
    }
    yield folder
    os.environ.update(saved)
    shutil.rmtree(folder, ignore_errors=True)


# The stacks generate accepted, by the hash of their answers file, in the order the tests met them:
# the helm check takes an even spread of them (the fuzz tests of this module run before it).
ACCEPTED: dict[str, Case] = {}


def run_and_check(root: Path, case: Case) -> Outcome:
    outcome = run_case(root, case)
    # pytest --hypothesis-show-statistics shows the mix, and what refused cases were refused for.
    event(f"exit {outcome.code}")
    if outcome.code == 2:
        event("refused: " + re.sub(r"\[\d+\]", "[]", (named_fields(outcome.output) or ["?"])[0]))
    try:
        check(outcome, case)
    except BaseException:
        shutil.rmtree(outcome.folder, ignore_errors=True)
        raise
    if outcome.code == 0:
        ACCEPTED.setdefault(hashlib.sha256(outcome.text.encode()).hexdigest(), case)
    return outcome


# The fuzz tests ----------------------------------------------------------------------------------------


@fuzz("random")
@given(data=random_answers())
def test_random_answers_end_in_a_stack_or_exit_2(root: Path, data: Any) -> None:
    shutil.rmtree(run_and_check(root, Case(data, "yaml")).folder)


@fuzz("mutated")
@given(case=mutated_preset())
def test_mutated_presets_end_in_a_stack_or_exit_2(root: Path, case: Case) -> None:
    shutil.rmtree(run_and_check(root, case).folder)


def spread(items: list[Any], count: int) -> list[Any]:
    """`count` items evenly spaced over `items` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    if count == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def helm_problems(stacks: list[Path]) -> list[str]:
    """helm lint --strict, helm template, kubernetes-validate --strict, CRDs and Pod Security, per stack."""
    binary = helm_path("helm4")
    crds: Path | None = SHARED / "crds"
    if crds is None or not crds.is_dir():
        assert not IN_CI, f"{crds} is absent: CI has ../shared beside the repo"
        crds = None
    failures: list[tuple[Path, str]] = []
    for start in range(0, len(stacks), 20):  # one helm lint for many charts; each alone when one fails
        batch = [str(out) for out in stacks[start : start + 20]]
        proc = subprocess.run(
            [binary, "lint", "--strict", *batch], capture_output=True, text=True, check=False
        )
        for each in batch if proc.returncode else []:
            one = subprocess.run(
                [binary, "lint", "--strict", each], capture_output=True, text=True, check=False
            )
            if one.returncode != 0:
                failures.append((Path(each), f"helm lint --strict: {one.stdout[-1500:]}{one.stderr[-1500:]}"))
    helm = Helm(find_helm(binary))
    for out in stacks:
        try:
            docs = stackcheck.render(out, release=None, helm=helm, namespace=None)
        except HelmMlopsError as exc:
            failures.append((out, f"helm template: {exc}"))
            continue
        found = stackcheck.problems_in(docs, crds)
        if crds is None:
            found = [p for p in found if ": no schema for " not in p]
        failures += [(out, problem) for problem in found]
    return [
        f"{problem}\n--- answers.yaml:\n{(out / 'answers.yaml').read_text()[:4000]}"
        for out, problem in failures
    ]


@st.composite
def plausible_answers(draw: Any) -> Case:
    if draw(st.integers(0, 3)) == 0:
        return Case(draw(random_answers(chaos_levels=(0,))))
    case: Case = draw(mutated_preset(plausible=True))
    return case


def test_accepted_stacks_pass_helm_lint_and_kubernetes_validate(root: Path) -> None:
    """Plausible answers (presets changed in plausible ways, schema-built answers without garbage) run
    through generate and its checks like every case. Then HELM_MLOPS_FUZZ_RENDER stacks, evenly spread
    over every stack this module's tests accepted, are generated again and meet helm and
    kubernetes-validate: generate must never accept answers that make a stack they refuse."""
    before = len(ACCEPTED)

    @fuzz("plausible")
    @given(case=plausible_answers())
    def collect(case: Case) -> None:
        shutil.rmtree(run_and_check(root, case).folder)

    collect()
    plausible = len(ACCEPTED) - before
    wanted = max(1, round(TOTAL * SHARES["plausible"] / 6))
    assert plausible >= wanted, f"only {plausible} of the plausible cases made a stack (want {wanted})"
    stacks = []
    for case in spread(list(ACCEPTED.values()), RENDER):
        outcome = run_case(root, case)
        assert outcome.code == 0, f"accepted once, refused now: {outcome.output}\n{outcome.text}"
        stacks.append(outcome.out)
    failures = helm_problems(stacks)
    assert not failures, f"{len(failures)} problem(s) in stacks generate accepted:\n" + "\n\n".join(
        failures[:5]
    )


# Regressions: what the fuzzer found, one case each ----------------------------------------------------


def preset(name: str, change: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(PRESETS[name])
    if change is not None:
        change(data)
    return data


def generated(tmp_path: Path, data: Any = None, text: str | None = None) -> Outcome:
    """generate on answers (or an answers file's text), held to the fuzz tests' rules."""
    case = Case(data) if text is None else Case(None, "raw", text.encode())
    outcome = run_case(tmp_path, case)
    check(outcome, case)
    return outcome


def refused(outcome: Outcome, *lines: str) -> None:
    assert outcome.code == 2, outcome.output
    for line in lines:
        assert line in outcome.output, outcome.output


def rendered(outcome: Outcome) -> list[dict[str, Any]]:
    """The stack's manifests, which must pass kubernetes-validate, the CRDs and Pod Security."""
    assert outcome.code == 0, outcome.output
    docs = stackcheck.render(
        outcome.out, release=None, helm=Helm(find_helm(helm_path("helm4"))), namespace=None
    )
    crds = SHARED / "crds"
    problems = stackcheck.problems_in(docs, crds if crds.is_dir() else None)
    assert [p for p in problems if crds.is_dir() or ": no schema for " not in p] == []
    return docs


def find(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d.get("kind") == kind)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_makes_a_stack(tmp_path: Path, name: str) -> None:
    assert generated(tmp_path, preset(name)).code == 0


@pytest.mark.parametrize(
    ("snippet", "said"),
    [
        ("name: 2024-01-01\n", "name: 2024-01-01 (a date to YAML: quote it) is not a string"),
        ("description: !!binary aGVsbG8=\n", "description: binary data (!!binary) is not a string"),
        ("global: {labels: !!set {a, b}}\n", "global.labels: a set (!!set) is not a mapping"),
        ("global: {1: a, ~: b}\n", "global: unknown key(s) 1, null; allowed:"),
    ],
)
def test_yaml_values_json_lacks_are_refused_by_name(tmp_path: Path, snippet: str, said: str) -> None:
    # Was exit 1: `Object of type date is not JSON serializable` (and a TypeError sorting 1 and None).
    refused(generated(tmp_path, text="apiVersion: helm-mlops/v1\n" + snippet), said)


def test_a_service_ingress_gets_its_cert_manager_issuer(tmp_path: Path) -> None:
    # Was exit 2 "the inference-service chart refuses ... ('certManagerIssuer' was unexpected)": the
    # answer the schema offers had no place in the chart's values.
    data = preset("inference-onnx")
    data["inference"]["services"][0]["ingress"]["tls"] = {"enabled": True, "certManagerIssuer": "letsencrypt"}
    ingress = find(rendered(generated(tmp_path, data)), "Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"][0]["hosts"] == ["iris.example.com"]


def test_a_malformed_sweep_is_refused_by_the_schema(tmp_path: Path) -> None:
    # Was "not a valid sweep (AttributeError: 'str' object has no attribute 'get')".
    data = preset("sweep", lambda d: d["training"]["jobs"][0]["sweep"].update(parameters="n=1,2"))
    outcome = generated(tmp_path, data)
    refused(outcome, 'training.jobs[0].sweep.parameters: "n=1,2" is not a list')
    assert "Error" not in outcome.output


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "yes"),
        ("inference.services[0].name", "on"),
        ("global.namespace", "123"),
        ("mlflow.serviceName", "null"),
        ("mlflow.backendStore.existingSecretPasswordKey", "0x10"),
    ],
)
def test_names_yaml_reads_as_numbers_or_booleans_are_refused(tmp_path: Path, path: str, value: str) -> None:
    # Were accepted; the charts write them unquoted (labels, metadata, secretKeyRef), so the stack held
    # `app.kubernetes.io/instance: 1` and kubernetes-validate refused it.
    data = preset("full-stack")
    data["mlflow"]["backendStore"] = {"type": "postgresql", "host": "db", "existingSecret": "db"}
    data["mlflow"]["artifactStore"] = {"type": "s3", "bucket": "mlflow"}
    node: Any = data
    parts = re.findall(r"[A-Za-z]+|\d+", path)
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[parts[-1]] = value
    refused(generated(tmp_path, data), f"{path}: {value} reads as a number, boolean or null in YAML")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d["training"]["jobs"][0].update(image="x:"), 'training.jobs[0].image: "x:" is not valid'),
        (lambda d: d["global"].update(storageClass="a: b"), 'global.storageClass: "a: b" is not valid'),
        (
            lambda d: d["mlflow"].update(persistence={"existingClaim": "Data"}),
            "mlflow.persistence.existingClaim:",
        ),
        (lambda d: d["mlflow"]["artifactStore"].update(bucket="Bad Bucket"), "mlflow.artifactStore.bucket:"),
        (lambda d: d["mlflow"]["artifactStore"].update(prefix="a: b"), "mlflow.artifactStore.prefix:"),
        (
            lambda d: d["training"]["jobs"][0].update(requirements=["x\ny"]),
            "training.jobs[0].requirements[0]:",
        ),
        (lambda d: d["global"].update(labels={"bad key!": "x"}), "global.labels: "),
        (lambda d: d["global"].update(labels={"team": "x" * 64}), "global.labels.team:"),
    ],
)
def test_text_the_charts_render_unquoted_is_checked(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], said: str
) -> None:
    # Were accepted: `image: x:` and `storageClassName: a: b` broke helm template's YAML, a space in a
    # bucket broke MLflow's --artifacts-destination argument, a newline the requirements file.
    refused(generated(tmp_path, preset("full-stack", change)), said)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda d: d["mlflow"]["ingress"]["tls"].update(enabled=False),
            "mlflow.ingress.tls.enabled: global.strictSecurity",
        ),
        (lambda d: d["mlflow"]["auth"].update(enabled=False), "mlflow.auth.enabled: global.strictSecurity"),
        (
            lambda d: d.update(
                inference={
                    "services": [
                        {
                            "name": "web",
                            "model": {"uri": "pvc://m/x.onnx"},
                            "ingress": {"enabled": True, "host": "x.example.com"},
                        }
                    ]
                }
            ),
            "inference.services[0].ingress.enabled: global.strictSecurity",
        ),
    ],
)
def test_strict_security_is_checked_like_the_charts_do(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], said: str
) -> None:
    # Were accepted; the charts' exposure findings then failed helm template under strictSecurity.
    refused(generated(tmp_path, preset("production", change)), said)


def test_an_enabled_ingress_needs_a_host(tmp_path: Path) -> None:
    # Was accepted; the chart refused it (`ingress.host is required when ingress.enabled=true`).
    data = preset("inference-onnx", lambda d: d["inference"]["services"][0]["ingress"].pop("host"))
    refused(generated(tmp_path, data), "inference.services[0].ingress.host: required with ingress.enabled")
    data = preset(
        "kserve", lambda d: d["inference"]["services"][0].update(ingress={"enabled": True, "host": "a.b"})
    )
    refused(generated(tmp_path, data), "inference.services[0].ingress.enabled: runtime kserve")


def test_quantities_helm_reads_as_numbers_stay_strings(tmp_path: Path) -> None:
    # Was refused by helm: values.yaml held `size: 1e3` bare, a number to helm (PyYAML's YAML 1.1
    # needs a dot for a float), and the chart's schema wants a string.
    data = preset("minio", lambda d: d["mlflow"]["artifactStore"].update(size="1e3"))
    data["mlflow"]["memory"] = "1e9"
    outcome = generated(tmp_path, data)
    assert 'size: "1e3"' in (outcome.out / "values.yaml").read_text()
    minio = next(
        d for d in rendered(outcome) if d["kind"] == "StatefulSet" and "minio" in d["metadata"]["name"]
    )
    assert minio["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1e3"
    assert yamlio.dump({"a": "0o17", "b": "1_000", "c": "500m"}) == 'a: "0o17"\nb: "1_000"\nc: 500m\n'


def test_the_format_comes_from_the_source_in_use(tmp_path: Path) -> None:
    # Was accepted with the format of inline.fileName (xgboost) while the chart loaded the pvc:// file
    # (torch), which kserve refuses.
    service = {"model": {"uri": "pvc://models/m.pt", "inline": {"fileName": "model.bst"}}}
    assert answers.model_format(service) == "torch"
    data = preset("kserve", lambda d: d["inference"]["services"][0].update(service))
    refused(generated(tmp_path, data), "inference.services[0].model.inline: give uri or inline, not both")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ([{"name": "X", "bogus": 1}], "inference.services[0].env[0]: unknown key(s) bogus"),
        (
            [{"name": "X", "value": "a", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "inference.services[0].env[0]: give value or valueFrom, not both",
        ),
        ({1: "x"}, "inference.services[0].env: key 1 is not a string"),
        ({"A B": "x"}, 'inference.services[0].env: key "A B" is not an environment variable name'),
    ],
)
def test_env_entries_are_kubernetes_env_vars(tmp_path: Path, env: Any, said: str) -> None:
    # Was accepted: any object went into the container's env, which the InferenceService CRD refused.
    data = preset("kserve", lambda d: d["inference"]["services"][0].update(env=env))
    refused(generated(tmp_path, data), said)


def test_quantity_errors_spell_values_as_json(tmp_path: Path) -> None:
    # Was `'-1' must be greater than zero` (a Python repr).
    data = preset("inference-onnx", lambda d: d["inference"]["services"][0].update(cpu="-1"))
    refused(generated(tmp_path, data), 'inference.services[0].cpu: "-1" must be greater than zero')


@pytest.mark.parametrize(
    ("volumes", "said"),
    [
        (
            [
                {"name": "a", "mountPath": "/d", "emptyDir": True},
                {"name": "b", "mountPath": "/d/", "emptyDir": True},
            ],
            "training.jobs[0].volumes[1].mountPath: /d is already where another volume is mounted",
        ),
        (
            [{"name": "a", "mountPath": "/tmp", "emptyDir": True}],
            "training.jobs[0].volumes[0].mountPath: /tmp is where",
        ),
        (
            [
                {"name": "a", "mountPath": "/a", "emptyDir": True},
                {"name": "a", "mountPath": "/b", "emptyDir": True},
            ],
            "training.jobs[0].volumes[1].name: a is already a volume of this job",
        ),
        ([{"name": "a", "mountPath": "/a: b", "emptyDir": True}], "training.jobs[0].volumes[0].mountPath:"),
    ],
)
def test_job_volumes_do_not_collide(tmp_path: Path, volumes: list[dict[str, Any]], said: str) -> None:
    # Kubernetes refuses a pod whose mounts share a path; kubernetes-validate does not see it.
    data = preset("full-stack", lambda d: d["training"]["jobs"][0].update(volumes=volumes))
    refused(generated(tmp_path, data), said)


def test_a_model_over_plain_http_needs_a_pin(tmp_path: Path) -> None:
    # Was accepted; the inference chart refused `model.source.s3` at an http:// endpoint without a pin
    # (the stack's own in-cluster MinIO is the exception: its traffic stays in the namespace).
    service = {"name": "web", "model": {"uri": "s3://models/m.onnx", "endpoint": "http://minio.example.com"}}
    data = preset("quickstart", lambda d: d.update(inference={"services": [service]}))
    refused(generated(tmp_path / "own", data), "inference.services[0].model.endpoint: loads over plain http")
    external = {
        "type": "minio",
        "inCluster": False,
        "endpoint": "http://minio.example.com",
        "existingSecret": "m",
    }
    data = preset(
        "quickstart",
        lambda d: d.update(inference={"services": [{**service, "model": {"uri": "s3://models/m.onnx"}}]}),
    )
    data["mlflow"]["artifactStore"] = external
    refused(generated(tmp_path / "shared", data), "inference.services[0].model.uri: loads over plain http")
    data = preset(
        "minio",
        lambda d: d.update(inference={"services": [{**service, "model": {"uri": "s3://mlflow/m.onnx"}}]}),
    )
    rendered(generated(tmp_path / "in-cluster", data))


def test_value_from_needs_one_source(tmp_path: Path) -> None:
    data = preset(
        "kserve", lambda d: d["inference"]["services"][0].update(env=[{"name": "X", "valueFrom": {}}])
    )
    refused(
        generated(tmp_path, data),
        "inference.services[0].env[0].valueFrom: needs at least 1 key(s): one of secretKeyRef,",
    )


def test_one_mistake_one_message(tmp_path: Path) -> None:
    data = preset("kserve", lambda d: d["inference"]["services"][0].update(name="", runtime=None))
    outcome = generated(tmp_path, data)
    refused(
        outcome,
        'inference.services[0].name: "" must have at least 1 characters',
        "inference.services[0].runtime: null is not a string",
    )
    assert "1 problem(s)" not in outcome.output and outcome.output.count("inference.services[0]") == 2


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda p: p[1]["values"].append("A"),
            'training.jobs[0].sweep.parameters[1].values[4]: "A" is not an integer',
        ),
        (
            lambda p: p.append({"name": "lr", "type": "float", "min": 0.0, "max": math.inf, "count": 3}),
            "parameters[2].max: is not a finite number",
        ),
        (
            lambda p: p.append({"name": "lr", "type": "float", "values": [0.1, "high"]}),
            'parameters[2].values[1]: "high" is not a number',
        ),
    ],
)
def test_sweep_values_have_their_parameter_type(
    tmp_path: Path, change: Callable[[list[dict[str, Any]]], Any], said: str
) -> None:
    # Was "not a valid sweep (ValueError: invalid literal for int() with base 10: 'A')", and an
    # infinite max an OverflowError's words.
    outcome = generated(
        tmp_path, preset("sweep", lambda d: change(d["training"]["jobs"][0]["sweep"]["parameters"]))
    )
    refused(outcome, said)
    assert "Error" not in outcome.output


@pytest.mark.parametrize(
    "store",
    [{"endpoint": "https://minio.example.com"}, {"endpoint": "https://m.example.com", "inCluster": False}],
)
def test_an_external_minio_needs_its_secret(tmp_path: Path, store: dict[str, Any]) -> None:
    # Was accepted (answers took a MinIO with an endpoint but no inCluster for an in-cluster one, the
    # mapping for an external one); the mlflow chart refused it without credentials.
    data = preset("minio")
    data["mlflow"]["artifactStore"] = {"type": "minio", "bucket": "mlflow", **store}
    refused(generated(tmp_path, data), "mlflow.artifactStore.existingSecret: required for an external MinIO")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://user:pw@pypi.example.com/simple", "training.jobs[0].indexUrl: carries a user name"),
        (
            "pypi.example.com/simple",
            "training.jobs[0].indexUrl: pypi.example.com/simple is not an http(s) URL",
        ),
    ],
)
def test_a_package_index_is_a_url_without_credentials(tmp_path: Path, url: str, said: str) -> None:
    # Was accepted; the training-job chart refused an index URL with credentials.
    refused(
        generated(tmp_path, preset("full-stack", lambda d: d["training"]["jobs"][0].update(indexUrl=url))),
        said,
    )


def test_a_prometheus_namespace_that_looks_like_a_number_stays_a_string(tmp_path: Path) -> None:
    # Was a stack kubernetes-validate refused: `0 is not of type 'string'` in the NetworkPolicy that lets
    # Prometheus scrape MLflow (the namespace rendered unquoted, so YAML read "0" as a number).
    data = preset("quickstart", lambda d: d.update(monitoring={"enabled": True, "prometheusNamespace": "0"}))
    policy = find(rendered(generated(tmp_path, data)), "NetworkPolicy")
    namespaces = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    ]
    assert "0" in namespaces and all(isinstance(n, str) for n in namespaces), namespaces


@pytest.mark.parametrize(
    ("uri", "reference", "said"),
    [
        ("https://example.com/models/model.onnx", "reference.csv", "is not an http(s) URL"),
        ("models:/iris@champion", "s3://bucket/reference.csv", "is not an MLflow artifact URI"),
    ],
)
def test_a_monitoring_reference_comes_from_where_the_model_does(
    tmp_path: Path, uri: str, reference: str, said: str
) -> None:
    # Was a stack the inference-service chart refused at render ("monitoring.reference.file must be an
    # http(s) URL with model.source.type=https"): generate accepted any reference beside an https model.
    def change(data: dict[str, Any]) -> None:
        service = data["inference"]["services"][0]
        service["model"]["uri"] = uri
        service["model"]["trust"] = True
        service["monitoring"] = {"reference": reference}
        data["mlflow"]["enabled"] = True

    refused(
        generated(tmp_path / "bad", preset("inference-onnx", change)),
        "services[0].monitoring.reference",
        said,
    )
    good = "https://example.com/reference.csv" if uri.startswith("https") else "runs:/0123/reference.csv"
    data = preset("inference-onnx", change)
    data["inference"]["services"][0]["monitoring"]["reference"] = good
    assert generated(tmp_path / "good", data).code == 0
