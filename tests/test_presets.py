"""Every preset generates, lints clean (helm lint --strict on Helm 4 and 3, kubernetes-validate --strict,
CRDs, Pod Security restricted) and installs on the test cluster with plain `helm install --wait`; a stack
upgrade leaves unchanged training jobs alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import REPO, TOOLS_BIN
from tests.support.cluster import Cluster

EXE = Path(sys.executable).parent / "helm-mlops"
PRESETS = sorted(p.stem for p in (REPO / "values-presets").glob("*.yaml"))
# Secrets the production preset names (created by the platform team before installing).
PRODUCTION_SECRETS = {
    "mlflow-db": ["password=db"],
    "mlflow-s3": ["AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=s"],
    "mlflow-admin": ["username=admin", "password=admin-pass"],
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, env=env, check=False)


def generate(out: Path, *args: str) -> Path:
    result = run("generate", "-o", out, "--force", *args)
    assert result.returncode == 0, result.stderr
    return out


def test_the_presets_are_the_ten_the_docs_list() -> None:
    documented = [
        "quickstart", "minio", "production", "gpu-training", "distributed-pytorch", "sweep",
        "inference-onnx", "inference-mlserver", "kserve", "full-stack",
    ]  # fmt: skip
    assert sorted(documented) == PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_generates_and_lints_clean(preset: str, tmp_path: Path) -> None:
    out = generate(tmp_path / preset, "--preset", preset)
    lint = run("lint", out)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "(helm v4." in lint.stdout and "(helm v3." in lint.stdout
    assert "kubernetes-validate --strict, CRDs and Pod Security restricted: ok" in lint.stdout
    assert "not validated" not in lint.stdout  # ../shared/crds (CI) checks the custom resources too


def prepare_preset(cluster: Cluster, preset: str, namespace: str) -> None:
    """What a preset expects to exist before it is installed (as its comments tell the user): the
    production preset's Secrets, and the claim a model is read from."""
    if preset == "production":
        for name, pairs in PRODUCTION_SECRETS.items():
            literals = [f"--from-literal={p}" for p in pairs]
            cluster.kubectl("create", "secret", "generic", name, "-n", namespace, *literals)
    if "pvc://models/" in (REPO / "values-presets" / f"{preset}.yaml").read_text():
        # The claim the preset's model is read from, as its comment asks the user to create.
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(claim))


def _workloads(cluster: Cluster, namespace: str) -> dict[str, Any]:
    out = {}
    for kind in ("deployment", "statefulset", "job", "cronjob", "inferenceservice"):
        for item in cluster.get(kind, "-n", namespace)["items"]:
            out[f"{item['kind']}/{item['metadata']['name']}"] = item
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_installs_with_plain_helm(preset: str, cluster: Cluster, tmp_path: Path) -> None:
    namespace = cluster.restricted_namespace(preset[:20].rstrip("-"))
    helm_name = "helm3" if PRESETS.index(preset) % 2 else "helm4"
    try:
        prepare_preset(cluster, preset, namespace)
        out = generate(tmp_path / preset, "--preset", preset, "--set-string", f"global.namespace={namespace}")
        name = yaml.safe_load((out / "Chart.yaml").read_text())["name"]
        cluster.helm(helm_name, "install", name, out, "-n", namespace, "--wait", "--timeout", "4m")
        status = cluster.helm(helm_name, "status", name, "-n", namespace, "-o", "json").stdout
        assert '"status":"deployed"' in status.replace(" ", "")
        answers = yaml.safe_load((out / "answers.yaml").read_text())
        found = _workloads(cluster, namespace)
        if (answers.get("mlflow") or {}).get("enabled"):
            assert f"Deployment/{answers['name']}-mlflow" in found, sorted(found)
        for svc in (answers.get("inference") or {}).get("services") or []:
            kind = "InferenceService" if svc.get("runtime") == "kserve" else "Deployment"
            assert f"{kind}/{answers['name']}-{svc['name']}" in found, sorted(found)
        for job in (answers.get("training") or {}).get("jobs") or []:
            prefix = f"Job/{answers['name']}-{job['name']}-"
            assert any(k.startswith(prefix) for k in found), sorted(found)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


STACK = """\
apiVersion: helm-mlops/v1
name: life
training:
  jobs:
    - {name: alpha, script: {content: "print('a')"}}
    - {name: beta, script: {content: "print('b')"}}
inference:
  services:
    - {name: web, model: {uri: "https://models.example.com/iris.onnx"}, replicas: 1}
"""


def _jobs(cluster: Cluster, namespace: str) -> dict[str, tuple[str, str]]:
    """job answer name -> (Job name, uid)."""
    out = {}
    for item in cluster.get("job", "-n", namespace, "-l", "app.kubernetes.io/instance=life")["items"]:
        alias = item["metadata"]["labels"]["app.kubernetes.io/name"]
        assert alias not in out, f"two Jobs for {alias}"
        out[alias] = (item["metadata"]["name"], item["metadata"]["uid"])
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_a_stack_upgrade_replaces_only_changed_training_jobs(
    helm_name: str, cluster: Cluster, tmp_path: Path
) -> None:
    namespace = cluster.restricted_namespace(f"life-{helm_name}")
    answers = tmp_path / "answers.yaml"
    answers.write_text(STACK)
    out = tmp_path / "stack"
    ns = ("--set-string", f"global.namespace={namespace}")
    try:
        generate(out, "--answers", str(answers), *ns)
        cluster.helm(helm_name, "install", "life", out, "-n", namespace, "--wait", "--timeout", "3m")
        first = _jobs(cluster, namespace)
        assert set(first) == {"alpha", "beta"}
        shown = run("status", "life", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
        assert shown.returncode == 0, shown.stderr
        listed = json.loads(shown.stdout)
        assert sorted(j["name"] for j in listed["training"]) == sorted(name for name, _ in first.values())
        assert [s["name"] for s in listed["services"]] == ["life-web"]
        # Only an inference value and the MLflow version change: no training object changes.
        generate(out, "--answers", str(answers), *ns, "--set", "inference.services[0].replicas=2",
                 "--set-string", "mlflow.version=3.17.1")  # fmt: skip
        cluster.helm(helm_name, "upgrade", "life", out, "-n", namespace, "--wait", "--timeout", "3m")
        assert cluster.get("deployment", "life-web", "-n", namespace)["spec"]["replicas"] == 2
        assert _jobs(cluster, namespace) == first
        # One job's script changes: that job alone is replaced; the other keeps its name and uid.
        generate(out, "--answers", str(answers), *ns, "--set-string",
                 "training.jobs[0].script.content=print('a2')")  # fmt: skip
        cluster.helm(helm_name, "upgrade", "life", out, "-n", namespace, "--wait", "--timeout", "3m")
        third = _jobs(cluster, namespace)
        assert third["beta"] == first["beta"]
        assert third["alpha"][0] != first["alpha"][0] and third["alpha"][1] != first["alpha"][1]
        gone = cluster.kubectl("get", "job", first["alpha"][0], "-n", namespace, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
