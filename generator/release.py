"""Release lifecycle through pyhelm3 (the helm driver) and the namespace and status through the
Kubernetes API. Functions return data; the CLI prints it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.errors import ToolError, UserError
from generator.values_check import is_values_error


@dataclass(frozen=True)
class PodStatus:
    name: str
    component: str
    phase: str
    ready: str


@dataclass(frozen=True)
class Installed:
    release: str
    namespace: str
    revision: int
    status: str
    notes: str


def _core_api(kubeconfig: Path) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))  # type: ignore[no-untyped-call]


def ensure_namespace(kubeconfig: Path, namespace: str) -> None:
    """Create the namespace if missing, enforcing Pod Security "restricted" on a new one (an
    existing namespace's labels are the owner's business and stay as they are)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = _core_api(kubeconfig)
    try:
        api.read_namespace(namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise ToolError(f"cannot read namespace {namespace}: {exc.reason}") from None
        labels = {
            "pod-security.kubernetes.io/enforce": "restricted",
            "app.kubernetes.io/part-of": "helm-mlops",
        }
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels)))


def install(
    helm: str,
    kubeconfig: Path,
    chart: Path,
    release: str,
    namespace: str,
    values: dict[str, Any],
    source: str,
    timeout: str = "5m",
) -> Installed:
    from pyhelm3 import Client
    from pyhelm3.errors import Error as PyHelmError

    async def _install() -> Installed:
        client = Client(executable=helm, kubeconfig=kubeconfig)
        loaded = await client.get_chart(chart)
        rev = await client.install_or_upgrade_release(
            release, loaded, values, namespace=namespace, wait=True, timeout=timeout, create_namespace=False
        )
        return Installed(release, namespace, rev.revision, str(rev.status.value), rev.notes or "")

    try:
        return asyncio.run(_install())
    except PyHelmError as exc:
        message = exc.stderr.decode(errors="replace").strip()
        if is_values_error(message):
            raise UserError(message, field=source, hint="change the values named above") from None
        raise ToolError(f"helm install of {release} failed: {message}") from None


def pod_statuses(kubeconfig: Path, namespace: str, release: str) -> list[PodStatus]:
    pods = _core_api(kubeconfig).list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={release}"
    )
    out = []
    for pod in pods.items:
        meta, status, spec = pod.metadata, pod.status, pod.spec
        statuses = (status.container_statuses if status else None) or []
        ready = f"{sum(1 for s in statuses if s.ready)}/{len(spec.containers) if spec else 0}"
        component = ((meta.labels if meta else None) or {}).get("app.kubernetes.io/component", "")
        phase = (status.phase if status else None) or "Unknown"
        out.append(PodStatus(str(meta.name if meta else "?"), component, phase, ready))
    return sorted(out, key=lambda p: p.name)
