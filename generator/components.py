"""Answers → chart values, one builder per chart. `helm-mlops train` and the stack generator share
`job_values` (the same job renders the same Job from either), and the stack uses `mlflow_values` and
`service_values`. Pure: the inputs are data (file contents already read), the outputs chart values.

Each builder has a provenance table beside it: chart value path → the answer that sets it, which the
stack's values.yaml prints as a comment over each generated value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Chart names, as in charts/*/Chart.yaml.
MLFLOW, TRAINING, INFERENCE = "mlflow", "training-job", "inference-service"


def put(values: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a value at a dotted key (the keys are ours, never the user's text)."""
    keys = dotted.split(".")
    node = values
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def split_image(image: str) -> tuple[str, str]:
    """`repo[:tag]` → (repo, tag); a port in the registry host is not a tag; no tag means latest."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        repo, _, digest = image.partition("@")
        return repo, "@" + digest
    if ":" in last:
        repo, _, tag = image.rpartition(":")
        return repo, tag
    return image, "latest"


def with_registry(repository: str, registry: str) -> str:
    """The repository pulled through `registry` (a mirror): its own registry host replaced; Docker Hub's
    short names get their `library/` path."""
    if not registry:
        return repository
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        path = rest
    elif rest:
        path = repository
    else:
        path = f"library/{repository}"
    return f"{registry.rstrip('/')}/{path}"


def env_list(env: Any) -> list[dict[str, Any]]:
    """A mapping NAME: value, or a list of EnvVar objects, as a list of EnvVar objects."""
    if isinstance(env, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in env.items()]
    return [dict(e) for e in env or []]


def resources(cpu: Any, memory: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (("cpu", cpu), ("memory", memory)):
        if value not in (None, ""):
            put(out, f"requests.{key}", str(value))
            put(out, f"limits.{key}", str(value))
    return out


# Training ---------------------------------------------------------------------------------------------


@dataclass
class JobSpec:
    """A training job, whatever asked for it (`helm-mlops train` options or a stack's answers)."""

    script_content: str | None = None
    script_name: str | None = None
    script_args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    index_url: str | None = None
    image: str | None = None
    cpu: str | None = None
    memory: str | None = None
    gpus: int | None = None
    nodes: int | None = None
    nproc_per_node: int | None = None
    operator: str | None = None
    sweep: dict[str, Any] | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    schedule: str | None = None
    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)  # the chart's `volumes` entries
    secrets: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def job_values(spec: JobSpec, registry: str = "") -> dict[str, Any]:
    """The training-job chart's values for a job: the one mapping `train` and stacks share."""
    values: dict[str, Any] = {}
    if spec.script_content is not None:
        put(values, "script.content", spec.script_content)
        name = spec.script_name or "train.py"
        put(values, "script.fileName", name if name.endswith(".py") else f"{name}.py")
    if spec.command:
        put(values, "command", list(spec.command))
    if spec.script_args:
        put(values, "script.args", list(spec.script_args))
    if spec.requirements:
        put(values, "requirements", list(spec.requirements))
    if spec.index_url:
        put(values, "pip.indexUrl", spec.index_url)
    if spec.image:
        repo, tag = split_image(spec.image)
        put(values, "image.repository", with_registry(repo, registry))
        put(values, "image.tag", tag)
    elif registry:
        put(values, "image.repository", with_registry("python", registry))
    if spec.cpu is not None or spec.memory is not None:
        values["resources"] = resources(spec.cpu, spec.memory)
    if spec.gpus is not None:
        put(values, "gpu.count", spec.gpus)
    if spec.nodes is not None or spec.operator is not None or spec.nproc_per_node is not None:
        put(values, "distributed.enabled", True)
        if spec.nodes is not None:
            put(values, "distributed.nodes", spec.nodes)
        if spec.nproc_per_node is not None:
            put(values, "distributed.nprocPerNode", spec.nproc_per_node)
        if spec.operator is not None:
            put(values, "distributed.operator", spec.operator)
    if spec.sweep is not None:
        values["sweep"] = {"enabled": True, **spec.sweep}
    if spec.tracking_uri:
        put(values, "mlflow.trackingUri", spec.tracking_uri)
    if spec.experiment:
        put(values, "mlflow.experimentName", spec.experiment)
    if spec.schedule:
        put(values, "cronJob.schedule", spec.schedule)
    if spec.env:
        values["env"] = list(spec.env)
    if spec.volumes:
        values["volumes"] = list(spec.volumes)
    if spec.secrets:
        values["envFrom"] = [{"secretRef": {"name": s}} for s in spec.secrets]
    if spec.labels:
        values["commonLabels"] = dict(spec.labels)
    return values


