"""A real Prometheus (Debian's package) on 127.0.0.1 for the observability tests: scrape configs derived
from rendered ServiceMonitors, PromQL evaluated through the HTTP API, and the expressions of rendered
PrometheusRules and Grafana dashboard ConfigMaps."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import free_port, serve

Doc = dict[str, Any]


class PromQLError(Exception):
    """Prometheus refused a query (errorType bad_data: it does not parse, or cannot be evaluated)."""


@dataclass(frozen=True)
class Expression:
    source: str  # "PrometheusRule t-inference-service / alert HighErrorRate" or "dashboard x / panel Title"
    expr: str


# --- scrape configs from ServiceMonitors ---------------------------------------------------------------


def _by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def _secret_value(docs: list[Doc], namespace: str, ref: Mapping[str, str]) -> str:
    """The value of a SecretKeySelector among the rendered Secrets."""
    for secret in _by_kind(docs, "Secret"):
        meta = secret["metadata"]
        if meta["name"] != ref["name"] or meta.get("namespace", namespace) != namespace:
            continue
        if ref["key"] in (secret.get("stringData") or {}):
            return str(secret["stringData"][ref["key"]])
        if ref["key"] in (secret.get("data") or {}):
            return base64.b64decode(secret["data"][ref["key"]]).decode()
    raise LookupError(f"basicAuth refers to Secret {ref['name']} key {ref['key']}, which is not rendered")


def _matching_services(docs: list[Doc], monitor: Doc) -> list[Doc]:
    ns = monitor["metadata"].get("namespace")
    names = (monitor["spec"].get("namespaceSelector") or {}).get("matchNames") or [ns]
    want = monitor["spec"]["selector"].get("matchLabels") or {}
    return [
        s
        for s in _by_kind(docs, "Service")
        if s["metadata"].get("namespace", ns) in names
        and all((s["metadata"].get("labels") or {}).get(k) == v for k, v in want.items())
    ]


def scrape_configs(docs: list[Doc], addresses: Mapping[str, str]) -> list[Doc]:
    """One Prometheus scrape config per (ServiceMonitor endpoint, selected Service), as the Prometheus
    Operator would generate it: the endpoint's path, interval, timeout, scheme and basic auth; the labels
    namespace, service, endpoint, pod and job (= the Service's name). ADDRESSES maps "SERVICE/PORTNAME"
    to the local host:port where the real server for that Service port listens."""
    configs: list[Doc] = []
    for monitor in _by_kind(docs, "ServiceMonitor"):
        mname = monitor["metadata"]["name"]
        services = _matching_services(docs, monitor)
        if not services:
            raise LookupError(f"ServiceMonitor {mname} selects no rendered Service")
        for i, endpoint in enumerate(monitor["spec"]["endpoints"]):
            for service in services:
                sname, ns = service["metadata"]["name"], service["metadata"]["namespace"]
                port = endpoint["port"]
                if port not in [p.get("name") for p in service["spec"]["ports"]]:
                    raise LookupError(
                        f"ServiceMonitor {mname} scrapes port {port!r}; Service {sname} has none"
                    )
                key = f"{sname}/{port}"
                if key not in addresses:
                    raise LookupError(
                        f"no local server for {key} (ServiceMonitor {mname}); have {sorted(addresses)}"
                    )
                config: Doc = {
                    "job_name": f"serviceMonitor/{ns}/{mname}/{i}/{sname}",
                    "metrics_path": endpoint.get("path", "/metrics"),
                    "scheme": endpoint.get("scheme", "http"),
                    "honor_labels": bool(endpoint.get("honorLabels", False)),
                    "static_configs": [{"targets": [addresses[key]]}],
                    # What the Operator's relabeling gives every series of a ServiceMonitor target.
                    "relabel_configs": [
                        {"target_label": label, "replacement": value}
                        for label, value in (
                            ("namespace", ns),
                            ("service", sname),
                            ("endpoint", port),
                            ("pod", f"{sname}-0"),
                            ("job", sname),
                        )
                    ],
                }
                if "interval" in endpoint:
                    config["scrape_interval"] = endpoint["interval"]
                if "scrapeTimeout" in endpoint:
                    config["scrape_timeout"] = endpoint["scrapeTimeout"]
                auth = endpoint.get("basicAuth")
                if auth:
                    config["basic_auth"] = {
                        "username": _secret_value(docs, ns, auth["username"]),
                        "password": _secret_value(docs, ns, auth["password"]),
                    }
                configs.append(config)
    return configs


# --- Prometheus -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prometheus:
    url: str

    def _api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise PromQLError(f"{body.get('errorType', exc.code)}: {body.get('error', '')}") from None
        return body["data"]

    def query(self, expr: str) -> list[Doc]:
        """The instant vector (or scalar, as one sample) of EXPR now; PromQLError when it does not parse."""
        data = self._api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def targets(self) -> list[Doc]:
        return list(self._api("targets")["activeTargets"])

    def wait_scraped(self, jobs: int, scrapes: int = 3, timeout: float = 60) -> None:
        """Until JOBS targets are up and each has been scraped about SCRAPES times (up's sample count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = [t for t in self.targets() if t["health"] == "up"]
            counts = self.query("count_over_time(up[1m])")
            if (
                len(up) >= jobs
                and len(counts) >= jobs
                and all(float(c["value"][1]) >= scrapes for c in counts)
            ):
                return
            time.sleep(0.5)
        raise TimeoutError(f"targets not scraped within {timeout}s: {json.dumps(self.targets(), indent=1)}")


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


@contextlib.contextmanager
def prometheus(root: Path, configs: list[Doc], interval: str = "1s") -> Iterator[Prometheus]:
    """Debian's prometheus on 127.0.0.1 scraping CONFIGS (checked with promtool first)."""
    exe = prometheus_binary()
    if exe is None:
        raise RuntimeError("prometheus is not installed: run `make system-deps`")
    root.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {"global": {"scrape_interval": interval, "scrape_timeout": interval}, "scrape_configs": configs}
        )
    )
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"promtool refuses the scrape config:\n{check.stdout}{check.stderr}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [exe, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with serve(argv, root / "prometheus.log", url + "/-/ready", 60, cwd=root):
        yield Prometheus(url)


