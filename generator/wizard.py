"""`helm-mlops init`: ask a platform engineer what a stack holds and write an answers file
(`apiVersion: helm-mlops/v1`) that `helm-mlops generate --answers FILE` turns into a chart.

Defaults come from `answers.defaults` with the preset (`--preset NAME`) over them, as for `generate`.
Every typed answer is checked while it is asked: the candidate value goes into the answers so far and
`answers.validate` (the function `generate` uses) judges them; the problems whose path is the asked field
(or under it) are shown and the question is asked again, so the messages are the ones `generate` gives.
Script files are checked the way `generate` reads them (`generate.resolve_files`).

The answers file is written only at the end, after a summary and a last confirmation, atomically (a
temporary file beside it, renamed into place): Ctrl-C at any question leaves nothing behind (exit 130).
`--yes` writes the defaults (or the preset) without asking, and needs no terminal; without `--yes` init
refuses to run without one. With `--yes` the MLflow version is the chart's own (what `generate` uses,
offline); the questions offer the live releases.

Seams, for tests and other front ends:
- `Ask`: the four prompt primitives (text with a validator, select, confirm) plus `say` and `table`.
  `TerminalAsk` implements them with questionary and rich; `Wizard` takes any implementation.
- `mlflow_versions: Callable[[], list[str]]`, newest first. The default, `available_mlflow_versions`,
  reads `HELM_MLOPS_WIZARD_VERSIONS` (comma-separated versions, newest first: tests and air-gapped sites
  set it), else the releases from `generator.versions` when that module is there, else falls back to
  the chart's MLflow version with a note.
- `interactive`: whether a terminal is there (default: standard input and output are TTYs)."""

from __future__ import annotations

import contextlib
import copy
import importlib
import itertools
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from generator import answers, generate, yamlio
from generator.answers_schema import API_VERSION, FORMATS
from generator.errors import HelmMlopsError, UserError

VERSIONS_ENV = "HELM_MLOPS_WIZARD_VERSIONS"
OTHER = "\x00other"  # the "other…" entry of the version list: never a version
HEADER = (
    f"# helm-mlops answers ({API_VERSION}), written by `helm-mlops init`.\n"
    "# Format: docs/answers.md (schema: `helm-mlops answers-schema`).\n"
    "# Generate the stack's chart: helm-mlops generate --answers <this file> -o <dir>\n"
)
NO_TERMINAL_HINT = (
    "pipe-friendly alternatives: `helm-mlops generate --answers FILE`, `helm-mlops generate --preset NAME`, "
    "or `helm-mlops init --yes [--preset NAME]` to write the defaults"
)

Key = str | int
FieldPath = tuple[Key, ...]


class Ask(Protocol):
    """What the wizard needs from a terminal. A validator returns None when the answer is fine, else
    the message to show; `text` asks again until it returns None. Ctrl-C raises KeyboardInterrupt."""

    def text(self, message: str, default: str, validate: Callable[[str], str | None]) -> str: ...

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None) -> str:
        """`choices` are (value, title) pairs; returns the chosen value."""
        ...

    def confirm(self, message: str, default: bool) -> bool: ...

    def say(self, message: str) -> None: ...

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...


