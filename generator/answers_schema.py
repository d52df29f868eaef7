"""The answers format, `apiVersion: helm-mlops/v1`, as a JSON Schema (draft 2020-12). This module is its
source; `helm-mlops docs` publishes it as docs/answers.schema.json and `helm-mlops answers-schema` prints
it. Structure and single-field rules live here; rules across fields live in answers.cross_checks."""

from __future__ import annotations

from typing import Any

API_VERSION = "helm-mlops/v1"
KIND = "Stack"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Stack, job and service names become Service names too, which are DNS-1035 labels (a letter first).
NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# Kubernetes' resource.Quantity grammar (the same as values.QUANTITY_PATTERN).
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
SEMVER = r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A Kubernetes object name (DNS-1123 subdomain): Secrets, claims, storage and ingress classes.
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# An image reference: [registry[:port]/]path[:tag][@sha256:digest] (the distribution grammar, lower case).
IMAGE = (
    r"^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?"
    r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
# An Ingress path: absolute, segments of URL characters, no empty, `.` or `..` segment.
INGRESS_PATH = r"^(/|(/(?!\.\.?(/|$))[A-Za-z0-9._~%-]+)+/?)$"
# A label key ([prefix/]name) and value, as Kubernetes validates them.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A key of a Secret or ConfigMap; a bucket (S3, GCS) or Azure container; a path inside it.
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
BUCKET = r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"
PREFIX = r"^([A-Za-z0-9._~=@+-]+(/[A-Za-z0-9._~=@+-]+)*/?)?$"
# The helm-mlops runtime's --device (hm_runtime/device.py's PATTERN), or empty for the chart's default.
DEVICE = r"^(auto|cpu|cuda(:(0|[1-9][0-9]*))?)?$"
NAME_MAX = 30  # stack and component names: "<stack>-<component>" stays within a 63-character name

RUNTIMES = ["fastapi", "mlserver", "bentoml", "kserve"]
FORMATS = ["", "sklearn", "joblib", "onnx", "torch", "keras", "mlflow", "xgboost", "lightgbm"]
BACKENDS = ["sqlite", "postgresql", "mysql"]
ARTIFACT_STORES = ["pvc", "minio", "s3", "gcs", "azure"]
OPERATORS = ["none", "pytorchjob", "trainjob"]


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _b(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _i(description: str, minimum: int = 0, maximum: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "description": description, "minimum": minimum}
    if maximum is not None:
        out["maximum"] = maximum
    return out


def _obj(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _name(description: str) -> dict[str, Any]:
    return _s(description, pattern=NAME, minLength=1, maxLength=NAME_MAX)


def _quantity(description: str) -> dict[str, Any]:
    return {"type": ["string", "number"], "description": description, "pattern": QUANTITY}


def _k8s_name(description: str) -> dict[str, Any]:
    return _s(description, pattern=K8S_NAME, maxLength=253)


def _optional_k8s_name(description: str) -> dict[str, Any]:
    """A Kubernetes object name, or empty for the default."""
    return _s(description, pattern=f"^({K8S_NAME[1:-1]})?$", maxLength=253)


SECRET_NAME = _k8s_name("An existing Secret in the stack's namespace.")
IMAGE_REF = _s(
    "Image reference, [registry[:port]/]path[:tag][@sha256:digest]; empty: the default.",
    pattern=f"^({IMAGE[1:-1]})?$",
)

INGRESS = _obj(
    "Expose it through an Ingress.",
    {
        "enabled": _b("Create an Ingress."),
        "host": _s("Host name, e.g. mlflow.example.com (required with TLS)."),
        "path": _s("Path prefix: /segment/..., URL characters.", pattern=INGRESS_PATH),
        "className": _optional_k8s_name("IngressClass; empty: the cluster's default."),
        "tls": _obj(
            "TLS for the host.",
            {
                "enabled": _b("Serve HTTPS."),
                "secretName": _optional_k8s_name("Secret holding the certificate; empty: <name>-tls."),
                "certManagerIssuer": _optional_k8s_name(
                    "cert-manager ClusterIssuer that issues the certificate."
                ),
            },
        ),
    },
)

_KEY_REF = _obj(
    "A key of a Secret or ConfigMap.",
    {"name": _k8s_name("Its name."), "key": _s("The key."), "optional": _b("Missing is fine.")},
    required=["key"],
)
ENV_VAR = _obj(
    "A Kubernetes EnvVar: name and value, or name and valueFrom.",
    {
        "name": _s("Variable name.", pattern=ENV_NAME),
        "value": _s("Its value."),
        "valueFrom": _obj(
            "Where the value comes from.",
            {
                "secretKeyRef": _KEY_REF,
                "configMapKeyRef": _KEY_REF,
                "fieldRef": _obj(
                    "A field of the pod.",
                    {"fieldPath": _s("e.g. metadata.name."), "apiVersion": _s("Its API version.")},
                    required=["fieldPath"],
                ),
                "resourceFieldRef": _obj(
                    "A resource of the container.",
                    {
                        "resource": _s("e.g. limits.memory."),
                        "containerName": _s("The container."),
                        "divisor": _quantity("Unit."),
                    },
                    required=["resource"],
                ),
            },
            minProperties=1,
            maxProperties=1,
        ),
    },
    required=["name"],
)

ENV = {
    "description": "Environment variables: a mapping NAME: value, or a list of Kubernetes EnvVar objects.",
    "anyOf": [
        {
            "type": "object",
            "propertyNames": {"type": "string", "pattern": ENV_NAME},
            "additionalProperties": {"type": "string"},
        },
        {"type": "array", "items": ENV_VAR},
    ],
}

SECRETS = {
    "type": "array",
    "description": "Existing Secrets whose keys become environment variables (envFrom).",
    "items": SECRET_NAME,
}

MLFLOW = _obj(
    "The MLflow tracking server and model registry.",
    {
        "enabled": _b("Deploy MLflow in the stack."),
        "version": _s("MLflow version (image ghcr.io/mlflow/mlflow:v<version>-full).", pattern=SEMVER),
        "serviceName": _s(
            "Name of MLflow's Service and other objects; `mlflow-service` matches the seed scripts' "
            "http://mlflow-service.<namespace>.svc.cluster.local:5000. Empty: <stack>-mlflow.",
            pattern=r"^([a-z]([-a-z0-9]*[a-z0-9])?)?$",
            maxLength=50,
        ),
        "replicas": _i("Server replicas (SQLite or a ReadWriteOnce volume allow one).", 1, 20),
        "ui": _b("Serve the tracking UI (off: the REST API only)."),
        "backendStore": _obj(
            "Where runs, metrics and the registry live.",
            {
                "type": _s("sqlite (on the data volume), postgresql or mysql.", enum=BACKENDS),
                "inCluster": _b("postgresql only: run a PostgreSQL in the stack (for trying things out)."),
                "host": _s(
                    "Database host: a DNS name or IP address (no user or password: those come from "
                    "existingSecret).",
                    pattern=r"^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$",
                ),
                "port": _i("Database port.", 1, 65535),
                "database": _s("Database name."),
                "user": _s("Database user."),
                "existingSecret": SECRET_NAME,
                "existingSecretPasswordKey": _s("Key of the password in existingSecret.", pattern=SECRET_KEY),
                "sslMode": _s("PostgreSQL sslmode (require, verify-full, ...)."),
            },
        ),
        "artifactStore": _obj(
            "Where artifacts and models live (served through MLflow's proxy).",
            {
                "type": _s("pvc, minio (in the stack or external), s3, gcs or azure.", enum=ARTIFACT_STORES),
                "inCluster": _b("minio only: run MinIO in the stack."),
                "endpoint": _s("S3/MinIO endpoint URL (external MinIO, S3-compatible stores)."),
                "bucket": _s("Bucket (s3, minio, gcs) or container (azure).", pattern=BUCKET),
                "prefix": _s("Path prefix inside the bucket: segments of URL characters.", pattern=PREFIX),
                "region": _s("S3 region."),
                "storageAccount": _s("azure: the storage account."),
                "existingSecret": SECRET_NAME,
                "size": _quantity("minio in the stack: its volume size."),
            },
        ),
        "persistence": _obj(
            "The data volume (SQLite file and/or pvc artifacts).",
            {
                "size": _quantity("Volume size."),
                "existingClaim": _optional_k8s_name(
                    "Use this PersistentVolumeClaim instead of creating one."
                ),
            },
        ),
        "ingress": INGRESS,
        "auth": _obj(
            "MLflow's basic authentication.",
            {
                "enabled": _b("Require a user name and password."),
                "existingSecret": SECRET_NAME,
                "defaultPermission": _s(
                    "Permission of new users.", enum=["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]
                ),
            },
        ),
        "cpu": _quantity("CPU request and limit of the server."),
        "memory": _quantity("Memory request and limit of the server."),
        "podDisruptionBudget": _b("Keep one server up during node drains (needs replicas >= 2)."),
        "metrics": _b("Expose Prometheus metrics."),
    },
)

SCRIPT = _obj(
    "The training script, shipped in a ConfigMap.",
    {
        "file": _s("Path of a .py file, relative to the answers file."),
        "content": _s("The script's text (instead of file)."),
        "fileName": _s("File name inside the pod.", pattern=r"^[A-Za-z0-9_.-]+\.py$"),
        "args": {"type": "array", "items": {"type": "string"}, "description": "Script arguments."},
    },
)

VOLUME = _obj(
    "A data volume: an existing claim, a new claim, or an emptyDir.",
    {
        "name": _s("Volume name.", pattern=DNS_LABEL, maxLength=40),
        "mountPath": _s("Where it is mounted: an absolute path.", pattern=r"^(/[A-Za-z0-9._@+=,~-]+)+/?$"),
        "readOnly": _b("Mount read-only."),
        "claimName": _k8s_name("An existing PersistentVolumeClaim."),
        "size": _quantity("Create a claim of this size (kept on uninstall)."),
        "emptyDir": _b("A scratch volume."),
    },
    required=["name", "mountPath"],
)

SWEEP = _obj(
    "Hyperparameter sweep: one pod per trial (the training-job chart's `sweep`).",
    {
        "strategy": _s("grid (every combination) or random (`trials` draws).", enum=["grid", "random"]),
        "trials": _i("random: number of trials.", 0),
        "seed": {"type": "integer", "description": "random: the draws' seed."},
        "parallelism": _i("Trials running at once.", 1),
        "backoffLimitPerIndex": _i("Retries of each trial.", 0),
        "maxFailedIndexes": _i("Failed trials after which the sweep stops.", 0),
        "parameters": {
            "type": "array",
            "description": "The space: each parameter's values, or its min and max.",
            "items": _obj(
                "A parameter, passed as --<name>=<value> and HPARAM_<NAME>.",
                {
                    "name": _s("Parameter name.", pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$"),
                    "type": _s("int, float or categorical.", enum=["int", "float", "categorical"]),
                    "values": {
                        "type": "array",
                        "description": "The values to try.",
                        "items": {"type": ["string", "number", "boolean"]},
                    },
                    "min": {"type": "number", "description": "Lowest value."},
                    "max": {"type": "number", "description": "Highest value."},
                    "step": _i("int grid: step between min and max.", 1),
                    "count": _i("float grid: number of points between min and max.", 1),
                    "scale": _s("linear or log.", enum=["linear", "log"]),
                },
                required=["name", "type"],
                allOf=[
                    {
                        "if": {"properties": {"type": {"const": kind}}},
                        "then": {"properties": {"values": {"items": {"type": item}}}},
                    }
                    for kind, item in (("int", "integer"), ("float", "number"))
                ],
            ),
        },
        "passAsArgs": _b("Pass the values as script arguments (besides HPARAM_* variables)."),
        "objective": _obj(
            "What `helm-mlops sweep best` ranks by.",
            {
                "metric": _s("MLflow metric name."),
                "goal": _s("minimize or maximize.", enum=["minimize", "maximize"]),
            },
        ),
    },
)

JOB = _obj(
    "A training job: a script (or an image and command), resources, distribution, sweep, schedule.",
    {
        "name": _name("Job name (DNS-1123 label, unique in the stack)."),
        "script": SCRIPT,
        "image": {
            **IMAGE_REF,
            "description": "Training image (default python:3.11-slim), e.g. "
            "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime.",
        },
        "command": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Command (instead of a script).",
        },
        "requirements": {
            "type": "array",
            "items": _s("A requirement line.", pattern=r"^\S[^\r\n]*$"),
            "description": "pip requirements, one line each.",
        },
        "indexUrl": _s("Package index (mirror) for the requirements."),
        "cpu": _quantity("CPU request and limit per pod."),
        "memory": _quantity("Memory request and limit per pod."),
        "gpus": _i("GPUs per pod.", 0, 16),
        "nodes": _i("Distributed: pods (torchrun nodes).", 1, 1000),
        "procsPerNode": _i("Distributed: processes per pod.", 1, 64),
        "operator": _s("Distributed: none (Indexed Job + torchrun), pytorchjob or trainjob.", enum=OPERATORS),
        "sweep": SWEEP,
        "schedule": _s("Cron schedule: retrain periodically (a CronJob)."),
        "experiment": _s("MLflow experiment name."),
        "trackingUri": _s("MLflow tracking URI; empty: the stack's MLflow (global.mlflow.trackingUri)."),
        "env": ENV,
        "volumes": {"type": "array", "items": VOLUME, "description": "Data volumes."},
        "secrets": SECRETS,
    },
    required=["name"],
)

MODEL = _obj(
    "The model to serve.",
    {
        "uri": _s(
            "Where the model is: models:/name@alias or models:/name/version (the stack's MLflow), "
            "s3://bucket/key, https://..., pvc://claim/path/in/claim, or inline (with `inline`)."
        ),
        "format": _s("Model format; empty: from the file name.", enum=FORMATS),
        "sha256": _s("Pin the file's sha256 (hex).", pattern=r"^([0-9a-f]{64})?$"),
        "trust": _b("Allow formats that run code on load (pickle, joblib, full torch modules)."),
        "trackingUri": _s("models:/ from another MLflow: its tracking URI (default: the stack's)."),
        "endpoint": _s("s3: endpoint URL; empty: the stack's MinIO/S3 when it has one, else AWS."),
        "region": _s("s3: region."),
        "existingSecret": SECRET_NAME,
        "inline": _obj(
            "A small model carried in the chart (at most about 1 MiB).",
            {"base64": _s("The file, base64-encoded."), "fileName": _s("Its file name.")},
        ),
    },
)

SERVICE = _obj(
    "An inference service.",
    {
        "name": _name("Service name (DNS-1123 label, unique in the stack)."),
        "runtime": _s("fastapi (helm-mlops' runtime), mlserver, bentoml or kserve.", enum=RUNTIMES),
        "model": MODEL,
        "image": {
            **IMAGE_REF,
            "description": "bentoml: the Bento image (required); other runtimes: override the runtime image.",
        },
        "replicas": _i("Replicas (without HPA).", 0, 100),
        "cpu": _quantity("CPU request and limit per pod."),
        "memory": _quantity("Memory request and limit per pod."),
        "gpus": _i("GPUs per pod.", 0, 16),
        "device": _s(
            "fastapi: where the model predicts: auto (a GPU when one is visible and the model's framework "
            "can use it, else the CPU), cpu, cuda or cuda:N (an error at start when it cannot be used); "
            "empty: auto.",
            pattern=DEVICE,
        ),
        "hpa": _obj(
            "Horizontal pod autoscaling on CPU.",
            {
                "enabled": _b("Scale between minReplicas and maxReplicas."),
                "minReplicas": _i("Fewest replicas.", 1, 100),
                "maxReplicas": _i("Most replicas.", 1, 100),
                "targetCPU": _i("Target CPU utilisation, percent.", 1, 100),
            },
        ),
        "ingress": INGRESS,
        "env": ENV,
        "secrets": SECRETS,
        "monitoring": _obj(
            "Model monitoring in the helm-mlops runtime (runtime fastapi): data quality and drift per "
            "feature against a reference sample, in /metrics and the monitoring alerts.",
            {
                "reference": _s(
                    "The reference sample (.npy, .csv with a header, .parquet), from the model's own "
                    "source: a path in its claim (pvc://), a key in its bucket (s3://), an https URL, or "
                    "an MLflow artifact URI (runs:/<run id>/reference.csv) for models:/ URIs.",
                    minLength=1,
                ),
                "feedback": _b(
                    "POST /v2/models/<name>/feedback with request ids and true labels: rolling accuracy "
                    "and its alert (classifiers). Each pod remembers its own predictions."
                ),
            },
            required=["reference"],
        ),
    },
    required=["name"],
)

LABELS = {
    "type": "object",
    "description": "Labels (Kubernetes label keys and values).",
    "propertyNames": {"type": "string", "pattern": LABEL_KEY, "maxLength": 317},
    "additionalProperties": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63},
}

MONITORING = _obj(
    "Prometheus and Grafana for every component (needs the Prometheus Operator, e.g. kube-prometheus-stack).",
    {
        "enabled": _b(
            "ServiceMonitors, alert rules (PrometheusRule) and Grafana dashboards (ConfigMaps) for MLflow, "
            "the training jobs and the inference services."
        ),
        "alerts": _b("Alert rules (PrometheusRule objects), with `enabled`."),
        "dashboards": _b(
            "Grafana dashboards as ConfigMaps for Grafana's sidecar (one per chart), with `enabled`."
        ),
        "labels": {
            **LABELS,
            "description": "Labels on the ServiceMonitors and PrometheusRules: what the Prometheus selects "
            "them by (kube-prometheus-stack's default: `release: <its release name>`).",
        },
        "prometheusNamespace": _s(
            "Namespace Prometheus runs in: the NetworkPolicies let its scrapes through.",
            pattern=DNS_LABEL,
            maxLength=63,
        ),
    },
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://helm-mlops.dev/schemas/answers-v1.json",
    "title": "helm-mlops answers (helm-mlops/v1)",
    "description": "What a stack holds: MLflow, training jobs and inference services. `helm-mlops generate` "
    "turns it into an umbrella chart.",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "name"],
    "properties": {
        "apiVersion": {"const": API_VERSION, "description": "The format's version."},
        "kind": {"const": KIND, "description": "Always Stack."},
        "name": _name("The stack's name: its chart name and the release name it installs as."),
        "description": _s("One line for the stack's Chart.yaml and README."),
        "global": _obj(
            "Settings every component shares.",
            {
                "namespace": _s("Namespace the stack installs into.", pattern=DNS_LABEL, maxLength=63),
                "imageRegistry": _s(
                    "Pull every image from this registry (host[:port][/path]) instead of its own.",
                    pattern=r"^([A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?)?$",
                ),
                "imagePullSecrets": {"type": "array", "items": SECRET_NAME, "description": "Pull secrets."},
                "storageClass": _optional_k8s_name(
                    "StorageClass of the volumes the stack creates; empty: the default."
                ),
                "labels": {
                    "type": "object",
                    "description": "Labels on every object (Kubernetes label keys and values).",
                    "propertyNames": {"type": "string", "pattern": LABEL_KEY, "maxLength": 317},
                    "additionalProperties": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63},
                },
                "strictSecurity": _b(
                    "Refuse to render configurations that expose data (see docs/security.md)."
                ),
            },
        ),
        "mlflow": MLFLOW,
        "monitoring": MONITORING,
        "training": _obj("Training jobs.", {"jobs": {"type": "array", "items": JOB}}),
        "inference": _obj("Inference services.", {"services": {"type": "array", "items": SERVICE}}),
    },
}
