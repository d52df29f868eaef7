"""Checks against the cluster before anything is installed (`install`, `upgrade`, `train`).

What a release needs is read from its rendered manifests (`needs`), what the cluster has is fetched once
(`gather`), and `problems` compares the two: pure functions over API objects as the server returns them,
tested with recorded data. Every problem carries its fix, and all of them are reported together."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from generator.errors import UserError
from generator.kube.client import Kube

# Kinds that come from an add-on, and what to install for them.
ADDONS: dict[str, str] = {
    "serving.kserve.io": "KServe (its CRDs and controller)",
    "kubeflow.org": "the Kubeflow Training Operator (PyTorchJob)",
    "trainer.kubeflow.org": "Kubeflow Trainer 2 (TrainJob)",
    "monitoring.coreos.com": "the Prometheus Operator's CRDs (or set serviceMonitor.enabled=false)",
    "gateway.networking.k8s.io": "the Gateway API CRDs (or use ingress instead of httpRoute)",
}
BUILTIN_GROUPS = {
    "",
    "v1",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
}
GPU_RESOURCE = re.compile(r"^[a-z0-9.-]+/gpu$")


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str


@dataclass
class Needs:
    """What a release's manifests ask of the cluster."""

    api_kinds: set[tuple[str, str]] = field(default_factory=set)  # (apiVersion, kind), add-ons only
    gpus: dict[str, int] = field(default_factory=dict)  # extended resource -> most asked by one pod
    ingress_classes: set[str] = field(default_factory=set)  # named classes ("" = the default one)
    storage_classes: set[str] = field(default_factory=set)  # named classes ("" = the default one)
    kube_version: str = ""  # the chart's kubeVersion constraint
    secrets: set[str] = field(default_factory=set)  # Secrets pods read that the release does not create
    claims: set[str] = field(default_factory=set)  # claims pods mount that the release does not create


@dataclass
class Facts:
    """What the cluster has, as far as the checks need."""

    version: str  # e.g. v1.34.1
    namespace_exists: bool
    can_create_namespace: bool
    served: set[tuple[str, str]]  # (apiVersion, kind) the API server serves
    nodes: list[dict[str, Any]]
    ingress_classes: list[dict[str, Any]]
    storage_classes: list[dict[str, Any]]
    missing_secrets: set[str] = field(default_factory=set)
    missing_claims: set[str] = field(default_factory=set)


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _pod_resources(node: Any) -> Iterator[dict[str, Any]]:
    """Every `resources` block of a container in any pod template under `node` (and a TrainJob's
    `resourcesPerNode`)."""
    if isinstance(node, Mapping):
        if isinstance(node.get("resourcesPerNode"), Mapping):
            yield dict(node["resourcesPerNode"])
        for key in ("containers", "initContainers"):
            for container in node.get(key) or []:
                if isinstance(container, Mapping) and isinstance(container.get("resources"), Mapping):
                    yield dict(container["resources"])
        for value in node.values():
            if isinstance(value, Mapping | list):
                yield from _pod_resources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _pod_resources(item)


