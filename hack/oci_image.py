#!/usr/bin/env python3
"""Write OCI image layers and OCI image-layout archives without a container engine (stdlib only).

Used by hack/build-images.sh:

  oci_image.py layer DIR STORE NAME [--gzip]   tar DIR as a layer blob under STORE, print its descriptor
  oci_image.py archive OUT --ref REF --layer DESC.json... [--entrypoint JSON] [--cmd JSON]
                       [--env K=V]... [--user U] [--workdir W]
                                               an OCI image layout (oci-layout, index.json,
                                               blobs/sha256/...) in one tar, ready for `ctr images import`
  oci_image.py fix-scripts BINDIR PYTHON       point the `#!...python...` line of every script at PYTHON
  oci_image.py copy-dists SITE DEST BINDIR DIST... [--exclude DIST]...
                                               copy the DISTs and their installed dependencies (by their
                                               dist-info RECORD) from site-packages SITE into DEST,
                                               their scripts into BINDIR
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
# Fixed timestamps for what this script writes itself (configs, index, gzip headers).
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"
# Paths whose content a runtime mounts over: kept as empty directories.
EMPTY_DIRS = {"dev", "proc", "sys", "run", "tmp", "var/tmp"}
CHUNK = 1 << 20


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what goes through it to the file under it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


def _walk(root: Path) -> Iterator[Path]:
    """Every path under root, parents before children, names sorted (a stable tar order)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if str(Path(dirpath).relative_to(root)) in EMPTY_DIRS:
            dirnames[:] = []
            continue
        for name in sorted(dirnames + filenames):
            yield Path(dirpath, name)


def _tarinfo(tar: tarfile.TarFile, path: Path, arcname: str) -> tarfile.TarInfo | None:
    info = tar.gettarinfo(str(path), arcname)
    if info is None:
        return None
    # Real mtimes stay: compiled .pyc files are checked against their source's mtime.
    info.uname = info.gname = ""
    return info


def write_layer(src: Path, store: Path, name: str, compress: bool) -> dict[str, Any]:
    """Tar src into a blob under store; return its descriptor (with the uncompressed diff_id)."""
    store.mkdir(parents=True, exist_ok=True)
    tmp = store / f".{name}.partial"
    diff = hashlib.sha256()
    with open(tmp, "wb") as raw:
        blob = _HashingWriter(raw)
        zstream: IO[bytes] = (
            gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=6, mtime=EPOCH) if compress else blob  # type: ignore[assignment]
        )

        class _DiffTee(io.RawIOBase):
            def writable(self) -> bool:
                return True

            def write(self, b: Any) -> int:
                data = bytes(b)
                diff.update(data)
                zstream.write(data)
                return len(data)

        tee = io.BufferedWriter(_DiffTee(), buffer_size=CHUNK)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk(src):
                arc = str(path.relative_to(src))
                info = _tarinfo(tar, path, arc)
                if info is None:  # a socket: nothing a layer can carry
                    continue
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        tee.flush()
        if compress:
            zstream.close()
    digest = "sha256:" + blob.sha.hexdigest()
    final = store / f"{name}.tar{'.gz' if compress else ''}"
    os.replace(tmp, final)
    return {
        "mediaType": MEDIA_LAYER_GZIP if compress else MEDIA_LAYER,
        "digest": digest,
        "size": blob.size,
        "diff_id": "sha256:" + diff.hexdigest(),
        "path": str(final),
    }


def _json_blob(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = EPOCH
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = EPOCH
    tar.addfile(info)


def write_archive(out: Path, ref: str, layers: list[dict[str, Any]], config: dict[str, Any]) -> None:
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"] for layer in layers]},
        "history": [{"created": CREATED, "created_by": "hack/build-images.sh"} for _ in layers],
    }
    config_bytes = _json_blob(image_config)
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            {"mediaType": layer["mediaType"], "digest": layer["digest"], "size": layer["size"]}
            for layer in layers
        ],
    }
    manifest_bytes = _json_blob(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(),
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "org.opencontainers.image.ref.name": ref,
                    "io.containerd.image.name": ref,
                },
            }
        ],
    }
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", _json_blob({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", _json_blob(index))
        for d in ("blobs", "blobs/sha256"):
            _add_dir(tar, d)
        seen: set[str] = set()
        for layer in layers:
            if layer["digest"] in seen:
                continue
            seen.add(layer["digest"])
            info = tarfile.TarInfo("blobs/sha256/" + layer["digest"].split(":", 1)[1])
            info.size = layer["size"]
            info.mode = 0o644
            info.mtime = EPOCH
            with open(layer["path"], "rb") as f:
                tar.addfile(info, f)
        _add_bytes(tar, "blobs/sha256/" + config_digest.split(":", 1)[1], config_bytes)
        manifest_hex = hashlib.sha256(manifest_bytes).hexdigest()
        _add_bytes(tar, "blobs/sha256/" + manifest_hex, manifest_bytes)
    os.replace(tmp, out)


