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


# Baseline's safe sysctls (k8s.io/pod-security-admission policy/check_sysctls.go, up to 1.34).
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _context_violations(sc: dict[str, Any], where: str) -> list[str]:
    """Baseline's rules for a pod's or a container's securityContext that restricted keeps."""
    problems = []
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}: windowsOptions.hostProcess")
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        problems.append(f"{where}: seLinuxOptions {selinux}")
    if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"{where}: appArmorProfile must be RuntimeDefault or Localhost")
    return problems


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    pod_sc = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{flag} is set")
    problems += _context_violations(pod_sc, "pod")
    # The pod's own values count even where every container overrides them.
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod: runAsUser 0")
    if (pod_sc.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        problems.append("pod: seccompProfile must be RuntimeDefault or Localhost")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"pod: sysctl {sysctl.get('name')} is not a safe one")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} uses {sorted(kinds - ALLOWED_VOLUME_TYPES)}")
    containers = (
        spec.get("initContainers", []) + spec.get("containers", []) + spec.get("ephemeralContainers", [])
    )
    for c in containers:
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        problems += _context_violations(sc, where)
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount {sc['procMount']}")
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
