"""The inference-service chart's values: what each runtime and model source renders, and the values
it must refuse (with the value named), on Helm 4 and Helm 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.charts import CHARTS, find, template, template_error
from tests.support.crds import load_crd_schemas, validate_custom_resource

CHART = CHARTS / "inference-service"
PVC = {
    "model": {
        "trustModel": True,
        "source": {"type": "pvc", "pvc": {"claimName": "models", "path": "iris/model.pkl"}},
    }
}


def _render(tmp_path: Path, values: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    return template(CHART, values=values, tmp_dir=tmp_path, **kw)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _model(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": {"source": source, **extra}}


S3 = {"type": "s3", "s3": {"bucket": "b", "key": "k/model.onnx"}}
BAD = [
    ({}, ["model.source.pvc.claimName is required"]),
    (
        {"model": {"source": {"type": "pvc", "pvc": {"claimName": "m", "path": "model.pkl"}}}},
        ["pickle", "model.trustModel=true", "model.sha256"],
    ),
    (
        {"model": {"source": {"type": "pvc", "pvc": {"claimName": "m", "path": "weights.bin"}}}},
        ["model.format: cannot tell the format"],
    ),
    (
        _model({"type": "s3", "s3": {"bucket": "b"}}),
        ["model.source.s3.bucket and model.source.s3.key are required"],
    ),
    (
        _model({"type": "https", "https": {"url": "ftp://x/model.onnx"}}),
        ["model.source.https.url must be an http(s) URL"],
    ),
    (
        _model({"type": "mlflow", "mlflow": {"uri": "iris", "trackingUri": "http://m:5000"}}),
        ["model.source.mlflow.uri must be models:/"],
    ),
    (
        _model({"type": "mlflow", "mlflow": {"uri": "models:/iris@prod"}}),
        ["model.source.mlflow.trackingUri (or global.mlflow.trackingUri) is required"],
    ),
    (_model({"type": "inline", "inline": {"fileName": "m.onnx"}}), ["model.source.inline.base64 is empty"]),
    (
        _model({"type": "inline", "inline": {"fileName": "m.onnx", "base64": "QUJD" * 300_000}}),
        ["ConfigMap holds at most 1 MiB", "model.source.type=pvc", "model.source.type=s3"],
    ),
    (
        {"runtime": "mlserver", **_model(S3)},
        ["runtime=mlserver has no runtime for onnx models", "runtime=fastapi"],
    ),
    (
        {**_model({"type": "s3", "s3": {"bucket": "b", "key": "m.bst"}})},
        ["runtime=fastapi does not load xgboost", "runtime=mlserver"],
    ),
    (
        {"runtime": "kserve", **_model({"type": "s3", "s3": {"bucket": "b", "key": "m.pt"}})},
        ["fastapi.prebuilt=true", "docker/runtime.Dockerfile"],
    ),
    (
        {"runtime": "kserve", "autoscaling": {"enabled": True}, **_model(S3)},
        ["autoscaling.enabled does not apply to runtime=kserve"],
    ),
    (
        {"runtime": "kserve", "kserve": {"minReplicas": 0}, **_model(S3)},
        ["kserve.minReplicas=0 (scale to zero) needs kserve.deploymentMode=Serverless"],
    ),
    (
        {
            "runtime": "kserve",
            **_model({"type": "inline", "inline": {"fileName": "m.onnx", "base64": "QUJD"}}),
        },
        ["inline cannot feed KServe"],
    ),
    ({"runtime": "bentoml"}, ["bentoml.image.repository and bentoml.image.tag are required"]),
    ({"runtime": "triton"}, ["runtime"]),
    ({**PVC, "model": {**PVC["model"], "sha256": "abc"}}, ["sha256"]),
    ({**PVC, "ingress": {"enabled": True}}, ["ingress.host is required"]),
    (
        {**PVC, "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 2}},
        ["autoscaling.maxReplicas must be >= autoscaling.minReplicas"],
    ),
    ({**PVC, "resources": {"limits": {"memory": "1GB"}}}, ["resources", "memory"]),
    # The fetcher's inputs: no secrets in the Deployment, no plain http without a pin or an explicit yes.
    (
        {**PVC, **_model({"type": "https", "https": {"url": "https://b.s3.x/m.onnx?X-Amz-Signature=abc"}})},
        ["model.source.https.url carries credentials", "model.source.https.existingSecret"],
    ),
    (
        _model({"type": "https", "https": {"url": "http://models.internal/m.onnx"}}),
        ["model.source.https: plain http", "model.sha256", "model.allowInsecureHttp=true"],
    ),
    (
        _model({"type": "s3", "s3": {"endpointUrl": "http://minio:9000", "bucket": "b", "key": "m.onnx"}}),
        ["model.source.s3: plain http"],
    ),
    (
        {**PVC, "fastapi": {"indexUrl": "https://u:p@pypi.internal/simple"}},
        ["fastapi.indexUrlExistingSecret"],
    ),
    # Models that are code: TorchScript and MLflow need trust too; a pin counts only where it is verified.
    (
        _model({"type": "pvc", "pvc": {"claimName": "m", "path": "scripted.pt"}}),
        [
            "a PyTorch model (TorchScript or a pickled module) is code",
            "model.trustModel=true",
            "model.sha256",
        ],
    ),
    (
        _model({"type": "mlflow", "mlflow": {"uri": "models:/w@prod", "trackingUri": "http://m:5000"}}),
        ["an MLflow model (pyfunc) is code", "registry alias", "model.trustModel=true"],
    ),
    (
        _model(
            {"type": "mlflow", "mlflow": {"uri": "models:/w@prod", "trackingUri": "http://m:5000"}},
            sha256="a" * 64,
        ),
        ["model.sha256 cannot pin an MLflow model"],
    ),
    (
        {
            "runtime": "mlserver",
            **_model({"type": "pvc", "pvc": {"claimName": "m", "path": "model.joblib"}}, sha256="a" * 64),
        },
        [
            "model.sha256 is not verified with runtime=mlserver and model.source.type=pvc",
            "model.trustModel=true",
        ],
    ),
    (
        {
            "runtime": "kserve",
            **_model({"type": "s3", "s3": {"bucket": "b", "key": "m.joblib"}}, sha256="a" * 64),
        },
        ["model.sha256 is not verified with runtime=kserve"],
    ),
]


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(("values", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_values_are_refused_with_the_value_named(
    helm_name: str, values: dict[str, Any], words: list[str], tmp_path: Path
) -> None:
    message = template_error(CHART, values, helm_name, tmp_path)
    for word in words:
        assert word in message, message


def test_fastapi_from_a_pvc(tmp_path: Path) -> None:
    docs = _render(tmp_path, {**PVC, "autoscaling": {"enabled": True}})
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    [install] = pod["initContainers"]  # no fetch: the claim is mounted read-only
    assert install["name"] == "install-deps"
    # The scikit-learn lock, hash-pinned, shipped in the code ConfigMap and mounted for pip.
    assert install["args"] == [
        "--require-hashes",
        "--only-binary=:all:",
        "--requirement",
        "/opt/helm-mlops/code/requirements.txt",
    ]
    lock = find(docs, "ConfigMap", "t-inference-service-code")["data"]["requirements.txt"]
    assert lock == (CHART / "files" / "requirements" / "sklearn.txt").read_text().rstrip("\n")
    assert {"/opt/helm-mlops/code", "/opt/helm-mlops/deps"} <= {
        m["mountPath"] for m in install["volumeMounts"]
    }
    server = pod["containers"][0]
    env = _env(server)
    assert env["HM_RUNTIME_MODEL"] == "/opt/helm-mlops/model-src/iris/model.pkl"
    assert env["HM_RUNTIME_FORMAT"] == "sklearn" and env["HM_RUNTIME_TRUST_MODEL"] == "true"
    assert server["ports"][0]["containerPort"] == 8000
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] == 600
    claim = next(v for v in pod["volumes"] if v["name"] == "model-pvc")
    assert claim["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)  # the seed's defaults
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert "replicas" not in find(docs, "Deployment")["spec"]


def test_s3_fetch_init_container_and_its_credentials(tmp_path: Path) -> None:
    values = _model(
        {
            "type": "s3",
            "s3": {
                "endpointUrl": "http://minio:9000",
                "bucket": "models",
                "key": "a/m.onnx",
                "existingSecret": "minio",
            },
        },
        sha256="a" * 64,
    )
    pod = find(_render(tmp_path, values), "Deployment")["spec"]["template"]["spec"]
    fetch = next(c for c in pod["initContainers"] if c["name"] == "fetch-model")
    assert fetch["command"][fetch["command"].index("--s3") + 1] == "models/a/m.onnx"
    assert fetch["command"][fetch["command"].index("--sha256") + 1] == "a" * 64
    assert _env(fetch)["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "minio", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert _env(pod["containers"][0])["HM_RUNTIME_MODEL"] == "/opt/helm-mlops/model/m.onnx"
    # The server mounts the fetched model read-only; only the init container writes it.
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model")
    assert mount["readOnly"] is True


def test_inline_model_is_binary_data(tmp_path: Path) -> None:
    docs = _render(
        tmp_path, _model({"type": "inline", "inline": {"fileName": "m.onnx", "base64": "AAEC/w=="}})
    )
    cm = find(docs, "ConfigMap", "t-inference-service-model")
    assert cm["binaryData"] == {"m.onnx": "AAEC/w=="} and "data" not in cm


def test_mlserver_model_settings_by_format(tmp_path: Path) -> None:
    docs = _render(
        tmp_path,
        {
            "runtime": "mlserver",
            "mlserver": {"adaptiveBatching": {"maxBatchSize": 16, "maxBatchTime": 0.005}},
            **PVC,
        },
    )
    code = find(docs, "ConfigMap", "t-inference-service-code")["data"]
    import json

    settings = json.loads(code["model-settings.json"])
    assert settings == {
        "name": "model",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "/opt/helm-mlops/model-src/iris/model.pkl"},
        "max_batch_size": 16,
        "max_batch_time": 0.005,
    }
    assert json.loads(code["settings.json"])["http_port"] == 8080
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert server["image"] == "seldonio/mlserver:1.7.1"
    assert [p["containerPort"] for p in server["ports"]] == [8080, 8081, 8082]
    mlflow = _render(
        tmp_path,
        {
            "runtime": "mlserver",
            **_model(
                {"type": "mlflow", "mlflow": {"uri": "models:/w@prod", "trackingUri": "http://m:5000"}},
                trustModel=True,
            ),
        },
    )
    settings = json.loads(
        find(mlflow, "ConfigMap", "t-inference-service-code")["data"]["model-settings.json"]
    )
    assert settings["implementation"] == "mlserver_mlflow.MLflowRuntime"  # MLflow 3 sklearn models are .skops


def test_bentoml(tmp_path: Path) -> None:
    docs = _render(
        tmp_path, {"runtime": "bentoml", "bentoml": {"image": {"repository": "r/iris", "tag": "1"}}}
    )
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert server["image"] == "r/iris:1" and server["ports"][0]["containerPort"] == 3000
    assert (
        server["readinessProbe"]["httpGet"]["path"] == "/readyz"
        and server["livenessProbe"]["httpGet"]["path"] == "/livez"
    )


@pytest.mark.parametrize(
    ("source", "fmt", "uri"),
    [
        (
            {"type": "s3", "s3": {"bucket": "b", "key": "iris/model.joblib"}},
            "sklearn",
            "s3://b/iris/model.joblib",
        ),
        (
            {"type": "pvc", "pvc": {"claimName": "models", "path": "/x/model.onnx"}},
            "onnx",
            "pvc://models/x/model.onnx",
        ),
        ({"type": "https", "https": {"url": "https://h/m.onnx"}}, "onnx", "https://h/m.onnx"),
        # KServe cannot fetch models:/ (refused in test_chart_hardening): the artifact's own location.
        (
            {"type": "mlflow", "mlflow": {"uri": "models:/iris@champion", "trackingUri": "http://m"}},
            "mlflow",
            "s3://mlflow/1/models/m-abc/artifacts",
        ),
    ],
)
def test_kserve_builtin_formats(source: dict[str, Any], fmt: str, uri: str, tmp_path: Path) -> None:
    kserve: dict[str, Any] = {"canaryTrafficPercent": 20}
    if source["type"] == "mlflow":
        kserve["storageUri"] = uri
    docs = _render(tmp_path, {"runtime": "kserve", "kserve": kserve, **_model(source, trustModel=True)})
    isvc = find(docs, "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"]["modelFormat"] == {"name": fmt} and predictor["model"]["storageUri"] == uri
    assert predictor["canaryTrafficPercent"] == 20 and predictor["scaleMetric"] == "cpu"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert not [d for d in docs if d["kind"] in ("Deployment", "Service", "HorizontalPodAutoscaler")]


def test_kserve_serves_pt_with_our_runtime_as_custom_predictor(tmp_path: Path) -> None:
    values = {
        "runtime": "kserve",
        "fastapi": {"prebuilt": True, "image": {"repository": "r/runtime", "tag": "1"}},
        "kserve": {"deploymentMode": "Serverless", "minReplicas": 0},
        **_model({"type": "s3", "s3": {"bucket": "b", "key": "m/scripted.pt"}}, sha256="b" * 64),
    }
    isvc = find(_render(tmp_path, values), "InferenceService")
    [container] = isvc["spec"]["predictor"]["containers"]
    env = _env(container)
    assert (
        env["STORAGE_URI"] == "s3://b/m/scripted.pt" and env["HM_RUNTIME_MODEL"] == "/mnt/models/scripted.pt"
    )
    assert container["image"] == "r/runtime:1" and "model" not in isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


@pytest.mark.parametrize("custom", [False, True], ids=["builtin", "custom-container"])
def test_kserve_predictor_carries_the_shared_pod_values(
    custom: bool, tmp_path: Path, shared_crds: Path
) -> None:
    """The predictor gets the shared values, in fields KServe's CRD defines."""
    key = "m/scripted.pt" if custom else "m/model.joblib"
    spread = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
    values = {
        "runtime": "kserve",
        **_model({"type": "s3", "s3": {"bucket": "b", "key": key}}, trustModel=True),
        "fastapi": {"prebuilt": True, "image": {"repository": "r/runtime", "tag": "1"}},
        "global": {"imagePullSecrets": [{"name": "shared"}]},
        "imagePullSecrets": [{"name": "own"}],
        "env": [{"name": "A", "value": "1"}],
        "envFrom": [{"configMapRef": {"name": "extra"}}],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "company-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/company"}],
        "podLabels": {"team": "serving"},
        "podAnnotations": {"example.com/owner": "serving"},
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "topologySpreadConstraints": [spread],
        "priorityClassName": "serving-high",
    }
    isvc = find(_render(tmp_path, values), "InferenceService")
    schema = load_crd_schemas(shared_crds)[(isvc["apiVersion"], "InferenceService")]
    assert validate_custom_resource(isvc, schema) == []
    predictor = isvc["spec"]["predictor"]
    assert predictor["imagePullSecrets"] == [{"name": "shared"}, {"name": "own"}]
    assert predictor["labels"] == {"team": "serving"}
    assert predictor["annotations"] == {"example.com/owner": "serving"}
    assert predictor["nodeSelector"] == {"pool": "gpu"} and predictor["priorityClassName"] == "serving-high"
    assert predictor["tolerations"] == values["tolerations"] and predictor["affinity"] == {"nodeAffinity": {}}
    assert predictor["topologySpreadConstraints"] == [spread]
    assert predictor["volumes"] == values["extraVolumes"]
    container = predictor["containers"][0] if custom else predictor["model"]
    assert _env(container)["A"] == "1" and container["envFrom"] == [{"configMapRef": {"name": "extra"}}]
    assert container["volumeMounts"] == values["extraVolumeMounts"]


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(
    "values",
    [
        # The helm-mlops runtime verifies the pin itself, from a private copy.
        _model({"type": "pvc", "pvc": {"claimName": "m", "path": "model.joblib"}}, sha256="a" * 64),
        # The fetch init container verifies what it downloads into the pod's own emptyDir.
        {
            "runtime": "mlserver",
            **_model({"type": "s3", "s3": {"bucket": "b", "key": "m.joblib"}}, sha256="a" * 64),
        },
    ],
    ids=["fastapi-pvc", "mlserver-s3"],
)
def test_a_pin_stands_for_trust_where_it_is_verified(
    helm_name: str, values: dict[str, Any], tmp_path: Path
) -> None:
    docs = template(CHART, values=values, tmp_dir=tmp_path, helm_name=helm_name)
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    checks = [c for c in pod.get("initContainers", []) + pod["containers"] if "a" * 64 in str(c)]
    assert checks, "the pin must reach the container that verifies it"


