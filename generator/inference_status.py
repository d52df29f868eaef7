"""Inference services of a release for `helm-mlops status`: runtime, replicas ready/desired, phase.
Pure summaries of API objects (tested with recorded ones), fetched through the Kubernetes client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE_LABEL = "helm-mlops.io/inference-service"


@dataclass(frozen=True)
class ServiceSummary:
    name: str
    runtime: str
    ready: int
    desired: int
    phase: str
    url: str = ""


def summarize_deployment(dep: dict[str, Any], pods: list[dict[str, Any]]) -> ServiceSummary:
    status, labels = dep.get("status") or {}, dep["metadata"].get("labels") or {}
    desired = int((dep.get("spec") or {}).get("replicas", status.get("replicas", 0)) or 0)
    ready = int(status.get("readyReplicas") or 0)
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    if ready and ready >= desired:
        phase = "Running"
    elif "Failed" in phases or any(_crashing(p) for p in pods):
        phase = "Failed"
    else:
        phase = "Pending"
    return ServiceSummary(
        dep["metadata"]["name"], labels.get("helm-mlops.io/runtime", "?"), ready, desired, phase
    )


def _crashing(pod: dict[str, Any]) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in (
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "CreateContainerConfigError",
        ):
            return True
    return False


def summarize_isvc(isvc: dict[str, Any]) -> ServiceSummary:
    status = isvc.get("status") or {}
    conditions = {c["type"]: c.get("status") for c in status.get("conditions") or []}
    phase = (
        "Running"
        if conditions.get("Ready") == "True"
        else ("Failed" if conditions.get("Ready") == "False" else "Pending")
    )
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    return ServiceSummary(
        isvc["metadata"]["name"],
        "kserve",
        1 if phase == "Running" else 0,
        int(predictor.get("minReplicas", 1)),
        phase,
        str(status.get("url") or ""),
    )


def format_services(services: list[ServiceSummary]) -> list[str]:
    if not services:
        return []
    lines = [f"{'SERVICE':<40} {'RUNTIME':<9} {'READY':>7}  PHASE"]
    for s in services:
        url = f"  {s.url}" if s.url else ""
        lines.append(f"{s.name:<40} {s.runtime:<9} {f'{s.ready}/{s.desired}':>7}  {s.phase}{url}")
    return lines


def collect(kubeconfig: Path, namespace: str, release: str) -> list[ServiceSummary]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    selector = f"app.kubernetes.io/instance={release},{SERVICE_LABEL}"

    def raw(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(json.loads(call(*args, _preload_content=False, **kwargs).data))

    pods = raw(core.list_namespaced_pod, namespace, label_selector=f"app.kubernetes.io/instance={release}")[
        "items"
    ]
    out = []
    for dep in raw(apps.list_namespaced_deployment, namespace, label_selector=selector)["items"]:
        match = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
        mine = [p for p in pods if match.items() <= (p["metadata"].get("labels") or {}).items()]
        out.append(summarize_deployment(dep, mine))
    try:
        listed: Any = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", label_selector=selector
        )
        out += [summarize_isvc(i) for i in listed["items"]]
    except ApiException as exc:
        if exc.status != 404:  # 404: KServe is not installed
            raise
    return sorted(out, key=lambda s: s.name)
