"""The test support the publish tests stand on, proven against the real Helm 4 and Helm 3: the TLS
OCI registry (tests/support/servers.py `oci_registry(tls=True)`) trusts only clients given its CA and
only the right credentials, and the throwaway GnuPG key (tests/support/signing.py) signs charts that
`helm verify` accepts, with or without a passphrase; a wrong passphrase signs nothing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.charts import CHARTS, helm_path
from tests.support.servers import Registry, oci_registry
from tests.support.signing import SigningKey, gpg_unavailable, signing_key

pytestmark = pytest.mark.real


def helm(name: str, *args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_path(name), *map(str, args)], input=stdin, capture_output=True, text=True, check=False
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def failed(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def docker_config(path: Path, registry: Registry, password: str) -> Path:
    """A registry config (docker's config.json format) holding USER:PASSWORD for the registry."""
    auth = base64.b64encode(f"{registry.username}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    path.chmod(0o600)
    return path


def package(name: str, dest: Path, *sign: str | Path) -> subprocess.CompletedProcess[str]:
    return helm(name, "package", CHARTS / "training-job", "--destination", dest, *sign)


@pytest.mark.parametrize("name", ["helm4", "helm3"])
def test_tls_registry_trusts_only_its_ca_and_its_credentials(
    name: str, helm_home: Path, tmp_path: Path
) -> None:
    ok(package(name, tmp_path / "pkg"))
    (archive,) = (tmp_path / "pkg").glob("training-job-*.tgz")
    version = archive.name.removeprefix("training-job-").removesuffix(".tgz")
    with oci_registry(tmp_path / "registry", tls=True) as registry:
        assert registry.ca_file is not None and registry.ca_file.is_file()
        ca = ("--ca-file", registry.ca_file)
        good = ("--registry-config", docker_config(tmp_path / "good.json", registry, registry.password))
        wrong = ("--registry-config", docker_config(tmp_path / "wrong.json", registry, "wrong"))
        repo = f"oci://{registry.host}/charts"

        failed(helm(name, "push", archive, repo, *good), "x509: certificate signed by unknown authority")
        failed(helm(name, "push", archive, repo, *wrong, *ca), "401")
        ok(helm(name, "push", archive, repo, *good, *ca))

        pulled = tmp_path / "pulled"
        pulled.mkdir()
        pull = ("pull", f"{repo}/training-job", "--version", version, "--destination", pulled)
        failed(helm(name, *pull, *good), "x509: certificate signed by unknown authority")
        failed(helm(name, *pull, *wrong, *ca), "401")
        assert list(pulled.iterdir()) == []
        ok(helm(name, *pull, *good, *ca))
        assert (pulled / archive.name).read_bytes() == archive.read_bytes()

        # `helm registry login` (the password on stdin) checks the credentials against the registry.
        login = ("registry", "login", registry.host, "--username", registry.username, "--password-stdin")
        failed(helm(name, *login, stdin=registry.password), "certificate signed by unknown authority")
        failed(helm(name, *login, *ca, stdin="wrong"), "401")
        ok(helm(name, *login, *ca, stdin=registry.password))
        assert registry.host in json.loads((helm_home / "registry.json").read_text())["auths"]


def test_helm3_17_talks_plain_http_to_a_loopback_registry(helm_home: Path, tmp_path: Path) -> None:
    """Why the TLS registry is tested on Helm 4 and 3.18 only: Helm 3.17's resolver (containerd's)
    always speaks plain HTTP to localhost and loopback addresses, --ca-file or not."""
    ok(package("helm3.17", tmp_path / "pkg"))
    (archive,) = (tmp_path / "pkg").glob("training-job-*.tgz")
    with oci_registry(tmp_path / "registry", tls=True) as registry:
        assert registry.ca_file is not None
        good = docker_config(tmp_path / "good.json", registry, registry.password)
        pushed = helm(
            "helm3.17", "push", archive, f"oci://{registry.host}/charts", "--ca-file", registry.ca_file,
            "--registry-config", good,
        )  # fmt: skip
    failed(pushed, f"http://{registry.host}/v2/", "400 Bad Request")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SigningKey]]:
    """Two throwaway keys: one without a passphrase, one protected by a passphrase."""
    reason = gpg_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("keys")
    with (
        signing_key(root / "plain") as plain,
        signing_key(root / "protected", passphrase=os.urandom(12).hex()) as protected,
    ):
        yield {"plain": plain, "protected": protected}


@pytest.mark.parametrize("which", ["plain", "protected"])
@pytest.mark.parametrize("name", ["helm4", "helm3", "helm3.17"])
def test_signed_package_verifies(name: str, which: str, keys: dict[str, SigningKey], tmp_path: Path) -> None:
    key = keys[which]
    assert key.secret_keyring.is_file() and key.public_keyring.is_file()
    if which == "protected":
        assert key.passphrase_file is not None
        assert key.passphrase_file.stat().st_mode & 0o777 == 0o600
        # The keyring holds the key encrypted: without the passphrase helm cannot sign with it.
        wrong = tmp_path / "wrong-passphrase"
        wrong.write_text("wrong\n")
        refused = package(
            name, tmp_path / "refused", "--sign", "--key", key.email, "--keyring", key.secret_keyring,
            "--passphrase-file", wrong,
        )  # fmt: skip
        failed(refused, "private key checksum failure")
        assert not list((tmp_path / "refused").glob("*.prov"))
    else:
        assert key.passphrase_file is None
    sign = ("--sign", "--key", key.email, "--keyring", key.secret_keyring)
    passphrase = ("--passphrase-file", key.passphrase_file) if key.passphrase_file else ()
    ok(package(name, tmp_path / "pkg", *sign, *passphrase))
    (archive,) = (tmp_path / "pkg").glob("training-job-*.tgz")
    assert (tmp_path / "pkg" / f"{archive.name}.prov").is_file()

    verified = ok(helm(name, "verify", archive, "--keyring", key.public_keyring))
    assert f"Signed by: {key.uid}" in verified.stdout
    assert f"Using Key With Fingerprint: {key.fingerprint}" in verified.stdout
    # The public keyring alone cannot sign; a tarball that differs from what was signed fails.
    failed(
        package(name, tmp_path / "nosecret", "--sign", "--key", key.email, "--keyring", key.public_keyring)
    )
    tampered = tmp_path / "tampered" / archive.name
    tampered.parent.mkdir()
    tampered.write_bytes(archive.read_bytes() + b"\0")
    (tampered.parent / f"{archive.name}.prov").write_bytes(
        (tmp_path / "pkg" / f"{archive.name}.prov").read_bytes()
    )
    failed(helm(name, "verify", tampered, "--keyring", key.public_keyring), "sha256 sum does not match")
