"""The helm plugin in a throwaway helm home, for tests.

- ``wheelhouse()``: wheels of the package's runtime dependencies and its build backend (setuptools,
  wheel), so the install hook builds its virtualenv offline (``HELM_MLOPS_WHEELS``). Built once with
  ``pip wheel`` from the package index (pip's cache makes a rebuild fast) and kept outside the repo in
  ``$HELM_MLOPS_CACHE/wheelhouse-<hash>`` (default ``~/.cache/helm-mlops``); the hash covers
  pyproject.toml and the Python version, since wheels of compiled dependencies are per Python.
- ``plugin_source(dest)``: a directory laid out as the repository with what plugin/files lists, taken
  from the working tree: what `helm plugin install <repo dir>` sees, without touching the checkout.
- ``HelmHome``: helm with its own XDG_DATA_HOME / XDG_CONFIG_HOME / XDG_CACHE_HOME / HELM_PLUGINS and
  TMPDIR under one folder, the hook pointed at the wheelhouse and at this Python."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.charts import REPO, helm_path

IN_CI = os.environ.get("CI") == "true"
VENV_LINK = ".plugin-venv"


def cache_root() -> Path:
    base = os.environ.get("HELM_MLOPS_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "helm-mlops"
    )
    return Path(base)


def package_entries() -> list[str]:
    lines = (REPO / "plugin" / "files").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def wheelhouse() -> Path:
    pyproject = (REPO / "pyproject.toml").read_bytes()
    python = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    target = cache_root() / f"wheelhouse-{hashlib.sha256(pyproject + python.encode()).hexdigest()[:16]}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    deps = tomllib.loads(pyproject.decode())["project"]["dependencies"]
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"),
            *("--wheel-dir", str(work), *deps, "setuptools>=77", "wheel"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        message = f"could not build the plugin tests' wheelhouse (pip wheel):\n{proc.stderr[-2000:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    (work / ".complete").touch()
    try:
        work.rename(target)
    except OSError:  # another session finished first
        shutil.rmtree(work, ignore_errors=True)
    return target


def plugin_source(dest: Path) -> Path:
    dest.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".*_cache", "*.egg-info", f"{VENV_LINK}*")
    for entry in package_entries():
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, dest / entry, ignore=skip)
        elif source.is_file():
            shutil.copy2(source, dest / entry)
    return dest


class HelmHome:
    def __init__(self, root: Path, wheels: Path) -> None:
        self.root, self.wheels = root, wheels
        self.data, self.config, self.cache = root / "data", root / "config", root / "cache"
        self.plugins = self.data / "helm" / "plugins"  # Helm 4 installs here whatever HELM_PLUGINS says
        self.tmp, self.cwd = root / "tmp", root / "cwd"
        for path in (self.tmp, self.cwd):
            path.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env |= {
            "XDG_DATA_HOME": str(self.data),
            "XDG_CONFIG_HOME": str(self.config),
            "XDG_CACHE_HOME": str(self.cache),
            "HELM_PLUGINS": str(self.plugins),
            "TMPDIR": str(self.tmp),
            "HELM_MLOPS_WHEELS": str(self.wheels),
            "HELM_MLOPS_PYTHON": sys.executable,
            "HELM_MLOPS_HELM": "",  # empty counts as unset: the plugin hands over $HELM_BIN
            "PATH": "/usr/bin:/bin",  # no helm-mlops there: `helm mlops` runs the plugin's own
        }
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def helm(self, helm_name: str, *args: str | Path, **env: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [helm_path(helm_name), *map(str, args)],
            cwd=self.cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    def plugin_dirs(self) -> list[Path]:
        return sorted(self.plugins.iterdir()) if self.plugins.is_dir() else []


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    """A static file server on 127.0.0.1 for ROOT, answering .tgz files as application/gzip (Helm 3
    takes a URL for a tarball only with such a Content-Type) and serving git repositories over git's
    dumb HTTP protocol (after `git update-server-info`). Yields the base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def guess_type(self, path: str | os.PathLike[str]) -> str:
            return "application/gzip" if str(path).endswith(".tgz") else super().guess_type(path)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