def job_spec(job: Mapping[str, Any], labels: Mapping[str, str], storage_class: str) -> JobSpec:
    """A stack's training job answers (script files already read into `script.content`)."""
    script = job.get("script") or {}
    volumes = []
    for vol in job.get("volumes") or []:
        entry: dict[str, Any] = {"name": vol["name"], "mountPath": vol["mountPath"]}
        if vol.get("readOnly"):
            entry["readOnly"] = True
        if vol.get("claimName"):
            entry["pvc"] = {"claimName": vol["claimName"]}
        elif vol.get("size"):
            entry["pvc"] = {"create": True, "size": str(vol["size"])}
            if storage_class:
                entry["pvc"]["storageClassName"] = storage_class
        else:
            entry["emptyDir"] = {}
        volumes.append(entry)
    return JobSpec(
        script_content=script.get("content"),
        script_name=script.get("fileName"),
        script_args=list(script.get("args") or []),
        command=list(job.get("command") or []),
        requirements=list(job.get("requirements") or []),
        index_url=job.get("indexUrl"),
        image=job.get("image"),
        cpu=None if job.get("cpu") is None else str(job["cpu"]),
        memory=None if job.get("memory") is None else str(job["memory"]),
        gpus=job.get("gpus"),
        nodes=job.get("nodes"),
        nproc_per_node=job.get("procsPerNode"),
        operator=job.get("operator"),
        sweep=dict(job["sweep"]) if job.get("sweep") else None,
        experiment=job.get("experiment"),
        tracking_uri=job.get("trackingUri"),
        schedule=job.get("schedule"),
        env=env_list(job.get("env")),
        volumes=volumes,
        secrets=list(job.get("secrets") or []),
        labels=dict(labels),
    )


JOB_PROVENANCE = {
    "fullnameOverride": "name (as <stack>-<name>)",
    "script.content": "script",
    "script.fileName": "script",
    "script.args": "script.args",
    "command": "command",
    "requirements": "requirements",
    "pip": "indexUrl",
    "image": "image",
    "resources.requests.cpu": "cpu",
    "resources.limits.cpu": "cpu",
    "resources.requests.memory": "memory",
    "resources.limits.memory": "memory",
    "gpu": "gpus",
    "distributed.enabled": "nodes/procsPerNode/operator",
    "distributed.nodes": "nodes",
    "distributed.nprocPerNode": "procsPerNode",
    "distributed.operator": "operator",
    "sweep": "sweep",
    "mlflow.experimentName": "experiment",
    "mlflow.trackingUri": "trackingUri",
    "cronJob": "schedule",
    "env": "env",
    "volumes": "volumes",
    "envFrom": "secrets",
    "commonLabels": "@global.labels",
    "job.ttlSecondsAfterFinished": "@stack: finished Jobs stay, so a stack upgrade never re-creates "
    "(retrains) one",
}


# MLflow -----------------------------------------------------------------------------------------------


def mlflow_fullname(answers: Mapping[str, Any]) -> str:
    """The name of MLflow's Service (and its other objects) in a stack."""
    mlflow = answers.get("mlflow") or {}
    return str(mlflow.get("serviceName") or f"{answers['name']}-mlflow")


