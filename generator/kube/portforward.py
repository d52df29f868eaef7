"""A local port forwarded to a Service's port through the API server, as `kubectl port-forward svc/...`
does: the Service's targetPort on one Ready pod behind it, reached over the pod's `portforward`
subresource (the Kubernetes client's websocket), so it works wherever the kubeconfig does: no kubectl
binary, no route to the pod network.

`backend()` resolves Service -> port -> targetPort -> a Ready pod (the Service's selector; a named
targetPort through the pod's container ports). `forward()` is a context manager: a listener on
127.0.0.1 whose every accepted connection gets its own websocket to the pod and a thread that pipes
bytes both ways. Leaving the block (Ctrl-C included) stops accepting, ends the pipes and joins their
threads."""

from __future__ import annotations

import errno
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from generator.errors import HelmMlopsError, UserError
from generator.kube.client import Kube

POLL_SECONDS = 0.2  # how soon the accept loop and the pipes notice a stop
JOIN_SECONDS = 5.0


@dataclass(frozen=True)
class Backend:
    """Where a Service's port leads: `pod`'s container port `port`."""

    namespace: str
    service: str
    service_port: int
    pod: str
    port: int
    pod_object: dict[str, Any] = field(repr=False, compare=False)

    def container(self) -> dict[str, Any]:
        """The pod's container that exposes `port` (else the first)."""
        containers = (self.pod_object.get("spec") or {}).get("containers") or [{}]
        for c in containers:
            if any(p.get("containerPort") == self.port for p in c.get("ports") or []):
                return dict(c)
        return dict(containers[0])

    def readiness_path(self) -> str | None:
        """The path of the container's HTTP readiness probe (MLflow's `<prefix>/health`, the runtime's
        `/v2/health/ready`), if it has one."""
        probe = self.container().get("readinessProbe") or {}
        path = (probe.get("httpGet") or {}).get("path")
        return str(path) if path else None


def is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pick_port(service: dict[str, Any], wanted: str | int | None) -> dict[str, Any]:
    """The Service port named or numbered `wanted`; by default the one named http, else the first."""
    ports = list((service.get("spec") or {}).get("ports") or [])
    name = service["metadata"]["name"]
    if not ports:
        raise UserError(f"Service {name} has no ports", field="SERVICE")
    if wanted is None:
        return next((p for p in ports if p.get("name") == "http"), ports[0])
    for p in ports:
        if wanted in (p.get("name"), p.get("port"), str(p.get("port"))):
            return dict(p)
    shown = ", ".join(f"{p.get('name') or '-'}:{p.get('port')}" for p in ports)
    raise UserError(f"Service {name} has no port {wanted} (ports: {shown})", field="SERVICE")


def target_port(service_port: dict[str, Any], pod: dict[str, Any]) -> int:
    """The container port a Service port leads to in `pod` (a number, or a container port's name)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    raise UserError(
        f"pod {pod['metadata']['name']} has no container port named {target}",
        field="SERVICE",
        hint="the Service's targetPort must name a port of its pods' containers",
    )


def choose_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The oldest Ready pod (what `kubectl port-forward svc/...` would also reach: a ready one)."""
    ready = sorted(
        (p for p in pods if is_ready(p)),
        key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
    )
    return ready[0] if ready else None


def backend(
    kube: Kube, namespace: str, service: str, port: str | int | None = None, *, hint: str | None = None
) -> Backend:
    """Resolve Service `service` (its port `port`) to a Ready pod and container port. No Ready pod:
    UserError naming the Service, with `hint`."""
    core = kube.core()
    svc = kube.raw(
        f"Service {service} in namespace {namespace}", core.read_namespaced_service, service, namespace
    )
    chosen = pick_port(svc, port)
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        raise UserError(
            f"Service {service} has no pod selector: there is no pod to forward to", field="SERVICE"
        )
    pods = kube.items(
        f"list pods of Service {service} in namespace {namespace}",
        core.list_namespaced_pod,
        namespace,
        label_selector=",".join(f"{k}={v}" for k, v in sorted(selector.items())),
    )
    pod = choose_pod(pods)
    if pod is None:
        waiting = f" ({len(pods)} pod(s), none ready)" if pods else " (no pods)"
        raise UserError(
            f"Service {service} in namespace {namespace} has no ready pods{waiting}",
            field="SERVICE",
            hint=hint or "wait until its pods are ready (kubectl get pods)",
        )
    return Backend(
        namespace, service, int(chosen["port"]), pod["metadata"]["name"], target_port(chosen, pod), pod
    )


