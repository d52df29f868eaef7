"""Runs a rendered container on this machine: the exact command, args and env the chart renders,
with Secret and ConfigMap references resolved from the same render, volume mount paths mapped to
temporary directories and cluster host names mapped to 127.0.0.1.

For the runtime's own dependencies, ``bare_python`` makes a venv with nothing but pip (what the chart's
python image has) and ``lock_wheels`` a local wheel index of one of the chart's hash-pinned locks, so the
rendered `install-deps` command runs for real, offline, and an ``isolated`` pod then runs the server on
exactly what it installed: the bare python with `-s -S` (no site-packages at all) and a clean
environment, so nothing of the test venv can stand in for a missing dependency."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.plugin import cache_root
from tests.support.servers import unavailable as _unavailable


def bare_python(root: Path) -> str:
    """A venv in ROOT made by this python's `-m venv`: pip (and what ensurepip brings), none of the
    project's or the tests' packages. Returns its python."""
    proc = subprocess.run(
        [sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        _unavailable(f"python -m venv failed (Debian: apt-get install python3-venv):\n{proc.stderr[-2000:]}")
    return str(root / "bin" / "python")


def lock_wheels(lock: Path) -> Path:
    """The wheels of one of the chart's locks (files/requirements/*.txt) for this python, downloaded
    once from the configured index with the lock's own hashes and kept under the cache in
    `runtime-wheels-<hash of the lock and python>`: a local index for `pip --no-index --find-links`."""
    python = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    key = hashlib.sha256(lock.read_bytes() + python.encode()).hexdigest()[:16]
    target = cache_root() / f"runtime-wheels-{lock.stem}-{key}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"),
            *("--require-hashes", "--only-binary=:all:", "--dest", str(work), "--requirement", str(lock)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        _unavailable(f"could not download the wheels of {lock.name} (pip download):\n{proc.stderr[-2000:]}")
    (work / ".complete").touch()
    try:
        work.rename(target)
    except OSError:  # another session finished first
        shutil.rmtree(work, ignore_errors=True)
    return target


@dataclass
class LocalPod:
    docs: list[dict[str, Any]]
    root: Path
    host_map: dict[str, str] = field(default_factory=dict)
    extra_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    mounts: dict[str, Path] = field(default_factory=dict)
    # What the kubelet would fill in: downward-API fields and the variables Kubernetes itself sets
    # (JOB_COMPLETION_INDEX in Indexed Jobs), plus the python that stands in for the image's.
    field_refs: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    # A container's isolation for a python stand-in: an environment of PATH and the rendered env only,
    # nothing inherited from the test run; python_flags go after the interpreter (`-s -S`: no
    # site-packages, so only PYTHONPATH and the standard library import).
    isolated: bool = False
    python_flags: tuple[str, ...] = ()

    def _object(self, kind: str, name: str) -> dict[str, Any] | None:
        for d in self.docs:
            if d["kind"] == kind and d["metadata"]["name"] == name:
                return d
        return None

    def secret_value(self, name: str, key: str) -> str:
        if name in self.extra_secrets:
            return self.extra_secrets[name][key]
        secret = self._object("Secret", name)
        assert secret is not None, f"the render has no Secret {name}"
        return base64.b64decode(secret["data"][key]).decode()

    def _mount_dir(self, spec: dict[str, Any], volume_name: str, mount_path: str) -> Path:
        if mount_path in self.mounts:
            return self.mounts[mount_path]
        volume = next(v for v in spec["volumes"] if v["name"] == volume_name)
        target = self.root / volume_name
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            cm = self._object("ConfigMap", volume["configMap"]["name"])
            assert cm is not None, f"the render has no ConfigMap {volume['configMap']['name']}"
            for key, text in (cm.get("data") or {}).items():
                (target / key).write_text(text)
            for key, blob in (cm.get("binaryData") or {}).items():
                (target / key).write_bytes(base64.b64decode(blob))
        self.mounts[mount_path] = target
        return target

    def map_text(self, text: str) -> str:
        """One pass, so a mapped path (temp dirs live under /tmp) is never mapped again. Mount
        paths match only where a path starts; longest first, so /mlflow/data wins over /mlflow."""
        table = {**self.host_map, **{k: str(v) for k, v in self.mounts.items()}}
        if not table:
            return text
        mounts = "|".join(re.escape(m) for m in sorted(self.mounts, key=len, reverse=True))
        hosts = "|".join(re.escape(h) for h in sorted(self.host_map, key=len, reverse=True))
        parts = [f"(?<![\\w./-])(?:{mounts})(?![\\w.-])"] if mounts else []
        parts += [f"(?:{hosts})"] if hosts else []
        return re.sub("|".join(parts), lambda m: table[m.group(0)], text)

    def command(self, spec: dict[str, Any], container: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        for mount in container.get("volumeMounts", []):
            self._mount_dir(spec, mount["name"], mount["mountPath"])
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = self.map_text(str(item["value"]))
            elif "fieldRef" in item["valueFrom"]:
                env[item["name"]] = self.field_refs.get(item["valueFrom"]["fieldRef"]["fieldPath"], "")
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secret_value(ref["name"], ref["key"])
        argv = [self.map_text(a) for a in [*container.get("command", []), *container.get("args", [])]]
        if argv and argv[0] in ("python", "python3"):
            argv[0:1] = [self.python, *self.python_flags]
        if self.isolated:
            base = {"PATH": f"{Path(self.python).parent}{os.pathsep}/usr/bin:/bin", "LANG": "C.UTF-8"}
        else:
            base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PIP_"))}
            base["PATH"] = f"{Path(self.python).parent}{os.pathsep}{base.get('PATH', '')}"
        tmp = self.mounts.get("/tmp")
        if tmp:
            base["TMPDIR"] = str(tmp)
        return argv, {**base, **env, **self.extra_env}

    def run(
        self, spec: dict[str, Any], container: dict[str, Any], timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        argv, env = self.command(spec, container)
        return subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.cwd(container),
        )

    def cwd(self, container: dict[str, Any]) -> Path | None:
        """The container's workingDir mapped; an isolated pod's default is its root, never the
        checkout (`python -m` and `-c` put the working directory first on sys.path)."""
        return self.mounts.get(container.get("workingDir", ""), self.root if self.isolated else None)

    def start(self, spec: dict[str, Any], container: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
        argv, env = self.command(spec, container)
        handle = log.open("wb")
        return subprocess.Popen(
            argv,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.cwd(container),
        )