def mlflow_values(answers: Mapping[str, Any]) -> dict[str, Any]:
    g = answers.get("global") or {}
    m = answers["mlflow"]
    registry = str(g.get("imageRegistry") or "")
    storage_class = str(g.get("storageClass") or "")
    v: dict[str, Any] = {"fullnameOverride": mlflow_fullname(answers)}
    version = str(m.get("version") or "").lstrip("v")
    if version:
        put(v, "image.tag", f"v{version}-full")
    if registry:
        put(v, "image.repository", with_registry("ghcr.io/mlflow/mlflow", registry))
    v["replicaCount"] = int(m.get("replicas", 1))
    put(v, "ui.enabled", bool(m.get("ui", True)))
    db = m.get("backendStore") or {}
    kind = db.get("type", "sqlite")
    put(v, "backendStore.type", kind)
    if kind in ("postgresql", "mysql"):
        for key in ("host", "port", "database", "user", "existingSecret", "existingSecretPasswordKey"):
            if db.get(key) not in (None, ""):
                put(v, f"backendStore.{kind}.{key}", db[key])
        if kind == "postgresql":
            if db.get("inCluster"):
                put(v, "backendStore.postgresql.inCluster", True)
                if registry:
                    put(
                        v,
                        "postgresql.image.repository",
                        with_registry("docker.io/library/postgres", registry),
                    )
                if storage_class:
                    put(v, "postgresql.persistence.storageClass", storage_class)
            if db.get("sslMode"):
                put(v, "backendStore.postgresql.sslMode", db["sslMode"])
    store = m.get("artifactStore") or {}
    kind = store.get("type", "pvc")
    put(v, "artifactStore.type", kind)
    if kind == "s3":
        for src, dst in (
            ("bucket", "bucket"),
            ("prefix", "prefix"),
            ("region", "region"),
            ("endpoint", "endpointUrl"),
            ("existingSecret", "existingSecret"),
        ):
            if store.get(src):
                put(v, f"artifactStore.s3.{dst}", store[src])
    elif kind == "minio":
        in_cluster = bool(store.get("inCluster", not store.get("endpoint")))
        put(v, "artifactStore.minio.inCluster", in_cluster)
        for src, dst in (
            ("bucket", "bucket"),
            ("prefix", "prefix"),
            ("endpoint", "endpointUrl"),
            ("existingSecret", "existingSecret"),
        ):
            if store.get(src):
                put(v, f"artifactStore.minio.{dst}", store[src])
        if in_cluster:
            if store.get("size"):
                put(v, "artifactStore.minio.persistence.size", str(store["size"]))
            if storage_class:
                put(v, "artifactStore.minio.persistence.storageClass", storage_class)
            if registry:
                put(v, "artifactStore.minio.image.repository", with_registry("quay.io/minio/minio", registry))
    elif kind == "gcs":
        for key in ("bucket", "prefix", "existingSecret"):
            if store.get(key):
                put(v, f"artifactStore.gcs.{key}", store[key])
    elif kind == "azure":
        for src, dst in (
            ("bucket", "container"),
            ("prefix", "prefix"),
            ("storageAccount", "storageAccount"),
            ("existingSecret", "existingSecret"),
        ):
            if store.get(src):
                put(v, f"artifactStore.azure.{dst}", store[src])
    persistence = m.get("persistence") or {}
    if persistence.get("size"):
        put(v, "persistence.size", str(persistence["size"]))
    if persistence.get("existingClaim"):
        put(v, "persistence.existingClaim", persistence["existingClaim"])
    if storage_class:
        put(v, "persistence.storageClass", storage_class)
    v["ingress"] = ingress_values(m.get("ingress") or {})
    auth = m.get("auth") or {}
    put(v, "auth.basic.enabled", bool(auth.get("enabled")))
    if auth.get("existingSecret"):
        put(v, "auth.basic.existingSecret", auth["existingSecret"])
    if auth.get("defaultPermission"):
        put(v, "auth.basic.defaultPermission", auth["defaultPermission"])
    v["resources"] = resources(m.get("cpu"), m.get("memory"))
    put(v, "podDisruptionBudget.enabled", bool(m.get("podDisruptionBudget")))
    put(v, "metrics.enabled", bool(m.get("metrics")))
    if g.get("labels"):
        v["commonLabels"] = dict(g["labels"])
    return v