class TerminalAsk:
    """Ask with questionary (arrow-key selects, inline validation) and rich (messages, the summary).
    Colours follow NO_COLOR, in both."""

    def __init__(self) -> None:
        import questionary
        from rich.console import Console

        self._q = questionary
        self._console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)

    def _run(self, question: Any) -> Any:
        try:
            value = question.unsafe_ask()
        except EOFError:  # Ctrl-D: leave like Ctrl-C
            raise KeyboardInterrupt from None
        if value is None:
            raise KeyboardInterrupt
        return value

    def text(self, message: str, default: str, validate: Callable[[str], str | None]) -> str:
        def check(raw: str) -> bool | str:
            return validate(raw) or True

        question = self._q.text(message, default=default, validate=check, validate_while_typing=False)
        return str(self._run(question))

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None) -> str:
        items = [self._q.Choice(title, value=value) for value, title in choices]
        known = default if any(value == default for value, _ in choices) else None
        return str(self._run(self._q.select(message, choices=items, default=known)))

    def confirm(self, message: str, default: bool) -> bool:
        return bool(self._run(self._q.confirm(message, default=default)))

    def say(self, message: str) -> None:
        self._console.print(message, markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        from rich.table import Table

        table = Table(*columns, title=title, header_style="bold")
        for row in rows:
            table.add_row(*row)
        self._console.print(table)


# The MLflow versions offered -----------------------------------------------------------------------


def available_mlflow_versions() -> list[str]:
    """MLflow versions to offer, newest stable first: $HELM_MLOPS_WIZARD_VERSIONS, else the releases
    `generator.versions` lists (live, cached or its bundled list), else the chart's version."""
    env = os.environ.get(VERSIONS_ENV)
    if env is not None:
        listed = [v.strip() for v in env.split(",") if v.strip()]
        if listed:
            return listed
    try:
        versions = importlib.import_module("generator.versions")
        source = None
        with contextlib.suppress(ImportError, AttributeError):
            source = importlib.import_module("generator.github").GitHubReleases.from_env()
        found = versions.list_versions("mlflow", source=source)
        for warning in getattr(found, "warnings", []):
            print(f"note: {warning}", file=sys.stderr)
        supported = getattr(versions, "supported", lambda _name, _version: True)
        out = [str(v.version) for v in found.versions if not v.prerelease and supported("mlflow", v.version)]
        if out:
            return out
        reason = "no supported MLflow release was listed"
    except ImportError:
        reason = "this helm-mlops cannot list MLflow releases"
    except (AttributeError, TypeError, HelmMlopsError) as exc:
        reason = f"cannot list MLflow releases ({exc})"
    fallback = generate.default_mlflow_version()
    print(f"note: {reason}; offering the chart's MLflow {fallback}", file=sys.stderr)
    return [fallback]


# Paths into the answers ------------------------------------------------------------------------------


def get_at(data: Any, path: FieldPath, default: Any = None) -> Any:
    node = data
    for key in path:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return default
            node = node[key]
        else:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
    return node


def put_at(data: Mapping[str, Any], path: FieldPath, value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `path` (mappings created on the way); None removes the key."""
    out = copy.deepcopy(dict(data))
    node: Any = out
    for key, nxt in itertools.pairwise(path):
        child = get_at(node, (key,))
        if not isinstance(child, (dict, list)):
            child = [] if isinstance(nxt, int) else {}
            _assign(node, key, child)
        node = child
    last = path[-1]
    if value is None:
        if isinstance(node, dict):
            node.pop(last, None)
    else:
        _assign(node, last, value)
    return out


def _assign(node: Any, key: Key, value: Any) -> None:
    if isinstance(node, list) and isinstance(key, int) and key == len(node):
        node.append(value)  # the next item of a list: a new job or service
    else:
        node[key] = value


def covers(field: str, problem: str) -> bool:
    """Whether a problem's path is `field` or under it."""
    return problem == field or problem.startswith((f"{field}.", f"{field}["))


# Converting typed text -------------------------------------------------------------------------------


def as_text(raw: str) -> str | None:
    raw = raw.strip()
    return raw or None


def as_required_text(raw: str) -> str:
    return raw.strip()  # "" stays, so the schema names the field ("must have at least 1 characters")


def as_int(raw: str) -> int | str | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw  # the schema says what is wrong ("... is not an integer")


def as_list(raw: str) -> list[str] | None:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return items or None


def as_command(raw: str) -> list[str] | str | None:
    if not raw.strip():
        return None
    try:
        return shlex.split(raw)
    except ValueError:
        return raw  # unbalanced quotes: the schema says it is not an array


def shown(value: Any) -> str:
    """A value as the text a question pre-fills."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# The questions ---------------------------------------------------------------------------------------

BACKENDS = [
    ("sqlite", "sqlite: a file on MLflow's volume (one replica)"),
    ("postgresql-incluster", "postgresql in the cluster (a PostgreSQL in the stack, for trying things out)"),
    ("postgresql", "postgresql, external (your database server)"),
    ("mysql", "mysql, external (your database server)"),
]
ARTIFACT_STORES = [
    ("pvc", "pvc: MLflow's volume (one replica)"),
    ("minio-incluster", "minio in the cluster (a MinIO in the stack)"),
    ("minio", "minio, external (your MinIO or S3-compatible store)"),
    ("s3", "s3 (Amazon S3)"),
    ("gcs", "gcs (Google Cloud Storage)"),
    ("azure", "azure (Azure Blob Storage)"),
]
RUNTIMES = [
    ("fastapi", "fastapi: helm-mlops' runtime (sklearn, joblib, onnx, torch, keras, mlflow)"),
    ("mlserver", "mlserver: Seldon MLServer (sklearn, joblib, xgboost, lightgbm, mlflow)"),
    ("bentoml", "bentoml: a Bento image you built"),
    ("kserve", "kserve: a KServe InferenceService (needs KServe in the cluster)"),
]


class Wizard:
    """The question flow over the answers so far (`self.data`, always a complete set of answers)."""

    def __init__(
        self,
        start: Mapping[str, Any],
        ask: Ask,
        *,
        answers_dir: Path,
        cwd: Path,
        mlflow_versions: Callable[[], list[str]],
        pinned_version: str | None = None,
    ) -> None:
        self.data: dict[str, Any] = copy.deepcopy(dict(start))
        self.ask = ask
        self.answers_dir = answers_dir
        self.cwd = cwd
        self.mlflow_versions = mlflow_versions
        self.pinned_version = pinned_version

    # Checking ----------------------------------------------------------------------------------------

    def problems(self, data: Mapping[str, Any], path: FieldPath, also: Sequence[str] = ()) -> list[str]:
        """The problems `generate` would report at `path` (or under it, or exactly at `also`)."""
        field = answers.fmt_path(path)
        found = answers.validate(data)
        if not found:
            try:
                generate.resolve_files(data, self.answers_dir)
            except answers.InvalidAnswers as exc:
                found = exc.problems
            except ValueError as exc:  # a path no file system takes (a NUL byte)
                found = [answers.Problem(field, str(exc))]
        return [str(p) for p in found if covers(field, p.path) or p.path in also]

    # Primitives over a field -------------------------------------------------------------------------

    def text(
        self,
        path: FieldPath,
        message: str,
        convert: Callable[[str], Any] = as_text,
        *,
        default: str | None = None,
        also: Sequence[str] = (),
        skippable: bool = False,
    ) -> Any:
        """Ask for the value at `path`; asked again until `generate` would accept it there (or, when
        `skippable`, left empty)."""

        def check(raw: str) -> str | None:
            value = convert(raw)
            if skippable and value is None:
                return None
            found = self.problems(put_at(self.data, path, value), path, also)
            return "; ".join(found) or None

        prefill = shown(get_at(self.data, path)) if default is None else default
        raw = self.ask.text(message, prefill, check)
        value = convert(raw)
        self.data = put_at(self.data, path, value)
        return value

    def select(
        self,
        path: FieldPath,
        message: str,
        choices: Sequence[tuple[str, str]],
        *,
        also: Sequence[str] = (),
    ) -> str:
        default = get_at(self.data, path)
        while True:
            value = self.ask.select(message, choices, default)
            candidate = put_at(self.data, path, value or None)  # "" (an automatic choice): no key
            found = self.problems(candidate, path, also)
            if not found:
                self.data = candidate
                return value
            for problem in found:
                self.ask.say(problem)
            default = value

    def confirm(self, path: FieldPath, message: str, default: bool = False) -> bool:
        current = get_at(self.data, path)
        value = self.ask.confirm(message, bool(current) if isinstance(current, bool) else default)
        self.data = put_at(self.data, path, value)
        return value

    # The flow ----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.text(("name",), "Stack name (the chart and release name):", as_required_text)
        self.text(("global", "namespace"), "Namespace to install into:", as_required_text)
        if self.confirm(("mlflow", "enabled"), "Deploy MLflow (tracking server and model registry)?", True):
            self.mlflow()
        self.training()
        self.inference()
        self.monitoring()
        return self.data

    def monitoring(self) -> None:
        if self.confirm(
            ("monitoring", "enabled"),
            "Monitor the stack (ServiceMonitors, alert rules, Grafana dashboards; "
            "needs the Prometheus Operator)?",
        ):
            self.text(
                ("monitoring", "prometheusNamespace"),
                "Namespace Prometheus runs in (its scrapes pass the NetworkPolicies):",
                as_required_text,
            )

    def mlflow(self) -> None:
        self.mlflow_version()
        backend = self.backend_store()
        store = self.artifact_store()
        if backend == "sqlite" or store == "pvc":
            self.text(("mlflow", "persistence", "size"), "Size of MLflow's volume (e.g. 10Gi):")
        if backend != "sqlite" and store != "pvc":
            self.text(
                ("mlflow", "replicas"),
                "MLflow server replicas:",
                as_int,
                also=("mlflow.podDisruptionBudget",),
            )
        else:  # one replica: what a SQLite file or a ReadWriteOnce volume allows
            self.data = put_at(self.data, ("mlflow", "replicas"), 1)
            self.data = put_at(self.data, ("mlflow", "podDisruptionBudget"), False)
        ingress = ("mlflow", "ingress")
        if self.confirm((*ingress, "enabled"), "Expose MLflow through an Ingress?"):
            host = self.text((*ingress, "host"), "Host name (e.g. mlflow.example.com; empty: any host):")
            if host and self.confirm((*ingress, "tls", "enabled"), f"Serve https://{host} (TLS)?"):
                self.text(
                    (*ingress, "tls", "certManagerIssuer"),
                    "cert-manager ClusterIssuer (empty: bring your own certificate Secret):",
                )
            elif not host:
                self.data = put_at(self.data, (*ingress, "tls", "enabled"), False)
        self.confirm(("mlflow", "auth", "enabled"), "Require a user name and password (MLflow basic auth)?")

    def mlflow_version(self) -> None:
        path: FieldPath = ("mlflow", "version")
        offered = list(dict.fromkeys(self.mlflow_versions()))
        if not offered:
            offered = [generate.default_mlflow_version()]
        default = self.pinned_version or offered[0]
        choices = [(v, f"{v} (latest)" if i == 0 else v) for i, v in enumerate(offered)]
        if default not in offered:
            choices.insert(0, (default, f"{default} (the preset's)"))
        choices.append((OTHER, "other… (type a version)"))
        while True:
            value = self.ask.select("MLflow version:", choices, default)
            if value == OTHER:
                self.text(path, "MLflow version (SemVer, e.g. 3.17.2):", as_required_text, default="")
                return
            candidate = put_at(self.data, path, value)
            found = self.problems(candidate, path)
            if not found:
                self.data = candidate
                return
            for problem in found:
                self.ask.say(problem)

    def backend_store(self) -> str:
        path: FieldPath = ("mlflow", "backendStore")
        current = get_at(self.data, path, {}) or {}
        kind = str(current.get("type", "sqlite"))
        now = f"{kind}-incluster" if current.get("inCluster") else kind
        choice = self.ask.select("MLflow's backend store (runs, metrics, the model registry):", BACKENDS, now)
        if choice == now:
            store = dict(current)
        elif choice == "postgresql-incluster":
            store = {"type": "postgresql", "inCluster": True}
        else:
            store = {"type": choice}
        self.data = put_at(self.data, path, store)
        if choice in ("postgresql", "mysql"):
            self.text((*path, "host"), f"{choice} host:")
            self.text((*path, "database"), "Database name (empty: mlflow):")
            self.text((*path, "user"), "Database user (empty: mlflow):")
            self.text((*path, "existingSecret"), "Secret holding the database password:")
        return choice

    def artifact_store(self) -> str:
        path: FieldPath = ("mlflow", "artifactStore")
        current = get_at(self.data, path, {}) or {}
        kind = str(current.get("type", "pvc"))
        now = f"{kind}-incluster" if kind == "minio" and current.get("inCluster", True) else kind
        choice = self.ask.select("MLflow's artifact store (artifacts and models):", ARTIFACT_STORES, now)
        if choice == now:
            store = dict(current)
        elif choice == "minio-incluster":
            store = {"type": "minio", "inCluster": True}
        elif choice == "minio":
            store = {"type": "minio", "inCluster": False}
        else:
            store = {"type": choice}
        self.data = put_at(self.data, path, store)
        if choice == "minio":
            self.text((*path, "endpoint"), "MinIO endpoint URL (e.g. https://minio.example.com):")
        if choice in ("minio", "s3", "gcs"):
            self.text((*path, "bucket"), "Bucket:" if choice != "minio" else "Bucket (empty: mlflow):")
        if choice == "azure":
            self.text((*path, "bucket"), "Blob container:")
            self.text((*path, "storageAccount"), "Storage account:")
        if choice == "s3":
            self.text((*path, "region"), "Region (empty: the SDK's default):")
        if choice in ("minio", "s3"):
            self.text((*path, "existingSecret"), "Secret holding the access keys (empty: none):")
        if choice in ("gcs", "azure"):
            self.text((*path, "existingSecret"), "Secret holding the credentials:")
        return choice

    def keep(self, path: FieldPath, noun: str) -> None:
        """Ask whether to keep each job or service the preset brought."""
        items = list(get_at(self.data, path, []) or [])
        kept = [item for item in items if self.ask.confirm(f"Keep the {noun} {item.get('name')}?", True)]
        self.data = put_at(self.data, path, kept)
        for index in reversed(range(len(kept))):  # what the answers so far make invalid is left out
            found = self.problems(self.data, (*path, index))
            if found:
                for problem in found:
                    self.ask.say(problem)
                self.ask.say(f"left out the {noun} {kept[index].get('name')}: add it again below")
                del kept[index]
                self.data = put_at(self.data, path, kept)

    def training(self) -> None:
        jobs: FieldPath = ("training", "jobs")
        self.keep(jobs, "training job")
        while self.ask.confirm("Add a training job?", False):
            self.training_job(len(get_at(self.data, jobs, []) or []))

    def training_job(self, index: int) -> None:
        at: FieldPath = ("training", "jobs", index)
        here = answers.fmt_path(at)
        self.data = put_at(self.data, at, {"name": ""})
        self.text((*at, "name"), "Job name:", as_required_text)
        runs = self.ask.select(
            "What does the job run?",
            [
                ("script", "a Python script from here (shipped with the chart, run with python)"),
                ("command", "a command in an image"),
            ],
            "script",
        )
        if runs == "script":
            self.text(
                (*at, "script", "file"),
                "Script file (relative to this directory):",
                self.script_path,
                default="",
                also=(f"{here}.script",),
            )
        else:
            self.text((*at, "image"), "Image (empty: python:3.11-slim):")
            self.text(
                (*at, "command"), "Command (as in a shell, e.g. python -m train):", as_command, also=(here,)
            )
        self.text((*at, "requirements"), "pip requirements (comma separated, empty: none):", as_list)
        self.text((*at, "cpu"), "CPU per pod (e.g. 2 or 500m; empty: the chart's default):")
        self.text((*at, "memory"), "Memory per pod (e.g. 8Gi; empty: the chart's default):")
        gpus = self.text((*at, "gpus"), "GPUs per pod:", as_int, default="0")
        if self.problems(self.data, (*at, "image")):
            self.text((*at, "image"), f"Image with CUDA ({gpus} GPU(s) per pod):")

    def script_path(self, raw: str) -> str:
        """A path typed relative to the working directory, stored relative to the answers file."""
        raw = raw.strip()
        if not raw:
            return ""
        typed = Path(raw).expanduser()
        if typed.is_absolute():
            return str(typed)
        return os.path.relpath(self.cwd / typed, self.answers_dir)

    def inference(self) -> None:
        services: FieldPath = ("inference", "services")
        self.keep(services, "inference service")
        while self.ask.confirm("Add an inference service?", False):
            self.inference_service(len(get_at(self.data, services, []) or []))

    def inference_service(self, index: int) -> None:
        at: FieldPath = ("inference", "services", index)
        here = answers.fmt_path(at)
        self.data = put_at(self.data, at, {"name": ""})
        self.text((*at, "name"), "Service name:", as_required_text)
        runtime = self.select((*at, "runtime"), "Runtime:", RUNTIMES)
        if runtime == "bentoml":
            self.text((*at, "image"), "Bento image with its tag (what `bentoml containerize` built):")
        else:
            self.model(at, here)
        if self.confirm((*at, "hpa", "enabled"), "Autoscale on CPU (HorizontalPodAutoscaler)?"):
            self.text((*at, "hpa", "minReplicas"), "Fewest replicas:", as_int, default="1")
            self.text((*at, "hpa", "maxReplicas"), "Most replicas:", as_int, default="3")
            self.text((*at, "hpa", "targetCPU"), "Target CPU utilisation (percent):", as_int, default="70")
        else:
            self.text((*at, "replicas"), "Replicas:", as_int, default="1")

    def model(self, at: FieldPath, here: str) -> None:
        self.text(
            (*at, "model", "uri"),
            "Model URI (models:/name@alias, s3://bucket/key, https://..., pvc://claim/path):",
            also=(f"{here}.model",),
        )
        derived = answers.model_format({"model": {"uri": get_at(self.data, (*at, "model", "uri"))}})
        formats = [("", f"from the file name ({derived or 'cannot tell'})")]
        formats += [(f, f) for f in FORMATS if f]
        self.select((*at, "model", "format"), "Model format:", formats, also=(f"{here}.runtime",))
        fmt = answers.model_format(get_at(self.data, at))
        if fmt in answers.CODE_FORMATS:
            self.trust(at, fmt)

    def trust(self, at: FieldPath, fmt: str) -> None:
        """Formats that run code on load: trust the model, or (files only) pin its sha256."""
        trust: FieldPath = (*at, "model", "trust")
        here = answers.fmt_path(trust)
        while True:
            what = answers.CODE_FORMATS[fmt]
            if self.confirm(trust, f"The model is {what}: loading it runs its author's code. Trust it?"):
                return
            if fmt == "mlflow":
                self.ask.say(f"{here}: an MLflow model is served only when trusted")
                continue
            sha = self.text(
                (*at, "model", "sha256"),
                "Pin the file's sha256 instead (64 hex digits; empty: back to trust):",
                also=(here,),
                skippable=True,
            )
            if sha:
                return


# Writing ----------------------------------------------------------------------------------------------


def check_output(out: Path, force: bool) -> None:
    """Before any question: the answers file's place is usable, and not taken unless --force."""
    if out.is_dir():
        raise UserError(f"{out} is a directory", field="-o/--output", hint="name the answers file to write")
    if (out.exists() or out.is_symlink()) and not force:
        raise UserError(
            f"{out} exists", field="-o/--output", hint="pass another path, or --force to overwrite it"
        )
    parent = out.absolute().parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"{folder} is not a directory", field="-o/--output")
            break


def write_answers(out: Path, data: Mapping[str, Any]) -> None:
    """The answers file, written atomically: a temporary file beside it renamed into place."""
    text = HEADER + yamlio.dump(dict(data))
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UserError(f"cannot write in {parent}: {exc.strerror}", field="-o/--output") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def summary_rows(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(section, key, value) for every answer worth showing (empty ones left out)."""
    rows: list[tuple[str, str, str]] = []

    def value_text(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, str) and "\n" in value:
            return f"({value.count(chr(10)) + 1} lines)"
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return "" if value is None else str(value)

    def walk(section: str, prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value and not (prefix.endswith(("labels", "env", "sweep"))):
            for key, item in value.items():
                walk(section, f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                walk(section, f"{prefix}[{i}]", item)
        else:
            text = value_text(value)
            if text:
                rows.append((section, prefix, text))

    for key, value in data.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "mlflow" and isinstance(value, dict) and not value.get("enabled", True):
            rows.append(("mlflow", "enabled", "no"))
        elif isinstance(value, dict):
            walk(key, "", value)
        else:
            text = value_text(value)
            if text:
                rows.append(("stack", key, text))
    return rows


# The command -------------------------------------------------------------------------------------------


def starting_answers(preset: str | None) -> tuple[dict[str, Any], str | None]:
    """Defaults with the preset over them (its script files read in, as `generate` reads them), and
    the MLflow version the preset pins, if any."""
    layers = answers.Layers(base=answers.defaults(generate.default_mlflow_version()))
    pinned = None
    if preset:
        layers.preset = yamlio.load_mapping(generate.preset_path(preset), f"preset {preset}")
        pinned = get_at(layers.preset, ("mlflow", "version"))
    merged = answers.merge_layers(layers)
    answers.check(merged, f"preset {preset}" if preset else "defaults")
    if preset:
        from generator.paths import presets_dir

        merged = generate.resolve_files(merged, presets_dir())
    return merged, str(pinned) if pinned else None


def run_init(
    out: Path,
    *,
    preset: str | None = None,
    yes: bool = False,
    force: bool = False,
    ask: Ask | None = None,
    mlflow_versions: Callable[[], list[str]] | None = None,
    interactive: bool | None = None,
    cwd: Path | None = None,
) -> list[str]:
    """Ask (or, with `yes`, take the defaults), then write the answers file. Returns lines to print."""
    check_output(out, force)
    start, pinned = starting_answers(preset)
    if yes:
        final = start
    else:
        if interactive is None:
            interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if not interactive:
            raise UserError("init asks questions and needs a terminal", hint=NO_TERMINAL_HINT)
        ask = ask or TerminalAsk()
        wizard = Wizard(
            start,
            ask,
            answers_dir=out.absolute().parent,
            cwd=cwd or Path.cwd(),
            mlflow_versions=mlflow_versions or available_mlflow_versions,
            pinned_version=pinned,
        )
        final = wizard.run()
        ask.table("Answers", ["Section", "Key", "Value"], summary_rows(final))
        if not ask.confirm(f"Write answers to {out}?", True):
            return [f"nothing written to {out}"]
    answers.check(final, "wizard's answers")
    generate.resolve_files(final, out.absolute().parent)
    check_output(out, force)  # taken while the questions were asked?
    write_answers(out, final)
    target = shlex.quote(f"{final['name']}/")
    return [
        f"wrote {out}",
        f"next: helm-mlops generate --answers {shlex.quote(str(out))} -o {target}",
    ]
