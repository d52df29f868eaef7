"""A chart directory as a `.tgz` helm loads, byte-identical for identical files: entries sorted, times
and owners fixed, the gzip header without a time stamp. `.helmignore` is honoured for the patterns our
charts use (names, `dir/`, `*.ext`, paths with `/`)."""

from __future__ import annotations

import fnmatch
import gzip
import io
import tarfile
from pathlib import Path


def _ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if is_dir and fnmatch.fnmatch(name, pattern[:-1]):
                return True
        elif "/" in pattern:
            if fnmatch.fnmatch(rel, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatch(name, pattern):
            return True
    return False


def chart_files(chart: Path) -> list[tuple[str, bytes]]:
    """(path inside the chart, content) of every file helm packages, sorted."""
    ignore = chart / ".helmignore"
    patterns = []
    if ignore.is_file():
        for line in ignore.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("!"):
                patterns.append(line)
    out: list[tuple[str, bytes]] = []

    def walk(folder: Path, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            rel = f"{prefix}{entry.name}"
            if entry.is_dir():
                if not _ignored(rel, True, patterns):
                    walk(entry, rel + "/")
            elif entry.is_file() and not _ignored(rel, False, patterns):
                out.append((rel, entry.read_bytes()))

    walk(chart, "")
    return out


def package(chart: Path, name: str) -> bytes:
    """The chart as helm's archive layout (`<name>/<path>`), gzipped, reproducibly."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, data in chart_files(chart):
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()