def ingress_values(ingress: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"enabled": bool(ingress.get("enabled"))}
    for key in ("host", "path", "className"):
        if ingress.get(key):
            out[key] = ingress[key]
    tls = ingress.get("tls") or {}
    if tls.get("enabled"):
        out["tls"] = {"enabled": True}
        for key in ("secretName", "certManagerIssuer"):
            if tls.get(key):
                out["tls"][key] = tls[key]
    return out


MLFLOW_PROVENANCE = {
    "fullnameOverride": "mlflow.serviceName",
    "image.tag": "mlflow.version",
    "image.repository": "global.imageRegistry",
    "replicaCount": "mlflow.replicas",
    "ui": "mlflow.ui",
    "backendStore": "mlflow.backendStore",
    "postgresql.image": "global.imageRegistry",
    "postgresql.persistence": "global.storageClass",
    "artifactStore": "mlflow.artifactStore",
    "artifactStore.minio.persistence.storageClass": "global.storageClass",
    "artifactStore.minio.allowFrom": "inference.services[*].model.uri (services loading from this MinIO)",
    "artifactStore.minio.image": "global.imageRegistry",
    "persistence.size": "mlflow.persistence.size",
    "persistence.existingClaim": "mlflow.persistence.existingClaim",
    "persistence.storageClass": "global.storageClass",
    "ingress": "mlflow.ingress",
    "auth": "mlflow.auth",
    "resources.requests.cpu": "mlflow.cpu",
    "resources.limits.cpu": "mlflow.cpu",
    "resources.requests.memory": "mlflow.memory",
    "resources.limits.memory": "mlflow.memory",
    "podDisruptionBudget": "mlflow.podDisruptionBudget",
    "metrics": "mlflow.metrics",
    "commonLabels": "global.labels",
}


# Inference --------------------------------------------------------------------------------------------


def stack_store(answers: Mapping[str, Any]) -> dict[str, Any] | None:
    """The S3 settings of the stack's artifact store (MinIO or S3), which model sources may share:
    {endpointUrl, existingSecret, accessKeyIdKey, secretAccessKeyKey, region, insecure}."""
    m = answers.get("mlflow") or {}
    if not m.get("enabled", True):
        return None
    store = m.get("artifactStore") or {}
    kind = store.get("type")
    if kind == "minio":
        if store.get("inCluster", not store.get("endpoint")):
            name = mlflow_fullname(answers)
            secret = store.get("existingSecret") or name
            keys = (
                ("root-user", "root-password")
                if store.get("existingSecret")
                else ("minio-access-key", "minio-secret-key")
            )
            endpoint = f"http://{name[: 62 - len('minio')].rstrip('-')}-minio:9000"
            return {"endpointUrl": endpoint, "existingSecret": secret, "accessKeyIdKey": keys[0],
                    "secretAccessKeyKey": keys[1], "region": "us-east-1", "insecure": True}  # fmt: skip
        out = {"endpointUrl": store["endpoint"], "region": "us-east-1", "insecure": False}
        if store.get("existingSecret"):
            out.update(
                existingSecret=store["existingSecret"],
                accessKeyIdKey="root-user",
                secretAccessKeyKey="root-password",
            )
        return out
    if kind == "s3":
        out = {"insecure": False}
        if store.get("endpoint"):
            out["endpointUrl"] = store["endpoint"]
        if store.get("region"):
            out["region"] = store["region"]
        if store.get("existingSecret"):
            out["existingSecret"] = store["existingSecret"]
        return out
    return None


