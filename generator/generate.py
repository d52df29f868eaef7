"""`helm-mlops generate`: answers (preset, file or standard input, `--set`) → an umbrella chart on disk,
written atomically: everything goes to a temporary directory beside the target and is renamed into
place at the end, so a failed or interrupted run leaves nothing behind. A directory helm-mlops did not
create, or whose generated files were edited since, is only replaced with --force."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import __version__, answers, seed, stack, yamlio
from generator.errors import UserError
from generator.paths import chart_dir, presets_dir

MARKER = ".helm-mlops"
# Files of a stack that are inputs as much as outputs: editing them is how a stack changes.
INPUTS = ("answers.yaml", "credentials.yaml")
CHARTS = ("mlflow", "training-job", "inference-service")


# Answers from their sources ----------------------------------------------------------------------------


def preset_names() -> list[str]:
    folder = presets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml") if _is_answers(p))


def _is_answers(path: Path) -> bool:
    try:
        head = path.read_text()[:2000]
    except OSError:
        return False
    return "apiVersion: helm-mlops/" in head


def preset_path(name: str) -> Path:
    path = presets_dir() / f"{name}.yaml"
    if not re.match(r"^[a-z0-9][a-z0-9-]*$", name) or not path.is_file() or not _is_answers(path):
        names = ", ".join(preset_names()) or "none found"
        raise UserError(f"no preset named {name!r}", field="--preset", hint=f"pick one of: {names}")
    return path


def presets() -> list[dict[str, str]]:
    """Name and one-line description of every preset."""
    out = []
    for name in preset_names():
        data = yamlio.load_mapping(presets_dir() / f"{name}.yaml", f"preset {name}")
        out.append({"name": name, "description": str(data.get("description") or "")})
    return out


def default_mlflow_version() -> str:
    """The MLflow version the mlflow chart is built and tested for (its appVersion): generate stays
    offline and reproducible; `init` offers the live releases."""
    meta = yamlio.load_mapping(chart_dir("mlflow", field="charts") / "Chart.yaml")
    return str(meta["appVersion"])


@dataclass
class Loaded:
    answers: dict[str, Any]
    base_dir: Path  # script files are relative to the answers file
    notes: list[str] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def load(
    *,
    preset: str | None,
    answers_file: str | None,
    sets: list[tuple[str, str]],
    interactive: dict[str, Any] | None = None,
) -> Loaded:
    """Layer the sources (defaults < preset < file < --set < interactive), map seed-shaped requests,
    check everything, read script files. Raises InvalidAnswers listing every problem."""
    layers = answers.Layers(
        base=answers.defaults(default_mlflow_version()), sets=sets, interactive=interactive
    )
    base_dir = Path.cwd()
    notes: list[str] = []
    secrets: dict[str, dict[str, str]] = {}
    if preset:
        layers.preset = yamlio.load_mapping(preset_path(preset), f"preset {preset}")
        base_dir = presets_dir()
    if answers_file:
        if answers_file != "-" and Path(answers_file).is_dir():  # a stack's directory: its answers.yaml
            answers_file = str(Path(answers_file) / "answers.yaml")
        data = answers.load_file(answers_file)
        if answers_file != "-":
            base_dir = Path(answers_file).absolute().parent
        shape = seed.detect(data)
        if shape:
            mapped = seed.to_answers(shape, data)
            data, notes, secrets = mapped.answers, mapped.notes, mapped.secrets
        elif "apiVersion" not in data:
            missing = "missing: an answers file starts with `apiVersion: helm-mlops/v1`"
            raise answers.InvalidAnswers([answers.Problem("apiVersion", missing)])
        layers.file = data
    merged = answers.merge_layers(layers)
    answers.check(merged)
    resolved = resolve_files(merged, base_dir)
    return Loaded(resolved, base_dir, notes, secrets)


def resolve_files(data: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """Script files read into the answers (`file` → `content` + `fileName`), so the saved answers.yaml
    regenerates the stack from anywhere."""
    out: dict[str, Any] = json.loads(json.dumps(data))
    problems = []
    for i, job in enumerate((out.get("training") or {}).get("jobs") or []):
        script = job.get("script") or {}
        if script.get("file"):
            path = (base_dir / script["file"]).resolve()
            if path.suffix != ".py":
                problems.append(
                    answers.Problem(f"training.jobs[{i}].script.file", f"{script['file']} is not a .py file")
                )
                continue
            if path.is_file() and path.stat().st_size > answers.SCRIPT_LIMIT:
                problems.append(
                    answers.Problem(
                        f"training.jobs[{i}].script.file",
                        f"{path} is {path.stat().st_size} bytes: a script travels in a ConfigMap and the "
                        f"chart takes at most {answers.SCRIPT_LIMIT:,} bytes; ship large code in your image "
                        "(image + command) or on a volume",
                    )
                )
                continue
            try:
                content = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                problems.append(
                    answers.Problem(f"training.jobs[{i}].script.file", f"cannot read {path}: {reason}")
                )
                continue
            script["content"] = content
            script.setdefault("fileName", path.name if path.suffix == ".py" else f"{path.name}.py")
            del script["file"]
    if problems:
        raise answers.InvalidAnswers(problems)
    return out


# Building the chart -------------------------------------------------------------------------------------


# Reading a chart (its values.yaml is long YAML) and packaging it take most of a generate run: a chart
# whose files are unchanged (same paths, sizes and modification times) is read and packaged once per
# process. Keyed by the folder and whether it is vendored; the fingerprint is checked on every use.
_CHART_CACHE: dict[tuple[str, bool], tuple[tuple[tuple[str, int, int], ...], stack.ChartRef]] = {}


def _fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime in ns, size) of every file under `folder`, sorted: changes when any file does."""
    out = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            info = os.stat(path)
            out.append((os.path.relpath(path, folder), info.st_mtime_ns, info.st_size))
    return tuple(out)


