"""A stack: checked answers → the files of an umbrella chart (Chart.yaml, values.yaml with the answer
behind each value, values.schema.json, README.md, NOTES, answers.yaml, the vendored charts). Pure: the
charts come in as data (name, version, top-level value keys, archive bytes) and files go out as bytes;
generate.py reads and writes the disk."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from generator import components as c
from generator import yamlio
from generator.values import deep_merge

GENERATOR_ANNOTATION = "helm-mlops.dev/generated-by"


@dataclass(frozen=True)
class ChartRef:
    name: str
    version: str
    app_version: str
    value_keys: tuple[str, ...]
    archive: bytes | None = None  # None: referenced from a chart repository instead of vendored


@dataclass
class Component:
    alias: str
    chart: str
    kind: str  # mlflow | job | service
    values: dict[str, Any]
    table: Mapping[str, str]
    prefix: str  # the answers path of this component


@dataclass
class Stack:
    name: str
    namespace: str
    components: list[Component]
    global_values: dict[str, Any]
    tracking_uri: str
    files: dict[str, bytes] = field(default_factory=dict)


def tracking_uri(answers: Mapping[str, Any]) -> str:
    """MLflow's address for the stack's own pods: the Service's short name, which resolves in the
    release's namespace whichever namespace that is (other namespaces use the full name, see README)."""
    if not (answers.get("mlflow") or {}).get("enabled", True):
        return ""
    return f"http://{c.mlflow_fullname(answers)}:5000"


def service_fullname(stack: str, alias: str) -> str:
    return f"{stack}-{alias}"[:63].rstrip("-")


def components(answers: Mapping[str, Any]) -> list[Component]:
    """One component per chart instance, in a stable order: MLflow, jobs, services."""
    g = answers.get("global") or {}
    out: list[Component] = []
    if (answers.get("mlflow") or {}).get("enabled", True):
        out.append(Component("mlflow", c.MLFLOW, "mlflow", c.mlflow_values(answers), c.MLFLOW_PROVENANCE, ""))
    for i, job in enumerate((answers.get("training") or {}).get("jobs") or []):
        spec = c.job_spec(job, g.get("labels") or {}, str(g.get("storageClass") or ""))
        values = c.job_values(spec, str(g.get("imageRegistry") or ""))
        if not job.get("schedule"):
            # A finished Job stays: one deleted by a TTL would come back (and train again) with the
            # next upgrade of the stack. At most one Job per job: the name follows the spec.
            c.put(values, "job.ttlSecondsAfterFinished", -1)
        values = {"fullnameOverride": service_fullname(answers["name"], job["name"]), **values}
        out.append(Component(job["name"], c.TRAINING, "job", values, c.JOB_PROVENANCE, f"training.jobs[{i}]"))
    for i, svc in enumerate((answers.get("inference") or {}).get("services") or []):
        values = c.service_values(svc, answers, tracking_uri(answers))
        values = {"fullnameOverride": service_fullname(answers["name"], svc["name"]), **values}
        out.append(
            Component(
                svc["name"], c.INFERENCE, "service", values, c.SERVICE_PROVENANCE, f"inference.services[{i}]"
            )
        )
    seen: set[str] = set()
    for comp in out:
        extra = c.monitoring_values(comp.kind, answers, dashboards=comp.kind not in seen)
        if extra:
            seen.add(comp.kind)
            comp.values = deep_merge(comp.values, extra)
            comp.table = {**comp.table, **c.MONITORING_PROVENANCE}
    # Services that load models from the stack's own MinIO may reach it (its NetworkPolicy admits only
    # MLflow's pods otherwise).
    readers = [
        x.alias for x in out if x.kind == "service" and x.values.get("model", {}).get("allowInsecureHttp")
    ]
    if readers and out and out[0].kind == "mlflow":
        peer = {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/part-of": "helm-mlops"},
                "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": readers}],
            }
        }
        c.put(out[0].values, "artifactStore.minio.allowFrom", [peer])
    return out


def global_values(answers: Mapping[str, Any]) -> dict[str, Any]:
    g = answers.get("global") or {}
    out: dict[str, Any] = {}
    uri = tracking_uri(answers)
    if uri:
        out["mlflow"] = {"trackingUri": uri}
    out["imagePullSecrets"] = [{"name": s} for s in g.get("imagePullSecrets") or []]
    out["strictSecurity"] = bool(g.get("strictSecurity"))
    return out


