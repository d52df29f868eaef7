"""The seed product's requests as answers, so its UI and API clients drive the generator unchanged:
the inference create request, the MLflow install wizard's fields and a training job. Each is detected
by its shape, mapped to `helm-mlops/v1` answers, and every field that has no place is named in a note.
Credentials never reach the answers: they go to Secrets the stack creates (credentials.yaml), and the
answers name those Secrets. Pure."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from generator.answers import InvalidAnswers, Problem
from generator.answers_schema import API_VERSION, KIND
from generator.components import sanitize_name

SEED_SERVICE = "mlflow-service"
# Environment variable names whose values are credentials: they go to a Secret, never into values.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY)", re.IGNORECASE
)

INFERENCE_KEYS = {
    "name",
    "namespace",
    "modelFile",
    "modelFileName",
    "runtime",
    "cpu",
    "memory",
    "replicas",
    "hpa",
    "ingress",
}
MLFLOW_KEYS = {
    "namespace",
    "version",
    "backendStore",
    "artifactStore",
    "trackingUI",
    "ingress",
    "cpu",
    "memory",
    "name",
}
TRAINING_KEYS = {
    "name",
    "namespace",
    "script",
    "image",
    "command",
    "cpu",
    "memory",
    "gpu",
    "env",
    "volumeMounts",
}


@dataclass
class Mapped:
    answers: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def detect(data: Mapping[str, Any]) -> str | None:
    """`inference`, `mlflow` or `training` for a seed-shaped request; None for answers (apiVersion)."""
    if "apiVersion" in data:
        return None
    keys = set(data)
    if keys & {"modelFile", "modelFileName"}:
        return "inference"
    if keys & {"backendStore", "artifactStore", "trackingUI"}:
        return "mlflow"
    if "script" in keys or ("image" in keys and "command" in keys):
        return "training"
    return None


def to_answers(shape: str, data: Mapping[str, Any]) -> Mapped:
    mapper = {"inference": _inference, "mlflow": _mlflow, "training": _training}[shape]
    out = mapper(data)
    allowed = {"inference": INFERENCE_KEYS, "mlflow": MLFLOW_KEYS, "training": TRAINING_KEYS}[shape]
    ignored = sorted(set(data) - allowed)
    out.notes.insert(0, f"read a seed {shape} request")
    if ignored:
        out.notes.append(f"ignored field(s) with no place in a stack: {', '.join(ignored)}")
    return out


def _base(name: str, namespace: Any, mlflow: bool) -> dict[str, Any]:
    answers: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "name": sanitize_name(name)}
    if namespace:
        answers["global"] = {"namespace": str(namespace)}
    answers["mlflow"] = {"enabled": mlflow, "serviceName": SEED_SERVICE}
    return answers


def _seed_tracking(namespace: Any) -> str:
    return f"http://{SEED_SERVICE}.{namespace or 'default'}.svc.cluster.local:5000"


def _ingress(raw: Any, notes: list[str], where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {"enabled": False}
    out: dict[str, Any] = {"enabled": bool(raw.get("enabled"))}
    if raw.get("host"):
        out["host"] = str(raw["host"])
    if raw.get("path"):
        out["path"] = str(raw["path"])
    tls = raw.get("tls")
    if isinstance(tls, Mapping):
        out["tls"] = {"enabled": bool(tls.get("enabled", True))}
        if tls.get("secretName"):
            out["tls"]["secretName"] = str(tls["secretName"])
    elif tls is not None:
        out["tls"] = {"enabled": bool(tls)}
    extra = sorted(set(raw) - {"enabled", "host", "path", "tls"})
    if extra:
        notes.append(f"ignored {where}.ingress field(s): {', '.join(extra)}")
    return out


def _inference(data: Mapping[str, Any]) -> Mapped:
    notes: list[str] = []
    name = sanitize_name(str(data.get("name") or "model"))
    answers = _base(name, data.get("namespace"), mlflow=False)
    svc: dict[str, Any] = {"name": name, "runtime": str(data.get("runtime") or "fastapi")}
    raw = data.get("modelFile")
    file_name = str(data.get("modelFileName") or "model.pkl")
    if raw:
        text = "".join(str(raw).split())
        try:
            blob = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidAnswers(
                [Problem("modelFile", "is not base64 (send the model file base64-encoded)")], "request"
            ) from None
        # The file travels in the request itself: pin exactly those bytes.
        svc["model"] = {
            "inline": {"base64": text, "fileName": file_name},
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        notes.append(f"model {file_name} ({len(blob)} bytes) travels inline, pinned to its sha256")
    else:
        svc["model"] = {"inline": {"base64": "", "fileName": file_name}}
    for key in ("cpu", "memory"):
        if data.get(key) not in (None, ""):
            svc[key] = str(data[key])
    if data.get("replicas") is not None:
        svc["replicas"] = data["replicas"]
    hpa = data.get("hpa")
    if isinstance(hpa, Mapping):
        svc["hpa"] = {k: hpa[k] for k in ("enabled", "minReplicas", "maxReplicas") if k in hpa}
        if "targetCPU" in hpa:
            svc["hpa"]["targetCPU"] = hpa["targetCPU"]
    svc["ingress"] = _ingress(data.get("ingress"), notes, "request")
    answers["inference"] = {"services": [svc]}
    return Mapped(answers, notes)


def _mlflow(data: Mapping[str, Any]) -> Mapped:
    notes: list[str] = []
    secrets: dict[str, dict[str, str]] = {}
    answers = _base(str(data.get("name") or "mlflow"), data.get("namespace"), mlflow=True)
    m = answers["mlflow"]
    if data.get("version"):
        m["version"] = str(data["version"]).lstrip("v")
    if "trackingUI" in data:
        m["ui"] = bool(data["trackingUI"])
    m["cpu"] = str(data.get("cpu") or "1")
    m["memory"] = str(data.get("memory") or "2Gi")
    m["ingress"] = _ingress(data.get("ingress"), notes, "mlflow")
    backend = data.get("backendStore")
    if isinstance(backend, str):
        backend = {"type": backend}
    if isinstance(backend, Mapping):
        kind = str(backend.get("type") or "sqlite")
        db: dict[str, Any] = {"type": kind}
        for key in ("host", "port", "database", "user"):
            if backend.get(key) not in (None, ""):
                db[key] = backend[key]
        if backend.get("password"):
            secret = f"{answers['name']}-db"
            secrets[secret] = {"password": str(backend["password"])}
            db["existingSecret"] = secret
            notes.append(f"the database password goes to Secret {secret} (credentials.yaml), not the answers")
        elif backend.get("existingSecret"):
            db["existingSecret"] = str(backend["existingSecret"])
        m["backendStore"] = db
    store = data.get("artifactStore")
    if isinstance(store, str):
        store = {"type": store}
    if isinstance(store, Mapping):
        kind = str(store.get("type") or "pvc")
        out: dict[str, Any] = {"type": kind}
        for src, dst in (
            ("endpoint", "endpoint"),
            ("bucket", "bucket"),
            ("region", "region"),
            ("prefix", "prefix"),
        ):
            if store.get(src):
                out[dst] = store[src]
        if kind == "minio":
            out["inCluster"] = not store.get("endpoint")
        if kind == "pvc":
            persistence: dict[str, Any] = {}
            if store.get("pvcName"):
                persistence["existingClaim"] = str(store["pvcName"])
            if store.get("pvcSize"):
                persistence["size"] = str(store["pvcSize"])
            if persistence:
                m["persistence"] = persistence
        access = store.get("accessKey") or store.get("accessKeyId")
        secret_key = store.get("secretKey") or store.get("secretAccessKey")
        if access or secret_key:
            name = f"{answers['name']}-artifacts"
            if kind == "minio":
                secrets[name] = {"root-user": str(access or ""), "root-password": str(secret_key or "")}
            else:
                secrets[name] = {
                    "AWS_ACCESS_KEY_ID": str(access or ""),
                    "AWS_SECRET_ACCESS_KEY": str(secret_key or ""),
                }
            out["existingSecret"] = name
            if kind == "minio":
                out["inCluster"] = bool(out.get("inCluster"))
            notes.append(
                f"the artifact store credentials go to Secret {name} (credentials.yaml), not the answers"
            )
        if store.get("credentialsJson"):
            name = f"{answers['name']}-gcs"
            secrets[name] = {"key.json": str(store["credentialsJson"])}
            out["existingSecret"] = name
            notes.append(f"the GCS key goes to Secret {name} (credentials.yaml), not the answers")
        if store.get("existingSecret") and "existingSecret" not in out:
            out["existingSecret"] = str(store["existingSecret"])
        m["artifactStore"] = out
    return Mapped(answers, notes, secrets)


def _training(data: Mapping[str, Any]) -> Mapped:
    notes: list[str] = []
    name = sanitize_name(str(data.get("name") or "train"))
    answers = _base(name, data.get("namespace"), mlflow=False)
    job: dict[str, Any] = {"name": name, "trackingUri": _seed_tracking(data.get("namespace"))}
    script = data.get("script")
    if isinstance(script, str) and script:
        job["script"] = {"content": _maybe_base64(script), "fileName": "train.py"}
    if data.get("image"):
        job["image"] = str(data["image"])
    command = data.get("command")
    if isinstance(command, str):
        command = ["sh", "-c", command]
    if command:
        job["command"] = [str(x) for x in command]
    for key in ("cpu", "memory"):
        if data.get(key) not in (None, ""):
            job[key] = str(data[key])
    if data.get("gpu"):
        job["gpus"] = data["gpu"]
    env = data.get("env")
    if isinstance(env, list):  # [{name, value}] as the seed UI may send it
        env = {str(e.get("name")): e.get("value") for e in env if isinstance(e, Mapping) and "value" in e}
    secrets: dict[str, dict[str, str]] = {}
    if isinstance(env, Mapping):
        plain = {str(k): str(v) for k, v in env.items() if not SECRET_NAME.search(str(k))}
        hidden = {str(k): str(v) for k, v in env.items() if SECRET_NAME.search(str(k))}
        if plain:
            job["env"] = plain
        if hidden:
            secret = f"{name}-env"
            secrets[secret] = hidden
            job["secrets"] = [secret]
            notes.append(
                f"environment variables that look like credentials ({', '.join(sorted(hidden))}) go to "
                f"Secret {secret} (credentials.yaml), not the answers"
            )
    volumes = []
    for i, mount in enumerate(data.get("volumeMounts") or []):
        if not isinstance(mount, Mapping):
            continue
        vol: dict[str, Any] = {
            "name": sanitize_name(str(mount.get("name") or f"data-{i}")),
            "mountPath": str(mount.get("mountPath") or f"/data/{i}"),
        }
        claim = mount.get("claimName") or mount.get("pvc") or mount.get("persistentVolumeClaim")
        if isinstance(claim, Mapping):
            claim = claim.get("claimName")
        if claim:
            vol["claimName"] = str(claim)
        else:
            vol["emptyDir"] = True
        if mount.get("readOnly"):
            vol["readOnly"] = True
        volumes.append(vol)
    if volumes:
        job["volumes"] = volumes
    answers["training"] = {"jobs": [job]}
    return Mapped(answers, notes, secrets)


def _maybe_base64(text: str) -> str:
    """A script sent as text or base64 (the seed UI sends either): decode what is clean base64 of UTF-8."""
    compact = "".join(text.split())
    if compact and len(compact) % 4 == 0 and "\n" not in text.strip():
        try:
            decoded = base64.b64decode(compact, validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return text
        if decoded.isprintable() or "\n" in decoded:
            return decoded
    return text
