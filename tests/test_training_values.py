"""The training-job chart's values: what each group renders, and the values it must refuse (with a
message naming the value), on Helm 4 and Helm 3."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.charts import CHARTS, find, pod_specs, template, template_error
from tests.support.crds import load_crd_schemas, validate_custom_resource

CHART = CHARTS / "training-job"
SCRIPT = {"script": {"content": "print('train')\n"}}
JOB_NAME = re.compile(r"t-training-job-[0-9a-f]{10}")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _render(
    tmp_path: Path, values: dict[str, Any], helm_name: str = "helm4", **kw: Any
) -> list[dict[str, Any]]:
    return template(CHART, values={**SCRIPT, **values}, helm_name=helm_name, tmp_dir=tmp_path, **kw)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


BAD = [
    ({"script": {"content": ""}}, ["script.content or command is required", "--set-file"]),
    # Index URLs with credentials would sit in the Job in plain text: they come from Secrets only.
    (
        {"pip": {"indexUrl": "https://u:tok@pypi.internal/simple"}},
        ["must not carry credentials", "pip.existingSecret"],
    ),
    (
        {"pip": {"extraIndexUrls": ["https://pypi.org/simple", "https://ci:tok@x/simple"]}},
        ["must not carry credentials", "pip.extraIndexUrlsExistingSecret"],
    ),
    # ... and so does the MLflow tracking URI (issue 20, item 10).
    (
        {"mlflow": {"trackingUri": "http://bob:pw@mlflow.ml.svc:5000"}},
        ["mlflow.trackingUri", "must not carry credentials", "mlflow.existingSecret"],
    ),
    (
        {"global": {"mlflow": {"trackingUri": "https://bob:pw@mlflow.example.com"}}},
        ["must not carry credentials", "MLFLOW_TRACKING_USERNAME"],
    ),
    # Requirement lines are specifiers, never pip options or several lines (a newline broke out of the
    # ConfigMap's block scalar and added a key).
    (
        {"requirements": ["numpy", "--index-url=https://x/simple"]},
        ["requirements[1]", "pip option", "pip.indexUrl"],
    ),
    ({"requirements": ["-r /etc/passwd"]}, ["requirements[0]", "pip option"]),
    ({"requirements": ["numpy\nevil: key"]}, ["requirements[0]", "control character"]),
    ({"distributed": {"enabled": True, "rdzvTimeout": -1}}, ["rdzvTimeout"]),
    ({"command": ["python", "-m", "x"]}, ["script.content and command are both set"]),
    ({"job": {"restartPolicy": "Always"}}, ["restartPolicy"]),
    ({"resources": {"requests": {"cpu": "2 cores"}}}, ["resources", "cpu"]),
    ({"resources": {"limits": {"memory": "4GB"}}}, ["resources", "memory"]),
    (
        {"gpu": {"count": 1}, "distributed": {"enabled": True, "nprocPerNode": 4}},
        ["distributed.nprocPerNode=4", "gpu.count=1"],
    ),
    ({"distributed": {"enabled": True, "backend": "nccl"}}, ["distributed.backend=nccl needs GPUs"]),
    (
        {"distributed": {"enabled": True}, "cronJob": {"schedule": "0 3 * * *"}},
        ["cronJob.schedule cannot be combined"],
    ),
    ({"distributed": {"enabled": True, "elastic": {"enabled": True, "minNodes": 5}}}, ["elastic.minNodes"]),
    (
        {
            "sweep": {"enabled": True, "parameters": [{"name": "a", "type": "int", "min": 1, "max": 3}]},
            "distributed": {"enabled": True},
        },
        ["sweep.enabled and distributed.enabled"],
    ),
    ({"sweep": {"enabled": True, "strategy": "random", "trials": 0, "parameters": []}}, ["sweep.trials=0"]),
    (
        {"sweep": {"enabled": True, "strategy": "random", "trials": 10001, "parameters": []}},
        ["10001 trials exceed the limit of 10000"],
    ),
    (
        {
            "sweep": {
                "enabled": True,
                "parameters": [
                    {"name": "a", "type": "int", "min": 0, "max": 200},
                    {"name": "b", "type": "int", "min": 0, "max": 99},
                ],
            }
        },
        ["more than 10000 trials exceed the limit"],
    ),
    (
        {"sweep": {"enabled": True, "parameters": [{"name": "a", "type": "categorical"}]}},
        ["sweep.parameters[0] (a)", "needs values"],
    ),
    (
        {
            "sweep": {"enabled": True, "parameters": [{"name": "a", "type": "int", "min": 1, "max": 3}]},
            "job": {"restartPolicy": "OnFailure"},
        },
        ["sweep.enabled needs job.restartPolicy=Never"],
    ),
    (
        {"job": {"restartPolicy": "OnFailure", "nonRetriableExitCodes": [2]}},
        ["job.nonRetriableExitCodes needs job.restartPolicy=Never"],
    ),
    (
        {"volumes": [{"name": "d", "mountPath": "/d", "pvc": {"claimName": "x"}, "emptyDir": {}}]},
        ["volumes[0] (d)", "exactly one"],
    ),
    ({"volumes": [{"name": "d", "mountPath": "/d", "pvc": {"create": True}}]}, ["volumes[0].pvc.size"]),
    ({"volumes": [{"name": "d", "mountPath": "data"}]}, ["mountPath"]),
    (
        {"distributed": {"enabled": True, "operator": "trainjob"}, "priorityClassName": "high"},
        ["TrainJob", "TrainingRuntime"],
    ),
    (
        {"distributed": {"enabled": True, "operator": "trainjob"}, "envFrom": [{"secretRef": {"name": "s"}}]},
        ["envFrom cannot be passed to a TrainJob", "env"],
    ),
    ({"script": {"content": "x" * 950_000}}, ["950000 bytes, over the 900,000 allowed", "volumes"]),
    ({"distributed": {"enabled": True, "operator": "mpi"}}, ["operator"]),
    ({"jobs": {"backoffLimit": 1}}, ["jobs"]),
]


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(("values", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_values_are_refused_with_the_value_named(
    helm_name: str, values: dict[str, Any], words: list[str], tmp_path: Path
) -> None:
    message = template_error(CHART, {**SCRIPT, **values}, helm_name, tmp_path)
    for word in words:
        assert word in message, message


def test_requirements_render_as_one_quoted_file_and_rdzv_timeout_reaches_torchrun(tmp_path: Path) -> None:
    reqs = ["scikit-learn==1.7.2", "humanize>=4,<5", 'pandas; python_version >= "3.10"']
    docs = _render(tmp_path, {"requirements": reqs})
    launcher = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-launcher")
    )
    assert launcher["data"]["requirements.txt"] == "\n".join(reqs)
    values = {"distributed": {"enabled": True, "nodes": 2, "rdzvTimeout": 45}}
    [container] = find(_render(tmp_path, values), "Job")["spec"]["template"]["spec"]["containers"]
    assert {"name": "HELM_MLOPS_RDZV_TIMEOUT", "value": "45"} in container["env"]
    [container] = find(_render(tmp_path, {"distributed": {"enabled": True}}), "Job")["spec"]["template"][
        "spec"
    ]["containers"]
    assert all(e["name"] != "HELM_MLOPS_RDZV_TIMEOUT" for e in container["env"])


def test_plain_job_hygiene_and_pod(tmp_path: Path) -> None:
    docs = _render(
        tmp_path,
        {
            "job": {
                "backoffLimit": 1,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 60,
                "nonRetriableExitCodes": [2, 3],
            },
            "nodeSelector": {"pool": "train"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch-high",
            "runtimeClassName": "gvisor",
        },
        extra=["--set", "image.tag=3.12-slim"],
    )
    job = find(docs, "Job")
    assert JOB_NAME.fullmatch(job["metadata"]["name"])  # named by its spec (below)
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (
        1,
        600,
        60,
    )
    rules = spec["podFailurePolicy"]["rules"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "train", "operator": "In", "values": [2, 3]},
    } in rules
    assert rules[0]["action"] == "Ignore" and rules[0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"pool": "train"} and pod["priorityClassName"] == "batch-high"
    assert pod["runtimeClassName"] == "gvisor" and pod["tolerations"][0]["key"] == "dedicated"
    container = pod["containers"][0]
    assert container["image"] == "python:3.12-slim"
    assert container["command"][:5] == [
        "python3",
        "/opt/helm-mlops/launcher/launcher.py",
        "run",
        "--script",
        "/opt/helm-mlops/script/train.py",
    ]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/dev/shm"] == "dshm"
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert find(docs, "ConfigMap", "t-training-job-script")["data"]["train.py"] == "print('train')\n"


def test_gpus_set_requests_limits_and_tolerate_the_gpu_taint(tmp_path: Path) -> None:
    docs = _render(tmp_path, {"gpu": {"count": 2}})
    pod = find(docs, "Job")["spec"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert res["requests"]["nvidia.com/gpu"] == 2 and res["limits"]["nvidia.com/gpu"] == 2
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_data_volumes_env_and_credentials_from_secrets(tmp_path: Path) -> None:
    docs = _render(
        tmp_path,
        {
            "volumes": [
                {"name": "ds", "mountPath": "/data", "pvc": {"claimName": "datasets", "readOnly": True}},
                {"name": "ckpt", "mountPath": "/ckpt", "pvc": {"create": True, "size": "5Gi"}},
                {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "creds", "mountPath": "/etc/creds", "secret": {"secretName": "wh"}},
                {"name": "cfg", "mountPath": "/etc/cfg", "configMap": {"name": "features"}},
            ],
            "env": [{"name": "A", "value": "1"}],
            "envFrom": [{"secretRef": {"name": "extra"}}],
            "mlflow": {
                "existingSecret": "mlf",
                "s3": {"endpointUrl": "http://minio:9000", "existingSecret": "s3"},
            },
            "pip": {"existingSecret": "pip-index"},
            "requirements": ["numpy"],
        },
        extra=["--set", "global.mlflow.trackingUri=http://stack-mlflow:5000"],
    )
    pod = find(docs, "Job")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data-ds"]["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}
    assert volumes["data-ckpt"]["persistentVolumeClaim"]["claimName"] == "t-training-job-ckpt"
    assert volumes["data-creds"]["secret"] == {"secretName": "wh"} and volumes["data-cfg"]["configMap"] == {
        "name": "features"
    }
    pvc = find(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    env = _env(container)
    # The umbrella chart's global wires the stack's MLflow; credentials only ever come from Secrets.
    assert env["MLFLOW_TRACKING_URI"] == "http://stack-mlflow:5000"
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"secretKeyRef": {"name": "mlf", "key": "password"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["PIP_INDEX_URL"] == {"secretKeyRef": {"name": "pip-index", "key": "index-url"}}
    assert env["A"] == "1" and container["envFrom"] == [{"secretRef": {"name": "extra"}}]
    assert find(docs, "ConfigMap", "t-training-job-launcher")["data"]["requirements.txt"] == "numpy"


def test_distributed_indexed_job(tmp_path: Path) -> None:
    docs = _render(
        tmp_path, {"gpu": {"count": 4}, "distributed": {"enabled": True, "nodes": 3, "nprocPerNode": 4}}
    )
    job = find(docs, "Job")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    pod = spec["template"]["spec"]
    service = find(docs, "Service")
    assert pod["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    env = _env(pod["containers"][0])
    assert env["HELM_MLOPS_NNODES"] == "3" and env["HELM_MLOPS_NPROC_PER_NODE"] == "4"
    assert env["HELM_MLOPS_DIST_BACKEND"] == "nccl"
    assert (
        env["HELM_MLOPS_MASTER_ADDR"] == f"{job['metadata']['name']}-0.{service['metadata']['name']}.ml.svc"
    )
    cpu = _render(tmp_path, {"distributed": {"enabled": True}})
    assert (
        _env(find(cpu, "Job")["spec"]["template"]["spec"]["containers"][0])["HELM_MLOPS_DIST_BACKEND"]
        == "gloo"
    )


def test_pytorchjob_master_and_workers(tmp_path: Path) -> None:
    docs = _render(
        tmp_path, {"distributed": {"enabled": True, "operator": "pytorchjob", "nodes": 4, "nprocPerNode": 2}}
    )
    pj = find(docs, "PyTorchJob")
    replicas = pj["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 3
    assert pj["spec"]["nprocPerNode"] == "2"
    assert replicas["Master"]["template"]["spec"]["containers"][0]["name"] == "pytorch"  # the operator's rule
    assert not [d for d in docs if d["kind"] in ("Job", "Service")]
    elastic = find(
        _render(
            tmp_path,
            {
                "distributed": {
                    "enabled": True,
                    "operator": "pytorchjob",
                    "nodes": 4,
                    "elastic": {"enabled": True, "minNodes": 2},
                }
            },
        ),
        "PyTorchJob",
    )
    assert "Master" not in elastic["spec"]["pytorchReplicaSpecs"]
    assert elastic["spec"]["elasticPolicy"] == {
        "rdzvBackend": "c10d",
        "minReplicas": 2,
        "maxReplicas": 4,
        "maxRestarts": 3,
    }


def test_trainjob_patches_the_runtime_pods(tmp_path: Path) -> None:
    docs = _render(
        tmp_path, {"gpu": {"count": 1}, "distributed": {"enabled": True, "operator": "trainjob", "nodes": 2}}
    )
    tj = find(docs, "TrainJob")
    trainer = tj["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 1)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 1
    patch = tj["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod = patch["template"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {m["name"] for m in pod["containers"][0]["volumeMounts"]} >= {
        "launcher",
        "script",
        "runtime",
        "tmp",
    }


def test_trainjob_patch_carries_the_shared_pod_values(tmp_path: Path, shared_crds: Path) -> None:
    """The runtime patch gets the shared values, in fields Kubeflow Trainer's CRD defines."""
    docs = _render(
        tmp_path,
        {
            "distributed": {"enabled": True, "operator": "trainjob"},
            "global": {"imagePullSecrets": [{"name": "shared"}]},
            "imagePullSecrets": [{"name": "shared"}, {"name": "own"}],
            "env": [{"name": "A", "value": "1"}],
            "extraVolumes": [{"name": "ca", "configMap": {"name": "company-ca"}}],
            "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/company", "readOnly": True}],
            "podLabels": {"team": "vision"},
            "podAnnotations": {"example.com/owner": "vision"},
        },
    )
    tj = find(docs, "TrainJob")
    schema = load_crd_schemas(shared_crds)[(tj["apiVersion"], "TrainJob")]
    assert validate_custom_resource(tj, schema) == []
    assert {"name": "A", "value": "1"} in tj["spec"]["trainer"]["env"]
    patch = tj["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    meta, pod = (patch["template"]["spec"]["template"][part] for part in ("metadata", "spec"))
    assert meta["labels"]["team"] == "vision" and meta["annotations"] == {"example.com/owner": "vision"}
    assert pod["imagePullSecrets"] == [{"name": "shared"}, {"name": "own"}]
    assert {"name": "ca", "configMap": {"name": "company-ca"}} in pod["volumes"]
    mount = {"name": "ca", "mountPath": "/etc/ssl/company", "readOnly": True}
    assert mount in pod["containers"][0]["volumeMounts"]


def test_sweep_job(tmp_path: Path) -> None:
    docs = _render(
        tmp_path,
        {
            "sweep": {
                "enabled": True,
                "parallelism": 4,
                "maxFailedIndexes": 2,
                "parameters": [
                    {"name": "lr", "type": "float", "values": [0.1, 0.01]},
                    {"name": "depth", "type": "int", "min": 1, "max": 3},
                ],
            },
            "job": {"nonRetriableExitCodes": [2]},
        },
    )
    spec = find(docs, "Job")["spec"]
    assert (spec["completions"], spec["parallelism"], spec["maxFailedIndexes"]) == (6, 4, 2)
    assert spec["backoffLimitPerIndex"] == 1 and "backoffLimit" not in spec
    # A non-retriable exit code fails that trial only, not the sweep.
    assert spec["podFailurePolicy"]["rules"][-1]["action"] == "FailIndex"


def test_cronjob_runs_the_image_command(tmp_path: Path) -> None:
    docs = template(
        CHART,
        values={
            "command": ["python3", "-m", "trainer"],
            "cronJob": {"schedule": "0 3 * * 1", "timeZone": "Europe/Berlin"},
        },
        tmp_dir=tmp_path,
    )
    cron = find(docs, "CronJob")
    assert cron["spec"]["schedule"] == "0 3 * * 1" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["metadata"]["name"] == "t-training-job"  # a stable name: its job template may change
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-4:] == ["--", "python3", "-m", "trainer"]
    assert not [d for d in docs if d["kind"] == "Job"]
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-script")]