class Tunnel:
    """The listener and its pipes; made by `forward()`."""

    def __init__(
        self, kube: Kube, target: Backend, listener: socket.socket, on_error: Callable[[str], None] | None
    ) -> None:
        self.kube, self.target, self._listener = kube, target, listener
        self.port: int = int(listener.getsockname()[1])
        self.errors: list[str] = []  # what went wrong on connections so far (the last 20)
        self.on_error = on_error  # may be replaced while the tunnel runs
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._accepter = threading.Thread(target=self._accept, name=f"port-forward :{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._accepter.start()

    def close(self) -> None:
        """Stop accepting, end every pipe and wait for their threads."""
        self._stop.set()
        self._accepter.join(JOIN_SECONDS)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(JOIN_SECONDS)

    def _report(self, message: str) -> None:
        with self._lock:
            self.errors = [*self.errors[-19:], message]
        if self.on_error is not None:
            self.on_error(message)

    def _accept(self) -> None:
        self._listener.settimeout(POLL_SECONDS)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            t = threading.Thread(target=self._connection, args=(client,), daemon=True)
            with self._lock:  # finished connections leave the set here, running ones when joined
                self._threads = {*(x for x in self._threads if x.is_alive()), t}
            t.start()

    def _open(self) -> Any:
        from kubernetes.stream import portforward

        t = self.target
        return self.kube.call(
            f"port-forward to pod {t.pod} port {t.port} in namespace {t.namespace}",
            portforward,
            self.kube.core().connect_get_namespaced_pod_portforward,
            t.pod,
            t.namespace,
            ports=str(t.port),
        )

    def _connection(self, client: socket.socket) -> None:
        try:
            try:
                pf = self._open()
            except HelmMlopsError as exc:
                self._report(str(exc))
                return
            try:
                remote = pf.socket(self.target.port)
                self._pipe(client, remote)
                if (problem := pf.error(self.target.port)) is not None and problem.strip():
                    t = self.target
                    self._report(f"pod {t.pod} port {t.port}: {problem.strip()}")
            finally:
                pf.close()
        except Exception as exc:  # a thread must not die with a traceback on the user's terminal
            self._report(f"port-forward connection failed: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    def _pipe(self, client: socket.socket, remote: Any) -> None:
        """Copy bytes both ways until one side closes or the tunnel stops."""
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, remote)
            sel.register(remote, selectors.EVENT_READ, client)
            while not self._stop.is_set():
                for key, _ in sel.select(POLL_SECONDS):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        key.data.sendall(data)
                    except OSError:
                        return


def bind(port: int, address: str = "127.0.0.1") -> socket.socket:
    """A listening socket on address:port (0: a free port). A port in use is the user's to change."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"{address}:{port} is already in use",
                field="--port",
                hint="pick another port (0: any free one)",
            ) from None
        if exc.errno == errno.EACCES:
            raise UserError(
                f"{address}:{port} needs privileges to listen on",
                field="--port",
                hint="use a port above 1023",
            ) from None
        raise
    return listener


@contextmanager
def forward(
    kube: Kube,
    target: Backend,
    local_port: int = 0,
    *,
    on_error: Callable[[str], None] | None = None,
    listener: socket.socket | None = None,
) -> Iterator[Tunnel]:
    """Forward 127.0.0.1:`local_port` (0: a free port; or an already bound `listener`) to `target`
    for the duration of the block; yields the Tunnel (its `.port` is the bound port). Connection
    failures go to `on_error` and `Tunnel.errors`, never to a traceback."""
    tunnel = Tunnel(kube, target, listener or bind(local_port), on_error)
    # The client's websocket threads may fail (a connection dropped mid-frame): a line, not a traceback.
    previous = threading.excepthook

    def report(args: threading.ExceptHookArgs) -> None:
        tunnel._report(f"port-forward connection failed: {args.exc_type.__name__}: {args.exc_value}")

    threading.excepthook = report
    tunnel.start()
    try:
        yield tunnel
    finally:
        tunnel.close()
        threading.excepthook = previous
