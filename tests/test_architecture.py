"""Imports flow one way: cli -> workflows -> pure modules and adapters -> errors/paths.

- Nothing imports `generator.cli` but the entry point `generator.__main__`.
- Base (`errors`, `paths`, the package itself) imports only base.
- Pure modules (`values`, `yamlio`, `versions`, `charts.*`) import base and pure modules: no adapter,
  no workflow.
- Adapters (`helm.*`, `kube.*`, `github`) import base and pure modules and their own package: never a
  workflow and never another adapter.
- Workflows (every other top-level module: training, sweep, runtime, demo, ...) import anything but cli.

Imports inside functions count too (the CLI imports lazily)."""

from __future__ import annotations

import ast

from tests.support.charts import REPO

PACKAGE = REPO / "generator"
BASE = {"generator", "generator.errors", "generator.paths"}
PURE_PREFIXES = (
    "generator.values",
    "generator.yamlio",
    "generator.charts",
    "generator.answers",
    "generator.answers_schema",
    "generator.components",
    "generator.stack",
    "generator.seed",
    "generator.sweep",
    "generator.versions",
)
ADAPTERS = ("generator.helm", "generator.kube", "generator.github")


def layer(module: str) -> str:
    if module == "generator.__main__":  # `python -m generator`: the entry point, like the console script
        return "entry"
    if module == "generator.cli":
        return "cli"
    if module in BASE:
        return "base"
    if any(module == p or module.startswith(p + ".") for p in PURE_PREFIXES):
        return "pure"
    if any(module == p or module.startswith(p + ".") for p in ADAPTERS):
        return "adapter:" + module.split(".")[1]
    return "workflow"


def imports(module: str, source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("generator")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("generator")
        ):
            found.add(node.module)
            # `from generator import sweep` imports the module generator.sweep
            found |= {f"{node.module}.{a.name}" for a in node.names if node.module == "generator"}
    found.discard(module)
    return found


ALLOWED = {
    "base": {"base"},
    "pure": {"base", "pure"},
    "workflow": {"base", "pure", "workflow", "adapter:helm", "adapter:kube", "adapter:github"},
    "cli": {"base", "pure", "workflow", "adapter:helm", "adapter:kube", "adapter:github"},
    "entry": {"cli"},
}


def violations(modules: dict[str, str], known: set[str]) -> list[str]:
    out = []
    for module, source in sorted(modules.items()):
        mine = layer(module)
        allowed = ALLOWED.get(mine, {"base", "pure", mine})
        for target in sorted(imports(module, source)):
            if target not in known:  # `from generator import __version__` and the like
                target = target.rsplit(".", 1)[0]
            theirs = layer(target)
            if theirs not in allowed:
                out.append(f"{module} ({mine}) imports {target} ({theirs})")
    return out


def package_modules() -> dict[str, str]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path.read_text()
    return out


def test_imports_flow_one_way() -> None:
    modules = package_modules()
    assert {
        "generator.cli",
        "generator.helm.adapter",
        "generator.kube.client",
        "generator.values",
        "generator.versions",
        "generator.github",
    } <= set(modules)
    assert layer("generator.versions") == "pure" and layer("generator.github") == "adapter:github"
    assert violations(modules, set(modules)) == []


def test_the_rule_catches_reversed_arrows() -> None:
    modules = {
        "generator.values": "from generator.helm.adapter import Helm\n",  # pure -> adapter
        # adapter -> adapter, from inside a function
        "generator.helm.adapter": "def f():\n    from generator.kube.client import Kube\n",
        "generator.kube.status": "import generator.training\n",  # adapter -> workflow
        # pure -> adapter, from inside a function
        "generator.versions": "def f():\n    from generator.github import GitHubReleases\n",
        "generator.github": "from generator.versions import Fetched\n",  # adapter -> pure: fine
        "generator.training": "from generator import cli\n",  # anything -> cli
        "generator.errors": "from generator.values import deep_merge\n",  # base -> pure
        "generator.demo": "from generator.helm.adapter import Helm\nfrom generator import yamlio\n",  # fine
        "generator.cli": "from generator import yamlio\n",
        "generator.yamlio": "",
        "generator.helm.binary": "from generator.paths import tools_bin\n",  # fine
        "generator.paths": "",
        "generator.kube.client": "",
    }
    found = violations(modules, set(modules))
    assert found == [
        "generator.errors (base) imports generator.values (pure)",
        "generator.helm.adapter (adapter:helm) imports generator.kube.client (adapter:kube)",
        "generator.kube.status (adapter:kube) imports generator.training (workflow)",
        "generator.training (workflow) imports generator.cli (cli)",
        "generator.values (pure) imports generator.helm.adapter (adapter:helm)",
        "generator.versions (pure) imports generator.github (adapter:github)",
    ]
