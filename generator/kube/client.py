"""The one way helm-mlops talks to the Kubernetes API. Clients are built from a kubeconfig (and an
optional context) here only, and every call goes through `Kube.call()`, which turns the client's
failures into errors that name the API server: ApiException 401/403/404 become UserError with the fix,
other statuses and connection failures or timeouts (urllib3) become ToolError."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import HelmMlopsError, ToolError, UserError

PSS_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "app.kubernetes.io/part-of": "helm-mlops",
}


def api_message(exc: BaseException) -> str:
    """The API server's own message for a failed request, not the client's dump of headers."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body)["message"])
        except (ValueError, KeyError, TypeError):
            pass
    reason = getattr(exc, "reason", None)
    if reason is not None and not isinstance(reason, str):  # urllib3: the underlying error
        return str(reason)
    return str(reason or exc).strip() or type(exc).__name__


def handshake(reason: str) -> tuple[int, str] | None:
    """Status and message of a refused websocket upgrade (exec, attach, portforward): the client
    raises ApiException(status=0) with websocket-client's "Handshake status 404 Not Found -+-+-
    {headers} -+-+- {body}" as the reason."""
    match = re.match(r"Handshake status (\d+)", reason)
    if match is None:
        return None
    body = reason.rsplit(" -+-+- ", 1)[-1].strip()
    try:
        message = str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        message = reason.split(" -+-+- ", 1)[0].removeprefix("Handshake status ").strip()
    return int(match.group(1)), message


def translate(exc: BaseException, what: str, server: str) -> HelmMlopsError | None:
    """The error to show for a client failure during `what`, or None for an unexpected exception."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        message, status = api_message(exc), exc.status
        if status == 0 and (refused := handshake(message)) is not None:
            status, message = refused
        if status == 404:
            return UserError(
                f"{what}: not found on {server} ({message})",
                field=what,
                hint="check the name and the namespace (-n)",
            )
        if status == 403:
            return UserError(
                f"{what}: forbidden by {server} ({message})",
                field=what,
                hint="use a kubeconfig or context whose user may do this (RBAC)",
            )
        if status == 401:
            return UserError(
                f"{what}: {server} refused the credentials ({message})",
                field="--kubeconfig",
                hint="refresh the credentials in the kubeconfig (a token may have expired)",
            )
        if status != 0:  # 0: the websocket never connected
            return ToolError(f"{what}: the Kubernetes API server at {server} answered {status}: {message}")
    if isinstance(exc, HTTPError | OSError | ApiException):
        return ToolError(
            f"{what}: the Kubernetes API server at {server} is not reachable ({api_message(exc)})\n"
            "  fix: check that the cluster is running and that --kubeconfig (or KUBECONFIG) points at it"
        )
    if isinstance(exc, ConfigException):
        return UserError(f"{what}: {exc}", field="--kubeconfig", hint="pass a valid kubeconfig")
    return None


@dataclass
class Kube:
    """API access for one kubeconfig (and context)."""

    kubeconfig: Path
    context: str | None = None
    timeout: float = 30.0
    _client: Any = field(default=None, init=False, repr=False)

    @property
    def api_client(self) -> Any:
        if self._client is None:
            import yaml
            from kubernetes import config
            from kubernetes.config.config_exception import ConfigException

            try:
                self._client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=str(self.kubeconfig), context=self.context
                )
            except (ConfigException, OSError, ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise UserError(
                    f"{self.kubeconfig} is not a usable kubeconfig ({detail})",
                    field="--kube-context"
                    if self.context and isinstance(exc, ConfigException)
                    else "--kubeconfig",
                    hint="pass a kubeconfig as kubectl uses it (clusters, users, contexts, current-context)"
                    + (f", with a context named {self.context}" if self.context else ""),
                ) from None
        return self._client

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api_client)

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def has_crd(self, name: str) -> bool:
        """Whether the cluster serves the CRD `name` (e.g. inferenceservices.serving.kserve.io)."""
        from kubernetes import client

        api = client.ApiextensionsV1Api(self.api_client)
        found = self.call(f"get CRD {name}", api.read_custom_resource_definition, name, missing_ok=True)
        return found is not None

    def call(self, what: str, fn: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` with the client's failures translated (see the module docstring); with
        `missing_ok`, a 404 (the object, or the CRD, is not there) returns None instead."""
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return fn(*args, **kwargs)
        except HelmMlopsError:
            raise
        except Exception as exc:
            if missing_ok and getattr(exc, "status", None) == 404:
                return None
            error = translate(exc, what, self.server)
            if error is None:
                raise
            raise error from None

    def raw(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The response as the API server's JSON (as `kubectl get -o json` shows it)."""
        response = self.call(what, fn, *args, _preload_content=False, **kwargs)
        return dict(json.loads(response.data))

    def items(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.raw(what, fn, *args, **kwargs)["items"])

    def optional_items(
        self, what: str, group: str, version: str, namespace: str, plural: str, selector: str
    ) -> list[dict[str, Any]]:
        """Custom objects of a CRD that may not be installed (then: none)."""
        fn = self.custom().list_namespaced_custom_object
        listed = self.call(
            what, fn, group, version, namespace, plural, label_selector=selector, missing_ok=True
        )
        return list(listed["items"]) if listed is not None else []

    def ensure_namespace(self, namespace: str) -> bool:
        """Create the namespace if missing, enforcing Pod Security "restricted" on a new one (an existing
        namespace's labels are its owner's business). True when it was created."""
        from kubernetes import client

        core = self.core()
        if self.call(f"namespace {namespace}", core.read_namespace, namespace, missing_ok=True) is not None:
            return False
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=dict(PSS_LABELS)))
        self.call(f"create namespace {namespace}", core.create_namespace, body)
        return True
