"""The helm plugin as users install it: plugin.yaml runs plugin/run.sh, which execs helm-mlops from the
virtualenv that the install and update hooks build in the plugin directory (plugin/hook.sh);
hack/plugin-package.sh packages it. Helm 4, 3.18 and 3.17, each in a throwaway helm home
(tests/support/plugin.py), the hook building offline from a cached wheelhouse.

What each helm installs from (README, "helm plugin"):
- a directory: all three link it; no verification (Helm 4: "development mode");
- a .tgz file: Helm 4 only, verified against FILE.tgz.prov unless --verify=false; Helm 3 takes a
  tarball only from an http(s) URL answered as application/gzip, with the files at the archive root;
- a git URL: all three (Helm 4 only with --verify=false); the only source `helm plugin update` updates.
Building the virtualenv takes about 17 s, so it is built for real on helm4 and helm3.17 from a
directory, on helm3 from git (install, update, failed update) and on helm4 from the signed tarball;
the other paths run with HELM_MLOPS_SKIP_VENV=1, which proves that helm ran the hook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.charts import CHARTS, HELMS, REPO, helm_path
from tests.support.plugin import (
    IN_CI,
    VENV_LINK,
    HelmHome,
    http_server,
    package_entries,
    plugin_source,
    wheelhouse,
)
from tests.support.signing import gpg_unavailable, signing_key

VERSION = yaml.safe_load((REPO / "plugin.yaml").read_text())["version"]
TARBALL = f"helm-mlops-plugin-{VERSION}.tgz"
SIGNER = "helm-mlops tests <tests@example.invalid>"
TEST_VENV_BIN = str(Path(sys.executable).parent)  # has a helm-mlops: the checkout's, editable


def test_plugin_version_is_the_package_version() -> None:
    """The version has one source, the package metadata (pyproject.toml); plugin.yaml must agree."""
    from importlib.metadata import version

    import generator

    plugin = yaml.safe_load((REPO / "plugin.yaml").read_text())
    assert plugin["version"] == version("helm-mlops") == generator.__version__


def test_plugin_yaml_runs_the_wrapper_and_the_hooks() -> None:
    """Legacy format, `hooks` only: Helm 3.17 refuses `platformHooks` (unknown field) and Helm 3.18 and
    Helm 4 refuse a plugin.yaml with both."""
    plugin = yaml.safe_load((REPO / "plugin.yaml").read_text())
    assert plugin["name"] == "mlops" and "apiVersion" not in plugin and "platformHooks" not in plugin
    assert {c["os"]: c["command"] for c in plugin["platformCommand"]} == {
        "linux": "$HELM_PLUGIN_DIR/plugin/run.sh",
        "darwin": "$HELM_PLUGIN_DIR/plugin/run.sh",
    }
    assert plugin["hooks"] == {
        "install": 'sh "$HELM_PLUGIN_DIR/plugin/hook.sh" install',
        "update": 'sh "$HELM_PLUGIN_DIR/plugin/hook.sh" update',
    }
    for script in ("run.sh", "hook.sh"):
        path = REPO / "plugin" / script
        assert path.read_text().startswith("#!/bin/sh\n") and os.access(path, os.X_OK), path


@pytest.fixture(scope="session")
def wheels() -> Path:
    return wheelhouse()


@pytest.fixture
def home(tmp_path: Path, wheels: Path) -> HelmHome:
    return HelmHome(tmp_path / "home", wheels)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """hack/plugin-package.sh --key: the packages signed by a throwaway GnuPG key (no passphrase);
    returns the dist folder and a keyring with the public key, as Helm's --keyring reads it."""
    reason = gpg_unavailable()
    if reason is not None:
        message = f"{reason}: the signed plugin package cannot be made"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("dist")
    with signing_key(root) as key:
        out = root / "dist"
        packaged = subprocess.run(
            ["bash", str(REPO / "hack" / "plugin-package.sh"), "--out", str(out), "--key", key.email],
            env=key.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert packaged.returncode == 0, packaged.stdout + packaged.stderr
        yield out, key.public_keyring


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def assert_no_warning(proc: subprocess.CompletedProcess[str]) -> None:
    assert "warn" not in proc.stderr.lower(), proc.stderr


def assert_hook_built_the_venv(proc: subprocess.CompletedProcess[str], action: str, wheels: Path) -> None:
    """The hook's one line per step, in order."""
    steps = [line for line in proc.stdout.splitlines() if line.startswith("helm-mlops:")]
    expected = [
        rf"helm-mlops: {action}: Python 3\.\d+\.\d+ \(.+\)",
        rf"helm-mlops: {action}: creating a virtualenv in .+/\.plugin-venv-\w+",
        rf"helm-mlops: {action}: pip install of helm-mlops and its dependencies "
        rf"\(offline, wheels from {re.escape(str(wheels))}\)",
        rf"helm-mlops: {action}: done: .+/\.plugin-venv -> \.plugin-venv-\w+ "
        rf"\(helm-mlops, version {re.escape(VERSION)}\)",
    ]
    assert len(steps) == len(expected), proc.stdout
    for line, pattern in zip(steps, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


def assert_hook_skipped(proc: subprocess.CompletedProcess[str], action: str) -> None:
    assert f"helm-mlops: {action}: HELM_MLOPS_SKIP_VENV is set: no virtualenv built" in proc.stdout, (
        proc.stdout + proc.stderr
    )


def venv_home(plugin_dir: Path) -> Path:
    """Where the hook keeps the venvs: under .git/ in a git checkout (helm's update runs `git clean -x`)."""
    return plugin_dir / ".git" / "helm-mlops-plugin" if (plugin_dir / ".git").is_dir() else plugin_dir


def venv_target(plugin_dir: Path) -> str:
    return os.readlink(venv_home(plugin_dir) / VENV_LINK)


def assert_nothing_left(home: HelmHome) -> None:
    """After `helm plugin uninstall`: no plugin directory, no tarball copy, no build folder in TMPDIR,
    no cache of ours (pip runs with --no-cache-dir); helm's own cache (XDG_CACHE_HOME/helm) may stay."""
    assert home.plugin_dirs() == []
    assert [p.name for p in home.tmp.iterdir()] == []
    if home.cache.is_dir():
        assert [p.name for p in home.cache.iterdir() if p.name != "helm"] == []


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [
        line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("helm-mlops: error:")
    ]


@pytest.mark.real
@pytest.mark.parametrize("helm_name", ["helm4", "helm3.17"])
def test_install_from_the_repository_directory(
    helm_name: str, home: HelmHome, wheels: Path, tmp_path: Path
) -> None:
    source = plugin_source(tmp_path / "helm-mlops")
    installed = ok(home.helm(helm_name, "plugin", "install", source))
    assert_no_warning(installed)
    assert_hook_built_the_venv(installed, "install", wheels)
    (plugin_dir,) = home.plugin_dirs()
    assert plugin_dir.is_symlink() and plugin_dir.resolve() == source.resolve()
    assert "mlops" in ok(home.helm(helm_name, "plugin", "list")).stdout
    assert "demo" in ok(home.helm(helm_name, "mlops", "--help")).stdout
    # The plugin hands the CLI the helm that called it: the stack is linted with it first.
    out = tmp_path / "stack"
    run = ok(home.helm(helm_name, "mlops", "demo", "--no-install", "-o", out))
    first_lint = next(line for line in run.stdout.splitlines() if line.startswith("lint: helm lint"))
    assert f"(helm {HELMS[helm_name][1]}" in first_lint, run.stdout
    bad = home.helm(helm_name, "mlops", "demo", "--preset", "nope", "-o", out)
    assert bad.returncode == 2 and "no preset named" in bad.stderr
    # `helm mlops publish`: the chart packaged by the calling helm into a repository directory.
    site = tmp_path / "site"
    said = ok(home.helm(helm_name, "mlops", "publish", CHARTS / "training-job", "--repo-dir", site,
                        "--url", "https://charts.example.com")).stdout  # fmt: skip
    version = yaml.safe_load((CHARTS / "training-job" / "Chart.yaml").read_text())["version"]
    assert f"published: https://charts.example.com/training-job-{version}.tgz" in said, said
    index = yaml.safe_load((site / "index.yaml").read_text())
    assert [e["version"] for e in index["entries"]["training-job"]] == [version]
    target = venv_target(source)
    ok(home.helm(helm_name, "plugin", "uninstall", "mlops"))
    assert_nothing_left(home)
    # Helm removed its link; the virtualenv stays in the directory, which is the user's.
    assert sorted(p.name for p in source.glob(".plugin-venv*")) == [VENV_LINK, target]


def _git(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        [
            *("git", "-c", "user.name=helm-mlops tests", "-c", "user.email=tests@example.invalid"),
            *("-c", "init.defaultBranch=main", *map(str, args)),
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.mark.real
@pytest.mark.parametrize("helm_name", ["helm3", "helm4", "helm3.17"])
def test_install_from_git_then_update(helm_name: str, home: HelmHome, wheels: Path, tmp_path: Path) -> None:
    """A git URL (here served over git's dumb HTTP protocol by a local server) is the source helm
    updates: `helm plugin update mlops` pulls, then the update hook rebuilds the virtualenv beside the
    old one and switches to it; when the rebuild fails the old one stays and works. Built for real on
    helm3; helm4 and helm3.17 run the same steps with HELM_MLOPS_SKIP_VENV=1."""
    full = helm_name == "helm3"
    work = plugin_source(tmp_path / "work" / "helm-mlops")
    shutil.copy2(REPO / ".gitignore", work / ".gitignore")
    _git("init", "-q", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "first", cwd=work)
    served = tmp_path / "served"
    served.mkdir()
    bare = served / "helm-mlops.git"
    _git("clone", "-q", "--bare", work, bare, cwd=tmp_path)
    _git("update-server-info", cwd=bare)
    env = {} if full else {"HELM_MLOPS_SKIP_VENV": "1"}
    with http_server(served) as base:
        url = f"{base}/helm-mlops.git"
        verify: list[str] = []
        if helm_name == "helm4":
            refused = home.helm(helm_name, "plugin", "install", url)
            assert refused.returncode != 0
            assert "plugin source does not support verification. Use --verify=false" in refused.stderr
            verify = ["--verify=false"]
        installed = ok(home.helm(helm_name, "plugin", "install", url, *verify, **env))
        assert_no_warning(installed)
        (plugin_dir,) = home.plugin_dirs()
        assert not plugin_dir.is_symlink()
        if full:
            assert_hook_built_the_venv(installed, "install", wheels)
            first = venv_target(plugin_dir)
            ok(home.helm(helm_name, "mlops", "--version"))
            # helm's update cleans the checkout (git clean -x -d -f -f): the venvs are kept in .git/.
            assert venv_home(plugin_dir) == plugin_dir / ".git" / "helm-mlops-plugin"
        else:
            assert_hook_skipped(installed, "install")
            assert not (venv_home(plugin_dir) / VENV_LINK).exists()

        with (work / "README.md").open("a") as readme:
            readme.write("\nA change upstream.\n")
        _git("commit", "-q", "-am", "second", cwd=work)
        _git("push", "-q", bare, "main", cwd=work)
        _git("update-server-info", cwd=bare)
        updated = ok(home.helm(helm_name, "plugin", "update", "mlops", **env))
        assert_no_warning(updated)
        assert (plugin_dir / "README.md").read_text().endswith("A change upstream.\n")
        if full:
            assert_hook_built_the_venv(updated, "update", wheels)
            second = venv_target(plugin_dir)
            assert second != first and not (venv_home(plugin_dir) / first).exists()
            assert f"helm-mlops, version {VERSION}" in ok(home.helm(helm_name, "mlops", "--version")).stdout
            # An update whose rebuild fails (no wheels to install from) leaves the old venv in use.
            no_wheels = tmp_path / "no-wheels"
            no_wheels.mkdir()
            failed = home.helm(helm_name, "plugin", "update", "mlops", HELM_MLOPS_WHEELS=str(no_wheels))
            assert failed.returncode != 0
            assert errors(failed) == [
                "helm-mlops: error: pip install failed (see above); "
                "the plugin's previous virtualenv, if any, is unchanged"
            ], failed.stdout + failed.stderr
            assert venv_target(plugin_dir) == second
            assert sorted(p.name for p in venv_home(plugin_dir).glob(".plugin-venv*")) == [VENV_LINK, second]
            ok(home.helm(helm_name, "mlops", "--version"))
        else:
            assert_hook_skipped(updated, "update")
    ok(home.helm(helm_name, "plugin", "uninstall", "mlops"))
    assert home.plugin_dirs() == []
    assert [p.name for p in home.tmp.iterdir()] == []


def test_the_package_holds_only_what_the_hook_needs(dist: tuple[Path, Path]) -> None:
    out, _ = dist
    wanted = {entry for entry in package_entries() if (REPO / entry).exists()}
    with tarfile.open(out / TARBALL) as nested, tarfile.open(out / "helm3" / TARBALL) as flat:
        nested_names, flat_names = nested.getnames(), flat.getnames()
    # Helm 4 wants the files under <tarball name without -VERSION.tgz>/, Helm 3 at the archive root.
    assert {name.split("/")[0] for name in nested_names} == {"helm-mlops-plugin"}
    assert {name.split("/")[1] for name in nested_names if "/" in name} == wanted
    assert {name.split("/")[0] for name in flat_names} == wanted
    assert not any(part in ("__pycache__", ".venv") for name in flat_names for part in name.split("/"))
    assert (out / f"{TARBALL}.prov").is_file() and (out / "helm3" / f"{TARBALL}.prov").is_file()


@pytest.mark.real
def test_packaged_plugin_on_helm4(
    home: HelmHome, wheels: Path, dist: tuple[Path, Path], tmp_path: Path
) -> None:
    out, keyring = dist
    tgz = out / TARBALL
    # A tarball that differs from what was signed is refused before anything is installed.
    tampered = tmp_path / "tampered" / TARBALL
    tampered.parent.mkdir()
    tampered.write_bytes(tgz.read_bytes() + b"\0")
    shutil.copy2(f"{tgz}.prov", f"{tampered}.prov")
    refused = home.helm("helm4", "plugin", "install", tampered, "--keyring", keyring)
    assert refused.returncode != 0 and "plugin verification failed" in refused.stderr, refused.stderr
    assert home.plugin_dirs() == []

    installed = ok(home.helm("helm4", "plugin", "install", tgz, "--keyring", keyring))
    assert f"Signed by: {SIGNER}" in installed.stdout and "Plugin Hash Verified: sha256:" in installed.stdout
    assert_no_warning(installed)
    assert_hook_built_the_venv(installed, "install", wheels)
    plugin_dir = home.plugins / "helm-mlops-plugin"
    assert plugin_dir.is_dir() and not plugin_dir.is_symlink()
    assert f"helm-mlops, version {VERSION}" in ok(home.helm("helm4", "mlops", "--version")).stdout
    ok(home.helm("helm4", "plugin", "uninstall", "mlops"))
    assert_nothing_left(home)  # the copies of the tarball and .prov helm kept went with it

    # Without a .prov: refused unless --verify=false.
    unsigned = tmp_path / "unsigned" / TARBALL
    unsigned.parent.mkdir()
    shutil.copy2(tgz, unsigned)
    refused = home.helm("helm4", "plugin", "install", unsigned)
    assert refused.returncode != 0 and "no provenance file (.prov) found" in refused.stderr, refused.stderr
    assert home.plugin_dirs() == []
    skipped = ok(
        home.helm("helm4", "plugin", "install", unsigned, "--verify=false", HELM_MLOPS_SKIP_VENV="1")
    )
    assert "WARNING: Skipping plugin signature verification" in skipped.stdout
    assert_hook_skipped(skipped, "install")
    assert not (plugin_dir / VENV_LINK).exists()
    # No venv: run.sh takes helm-mlops from PATH, else says what to do in one line.
    missing = home.helm("helm4", "mlops", "--version")
    assert missing.returncode != 0
    (message,) = [line for line in missing.stderr.splitlines() if line.startswith("helm mlops:")]
    assert "helm-mlops is not installed" in message and f"sh {plugin_dir}/plugin/hook.sh install" in message
    on_path = ok(home.helm("helm4", "mlops", "--version", PATH=f"{TEST_VENV_BIN}:/usr/bin:/bin"))
    assert f"helm-mlops, version {VERSION}" in on_path.stdout
    # A checkout's .venv (make setup) comes before PATH; the calling helm is handed over either way.
    fake = plugin_dir / ".venv" / "bin" / "helm-mlops"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho ".venv: $* with $HELM_MLOPS_HELM"\n')
    fake.chmod(0o755)
    from_venv = ok(home.helm("helm4", "mlops", "status", "r", PATH=f"{TEST_VENV_BIN}:/usr/bin:/bin"))
    assert from_venv.stdout == f".venv: status r with {helm_path('helm4')}\n"
    ok(home.helm("helm4", "plugin", "uninstall", "mlops"))
    assert_nothing_left(home)


def test_helm4_plugin_verify_checks_the_package(dist: tuple[Path, Path], tmp_path: Path) -> None:
    """`helm plugin verify FILE.tgz --keyring PUBRING` (Helm 4) reads our .prov: it accepts the signed
    tarball and refuses one that differs from what was signed or a keyring without the signer."""
    out, keyring = dist
    home = HelmHome(tmp_path / "home", tmp_path / "no-wheels")  # verify runs no hook
    tgz = out / TARBALL
    verified = ok(home.helm("helm4", "plugin", "verify", tgz, "--keyring", keyring))
    assert f"Signed by: {SIGNER}" in verified.stdout and "Plugin Hash Verified: sha256:" in verified.stdout

    tampered = tmp_path / "tampered" / TARBALL
    tampered.parent.mkdir()
    tampered.write_bytes(tgz.read_bytes() + b"\0")
    shutil.copy2(f"{tgz}.prov", f"{tampered}.prov")
    refused = home.helm("helm4", "plugin", "verify", tampered, "--keyring", keyring)
    assert refused.returncode != 0 and "sha256 sum does not match" in refused.stderr, refused.stderr

    with signing_key(tmp_path / "other", email="other@example.invalid") as other:
        stranger = home.helm("helm4", "plugin", "verify", tgz, "--keyring", other.public_keyring)
    assert stranger.returncode != 0 and "signature made by unknown entity" in stranger.stderr, stranger.stderr
    assert home.plugin_dirs() == []


@pytest.mark.real
@pytest.mark.parametrize("helm_name", ["helm3", "helm3.17"])
def test_packaged_plugin_on_helm3(helm_name: str, home: HelmHome, dist: tuple[Path, Path]) -> None:
    """Helm 3 cannot install a .tgz file; it installs dist/helm3/*.tgz from an http(s) URL. The hook
    is skipped here: the package's files build the venv in test_packaged_plugin_on_helm4."""
    out, _ = dist
    refused = home.helm(helm_name, "plugin", "install", out / TARBALL)
    assert refused.returncode != 0 and "expected plugin to be a folder" in refused.stderr
    with http_server(out) as base:
        installed = ok(
            home.helm(helm_name, "plugin", "install", f"{base}/helm3/{TARBALL}", HELM_MLOPS_SKIP_VENV="1")
        )
    assert_no_warning(installed)
    assert_hook_skipped(installed, "install")
    plugin_dir = home.plugins / "helm-mlops-plugin"
    assert plugin_dir.is_dir() and os.access(plugin_dir / "plugin" / "run.sh", os.X_OK)
    on_path = ok(home.helm(helm_name, "mlops", "--version", PATH=f"{TEST_VENV_BIN}:/usr/bin:/bin"))
    assert f"helm-mlops, version {VERSION}" in on_path.stdout
    # helm updates only what it installed from git.
    not_updated = home.helm(helm_name, "plugin", "update", "mlops")
    assert not_updated.returncode != 0 and "cannot get information about plugin source" in not_updated.stderr
    ok(home.helm(helm_name, "plugin", "uninstall", "mlops"))
    assert_nothing_left(home)  # helm keeps its download under XDG_CACHE_HOME/helm/plugins: helm's cache


def test_no_suitable_python_is_one_clear_message(tmp_path: Path) -> None:
    home = HelmHome(tmp_path / "home", tmp_path / "nowhere")  # the hook stops before it needs wheels
    source = plugin_source(tmp_path / "helm-mlops")
    bad = home.helm("helm4", "plugin", "install", source, HELM_MLOPS_PYTHON="/nonexistent")
    assert bad.returncode != 0
    (error,) = errors(bad)
    assert error.startswith("helm-mlops: error: HELM_MLOPS_PYTHON=/nonexistent is not a Python 3.11 or newer")
    ok(home.helm("helm4", "plugin", "uninstall", "mlops"))  # helm keeps a plugin whose hook failed

    # None on PATH: only sh, a broken pyenv shim and a Python too old.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    (bin_dir / "python3.13").write_text(
        "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n"
    )
    (bin_dir / "python3.12").write_text("#!/bin/sh\necho 3.10.13\nexit 1\n")
    for fake in ("python3.13", "python3.12"):
        (bin_dir / fake).chmod(0o755)
    bad = home.helm("helm4", "plugin", "install", source, HELM_MLOPS_PYTHON=None, PATH=str(bin_dir))
    assert bad.returncode != 0
    (error,) = errors(bad)
    assert "no Python 3.11 or newer found" in error and "HELM_MLOPS_PYTHON" in error, error
    ok(home.helm("helm4", "plugin", "uninstall", "mlops"))

    # The first that is 3.11 or newer is taken (the hook then stops at the missing wheel folder).
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    found = home.helm(
        "helm4",
        "plugin",
        "install",
        source,
        HELM_MLOPS_PYTHON=None,
        PATH=str(bin_dir),
        HELM_MLOPS_WHEELS=str(tmp_path / "nowhere"),
    )
    assert f"helm-mlops: install: Python {sys.version.split()[0]} ({bin_dir}/python3)" in found.stdout
    assert errors(found) == [f"helm-mlops: error: HELM_MLOPS_WHEELS={tmp_path}/nowhere is not a directory"]
    ok(home.helm("helm4", "plugin", "uninstall", "mlops"))
    assert not list(source.glob(".plugin-venv*")) and [p.name for p in home.tmp.iterdir()] == []
