"""Answers: what a stack holds, layered like copier's (defaults < preset < answers file < `--set` <
interactive answers) and checked by one function, `validate`, whatever each value's source. Every
problem is reported at once, each with its path (`inference.services[1].hpa.maxReplicas`). Pure: no
helm, no cluster, no network (the MLflow version default comes in as an argument)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import yamlio
from generator.answers_schema import API_VERSION, FORMATS, KIND, SCHEMA
from generator.errors import UserError
from generator.values import apply_sets, cron_problem, deep_merge, parse_quantity

INLINE_LIMIT = 1_000_000  # base64 characters: what the inference chart's ConfigMap holds
# Standard, padded base64 (whitespace aside): the inference chart's own test.
BASE64 = re.compile(r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
SCRIPT_LIMIT = 900_000  # bytes: the training-job chart's limit for a script in its ConfigMap
RESERVED_NAMES = {"mlflow", "global", "credentials", "stack"}
CODE_FORMATS = {
    "sklearn": "a pickle",
    "joblib": "a pickle (joblib)",
    "torch": "a PyTorch model",
    "mlflow": "an MLflow model",
}
EXTENSIONS = {
    ".pkl": "sklearn", ".pickle": "sklearn", ".joblib": "joblib", ".onnx": "onnx", ".pt": "torch",
    ".pth": "torch", ".h5": "keras", ".keras": "keras", ".bst": "xgboost", ".ubj": "xgboost",
    ".txt": "lightgbm",
}  # fmt: skip
MLSERVER_FORMATS = {"sklearn", "joblib", "xgboost", "lightgbm", "mlflow"}
# Names YAML reads as a number, a boolean or null (helm's YAML as well as PyYAML): the charts write names
# unquoted in labels and metadata, where such a name would render as a non-string.
YAML_NON_STRING = re.compile(
    r"^([0-9]+(e-?[0-9]+)?|0x[0-9a-f]+|0o[0-7]+|0b[01]+|y|n|yes|no|on|off|true|false|null)$", re.IGNORECASE
)
JOB_MOUNTS = {"/tmp", "/workspace", "/dev/shm"}  # the training-job chart's own mounts (+ /opt/helm-mlops/...)


def defaults(mlflow_version: str) -> dict[str, Any]:
    """The base layer: an MLflow with SQLite on a volume, no jobs, no services."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": "mlops",
        "description": "",
        "global": {
            "namespace": "mlops",
            "imageRegistry": "",
            "imagePullSecrets": [],
            "storageClass": "",
            "labels": {},
            "strictSecurity": False,
        },
        "mlflow": {
            "enabled": True,
            "version": mlflow_version,
            "serviceName": "",
            "replicas": 1,
            "ui": True,
            "backendStore": {"type": "sqlite"},
            "artifactStore": {"type": "pvc"},
            "persistence": {"size": "10Gi"},
            "ingress": {"enabled": False},
            "auth": {"enabled": False},
            "cpu": "1",
            "memory": "2Gi",
            "podDisruptionBudget": False,
            "metrics": False,
        },
        "monitoring": {
            "enabled": False,
            "alerts": True,
            "dashboards": True,
            "labels": {},
            "prometheusNamespace": "monitoring",
        },
        "training": {"jobs": []},
        "inference": {"services": []},
    }


@dataclass
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidAnswers(UserError):
    """Every problem found in a set of answers, each with its path. Exit code 2."""

    def __init__(self, problems: list[Problem], source: str = "answers") -> None:
        self.problems = problems
        lines = "\n".join(f"  {redact(str(p))}" for p in problems)  # never echo a credential
        super().__init__(
            f"{len(problems)} problem(s) in the {source}:\n{lines}",
            hint="change the values named above (answers file, --set or the wizard) and run again",
        )


def fmt_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# Layers ---------------------------------------------------------------------------------------------


@dataclass
class Layers:
    """The sources of one stack's answers, lowest first."""

    base: dict[str, Any]
    preset: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    sets: list[tuple[str, str]] = field(default_factory=list)  # (flag, KEY=VALUE) in helm's order
    interactive: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def merge_layers(layers: Layers) -> dict[str, Any]:
    """Defaults < preset < answers file < --set < interactive answers (mappings merge, lists replace)."""
    out = copy.deepcopy(layers.base)
    for layer in (layers.preset, layers.file):
        if layer:
            out = deep_merge(out, layer)
    if layers.sets:
        out = apply_sets(out, layers.sets)
    if layers.interactive:
        out = deep_merge(out, layers.interactive)
    return out