SHEBANG = re.compile(rb"^#!\S*python[0-9.]*\b")


def fix_scripts(bindir: Path, python: str) -> int:
    """Rewrite `#!/some/host/python...` first lines to `#!PYTHON`; return how many changed."""
    changed = 0
    for p in sorted(bindir.iterdir()):
        if not p.is_file() or p.is_symlink():
            continue
        with open(p, "rb") as f:
            head = f.read(2)
            if head != b"#!":
                continue
            rest = f.read()
        first, sep, body = (head + rest).partition(b"\n")
        if not SHEBANG.match(first):
            continue
        p.write_bytes(b"#!" + python.encode() + sep + body)
        changed += 1
    return changed


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def copy_dists(site: Path, dest: Path, bindir: Path, roots: list[str], exclude: list[str]) -> list[str]:
    """Copy the dists roots and the dependencies they need on this platform from site into dest, and
    their scripts (the venv's bin/ entries of their RECORD) into bindir.

    Requirement markers are evaluated (by `packaging`) for the interpreter that runs this script: run
    it with a Python of the same version and platform as the image's.
    """
    from importlib.metadata import PathDistribution

    try:  # PEP 508 requirements and markers: `packaging`, which pip and every venv with it carry
        from packaging.requirements import Requirement
    except ImportError:
        raise SystemExit(f"copy-dists needs the packaging module in {sys.executable}") from None

    dists: dict[str, PathDistribution] = {}
    for info in site.glob("*.dist-info"):
        d = PathDistribution(info)
        dists[_norm(d.metadata["Name"])] = d
    wanted: dict[str, set[str]] = {}  # dist -> the extras already followed
    todo: list[tuple[str, set[str]]] = [(_norm(r), set()) for r in roots]
    skip = {_norm(e) for e in exclude}
    while todo:
        name, extras = todo.pop()
        if name in skip or (name in wanted and extras <= wanted[name]):
            continue
        if name not in dists:
            raise SystemExit(f"{name} (needed by {' '.join(roots)}) is not installed in {site}")
        wanted.setdefault(name, set()).update(extras)
        for line in dists[name].requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ["", *sorted(extras)]):
                continue
            todo.append((_norm(req.name), {_norm(e) for e in req.extras}))
    dest.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        dist = dists[name]
        for f in dist.files or []:
            src = Path(str(dist.locate_file(f)))
            rel = Path(str(f))
            if rel.suffix == ".pyc":
                continue
            if rel.parts and rel.parts[0] == "..":
                if rel.parent.name != "bin":
                    continue
                target = bindir / rel.name
            else:
                target = dest / rel
            if not src.exists() or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target, follow_symlinks=False)
    return sorted(wanted)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("layer")
    p.add_argument("dir", type=Path)
    p.add_argument("store", type=Path)
    p.add_argument("name")
    p.add_argument("--gzip", action="store_true")
    p = sub.add_parser("archive")
    p.add_argument("out", type=Path)
    p.add_argument("--ref", required=True)
    p.add_argument("--layer", action="append", type=Path, required=True)
    p.add_argument("--entrypoint")
    p.add_argument("--cmd")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--user")
    p.add_argument("--workdir")
    p = sub.add_parser("fix-scripts")
    p.add_argument("bindir", type=Path)
    p.add_argument("python")
    p = sub.add_parser("copy-dists")
    p.add_argument("site", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("bindir", type=Path)
    p.add_argument("dist", nargs="+")
    p.add_argument("--exclude", action="append", default=[])
    args = ap.parse_args(argv)

    if args.command == "layer":
        desc = write_layer(args.dir, args.store, args.name, args.gzip)
        print(json.dumps(desc, indent=1))
    elif args.command == "archive":
        layers = [json.loads(p.read_text()) for p in args.layer]
        config: dict[str, Any] = {}
        if args.env:
            config["Env"] = args.env
        if args.entrypoint:
            config["Entrypoint"] = json.loads(args.entrypoint)
        if args.cmd:
            config["Cmd"] = json.loads(args.cmd)
        if args.user:
            config["User"] = args.user
        if args.workdir:
            config["WorkingDir"] = args.workdir
        write_archive(args.out, args.ref, layers, config)
    elif args.command == "fix-scripts":
        print(fix_scripts(args.bindir, args.python))
    else:
        print(" ".join(copy_dists(args.site, args.dest, args.bindir, args.dist, args.exclude)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