def service_values(svc: Mapping[str, Any], answers: Mapping[str, Any], tracking_uri: str) -> dict[str, Any]:
    from generator.answers import model_format, source_type

    g = answers.get("global") or {}
    registry = str(g.get("imageRegistry") or "")
    runtime = svc.get("runtime", "fastapi")
    model = svc.get("model") or {}
    v: dict[str, Any] = {"runtime": runtime}
    put(v, "model.name", svc["name"])
    fmt = model_format(svc)
    if model.get("format"):
        put(v, "model.format", fmt)
    if model.get("trust"):
        put(v, "model.trustModel", True)
    if model.get("sha256"):
        put(v, "model.sha256", model["sha256"])
    kind = source_type(svc)
    uri = str(model.get("uri") or "")
    if kind:
        put(v, "model.source.type", kind)
    if kind == "mlflow":
        put(v, "model.source.mlflow.uri", uri)
        if model.get("trackingUri"):
            put(v, "model.source.mlflow.trackingUri", model["trackingUri"])
        if model.get("existingSecret"):
            put(v, "model.source.mlflow.existingSecret", model["existingSecret"])
    elif kind == "s3":
        bucket, _, key = uri[len("s3://") :].partition("/")
        put(v, "model.source.s3.bucket", bucket)
        put(v, "model.source.s3.key", key)
        shared = stack_store(answers) if not model.get("endpoint") else None
        if shared:
            for k in ("endpointUrl", "region", "existingSecret", "accessKeyIdKey", "secretAccessKeyKey"):
                if shared.get(k):
                    put(v, f"model.source.s3.{k}", shared[k])
            if shared.get("insecure"):
                put(v, "model.allowInsecureHttp", True)  # the stack's own MinIO, inside the cluster
        if model.get("endpoint"):
            put(v, "model.source.s3.endpointUrl", model["endpoint"])
        if model.get("region"):
            put(v, "model.source.s3.region", model["region"])
        if model.get("existingSecret"):
            put(v, "model.source.s3.existingSecret", model["existingSecret"])
    elif kind == "https":
        put(v, "model.source.https.url", uri)
    elif kind == "pvc":
        claim, _, path = uri[len("pvc://") :].partition("/")
        put(v, "model.source.pvc.claimName", claim)
        put(v, "model.source.pvc.path", path)
    elif kind == "inline":
        inline = model.get("inline") or {}
        put(v, "model.source.inline.base64", str(inline.get("base64") or ""))
        if inline.get("fileName"):
            put(v, "model.source.inline.fileName", inline["fileName"])
    image = svc.get("image")
    section = {"fastapi": "fastapi", "mlserver": "mlserver", "bentoml": "bentoml", "kserve": "fastapi"}[
        runtime
    ]
    if image:
        repo, tag = split_image(str(image))
        put(v, f"{section}.image.repository", with_registry(repo, registry))
        put(v, f"{section}.image.tag", tag)
    elif registry and runtime in ("fastapi", "mlserver"):
        default = {"fastapi": "python", "mlserver": "seldonio/mlserver"}[runtime]
        put(v, f"{section}.image.repository", with_registry(default, registry))
    hpa = svc.get("hpa") or {}
    if runtime == "kserve":
        low = int(hpa.get("minReplicas", 1)) if hpa.get("enabled") else int(svc.get("replicas", 1))
        high = int(hpa.get("maxReplicas", 3)) if hpa.get("enabled") else max(low, 1)
        put(v, "kserve.minReplicas", low)
        put(v, "kserve.maxReplicas", high)
        if hpa.get("targetCPU"):
            put(v, "kserve.scaleTarget", int(hpa["targetCPU"]))
    else:
        if svc.get("replicas") is not None:
            v["replicaCount"] = int(svc["replicas"])
        if hpa.get("enabled"):
            v["autoscaling"] = {
                "enabled": True,
                "minReplicas": int(hpa.get("minReplicas", 1)),
                "maxReplicas": int(hpa.get("maxReplicas", 3)),
                "targetCPUUtilizationPercentage": int(hpa.get("targetCPU", 70)),
            }
    if svc.get("cpu") is not None or svc.get("memory") is not None:
        v["resources"] = resources(svc.get("cpu"), svc.get("memory"))
    if svc.get("gpus"):
        put(v, "gpu.count", int(svc["gpus"]))
    if svc.get("device"):
        put(v, "fastapi.device", str(svc["device"]))
    monitoring = svc.get("monitoring") or {}
    if monitoring:
        put(v, "monitoring.enabled", True)
        put(v, "monitoring.reference.file", str(monitoring["reference"]))
        put(v, "monitoring.feedback.enabled", bool(monitoring.get("feedback")))
    v["ingress"] = ingress_values(svc.get("ingress") or {})
    issuer = v["ingress"].get("tls", {}).pop("certManagerIssuer", None)
    if issuer:  # the inference-service chart takes the issuer as the annotation cert-manager reads
        v["ingress"]["annotations"] = {"cert-manager.io/cluster-issuer": issuer}
    if svc.get("env"):
        v["env"] = env_list(svc["env"])
    if svc.get("secrets"):
        v["envFrom"] = [{"secretRef": {"name": s}} for s in svc["secrets"]]
    if g.get("labels"):
        v["commonLabels"] = dict(g["labels"])
    del tracking_uri  # services read it from global.mlflow.trackingUri
    return v


