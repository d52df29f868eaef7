"""helm-mlops publish: package charts and generated stacks and publish them to a chart repository
directory served over HTTP (index.yaml merged, chart-releaser/chartpress style) and/or to an OCI
registry (`helm push`), optionally signed (provenance files); and `--check-bump`, the CI check that a
changed chart has a higher version.

Everything is checked before anything is written: the paths are charts, the options fit together, the
files they name exist, the index parses, and no chart version is already published with other content
(unless --force). A version already published with the same content is skipped (its index entry, with
its `created` timestamp and digest, stays as it is). Archives land before the index that points at them,
and the index is written to a temporary file in the same directory and renamed over the old one."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import yamlio
from generator.errors import HelmMlopsError, Interrupted, ToolError, UserError
from generator.helm.adapter import Helm, RegistryAccess

Echo = Callable[[str], None]


# --- options --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signing:
    key: str
    keyring: Path  # the secret keyring (`gpg --export-secret-keys > secring.gpg`)
    passphrase_file: Path | None = None


@dataclass(frozen=True)
class HttpTarget:
    repo_dir: Path
    url: str  # where repo_dir is served; the archives' URLs in index.yaml start with it


@dataclass(frozen=True)
class OciTarget:
    url: str  # oci://HOST/PATH
    access: RegistryAccess = field(default_factory=RegistryAccess)
    username: str | None = None
    password: str | None = None

    @property
    def host(self) -> str:
        return self.url[len("oci://") :].split("/", 1)[0]


@dataclass(frozen=True)
class Options:
    http: HttpTarget | None = None
    oci: OciTarget | None = None
    signing: Signing | None = None
    version: str | None = None
    app_version: str | None = None
    force: bool = False
    dry_run: bool = False
    sources: tuple[Source, ...] = ()  # the charts, read and checked once


@dataclass(frozen=True)
class Outcome:
    chart: str
    version: str
    target: str  # "http" or "oci"
    action: str  # "published", "replaced" or "unchanged"
    where: str  # the archive's URL, or the oci:// reference
    digest: str = ""  # sha256 of the archive published (or already there)


def check_options(
    paths: Sequence[Path],
    *,
    repo_dir: Path | None,
    url: str | None,
    oci: str | None,
    username: str | None,
    password: str | None,
    plain_http: bool,
    ca_file: Path | None,
    insecure: bool,
    sign: bool,
    key: str | None,
    keyring: Path | None,
    passphrase_file: Path | None,
    version: str | None,
    app_version: str | None,
    force: bool,
    dry_run: bool = False,
) -> Options:
    """The command line's options, checked together (exit 2 with the fix on the first problem)."""
    from generator.values import http_url

    if not paths:
        raise UserError(
            "nothing to publish", field="CHART_OR_STACK_DIR", hint="name chart or stack directories"
        )
    sources = tuple(read_chart(path) for path in paths)
    if url and repo_dir is None:
        raise UserError("--url goes with --repo-dir", field="--url", hint="add --repo-dir DIR")
    if repo_dir is None and oci is None:
        raise UserError(
            "no destination",
            field="--repo-dir/--oci",
            hint="pass --repo-dir DIR --url BASE_URL (an HTTP chart repository) and/or --oci oci://HOST/PATH",
        )
    http = None
    if repo_dir is not None:
        if not url:
            raise UserError(
                "--repo-dir needs the URL the directory is served at",
                field="--url",
                hint="e.g. --url https://example.github.io/charts",
            )
        if repo_dir.exists() and not repo_dir.is_dir():
            raise UserError(f"{repo_dir} is not a directory", field="--repo-dir")
        if not repo_dir.exists() and not repo_dir.parent.is_dir():
            raise UserError(
                f"{repo_dir.parent} does not exist", field="--repo-dir", hint="create the parent directory"
            )
        writable = repo_dir if repo_dir.exists() else repo_dir.parent
        if not os.access(writable, os.W_OK | os.X_OK):
            raise UserError(f"{writable} is not writable", field="--repo-dir", hint="check its permissions")
        index_file = repo_dir / "index.yaml"
        if index_file.exists() and not index_file.is_file():
            raise UserError(f"{index_file} is not a file", field="--repo-dir")
        if index_file.is_file() and not os.access(index_file, os.R_OK):
            raise UserError(f"{index_file} is not readable", field="--repo-dir", hint="check its permissions")
        _no_credentials(url, "--url")
        base = http_url(url, "--url").rstrip("/")
        if any(c in base for c in "?#"):
            raise UserError(
                "has a query or fragment, which the archives' URLs cannot carry",
                field="--url",
                hint="give the directory's URL alone, e.g. https://example.github.io/charts",
            )
        http = HttpTarget(repo_dir, base)
    target = None
    if oci is not None:
        _no_credentials(oci, "--oci")
        _check_oci(oci)
        if bool(username) != (password is not None):
            raise UserError(
                "--username and --password-stdin go together",
                field="--username" if not username else "--password-stdin",
                hint="pass both (the password on standard input), or neither to use `helm registry login`",
            )
        if ca_file is not None and not ca_file.is_file():
            raise UserError(f"{ca_file} is not a file", field="--ca-file")
        if ca_file is not None and insecure:
            raise UserError(
                "--ca-file and --insecure-skip-tls-verify contradict each other",
                field="--insecure-skip-tls-verify",
                hint="keep --ca-file to check the registry's certificate (drop the other)",
            )
        target = OciTarget(
            oci.rstrip("/"),
            RegistryAccess(plain_http=plain_http, ca_file=ca_file, insecure_skip_tls_verify=insecure),
            username or None,
            password,
        )
    else:
        for given, name in (
            (plain_http, "--plain-http"),
            (ca_file, "--ca-file"),
            (insecure, "--insecure-skip-tls-verify"),
            (username, "--username"),
            (password is not None, "--password-stdin"),
        ):
            if given:
                raise UserError(f"{name} applies to --oci only", field=name, hint="add --oci oci://HOST/PATH")
    signing = None
    if sign:
        if not key:
            raise UserError("--sign needs --key", field="--key", hint="the key's name or email (gpg -K)")
        if keyring is None:
            raise UserError(
                "--sign needs --keyring",
                field="--keyring",
                hint="export the secret key: gpg --export-secret-keys KEY > secring.gpg",
            )
        for given, name in ((keyring, "--keyring"), (passphrase_file, "--passphrase-file")):
            if given is not None and not given.is_file():
                raise UserError(f"{given} is not a file", field=name)
        if passphrase_file is not None and not passphrase_file.read_bytes().strip():
            raise UserError(
                f"{passphrase_file} is empty",
                field="--passphrase-file",
                hint="put the key's passphrase in it",
            )
        signing = Signing(key, keyring, passphrase_file)
    else:
        for given, name in ((key, "--key"), (keyring, "--keyring"), (passphrase_file, "--passphrase-file")):
            if given:
                raise UserError(f"{name} is for signing", field=name, hint="add --sign")
    for value, name in ((version, "--version"), (app_version, "--app-version")):
        if value is not None and not value.strip():
            raise UserError("is empty", field=name)
    if version is not None:
        _semver(version, "--version")
    return Options(http, target, signing, version, app_version, force, dry_run, sources)


