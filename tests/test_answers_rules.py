"""The answers format's rules, layering and the seed product's request shapes (pure: no helm)."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from generator import answers, seed
from generator.answers import Layers, merge_layers, validate
from generator.values import deep_merge


def stack(**sections: Any) -> dict[str, Any]:
    base = answers.defaults("3.17.2")
    return deep_merge(base, sections) if sections else base


def problems(data: dict[str, Any]) -> dict[str, str]:
    return {p.path: p.message for p in validate(data)}


def service(**extra: Any) -> dict[str, Any]:
    return {"name": "svc", "model": {"uri": "s3://models/iris.onnx"}, **extra}


TORCH_GPU: dict[str, Any] = {
    "image": "registry.example.com/runtime:1-torch",
    "model": {"uri": "s3://m/net.pt", "trust": True},
}


def job(**extra: Any) -> dict[str, Any]:
    return {"name": "fit", "script": {"content": "print(1)"}, **extra}


def test_the_defaults_are_valid() -> None:
    assert validate(stack()) == []


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"name": "Bad_Name"}, "name", '"Bad_Name" is not a name: a lower-case letter first'),
        ({"name": "x" * 31}, "name", "at most 30 characters"),
        ({"mlflow": {"replicas": 2}}, "mlflow.replicas", "must be 1 with backendStore.type sqlite (got 2)"),
        ({"mlflow": {"replicas": "two"}}, "mlflow.replicas", '"two" is not an integer'),
        ({"mlflow": {"cpu": "lots"}}, "mlflow.cpu", '"lots" is not a Kubernetes quantity, e.g. 500m'),
        ({"mlflow": {"memory": "0"}}, "mlflow.memory", "greater than zero"),
        ({"mlflow": {"version": "2.9.0"}}, "mlflow.version", "oldest version the chart supports (3.9.0)"),
        ({"mlflow": {"version": "latest"}}, "mlflow.version", '"latest" is not a version like 3.17.2'),
        ({"mlflow": {"backendStore": {"type": "postgresql"}}}, "mlflow.backendStore.host", "required"),
        ({"mlflow": {"backendStore": {"type": "postgres"}}}, "mlflow.backendStore.type", "is not one of"),
        ({"mlflow": {"artifactStore": {"type": "s3"}}}, "mlflow.artifactStore.bucket", "required with"),
        ({"mlflow": {"ingress": {"enabled": True, "tls": {"enabled": True}}}}, "mlflow.ingress.host", "TLS needs a host"),  # noqa: E501
        ({"mlflow": {"podDisruptionBudget": True}}, "mlflow.podDisruptionBudget", "needs mlflow.replicas >= 2"),  # noqa: E501
        ({"mlflow": {"tracking": True}}, "mlflow", "unknown key(s) tracking"),
        ({"apiVersion": "helm-mlops/v2"}, "apiVersion", 'must be "helm-mlops/v1"'),
    ],
)  # fmt: skip
def test_each_rule_names_its_field(change: dict[str, Any], path: str, words: str) -> None:
    found = problems(stack(**change))
    assert path in found, found
    assert words in found[path], found[path]


@pytest.mark.parametrize(
    ("svc", "path", "words"),
    [
        (service(hpa={"enabled": True, "minReplicas": 3, "maxReplicas": 2}), "hpa.maxReplicas", "must be >= minReplicas (3)"),  # noqa: E501
        (service(model={"uri": "s3://models/iris.pkl"}), "model.trust", "is code"),
        (service(model={"uri": "s3://models/iris.pkl", "sha256": "0" * 64}), None, None),
        (service(runtime="mlserver", model={"uri": "pvc://m/iris.pkl", "sha256": "0" * 64}), "model.sha256", "reads the file unchecked"),  # noqa: E501
        (service(model={"uri": "models:/iris@prod"}), "model.trust", "MLflow model"),
        (service(model={"uri": "models:/iris@prod", "trust": True, "sha256": "0" * 64}), "model.sha256", "cannot pin an MLflow model"),  # noqa: E501
        (service(model={"uri": "s3://models/model.bin"}), "model.format", "cannot tell the format"),
        (service(model={"uri": "ftp://x/model.onnx"}), "model.uri", "is not models:/"),
        (service(model={"uri": "https://u:p@example.com/m.onnx"}), "model.uri", "carries credentials"),
        (service(model={"uri": "http://example.com/m.onnx"}), "model.uri", "plain http"),
        (service(gpus=1), "image", "has no CUDA"),
        (service(runtime="mlserver", model={"uri": "s3://m/iris.onnx"}), "runtime", "mlserver has no runtime for onnx"),  # noqa: E501
        (service(runtime="bentoml"), "image", "needs the Bento's image"),
        (service(runtime="kserve", model={"inline": {"base64": "AAAA", "fileName": "m.onnx"}}), "model", "cannot take an inline model"),  # noqa: E501
        (service(runtime="kserve", model={"uri": "models:/iris@champion", "trust": True}), "model.uri", "kserve cannot fetch MLflow URIs"),  # noqa: E501
        (service(model={"uri": "s3://m/iris.onnx"}, gpus=1, image="r/rt:1", device="cuda"), "device", "installs the CPU onnxruntime"),  # noqa: E501
        (service(model={"uri": "s3://m/m.pt", "trust": True}, gpus=1, image="r/rt:1", device="cuda\n"), "device", "surrounding whitespace"),  # noqa: E501
        (service(model={"inline": {"base64": "A" * 1_000_004, "fileName": "m.onnx"}}), "model.inline", "PVC"),
        (service(model={"inline": {"base64": "ä", "fileName": "m.onnx"}}), "model.inline.base64", "is not base64"),  # noqa: E501
        (service(model={"inline": {"base64": "AAA", "fileName": "m.onnx"}}), "model.inline.base64", "padded with ="),  # noqa: E501
        (service(model={"inline": {"base64": "AAAA\nAA==\n", "fileName": "m.onnx"}}), None, None),
        (service(ingress={"enabled": True, "host": "Not A Host"}), "ingress.host", "is not a DNS name"),
        (service(cpu="-1"), "cpu", "greater than zero"),
        (service(device="gpu"), "device", '"gpu" is not a device: auto, cpu, cuda or cuda:N'),
        (service(device="cuda:-1"), "device", "is not a device"),
        (service(device="cuda", **TORCH_GPU), "device", "needs a GPU in the pod: set gpus"),
        (service(device="cuda:1", gpus=1, **TORCH_GPU), "device", "cuda:1 is out of range with gpus: 1 (cuda:0 to cuda:0)"),  # noqa: E501
        (service(device="cuda", gpus=1, image="r.example.com/rt:1", model={"uri": "s3://m/iris.pkl", "trust": True}), "device", "sklearn models predict on the CPU only"),  # noqa: E501
        (service(device="cuda", runtime="mlserver", model={"uri": "s3://m/iris.pkl", "trust": True}), "device", "runtime mlserver does not take a device"),  # noqa: E501
        (service(device="cuda:1", gpus=2, **TORCH_GPU), None, None),
        (service(device="cpu", model={"uri": "s3://m/iris.pkl", "trust": True}), None, None),
    ],
)  # fmt: skip
def test_inference_rules(svc: dict[str, Any], path: str | None, words: str | None) -> None:
    mlflow_off = {"mlflow": {"enabled": False}} if "models:/" not in str(svc) else {}
    found = problems(stack(inference={"services": [svc]}, **mlflow_off))
    if path is None:
        assert found == {}
        return
    full = f"inference.services[0].{path}"
    assert full in found, found
    assert words is not None and words in found[full], found[full]


def test_kserve_cannot_read_the_in_cluster_minio_secret_key_names() -> None:
    """KServe's storage initializer reads AWS_* keys; the in-cluster MinIO Secret names them otherwise."""
    minio = {"artifactStore": {"type": "minio", "bucket": "mlflow"}}
    svc = service(runtime="kserve")
    found = problems(stack(mlflow=minio, inference={"services": [svc]}))
    assert "AWS_ACCESS_KEY_ID" in found["inference.services[0].model.uri"], found
    svc_fastapi = service()
    assert problems(stack(mlflow=minio, inference={"services": [svc_fastapi]})) == {}


