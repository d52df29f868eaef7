"""docs/publishing.md and the README's Publishing section say only what exists: the GitHub Actions
workflow in the guide parses and runs on `v*` tags with the permissions it needs, every flag a
`helm-mlops publish` command there uses is one the real CLI's `publish --help` lists (and every option
it lists is documented), and every `make TARGET` named is a target of the Makefile. Fast: no network,
no helm."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
import yaml

from tests.support.charts import REPO

GUIDE = REPO / "docs" / "publishing.md"
WORKFLOW_MARK = "# .github/workflows/release.yml"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def readme_publishing() -> str:
    """The README's `## Publishing` section, up to the next `## ` heading."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Publishing\n(.*?)(?=^## )", text, re.S | re.M)
    assert match is not None, "README.md has no `## Publishing` section"
    return match.group(1)


def documents() -> dict[str, str]:
    return {"docs/publishing.md": GUIDE.read_text(), "README.md#publishing": readme_publishing()}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each ``` block."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)]


def code(text: str) -> list[str]:
    """What a reader would type: the fenced blocks and the inline `code` spans outside them."""
    blocks = [body for _, body in fenced_blocks(text)]
    prose = re.sub(r"^```\w*\n.*?^```$", "", text, flags=re.S | re.M)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


def publish_commands(snippet: str) -> list[str]:
    """Each `helm-mlops publish` / `helm mlops publish` command in SNIPPET, from the command word to the
    end of the shell command (backslash continuations joined; a pipe, `;`, `&&`, `<`, `>` or a comment
    ends it)."""
    joined = re.sub(r"\\\n\s*", " ", snippet)
    commands = []
    for match in re.finditer(r"helm[- ]mlops publish\b", joined):
        rest = joined[match.end() :].split("\n", 1)[0]
        commands.append(re.split(r"\s(?:\||;|&&|\|\||<|>|#)(?:\s|$)", rest, maxsplit=1)[0])
    return commands


@cache
def publish_options() -> frozenset[str]:
    """The long options of the real `helm-mlops publish --help` (the checkout's code, run as a user
    runs it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "generator", "publish", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    _, _, options = proc.stdout.partition("\nOptions:\n")
    found = {m.group(1) for m in re.finditer(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", options, re.M)}
    assert {"--repo-dir", "--oci", "--sign", "--help"} <= found, proc.stdout
    return frozenset(found)


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def workflow() -> dict[Any, Any]:
    blocks = [body for lang, body in fenced_blocks(GUIDE.read_text()) if body.startswith(WORKFLOW_MARK)]
    assert len(blocks) == 1, f"docs/publishing.md needs exactly one ```yaml block starting {WORKFLOW_MARK!r}"
    data = yaml.safe_load(blocks[0])
    assert isinstance(data, dict)
    return data


def triggers(data: dict[Any, Any]) -> Any:
    """`on:` (YAML 1.1, which yaml.safe_load reads, makes the key `on` the boolean True)."""
    return data["on"] if "on" in data else data.get(True)


def run_scripts(data: dict[Any, Any]) -> list[str]:
    return [step["run"] for job in data["jobs"].values() for step in job["steps"] if "run" in step]


def test_every_yaml_block_in_the_guide_parses() -> None:
    blocks = [body for lang, body in fenced_blocks(GUIDE.read_text()) if lang in ("yaml", "yml")]
    assert len(blocks) >= 2, "the release workflow and the pull-request check"
    for body in blocks:
        assert isinstance(yaml.safe_load(body), dict), body[:200]


def test_the_release_workflow_runs_on_version_tags_with_the_permissions_it_needs() -> None:
    data = workflow()
    assert triggers(data) == {"push": {"tags": ["v*"]}}
    assert data["permissions"] == {"contents": "write", "packages": "write"}
    jobs = data["jobs"]
    assert set(jobs) == {"test", "publish"} and jobs["publish"]["needs"] == "test"
    for name, job in jobs.items():
        assert job["steps"], name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)


def test_the_release_workflow_tests_publishes_and_uploads_as_the_guide_says() -> None:
    data = workflow()
    test_runs = [step["run"] for step in data["jobs"]["test"]["steps"] if "run" in step]
    assert "make test" in [run.strip() for run in test_runs], "the README's test command"
    scripts = "\n".join(run_scripts(data))
    (command,) = publish_commands(scripts)
    assert 'echo "${{ secrets.GITHUB_TOKEN }}" | .venv/bin/helm-mlops publish' in scripts
    for flag in ("--repo-dir", "--url", "--oci", "--username", "--password-stdin", "--sign", "--key",
                 "--keyring", "--passphrase-file"):  # fmt: skip
        assert flag in FLAG.findall(command), (flag, command)
    assert "oci://ghcr.io/" in command and "../gh-pages/" in command
    assert "make plugin-package SIGN_KEY=" in scripts and "gh release upload" in scripts
    # The secrets reach commands only through files and standard input, never as arguments.
    for script in run_scripts(data):
        for line in script.splitlines():
            if "secrets." in line:
                assert line.strip().startswith("echo ") and line.count("|") == 1, line
    imports = [step for step in data["jobs"]["publish"]["steps"] if "GPG_PRIVATE_KEY" in step.get("env", {})]
    assert len(imports) == 1
    assert imports[0]["env"]["GPG_PRIVATE_KEY"] == "${{ secrets.GPG_PRIVATE_KEY }}"
    assert '"$GPG_PRIVATE_KEY" | gpg --batch --import' in imports[0]["run"]
    assert not re.search(r"gpg [^|\n]*\$GPG_", imports[0]["run"]), "a secret on gpg's command line"


@pytest.mark.parametrize("where", ["docs/publishing.md", "README.md#publishing"])
def test_every_publish_flag_the_docs_use_exists(where: str) -> None:
    commands = [c for snippet in code(documents()[where]) for c in publish_commands(snippet)]
    assert len(commands) >= 4, commands
    known = publish_options()
    unknown = sorted({(f, c) for c in commands for f in FLAG.findall(c) if f not in known})
    assert not unknown, f"{where} uses flags `helm-mlops publish --help` does not list: {unknown}"


def test_every_publish_option_is_documented_in_the_guide() -> None:
    text = GUIDE.read_text()
    missing = sorted(o for o in publish_options() - {"--help"} if not re.search(rf"`{o}[ `=]", text))
    assert not missing, f"docs/publishing.md does not document {missing}"


@pytest.mark.parametrize("where", ["docs/publishing.md", "README.md#publishing"])
def test_every_make_target_named_exists(where: str) -> None:
    named = {
        m.group(1)
        for snippet in code(documents()[where])
        for m in re.finditer(r"(?:^\s*|run:\s*|[;&|(]\s*)make ([a-z][a-z0-9-]*)", snippet, re.M)
    }
    assert named, f"{where} names no make target"
    assert not named - makefile_targets(), f"{where} names make targets the Makefile lacks"


def test_the_readme_links_the_guide() -> None:
    assert "(docs/publishing.md)" in readme_publishing()
    assert "docs/publishing.md" in (REPO / "README.md").read_text().split("## Publishing")[0]