def load_file(path: Path | str, field: str = "--answers") -> dict[str, Any]:
    """An answers file (YAML or JSON); `-` reads standard input. Header checked here, the rest by validate."""
    import sys

    if str(path) == "-":
        data = yamlio.loads(sys.stdin.read(), "--answers (standard input)", unique_keys=True)
    else:
        text = yamlio.read_text(Path(path), field, "pass an answers file (helm-mlops init writes one)")
        data = yamlio.loads(text, f"{field} ({path})", unique_keys=True)
    if not isinstance(data, dict):
        raise UserError(
            "an answers file must be a mapping", field=f"{field} ({path})", hint="see docs/answers.md"
        )
    return data


# Validation -----------------------------------------------------------------------------------------


def validate(answers: Mapping[str, Any]) -> list[Problem]:
    """Every problem in a set of answers: the schema's, then the rules across fields."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems: list[Problem] = []
    seen: set[str] = set()
    errors = [leaf for error in validator.iter_errors(answers) for leaf in _branch_errors(error)]
    # One message for one mistake: a value of the wrong type is not also "not one of" or "not valid",
    # and one too long is not also "not valid".
    kinds: dict[str, set[str]] = {}
    for error in errors:
        kinds.setdefault(fmt_path(error.absolute_path), set()).add(str(error.validator))
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = fmt_path(error.absolute_path)
        if path in seen and error.validator in ("anyOf", "oneOf"):
            continue
        if "type" in kinds[path] and error.validator != "type":
            continue
        if error.validator == "pattern" and kinds[path] & {"minLength", "maxLength"}:
            continue
        seen.add(path)
        problems.append(Problem(path, schema_message(error)))
    problems += [Problem(fmt_path(at), "is not a finite number") for at in _non_finite(answers, ())]
    if not problems:
        return cross_checks(answers)
    # The rules across fields expect the structure the schema guarantees; with schema problems they
    # still run, so one pass reports as much as it can, but a rule that trips over a malformed value
    # stays silent, as do problems under a path the schema already named.
    try:
        more = cross_checks(answers)
    except Exception:  # a malformed value that the schema problems above already name
        more = []
    named = [p.path for p in problems]

    def related(a: str, b: str) -> bool:
        return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))

    for problem in more:
        if not any(related(problem.path, n) for n in named):
            problems.append(problem)
    return problems


def _non_finite(value: Any, at: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    """Where YAML's .nan and .inf sit: numbers to the schema, nothing a chart can use."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return [at]
    if isinstance(value, Mapping):
        return [bad for key, item in value.items() for bad in _non_finite(item, (*at, str(key)))]
    if isinstance(value, list):
        return [bad for i, item in enumerate(value) for bad in _non_finite(item, (*at, i))]
    return []


def _branch_errors(error: Any) -> list[Any]:
    """An anyOf error as the errors of the branch whose type the value has (a list of EnvVars: the
    entry at fault), or as itself when no branch or several match."""
    if error.validator != "anyOf":
        return [error]
    kinds = {"object": dict, "array": list, "string": str}
    branches = [
        i
        for i, branch in enumerate(error.validator_value)
        if isinstance(error.instance, kinds.get(str(branch.get("type")), ()))
    ]
    if len(branches) != 1:
        return [error]
    inner = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == branches[0]]
    return [leaf for e in inner for leaf in _branch_errors(e)] or [error]


def _pattern_words() -> dict[str, str]:
    from generator import answers_schema as a

    words = {
        a.DNS_LABEL: "a DNS-1123 label: lower-case letters, digits and dashes, e.g. team-ml",
        a.QUANTITY: "a Kubernetes quantity, e.g. 500m, 2, 1Gi",
        a.SEMVER: "a version like 3.17.2",
        a.ENV_NAME: "an environment variable name: letters, digits and _, not starting with a digit",
    }
    for name, text in (
        (
            "NAME",
            "a name: a lower-case letter first, then lower-case letters, digits and dashes, e.g. team-ml",
        ),
        ("K8S_NAME", "a Kubernetes object name: lower-case letters, digits, dashes and dots"),
        ("BUCKET", "a bucket name: 3 to 222 lower-case letters, digits, dots, underscores or dashes"),
        ("DEVICE", "a device: auto, cpu, cuda or cuda:N (N: the GPU's index, 0 for the first)"),
    ):
        if hasattr(a, name):
            words[getattr(a, name)] = text
    return words


PATTERN_WORDS = _pattern_words()


def schema_message(error: Any) -> str:
    """A schema error in words a user acts on, without Python reprs."""
    if "propertyNames" in list(error.absolute_schema_path):
        return "key " + _schema_words(error)
    return _schema_words(error)