def _no_credentials(url: str, where: str) -> None:
    """Refuse user:password@ in a URL without printing it: it would be echoed and, for --url, written
    into a public index.yaml."""
    from urllib.parse import urlsplit

    try:
        has = urlsplit(url).password is not None or urlsplit(url).username is not None
    except ValueError:
        has = "@" in url
    if has:
        raise UserError(
            "carries credentials (user:password@), which would be printed and stored",
            field=where,
            hint="remove them; for a registry pass --username with --password-stdin (or helm registry login)",
        )


# What an OCI repository path may hold (the distribution spec's name grammar, lower case).
_OCI_PATH = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def _check_oci(oci: str) -> None:
    hint = "e.g. oci://registry.example.com/charts (no tag: each chart's version is its tag)"
    rest = oci[len("oci://") :].rstrip("/") if oci.startswith("oci://") else ""
    host, _, path = rest.partition("/")
    if not host or any(c in oci for c in " ?#") or ":" in path or "@" in path:
        raise UserError(f"{oci!r} is not an OCI repository", field="--oci", hint=hint)
    name, _, port = host.partition(":")
    if not name or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
        raise UserError(f"{host!r} is not a registry host[:port]", field="--oci", hint=hint)
    if path and not _OCI_PATH.fullmatch(path):
        raise UserError(
            f"{path!r} is not a repository path: lower-case letters, digits and . _ - between slashes",
            field="--oci",
            hint=hint,
        )