GLOBAL_PROVENANCE = {
    "mlflow": "mlflow (the stack's MLflow Service)",
    "imagePullSecrets": "global.imagePullSecrets",
    "strictSecurity": "global.strictSecurity",
}


# values.yaml with provenance comments -------------------------------------------------------------------


def _leaf(key: str, value: Any, indent: int) -> list[str]:
    text = yamlio.dump({key: value}).rstrip("\n").splitlines()
    pad = " " * indent
    return [pad + line for line in text]


def _emit(
    node: Mapping[str, Any], indent: int, path: tuple[str, ...], where: Any, said: str | None
) -> list[str]:
    lines: list[str] = []
    for key, value in node.items():
        here = (*path, str(key))
        source = where(here)
        comment = source if source and source != said else None
        if comment:
            lines.append(" " * indent + f"# <- {comment}")
        if isinstance(value, dict) and value:
            lines.append(" " * indent + yamlio.dump({key: None}).split(":")[0] + ":")
            lines.extend(_emit(value, indent + 2, here, where, source or said))
        else:
            lines.extend(_leaf(str(key), value, indent))
    return lines


def values_yaml(stack: Stack, answers_name: str = "answers.yaml") -> str:
    head = [
        f"# Values of the stack {stack.name!s}, generated by helm-mlops from {answers_name}.",
        "# Each `# <- path` names the answer that set the value(s) below it. To change the stack, edit",
        f"# {answers_name} and run `helm-mlops generate --answers {answers_name} -o <this directory> "
        "--force`;",
        "# to override at install time, use helm's -f/--set as usual (e.g. --set "
        "<component>.replicaCount=2).",
        "",
    ]
    lines = ["# <- global: settings every component shares", "global:"]
    lines += _emit(
        stack.global_values, 2, ("global",), lambda p: c.provenance(GLOBAL_PROVENANCE, "", p[1:]), None
    )
    for comp in stack.components:
        what = {"mlflow": "mlflow", "job": comp.prefix, "service": comp.prefix}[comp.kind]
        lines.append("")
        lines.append(f"# <- {what}: the {comp.chart} chart")
        lines.append(f"{comp.alias}:")
        if not comp.values:
            lines[-1] += " {}"
            continue
        lines += _emit(
            comp.values, 2, (), lambda p, comp=comp: c.provenance(comp.table, comp.prefix, p), None
        )
    lines += [
        "",
        "# Credentials from seed-shaped requests: set from credentials.yaml (-f), never here.",
        "credentials:",
        "  secrets: {}",
    ]
    return "\n".join(head + lines) + "\n"


# Chart.yaml, schema, README, NOTES -----------------------------------------------------------------


def chart_yaml(
    stack: Stack,
    answers: Mapping[str, Any],
    charts: Mapping[str, ChartRef],
    repo: str,
    generator_version: str,
) -> str:
    deps = []
    for comp in stack.components:
        ref = charts[comp.chart]
        dep: dict[str, Any] = {"name": ref.name, "version": ref.version}
        if repo:
            dep["repository"] = repo
        if comp.alias != ref.name:
            dep["alias"] = comp.alias
        deps.append(dep)
    kinds = sorted({comp.chart for comp in stack.components})
    doc = {
        "apiVersion": "v2",
        "name": stack.name,
        "description": answers.get("description")
        or f"ML stack {stack.name}: " + ", ".join(_summary(stack)) + " (generated by helm-mlops).",
        "type": "application",
        "version": "0.1.0",
        "appVersion": generator_version,
        # The highest of the charts' own: training-job 1.31 (Job podFailurePolicy), inference-service
        # 1.30 (the preStop sleep action), mlflow 1.29.
        "kubeVersion": ">=1.31.0-0"
        if "training-job" in kinds
        else ">=1.30.0-0"
        if "inference-service" in kinds
        else ">=1.29.0-0",
        "annotations": {GENERATOR_ANNOTATION: f"helm-mlops {generator_version}"},
        "dependencies": deps,
    }
    if not deps:
        del doc["dependencies"]
    return yamlio.dump(doc)


def _summary(stack: Stack) -> list[str]:
    jobs = sum(1 for x in stack.components if x.kind == "job")
    services = sum(1 for x in stack.components if x.kind == "service")
    parts = []
    if any(x.kind == "mlflow" for x in stack.components):
        parts.append("MLflow")
    parts.append(f"{jobs} training job{'s' if jobs != 1 else ''}")
    parts.append(f"{services} inference service{'s' if services != 1 else ''}")
    return parts


