"""Every helm call of helm-mlops goes through `Helm.run()`: an argument list (never a shell string),
values on stdin, the cluster from the kubeconfig given, and helm's stderr turned into UserError or
ToolError in one place (`classify`).

pyhelm3 is the driver for releases (template, install/upgrade, rollback, uninstall, history, status,
list, repo update): its command layer is subclassed so its calls run through `run()` too, and its known
faults with Helm 3 vs Helm 4 (pyhelm3 0.5.8) are repaired here and nowhere else (`repair_args`):
- `disable_validation=True` extends the argument list with the flag's characters one by one;
- `atomic` emits Helm 4's `--rollback-on-failure`, which Helm 3 rejects (Helm 3 wants `--atomic`);
- Helm 4 renamed `--force` to `--force-replace` (upgrade and rollback), which it refuses together with
  server-side apply, its default: `--server-side=false` goes with it;
- Helm 4 has no `list --all` and no `repo update --fail-on-repo-update-fail`;
- it cannot pass `--plain-http` (OCI registries without TLS): the adapter adds it;
- its `wait` always brings `--wait-for-jobs`, which holds an install until every Job has finished (a
  training Job: hours): the adapter drops it unless asked (`wait_for_jobs=True`). Plain `--wait` waits
  for Jobs to start at most (Helm 3 skips them, Helm 4's watcher wants them started); hook Jobs are
  always waited for.
Charts (lint, dependency build, package, push, pull) and registry login are plain argument lists.

The runner is injectable (`Helm(binary, runner=...)`), so tests can record the argument lists."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import HelmMlopsError, Interrupted, ToolError, UserError
from generator.helm.binary import HelmBinary

Arg = str | Path | int


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


Runner = Callable[[list[str], bytes | None], Completed]


def subprocess_runner(argv: list[str], stdin: bytes | None) -> Completed:
    """Run helm in its own process group. Ctrl-C or SIGTERM while it runs is handed to helm once, as
    SIGINT, so helm stops the way it does on a terminal (an install or upgrade with rollback on failure
    rolls back); then Interrupted is raised. A second signal kills helm."""
    import signal
    import threading

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches helm through us, once
        )
    except OSError as exc:
        raise ToolError(f"cannot run {argv[0]}: {exc}") from None
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if len(received) == 1 else signal.SIGKILL)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        out, err = proc.communicate(stdin)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        said = helm_message(err).splitlines()
        raise Interrupted(
            f"interrupted ({signal.Signals(received[0]).name}): helm {_action(argv[1:])} was stopped"
            + (f": {said[-1]}" if said and said != ["(no message)"] else "")
        )
    return Completed(proc.returncode, out, err)


# --- helm's errors --------------------------------------------------------------------------------

# helm prints no structured errors; these patterns of its stderr are the whole of the guessing, each
# one covered by a test against the real helm 3 and 4.
VALUES_ERROR_PATTERNS = (
    re.compile(r"values don't meet the specifications of the schema"),  # values.schema.json
    re.compile(r"Invalid values for the \S+ chart"),  # our charts' `fail` checks (_helpers.tpl)
)
USER_ERROR_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"release: not found|release \S+ not found|has no deployed releases"),
        "check the release name and namespace (helm list -n NAMESPACE)",
    ),
    (
        re.compile(r'chart "[^"]+" (version "[^"]+" )?not found|failed to download|path "[^"]+" not found'),
        "check the chart reference and version",
    ),
    (
        re.compile(r"cannot re-use a name that is still in use"),
        "pick another release name, or upgrade the existing release",
    ),
    (
        re.compile(r"is forbidden: User|Unauthorized"),
        "use a kubeconfig/context with the rights to do this (RBAC)",
    ),
    (
        re.compile(r"invalid reference format|not a valid chart repository|invalid_reference"),
        "check the repository URL",
    ),
    (
        re.compile(
            r"response status code 40[13]|unauthorized: authentication required|denied: requested access"
            r"|40[13] Unauthorized|40[13] Forbidden|basic credential not found"
        ),
        "check the registry credentials: `helm registry login HOST`, or --username with --password-stdin",
    ),
    (
        re.compile(r"certificate signed by unknown authority|x509: |tls: "),
        "give the registry's CA with --ca-file (or, for a test registry only, --insecure-skip-tls-verify)",
    ),
    (
        re.compile(r"(status code|status from HEAD request to http://\S+:) 400(: Bad Request| Bad Request)"),
        "the registry refused a plain-HTTP request (400): if it speaks TLS, drop --plain-http; Helm 3.17 "
        "always speaks plain HTTP to a registry on 127.0.0.1/localhost (docs/publishing.md): use Helm 4",
    ),
    (
        re.compile(r"server gave HTTP response to HTTPS client"),
        "the registry speaks plain HTTP: add --plain-http",
    ),
    (
        re.compile(r'media type "application/vnd\.cncf\.helm\.chart\.provenance\.v1\.prov" is not allowed'),
        "Helm 3.18.0 cannot pull a signed chart from an OCI registry (helm/helm#30890): use Helm 3.18.1 or "
        "later, or Helm 4 (--helm PATH)",
    ),
    (
        re.compile(r"merge failed: .*unknown field"),
        "--repo-dir's index.yaml has a field Helm does not know (named above): remove it from index.yaml, "
        "or publish into a directory of its own",
    ),
)
# helm's messages about a value of ours it was given as an option (signing keys, CA files): the error
# names that option. Checked before USER_ERROR_PATTERNS.
OPTION_ERROR_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "--keyring",
        re.compile(r"provided key is not a private key"),
        "--keyring holds no secret key: export it with `gpg --export-secret-keys KEY > secring.gpg`",
    ),
    (
        "--keyring",
        re.compile(r"tag byte does not have MSB set|openpgp: invalid data: .*(packet|armor)"),
        "--keyring is not a keyring Helm reads (GnuPG's pubring.kbx / private-keys-v1.d are not): export "
        "one with `gpg --export-secret-keys KEY > secring.gpg`",
    ),
    (
        "--passphrase-file",
        re.compile(r"inappropriate ioctl for device"),
        "the passphrase is missing: the key is protected, give it with --passphrase-file FILE (or -)",
    ),
    (
        "--ca-file",
        re.compile(r"failed to append certificates from pem|can't create TLS config"),
        "--ca-file is not a PEM CA bundle: give the CA certificate the registry's certificate is signed by",
    ),
    ("--passphrase-file", re.compile(r"private key checksum failure"), "the passphrase is wrong: check it"),
    (
        "--key",
        re.compile(r"private key not found"),
        "no such key in the keyring: check --key (a name or email in `gpg --list-secret-keys`) and "
        "--keyring (export it with `gpg --export-secret-keys > secring.gpg`)",
    ),
)
REGISTRY_ACTIONS = ("push", "pull", "registry login", "show", "dependency build")
UNREACHABLE = re.compile(
    r"Kubernetes cluster unreachable|connection refused|no such host|i/o timeout|dial tcp"
)


def helm_message(stderr: bytes | str) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    text = text.replace("Use --debug flag to render out invalid YAML", "")
    return "\n".join(line for line in text.strip().splitlines() if line.strip()) or "(no message)"


def classify(
    action: str, stderr: bytes | str, *, source: str | None = None, server: str | None = None
) -> HelmMlopsError:
    """The error helm's stderr stands for: UserError when the user can fix the input, else ToolError."""
    message = helm_message(stderr)
    if source is not None and any(p.search(message) for p in VALUES_ERROR_PATTERNS):
        return UserError(message, field=source, hint="change the values named above")
    for option, pattern, hint in OPTION_ERROR_PATTERNS:
        if pattern.search(message):
            said = next((line for line in message.splitlines() if pattern.search(line)), message)
            return UserError(said.strip().removeprefix("Error: "), field=option, hint=hint)
    for pattern, hint in USER_ERROR_PATTERNS:
        if pattern.search(message):
            return UserError(message, field=f"helm {action}", hint=hint)
    if UNREACHABLE.search(message) and action in REGISTRY_ACTIONS:
        return ToolError(
            f"helm {action}: the registry is not reachable:\n{message}\n"
            "  fix: check the host and port in the oci:// reference, and that the registry is running"
        )
    if UNREACHABLE.search(message):
        where = f" at {server}" if server else ""
        return ToolError(
            f"helm {action}: the Kubernetes API server{where} is not reachable:\n{message}\n"
            "  fix: check that the cluster is running and --kubeconfig/--kube-context point at it"
        )
    return ToolError(f"helm {action} failed:\n{message}")


