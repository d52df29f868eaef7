"""`helm-mlops ui` and `helm-mlops predict`: a release's MLflow UI and its inference services, reached
from this machine through a port-forward over the API server (generator.kube.portforward).

ui: the release's MLflow Service (the mlflow chart's `server` Service), its tracking server checked
through the tunnel, the local URL printed (and opened with --open) until Ctrl-C.

predict: the release's inference service SERVICE (the chart alias, the Deployment's name or its
helm-mlops.io/inference-service label), one request to its Service through the tunnel, shown as
`runtime predict` shows it: the status, the latency and the answer."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.errors import ToolError, UserError
from generator.kube import portforward
from generator.kube.client import Kube
from generator.kube.status import SERVICE_LABEL, kserve_services
from generator.paths import command_name
from generator.runtime import request_body, send

INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
NAME = "app.kubernetes.io/name"
RUNTIME_LABEL = "helm-mlops.io/runtime"
UI_PORT = 5000  # MLflow's own default; taken, `ui` without --port falls back to a free one


def status_hint(release: str, namespace: str) -> str:
    return f"see what is not ready: `{command_name()} status {release} -n {namespace}`"


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def _release_is_empty(kube: Kube, namespace: str, release: str) -> bool:
    selector = f"{INSTANCE}={release}"
    core = kube.core()
    return not kube.items(
        f"list services of {release} in namespace {namespace}",
        core.list_namespaced_service,
        namespace,
        label_selector=selector,
    ) and not kube.items(
        f"list pods of {release} in namespace {namespace}",
        core.list_namespaced_pod,
        namespace,
        label_selector=selector,
    )


def _unknown_release(release: str, namespace: str) -> UserError:
    return UserError(
        f"nothing of release {release} in namespace {namespace}",
        field="RELEASE",
        hint=f"check the name and namespace: `helm list -n {namespace}` (or -A)",
    )


def _release_services(kube: Kube, namespace: str, release: str) -> list[dict[str, Any]]:
    return kube.items(
        f"list services of {release} in namespace {namespace}",
        kube.core().list_namespaced_service,
        namespace,
        label_selector=f"{INSTANCE}={release},{COMPONENT}=server",
    )


# ui --------------------------------------------------------------------------------------------------


def is_mlflow(service: dict[str, Any]) -> bool:
    """The mlflow chart's Service: its name label (the chart's name, or an umbrella's alias) or its
    helm.sh/chart label says mlflow."""
    labels = _labels(service)
    return labels.get(NAME) == "mlflow" or labels.get("helm.sh/chart", "").startswith("mlflow-")


def mlflow_service(kube: Kube, namespace: str, release: str) -> str:
    found = sorted(
        str(s["metadata"]["name"]) for s in _release_services(kube, namespace, release) if is_mlflow(s)
    )
    if found:
        return found[0]
    if _release_is_empty(kube, namespace, release):
        raise _unknown_release(release, namespace)
    raise UserError(
        f"release {release} in namespace {namespace} has no MLflow",
        field="RELEASE",
        hint="name the release whose stack has MLflow (`helm list -n NAMESPACE`)",
    )


def static_prefix(target: portforward.Backend) -> str:
    """MLflow's --static-prefix, read off its readiness probe (`<prefix>/health`)."""
    path = target.readiness_path() or "/health"
    return path.removesuffix("/health").rstrip("/") if path.endswith("/health") else ""


def check_mlflow(url: str, tunnel: portforward.Tunnel, attempts: int = 3) -> str:
    """Ask the tracking server through the tunnel; returns what answered, or raises ToolError."""
    import requests

    problem = ""
    for attempt in range(attempts):
        try:
            health = requests.get(f"{url}/health", timeout=15)
            if health.status_code == 200:
                return "healthy"
            api = requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=15)
            if api.status_code in (401, 403):
                return "answering (sign in with the MLflow credentials)"
            if api.status_code < 500:
                return "answering"
            problem = f"it answered {health.status_code} on /health and {api.status_code} on the API"
        except requests.RequestException as exc:
            problem = f"no answer ({type(exc).__name__})"
        if tunnel.errors:
            problem += f"; port-forward: {tunnel.errors[-1]}"
        if attempt + 1 < attempts:
            time.sleep(1)
    t = tunnel.target
    raise ToolError(
        f"MLflow (Service {t.service}, pod {t.pod} port {t.port}) did not answer through the port-forward: "
        f"{problem}\n  fix: check the pod's logs (kubectl -n {t.namespace} logs {t.pod})"
    )