def _semver(text: str, where: str) -> Any:
    import semver

    try:
        return semver.Version.parse(text.removeprefix("v"))
    except (ValueError, TypeError):
        raise UserError(
            f"{text!r} is not a semantic version", field=where, hint="e.g. 1.2.3 (Helm needs SemVer 2)"
        ) from None


# --- charts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    path: Path
    name: str
    version: str


def read_chart(path: Path) -> Source:
    """A chart directory's name and version; UserError when it is not a chart."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise UserError(what, field=str(path), hint="name a chart or generated stack directory")
    meta_file = path / "Chart.yaml"
    if not meta_file.is_file():
        raise UserError(
            "is not a chart: it has no Chart.yaml",
            field=str(path),
            hint="name a chart directory (charts/NAME) or a stack made by `helm-mlops generate`",
        )
    meta = yamlio.load_mapping(meta_file)  # UserError naming the file when it is not YAML
    name, version = meta.get("name"), meta.get("version")
    if not isinstance(name, str) or not name or version is None:
        raise UserError(
            "lacks name or version", field=str(meta_file), hint="add both (helm create shows how)"
        )
    _semver(str(version), f"{meta_file} version")
    return Source(path, name, str(version))


def archive_meta(archive: Path) -> tuple[str, str]:
    """(name, version) from a packaged chart's Chart.yaml."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml":
                handle = tar.extractfile(member)
                assert handle is not None
                meta = yamlio.loads(handle.read().decode(), member.name) or {}
                return str(meta["name"]), str(meta["version"])
    raise ToolError(f"{archive} has no Chart.yaml")


def content_digest(data: bytes) -> str:
    """sha256 over a chart archive's files (names and bytes, sorted), not its tar headers: equal for two
    packages of the same chart made at different times (Helm 3 stamps file times; Helm 4 does not)."""
    files = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                files.append((member.name, hashlib.sha256(handle.read()).hexdigest()))
    return hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the HTTP repository's index --------------------------------------------------------------------


def read_index(repo_dir: Path) -> dict[str, Any] | None:
    path = repo_dir / "index.yaml"
    if not path.exists():
        return None
    try:
        index = yamlio.loads(path.read_text(), str(path))
    except (HelmMlopsError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} does not parse: {exc}", field="--repo-dir") from None
    if (
        not isinstance(index, dict)
        or index.get("apiVersion") != "v1"
        or not isinstance(index.get("entries") or {}, dict)
    ):
        raise UserError(
            f"{path} is not a Helm repository index (apiVersion v1 with entries)",
            field="--repo-dir",
            hint="point --repo-dir at the directory of a chart repository, or at a new directory",
        )
    return index


def indexed(index: dict[str, Any] | None, name: str, version: str) -> dict[str, Any] | None:
    for entry in ((index or {}).get("entries") or {}).get(name) or []:
        if isinstance(entry, dict) and str(entry.get("version")) == version:
            return entry
    return None


# --- the workflow -----------------------------------------------------------------------------------


@dataclass
class _Package:
    source: Source
    archive: Path
    name: str
    version: str
    data: bytes
    prov: Path | None