# Every way the chart can run training (the kinds `training-job.kind` picks from distributed.operator,
# cronJob and sweep), each with requirements (the launcher installs them):
# mode -> (values, the workload kinds the render must hold).
MODES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "job": ({}, {"Job"}),
    "job-image-command": ({"script": {"content": ""}, "command": ["python3", "-m", "trainer"]}, {"Job"}),
    "cronjob": ({"cronJob": {"schedule": "@daily"}}, {"CronJob"}),
    "indexed-job": ({"distributed": {"enabled": True, "operator": "none", "nodes": 2}}, {"Job"}),
    "indexed-job-elastic": (
        {"distributed": {"enabled": True, "operator": "none", "nodes": 3, "elastic": {"enabled": True}}},
        {"Job"},
    ),
    "pytorchjob": ({"distributed": {"enabled": True, "operator": "pytorchjob", "nodes": 2}}, {"PyTorchJob"}),
    "trainjob": ({"distributed": {"enabled": True, "operator": "trainjob", "nodes": 2}}, {"TrainJob"}),
    "sweep-grid": (
        {"sweep": {"enabled": True, "parameters": [{"name": "lr", "type": "float", "values": [0.1, 0.01]}]}},
        {"Job"},
    ),
    "sweep-random": (
        {
            "sweep": {
                "enabled": True,
                "strategy": "random",
                "trials": 3,
                "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
            }
        },
        {"Job"},
    ),
}
WORKLOAD_KINDS = {"Job", "CronJob", "PyTorchJob", "TrainJob"}