def test_fetch_limits_and_a_url_from_a_secret(tmp_path: Path) -> None:
    url = "https://b.s3.example/m.onnx?X-Amz-Signature=abc"
    values = {
        "model": {
            "maxSize": "2Gi",
            "source": {
                "type": "https",
                "https": {"existingSecret": "model-url", "existingSecretKey": "u", "fileName": "m.onnx"},
            },
        },
        "fastapi": {"indexUrlExistingSecret": "pypi", "indexUrlExistingSecretKey": "index"},
    }
    docs = _render(tmp_path, values)
    assert url not in str(docs)
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    fetch = next(c for c in pod["initContainers"] if c["name"] == "fetch-model")
    assert fetch["command"][fetch["command"].index("--url-env") + 1] == "HM_FETCH_URL"
    assert fetch["command"][fetch["command"].index("--max-size") + 1] == "2Gi"
    assert _env(fetch)["HM_FETCH_URL"] == {"secretKeyRef": {"name": "model-url", "key": "u"}}
    assert next(v for v in pod["volumes"] if v["name"] == "model")["emptyDir"] == {"sizeLimit": "2Gi"}
    install = next(c for c in pod["initContainers"] if c["name"] == "install-deps")
    assert _env(install)["PIP_INDEX_URL"] == {"secretKeyRef": {"name": "pypi", "key": "index"}}