def _with_dependencies(
    helm: Helm, source: Source, access: RegistryAccess | None, scratch: Path, cleanup: contextlib.ExitStack
) -> Source:
    """The chart to package: SOURCE itself when its dependencies are all in charts/, else a copy after
    `helm dependency build` (a stack generated with --chart-repo, an umbrella chart), so the user's
    directory is never changed. The copy sits beside the source (a hidden temporary directory) so that
    relative `file://` dependencies resolve as they do from the source; where that directory is not
    writable, in SCRATCH. UserError naming the chart when the dependencies cannot be had."""
    try:
        missing = [row for row in helm.dependency_list(source.path) if row[3] != "ok"]
    except Interrupted:
        raise
    except HelmMlopsError as exc:
        raise UserError(
            _cause(str(exc.args[0] if exc.args else exc)),
            field=str(source.path),
            hint=f"fix the chart (`helm lint {source.path}` shows what helm finds wrong)",
        ) from None
    if not missing:
        return source
    real = source.path.resolve()  # "." has no name or parent of its own
    try:
        copy = Path(tempfile.mkdtemp(prefix=f".{real.name}.publish-", dir=real.parent))
    except OSError:
        copy = Path(tempfile.mkdtemp(prefix=f"{source.name}-", dir=scratch))
    cleanup.callback(shutil.rmtree, copy, ignore_errors=True)
    shutil.copytree(real, copy, symlinks=False, dirs_exist_ok=True)
    try:
        helm.dependency_build(copy, access)
    except Interrupted:
        raise
    except HelmMlopsError as exc:
        generated = (source.path / "answers.yaml").is_file()
        raise UserError(
            "its dependencies ("
            + ", ".join(f"{r[0]} {r[1]} from {r[2] or 'charts/'}" for r in missing)
            + f") cannot be fetched: {_cause(str(exc.args[0] if exc.args else exc))}",
            field=str(source.path),
            hint="publish the charts it depends on to that repository first, or generate the stack "
            "without --chart-repo so the charts are vendored"
            if generated
            else "check the dependencies' repository URLs and versions in Chart.yaml "
            f"(`helm dependency build {source.path}` shows the same)",
        ) from None
    return Source(copy, source.name, source.version)