def _until_interrupted() -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM, both raised as KeyboardInterrupt."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    finally:
        signal.signal(signal.SIGTERM, previous)


def ui(
    kube: Kube,
    namespace: str,
    release: str,
    port: int | None,
    open_browser: bool,
    *,
    echo: Callable[[str], None],
    warn: Callable[[str], None],
    wait: Callable[[], None] = _until_interrupted,
) -> None:
    """Forward a local port to the release's MLflow until Ctrl-C (or until `wait` returns)."""
    service = mlflow_service(kube, namespace, release)
    target = portforward.backend(kube, namespace, service, "http", hint=status_hint(release, namespace))
    if port is None:
        try:
            listener = portforward.bind(UI_PORT)
        except UserError:
            listener = portforward.bind(0)
            warn(f"port {UI_PORT} is in use: using {listener.getsockname()[1]} (--port chooses)")
    else:
        listener = portforward.bind(port)
    with portforward.forward(kube, target, listener=listener) as tunnel:
        url = f"{tunnel.url}{static_prefix(target)}"
        state = check_mlflow(url, tunnel)
        tunnel.on_error = lambda message: warn(f"port-forward: {message}")
        echo(
            f"Forwarding 127.0.0.1:{tunnel.port} -> Service {service} port {target.service_port} "
            f"(pod {target.pod} port {target.port}); MLflow is {state}"
        )
        echo(f"MLflow UI: {url}/ (Ctrl-C to stop)")
        if open_browser:
            import webbrowser

            if not webbrowser.open(f"{url}/"):
                warn("could not open a browser: open the URL above yourself")
        try:
            wait()
        except KeyboardInterrupt:
            echo("port-forward stopped")


# predict ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceTarget:
    name: str  # the Deployment (= the helm-mlops.io/inference-service label)
    runtime: str
    model: str  # the model's name in the v2 protocol
    service: str  # the Kubernetes Service in front of it


def matches_service(obj: dict[str, Any], service: str, release: str) -> bool:
    """An inference Deployment or InferenceService is SERVICE given as its name, its
    helm-mlops.io/inference-service label, the chart alias (its name label), or without the release
    prefix of its name."""
    labels = _labels(obj)
    names = {obj["metadata"]["name"], labels.get(SERVICE_LABEL), labels.get(NAME)}
    return service in names or f"{release}-{service}" in names


def read_data(value: str, stdin: Callable[[], str] = lambda: sys.stdin.read()) -> str:
    """--data: JSON text, `@file`, or `@-` for standard input."""
    if not value.startswith("@"):
        return value
    if value == "@-":
        return stdin()
    path = Path(value[1:])
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read {path} ({getattr(exc, 'strerror', None) or exc})",
            field="--data",
            hint="pass JSON, @FILE with JSON in it, or @- to read standard input",
        ) from None


def model_name(kube: Kube, namespace: str, deployment: dict[str, Any]) -> str:
    """The v2 model name: the runtime's HM_RUNTIME_NAME, MLServer's model-settings.json, else the
    chart's default `model`."""
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    for container in containers:
        for env in container.get("env") or []:
            if env.get("name") == "HM_RUNTIME_NAME" and env.get("value"):
                return str(env["value"])
    if _labels(deployment).get(RUNTIME_LABEL) == "mlserver":
        name = f"{deployment['metadata']['name']}-code"
        config = kube.call(
            f"ConfigMap {name} in namespace {namespace}",
            kube.core().read_namespaced_config_map,
            name,
            namespace,
            missing_ok=True,
        )
        try:
            return str(json.loads((config.data or {})["model-settings.json"])["name"])
        except (AttributeError, KeyError, TypeError, ValueError):
            pass
    return "model"


def _kserve_error(isvc: dict[str, Any], release: str, namespace: str) -> UserError:
    name = isvc["metadata"]["name"]
    url = str((isvc.get("status") or {}).get("url") or "")
    if url:
        hint = (
            f"send the request to the InferenceService's URL: `helm-mlops runtime predict --url {url} "
            f"--name {name} --input '[...]'` (Open Inference Protocol v2)"
        )
    else:
        hint = f"it has no URL yet (not ready): {status_hint(release, namespace)}"
    return UserError(
        f"{name} is a KServe InferenceService: KServe runs its pods, so there is no Deployment of this "
        "release to port-forward to",
        field="SERVICE",
        hint=hint,
    )