# fastapi.workers: the runtime's worker processes (HM_RUNTIME_WORKERS) ------------------------------

MONITORED = {"monitoring": {"enabled": True, "reference": {"file": "iris/reference.csv"}}}
TORCH_KSERVE = {
    "runtime": "kserve",
    "fastapi": {"prebuilt": True, "image": {"repository": "r/runtime", "tag": "1"}},
    **_model({"type": "s3", "s3": {"bucket": "b", "key": "m/scripted.pt"}}, trustModel=True),
}


def _workers_and_cpu_limit(docs: list[dict[str, Any]]) -> tuple[str, Any]:
    """HM_RUNTIME_WORKERS and the CPU limit of the container the helm-mlops runtime runs in."""
    if any(d["kind"] == "InferenceService" for d in docs):
        [server] = find(docs, "InferenceService")["spec"]["predictor"]["containers"]
    else:
        server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return _env(server)["HM_RUNTIME_WORKERS"], server.get("resources", {}).get("limits", {}).get("cpu")


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(
    ("values", "workers"),
    [
        ({}, "1"),  # the chart's default limit, cpu "1"
        ({"resources": {"limits": {"cpu": "2"}}}, "2"),
        ({"resources": {"limits": {"cpu": 4}}}, "4"),
        # Rounded down: two workers under a 1.5-CPU quota get throttled.
        ({"resources": {"limits": {"cpu": "1500m"}}}, "1"),
        ({"resources": {"limits": {"cpu": "2.5"}}}, "2"),
        ({"resources": {"limits": {"cpu": 2.5}}}, "2"),
        ({"resources": {"limits": {"cpu": "3000m"}}}, "3"),
        ({"resources": {"limits": {"cpu": "500m"}}}, "1"),  # at least 1
        # No CPU limit: 1, not the runtime's `auto` (a worker per node core).
        ({"resources": {"limits": None}}, "1"),
        ({"resources": {"limits": {"cpu": "2"}}, "fastapi": {"workers": 3}}, "3"),
        ({"resources": {"limits": None}, "fastapi": {"workers": 6}}, "6"),
        # Model monitoring keeps one worker whatever the limit; an explicit 1 is accepted with it.
        ({"resources": {"limits": {"cpu": "4"}}, **MONITORED}, "1"),
        ({"resources": {"limits": {"cpu": "4"}}, "fastapi": {"workers": 1}, **MONITORED}, "1"),
        # A GPU: one worker (each would hold the model on it), unless given.
        ({"resources": {"limits": {"cpu": "4"}}, "gpu": {"count": 1}}, "1"),
        ({"resources": {"limits": {"cpu": "4"}}, "gpu": {"count": 1}, "fastapi": {"workers": 2}}, "2"),
        # The same runtime as KServe's custom predictor (torch) gets the same rule.
        ({**TORCH_KSERVE, "resources": {"limits": {"cpu": "3"}}}, "3"),
        ({**TORCH_KSERVE, "fastapi": {**TORCH_KSERVE["fastapi"], "workers": 2}}, "2"),
    ],
    ids=lambda x: str(x) if isinstance(x, str) else None,
)
def test_workers_follow_the_cpu_limit(
    helm_name: str, values: dict[str, Any], workers: str, tmp_path: Path
) -> None:
    if "model" not in values:
        values = {**PVC, **values}
    docs = template(CHART, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    found, limit = _workers_and_cpu_limit(docs)
    assert found == workers
    if values.get("resources", {}).get("limits", {}) is None:
        assert limit is None  # the limit is gone for real, not left at the chart's default
    elif "cpu" in values.get("resources", {}).get("limits", {}):
        assert str(limit) == str(values["resources"]["limits"]["cpu"])


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {**PVC, **MONITORED, "fastapi": {"workers": 3}},
            ["fastapi.workers=3 with monitoring.enabled=true:", "wrong totals", "Remove fastapi.workers"],
        ),
        (
            {
                **PVC,
                "monitoring": {**MONITORED["monitoring"], "feedback": {"enabled": True}},
                "fastapi": {"workers": 2},
            },
            ["fastapi.workers=2 with monitoring.enabled=true and monitoring.feedback.enabled=true"],
        ),
        (
            {"runtime": "mlserver", **PVC, "fastapi": {"workers": 2}},
            ["fastapi.workers=2: only the helm-mlops runtime takes workers", "mlserver.parallelWorkers"],
        ),
        (
            {"runtime": "kserve", **_model(S3, trustModel=True), "fastapi": {"workers": 2}},
            ["fastapi.workers=2: only the helm-mlops runtime takes workers", "runtime=kserve"],
        ),
    ],
    ids=["monitoring", "feedback", "mlserver", "kserve-builtin"],
)
def test_workers_refused_where_they_cannot_apply(
    helm_name: str, values: dict[str, Any], words: list[str], tmp_path: Path
) -> None:
    message = template_error(CHART, values, helm_name, tmp_path)
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("bad", [0, -1, "two", "2", 1.5])
def test_workers_schema_refuses_what_is_not_a_count(helm_name: str, bad: Any, tmp_path: Path) -> None:
    error = template_error(CHART, {**PVC, "fastapi": {"workers": bad}}, helm_name, tmp_path)
    assert "fastapi.workers" in error or "/fastapi/workers" in error, error
    assert "schema" in error, error  # refused by values.schema.json, before any template runs