def _schema_words(error: Any) -> str:
    import json

    kind = error.validator
    value = error.instance
    shown = shown_value(value)
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted({shown_key(k) for k in value} - set(allowed)) if isinstance(value, dict) else []
        return f"unknown key(s) {', '.join(extra)}; allowed: {', '.join(allowed)}"
    if kind == "enum":
        choices = ", ".join(json.dumps(c) for c in error.validator_value if c != "")
        return f"{shown} is not one of {choices}"
    if kind == "const":
        return f"must be {json.dumps(error.validator_value)}"
    if kind == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        words = {"object": "mapping", "array": "list", "boolean": "boolean (true or false)"}
        want = " or ".join(words.get(w, w) for w in want.split(" or "))
        quote = " (quote it)" if want.startswith("string") and isinstance(value, (int, float)) else ""
        return f"{shown} is not a{'n' if want[0] in 'aeiou' else ''} {want}{quote}"
    if kind == "pattern":
        rule = PATTERN_WORDS.get(str(error.validator_value))
        if rule:
            return f"{shown} is not {rule}"
        return f"{shown} is not valid ({error.schema.get('description', 'see docs/answers.md')})"
    if kind == "required":
        missing = [k for k in error.validator_value if not isinstance(value, dict) or k not in value]
        return f"missing required key(s): {', '.join(missing)}"
    if kind in ("minimum", "maximum"):
        word = ">=" if kind == "minimum" else "<="
        return f"{shown} must be {word} {error.validator_value}"
    if kind in ("minLength", "maxLength"):
        bound = "at least" if kind == "minLength" else "at most"
        return f"{shown} must have {bound} {error.validator_value} characters"
    if kind == "anyOf":
        return f"{shown} has the wrong shape ({error.schema.get('description', '')})"
    if kind in ("minProperties", "maxProperties"):
        count = error.validator_value
        return f"needs {'at least' if kind == 'minProperties' else 'at most'} {count} key(s)" + (
            f": one of {', '.join(error.schema['properties'])}" if "properties" in error.schema else ""
        )
    return str(error.message)


def shown_value(value: Any) -> str:
    """A value in an error as the answers file spells it (JSON), YAML's own types named."""
    import datetime
    import json

    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"{value.isoformat()} (a date to YAML: quote it)"
    if isinstance(value, bytes):
        return "binary data (!!binary)"
    if isinstance(value, (set, frozenset)):
        return "a set (!!set)"
    return json.dumps(value, ensure_ascii=False, default=str)


def shown_key(key: Any) -> str:
    """A mapping key in an error: strings as they are, other YAML keys (numbers, null) as JSON, and so
    are strings whose spaces would vanish in the message (empty, or spaces around the key)."""
    if isinstance(key, str) and key and key == key.strip():
        return key
    return shown_value(key)


def model_format(service: Mapping[str, Any]) -> str:
    """The model format a service's answers mean: the answer, else from the URI or the file name."""
    model = service.get("model") or {}
    if model.get("format"):
        return str(model["format"])
    uri = str(model.get("uri") or "")
    if uri.startswith(("models:/", "runs:/")):
        return "mlflow"
    inline = model.get("inline") if source_type(service) == "inline" else None
    name = (inline or {}).get("fileName") or uri.rsplit("/", 1)[-1]
    suffix = Path(str(name)).suffix.lower()
    return EXTENSIONS.get(suffix, "")


def _reference(bad: Callable[[str, str], None], at: str, monitoring: Any, kind: str) -> None:
    """The reference sample comes from where the model comes from: an http(s) URL beside an https model,
    an MLflow artifact URI beside an MLflow one (the inference-service chart's own rule)."""
    reference = monitoring.get("reference") if isinstance(monitoring, Mapping) else None
    if not isinstance(reference, str) or not reference:
        return  # the schema names it
    if kind == "https" and not re.match(r"^https?://", reference):
        bad(at, f"{reference} is not an http(s) URL: with an https model the reference is a URL too")
    elif kind == "mlflow" and not re.match(r"^(runs|models|mlflow-artifacts):/", reference):
        bad(
            at,
            f"{reference} is not an MLflow artifact URI: with an MLflow model the reference is one too, "
            "e.g. runs:/<run id>/reference.csv",
        )


def source_type(service: Mapping[str, Any]) -> str:
    model = service.get("model") or {}
    uri = str(model.get("uri") or "")
    if model.get("inline") is not None and not uri:
        return "inline"
    for prefix, kind in (("models:/", "mlflow"), ("runs:/", "mlflow"), ("s3://", "s3"), ("pvc://", "pvc")):
        if uri.startswith(prefix):
            return kind
    if uri.startswith(("https://", "http://")):
        return "https"
    return ""