def inference_target(kube: Kube, namespace: str, release: str, service: str) -> InferenceTarget:
    selector = f"{INSTANCE}={release},{SERVICE_LABEL}"
    deployments = kube.items(
        f"list deployments of {release} in namespace {namespace}",
        kube.apps().list_namespaced_deployment,
        namespace,
        label_selector=selector,
    )
    isvcs = kserve_services(kube, namespace, release)
    mine = [d for d in deployments if matches_service(d, service, release)]
    if not mine:
        kserve = [i for i in isvcs if matches_service(i, service, release)]
        if kserve:
            raise _kserve_error(kserve[0], release, namespace)
        names = sorted({_labels(o).get(NAME) or o["metadata"]["name"] for o in deployments + isvcs})
        if not names and _release_is_empty(kube, namespace, release):
            raise _unknown_release(release, namespace)
        raise UserError(
            f"release {release} has no inference service {service}"
            + (f" (it has: {', '.join(names)})" if names else " (it has no inference services)"),
            field="SERVICE",
            hint=f"pass one `{command_name()} status {release} -n {namespace}` lists (or its chart alias)",
        )
    if len(mine) > 1:
        raise UserError(
            f"{service} matches several inference services: "
            + ", ".join(sorted(d["metadata"]["name"] for d in mine)),
            field="SERVICE",
            hint="pass the full name",
        )
    deployment = mine[0]
    template = _labels(deployment["spec"]["template"])
    fronting = sorted(
        s["metadata"]["name"]
        for s in _release_services(kube, namespace, release)
        if (sel := (s.get("spec") or {}).get("selector")) and sel.items() <= template.items()
    )
    name = deployment["metadata"]["name"]
    if not fronting:
        raise UserError(f"inference service {name} has no Service in front of it", field="SERVICE")
    return InferenceTarget(
        name=name,
        runtime=_labels(deployment).get(RUNTIME_LABEL, "fastapi"),
        model=model_name(kube, namespace, deployment),
        service=name if name in fronting else fronting[0],
    )


def predict(
    kube: Kube,
    namespace: str,
    release: str,
    service: str,
    data: str,
    v2: bool,
    *,
    stdin: Callable[[], str] = lambda: sys.stdin.read(),
) -> Iterator[str]:
    """One request to SERVICE through a port-forward: its status and latency, then the answer."""
    import requests

    text = read_data(data, stdin)
    request_body(text, "model" if v2 else None, field="--data")  # bad JSON fails before any cluster call
    target = inference_target(kube, namespace, release, service)
    if target.runtime == "bentoml" and v2:
        raise UserError(
            f"{target.name} runs BentoML, which does not serve the v2 protocol",
            field="--v2",
            hint="drop --v2",
        )
    v2 = v2 or target.runtime == "mlserver"  # MLServer serves the v2 protocol only (the POST line shows it)
    path, body = request_body(text, target.model if v2 else None, field="--data")
    backend = portforward.backend(
        kube, namespace, target.service, "http", hint=status_hint(release, namespace)
    )
    with portforward.forward(kube, backend) as tunnel, requests.Session() as session:
        # Open the tunnel (and see that the server answers) first, so the latency shown is the
        # request's own round trip through the port-forward, not the websocket's setup.
        ready = backend.readiness_path() or "/"
        try:
            session.get(f"{tunnel.url}{ready}", timeout=30)
        except requests.RequestException as exc:
            problem = tunnel.errors[-1] if tunnel.errors else type(exc).__name__
            raise ToolError(
                f"{target.name} (Service {backend.service}, pod {backend.pod} port {backend.port}) did not "
                f"answer through the port-forward: {problem}\n"
                f"  fix: check the pod's logs (kubectl -n {namespace} logs {backend.pod})"
            ) from None
        yield from send(
            tunnel.url,
            path,
            body,
            field="--data",
            shown=f"{path} on {target.name} (pod {backend.pod})",
            session=session,
            unreachable=f"check the pod's logs (kubectl -n {namespace} logs {backend.pod})",
        )