LOCKS = CHART / "files" / "requirements"


def _entries(text: str) -> list[tuple[str, list[str]]]:
    """(name, the lines below it) for every pinned package of a uv/pip-compile lock."""
    entries: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line and line[0].isalnum():
            entries.append((line.split("==", 1)[0].lower(), []))
        elif entries:
            entries[-1][1].append(line.strip())
    return entries


@pytest.mark.parametrize("lock", sorted(p.stem for p in LOCKS.glob("*.in")))
def test_each_lock_is_compiled_from_its_input_with_hashes(lock: str) -> None:
    """files/requirements/<format>.txt (hack/lock-runtime-deps.sh) pins every package of <format>.in
    and its dependencies, each with sha256 hashes: change an .in, and this fails until it is re-locked."""
    import re

    wanted = {
        re.split(r"[<>=\[ ]", line.strip(), maxsplit=1)[0].lower()
        for line in (LOCKS / f"{lock}.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    entries = _entries((LOCKS / f"{lock}.txt").read_text())
    assert entries and all(
        any(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", ln) for ln in below) for _, below in entries
    ), "every pinned package carries its hashes"
    direct = {name for name, below in entries if f"-r {lock}.in" in " ".join(below)}
    assert direct == wanted, (
        f"{lock}.txt was not compiled from the current {lock}.in: run hack/lock-runtime-deps.sh"
    )


def test_the_mlflow_lock_holds_what_mlflow_saves_sklearn_models_with(tmp_path: Path) -> None:
    """A scikit-learn model saved by MLflow with its defaults (skops since MLflow 3) loads in a pod: the
    module of its serialization format is pinned in the mlflow lock, which install-deps installs."""
    import mlflow.sklearn
    import yaml
    from sklearn.linear_model import LogisticRegression

    mlflow.sklearn.save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), str(tmp_path / "m"))
    flavor = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["sklearn"]
    module = {"skops": "skops", "cloudpickle": "cloudpickle", "pickle": None}[flavor["serialization_format"]]
    pinned = {name for name, _ in _entries((LOCKS / "mlflow.txt").read_text())}
    assert {"mlflow-skinny", "scikit-learn"} <= pinned
    assert module is None or module in pinned, (
        f"{module} (MLflow's {flavor['serialization_format']}) is not in mlflow.txt"
    )