SERVICE_PROVENANCE = {
    "monitoring": "monitoring",
    "runtime": "runtime",
    "fullnameOverride": "name (as <stack>-<name>)",
    "model.name": "name",
    "model.format": "model.format",
    "model.trustModel": "model.trust",
    "model.sha256": "model.sha256",
    "model.source": "model.uri",
    "model.source.s3.endpointUrl": "model.endpoint (or the stack's MinIO/S3)",
    "model.source.s3.existingSecret": "model.existingSecret (or the stack's MinIO/S3)",
    "model.source.inline": "model.inline",
    "model.allowInsecureHttp": "@mlflow.artifactStore (the stack's own MinIO)",
    "fastapi.image": "image",
    "mlserver.image": "image",
    "bentoml.image": "image",
    "kserve": "replicas/hpa",
    "replicaCount": "replicas",
    "autoscaling": "hpa",
    "resources.requests.cpu": "cpu",
    "resources.limits.cpu": "cpu",
    "resources.requests.memory": "memory",
    "resources.limits.memory": "memory",
    "gpu": "gpus",
    "fastapi.device": "device",
    "ingress": "ingress",
    "env": "env",
    "envFrom": "secrets",
    "commonLabels": "@global.labels",
}


# Monitoring ---------------------------------------------------------------------------------------------

MONITORING_PROVENANCE = {
    "metrics.enabled": "@monitoring.enabled",
    "metrics.serviceMonitor": "@monitoring.enabled",
    "metrics.serviceMonitor.labels": "@monitoring.labels",
    "metrics.prometheusRule": "@monitoring.alerts",
    "metrics.prometheusRule.labels": "@monitoring.labels",
    "metrics.dashboards": "@monitoring.dashboards",
    "networkPolicy.monitoringNamespace": "@monitoring.prometheusNamespace",
}


def monitoring_values(kind: str, answers: Mapping[str, Any], dashboards: bool) -> dict[str, Any]:
    """The values that turn on monitoring for one component of kind mlflow, job or service:
    ServiceMonitor (MLflow and services: jobs expose no metrics; kube-state-metrics watches them),
    alert rules, and the chart's dashboard when `dashboards` (one ConfigMap per chart kind in a stack:
    every release of a chart would ship the same dashboard)."""
    m = answers.get("monitoring") or {}
    if not m.get("enabled"):
        return {}
    labels = dict(m.get("labels") or {})
    v: dict[str, Any] = {}
    if kind != "job":
        if kind == "mlflow":
            put(v, "metrics.enabled", True)
        put(v, "metrics.serviceMonitor.enabled", True)
        if labels:
            put(v, "metrics.serviceMonitor.labels", labels)
        if m.get("prometheusNamespace"):
            put(v, "networkPolicy.monitoringNamespace", m["prometheusNamespace"])
    if m.get("alerts", True):
        put(v, "metrics.prometheusRule.enabled", True)
        if labels:
            put(v, "metrics.prometheusRule.labels", labels)
    if dashboards and m.get("dashboards", True):
        put(v, "metrics.dashboards.enabled", True)
    return v


def provenance(table: Mapping[str, str], prefix: str, path: tuple[str, ...]) -> str | None:
    """The answer that set the chart value at `path`: the longest matching key of `table`."""
    for n in range(len(path), 0, -1):
        hit = table.get(".".join(path[:n]))
        if hit is not None:
            return hit[1:] if hit.startswith("@") else (f"{prefix}.{hit}" if prefix else hit)
    return None


def sanitize_name(text: str) -> str:
    """A DNS-1123 label made from free text (seed requests' names): lower case, [-a-z0-9]."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:30].rstrip("-") or "stack"
