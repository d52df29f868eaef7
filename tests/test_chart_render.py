"""What the charts render, checked against Kubernetes' own schemas (kubernetes-validate, strict),
the upstream CRDs, Pod Security "restricted" and our conventions, on Helm 4 and Helm 3 renders."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.charts import chart_dirs, ci_values, pod_specs, template, template_error
from tests.support.crds import load_crd_schemas, validate_custom_resource
from tests.support.policy import hardening_violations, missing_labels, restricted_violations

KUBE_VERSION = "1.34.0"
SCENARIOS = [(c, v) for c in chart_dirs() for v in ci_values(c)]
IDS = [f"{c.name}-{v.stem}" for c, v in SCENARIOS]
CUSTOM_GROUPS = (
    "monitoring.coreos.com/",
    "gateway.networking.k8s.io/",
    "serving.kserve.io/",
    "kubeflow.org/",
    "trainer.kubeflow.org/",
)


def _render(chart: Path, values: Path, helm_name: str) -> list[dict[str, Any]]:
    return template(chart, values_files=[values], helm_name=helm_name)


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_renders_pass_kubernetes_validate_strict(helm_name: str, chart: Path, values: Path) -> None:
    docs = _render(chart, values, helm_name)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


# The scenarios whose renders hold custom resources, and those holding pre-install hooks with pods:
# the tests below run on these only, and test_scenario_lists_are_complete keeps the lists true.
CUSTOM_RESOURCE_SCENARIOS = [
    "inference-service-fastapi-alerts-values",  # ServiceMonitor, PrometheusRule
    "inference-service-fastapi-https-onnx-values",  # HTTPRoute
    "inference-service-fastapi-s3-sklearn-values",  # ServiceMonitor
    "inference-service-kserve-sklearn-values",  # InferenceService
    "inference-service-kserve-torch-serverless-values",  # InferenceService
    "inference-service-mlserver-sklearn-values",  # ServiceMonitor
    "mlflow-alerts-values",  # ServiceMonitor, PrometheusRule
    "mlflow-external-postgresql-s3-values",  # HTTPRoute
    "mlflow-incluster-postgresql-minio-values",  # ServiceMonitor
    "mlflow-sqlite-ingress-auth-values",  # ServiceMonitor
    "training-job-pytorchjob-values",  # PyTorchJob
    "training-job-sweep-alerts-values",  # PrometheusRule
    "training-job-trainjob-values",  # TrainJob
]
# The MLflow migration Job runs before install against an external database.
PRE_INSTALL_SCENARIOS = [
    "mlflow-azure-existing-secrets-values",
    "mlflow-external-postgresql-s3-values",
    "mlflow-mysql-gcs-values",
    "mlflow-production-values",
]
BY_ID = dict(zip(IDS, SCENARIOS, strict=True))


def _hook_phases(doc: dict[str, Any]) -> set[str]:
    return set((doc["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(",")) - {""}


def _custom_resources(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["apiVersion"].startswith(CUSTOM_GROUPS)]


def _pre_install_pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return pod_specs([d for d in docs if "pre-install" in _hook_phases(d)])


def test_scenario_lists_are_complete() -> None:
    """Each ci scenario rendered once: the ones with custom resources and the ones with pre-install
    hook pods are exactly the lists above (a new scenario with either is not left unchecked)."""
    renders = {id_: _render(chart, values, "helm4") for id_, (chart, values) in BY_ID.items()}
    assert [i for i, docs in renders.items() if _custom_resources(docs)] == CUSTOM_RESOURCE_SCENARIOS
    assert [i for i, docs in renders.items() if _pre_install_pods(docs)] == PRE_INSTALL_SCENARIOS


@pytest.mark.parametrize("scenario", CUSTOM_RESOURCE_SCENARIOS)
def test_custom_resources_match_upstream_crds(scenario: str, shared_crds: Path) -> None:
    schemas = load_crd_schemas(shared_crds)
    resources = _custom_resources(_render(*BY_ID[scenario], "helm4"))
    assert resources, "the scenario renders no custom resource"
    for doc in resources:
        key = (doc["apiVersion"], doc["kind"])
        assert key in schemas, f"no upstream CRD serves {key}"
        assert validate_custom_resource(doc, schemas[key]) == [], doc["metadata"]["name"]


def test_crd_validation_catches_mistakes(shared_crds: Path) -> None:
    """The offline CRD check must reject what the API server would: unknown fields, wrong types."""
    schemas = load_crd_schemas(shared_crds)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "30s"}]},
    }
    assert any(
        "intervall" in p
        for p in validate_custom_resource(monitor, schemas[("monitoring.coreos.com/v1", "ServiceMonitor")])
    )
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "x"},
        "spec": {"rules": [{"backendRefs": [{"name": "svc", "port": "http"}]}]},
    }
    assert validate_custom_resource(route, schemas[("gateway.networking.k8s.io/v1", "HTTPRoute")])


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_pods_are_restricted_and_hardened(chart: Path, values: Path) -> None:
    docs = _render(chart, values, "helm4")
    specs = pod_specs(docs)
    assert specs
    for where, spec in specs:
        assert restricted_violations(spec) == [], where
        assert hardening_violations(spec) == [], where


def test_policy_check_catches_violations() -> None:
    bad = {
        "containers": [{"name": "c", "securityContext": {"privileged": True}}],
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
    }
    problems = restricted_violations(bad)
    assert any("privileged" in p for p in problems) and any("hostNetwork" in p for p in problems)
    assert any("hostPath" in p for p in problems) and any("runAsNonRoot" in p for p in problems)


def test_policy_check_covers_the_rest_of_the_restricted_profile() -> None:
    """Each of Pod Security's other restricted (and baseline) rules, one violation at a time, on a pod
    that is otherwise restricted."""
    good_sc = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }

    def pod(pod_sc: dict[str, Any] | None = None, **container_sc: Any) -> dict[str, Any]:
        return {
            "securityContext": pod_sc or {},
            "containers": [{"name": "c", "securityContext": {**good_sc, **container_sc}}],
        }

    assert restricted_violations(pod()) == []
    cases = {
        "pod: runAsUser 0": pod({"runAsUser": 0}, runAsUser=1000),
        "pod: seccompProfile": pod({"seccompProfile": {"type": "Unconfined"}}),
        "pod: sysctl kernel.msgmax": pod({"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
        "pod: seLinuxOptions": pod({"seLinuxOptions": {"type": "spc_t"}}),
        "container c: seLinuxOptions": pod(seLinuxOptions={"user": "root"}),
        "container c: windowsOptions.hostProcess": pod(windowsOptions={"hostProcess": True}),
        "container c: appArmorProfile": pod(appArmorProfile={"type": "Unconfined"}),
        "container c: procMount Unmasked": pod(procMount="Unmasked"),
    }
    for expected, spec in cases.items():
        problems = restricted_violations(spec)
        assert len(problems) == 1 and problems[0].startswith(expected), (expected, problems)
    ephemeral = {**pod(), "ephemeralContainers": [{"name": "debug", "securityContext": {}}]}
    assert any(p.startswith("container debug:") for p in restricted_violations(ephemeral))
    assert restricted_violations(pod({"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]})) == []


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_no_null_metadata(chart: Path, values: Path) -> None:
    for doc in _render(chart, values, "helm4"):
        for key in ("labels", "annotations"):
            assert doc["metadata"].get(key, {}) is not None, (
                f"{doc['kind']}/{doc['metadata']['name']} has {key}: null"
            )


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_standard_labels_everywhere(chart: Path, values: Path) -> None:
    for doc in _render(chart, values, "helm4"):
        assert missing_labels(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


# The only values a render may legitimately differ in between two helms (or two runs of one): the
# credentials the MLflow chart generates with `randAlphaNum 32` when none is given and none exists in the
# cluster (charts/mlflow/templates/secret.yaml, "mlflow.secretValue"), and the `checksum/*` pod
# annotations, which hash a render holding them (mlflow's configChecksum takes the generated
# checksum-salt, the StatefulSets' checksum/secret the whole Secret). No other template function the
# charts use (grep: randAlphaNum is the only random one; no now, uuidv4 or gen*) varies between runs.
GENERATED_SECRET_KEYS = {
    "admin-password",
    "checksum-salt",
    "db-password",
    "flask-secret-key",
    "minio-access-key",
    "minio-secret-key",
}
GENERATED = re.compile(r"[A-Za-z0-9]{32}")


def _mask_generated(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The docs, sorted, with generated Secret values masked and, when the render holds any, the
    checksum/* annotations too (a render without generated values keeps its checksums compared)."""
    docs = copy.deepcopy(docs)
    generated = False
    for doc in docs:
        if doc["kind"] != "Secret":
            continue
        for key, value in (doc.get("data") or {}).items():
            if key in GENERATED_SECRET_KEYS and GENERATED.fullmatch(base64.b64decode(value).decode()):
                doc["data"][key], generated = "<generated>", True

    def mask_checksums(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "annotations" and isinstance(value, dict):
                    for name in value:
                        if name.startswith("checksum/"):
                            value[name] = "<hash of generated values>"
                else:
                    mask_checksums(value)
        elif isinstance(node, list):
            for item in node:
                mask_checksums(item)

    if generated:
        mask_checksums(docs)
    return sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"]))


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_helm3_and_helm4_render_the_same_objects(chart: Path, values: Path) -> None:
    """Every object, field for field, on Helm 4, 3.18 and 3.17; only generated credentials and the
    checksums over them are masked."""
    helm4 = _mask_generated(_render(chart, values, "helm4"))
    for helm_name in ("helm3", "helm3.17"):
        other = _mask_generated(_render(chart, values, helm_name))
        assert [(d["kind"], d["metadata"]["name"]) for d in other] == [
            (d["kind"], d["metadata"]["name"]) for d in helm4
        ], helm_name
        for mine, theirs in zip(helm4, other, strict=True):
            where = f"{helm_name}: {mine['kind']}/{mine['metadata']['name']}"
            assert theirs == mine, f"{where} differs at {_differences(mine, theirs)}"


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in _differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_masking_keeps_what_is_not_generated() -> None:
    """The mask hides generated credentials only: a given password and a checksum in a render without
    generated values stay compared."""
    given = base64.b64encode(b"given-password").decode()
    generated = base64.b64encode(b"a" * 32).decode()
    pod: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "d", "annotations": {"checksum/config": "1"}},
    }
    secret: dict[str, Any] = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"admin-password": given}}
    assert _mask_generated([pod, secret]) == [pod, secret]
    secret["data"]["flask-secret-key"] = generated
    masked = _mask_generated([pod, secret])
    assert masked[0]["metadata"]["annotations"]["checksum/config"] != "1"
    assert masked[1]["data"] == {"admin-password": given, "flask-secret-key": "<generated>"}