def test_the_modes_cover_every_operator_the_schema_allows() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    operators = set(schema["distributed"]["properties"]["operator"]["enum"])
    covered = {values["distributed"]["operator"] for values, _ in MODES.values() if "distributed" in values}
    assert covered == operators
    assert set(schema["sweep"]["properties"]["strategy"]["enum"]) == {"grid", "random"}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_pod_is_restricted_and_hardened_in_every_mode(mode: str, tmp_path: Path) -> None:
    """Pod Security "restricted" (every rule tests/support/policy.py checks) and our hardening
    (read-only root, requests and limits) on every pod of every mode, init containers included."""
    from tests.support.policy import hardening_violations, restricted_violations

    values, kinds = MODES[mode]
    docs = _render(tmp_path, {"requirements": ["numpy==2.3.0"], **values})
    assert {d["kind"] for d in docs} & WORKLOAD_KINDS == kinds
    specs = pod_specs(docs)
    assert [where for where, _ in specs if not where.startswith("Pod/")], "no training pod rendered"
    for where, spec in specs:
        assert restricted_violations(spec) == [], where
        assert hardening_violations(spec) == [], where


# Training objects are named by a hash of their spec --------------------------------------------------

# Values that change what the training pods run: each must rename the Job, whose pod template cannot
# change (and `rerun`, which reaches no pod, exists to rename it).
RENAMING: dict[str, dict[str, Any]] = {
    "script": {"script": {"content": "print('other')\n"}},
    "script args": {"script": {**SCRIPT["script"], "args": ["--epochs=5"]}},
    "image": {"image": {"tag": "3.12-slim"}},
    "requirements": {"requirements": ["numpy==2.3.0"]},
    "resources": {"resources": {"limits": {"memory": "8Gi"}}},
    "env": {"env": [{"name": "SEED", "value": "1"}]},
    "volumes": {"volumes": [{"name": "data", "mountPath": "/data", "emptyDir": {}}]},
    "pod labels": {"podLabels": {"team": "a"}},
    "tracking URI": {"mlflow": {"trackingUri": "http://mlflow:5000"}},
    "global tracking URI": {"global": {"mlflow": {"trackingUri": "http://mlflow:5000"}}},
    "global pull secrets": {"global": {"imagePullSecrets": ["regcred"]}},
    "rerun": {"rerun": "2"},
}
# Values that reach no training pod: the Job stays as it is, name included.
KEEPING: dict[str, dict[str, Any]] = {
    "test pod off": {"tests": {"enabled": False}},
    "test pod resources": {"tests": {"resources": {"limits": {"cpu": "1"}}}},
    "other subcharts' globals": {"global": {"storageClass": "fast", "mlflow": {"image": "mlflow:3"}}},
}


