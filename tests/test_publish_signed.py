"""`helm-mlops publish --sign` to a TLS registry with a self-signed CA and htpasswd auth, and to an HTTP
repository: every chart and a generated stack signed by a passphrase-protected GnuPG key, then verified
by Helm 4 and Helm 3 as a user does it: `helm verify`, `helm pull --verify` (from the repository and
from oci://) and `helm install --verify`. Wrong passphrase, unknown key, missing CA: refused before
anything is written. (Helm 3.17 cannot reach a TLS registry on a loopback address: see
tests/test_publish_support.py; it is left out of the TLS checks here.)"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.charts import CHARTS, helm_path
from tests.support.cluster import Cluster
from tests.support.plugin import http_server
from tests.support.servers import Registry, oci_registry
from tests.support.signing import SigningKey, gpg_unavailable, signing_key
from tests.test_publish import (
    CHART_NAMES,
    RENDER_VALUES,
    archive_files,
    assert_same_as_source,
    chart_version,
    generate,
    helm,
    helm_env,
    ok,
    publish,
    refused,
    rendered,
    snapshot,
)

PASSPHRASE = "correct horse battery staple"


@dataclass
class Signed:
    key: SigningKey
    other: SigningKey  # a key that signed nothing
    home: Path
    site: Path
    url: str
    registry: Registry
    ca: Path
    oci: str
    stack: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    reason = gpg_unavailable()
    if reason is not None:
        pytest.fail(reason)  # gnupg comes with the machine (Debian's base system): never skipped
    root = tmp_path_factory.mktemp("signed")
    site = root / "site"
    site.mkdir()
    stack = generate(root / "full-stack")
    with (
        signing_key(root / "k1", passphrase=PASSPHRASE) as key,
        signing_key(root / "k2", name="someone else", email="else@example.invalid") as other,
        oci_registry(root / "registry", tls=True) as registry,
        http_server(site) as url,
    ):
        assert registry.ca_file is not None and key.passphrase_file is not None
        oci = f"oci://{registry.host}/charts"
        sources = [CHARTS / n for n in CHART_NAMES] + [stack]
        said = ok(
            publish(
                *sources,
                "--repo-dir",
                site,
                "--url",
                url,
                "--oci",
                oci,
                "--ca-file",
                registry.ca_file,
                "--username",
                registry.username,
                "--password-stdin",
                "--sign",
                "--key",
                key.email,
                "--keyring",
                key.secret_keyring,
                "--passphrase-file",
                key.passphrase_file,
                home=root / "helm",
                stdin=registry.password,
            )
        )
        assert said.count("(signed)") == 8, said
        yield Signed(key, other, root / "helm", site, url, registry, registry.ca_file, oci, stack)


def login(name: str, s: Signed, home: Path) -> None:
    helm(name, "registry", "login", s.registry.host, "--username", s.registry.username, "--password-stdin",
         "--ca-file", s.ca, home=home, stdin=s.registry.password)  # fmt: skip


def test_every_archive_has_a_provenance_file_helm_verifies(signed: Signed) -> None:
    for name in (*CHART_NAMES, "full-stack"):
        source = CHARTS / name if name in CHART_NAMES else signed.stack
        archive = signed.site / f"{name}-{chart_version(source)}.tgz"
        prov = archive.with_name(archive.name + ".prov")
        assert prov.is_file(), prov
        for helm_name in ("helm4", "helm3", "helm3.17"):
            said = helm(
                helm_name, "verify", archive, "--keyring", signed.key.public_keyring, home=signed.home
            )
            assert f"Signed by: {signed.key.uid}" in said, said
        wrong = subprocess.run(
            [helm_path("helm4"), "verify", str(archive), "--keyring", str(signed.other.public_keyring)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert wrong.returncode != 0 and "unknown entity" in wrong.stderr, wrong.stderr


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_pull_verify_from_the_repository_and_from_the_tls_registry(
    signed: Signed, helm_name: str, tmp_path: Path
) -> None:
    home = tmp_path / "helm"
    helm(helm_name, "repo", "add", "signed", signed.url, home=home)
    login(helm_name, signed, home)
    keyring = ("--verify", "--keyring", signed.key.public_keyring)
    for name in CHART_NAMES:
        version = chart_version(CHARTS / name)
        sources: list[tuple[str, str, tuple[str | Path, ...]]] = [("repo", f"signed/{name}", ())]
        if helm_name == "helm3":  # 3.18.0 pulls no signed chart from OCI (helm/helm#30890; 3.18.1 fixes it)
            proc = subprocess.run(
                [
                    helm_path(helm_name),
                    "pull",
                    f"{signed.oci}/{name}",
                    "--version",
                    version,
                    "-d",
                    str(tmp_path),
                    "--ca-file",
                    str(signed.ca),
                ],
                capture_output=True,
                text=True,
                env=helm_env(home),
                check=False,
            )
            assert proc.returncode != 0 and 'provenance.v1.prov" is not allowed' in proc.stderr, proc.stderr
        else:
            sources.append(("oci", f"{signed.oci}/{name}", ("--ca-file", signed.ca)))
        for where, ref, extra in sources:
            out = tmp_path / where / name
            out.mkdir(parents=True)
            said = helm(helm_name, "pull", ref, "--version", version, "-d", out, *keyring, *extra, home=home)
            assert f"Signed by: {signed.key.uid}" in said, said
            assert_same_as_source(out / f"{name}-{version}.tgz", CHARTS / name)
            assert (out / f"{name}-{version}.tgz.prov").is_file()
        if helm_name == "helm3":
            continue
        shown = helm(helm_name, "show", "chart", f"{signed.oci}/{name}", "--version", version, "--ca-file",
                     signed.ca, home=home)  # fmt: skip
        assert yaml.safe_load(shown)["version"] == version
        from_oci = rendered(helm_name, f"{signed.oci}/{name}", name, "--version", version, "--ca-file",
                            str(signed.ca), home=home)  # fmt: skip
        assert from_oci == rendered(helm_name, CHARTS / name, name, home=home)


@pytest.mark.e2e
def test_install_verify_takes_the_signed_chart_and_refuses_another_key(
    signed: Signed, cluster: Cluster, tmp_path: Path
) -> None:
    """`helm install --verify` (Helm 4 and Helm 3) installs the published chart with the signer's public
    key, and refuses it with another key before anything reaches the cluster."""
    namespace = cluster.restricted_namespace("verify")
    version = chart_version(CHARTS / "training-job")
    try:
        for helm_name in ("helm4", "helm3"):
            home = tmp_path / helm_name
            helm(helm_name, "repo", "add", "signed", signed.url, home=home)
            env = {**helm_env(home), "KUBECONFIG": str(cluster.kubeconfig)}
            args = [helm_path(helm_name), "install", f"fit-{helm_name}", "signed/training-job",
                    "--version", version, "-f", str(RENDER_VALUES["training-job"]), "-n", namespace,
                    "--verify"]  # fmt: skip
            bad = subprocess.run(
                [*args, "--keyring", str(signed.other.public_keyring)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            assert bad.returncode != 0 and "unknown entity" in bad.stderr, bad.stderr
            good = subprocess.run(
                [*args, "--keyring", str(signed.key.public_keyring)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            assert good.returncode == 0, good.stderr
            releases = cluster.helm(helm_name, "list", "-n", namespace, "-o", "json").stdout
            assert [r["name"] for r in yaml.safe_load(releases)] == [f"fit-{helm_name}"]
            cluster.helm(helm_name, "uninstall", f"fit-{helm_name}", "-n", namespace, "--wait")
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_stack_is_signed_and_complete(signed: Signed, tmp_path: Path) -> None:
    home = tmp_path / "helm"
    login("helm4", signed, home)
    out = tmp_path / "pulled"
    out.mkdir()
    version = chart_version(signed.stack)
    said = helm("helm4", "pull", f"{signed.oci}/full-stack", "--version", version, "-d", out, "--verify",
                "--keyring", signed.key.public_keyring, "--ca-file", signed.ca, home=home)  # fmt: skip
    assert f"Signed by: {signed.key.uid}" in said
    assert_same_as_source(out / f"full-stack-{chart_version(signed.stack)}.tgz", signed.stack)


def test_signing_again_changes_nothing(signed: Signed) -> None:
    """Helm 4 packages reproducibly; the signature differs at each signing, the archive does not: the
    index and the registry keep what they have."""
    before = snapshot(signed.site)
    proc = publish(
        *(CHARTS / n for n in CHART_NAMES), "--repo-dir", signed.site, "--url", signed.url,
        "--oci", signed.oci, "--ca-file", signed.ca, "--username", signed.registry.username,
        "--password-stdin", "--sign", "--key", signed.key.email, "--keyring", signed.key.secret_keyring,
        "--passphrase-file", "-",
        home=signed.home, stdin=f"{signed.registry.password}\n",
    )  # fmt: skip
    assert proc.returncode == 2 and "standard input cannot carry both" in proc.stderr, proc.stderr
    proc = publish(
        *(CHARTS / n for n in CHART_NAMES), "--repo-dir", signed.site, "--url", signed.url, "--sign", "--key",
        signed.key.email, "--keyring", signed.key.secret_keyring, "--passphrase-file", "-",
        home=signed.home, stdin=PASSPHRASE + "\n",
    )  # fmt: skip
    said = ok(proc)
    assert said.count("unchanged: ") == 3, said
    assert snapshot(signed.site) == before


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"passphrase": "wrong horse"}, "--passphrase-file", "the passphrase is wrong"),
        ({"key": "nobody@example.invalid"}, "--key", "no such key in the keyring"),
        ({"keyring": "public"}, "--keyring", "holds no secret key"),
        ({"keyring": "kbx"}, "--keyring", "is not a keyring Helm reads"),
        ({"passphrase": ""}, "--passphrase-file", "is empty"),
        ({"passphrase": None}, "--passphrase-file", "the passphrase is missing"),
    ],
)
def test_signing_problems_are_refused_before_anything_is_written(
    signed: Signed, tmp_path: Path, change: dict[str, str | None], field: str, words: str
) -> None:
    site = tmp_path / "site"
    shutil.copytree(signed.site, site)
    before = snapshot(site)
    passphrase = tmp_path / "pass"
    given = change.get("passphrase", PASSPHRASE)
    passphrase.write_text(given + "\n" if given else "")
    keyrings = {"public": signed.key.public_keyring, "kbx": signed.key.gnupg_home / "pubring.kbx"}
    keyring = keyrings.get(str(change.get("keyring")), signed.key.secret_keyring)
    assert keyring.is_file()
    source = tmp_path / "mlflow"
    shutil.copytree(CHARTS / "mlflow", source)
    unprotected: list[str | Path] = ["--passphrase-file", passphrase] if given is not None else []
    message = refused(
        publish(
            source,
            "--repo-dir",
            site,
            "--url",
            signed.url,
            "--version",
            "7.7.7",
            "--sign",
            "--key",
            str(change.get("key", signed.key.email)),
            "--keyring",
            keyring,
            *unprotected,
            home=tmp_path / "h",
            stdin="",
        )
    )
    assert message.startswith(f"error: {field}: ") and words in message, message
    assert PASSPHRASE not in message and "wrong horse" not in message
    assert snapshot(site) == before


def test_signing_a_version_published_unsigned_adds_its_provenance(signed: Signed, tmp_path: Path) -> None:
    """A version published unsigned, then published again with --sign: the same archive gets its .prov
    (HTTP: beside it, index untouched; OCI: pushed again with the provenance layer), verifiable after.
    An archive that differs byte-wise (Helm 3.17 packages with file times) cannot take that signature:
    refused until --force replaces it."""
    site = tmp_path / "site"
    source = tmp_path / "training-job"
    shutil.copytree(CHARTS / "training-job", source)
    home = tmp_path / "h"
    registry = ("--oci", signed.oci, "--ca-file", signed.ca, "--username", signed.registry.username,
                "--password-stdin")  # fmt: skip
    ok(publish(source, "--repo-dir", site, "--url", signed.url, *registry, "--version", "8.0.0", home=home,
               stdin=signed.registry.password))  # fmt: skip
    index = (site / "index.yaml").read_bytes()
    signing = ("--sign", "--key", signed.key.email, "--keyring", signed.key.secret_keyring,
               "--passphrase-file", str(signed.key.passphrase_file))  # fmt: skip
    said = ok(publish(source, "--repo-dir", site, "--url", signed.url, *registry, "--version", "8.0.0",
                      *signing, home=home, stdin=signed.registry.password))  # fmt: skip
    assert f"signed: {signed.url}/training-job-8.0.0.tgz (provenance added" in said, said
    assert f"signed: {signed.oci}/training-job:8.0.0" in said, said
    assert (site / "index.yaml").read_bytes() == index
    archive = site / "training-job-8.0.0.tgz"
    verified = helm("helm4", "verify", archive, "--keyring", signed.key.public_keyring, home=home)
    assert f"Signed by: {signed.key.uid}" in verified
    login("helm4", signed, home)
    out = tmp_path / "pulled"
    out.mkdir()
    pulled = helm("helm4", "pull", f"{signed.oci}/training-job", "--version", "8.0.0", "-d", out, "--verify",
                  "--keyring", signed.key.public_keyring, "--ca-file", signed.ca, home=home)  # fmt: skip
    assert f"Signed by: {signed.key.uid}" in pulled

    # Helm 3.17's archive of the same chart, unsigned, then a Helm 4 signed package of it.
    ok(
        publish(
            source, "--repo-dir", site, "--url", signed.url, "--version", "9.0.0", home=home, helm="helm3.17"
        )
    )
    message = refused(publish(source, "--repo-dir", site, "--url", signed.url, "--version", "9.0.0", *signing,
                              home=home))  # fmt: skip
    assert "training-job 9.0.0 is published unsigned at" in message and "--force" in message, message
    assert not (site / "training-job-9.0.0.tgz.prov").exists()
    said = ok(publish(source, "--repo-dir", site, "--url", signed.url, "--version", "9.0.0", *signing,
                      "--force", home=home))  # fmt: skip
    assert f"replaced: {signed.url}/training-job-9.0.0.tgz (signed)" in said
    helm(
        "helm4", "verify", site / "training-job-9.0.0.tgz", "--keyring", signed.key.public_keyring, home=home
    )


@pytest.mark.parametrize(("extra", "helm_name"), [(("--plain-http",), "helm4"), (("--ca-file",), "helm3.17")])
def test_plain_http_to_a_tls_registry_is_named_with_the_fix(
    signed: Signed, tmp_path: Path, extra: tuple[str, ...], helm_name: str
) -> None:
    """--plain-http to a TLS registry, and Helm 3.17 (plain HTTP to loopback registries whatever it is
    told): the registry answers 400, which is named with what to do."""
    args = [*extra, signed.ca] if extra == ("--ca-file",) else list(extra)
    message = refused(
        publish(
            CHARTS / "training-job",
            "--oci",
            signed.oci,
            *args,
            "--username",
            signed.registry.username,
            "--password-stdin",
            home=tmp_path,
            stdin=signed.registry.password,
            helm=helm_name,
        )
    )
    assert "drop --plain-http" in message and "Helm 3.17" in message, message


def test_a_registry_with_an_unknown_ca_is_refused_with_the_fix(signed: Signed, tmp_path: Path) -> None:
    home = tmp_path / "h"
    common = ("--oci", signed.oci, "--username", signed.registry.username, "--password-stdin")
    source = tmp_path / "training-job"
    shutil.copytree(CHARTS / "training-job", source)
    message = refused(
        publish(source, *common, "--version", "5.0.0", home=home, stdin=signed.registry.password)
    )
    assert "--ca-file" in message and "certificate" in message, message
    # --insecure-skip-tls-verify: for a test registry, as the hint says; the push happens.
    said = ok(
        publish(
            source,
            *common,
            "--version",
            "5.0.0",
            "--insecure-skip-tls-verify",
            home=home,
            stdin=signed.registry.password,
        )
    )
    assert f"published: {signed.oci}/training-job:5.0.0" in said
    out = tmp_path / "pulled"
    out.mkdir()
    login("helm4", signed, home)
    helm("helm4", "pull", f"{signed.oci}/training-job", "--version", "5.0.0", "-d", out,
         "--ca-file", signed.ca, home=home)  # fmt: skip
    assert yaml.safe_load(archive_files(out / "training-job-5.0.0.tgz")["Chart.yaml"])["version"] == "5.0.0"