def test_a_key_with_spaces_around_it_is_shown_quoted() -> None:
    """`enabled ` (a trailing space) is not `enabled`: the message shows the key as JSON."""
    found = [p.message for p in validate(stack(**{"enabled ": None}))]
    assert any(m.startswith('unknown key(s) "enabled "; allowed: ') for m in found), found


def test_models_uri_needs_mlflow_or_a_tracking_uri() -> None:
    svc = service(model={"uri": "models:/iris@prod", "trust": True})
    found = problems(stack(mlflow={"enabled": False}, inference={"services": [svc]}))
    assert "MLflow in the stack" in found["inference.services[0].model.uri"]
    svc["model"]["trackingUri"] = "http://mlflow.other:5000"
    assert problems(stack(mlflow={"enabled": False}, inference={"services": [svc]})) == {}


@pytest.mark.parametrize(
    ("one", "path", "words"),
    [
        (job(script={}), "script", "needs file"),
        (job(command=["python", "x.py"]), "command", "not both"),
        ({"name": "fit"}, "", "needs script"),
        (job(gpus=1), "image", "CUDA-capable image"),
        (job(gpus=1, image="cuda:12", procsPerNode=2, nodes=2), "procsPerNode", "only 1 GPU(s)"),
        (job(schedule="every day"), "schedule", "not a cron schedule"),
        (job(nodes=2, schedule="0 3 * * *"), "schedule", "cannot be scheduled"),
        (job(volumes=[{"name": "d", "mountPath": "/d"}]), "volumes[0]", "exactly one of"),
        (job(sweep={"parameters": [{"name": "lr", "type": "float", "min": 1, "max": 0.1}]}), "sweep", ""),
        (job(env={"1BAD": "x"}), "env", "\"1BAD\" is not an environment variable name"),
        (job(requirements=["numpy", "--index-url=https://x/simple"]), "requirements[1]", "pip option"),
        (job(requirements=["-r /etc/passwd"]), "requirements[0]", "pip option"),
        (job(requirements=["numpy\tscipy"]), "requirements[0]", "control character"),
    ],
)  # fmt: skip
def test_training_rules(one: dict[str, Any], path: str, words: str) -> None:
    found = problems(stack(training={"jobs": [one]}))
    full = "training.jobs[0]" + (f".{path}" if path else "")
    hits = {k: v for k, v in found.items() if k.startswith(full)}
    assert hits, found
    assert any(words in v for v in hits.values()), hits