def _chart_ref(name: str, folder: Path, vendored: bool) -> stack.ChartRef:
    from generator.charts.package import package

    key = (str(folder.resolve()), vendored)
    fingerprint = _fingerprint(folder)
    cached = _CHART_CACHE.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    meta = yamlio.load_mapping(folder / "Chart.yaml")
    keys = tuple(yamlio.load_mapping(folder / "values.yaml").keys())
    archive = package(folder, name) if vendored else None
    ref = stack.ChartRef(name, str(meta["version"]), str(meta.get("appVersion", "")), keys, archive)
    _CHART_CACHE[key] = (fingerprint, ref)
    return ref


def chart_refs(repo: str) -> dict[str, stack.ChartRef]:
    return {name: _chart_ref(name, chart_dir(name, field="charts"), not repo) for name in CHARTS}


def _chart_repo(repo: str | None) -> str:
    if not repo:
        return ""
    from generator.answers import url_credentials
    from generator.values import http_url

    leak = url_credentials(repo)
    if leak:
        raise UserError(
            f"the repository URL carries {leak}, which would be written into Chart.yaml",
            field="--chart-repo",
            hint="pass the URL without credentials and log in with `helm repo add --username` or "
            "`helm registry login` instead",
        )
    if repo.startswith("oci://"):
        if len(repo) <= len("oci://") or " " in repo:
            raise UserError(
                f"{repo!r} is not an OCI repository",
                field="--chart-repo",
                hint="e.g. oci://registry.example.com/charts",
            )
        return repo.rstrip("/")
    return http_url(repo, "--chart-repo").rstrip("/")