def test_the_job_is_named_by_a_hash_of_its_spec(tmp_path: Path) -> None:
    base = find(_render(tmp_path, {}), "Job")
    name = base["metadata"]["name"]
    assert JOB_NAME.fullmatch(name), name
    assert find(_render(tmp_path, {}), "Job")["metadata"]["name"] == name
    assert find(_render(tmp_path, {}, helm_name="helm3"), "Job")["metadata"]["name"] == name
    names = {}
    for what, values in RENAMING.items():
        job = find(_render(tmp_path, values), "Job")
        if what != "rerun":
            assert job["spec"]["template"] != base["spec"]["template"], f"{what} reaches no pod"
        assert JOB_NAME.fullmatch(job["metadata"]["name"]), what
        names[what] = job["metadata"]["name"]
    assert name not in names.values() and len(set(names.values())) == len(names), names
    # `--set rerun=2` is a number, the values file's "2" a string: the same run.
    assert (
        find(_render(tmp_path, {}, extra=["--set", "rerun=2"]), "Job")["metadata"]["name"] == names["rerun"]
    )
    for what, values in KEEPING.items():
        assert find(_render(tmp_path, values), "Job") == base, what


@pytest.mark.parametrize(("operator", "kind"), [("pytorchjob", "PyTorchJob"), ("trainjob", "TrainJob")])
def test_operator_resources_are_named_like_the_job(tmp_path: Path, operator: str, kind: str) -> None:
    dist = {"enabled": True, "operator": operator, "nodes": 2}
    name = find(_render(tmp_path, {"distributed": dist}), kind)["metadata"]["name"]
    assert JOB_NAME.fullmatch(name), name
    assert find(_render(tmp_path, {"distributed": dist}), kind)["metadata"]["name"] == name
    for changed in ({"distributed": {**dist, "nodes": 3}}, {"distributed": dist, "rerun": "2"}):
        assert find(_render(tmp_path, changed), kind)["metadata"]["name"] != name, changed
    unchanged = {"distributed": dist, "tests": {"enabled": False}}
    assert find(_render(tmp_path, unchanged), kind)["metadata"]["name"] == name


def test_job_names_stay_dns_labels_with_the_longest_release_names(tmp_path: Path) -> None:
    """Helm allows 53 characters of release name; the Job stays at 52 so that an Indexed Job's pod
    hostnames <job>-<index> are DNS labels, and releases whose full names are cut alike still differ."""
    names = []
    for release in ("a" * 41 + "-x", "a" * 41 + "-y", "b" * 40 + "-training-job"):
        docs = template(
            CHART,
            values={**SCRIPT, "distributed": {"enabled": True, "nodes": 3}},
            release=release,
            tmp_dir=tmp_path,
        )
        job = find(docs, "Job")
        name = job["metadata"]["name"]
        assert len(name) <= 52 and DNS_LABEL.fullmatch(name), name
        assert re.fullmatch(r"[ab]+-[0-9a-f]{10}", name), name
        pod = job["spec"]["template"]["spec"]
        assert DNS_LABEL.fullmatch(f"{name}-2") and DNS_LABEL.fullmatch(pod["subdomain"])
        names.append(name)
    assert len(set(names)) == 3, names