# --- expressions of rules and dashboards ----------------------------------------------------------------


def rule_expressions(docs: list[Doc]) -> list[Expression]:
    """spec.groups[].rules[].expr of every PrometheusRule, labelled with the alert (or record) name."""
    found: list[Expression] = []
    for rule_doc in _by_kind(docs, "PrometheusRule"):
        for group in rule_doc["spec"].get("groups") or []:
            for rule in group.get("rules") or []:
                name = f"alert {rule['alert']}" if rule.get("alert") else f"record {rule.get('record')}"
                where = f"PrometheusRule {rule_doc['metadata']['name']} / {name}"
                found.append(Expression(where, str(rule["expr"])))
    return found


def _panels(panels: list[Doc]) -> Iterator[Doc]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])  # a collapsed row holds its panels


def dashboards(docs: list[Doc], label: str) -> list[tuple[str, Doc]]:
    """(ConfigMap/key, dashboard) for every JSON entry of the ConfigMaps that carry LABEL."""
    found: list[tuple[str, Doc]] = []
    for cm in _by_kind(docs, "ConfigMap"):
        if label not in (cm["metadata"].get("labels") or {}):
            continue
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".json"):
                found.append((f"{cm['metadata']['name']}/{key}", json.loads(text)))
    return found


def dashboard_expressions(docs: list[Doc], label: str) -> list[Expression]:
    """targets[].expr of every panel (rows' panels too) of every dashboard, labelled with its title."""
    found: list[Expression] = []
    for where, board in dashboards(docs, label):
        for panel in _panels(board.get("panels") or []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    title = f"dashboard {board.get('title', where)} / panel {panel.get('title', '?')!r}"
                    found.append(Expression(title, str(target["expr"])))
    return found


_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\[\[([A-Za-z_]\w*)\]\]|\$([A-Za-z_]\w*)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """EXPR with Grafana's variables ($x, ${x}, ${x:fmt}, [[x]]) replaced; KeyError names one unknown."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in variables:
            raise KeyError(f"Grafana variable ${name} has no test value (known: {sorted(variables)})")
        return variables[name]

    return _VARIABLE.sub(one, expr)


def grafana_variables(namespace: str, service: str, scrape_interval_s: int = 1) -> dict[str, str]:
    """Real values for the variables the dashboards use: the release's namespace and Service, and the
    intervals Grafana would compute for a 5-minute range at SCRAPE_INTERVAL_S."""
    return {
        "datasource": "prometheus",
        "namespace": namespace,
        "service": service,
        # Grafana: max(4 x scrape interval, $__interval + scrape interval); at least a few samples.
        "__rate_interval": f"{max(4 * scrape_interval_s, 15)}s",
        "__interval": "15s",
        "__range": "5m",
        "__range_s": "300",
    }


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*bool\b)?")
_SET_OPERATOR = re.compile(r"\b(and|or|unless)\b")


def _top_level_split(expr: str, pattern: re.Pattern[str]) -> list[str]:
    """EXPR split at the matches of PATTERN outside parentheses, brackets, braces and strings."""
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = pattern.match(expr, i)
            if m and (
                pattern is not _SET_OPERATOR or (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_"))
            ):
                parts.append(expr[start:i])
                # A modifier after the operator (on(...), ignoring(...), group_left(...)) belongs to it.
                rest = re.match(
                    r"\s*(?:(?:on|ignoring|group_left|group_right)\s*\([^)]*\)\s*)*", expr[m.end() :]
                )
                i = start = m.end() + (rest.end() if rest else 0)
                continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip()]


def signals(expr: str) -> list[str]:
    """The parts of an alert expression whose series must exist for it to mean anything: each operand
    of a top-level and/or/unless, without its threshold comparison (the left side of `x > 0.05`), with
    absent(x) read as x. A rule that does not fire still has these."""
    out: list[str] = []
    for part in _top_level_split(expr, _SET_OPERATOR):
        sides = _top_level_split(part, _COMPARISON)
        signal = next((s for s in sides if not re.fullmatch(r"[\d.eE+-]+", s)), sides[0])
        inner = re.fullmatch(r"absent\s*\((.*)\)", signal, re.S)
        ranged = re.fullmatch(r"absent_over_time\s*\((.*)\[[^\]]*\]\s*\)", signal, re.S)
        out.append(inner.group(1) if inner else ranged.group(1) if ranged else signal)
    return out


# --- kube-state-metrics ---------------------------------------------------------------------------------

KSM_RESOURCES = "jobs,cronjobs,deployments,horizontalpodautoscalers,pods"


def kube_state_metrics_binary() -> Path:
    """kube-state-metrics built by hack/build-kube-state-metrics.sh (cached; the first build takes a minute
    or more and needs Go and the Go module proxy): its path, or unavailable() when it cannot be built."""
    from tests.support.charts import REPO
    from tests.support.servers import unavailable

    script = REPO / "hack" / "build-kube-state-metrics.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        unavailable(
            f"hack/build-kube-state-metrics.sh failed (Go and its module proxy):\n{proc.stderr[-2000:]}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def kube_state_metrics(binary: Path, kubeconfig: Path, namespaces: list[str], root: Path) -> Iterator[str]:
    """kube-state-metrics against the cluster of KUBECONFIG, watching only NAMESPACES and the resources
    the training and serving rules use; yields host:port of its /metrics."""
    port, telemetry = free_port(), free_port()
    argv = [str(binary), f"--kubeconfig={kubeconfig}", "--host=127.0.0.1", f"--port={port}"]
    argv += ["--telemetry-host=127.0.0.1", f"--telemetry-port={telemetry}"]
    argv += [f"--resources={KSM_RESOURCES}", f"--namespaces={','.join(namespaces)}"]
    root.mkdir(parents=True, exist_ok=True)
    with serve(argv, root / "kube-state-metrics.log", f"http://127.0.0.1:{port}/metrics", 60):
        yield f"127.0.0.1:{port}"


def kube_state_metrics_scrape(address: str) -> Doc:
    """What a ServiceMonitor for kube-state-metrics with honorLabels gives: its `namespace` label is the
    object's, not the scrape target's."""
    return {
        "job_name": "kube-state-metrics",
        "honor_labels": True,
        "static_configs": [{"targets": [address]}],
    }