def build(loaded: Loaded, chart_repo: str | None = None) -> stack.Stack:
    data = loaded.answers
    repo = _chart_repo(chart_repo)
    refs = chart_refs(repo)
    st = stack.Stack(
        name=data["name"],
        namespace=(data.get("global") or {}).get("namespace") or "default",
        components=stack.components(data),
        global_values=stack.global_values(data),
        tracking_uri=stack.tracking_uri(data),
    )
    _check_components(st, refs)
    files: dict[str, bytes] = {}
    if loaded.secrets:
        files["credentials.yaml"] = yamlio.dump({"credentials": {"secrets": loaded.secrets}}).encode()
    st.files = files
    files["Chart.yaml"] = stack.chart_yaml(st, data, refs, repo, __version__).encode()
    files["values.yaml"] = stack.values_yaml(st).encode()
    files["values.schema.json"] = stack.schema_json(st, refs).encode()
    files["README.md"] = stack.readme(
        st, data, vendored=not repo, repo=repo, secrets=set(loaded.secrets)
    ).encode()
    files[".helmignore"] = stack.HELMIGNORE.encode()
    files["templates/NOTES.txt"] = notes_txt(st).encode()
    files["templates/secrets.yaml"] = stack.CREDENTIALS.encode()
    header = (
        "# helm-mlops answers: `helm-mlops generate --answers answers.yaml -o <dir>` regenerates this "
        "stack.\n"
        "# Format: docs/answers.md (schema: `helm-mlops answers-schema`).\n"
    )
    files["answers.yaml"] = (header + yamlio.dump(data)).encode()
    if not repo:
        for name in sorted({comp.chart for comp in st.components}):
            ref = refs[name]
            assert ref.archive is not None
            files[f"charts/{ref.name}-{ref.version}.tgz"] = ref.archive
    return st


def notes_txt(st: stack.Stack) -> str:
    lines = ["Stack {{ .Release.Name }} in namespace {{ .Release.Namespace }}:"]
    for name, url, cmd in stack.endpoints(st, namespace="{{ .Release.Namespace }}"):
        lines.append(f"  {name}: {url}")
        lines.append(f"    {cmd}")
    lines += [
        "",
        "Status: helm-mlops status {{ .Release.Name }} -n {{ .Release.Namespace }}",
        "Tests:  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}",
    ]
    return "\n".join(lines) + "\n"


def _check_components(st: stack.Stack, refs: Mapping[str, stack.ChartRef]) -> None:
    """Each component's values against its chart's schema, problems named by the answer behind them."""
    import jsonschema

    from generator.components import provenance

    problems = []
    schemas: dict[str, Any] = {}
    for comp in st.components:
        if comp.chart not in schemas:
            schemas[comp.chart] = json.loads(
                (chart_dir(comp.chart, field="charts") / "values.schema.json").read_text()
            )
        validator = jsonschema.Draft7Validator(schemas[comp.chart])
        errors = sorted(validator.iter_errors(comp.values), key=lambda e: list(map(str, e.absolute_path)))
        for error in errors:
            key = tuple(map(str, error.absolute_path))
            where = provenance(comp.table, comp.prefix, key) or comp.prefix or "mlflow"
            said = answers.schema_message(error)
            problems.append(answers.Problem(where, f"the {comp.chart} chart refuses {'.'.join(key)}: {said}"))
    if problems:
        raise answers.InvalidAnswers(problems)


# Writing ---------------------------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _owned_and_unchanged(out: Path) -> tuple[bool, list[str]]:
    """Whether helm-mlops wrote `out`, and which of its files changed since."""
    marker = out / MARKER
    if not marker.is_file():
        return False, []
    try:
        record = json.loads(marker.read_text())
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False, []
    changed = []
    for rel, digest in files.items():
        if rel in INPUTS:
            continue
        path = out / rel
        if not path.is_file() or _digest(path.read_bytes()) != digest:
            changed.append(rel)
    known = set(files) | {MARKER}
    for path in out.rglob("*"):
        if path.is_file() and str(path.relative_to(out)) not in known:
            changed.append(str(path.relative_to(out)))
    return True, sorted(changed)


