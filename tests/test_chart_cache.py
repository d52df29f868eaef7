"""generate's chart cache: a chart is read and packaged once per process while its files are unchanged,
and again as soon as any of them changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generator import generate
from generator.charts import package as package_module
from generator.paths import charts_root


@pytest.fixture
def charts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "charts"
    for name in generate.CHARTS:
        shutil.copytree(charts_root() / name, root / name)
    monkeypatch.setenv("HELM_MLOPS_CHARTS", str(root))
    return root


@pytest.fixture
def packaged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = package_module.package

    def counting(chart: Path, name: str) -> bytes:
        calls.append(name)
        return real(chart, name)

    monkeypatch.setattr(package_module, "package", counting)
    return calls


def test_unchanged_charts_are_packaged_once(charts: Path, packaged: list[str]) -> None:
    first = generate.chart_refs("")
    second = generate.chart_refs("")
    assert sorted(packaged) == sorted(generate.CHARTS)
    assert first == second
    assert all(ref.archive for ref in second.values())
    # Referenced from a repository: no archive, and nothing packaged for it.
    remote = generate.chart_refs("https://charts.example.com")
    assert all(ref.archive is None for ref in remote.values())
    assert sorted(packaged) == sorted(generate.CHARTS)


def test_a_changed_file_is_read_and_packaged_again(charts: Path, packaged: list[str]) -> None:
    before = generate.chart_refs("")["mlflow"]
    values = charts / "mlflow" / "values.yaml"
    values.write_text(values.read_text() + "\n# -- A key added after the first run.\naddedLater: 1\n")
    after = generate.chart_refs("")["mlflow"]
    assert "addedLater" in after.value_keys and "addedLater" not in before.value_keys
    assert after.archive != before.archive
    assert packaged.count("mlflow") == 2
    # A new file (same values.yaml) changes the archive too.
    (charts / "mlflow" / "templates" / "extra.yaml").write_text("# nothing\n")
    assert generate.chart_refs("")["mlflow"].archive != after.archive
    assert packaged.count("mlflow") == 3