def _action(args: Sequence[Arg]) -> str:
    words = [str(a) for a in args[:2]]
    grouped = words and words[0] in ("registry", "repo", "dependency", "plugin")
    return " ".join(words) if grouped else "".join(words[:1])


# --- pyhelm3's faults -----------------------------------------------------------------------------

_DISABLE_VALIDATION = "--disable-openapi-validation"


def repair_args(args: Sequence[Arg], binary: HelmBinary) -> list[str]:
    """pyhelm3's argument list made right for this helm (see the module docstring)."""
    out = [str(a) for a in args]
    chars = list(_DISABLE_VALIDATION)
    for i in range(len(out) - len(chars) + 1):
        if out[i : i + len(chars)] == chars:
            out[i : i + len(chars)] = [_DISABLE_VALIDATION]
            break
    verb = out[0] if out else ""
    if verb in ("upgrade", "install"):
        out = [
            binary.rollback_on_failure_flag if a in ("--atomic", "--rollback-on-failure") else a for a in out
        ]
    if verb in ("upgrade", "install", "rollback"):
        out = [binary.force_flag if a in ("--force", "--force-replace") else a for a in out]
        # Helm 4 refuses to replace by force while applying server-side (its default).
        if (
            binary.major >= 4
            and "--force-replace" in out
            and not any(a.startswith("--server-side") for a in out)
        ):
            out.append("--server-side=false")
    if verb == "list" and not binary.has_list_all:
        out = [a for a in out if a != "--all"]
    if out[:2] == ["repo", "update"] and not binary.has_repo_update_fail_flag:
        out = [a for a in out if a != "--fail-on-repo-update-fail"]
    return out