def _cause(message: str) -> str:
    """The line of helm's output that says what went wrong, helm's internal names left out."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for marker in ("Unable to get an update from", "could not download", "not found", "Error:"):
        hit = next((line for line in lines if marker in line and "no cached repository" not in line), None)
        if hit is not None:
            return hit.removeprefix("Error: ")
    return lines[-1].removeprefix("Error: ") if lines else "(no message)"


def _package(helm: Helm, source: Source, options: Options, into: Path) -> _Package:
    sign = None
    if options.signing is not None:
        s = options.signing
        sign = (s.key, s.keyring, s.passphrase_file)
    out = into / f"{len(list(into.iterdir()))}-{source.name}"
    out.mkdir()
    archive = helm.package(
        source.path, out, version=options.version, app_version=options.app_version, sign=sign
    )
    name, version = archive_meta(archive)
    prov = archive.with_name(archive.name + ".prov")
    return _Package(source, archive, name, version, archive.read_bytes(), prov if prov.exists() else None)


@contextlib.contextmanager
def _registry_config(target: OciTarget, scratch: Path) -> Iterator[RegistryAccess]:
    """The target's access, with a registry config holding --username/--password-stdin's credentials
    (mode 0600, in a private temporary directory, removed after) when they were given."""
    if target.username is None or target.password is None:
        yield target.access
        return
    import base64
    import dataclasses

    path = scratch / "registry-config.json"
    token = base64.b64encode(f"{target.username}:{target.password}".encode()).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": {target.host: {"auth": token}}}, handle)
    try:
        yield dataclasses.replace(target.access, registry_config=path)
    finally:
        path.unlink(missing_ok=True)


def _published_oci(
    helm: Helm, ref: str, version: str, access: RegistryAccess, scratch: Path
) -> tuple[bytes, bool] | None:
    """The archive at REF:VERSION and whether it carries provenance, or None when there is no such tag."""
    where = Path(tempfile.mkdtemp(dir=scratch))
    try:
        helm.pull(ref, where, version=version, access=access, prov=True)
    except Interrupted:
        raise
    except HelmMlopsError as exc:
        text = str(exc)
        if "not found" in text and "credential" not in text:
            return None
        raise
    archives = list(where.glob("*.tgz"))
    if not archives:
        return None
    return archives[0].read_bytes(), bool(list(where.glob("*.prov")))


def _conflict(pkg: _Package, where: str, why: str) -> str:
    return (
        f"{pkg.name} {pkg.version} is already published at {where} {why}: raise the chart's version "
        "(or pass --version), or --force to replace it"
    )


def _unsigned(pkg: _Package, where: str) -> str:
    return (
        f"{pkg.name} {pkg.version} is published unsigned at {where}, and this package differs from it "
        "byte for byte (Helm 3 stamps file times into archives), so no signature can be added to it: "
        "--force replaces it with this signed package (or raise the version)"
    )


@contextlib.contextmanager
def _locked(repo_dir: Path, echo: Echo) -> Iterator[None]:
    """One publish at a time into a repository directory: an flock on the directory itself (its parent
    while it does not exist yet), so two CI jobs cannot both merge the same old index."""
    import fcntl

    target = repo_dir if repo_dir.is_dir() else repo_dir.parent
    fd = os.open(target, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo(f"waiting for another publish into {repo_dir} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(helm: Helm, options: Options, echo: Echo, warn: Echo | None = None) -> list[Outcome]:
    """Publish OPTIONS' charts as they say; ECHO gets one line per chart published, WARN the warnings."""
    warn = warn or echo
    sources = options.sources
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="helm-mlops-publish-") as tmp:
        scratch = Path(tmp)
        os.chmod(scratch, 0o700)
        access: RegistryAccess | None = None
        with contextlib.ExitStack() as stack:
            if options.http is not None:
                stack.enter_context(_locked(options.http.repo_dir, warn))
            index = read_index(options.http.repo_dir) if options.http else None
            if options.http is not None and index is not None:
                # Helm refuses some indexes other tools write (unknown fields): find out before any push.
                trial = Path(tempfile.mkdtemp(dir=scratch))
                helm.repo_index(trial, options.http.url, merge=options.http.repo_dir / "index.yaml")
            if options.oci is not None:
                access = stack.enter_context(_registry_config(options.oci, scratch))
            built = scratch / "packages"
            built.mkdir()
            packages: list[_Package] = []
            for source in sources:
                ready = _with_dependencies(helm, source, access, scratch, stack)
                pkg = _package(helm, ready, options, built)
                pkg.source = source
                packages.append(pkg)
            seen: dict[tuple[str, str], Path] = {}
            for pkg in packages:
                other = seen.get((pkg.name, pkg.version))
                if other is not None:
                    what = f"{pkg.name} {pkg.version}"
                    raise UserError(
                        f"{other} is given twice ({what})"
                        if other == pkg.source.path
                        else f"{other} and {pkg.source.path} are both {what}",
                        field=str(pkg.source.path),
                        hint="name each directory once"
                        if other == pkg.source.path
                        else "publish each chart version once (give them different versions)",
                    )
                seen[(pkg.name, pkg.version)] = pkg.source.path

            # Decide everything before writing anything.
            problems: list[str] = []
            to_index: list[tuple[_Package, str]] = []
            to_sign: list[_Package] = []  # published unsigned, same archive: add the .prov beside it
            to_push: list[tuple[_Package, str]] = []
            signing = options.signing is not None
            if options.http is not None:
                repo = options.http.repo_dir
                for pkg in packages:
                    entry = indexed(index, pkg.name, pkg.version)
                    if entry is None:
                        to_index.append((pkg, "published"))
                        continue
                    where = str((entry.get("urls") or [f"{options.http.url}/{pkg.archive.name}"])[0])
                    old = repo / pkg.archive.name
                    identical = entry.get("digest") == sha256(pkg.data) and old.is_file()
                    same = identical or (
                        old.is_file() and content_digest(old.read_bytes()) == content_digest(pkg.data)
                    )
                    unsigned = signing and not (repo / f"{pkg.archive.name}.prov").is_file()
                    if same and not unsigned:
                        echo(f"unchanged: {pkg.name} {pkg.version} is already in the index, same content")
                        digest = str(entry.get("digest", ""))
                        outcomes.append(Outcome(pkg.name, pkg.version, "http", "unchanged", where, digest))
                    elif same and identical:
                        to_sign.append(pkg)
                    elif options.force:
                        to_index.append((pkg, "replaced"))
                    elif same:
                        problems.append(_unsigned(pkg, where))
                    else:
                        why = (
                            "with other content"
                            if old.is_file()
                            else f"(its archive is not in {repo} to compare the files)"
                        )
                        problems.append(_conflict(pkg, where, why))
            if options.oci is not None:
                assert access is not None
                for pkg in packages:
                    ref = f"{options.oci.url}/{pkg.name}"
                    there = _published_oci(helm, ref, pkg.version, access, scratch)
                    where = f"{ref}:{pkg.version}"
                    if there is None:
                        to_push.append((pkg, "published"))
                        continue
                    data, there_signed = there
                    identical = sha256(data) == sha256(pkg.data)
                    same = identical or content_digest(data) == content_digest(pkg.data)
                    if same and not (signing and not there_signed):
                        warn(f"warning: {where} is already there with the same content: skipped")
                        outcomes.append(
                            Outcome(pkg.name, pkg.version, "oci", "unchanged", where, sha256(data))
                        )
                    elif same and identical:
                        to_push.append((pkg, "signed"))  # the same chart layer, now with its provenance
                    elif options.force:
                        to_push.append((pkg, "replaced"))
                    elif same:
                        problems.append(_unsigned(pkg, where))
                    else:
                        problems.append(_conflict(pkg, where, "with other content"))
            if problems:
                raise UserError(
                    "nothing was published:\n  - " + "\n  - ".join(problems),
                    hint="bump the versions named above (Chart.yaml, or --version), or pass --force",
                )

            if options.dry_run:
                for pkg, action in to_push:
                    assert options.oci is not None
                    where = f"{options.oci.url}/{pkg.name}:{pkg.version}"
                    echo(f"would be {action}: {where} (dry run)")
                    outcomes.append(Outcome(pkg.name, pkg.version, "oci", f"would be {action}", where))
                for pkg, action in [*to_index, *((p, "signed") for p in to_sign)]:
                    assert options.http is not None
                    where = f"{options.http.url}/{pkg.archive.name}"
                    echo(f"would be {action}: {where} (dry run)")
                    outcomes.append(Outcome(pkg.name, pkg.version, "http", f"would be {action}", where))
                return outcomes

            # OCI first (the remote step that can fail), then the local index.
            for pkg, action in to_push:
                assert options.oci is not None and access is not None
                said = helm.push(pkg.archive, options.oci.url, access=access)
                digest = next((w for w in said.split() if w.startswith("sha256:")), "")
                where = f"{options.oci.url}/{pkg.name}:{pkg.version}"
                outcomes.append(Outcome(pkg.name, pkg.version, "oci", action, where, sha256(pkg.data)))
                notes = [f"manifest {digest}"] if digest else []
                notes += ["signed"] if pkg.prov is not None else []
                echo(f"{action}: {where}" + (f" ({', '.join(notes)})" if notes else ""))
            if options.http is not None and to_sign:
                for pkg in to_sign:
                    assert pkg.prov is not None
                    target = options.http.repo_dir / pkg.prov.name
                    staged = options.http.repo_dir / f".{pkg.prov.name}.publish-{os.getpid()}"
                    shutil.copy2(pkg.prov, staged)
                    _replace(staged, target)
                    url = f"{options.http.url}/{pkg.archive.name}"
                    echo(f"signed: {url} (provenance added beside the published archive)")
                    outcomes.append(Outcome(pkg.name, pkg.version, "http", "signed", url, sha256(pkg.data)))
            if options.http is not None and to_index:
                outcomes += _write_http(helm, options.http, to_index, scratch, echo)
    return outcomes


