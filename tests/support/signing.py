"""A throwaway GnuPG key for Helm's provenance files (`helm package --sign`, `helm verify`, `helm pull
--verify`, `helm plugin install/verify`), for tests.

``signing_key(root, passphrase=None)`` makes an RSA 3072 key in a GnuPG home of its own under ROOT and
yields a ``SigningKey``: the key in the two legacy keyring files Helm reads (Helm cannot read GnuPG
2.1+'s pubring.kbx or private-keys-v1.d), the passphrase in a 0600 file when there is one. The key is
RSA because Helm 3's OpenPGP library refuses EdDSA ("openpgp: unsupported feature: public key type:
22"), GnuPG 2.3+'s default. The passphrase never goes on a command line: gpg reads it on stdin
(--passphrase-fd 0), helm from the file. On exit the block stops the gpg-agent of that home."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NAME = "helm-mlops tests"
EMAIL = "tests@example.invalid"


@dataclass(frozen=True)
class SigningKey:
    gnupg_home: Path  # GNUPGHOME with the key (for gpg itself, e.g. hack/plugin-package.sh --key)
    name: str
    email: str  # what `helm package --sign --key` takes: helm picks the key whose user id contains it
    fingerprint: str
    secret_keyring: Path  # `gpg --export-secret-keys`: `helm package --sign --keyring`
    public_keyring: Path  # `gpg --export`: `helm verify --keyring`, `helm pull --verify --keyring`
    passphrase_file: Path | None  # 0600, the passphrase and a newline: `helm --passphrase-file`

    @property
    def uid(self) -> str:
        """The user id as helm prints it ("Signed by: ...")."""
        return f"{self.name} <{self.email}>"

    def env(self) -> dict[str, str]:
        """This process's environment with GNUPGHOME set to the key's home."""
        return {**os.environ, "GNUPGHOME": str(self.gnupg_home)}


def gpg_unavailable() -> str | None:
    """Why no key can be made here (gpg missing), or None."""
    return None if shutil.which("gpg") else "gpg is not installed (Debian: gnupg): no key to sign with"


@contextlib.contextmanager
def signing_key(
    root: Path, passphrase: str | None = None, name: str = NAME, email: str = EMAIL
) -> Iterator[SigningKey]:
    """A fresh key in ROOT/gnupg (ROOT is created; keep it short: gpg-agent's socket lives there and a
    Unix socket path has at most 107 bytes), protected by PASSPHRASE when one is given."""
    reason = gpg_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    home = root / "gnupg"
    home.mkdir(parents=True, mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    secret = (passphrase or "").encode() + b"\n"
    gpg = ["gpg", "--batch", "--quiet", "--no-tty"]
    loopback = ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]

    def run(*args: str, stdin: bytes = b"") -> bytes:
        proc = subprocess.run([*gpg, *args], env=env, input=stdin, capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    try:
        run(*loopback, "--quick-gen-key", f"{name} <{email}>", "rsa3072", "sign", "never", stdin=secret)
        colons = run("--with-colons", "--list-secret-keys", email).decode()
        fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
        secret_keyring = root / "secring.gpg"
        secret_keyring.write_bytes(run(*loopback, "--export-secret-keys", fingerprint, stdin=secret))
        public_keyring = root / "pubring.gpg"
        public_keyring.write_bytes(run("--export", fingerprint))
        passphrase_file = None
        if passphrase is not None:
            passphrase_file = root / "passphrase"
            fd = os.open(passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secret)
        yield SigningKey(home, name, email, fingerprint, secret_keyring, public_keyring, passphrase_file)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