def gpu_requests(docs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The most of each GPU resource (`*/gpu`) one container asks for, over all pod templates."""
    out: dict[str, int] = {}
    for doc in docs:
        for resources in _pod_resources(doc.get("spec") or {}):
            for part in ("limits", "requests"):
                for name, amount in (resources.get(part) or {}).items():
                    if GPU_RESOURCE.match(str(name)):
                        try:
                            count = int(str(amount))
                        except ValueError:
                            continue
                        out[str(name)] = max(out.get(str(name), 0), count)
    return {k: v for k, v in out.items() if v > 0}


def needs(docs: Iterable[Mapping[str, Any]], kube_version: str = "") -> Needs:
    found = Needs(kube_version=kube_version)
    docs = list(docs)
    for doc in docs:
        api, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        spec = doc.get("spec") or {}
        if _group(api) not in BUILTIN_GROUPS:
            found.api_kinds.add((api, kind))
        if kind == "Ingress":
            found.ingress_classes.add(str(spec.get("ingressClassName") or ""))
        if kind == "PersistentVolumeClaim":
            claims = [spec]
        elif kind == "StatefulSet":
            claims = [c.get("spec") or {} for c in spec.get("volumeClaimTemplates") or []]
        else:
            claims = []
        for claim in claims:
            sc = claim.get("storageClassName")
            if sc is None:
                found.storage_classes.add("")
            elif sc:  # "" asks for no class at all (a pre-made volume)
                found.storage_classes.add(str(sc))
    found.gpus = gpu_requests(docs)
    made = {(str(d.get("kind")), str((d.get("metadata") or {}).get("name"))) for d in docs}
    for kind, name in _references(docs):
        if (kind, name) not in made:
            (found.secrets if kind == "Secret" else found.claims).add(name)
    return found


def _references(node: Any) -> Iterator[tuple[str, str]]:
    """("Secret" | "PersistentVolumeClaim", name) for what pod specs under `node` read and cannot start
    without (optional references left out)."""
    if isinstance(node, Mapping):
        claim = node.get("persistentVolumeClaim")
        if isinstance(claim, Mapping) and claim.get("claimName"):
            yield "PersistentVolumeClaim", str(claim["claimName"])
        for key, name_key in (("secret", "secretName"), ("secretKeyRef", "name"), ("secretRef", "name")):
            ref = node.get(key)
            if isinstance(ref, Mapping) and ref.get(name_key) and not ref.get("optional"):
                yield "Secret", str(ref[name_key])
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def allocatable(nodes: list[dict[str, Any]], resource: str) -> list[tuple[str, int]]:
    """(node, amount) for the nodes whose allocatable resources include `resource`."""
    out = []
    for node in nodes:
        amount = ((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")
        try:
            count = int(str(amount))
        except ValueError:
            continue
        if count > 0:
            out.append((str(node["metadata"]["name"]), count))
    return out


def nodes_with(nodes: list[dict[str, Any]], resource: str) -> list[str]:
    return [name for name, _ in allocatable(nodes, resource)]


def gpu_problems(wanted: Mapping[str, int], nodes: list[dict[str, Any]]) -> list[Problem]:
    """One problem per GPU resource no node can give a pod (none has it, or not that many)."""
    out = []
    for resource, count in sorted(wanted.items()):
        have = allocatable(nodes, resource)
        if not have:
            out.append(
                Problem(
                    f"{count} {resource} requested per pod, but no node of the cluster has {resource}",
                    "add GPU nodes (with their device plugin), drop the GPU request, or pass "
                    "--skip-preflight when an autoscaler adds GPU nodes on demand",
                )
            )
        elif max(n for _, n in have) < count:
            most = max(have, key=lambda x: x[1])
            out.append(
                Problem(
                    f"{count} {resource} requested per pod, but the most one node has is {most[1]} "
                    f"({most[0]})",
                    "ask for fewer GPUs per pod (more pods instead), or add bigger GPU nodes",
                )
            )
    return out


def gpu_problem(values: dict[str, Any], nodes: list[dict[str, Any]]) -> str | None:
    """A training job's GPU request (its values' `gpu`) against the nodes, as one message or None."""
    gpu = values.get("gpu") or {}
    count = int(gpu.get("count") or 0)
    resource = str(gpu.get("resourceName") or "nvidia.com/gpu")
    found = gpu_problems({resource: count} if count > 0 else {}, nodes)
    return found[0].what if found else None


def _default(objs: list[dict[str, Any]], annotation: str) -> str | None:
    for obj in objs:
        if ((obj.get("metadata") or {}).get("annotations") or {}).get(annotation) == "true":
            return str(obj["metadata"]["name"])
    return None


def version_satisfies(version: str, constraint: str) -> bool:
    """Whether a Kubernetes version (v1.34.1, v1.30.2-gke.1) meets a chart's kubeVersion, a list of
    comparisons such as `>=1.29.0-0` (all must hold; `||` separates alternatives)."""
    import semver

    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if not match:
        return True  # an unknown version: helm decides
    have = semver.Version(int(match[1]), int(match[2]), int(match[3] or 0))
    for alternative in constraint.split("||"):
        terms = re.findall(r"(>=|<=|!=|>|<|=|\^|~)?\s*v?(\d+(?:\.\d+){0,2})(?:-[0-9A-Za-z.-]+)?", alternative)
        if all(_holds(have, op, text) for op, text in terms):
            return True
    return False


def _holds(have: Any, op: str, text: str) -> bool:
    import semver

    parts = [int(p) for p in text.split(".")] + [0, 0]
    want = semver.Version(parts[0], parts[1], parts[2])
    if op == ">=":
        return bool(have >= want)
    if op == ">":
        return bool(have > want)
    if op == "<=":
        return bool(have <= want)
    if op == "<":
        return bool(have < want)
    if op == "!=":
        return bool(have != want)
    if op == "^":
        return bool(have >= want and have.major == want.major)
    if op == "~":
        return bool(have >= want and (have.major, have.minor) == (want.major, want.minor))
    return bool(have == want)


def problems(need: Needs, facts: Facts, namespace: str) -> list[Problem]:
    """Everything the cluster lacks for the release, each with its fix."""
    out: list[Problem] = []
    if need.kube_version and not version_satisfies(facts.version, need.kube_version):
        out.append(
            Problem(
                f"the cluster runs Kubernetes {facts.version}; the charts need {need.kube_version}",
                "upgrade the cluster, or install into one that meets the charts' kubeVersion",
            )
        )
    if not facts.namespace_exists and not facts.can_create_namespace:
        out.append(
            Problem(
                f"namespace {namespace} does not exist and your user may not create namespaces",
                f"ask an administrator to create {namespace} (Pod Security restricted), or pick "
                "an existing namespace with -n",
            )
        )
    for api, kind in sorted(need.api_kinds - facts.served):
        addon = ADDONS.get(_group(api), f"the CRD that serves {api}")
        out.append(Problem(f"the cluster does not serve {kind} ({api})", f"install {addon} first"))
    for name in sorted(facts.missing_secrets):
        out.append(
            Problem(
                f"the Secret {name} that the stack reads does not exist in namespace {namespace}",
                "create it first (the stack's README lists the keys each Secret needs), or change the "
                "answer that names it",
            )
        )
    for name in sorted(facts.missing_claims):
        out.append(
            Problem(
                f"the PersistentVolumeClaim {name} that the stack mounts does not exist in namespace "
                f"{namespace} (its pods would stay Pending)",
                "create it first (with what the stack reads from it, e.g. the model), or change the "
                "answer that names it (a model's pvc:// uri)",
            )
        )
    out += gpu_problems(need.gpus, facts.nodes)
    out += _class_problems(
        need.ingress_classes,
        facts.ingress_classes,
        "IngressClass",
        "ingressclass.kubernetes.io/is-default-class",
        "install that ingress controller, or set the component's ingress.className (answers: "
        "mlflow.ingress.className, inference.services[N].ingress.className) to one the cluster has",
        Problem(
            "an Ingress names no ingress class and the cluster has no default IngressClass",
            "set the component's ingress.className (answers: mlflow.ingress.className, "
            "inference.services[N].ingress.className), or mark an IngressClass as the default",
        ),
    )
    out += _class_problems(
        need.storage_classes,
        facts.storage_classes,
        "StorageClass",
        "storageclass.kubernetes.io/is-default-class",
        "set the storage class (global.storageClass) to one the cluster has",
        Problem(
            "volumes are claimed without a storage class and the cluster has no default "
            "StorageClass: they would stay Pending",
            "set the storage class (global.storageClass), or mark a StorageClass as the default",
        ),
    )
    return out


def _class_problems(
    wanted: set[str],
    have: list[dict[str, Any]],
    kind: str,
    default_annotation: str,
    fix: str,
    no_default: Problem,
) -> list[Problem]:
    """Named classes that do not exist, and "" (the default) when no class is the default."""
    names = {str(c["metadata"]["name"]) for c in have}
    out = []
    for name in sorted(wanted):
        if name and name not in names:
            listed = ", ".join(sorted(names)) or "none"
            out.append(Problem(f"the {kind} {name} does not exist (the cluster has: {listed})", fix))
        elif not name and _default(have, default_annotation) is None:
            out.append(no_default)
    return out


# Fetching ------------------------------------------------------------------------------------------


def served(kube: Kube, api_kinds: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (apiVersion, kind) pairs the API server serves (its discovery documents)."""
    out = set()
    by_api: dict[str, set[str]] = {}
    for api, kind in api_kinds:
        by_api.setdefault(api, set()).add(kind)
    for api, kinds in by_api.items():
        args: tuple[str, ...] = tuple(api.rsplit("/", 1)) if "/" in api else ()
        fn = kube.custom().get_api_resources if args else kube.core().get_api_resources
        found = kube.call(f"discover {api}", fn, *args, missing_ok=True)
        names = {str(r.kind) for r in (found.resources if found is not None else [])}
        out |= {(api, k) for k in kinds if k in names}
    return out