def _write_http(
    helm: Helm, target: HttpTarget, chosen: Sequence[tuple[_Package, str]], scratch: Path, echo: Echo
) -> list[Outcome]:
    """Copy the archives (and .prov files) into the repository directory, then merge the index: `helm
    repo index --merge` over a directory holding only the new archives, so every existing entry (and its
    `created` time) is kept, written beside index.yaml and renamed over it."""
    repo = target.repo_dir
    repo.mkdir(exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".helm-mlops-publish-", dir=repo))
    try:
        for pkg, _ in chosen:
            shutil.copy2(pkg.archive, fresh / pkg.archive.name)
        old_index = repo / "index.yaml"
        helm.repo_index(fresh, target.url, merge=old_index if old_index.exists() else None)
        staged = fresh / "index.yaml"
        if not staged.is_file():
            raise ToolError(f"helm repo index wrote no {staged}")
        # Archives first: the index never points at a file that is not there yet.
        for pkg, _ in chosen:
            _replace(fresh / pkg.archive.name, repo / pkg.archive.name)
            if pkg.prov is not None:
                shutil.copy2(pkg.prov, fresh / pkg.prov.name)
                _replace(fresh / pkg.prov.name, repo / pkg.prov.name)
            else:
                (repo / (pkg.archive.name + ".prov")).unlink(missing_ok=True)  # a stale signature
        _replace(staged, old_index)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    outcomes = []
    for pkg, action in chosen:
        url = f"{target.url}/{pkg.archive.name}"
        echo(f"{action}: {url}" + (" (signed)" if pkg.prov is not None else ""))
        outcomes.append(Outcome(pkg.name, pkg.version, "http", action, url, sha256(pkg.data)))
    echo(f"index: {repo / 'index.yaml'}")
    return outcomes