def schema_json(stack: Stack, charts: Mapping[str, ChartRef]) -> str:
    """The stack's values schema: every component's top-level keys (typos fail at install), `global`,
    and `credentials`. Each subchart's own schema checks the values inside."""
    props: dict[str, Any] = {
        "global": {"type": "object", "description": "Values every component sees."},
        "credentials": {
            "type": "object",
            "description": "Secrets the stack creates: {secrets: {<name>: {<key>: <value>}}}.",
            "additionalProperties": False,
            "properties": {
                "secrets": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
                }
            },
        },
    }
    for comp in stack.components:
        ref = charts[comp.chart]
        props[comp.alias] = {
            "type": "object",
            "description": f"The {ref.name} chart ({comp.prefix or 'mlflow'}).",
            "additionalProperties": False,
            "properties": {key: {} for key in (*ref.value_keys, "global")},
        }
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{stack.name} stack values",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def endpoints(stack: Stack, namespace: str | None = None) -> list[tuple[str, str, str]]:
    """(component, in-cluster URL, local access command) per component with an endpoint. `namespace`
    defaults to the stack's; NOTES.txt passes helm's `{{ .Release.Namespace }}`."""
    out = []
    ns = namespace or stack.namespace
    for comp in stack.components:
        ingress = comp.values.get("ingress") or {}
        host = ingress.get("host") if ingress.get("enabled") else None
        scheme = "https" if (ingress.get("tls") or {}).get("enabled") else "http"
        if comp.kind == "mlflow":
            name = comp.values["fullnameOverride"]
            local = f"kubectl -n {ns} port-forward svc/{name} 5000:5000  # then http://127.0.0.1:5000"
            if host:
                local = f"{scheme}://{host}{ingress.get('path', '/')}  (Ingress), or {local}"
            out.append(("mlflow", f"http://{name}.{ns}.svc.cluster.local:5000", local))
        elif comp.kind == "service":
            name = comp.values["fullnameOverride"]
            runtime = comp.values.get("runtime", "fastapi")
            if runtime == "kserve":
                out.append(
                    (
                        comp.alias,
                        f"InferenceService {name} (KServe)",
                        f"kubectl -n {ns} get inferenceservice {name}",
                    )
                )
                continue
            local = f"kubectl -n {ns} port-forward svc/{name} 8080:80  # then http://127.0.0.1:8080"
            if host:
                local = f"{scheme}://{host}{ingress.get('path', '/')}  (Ingress), or {local}"
            out.append((comp.alias, f"http://{name}.{ns}.svc.cluster.local:80", local))
    return out


SECRET_KEYS = {
    "mlflow.backendStore.existingSecret": "`password` (or existingSecretPasswordKey)",
    "mlflow.artifactStore.existingSecret": "the store's credentials (S3: `AWS_ACCESS_KEY_ID`, "
    "`AWS_SECRET_ACCESS_KEY`; "
    "MinIO: `root-user`, `root-password`; GCS: `key.json`; Azure: `connection-string`)",
    "mlflow.auth.existingSecret": "`username`, `password` (MLflow's admin)",
}


def needed_secrets(answers: Mapping[str, Any], created: set[str]) -> list[tuple[str, str, str]]:
    """(Secret, answer, keys) for every existing Secret the answers name that the stack does not create."""
    out: list[tuple[str, str, str]] = []
    m = answers.get("mlflow") or {}
    if m.get("enabled", True):
        for section in ("backendStore", "artifactStore", "auth"):
            name = (m.get(section) or {}).get("existingSecret")
            if name:
                where = f"mlflow.{section}.existingSecret"
                out.append((name, where, SECRET_KEYS[where]))
    for i, svc in enumerate((answers.get("inference") or {}).get("services") or []):
        name = (svc.get("model") or {}).get("existingSecret")
        if name:
            out.append(
                (
                    name,
                    f"inference.services[{i}].model.existingSecret",
                    "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`",
                )
            )
        for sec in svc.get("secrets") or []:
            out.append(
                (sec, f"inference.services[{i}].secrets", "any: each key becomes an environment variable")
            )
    for i, job in enumerate((answers.get("training") or {}).get("jobs") or []):
        for sec in job.get("secrets") or []:
            out.append((sec, f"training.jobs[{i}].secrets", "any: each key becomes an environment variable"))
    for sec in (answers.get("global") or {}).get("imagePullSecrets") or []:
        out.append((sec, "global.imagePullSecrets", "a `kubernetes.io/dockerconfigjson` pull secret"))
    return [row for row in out if row[0] not in created]