def can_i(kube: Kube, verb: str, resource: str, group: str = "", namespace: str | None = None) -> bool:
    from kubernetes import client

    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, group=group, namespace=namespace
            )
        )
    )
    api = client.AuthorizationV1Api(kube.api_client)
    done = kube.call(f"may I {verb} {resource}", api.create_self_subject_access_review, review)
    return bool(done.status.allowed)


def gather(kube: Kube, namespace: str, need: Needs) -> Facts:
    """One round of reads: the server's version (which also proves it reachable), the namespace,
    discovery for add-on kinds, and nodes/classes only when the release needs them."""
    from kubernetes import client

    version = kube.call("get the server version", client.VersionApi(kube.api_client).get_code)
    core = kube.core()
    exists = kube.call(f"namespace {namespace}", core.read_namespace, namespace, missing_ok=True) is not None
    networking, storage = client.NetworkingV1Api(kube.api_client), client.StorageV1Api(kube.api_client)
    missing: dict[str, set[str]] = {"Secret": set(), "PersistentVolumeClaim": set()}
    for kind, names, read in (
        ("Secret", need.secrets, core.read_namespaced_secret),
        ("PersistentVolumeClaim", need.claims, core.read_namespaced_persistent_volume_claim),
    ):
        for name in sorted(names):
            if not exists:
                missing[kind].add(name)
                continue
            try:
                found = kube.call(f"get {kind} {name}", read, name, namespace, missing_ok=True)
            except UserError:  # not allowed to look (RBAC): helm will tell
                continue
            if found is None:
                missing[kind].add(name)
    return Facts(
        missing_secrets=missing["Secret"],
        missing_claims=missing["PersistentVolumeClaim"],
        version=str(version.git_version),
        namespace_exists=exists,
        can_create_namespace=exists or can_i(kube, "create", "namespaces"),
        served=served(kube, need.api_kinds),
        nodes=kube.items("list nodes", core.list_node) if need.gpus else [],
        ingress_classes=kube.items("list IngressClasses", networking.list_ingress_class)
        if need.ingress_classes
        else [],
        storage_classes=kube.items("list StorageClasses", storage.list_storage_class)
        if need.storage_classes
        else [],
    )


def preflight_gpus(values: dict[str, Any], kube: Kube) -> str | None:
    """`train`'s check: its values' GPU request against the nodes."""
    gpu = values.get("gpu") or {}
    if int(gpu.get("count") or 0) <= 0:
        return None
    nodes = kube.items("list nodes (GPU preflight)", kube.core().list_node)
    return gpu_problem(values, nodes)
