"""Checks against the cluster before anything is installed. Pure decisions over node objects (as the
API server returns them) plus one fetch."""

from __future__ import annotations

from typing import Any

from generator.kube.client import Kube


def nodes_with(nodes: list[dict[str, Any]], resource: str) -> list[str]:
    """Names of the nodes whose allocatable resources include `resource` (non-zero)."""
    names = []
    for node in nodes:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        if str(allocatable.get(resource, "0")) not in ("0", ""):
            names.append(str(node["metadata"]["name"]))
    return names


def gpu_problem(values: dict[str, Any], nodes: list[dict[str, Any]]) -> str | None:
    """A problem message when the values ask for GPUs that no node has, else None."""
    gpu = values.get("gpu") or {}
    count = int(gpu.get("count") or 0)
    resource = str(gpu.get("resourceName") or "nvidia.com/gpu")
    if count <= 0 or nodes_with(nodes, resource):
        return None
    return f"{count} {resource} requested per pod, but no node of the cluster has {resource}"


def preflight_gpus(values: dict[str, Any], kube: Kube) -> str | None:
    gpu = values.get("gpu") or {}
    if int(gpu.get("count") or 0) <= 0:
        return None
    nodes = kube.items("list nodes (GPU preflight)", kube.core().list_node)
    return gpu_problem(values, nodes)
