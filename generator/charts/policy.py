"""Offline checks of rendered objects: Pod Security Standard "restricted" (the admission rules of
k8s.io/pod-security-admission, restricted profile), resources, and our label conventions. The e2e
tests let the real API server's PodSecurity admission judge the same pods."""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    pod_sc = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{flag} is set")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} uses {sorted(kinds - ALLOWED_VOLUME_TYPES)}")
    containers = spec.get("initContainers", []) + spec.get("containers", [])
    for c in containers:
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities {caps['add']}")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort")
    return problems


def hardening_violations(spec: dict[str, Any]) -> list[str]:
    """Beyond "restricted": our own bar (read-only root, requests and limits everywhere)."""
    problems = []
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problems.append(f"container {c['name']}: readOnlyRootFilesystem must be true")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in res.get(part, {}):
                    problems.append(f"container {c['name']}: no {part}.{resource}")
    return problems


def missing_labels(obj: dict[str, Any]) -> list[str]:
    labels = obj["metadata"].get("labels", {})
    return [k for k in REQUIRED_LABELS if k not in labels]
