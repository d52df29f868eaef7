"""Runs a rendered container on this machine: the exact command, args and env the chart renders,
with Secret and ConfigMap references resolved from the same render, volume mount paths mapped to
temporary directories and cluster host names mapped to 127.0.0.1."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
            argv[0] = self.python
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
        return self.mounts.get(container.get("workingDir", ""))

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