def write(files: Mapping[str, bytes], out: Path, *, force: bool) -> list[str]:
    """Write the stack's files to `out` atomically; returns notes for the user."""
    hint = "pass a new or empty directory, or --force to replace it"
    notes: list[str] = []
    try:
        out = Path(os.path.abspath(out))  # `-o .` and `-o ../x` name a real directory
    except OSError:  # the current directory was deleted under us
        raise UserError(
            "the current directory no longer exists", field="-o/--output", hint="cd to an existing directory"
        ) from None
    if out.is_symlink():
        raise UserError(f"{out} is a symbolic link", field="-o/--output", hint="pass a real directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is not a directory", field="-o/--output", hint="pass a directory")
    if out == Path(out.anchor):
        raise UserError(f"{out} is the file system's root", field="-o/--output", hint="pass a directory")
    owned, changed = False, list[str]()
    if out.exists() and any(out.iterdir()):
        owned, changed = _owned_and_unchanged(out)
    if out.exists() and any(out.iterdir()) and not force:
        if not owned:
            raise UserError(
                f"{out} is not empty and helm-mlops did not create it", field="-o/--output", hint=hint
            )
        if changed:
            shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
            raise UserError(
                f"{out} has files changed since it was generated: {shown}",
                field="-o/--output",
                hint="move your changes into answers.yaml (or values at install time), or pass --force",
            )
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.helm-mlops-", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot write in {parent}: {exc.strerror}", field="-o/--output", hint=hint) from None
    old: Path | None = None
    files = dict(files)
    kept = out / "credentials.yaml"
    if owned and "credentials.yaml" not in files and kept.is_file():
        # The only copy of a seed request's credentials: regenerating from answers.yaml keeps it.
        files["credentials.yaml"] = kept.read_bytes()
        notes.append(f"kept {kept} (the credentials of the request this stack came from)")
    try:
        record = {
            "generator": __version__,
            "files": {rel: _digest(data) for rel, data in sorted(files.items())},
        }
        for rel, data in sorted(files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if rel == "credentials.yaml":
                path.chmod(0o600)
        (staging / MARKER).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        staging.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.replace(out, old / "stack")
        try:
            os.replace(staging, out)
        except BaseException:
            if old is not None:
                os.replace(old / "stack", out)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        try:
            os.getcwd()
        except OSError:  # the shell stood in the replaced directory
            notes.append(f"your shell's current directory was replaced: run `cd {out}`")
    return notes


def run_generate(
    *,
    preset: str | None,
    answers_file: str | None,
    sets: list[tuple[str, str]],
    out: Path,
    force: bool,
    chart_repo: str | None,
    verbose: bool = False,
) -> list[str]:
    """Generate a stack; returns lines to print."""
    if not preset and not answers_file:
        raise UserError(
            "nothing to generate from",
            field="--preset/--answers",
            hint="pass --preset NAME, --answers FILE or --answers -",
        )
    loaded = load(preset=preset, answers_file=answers_file, sets=sets)
    built = build(loaded, chart_repo)
    written = write(built.files, out, force=force)
    lines = list(loaded.notes) + written
    if verbose:
        for comp in built.components:
            lines.append(f"component {comp.alias}: the {comp.chart} chart ({comp.prefix or 'mlflow'})")
        for rel, data in sorted(built.files.items()):
            lines.append(f"  {rel} ({len(data)} bytes)")
    kinds = stack._summary(built)
    lines.append(f"wrote stack {built.name} ({', '.join(kinds)}) to {out}")
    creds = out / "credentials.yaml"
    with_creds = f" -f {creds}" if creds.is_file() else ""
    if chart_repo:
        lines.append(f"fetch the charts: helm dependency build {out}")
    lines.append(
        f"install: helm install {built.name} {out}{with_creds} -n {built.namespace} --create-namespace --wait"
    )
    if loaded.secrets:
        lines.append(f"the request's credentials are in {creds} (mode 600), kept out of values and answers")
    return lines