def test_names_are_unique_across_jobs_and_services_and_not_reserved() -> None:
    data = stack(
        training={"jobs": [job(name="iris"), job(name="mlflow")]},
        inference={"services": [service(name="iris")]},
    )
    found = problems(data)
    assert "is already the name of training.jobs[0]" in found["inference.services[0].name"]
    assert "reserved" in found["training.jobs[1].name"]


def test_every_problem_is_reported_at_once() -> None:
    data = stack(
        mlflow={"replicas": 3, "ingress": {"enabled": True, "tls": {"enabled": True}}},
        inference={"services": [service(hpa={"enabled": True, "minReplicas": 4, "maxReplicas": 1})]},
        training={"jobs": [job(schedule="never")]},
    )
    found = problems(data)
    assert set(found) >= {
        "mlflow.replicas",
        "mlflow.ingress.host",
        "inference.services[0].hpa.maxReplicas",
        "training.jobs[0].schedule",
    }
    with pytest.raises(answers.InvalidAnswers) as caught:
        answers.check(data)
    assert caught.value.exit_code == 2 and f"{len(found)} problem(s)" in str(caught.value)


def test_layers_apply_in_order_defaults_preset_file_set_interactive() -> None:
    layers = Layers(
        base=stack(),
        preset={"name": "from-preset", "mlflow": {"cpu": "2", "memory": "4Gi"}, "global": {"namespace": "p"}},
        file={"mlflow": {"cpu": "3"}, "global": {"namespace": "f"}},
        sets=[("--set", "mlflow.cpu=4"), ("--set", "global.namespace=s")],
        interactive={"global": {"namespace": "i"}},
    )
    merged = merge_layers(layers)
    assert merged["name"] == "from-preset"  # only the preset set it
    assert merged["mlflow"]["memory"] == "4Gi"  # the preset over the defaults
    assert merged["mlflow"]["cpu"] == 4  # --set over the file (typed like helm's --set)
    assert merged["global"]["namespace"] == "i"  # interactive over everything
    assert merged["mlflow"]["backendStore"] == {"type": "sqlite"}  # defaults kept below
    assert validate(merged) == []


# Seed-shaped requests -------------------------------------------------------------------------------------


def test_the_seed_inference_request_maps_and_pins_the_inline_model() -> None:
    model = b"\x08\x01fake-onnx-bytes"
    request = {
        "name": "Iris Model",
        "namespace": "team-a",
        "modelFile": base64.b64encode(model).decode(),
        "modelFileName": "iris.onnx",
        "runtime": "fastapi",
        "cpu": "500m",
        "memory": "1Gi",
        "replicas": 2,
        "hpa": {"enabled": True, "minReplicas": 2, "maxReplicas": 5, "targetCPU": 60},
        "ingress": {"enabled": True, "host": "iris.example.com", "path": "/", "tls": True},
        "createdBy": "ui",
    }
    assert seed.detect(request) == "inference"
    mapped = seed.to_answers("inference", request)
    svc = mapped.answers["inference"]["services"][0]
    assert svc["name"] == "iris-model" and mapped.answers["global"]["namespace"] == "team-a"
    assert svc["model"]["sha256"] == hashlib.sha256(model).hexdigest()
    assert svc["hpa"] == {"enabled": True, "minReplicas": 2, "maxReplicas": 5, "targetCPU": 60}
    assert svc["ingress"] == {
        "enabled": True,
        "host": "iris.example.com",
        "path": "/",
        "tls": {"enabled": True},
    }
    assert any("createdBy" in note for note in mapped.notes)
    full = answers.merge_layers(Layers(base=stack(), file=mapped.answers))
    assert validate(full) == []