def _replace(src: Path, dst: Path) -> None:
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(src, dst)


# --- --check-bump -----------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ToolError(f"cannot run git: {exc}") from None


def check_bump(base_ref: str, paths: Sequence[Path], cwd: Path) -> list[str]:
    """Charts under PATHS that changed since the merge base of BASE_REF and HEAD (committed, staged,
    unstaged or untracked) without a higher version: one line each. What `ct lint` checks."""
    import semver

    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top.returncode != 0:
        raise UserError(
            f"{cwd} is not in a git repository", field="--check-bump", hint="run it in the checkout"
        )
    root = Path(top.stdout.strip())
    base = _git(["merge-base", base_ref, "HEAD"], root)
    if base.returncode != 0:
        raise UserError(
            f"{base_ref!r} is not a commit here",
            field="--check-bump",
            hint="fetch it first (git fetch origin main) and pass e.g. origin/main",
        )
    commit = base.stdout.strip()
    charts = list(paths) or sorted(p.parent for p in (root / "charts").glob("*/Chart.yaml"))
    problems = []
    for chart in charts:
        source = read_chart(chart)
        rel = os.path.relpath(chart.resolve(), root)
        changed = _git(["diff", "--name-only", commit, "--", rel], root).stdout.splitlines()
        changed += _git(["ls-files", "--others", "--exclude-standard", "--", rel], root).stdout.splitlines()
        if not changed:
            continue
        old = _git(["show", f"{commit}:{rel}/Chart.yaml"], root)
        if old.returncode != 0:
            continue  # a new chart
        old_meta = yamlio.loads(old.stdout, f"{base_ref}:{rel}/Chart.yaml") or {}
        before, now = str(old_meta.get("version")), source.version
        try:
            bumped = semver.Version.parse(now) > semver.Version.parse(before)
            why = f"but its version {now} is not higher than {before}"
        except ValueError:
            bumped, why = False, f"and its version {now!r} or the old {before!r} is not SemVer"
        if not bumped:
            problems.append(
                f"{rel}: {len(changed)} file(s) changed since {base_ref} ({', '.join(changed[:3])}"
                f"{', ...' if len(changed) > 3 else ''}) {why}: raise `version` in its Chart.yaml"
            )
    return problems
