"""Exposure defaults of the three charts, on Helm 4 and Helm 3: NetworkPolicies by default that admit
only this stack's pods (plus the ingress controller, Prometheus and allowFrom when asked), security
warnings in NOTES for an MLflow or model exposed without TLS or authentication, and
global.strictSecurity turning those warnings into refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.charts import CHARTS, find, helm_path, template, template_error

HELMS = ["helm4", "helm3"]
MLFLOW, TRAINING, INFERENCE = CHARTS / "mlflow", CHARTS / "training-job", CHARTS / "inference-service"
SERVED = {
    "model": {"trustModel": True, "source": {"type": "pvc", "pvc": {"claimName": "m", "path": "iris.joblib"}}}
}
STACK = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "helm-mlops"}}}


def _peers(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return list(find(docs, "NetworkPolicy", name)["spec"]["ingress"][0]["from"])


def _ns(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


@pytest.mark.parametrize("helm_name", HELMS)
def test_network_policies_admit_only_the_stack_by_default(helm_name: str, tmp_path: Path) -> None:
    mlflow = template(MLFLOW, values={}, helm_name=helm_name, tmp_dir=tmp_path)
    assert _peers(mlflow, "t-mlflow") == [STACK]  # empty allowFrom no longer means everyone
    served = template(INFERENCE, values=SERVED, helm_name=helm_name, tmp_dir=tmp_path)
    assert _peers(served, "t-inference-service") == [STACK]
    training = template(TRAINING, values={"script": {"content": "x"}}, helm_name=helm_name, tmp_dir=tmp_path)
    assert _peers(training, "t-training-job") == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "t"}}}
    ]

    extra = {"namespaceSelector": {"matchLabels": {"team": "ds"}}}
    exposed = {
        **SERVED,
        "ingress": {"enabled": True, "host": "m.example.com", "tls": {"enabled": True}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"allowFrom": [extra], "ingressControllerNamespace": "edge"},
    }
    docs = template(INFERENCE, values=exposed, helm_name=helm_name, tmp_dir=tmp_path)
    assert _peers(docs, "t-inference-service") == [STACK, _ns("edge"), _ns("monitoring"), extra]
    off = template(
        INFERENCE,
        values={**SERVED, "networkPolicy": {"enabled": False}},
        helm_name=helm_name,
        tmp_dir=tmp_path,
    )
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]


def _notes(chart: Path, values: list[str]) -> str:
    proc = subprocess.run(
        [helm_path("helm4"), "install", "x", str(chart), "--dry-run=client", *values],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_warn_about_exposure() -> None:
    notes = _notes(MLFLOW, ["--set", "ingress.enabled=true", "--set", "ingress.host=m.example.com"])
    assert "SECURITY WARNINGS" in notes and "ingress.tls.enabled=false" in notes
    assert "without authentication" in notes
    safe = _notes(
        MLFLOW,
        ["--set", "ingress.enabled=true,ingress.host=m,ingress.tls.enabled=true,auth.basic.enabled=true"],
    )
    assert "SECURITY WARNINGS" not in safe


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize(
    ("chart", "values", "words"),
    [
        (
            MLFLOW,
            {"ingress": {"enabled": True, "host": "m"}},
            ["ingress.tls.enabled=false", "without authentication"],
        ),
        (MLFLOW, {"networkPolicy": {"enabled": False}}, ["auth is off", "every pod of the cluster"]),
        (
            INFERENCE,
            {**SERVED, "ingress": {"enabled": True, "host": "m", "tls": {"enabled": True}}},
            ["the Ingress has no authentication"],
        ),
        (
            INFERENCE,
            {**SERVED, "networkPolicy": {"enabled": False}},
            ["every pod of the cluster can call the model"],
        ),
    ],
    ids=["mlflow-ingress", "mlflow-open", "inference-ingress", "inference-open"],
)
def test_strict_security_refuses_what_notes_warn_about(
    helm_name: str, chart: Path, values: dict[str, Any], words: list[str], tmp_path: Path
) -> None:
    message = template_error(chart, {**values, "global": {"strictSecurity": True}}, helm_name, tmp_path)
    for word in ["global.strictSecurity", *words]:
        assert word in message, message


@pytest.mark.parametrize("helm_name", HELMS)
def test_strict_security_accepts_a_hardened_stack(helm_name: str, tmp_path: Path) -> None:
    hardened_mlflow = {
        "global": {"strictSecurity": True},
        "auth": {"basic": {"enabled": True}},
        "ingress": {"enabled": True, "host": "mlflow.example.com", "tls": {"enabled": True}},
    }
    template(MLFLOW, values=hardened_mlflow, helm_name=helm_name, tmp_dir=tmp_path)
    hardened_service = {
        **SERVED,
        "global": {"strictSecurity": True},
        "ingress": {
            "enabled": True,
            "host": "iris.example.com",
            "tls": {"enabled": True},
            "annotations": {"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check"},
        },
    }
    template(INFERENCE, values=hardened_service, helm_name=helm_name, tmp_dir=tmp_path)


PRODUCTION = CHARTS / "mlflow" / "ci" / "production-values.yaml"


@pytest.mark.parametrize("helm_name", HELMS)
def test_the_production_preset_is_hardened(helm_name: str, tmp_path: Path) -> None:
    import yaml

    docs = template(MLFLOW, values_files=[PRODUCTION], helm_name=helm_name, tmp_dir=tmp_path)
    kinds = {d["kind"] for d in docs}
    assert {"NetworkPolicy", "PodDisruptionBudget", "Ingress"} <= kinds
    # Every credential comes from an existing Secret: the chart's own Secret holds only what it generates
    # for itself (the Flask session key of basic auth, the checksum salt).
    assert set(find(docs, "Secret", "t-mlflow")["data"]) == {"flask-secret-key", "checksum-salt"}
    ingress = find(docs, "Ingress")
    assert ingress["spec"]["tls"] and "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    server = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert "metrics-proxy" in {c["name"] for c in server["containers"]}
    assert _peers(docs, "t-mlflow")[0] == STACK
    assert _notes_from_file(PRODUCTION).count("SECURITY WARNINGS") == 0
    # strictSecurity is on: a change that exposes MLflow unprotected does not install.
    values = yaml.safe_load(PRODUCTION.read_text())
    for unsafe in ({"ingress": {"tls": {"enabled": False}}}, {"auth": {"basic": {"enabled": False}}}):
        broken = {**values, **{k: {**values[k], **v} for k, v in unsafe.items()}}
        assert "global.strictSecurity" in template_error(MLFLOW, broken, helm_name, tmp_path)


def _notes_from_file(values: Path) -> str:
    return _notes(MLFLOW, ["-f", str(values)])