def readme(stack: Stack, answers: Mapping[str, Any], vendored: bool, repo: str, secrets: set[str]) -> str:
    ns = stack.namespace
    rows = []
    kinds = {
        "mlflow": "MLflow tracking server and registry",
        "job": "training job",
        "service": "inference service",
    }
    for comp in stack.components:
        detail = ""
        if comp.kind == "service":
            detail = f"runtime {comp.values.get('runtime')}"
        elif comp.kind == "mlflow":
            backend, store = comp.values["backendStore"]["type"], comp.values["artifactStore"]["type"]
            detail = f"{backend} backend, {store} artifacts"
        elif comp.kind == "job":
            detail = "single pod"
            if comp.values.get("distributed"):
                detail = "distributed"
            elif comp.values.get("sweep"):
                detail = "sweep"
            if comp.values.get("cronJob"):
                detail = f"every `{comp.values['cronJob']['schedule']}`"
        rows.append(f"| `{comp.alias}` | {comp.chart} | {kinds[comp.kind]} | {detail} |")
    creds = " -f credentials.yaml" if secrets else ""
    install = [
        "## Install",
        "",
        "```console",
    ]
    if not vendored:
        install.append(f"helm dependency build .   # fetches the charts from {repo}")
    install += [
        f"helm install {stack.name} .{creds} --namespace {ns} --create-namespace --wait",
        f"helm-mlops status {stack.name} -n {ns}",
        "```",
        "",
    ]
    if not vendored:
        install.insert(0, "")
    text = [
        f"# {stack.name}",
        "",
        str(
            answers.get("description")
            or f"An ML stack generated by helm-mlops: {', '.join(_summary(stack))}."
        ),
        "",
        "Generated by `helm-mlops generate` from `answers.yaml`: edit that file and run",
        "`helm-mlops generate --answers answers.yaml -o .` here (an unchanged answers file gives the same "
        "files;",
        "`--force` replaces files you edited by hand).",
        "The charts it uses are vendored in `charts/` (it installs offline)."
        if vendored
        else f"The charts it uses come from `{repo}`.",
        "",
        "## Components",
        "",
        "| name | chart | what | details |",
        "|---|---|---|---|",
        *rows,
        "",
        *install,
        "The release name should be the stack's name. `--wait` waits for MLflow and the services, not for",
        f"training to finish: a failed training shows in `helm-mlops status {stack.name} -n {ns}`, never as "
        "a "
        "failed release.",
    ]
    if secrets:
        text += [
            "",
            "`credentials.yaml` (mode 600, kept out of `values.yaml` and `answers.yaml`) holds the "
            "credentials of "
            f"the request this stack came from; the stack creates the Secrets {', '.join(sorted(secrets))} "
            "from it "
            "before anything that reads them.",
        ]
    needed = needed_secrets(answers, secrets)
    if needed:
        text += ["", "### Secrets to create first", "", "| Secret | named by | keys |", "|---|---|---|"]
        text += [f"| `{name}` | `{where}` | {keys} |" for name, where, keys in needed]
        text += ["", f"e.g. `kubectl -n {ns} create secret generic {needed[0][0]} --from-literal=...`"]
    if any(comp.values.get("runtime") == "kserve" for comp in stack.components):
        text += [
            "",
            "KServe must be installed in the cluster (its CRDs and controller) for the InferenceService.",
        ]
    if any(
        (comp.values.get("model", {}).get("source", {}).get("type")) == "pvc" for comp in stack.components
    ):
        claims = sorted(
            {str(comp.values["model"]["source"]["pvc"]["claimName"]) for comp in stack.components
             if comp.values.get("model", {}).get("source", {}).get("type") == "pvc"}
        )  # fmt: skip
        text += [
            "",
            f"The models are read from the PersistentVolumeClaim(s) {', '.join(claims)}: create them first.",
        ]
    rows_e = [f"| `{n}` | `{u}` | `{cmd}` |" for n, u, cmd in endpoints(stack)]
    if rows_e:
        text += [
            "",
            "## Endpoints",
            "",
            "| component | in the cluster | from your machine |",
            "|---|---|---|",
        ]
        text += rows_e
    if stack.tracking_uri:
        text += [
            "",
            f"Training jobs and services use MLflow at `{stack.tracking_uri}` (`global.mlflow.trackingUri`).",
        ]
    jobs = [comp for comp in stack.components if comp.kind == "job"]
    if jobs:
        text += [
            "",
            "## Training jobs",
            "",
            "Each job's objects are named by a hash of its spec: upgrading the stack leaves unchanged jobs "
            "alone",
            "and replaces only changed ones (the old Job goes away with the upgrade; results live in "
            "MLflow).",
            "To train again with the same spec, set the job's `rerun` value, e.g.",
            f"`helm upgrade {stack.name} . -n {ns} --reuse-values --set {jobs[0].alias}.rerun=$(date +%s)`.",
            "",
            *[f"- `{j.alias}`: `helm-mlops logs {stack.name} {j.alias} -n {ns} -f`" for j in jobs],
        ]
        for j in jobs:
            if j.values.get("sweep"):
                metric = (j.values["sweep"].get("objective") or {}).get("metric") or "<metric>"
                experiment = (j.values.get("mlflow") or {}).get("experimentName") or "<experiment>"
                text.append(
                    f"- `{j.alias}` is a sweep: rank its trials with `helm-mlops sweep best --tracking-uri "
                    "<MLflow URL> "
                    f"--experiment {experiment} --sweep-id <the Job's uid> --metric {metric}`"
                )
    text += monitoring_readme(stack, answers)
    text += [
        "",
        "## Check it",
        "",
        "```console",
        "helm-mlops lint .       # helm lint --strict (Helm 4 and 3), schemas, kubernetes-validate, Pod "
        "Security",
        "helm-mlops template .   # the manifests",
        f"helm test {stack.name} -n {ns}",
        "```",
        "",
    ]
    return "\n".join(text)