def test_each_ci_scenario_is_distinct() -> None:
    for chart in chart_dirs():
        contents = [yaml.safe_load(v.read_text()) for v in ci_values(chart)]
        assert len({yaml.safe_dump(c) for c in contents}) == len(contents)


def _references(spec: dict[str, Any]) -> set[tuple[str, str]]:
    refs = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
        if "persistentVolumeClaim" in volume:
            refs.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add(("Secret", ref["name"]))
    return refs


@pytest.mark.parametrize("scenario", PRE_INSTALL_SCENARIOS)
def test_pre_install_hooks_only_use_what_exists_before_install(scenario: str) -> None:
    """A pre-install hook runs before the release's own objects exist: it may use objects of earlier
    pre-install hooks or objects the chart does not create, never the release's regular objects."""
    docs = _render(*BY_ID[scenario], "helm4")
    regular = {(d["kind"], d["metadata"]["name"]) for d in docs if not _hook_phases(d)}
    hooks = _pre_install_pods(docs)
    assert hooks, "the scenario renders no pre-install hook pod"
    for where, spec in hooks:
        late = _references(spec) & regular
        assert not late, f"{where} (pre-install hook) uses release objects created after it: {sorted(late)}"


# The value names every chart shares (docs/conventions.md). Per chart: values that render its main
# workload (and, for mlflow, every kind of pod it can run), that workload (kind, name pattern), its main
# container, the number of pod specs the render must hold, and the old spellings the schema must now
# refuse.
CONVENTION_CHARTS: dict[str, Any] = {
    "mlflow": (
        {
            "backendStore": {"type": "postgresql", "postgresql": {"inCluster": True}},
            "artifactStore": {"type": "minio"},
            "gc": {"enabled": True},
        },
        ("Deployment", "t-mlflow"),
        "mlflow",
        # server, PostgreSQL, MinIO, migration Job, bucket hook Job, gc CronJob, test pod
        7,
        [
            ({"image": {"pullSecrets": ["regcred"]}}, ["image", "pullSecrets"]),
            ({"server": {"extraEnv": [{"name": "A", "value": "1"}]}}, ["server", "extraEnv"]),
            ({"server": {"extraEnvFrom": [{"secretRef": {"name": "s"}}]}}, ["server", "extraEnvFrom"]),
            ({"serviceAccount": {"automountToken": True}}, ["serviceAccount", "automountToken"]),
        ],
    ),
    "training-job": (
        {"script": {"content": "print('train')\n"}},
        ("Job", "t-training-job-[0-9a-f]{10}"),  # named by a hash of its spec
        "train",
        2,  # the Job and the test pod
        [
            ({"image": {"pullSecrets": ["regcred"]}}, ["image", "pullSecrets"]),
            ({"serviceAccount": {"automountToken": True}}, ["serviceAccount", "automountToken"]),
        ],
    ),
    "inference-service": (
        {
            "model": {
                "trustModel": True,
                "source": {"type": "pvc", "pvc": {"claimName": "models", "path": "iris/model.pkl"}},
            }
        },
        ("Deployment", "t-inference-service"),
        "server",
        2,  # the Deployment and the test pod
        # Pull secrets were plain Secret names here; now they are {name: ...} objects.
        [({"imagePullSecrets": ["regcred"]}, ["imagePullSecrets"])],
    ),
}
CONVENTION_VALUES: dict[str, Any] = {
    # global first (an entry may be a plain name there), then the chart's own; "team" only once.
    "global": {"imagePullSecrets": [{"name": "shared"}, "team"]},
    "imagePullSecrets": [{"name": "team"}, {"name": "own"}],
    "env": [{"name": "CONVENTION_ENV", "value": "1"}],
    "envFrom": [{"configMapRef": {"name": "convention-env"}}],
    "extraVolumes": [{"name": "convention-vol", "emptyDir": {}}],
    "extraVolumeMounts": [{"name": "convention-vol", "mountPath": "/convention"}],
    "podLabels": {"example.com/convention": "label"},
    "podAnnotations": {"example.com/convention": "annotation"},
    "nodeSelector": {"example.com/pool": "convention"},
    "tolerations": [{"key": "example.com/convention", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "convention-priority",
}


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize("chart_name", list(CONVENTION_CHARTS))
def test_shared_value_names(chart_name: str, helm_name: str, tmp_path: Path) -> None:
    chart = next(c for c in chart_dirs() if c.name == chart_name)
    base, (kind, name), container_name, pod_count, old_names = CONVENTION_CHARTS[chart_name]
    docs = template(chart, values={**base, **CONVENTION_VALUES}, helm_name=helm_name, tmp_dir=tmp_path)

    # Pull secrets: the union, global first, without duplicates, on every pod the chart renders
    # (hooks and the test pod included).
    specs = pod_specs(docs)
    assert len(specs) == pod_count, [where for where, _ in specs]
    for where, spec in specs:
        assert spec.get("imagePullSecrets") == [{"name": "shared"}, {"name": "team"}, {"name": "own"}], where

    # Env, volumes, pod metadata and scheduling: on the main workload's pod and container.
    workload = next(d for d in docs if d["kind"] == kind and re.fullmatch(name, d["metadata"]["name"]))
    pod, meta = workload["spec"]["template"]["spec"], workload["spec"]["template"]["metadata"]
    container = next(c for c in pod["containers"] if c["name"] == container_name)
    assert {"name": "CONVENTION_ENV", "value": "1"} in container["env"]
    assert {"configMapRef": {"name": "convention-env"}} in container["envFrom"]
    assert {"name": "convention-vol", "emptyDir": {}} in pod["volumes"]
    assert {"name": "convention-vol", "mountPath": "/convention"} in container["volumeMounts"]
    assert meta["labels"]["example.com/convention"] == "label"
    assert meta["annotations"]["example.com/convention"] == "annotation"
    assert pod["nodeSelector"] == {"example.com/pool": "convention"}
    assert CONVENTION_VALUES["tolerations"][0] in pod["tolerations"]
    assert pod["priorityClassName"] == "convention-priority"
    kubernetes_validate.validate(workload, KUBE_VERSION, strict=True)

    # The old spellings are gone: the schema refuses them, naming the key (Helm 4 writes /a/b, Helm 3 a.b).
    for old, expected in old_names:
        message = template_error(chart, {**base, **old}, helm_name, tmp_path).replace("/", ".")
        assert "don't meet the specifications of the schema" in message, (old, message)
        for text in expected:
            assert text in message, (old, message)


def _kserve_model(doc: dict[str, Any]) -> dict[str, Any]:
    predictor = doc["spec"]["predictor"]
    container: dict[str, Any] = predictor["model"] if "model" in predictor else predictor["containers"][0]
    return container


def _trainjob_node(doc: dict[str, Any]) -> dict[str, Any]:
    patch = doc["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    pod = patch["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


def _pytorch_master(doc: dict[str, Any]) -> dict[str, Any]:
    master = doc["spec"]["pytorchReplicaSpecs"]["Master"]
    container: dict[str, Any] = master["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("chart", "values", "kind", "container"),
    [
        ("inference-service", "kserve-sklearn", "InferenceService", _kserve_model),
        ("inference-service", "kserve-torch-serverless", "InferenceService", _kserve_model),
        ("training-job", "trainjob", "TrainJob", _trainjob_node),
        ("training-job", "pytorchjob", "PyTorchJob", _pytorch_master),
    ],
    ids=["kserve-builtin", "kserve-custom", "trainjob", "pytorchjob"],
)
def test_pod_checks_see_custom_resource_pods(chart: str, values: str, kind: str, container: Any) -> None:
    """pod_specs() finds the pods KServe and the Kubeflow operators build from our custom resources:
    the rendered ones pass, and a privileged, writable container written into the resource is reported."""
    chart_dir = next(c for c in chart_dirs() if c.name == chart)
    docs = _render(chart_dir, chart_dir / "ci" / f"{values}-values.yaml", "helm4")
    found = [spec for where, spec in pod_specs(docs) if where.startswith(f"{kind}/")]
    assert found, [where for where, _ in pod_specs(docs)]
    for spec in found:
        assert restricted_violations(spec) == [] and hardening_violations(spec) == []
    [doc] = [d for d in docs if d["kind"] == kind]
    security = container(doc)["securityContext"]
    security["privileged"], security["readOnlyRootFilesystem"] = True, False
    problems = [p for _, spec in pod_specs([doc]) for p in restricted_violations(spec)]
    assert any(p.endswith("is privileged") for p in problems), problems
    hardening = [p for _, spec in pod_specs([doc]) for p in hardening_violations(spec)]
    assert any("readOnlyRootFilesystem" in p for p in hardening), hardening