# --- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryAccess:
    """How helm reaches an OCI registry: TLS settings and, optionally, a registry config file (Docker's
    config.json format) holding the credentials instead of the user's own from `helm registry login`."""

    plain_http: bool = False
    ca_file: Path | None = None
    insecure_skip_tls_verify: bool = False
    registry_config: Path | None = None

    def args(self, *, tls: bool = True) -> list[Arg]:
        out: list[Arg] = []
        if self.plain_http:
            out.append("--plain-http")
        if tls and self.ca_file is not None:
            out += ["--ca-file", self.ca_file]
        if tls and self.insecure_skip_tls_verify:
            out.append("--insecure-skip-tls-verify")
        if self.registry_config is not None:
            out += ["--registry-config", self.registry_config]
        return out


@dataclass(frozen=True)
class Revision:
    release: str
    namespace: str
    revision: int
    status: str
    chart: str = ""
    app_version: str = ""
    updated: str = ""
    description: str = ""
    notes: str = ""


def _jobs_flag(wait_for_jobs: bool) -> tuple[str, ...]:
    """What to drop from pyhelm3's `--wait --wait-for-jobs` (see the module docstring)."""
    return () if wait_for_jobs else ("--wait-for-jobs",)


@dataclass
class Helm:
    """helm, bound to a binary and (for release commands) a cluster."""

    binary: HelmBinary
    kubeconfig: Path | None = None
    kube_context: str | None = None
    runner: Runner = field(default=subprocess_runner)

    # The one way helm is run.
    def run(
        self,
        args: Sequence[Arg],
        *,
        stdin: bytes | None = None,
        source: str | None = None,
        cluster: bool = False,
    ) -> bytes:
        argv = [self.binary.path, *repair_args(args, self.binary)]
        if cluster:
            if self.kubeconfig is not None:
                argv += ["--kubeconfig", str(self.kubeconfig)]
            if self.kube_context:
                argv += ["--kube-context", self.kube_context]
        done = self.runner(argv, stdin)
        if done.returncode != 0:
            # helm lint reports its findings on stdout and only a summary on stderr.
            output = done.stdout + b"\n" + done.stderr if args and args[0] == "lint" else done.stderr
            raise classify(_action(args), output or done.stdout, source=source, server=self._server())
        return done.stdout

    def _server(self) -> str | None:
        if self.kubeconfig is None:
            return None
        try:
            from generator.yamlio import loads

            config = loads(self.kubeconfig.read_text(), "kubeconfig") or {}
            name = self.kube_context or config.get("current-context")
            ctx = next(c["context"] for c in config.get("contexts") or [] if c.get("name") == name)
            return str(
                next(c["cluster"]["server"] for c in config["clusters"] if c.get("name") == ctx["cluster"])
            )
        except Exception:  # only decorates a message
            return None

    # pyhelm3 -----------------------------------------------------------------------------------

    def _pyhelm3(
        self,
        extra: Sequence[str] = (),
        source: str | None = None,
        cluster: bool = True,
        drop: Sequence[str] = (),
    ) -> Any:
        from pyhelm3.command import Command

        adapter = self

        class _Command(Command):  # type: ignore[misc]
            async def run(self, command: list[Any], input: bytes | None = None) -> bytes:
                kept = [a for a in command if a not in drop]
                return adapter.run([*kept, *extra], stdin=input, source=source, cluster=cluster)

            def client_version(self) -> Any:
                import semver

                return semver.Version(*adapter.binary.semver)

        return _Command(executable=self.binary.path)

    @staticmethod
    def _sync(coro: Any) -> Any:
        return asyncio.run(coro)

    def template(
        self,
        chart: Path | str,
        release: str,
        values: dict[str, Any],
        *,
        namespace: str | None = None,
        source: str = "values",
        is_upgrade: bool = False,
    ) -> list[dict[str, Any]]:
        """Rendered resources (hooks and tests included) as an install creates them. Unlike `helm lint`,
        rendering runs the charts' `fail` checks, so values a chart rejects surface here."""
        command = self._pyhelm3(source=source, cluster=False)
        try:
            docs = [
                d
                for d in self._sync(
                    command.template(release, chart, values, namespace=namespace, is_upgrade=is_upgrade)
                )
                if d
            ]
        except Exception as exc:  # YAML that is not YAML
            if isinstance(exc, HelmMlopsError):
                raise
            raise ToolError(
                f"{self.binary.describe()} printed no manifests for helm template ({exc})"
            ) from None
        if not all(isinstance(d, dict) and "kind" in d and isinstance(d.get("metadata"), dict) for d in docs):
            raise ToolError(
                f"{self.binary.describe()} printed something that is not Kubernetes manifests for "
                "helm template\n  fix: point --helm (or HELM_MLOPS_HELM) at a real helm"
            )
        return docs

    def install_or_upgrade(
        self,
        release: str,
        chart: Path | str,
        values: dict[str, Any],
        *,
        namespace: str,
        source: str = "values",
        wait: bool = True,
        timeout: str = "5m",
        atomic: bool = False,
        force: bool = False,
        disable_validation: bool = False,
        create_namespace: bool = False,
        plain_http: bool = False,
        version: str | None = None,
        wait_for_jobs: bool = False,
    ) -> Revision:
        """`helm upgrade --install`. `wait` waits for the release's objects to be ready, not for its
        Jobs to finish (training runs for hours); `wait_for_jobs` waits for those too."""
        extra = ["--plain-http"] if plain_http else []
        command = self._pyhelm3(extra, source=source, drop=_jobs_flag(wait_for_jobs))
        data = self._sync(
            command.install_or_upgrade(
                release,
                chart,
                values,
                namespace=namespace,
                wait=wait,
                timeout=timeout,
                atomic=atomic,
                force=force,
                disable_validation=disable_validation,
                create_namespace=create_namespace,
                version=version,
            )
        )
        info = data.get("info") or {}
        chart_meta = (data.get("chart") or {}).get("metadata") or {}
        return Revision(
            release=data.get("name", release),
            namespace=data.get("namespace", namespace),
            revision=int(data.get("version", 0)),
            status=str(info.get("status", "")),
            chart=f"{chart_meta.get('name', '')}-{chart_meta.get('version', '')}",
            app_version=str(chart_meta.get("appVersion", "")),
            updated=str(info.get("last_deployed", "")),
            description=str(info.get("description", "")),
            notes=str(info.get("notes", "")),
        )

    def rollback(
        self,
        release: str,
        revision: int | None,
        *,
        namespace: str,
        wait: bool = True,
        timeout: str = "5m",
        force: bool = False,
        wait_for_jobs: bool = False,
    ) -> None:
        self._sync(
            self._pyhelm3(drop=_jobs_flag(wait_for_jobs)).rollback(
                release, revision, namespace=namespace, wait=wait, timeout=timeout, force=force
            )
        )

    def uninstall(
        self,
        release: str,
        *,
        namespace: str,
        wait: bool = True,
        timeout: str = "5m",
        keep_history: bool = False,
    ) -> None:
        self._sync(
            self._pyhelm3().uninstall(
                release, namespace=namespace, wait=wait, timeout=timeout, keep_history=keep_history
            )
        )

    def history(self, release: str, *, namespace: str) -> list[Revision]:
        rows = self._sync(self._pyhelm3().history(release, namespace=namespace))
        return [
            Revision(
                release=release,
                namespace=namespace,
                revision=int(r["revision"]),
                status=str(r.get("status", "")),
                chart=str(r.get("chart", "")),
                app_version=str(r.get("app_version", "")),
                updated=str(r.get("updated", "")),
                description=str(r.get("description", "")),
            )
            for r in rows
        ]

    def status(self, release: str, *, namespace: str) -> dict[str, Any]:
        return dict(self._sync(self._pyhelm3().status(release, namespace=namespace)))

    def list_releases(
        self, *, namespace: str | None = None, all_statuses: bool = True
    ) -> list[dict[str, Any]]:
        return list(
            self._sync(
                self._pyhelm3().list(
                    all=all_statuses,
                    all_namespaces=namespace is None,
                    namespace=namespace,
                    include_failed=all_statuses,
                    include_pending=all_statuses,
                    include_superseded=all_statuses,
                )
            )
        )

    def get_values(self, release: str, *, namespace: str, revision: int | None = None) -> dict[str, Any]:
        """The release's computed values (chart defaults merged with the user's)."""
        args: list[Arg] = ["get", "values", release, "--all", "--output", "json", "--namespace", namespace]
        if revision is not None:
            args += ["--revision", revision]
        data = json.loads(self.run(args, cluster=True) or b"{}")
        return dict(data or {})

    def test(self, release: str, *, namespace: str, timeout: str = "5m", logs: bool = True) -> str:
        """`helm test`: runs the release's test hooks; their pods' logs with `logs`."""
        args: list[Arg] = ["test", release, "--namespace", namespace, "--timeout", timeout]
        if logs:
            args.append("--logs")
        return self.run(args, cluster=True).decode(errors="replace")

    def repo_update(self, *names: str) -> None:
        self._sync(self._pyhelm3(cluster=False).repo_update(*names))

    # charts and registries ---------------------------------------------------------------------

    def version(self) -> str:
        return self.binary.version

    def lint(
        self,
        chart: Path,
        values: dict[str, Any] | None = None,
        *,
        strict: bool = True,
        source: str = "values",
    ) -> str:
        args: list[Arg] = ["lint", chart, "--values", "-"]
        if strict:
            args.append("--strict")
        stdin = json.dumps(values or {}).encode()
        return self.run(args, stdin=stdin, source=source).decode(errors="replace")

    def dependency_build(self, chart: Path, access: RegistryAccess | None = None) -> None:
        self.run(["dependency", "build", chart, *(access.args() if access else [])])

    def dependency_list(self, chart: Path) -> list[tuple[str, str, str, str]]:
        """(name, version, repository, status) of each dependency; status "ok" when it is in charts/."""
        out = self.run(["dependency", "list", chart]).decode(errors="replace")
        rows = []
        for line in out.splitlines()[1:]:
            cells = [c.strip() for c in line.split("\t")]
            if len(cells) >= 4 and cells[0]:
                rows.append((cells[0], cells[1], cells[2], cells[-1]))
        return rows

    def package(
        self,
        chart: Path,
        destination: Path,
        *,
        version: str | None = None,
        app_version: str | None = None,
        sign: tuple[str, Path, Path | None] | None = None,
    ) -> Path:
        """`helm package`; `sign` is (key, secret keyring, passphrase file or None): writes FILE.prov too."""
        args: list[Arg] = ["package", chart, "--destination", destination]
        if version:
            args += ["--version", version]
        if app_version:
            args += ["--app-version", app_version]
        if sign is not None:
            key, keyring, passphrase_file = sign
            args += ["--sign", "--key", key, "--keyring", keyring]
            if passphrase_file is not None:
                args += ["--passphrase-file", passphrase_file]
        out = self.run(args).decode(errors="replace")
        match = re.search(r"saved it to: (\S+)", out)
        if not match:
            raise ToolError(f"helm package printed no archive path:\n{out}")
        return Path(match.group(1))

    def repo_index(self, directory: Path, url: str, *, merge: Path | None = None) -> None:
        args: list[Arg] = ["repo", "index", directory, "--url", url]
        if merge is not None:
            args += ["--merge", merge]
        self.run(args)

    def push(
        self, archive: Path, remote: str, *, plain_http: bool = False, access: RegistryAccess | None = None
    ) -> str:
        access = access or RegistryAccess(plain_http=plain_http)
        return self.run(["push", archive, remote, *access.args()]).decode(errors="replace")

    def pull(
        self,
        ref: str,
        destination: Path,
        *,
        version: str | None = None,
        plain_http: bool = False,
        access: RegistryAccess | None = None,
        prov: bool = False,
    ) -> None:
        """`helm pull`; with PROV the provenance file too when there is one (no verification)."""
        access = access or RegistryAccess(plain_http=plain_http)
        args: list[Arg] = ["pull", ref, "--destination", destination]
        if version:
            args += ["--version", version]
        if prov:
            args.append("--prov")
        self.run([*args, *access.args()])

    def registry_login(
        self, host: str, username: str, password: str, *, plain_http: bool = False, insecure: bool = False
    ) -> None:
        """The password goes on stdin, never on the command line."""
        args: list[Arg] = ["registry", "login", host, "--username", username, "--password-stdin"]
        if plain_http and self.binary.has_login_plain_http:
            args.append("--plain-http")
        if insecure:
            args.append("--insecure")
        self.run(args, stdin=password.encode())