def monitoring_readme(stack: Stack, answers: Mapping[str, Any]) -> list[str]:
    """The README's Monitoring section: what the stack renders and what the cluster needs for it."""
    m = answers.get("monitoring") or {}
    if not m.get("enabled"):
        return [
            "",
            "## Monitoring",
            "",
            "Off. Set `monitoring.enabled: true` in answers.yaml and generate again for ServiceMonitors,",
            "alert rules and Grafana dashboards of every component.",
        ]
    ns = stack.namespace
    parts = ["ServiceMonitors for MLflow and the inference services"]
    if m.get("alerts", True):
        parts.append("PrometheusRules with each chart's alerts (docs/runbooks.md has a section per alert)")
    if m.get("dashboards", True):
        parts.append('Grafana dashboards as ConfigMaps labelled `grafana_dashboard: "1"`, one per chart')
    labels = ", ".join(f"`{k}: {v}`" for k, v in sorted((m.get("labels") or {}).items()))
    text = [
        "",
        "## Monitoring",
        "",
        "This stack renders " + "; ".join(parts) + ".",
        "",
        "The cluster needs:",
        "",
        "- the Prometheus Operator's CRDs and a Prometheus that selects these objects (kube-prometheus-stack "
        "installs both;",
        "  its Prometheus selects ServiceMonitors and PrometheusRules labelled `release: <its release name>` "
        "by default"
        + (f": these carry {labels})" if labels else ": set `monitoring.labels` in answers.yaml to match)"),
        f"- Prometheus in the namespace `{m.get('prometheusNamespace') or 'monitoring'}` (the "
        "NetworkPolicies let its scrapes through);",
        "- kube-state-metrics (kube-prometheus-stack has it) for the Job, Deployment and HPA alerts;",
    ]
    if m.get("dashboards", True):
        text.append(
            "- Grafana with its dashboard sidecar watching this namespace or all "
            f"(`sidecar.dashboards.searchNamespace: ALL`, or `{ns}`)."
        )
    else:
        text[-1] = text[-1].rstrip(";") + "."
    text += [
        "",
        "Check it: `kubectl -n " + ns + " get servicemonitors,prometheusrules,configmaps -l "
        "app.kubernetes.io/part-of=helm-mlops`.",
    ]
    return text


CREDENTIALS = """{{- /* Secrets from seed-shaped requests (values from credentials.yaml, -f). */ -}}
{{- range $name, $data := .Values.credentials.secrets }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  labels:
    app.kubernetes.io/managed-by: {{ $.Release.Service }}
    app.kubernetes.io/part-of: {{ $.Release.Name }}
  annotations:
    # Before everything that reads it, the MLflow chart's migration hook (weight -10) included.
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-100"
    helm.sh/hook-delete-policy: before-hook-creation
    helm.sh/resource-policy: keep
type: Opaque
stringData:
  {{- range $key, $value := $data }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
{{- end }}
"""

HELMIGNORE = "answers.yaml\ncredentials.yaml\nREADME.md\n.helm-mlops\n"
