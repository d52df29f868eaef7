"""Finding helm and knowing what it is: `helm version` runs once per binary, and the major version
decides the flags the adapter passes (Helm 4 renamed or dropped some of Helm 3's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

from generator.errors import ToolError, UserError
from generator.paths import tools_bin

MINIMUM = (3, 17, 0)
HELM_ENV = "HELM_MLOPS_HELM"


@dataclass(frozen=True)
class HelmBinary:
    path: str
    version: str  # as helm prints it, e.g. v4.1.4

    @property
    def semver(self) -> tuple[int, int, int]:
        return parse_version(self.version) or (0, 0, 0)

    @property
    def major(self) -> int:
        return self.semver[0]

    # Flags that differ between Helm 3 and Helm 4.
    @property
    def rollback_on_failure_flag(self) -> str:
        return "--rollback-on-failure" if self.major >= 4 else "--atomic"

    @property
    def force_flag(self) -> str:
        return "--force-replace" if self.major >= 4 else "--force"

    @property
    def has_list_all(self) -> bool:
        return self.major < 4

    @property
    def has_repo_update_fail_flag(self) -> bool:
        return self.major < 4

    @property
    def has_login_plain_http(self) -> bool:
        """`helm registry login --plain-http` came with Helm 3.18; 3.17 logs in over plain HTTP
        to a loopback registry by itself."""
        return self.semver >= (3, 18, 0)

    def describe(self) -> str:
        return f"helm {self.version} ({self.path})"


def parse_version(text: str) -> tuple[int, int, int] | None:
    import semver

    try:
        parsed = semver.Version.parse(text.strip().removeprefix("v"))
    except ValueError:
        return None
    return (parsed.major, parsed.minor, parsed.patch)


def _candidates(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    env = os.environ.get(HELM_ENV)
    if env:
        return [env]
    bundled = tools_bin()
    return [str(bundled / "helm"), "helm"] if bundled is not None else ["helm"]


@cache
def _probe(path: str) -> HelmBinary:
    try:
        proc = subprocess.run(
            [path, "version", "--template", "{{ .Version }}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"cannot run {path} version: {exc}") from None
    version = proc.stdout.strip()
    found = parse_version(version) if proc.returncode == 0 else None
    if found is None:
        detail = (proc.stderr or proc.stdout).strip()[:300]
        raise UserError(
            f"{path} does not behave like helm (`helm version` said: {detail or 'nothing'})",
            field=f"--helm (or {HELM_ENV})",
            hint="point --helm (or HELM_MLOPS_HELM) at a Helm 3.17+ or Helm 4 binary",
        )
    if found < MINIMUM:
        raise UserError(
            f"{path} is Helm {version}; helm-mlops needs Helm 3.17 or newer (the charts' schemas use it)",
            field=f"--helm (or {HELM_ENV})",
            hint="install Helm 4 or 3.17+ (`make tools` pins both), or point --helm at one",
        )
    return HelmBinary(path, version)


def find_helm(explicit: str | None = None) -> HelmBinary:
    """The helm to run: --helm, else $HELM_MLOPS_HELM (the plugin sets it to the calling helm), else the
    checkout's pinned .tools/bin/helm, else helm on PATH. Refuses helm older than 3.17."""
    tried = []
    for candidate in _candidates(explicit):
        tried.append(candidate)
        found = shutil.which(candidate)
        if found:
            return _probe(found)
        if os.sep in candidate and os.path.exists(candidate):
            raise UserError(
                f"{candidate} is {'a directory' if os.path.isdir(candidate) else 'not executable'}",
                field=f"--helm (or {HELM_ENV})" if explicit or os.environ.get(HELM_ENV) else "helm",
                hint="point it at the helm binary (chmod +x it if it is one)",
            )
    field = f"--helm (or {HELM_ENV})" if explicit or os.environ.get(HELM_ENV) else "helm"
    raise UserError(
        f"helm not found (tried {', '.join(dict.fromkeys(tried))})",
        field=field,
        hint="install Helm 4 or 3.17+ on PATH (in a checkout: `make tools`), or pass --helm PATH",
    )