def test_a_seed_model_too_big_to_travel_inline_is_refused_with_the_fix() -> None:
    request = {
        "name": "big",
        "modelFile": base64.b64encode(b"x" * 900_000).decode(),
        "modelFileName": "m.onnx",
    }
    mapped = seed.to_answers("inference", request)
    found = problems(answers.merge_layers(Layers(base=stack(), file=mapped.answers)))
    message = found["inference.services[0].model.inline"]
    assert "too big to carry inline" in message and "PVC" in message and "S3" in message


def test_seed_mlflow_credentials_become_secrets_not_answers() -> None:
    request = {
        "namespace": "ml",
        "backendStore": {"type": "postgresql", "host": "db", "user": "u", "password": "db-pass-123"},
        "artifactStore": {"type": "s3", "bucket": "b", "region": "eu-west-1", "accessKey": "AKIA1", "secretKey": "sk-456"},  # noqa: E501
        "trackingUI": False,
        "ingress": {"enabled": True, "host": "mlflow.example.com", "tls": True},
    }  # fmt: skip
    assert seed.detect(request) == "mlflow"
    mapped = seed.to_answers("mlflow", request)
    text = repr(mapped.answers)
    for secret in ("db-pass-123", "AKIA1", "sk-456"):
        assert secret not in text
    m = mapped.answers["mlflow"]
    assert m["serviceName"] == "mlflow-service" and m["ui"] is False
    assert m["cpu"] == "1" and m["memory"] == "2Gi"  # the seed wizard's defaults
    assert mapped.secrets[m["backendStore"]["existingSecret"]] == {"password": "db-pass-123"}
    assert mapped.secrets[m["artifactStore"]["existingSecret"]]["AWS_SECRET_ACCESS_KEY"] == "sk-456"


def test_seed_training_request_decodes_a_base64_script() -> None:
    script = "import mlflow\nprint('train')\n"
    request = {
        "name": "fit",
        "namespace": "ml",
        "script": base64.b64encode(script.encode()).decode(),
        "cpu": "1",
        "memory": "2Gi",
        "gpu": 0,
        "env": {"EPOCHS": "3"},
        "volumeMounts": [{"name": "data", "mountPath": "/data", "claimName": "datasets"}],
    }
    assert seed.detect(request) == "training"
    mapped = seed.to_answers("training", request)
    one = mapped.answers["training"]["jobs"][0]
    assert one["script"]["content"] == script
    assert one["trackingUri"] == "http://mlflow-service.ml.svc.cluster.local:5000"
    assert one["volumes"] == [{"name": "data", "mountPath": "/data", "claimName": "datasets"}]
    assert validate(answers.merge_layers(Layers(base=stack(), file=mapped.answers))) == []


def test_answers_are_not_taken_for_seed_requests() -> None:
    assert seed.detect({"apiVersion": "helm-mlops/v1", "name": "x", "script": "x"}) is None
    assert seed.detect({"name": "x"}) is None


def test_validate_does_not_change_its_input() -> None:
    data = stack(inference={"services": [service()]}, mlflow={"enabled": False})
    before = copy.deepcopy(data)
    validate(data)
    assert data == before


@pytest.mark.parametrize(
    "change",
    [
        {"mlflow": {"artifactStore": {"type": "s3", "bucket": "bkt", "endpoint": "https://key:Sec1@s3.example.com"}}},
        {"training": {"jobs": [job(trackingUri="https://u:Sec2@mlflow.example.com")]}},
        {"training": {"jobs": [job(indexUrl="https://u:Sec3@pypi.example.com/simple")]}},
        {"inference": {"services": [service(model={"uri": "s3://b/m.onnx", "endpoint": "https://k:Sec4@m.example.com"})]}},
    ],
)  # fmt: skip
def test_urls_never_carry_credentials_and_messages_never_show_them(change: dict[str, Any]) -> None:
    with pytest.raises(answers.InvalidAnswers) as caught:
        answers.check(stack(**change))
    text = str(caught.value)
    assert "carries a user name or password" in text and "existingSecret" in text
    assert "Sec" not in text.replace("existingSecret", "")


def test_names_start_with_a_letter_as_service_names_must() -> None:
    found = problems(stack(name="1team", inference={"services": [service(name="2svc")]}))
    assert "a lower-case letter first" in found["name"]
    assert "a lower-case letter first" in found["inference.services[0].name"]


def test_a_script_too_big_for_its_configmap_is_refused() -> None:
    found = problems(stack(training={"jobs": [job(script={"content": "#" * 950_000})]}))
    assert "ConfigMap" in found["training.jobs[0].script"]
    # The chart's limit, not a ConfigMap's 1 MiB (which the message used to give).
    assert "at most 900,000 bytes" in found["training.jobs[0].script"]
    assert not problems(stack(training={"jobs": [job(script={"content": "#" * 900_000})]}))