def cross_checks(answers: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(Problem(path, message))

    def quantity(path: str, value: Any) -> None:
        if value is None or value == "":
            return
        try:
            parse_quantity(value, path)
        except UserError as exc:
            why = (
                "must be greater than zero"
                if "greater than zero" in str(exc)
                else "is not a Kubernetes quantity"
            )
            bad(
                path,
                f"{shown_value(value)} {why} (e.g. 500m or 2 for CPU, 512Mi or 4Gi for memory and sizes)",
            )

    mlflow = answers.get("mlflow") or {}
    mlflow_on = bool(mlflow.get("enabled", True))
    names: dict[str, str] = {}

    def yaml_safe(path: str, name: Any) -> None:
        if isinstance(name, str) and YAML_NON_STRING.match(name):
            bad(
                path,
                f"{name} reads as a number, boolean or null in YAML, and the charts write names unquoted"
                f" (labels, metadata); add a letter, e.g. x{name}",
            )

    def name_check(path: str, name: str) -> None:
        yaml_safe(path, name)
        if name in RESERVED_NAMES:
            bad(path, f"{name!s} is reserved; pick another name")
        elif name in names:
            bad(path, f"{name} is already the name of {names[name]}; names are unique in a stack")
        else:
            names[name] = path.rsplit(".", 1)[0]

    yaml_safe("name", answers.get("name"))
    yaml_safe("global.namespace", (answers.get("global") or {}).get("namespace"))
    strict = bool((answers.get("global") or {}).get("strictSecurity"))

    # MLflow
    if mlflow_on and mlflow.get("version"):
        from generator.versions import check_supported

        try:
            check_supported("mlflow", str(mlflow["version"]), "mlflow.version")
        except UserError as exc:
            bad(
                "mlflow.version",
                str(exc).split(": ", 1)[1].split("\n")[0] + "; `helm-mlops versions mlflow` lists them",
            )
    if mlflow_on:
        backend = (mlflow.get("backendStore") or {}).get("type", "sqlite")
        store = mlflow.get("artifactStore") or {}
        replicas = int(mlflow.get("replicas", 1))
        if replicas > 1 and backend == "sqlite":
            bad(
                "mlflow.replicas",
                f"must be 1 with backendStore.type sqlite (got {replicas}); use postgresql or mysql for more",
            )
        elif replicas > 1 and store.get("type", "pvc") == "pvc":
            bad(
                "mlflow.replicas",
                f"must be 1 with artifactStore.type pvc (a ReadWriteOnce volume; got {replicas}); use "
                "minio, s3, gcs or azure",
            )
        if mlflow.get("podDisruptionBudget") and replicas < 2:
            bad(
                "mlflow.podDisruptionBudget",
                "needs mlflow.replicas >= 2 (with one replica a drain could never proceed)",
            )
        db = mlflow.get("backendStore") or {}
        yaml_safe("mlflow.backendStore.existingSecretPasswordKey", db.get("existingSecretPasswordKey"))
        if backend in ("postgresql", "mysql") and not db.get("inCluster"):
            if not db.get("host"):
                bad(
                    "mlflow.backendStore.host",
                    f"required with backendStore.type {backend} (or inCluster: true for postgresql)",
                )
            if not db.get("existingSecret"):
                bad(
                    "mlflow.backendStore.existingSecret",
                    "required: name the Secret that holds the database password",
                )
        if db.get("inCluster") and backend != "postgresql":
            bad("mlflow.backendStore.inCluster", "only postgresql can run in the stack")
        kind = store.get("type", "pvc")
        if kind in ("s3", "gcs", "azure") and not store.get("bucket"):
            bad("mlflow.artifactStore.bucket", f"required with artifactStore.type {kind}")
        # Without inCluster, a MinIO with an endpoint is external (as components.mlflow_values reads it).
        external_minio = kind == "minio" and not store.get("inCluster", not store.get("endpoint"))
        if external_minio and not store.get("endpoint"):
            bad("mlflow.artifactStore.endpoint", "required for an external MinIO (or inCluster: true)")
        if external_minio and not store.get("existingSecret"):
            bad(
                "mlflow.artifactStore.existingSecret",
                "required for an external MinIO: the Secret with its access keys (root-user, root-password)",
            )
        if kind == "azure" and not store.get("storageAccount"):
            bad("mlflow.artifactStore.storageAccount", "required with artifactStore.type azure")
        if kind in ("gcs", "azure") and not store.get("existingSecret"):
            bad(
                "mlflow.artifactStore.existingSecret",
                f"required with artifactStore.type {kind} (the credentials)",
            )
        if store.get("inCluster") and kind != "minio":
            bad("mlflow.artifactStore.inCluster", "only minio can run in the stack")
        if store.get("endpoint"):
            _url(bad, "mlflow.artifactStore.endpoint", store["endpoint"])
        quantity("mlflow.cpu", mlflow.get("cpu"))
        quantity("mlflow.memory", mlflow.get("memory"))
        quantity("mlflow.persistence.size", (mlflow.get("persistence") or {}).get("size"))
        quantity("mlflow.artifactStore.size", store.get("size"))
        _ingress(bad, "mlflow.ingress", mlflow.get("ingress") or {})
        yaml_safe("mlflow.serviceName", mlflow.get("serviceName"))
        if strict:  # the mlflow chart's exposure findings, which strictSecurity turns into errors
            ingress = mlflow.get("ingress") or {}
            if ingress.get("enabled") and not (ingress.get("tls") or {}).get("enabled"):
                bad(
                    "mlflow.ingress.tls.enabled",
                    "global.strictSecurity refuses an Ingress without TLS (credentials, runs and models"
                    " would cross the network in clear text)",
                )
            if not (mlflow.get("auth") or {}).get("enabled"):
                bad(
                    "mlflow.auth.enabled",
                    "global.strictSecurity needs MLflow's authentication (any pod that reaches it could"
                    " read and change runs and models)",
                )

    # URLs never carry credentials: they would sit in values.yaml, answers.yaml and the pods' specs.
    urls = [("mlflow.artifactStore.endpoint", (mlflow.get("artifactStore") or {}).get("endpoint"))]
    for i, job in enumerate((answers.get("training") or {}).get("jobs") or []):
        urls += [(f"training.jobs[{i}].{k}", job.get(k)) for k in ("trackingUri", "indexUrl")]
        content = (job.get("script") or {}).get("content")
        if isinstance(content, str) and len(content.encode()) > SCRIPT_LIMIT:
            bad(
                f"training.jobs[{i}].script",
                f"{len(content.encode())} bytes: a script travels in a ConfigMap and the chart takes at "
                f"most {SCRIPT_LIMIT:,} bytes; ship large code in your image (image + command) or on a "
                "volume",
            )
    for i, svc in enumerate((answers.get("inference") or {}).get("services") or []):
        model = svc.get("model") or {}
        urls += [(f"inference.services[{i}].model.{k}", model.get(k)) for k in ("endpoint", "trackingUri")]
    for path, url in urls:
        leak = url_credentials(url) if url else None
        if leak:
            bad(
                path,
                f"carries {leak}, which would be stored in plain text: use an existingSecret answer",
            )

    # Training jobs
    from generator import sweep as sweep_space

    for i, job in enumerate((answers.get("training") or {}).get("jobs") or []):
        at = f"training.jobs[{i}]"
        name_check(f"{at}.name", job["name"])
        script = job.get("script") or {}
        if script.get("file") and script.get("content") is not None:
            bad(f"{at}.script", "give file or content, not both")
        has_script = bool(script.get("file") or script.get("content"))
        if job.get("script") is not None and not has_script:
            bad(f"{at}.script", "needs file (a .py path) or content (the script's text)")
        if has_script and job.get("command"):
            bad(f"{at}.command", "give a script or a command, not both (the script runs with python)")
        if job.get("script") is None and not job.get("command"):
            bad(f"{at}", "needs script (file or content) or image and command")
        for key in ("cpu", "memory"):
            quantity(f"{at}.{key}", job.get(key))
        gpus = int(job.get("gpus") or 0)
        if gpus and not job.get("image"):
            bad(
                f"{at}.image",
                f"{gpus} GPU(s) requested: set a CUDA-capable image (the default python image has no CUDA)",
            )
        distributed = any(job.get(k) is not None for k in ("nodes", "procsPerNode", "operator"))
        procs = int(job.get("procsPerNode") or 1)
        if distributed and gpus and procs > gpus:
            bad(f"{at}.procsPerNode", f"{procs} processes per pod but only {gpus} GPU(s): use at most {gpus}")
        if distributed and job.get("schedule"):
            bad(f"{at}.schedule", "a distributed job cannot be scheduled (CronJob); drop one of them")
        cron = cron_problem(str(job["schedule"])) if job.get("schedule") else None
        if cron:
            bad(
                f"{at}.schedule",
                f'{job["schedule"]!s} is not a cron schedule ({cron}; five fields, e.g. "0 3 * * *")',
            )
        space = job.get("sweep")
        if space:
            if distributed:
                bad(f"{at}.sweep", "a sweep runs single-pod trials; drop nodes/procsPerNode/operator")
            try:
                sweep_space.trial_count({"enabled": True, **space}, f"{at}.sweep")
            except UserError as exc:
                bad(exc.field or f"{at}.sweep", str(exc).split("\n")[0].split(": ", 1)[-1])
        if job.get("indexUrl"):
            _url(bad, f"{at}.indexUrl", job["indexUrl"])  # credentials in it: the URL rule above
        for j, line in enumerate(job.get("requirements") or []):
            if isinstance(line, str) and any(ord(c) < 32 or ord(c) == 127 for c in line):
                bad(f"{at}.requirements[{j}]", "contains a control character: one requirement per item")
            elif isinstance(line, str) and line.strip().startswith("-"):
                bad(
                    f"{at}.requirements[{j}]",
                    "is a pip option, not a requirement: set the index with indexUrl "
                    "(credentials: a Secret via the chart's pip.existingSecret)",
                )
        if job.get("operator") == "trainjob" and job.get("secrets"):
            bad(f"{at}.secrets", "a TrainJob cannot take envFrom secrets; use operator none or pytorchjob")
        if not mlflow_on and not job.get("env"):
            pass  # jobs without MLflow are allowed: they just do not log
        volume_names: set[str] = set()
        mounts: set[str] = set()
        for j, vol in enumerate(job.get("volumes") or []):
            sources = [k for k in ("claimName", "size", "emptyDir") if vol.get(k)]
            if len(sources) != 1:
                bad(
                    f"{at}.volumes[{j}]",
                    "needs exactly one of claimName, size (a new claim) or emptyDir: true",
                )
            quantity(f"{at}.volumes[{j}].size", vol.get("size"))
            if vol["name"] in volume_names:
                bad(f"{at}.volumes[{j}].name", f"{vol['name']} is already a volume of this job")
            mount = vol["mountPath"].rstrip("/") or "/"
            if mount in mounts:
                bad(f"{at}.volumes[{j}].mountPath", f"{mount} is already where another volume is mounted")
            elif mount in JOB_MOUNTS or mount.startswith("/opt/helm-mlops/") or mount == "/opt/helm-mlops":
                bad(
                    f"{at}.volumes[{j}].mountPath",
                    f"{mount} is where the training-job chart mounts its own volumes"
                    f" ({', '.join(sorted(JOB_MOUNTS))}, /opt/helm-mlops)",
                )
            volume_names.add(vol["name"])
            mounts.add(mount)
        _env(bad, f"{at}.env", job.get("env"))

    # Inference services
    for i, svc in enumerate((answers.get("inference") or {}).get("services") or []):
        at = f"inference.services[{i}]"
        name_check(f"{at}.name", svc["name"])
        runtime = svc.get("runtime", "fastapi")
        model = svc.get("model") or {}
        kind = source_type(svc)
        fmt = model_format(svc)
        uri = str(model.get("uri") or "")
        if runtime == "bentoml":
            if not svc.get("image") or ":" not in str(svc["image"]).rsplit("/", 1)[-1]:
                bad(
                    f"{at}.image",
                    "runtime bentoml needs the Bento's image with a tag (what `bentoml containerize` built)",
                )
        else:
            if not kind:
                if uri:
                    bad(
                        f"{at}.model.uri",
                        f"{uri} is not models:/..., runs:/..., s3://..., https://... or pvc://claim/path",
                    )
                else:
                    bad(f"{at}.model", "needs uri (models:/, s3://, https://, pvc://) or inline")
            if kind and not fmt:
                bad(
                    f"{at}.model.format",
                    "cannot tell the format from the file name; set it ("
                    + ", ".join(f for f in FORMATS if f)
                    + ")",
                )
            if kind == "s3" and runtime == "kserve" and not model.get("endpoint"):
                from generator.components import stack_store

                store = stack_store(answers) or {}
                key_names = (store.get("accessKeyIdKey"), store.get("secretAccessKeyKey"))
                aws_names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                if store.get("existingSecret") and key_names != aws_names:
                    bad(
                        f"{at}.model.uri",
                        "runtime kserve reads S3 keys named AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and the "
                        "stack's object store Secret names them otherwise: use runtime fastapi or mlserver, "
                        "or model.endpoint with model.existingSecret holding those key names",
                    )
            if kind == "mlflow" and runtime == "kserve":
                bad(
                    f"{at}.model.uri",
                    "runtime kserve cannot fetch MLflow URIs (KServe's storage initializer knows s3://, "
                    "gs://, pvc://, https://): use runtime mlserver or fastapi, which resolve the registry, "
                    "or the model version's artifact location (s3://...)",
                )
            if kind == "mlflow":
                if not mlflow_on and not model.get("trackingUri"):
                    bad(
                        f"{at}.model.uri",
                        "models:/ needs MLflow in the stack (mlflow.enabled) or model.trackingUri",
                    )
                if not re.match(r"^(models:/[^/@]+(@[A-Za-z0-9_-]+|/[0-9]+)|runs:/[^/]+/.+)$", uri):
                    bad(
                        f"{at}.model.uri",
                        f"{uri} is not models:/<name>@<alias>, models:/<name>/<version> or "
                        "runs:/<run>/<path>",
                    )
            if kind == "s3" and not re.match(r"^s3://[^/]+/.+", uri):
                bad(f"{at}.model.uri", "s3 sources are s3://<bucket>/<key>")
            if kind == "pvc" and not re.match(r"^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/.+", uri):
                bad(f"{at}.model.uri", "pvc sources are pvc://<claim>/<path in the claim>")
            if kind == "https" and re.search(
                r"^https?://[^/]*@|[?&](X-Amz-Signature|X-Amz-Credential|sig|signature|token|access_token)=",
                uri,
            ):
                bad(
                    f"{at}.model.uri",
                    "carries credentials (user info or a signed query): use an s3 source with "
                    "existingSecret, or a pvc",
                )
            if kind == "s3" and not model.get("sha256"):
                from generator.components import stack_store

                shared = None if model.get("endpoint") else stack_store(answers)
                endpoint = str(model.get("endpoint") or (shared or {}).get("endpointUrl") or "")
                if endpoint.startswith("http://") and not (shared or {}).get("insecure"):
                    bad(
                        f"{at}.model.endpoint" if model.get("endpoint") else f"{at}.model.uri",
                        f"loads over plain http ({endpoint}"
                        + ("" if model.get("endpoint") else ", mlflow.artifactStore.endpoint")
                        + "), so anyone on the path could change the model: use https or pin model.sha256",
                    )
            if kind == "https" and uri.startswith("http://") and not model.get("sha256"):
                bad(
                    f"{at}.model.uri",
                    "plain http lets anyone on the path change the model: use https or pin model.sha256",
                )
            if model.get("uri") and model.get("inline") is not None:
                bad(f"{at}.model.inline", "give uri or inline, not both")
            if kind == "inline":
                inline = model.get("inline") or {}
                text = str(inline.get("base64") or "")
                size = len(text)
                if not size:
                    bad(f"{at}.model.inline.base64", "is empty: base64 of the model file")
                elif not BASE64.fullmatch("".join(text.split())):
                    bad(
                        f"{at}.model.inline.base64",
                        "is not base64 (the standard alphabet A-Z, a-z, 0-9, + and /, padded with =): "
                        "encode the file with `base64 model.onnx`",
                    )
                elif size > INLINE_LIMIT:
                    bad(
                        f"{at}.model.inline",
                        f"{size * 3 // 4 // 1024} KiB is too big to carry inline (about 1 MiB at most): put "
                        "the model on a PVC (pvc://claim/path) or in S3/MinIO (s3://bucket/key)",
                    )
                if runtime == "kserve":
                    bad(
                        f"{at}.model",
                        "runtime kserve cannot take an inline model: use pvc://, s3:// or https://",
                    )
            if fmt == "mlflow" and model.get("sha256"):
                bad(
                    f"{at}.model.sha256",
                    "cannot pin an MLflow model (a directory or registry URI); remove it and set "
                    "model.trust: true if you trust it",
                )
            elif fmt in CODE_FORMATS and not model.get("trust"):
                pinned = bool(model.get("sha256"))
                verified = (
                    runtime == "fastapi"
                    or (runtime == "kserve" and fmt == "torch")
                    or (kind in ("s3", "https", "inline") and runtime == "mlserver")
                )
                if fmt == "mlflow" or not pinned:
                    bad(
                        f"{at}.model.trust",
                        f"{CODE_FORMATS[fmt]} is code: loading it runs what its author wrote; set trust: "
                        "true if you trust it"
                        + ("" if fmt == "mlflow" else ", or pin the file with model.sha256"),
                    )
                elif not verified:
                    bad(
                        f"{at}.model.sha256",
                        f"runtime {runtime} reads the file unchecked, so a pin cannot stand for trust: set "
                        "model.trust: true",
                    )
            if runtime == "mlserver" and fmt and fmt not in MLSERVER_FORMATS:
                bad(f"{at}.runtime", f"mlserver has no runtime for {fmt} models; use fastapi")
            if runtime == "fastapi" and fmt in ("xgboost", "lightgbm"):
                bad(f"{at}.runtime", f"fastapi does not load {fmt} boosters; use mlserver")
            if runtime == "kserve" and fmt in ("torch", "keras"):
                bad(
                    f"{at}.runtime",
                    f"kserve serves {fmt} models only with a prebuilt helm-mlops runtime image; use fastapi",
                )
        if model.get("endpoint"):
            _url(bad, f"{at}.model.endpoint", model["endpoint"])
        hpa = svc.get("hpa") or {}
        if hpa.get("enabled"):
            low, high = int(hpa.get("minReplicas", 1)), int(hpa.get("maxReplicas", 3))
            if high < low:
                bad(f"{at}.hpa.maxReplicas", f"must be >= minReplicas ({low})")
        if runtime == "kserve" and svc.get("replicas") == 0 and not hpa.get("enabled"):
            bad(f"{at}.replicas", "kserve (RawDeployment) cannot scale to zero; use 1 or more")
        for key in ("cpu", "memory"):
            quantity(f"{at}.{key}", svc.get(key))
        gpus = int(svc.get("gpus") or 0)
        _device(bad, f"{at}.device", svc.get("device"), runtime, fmt, gpus)
        if gpus and runtime in ("fastapi", "mlserver") and not svc.get("image"):
            bad(
                f"{at}.image",
                f"{gpus} GPU(s) requested: runtime {runtime}'s default image has no CUDA; set a "
                "CUDA-capable image",
            )
        if svc.get("monitoring"):
            if runtime != "fastapi":
                bad(
                    f"{at}.monitoring",
                    f"model monitoring runs in the helm-mlops runtime: runtime fastapi, not {runtime}",
                )
            elif source_type(svc) == "inline":
                bad(
                    f"{at}.monitoring",
                    "the reference sample comes from the model's source, and an inline model has none: serve "
                    "the model from pvc://, s3://, https:// or MLflow",
                )
            else:
                _reference(bad, f"{at}.monitoring.reference", svc["monitoring"], source_type(svc))
        ingress = svc.get("ingress") or {}
        _ingress(bad, f"{at}.ingress", ingress)
        if ingress.get("enabled") and runtime == "kserve":
            bad(
                f"{at}.ingress.enabled",
                "runtime kserve: KServe exposes the InferenceService itself,"
                " the chart makes no Ingress for it",
            )
        elif ingress.get("enabled") and strict:  # the inference-service chart's exposure findings
            bad(
                f"{at}.ingress.enabled",
                "global.strictSecurity refuses an Ingress without authentication, which answers cannot"
                " configure (your ingress controller's auth annotations): reach the service in the cluster,"
                " or turn strictSecurity off",
            )
        _env(bad, f"{at}.env", svc.get("env"))
    return problems


def _device(bad: Any, path: str, device: Any, runtime: str, fmt: str, gpus: int) -> None:
    """A service's device: only the helm-mlops runtime takes one, and a CUDA device needs a GPU in the
    pod and a format that can use it (the runtime would stop at start otherwise)."""
    if isinstance(device, str) and device != device.strip():
        bad(path, f"{device!r} has surrounding whitespace: auto, cpu, cuda or cuda:N")
        return
    if not device or device in ("auto", "cpu"):
        return
    if runtime != "fastapi":
        bad(path, f"runtime {runtime} does not take a device; only fastapi (the helm-mlops runtime) does")
        return
    if not str(device).startswith("cuda"):
        return  # the schema named the bad value
    index = int(str(device).partition(":")[2] or 0)
    if fmt not in ("torch", "onnx", "keras"):
        bad(path, f"{fmt} models predict on the CPU only: use auto or cpu")
    elif not gpus:
        bad(path, f"{device} needs a GPU in the pod: set gpus (1 or more), or use auto")
    elif index >= gpus:
        bad(path, f"{device} is out of range with gpus: {gpus} (cuda:0 to cuda:{gpus - 1})")
    elif fmt == "onnx":
        bad(
            path,
            f"{device} with an ONNX model: the stack installs the CPU onnxruntime; use auto (the CPU), or "
            "serve it with the inference-service chart and an image with onnxruntime-gpu "
            "(fastapi.prebuilt)",
        )


def _url(bad: Any, path: str, value: Any) -> None:
    if not re.match(r"^https?://[^/\s]+", str(value)):
        bad(path, f"{value!s} is not an http(s) URL")


def _ingress(bad: Any, path: str, ingress: Mapping[str, Any]) -> None:
    tls = ingress.get("tls") or {}
    if ingress.get("enabled") and not ingress.get("host"):
        why = "TLS needs a host name (the certificate is for a host)" if tls.get("enabled") else ""
        bad(f"{path}.host", why or "required with ingress.enabled (the host the Ingress routes)")
    host = ingress.get("host")
    if host and not re.match(
        r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", str(host)
    ):
        bad(f"{path}.host", f"{host!s} is not a DNS name (lower case, e.g. ml.example.com)")


def _env(bad: Any, path: str, env: Any) -> None:
    for j, item in enumerate(env if isinstance(env, list) else []):
        if isinstance(item, dict) and item.get("value") and item.get("valueFrom"):
            bad(f"{path}[{j}]", "give value or valueFrom, not both")
    if isinstance(env, list):
        names = [e.get("name") for e in env if isinstance(e, dict)]
        for j, name in enumerate(names):
            if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                bad(f"{path}[{j}].name", "must be an environment variable name (letters, digits, _)")


def check(answers: Mapping[str, Any], source: str = "answers") -> None:
    """Raise InvalidAnswers listing every problem; return quietly when there is none."""
    problems = validate(answers)
    if problems:
        raise InvalidAnswers(problems, source)


_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_TOKEN_QUERY = re.compile(
    r"[?&](X-Amz-Signature|X-Amz-Credential|sig|signature|token|access_token|password|key)=", re.IGNORECASE
)


def url_credentials(url: object) -> str | None:
    """What credentials a URL carries (user info, a signed or token query), or None."""
    text = str(url)
    if _USERINFO.match(text):
        return "a user name or password (user@host)"
    if _TOKEN_QUERY.search(text):
        return "a signature or token in its query"
    return None


def redact(text: str) -> str:
    """A URL (or any text holding URLs) with user info and token queries blanked, for messages."""
    text = re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*@", r"\1***@", text)
    return re.sub(
        r"([?&](?:X-Amz-Signature|X-Amz-Credential|sig|signature|token|access_token|password|key)=)[^&\s]*",
        r"\1***",
        text,
        flags=re.IGNORECASE,
    )
