"""The built wheel works outside the checkout: it carries the charts, the presets and the chart files
the CLI imports (files/sweep.py, files/hm_runtime), and finds them from package data.

The wheel is built with pip (build isolation, as a user's `pip wheel .` or `python -m build` does) and
installed without dependencies into a fresh venv in a temporary directory; the venv borrows the test
venv's third-party packages through a .pth file (only site directories process .pth files, so the
checkout's editable install does not come along). Every command runs with the temporary directory as
its working directory and no path into the checkout except the pinned helm on PATH."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.charts import REPO
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.real


class Installed:
    def __init__(self, root: Path, exe: Path, site_packages: Path, env: dict[str, str]) -> None:
        self.root, self.exe, self.site_packages, self.env = root, exe, site_packages, env

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.exe), *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("helm_mlops-*.whl")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site_packages / "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # Without the checkout on PYTHONPATH: the build leaves helm_mlops.egg-info there, which pip would
    # take for this wheel already installed, and install nothing.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    work = root / "work"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "KUBECONFIG", "HELM_MLOPS_HELM", "HELM_MLOPS_CHARTS", "VIRTUAL_ENV")
    }
    env["HOME"] = str(root / "home")  # no ~/.kube/config
    env["PATH"] = os.pathsep.join([str(env_dir / "bin"), str(REPO / ".tools" / "bin"), "/usr/bin", "/bin"])
    yield Installed(work, env_dir / "bin" / "helm-mlops", site_packages, env)


def test_the_wheel_runs_from_package_data(installed: Installed) -> None:
    assert "train" in installed.run("--help", check=True).stdout
    # Ask the installed package where it reads from.
    probe = subprocess.run(
        [
            str(installed.exe.parent / "python"),
            "-c",
            "import generator, generator.paths as p; print(generator.__file__); print(p.charts_root()); "
            "print(p.checkout_root()); print(generator.__version__)",
        ],
        cwd=installed.root,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert probe[0].startswith(str(installed.site_packages)), probe
    assert probe[1] == str(installed.site_packages / "generator" / "_data" / "charts"), probe
    assert probe[2] == "None"
    plugin_version = next(
        line.split(":", 1)[1].strip()
        for line in (REPO / "plugin.yaml").read_text().splitlines()
        if line.startswith("version:")
    )
    assert probe[3] == plugin_version


def test_docs_check_of_an_installed_chart(installed: Installed) -> None:
    chart = installed.site_packages / "generator" / "_data" / "charts" / "training-job"
    result = installed.run("docs", "--check", str(chart), check=True)
    assert f"{chart}/values.schema.json: up to date" in result.stdout


def test_train_render_to_from_the_wheel(installed: Installed) -> None:
    script = installed.root / "train.py"
    script.write_text("print('hello')\n")
    sweep = installed.root / "sweep.yaml"
    sweep.write_text("strategy: grid\nparameters:\n  - {name: lr, type: categorical, values: [0.1, 0.01]}\n")
    out = installed.root / "rendered"
    result = installed.run(
        "train", "t", "--script", str(script), "--sweep", str(sweep), "--render-to", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "sweep: 2 trials (grid)" in result.stdout
    manifests = "".join(p.read_text() for p in out.glob("*.yaml"))
    assert "print('hello')" in manifests and "kind: Job" in manifests
    plan = installed.run("sweep", "plan", "-f", str(sweep), check=True)
    assert plan.stdout.split() == ["0", "lr=0.1", "1", "lr=0.01"]


def test_demo_no_install_and_the_cluster_needs_a_checkout(installed: Installed) -> None:
    out = installed.root / "stack"
    result = installed.run("demo", "--no-install", "-o", str(out), check=True)
    assert "generated the full-stack preset" in result.stdout and "lint: helm lint --strict" in result.stdout
    answers = (out / "answers.yaml").read_text()
    assert "name: full-stack" in answers  # the preset came from the wheel's package data
    needs = installed.run("demo", "-o", str(out))  # no kubeconfig: the embedded cluster, which needs hack/
    assert needs.returncode == 2, needs.stdout + needs.stderr
    assert "Traceback" not in needs.stderr
    assert "needs a source checkout" in needs.stderr and "--kubeconfig" in needs.stderr


def test_runtime_serve_of_an_onnx_model_from_the_wheel(installed: Installed) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    path = installed.root / "iris.onnx"
    path.write_bytes(to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    port = free_port()
    argv = [str(installed.exe), "runtime", "serve", "--model", str(path), "--port", str(port)]
    log = installed.root / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with serve(argv, log, url + "/v2/health/ready", timeout=120, cwd=installed.root, env=installed.env):
        request = urllib.request.Request(
            url + "/predict", data=json.dumps({"input": x[:3].tolist()}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            got = json.loads(response.read())["prediction"]
    # Nothing on the server's paths leads into the checkout: the runtime it ran is the wheel's copy.
    assert got == model.predict(x[:3]).tolist()


def test_another_charts_root(installed: Installed, tmp_path: Path) -> None:
    """HELM_MLOPS_CHARTS points every command at another charts folder (a fork, a mirror), whatever
    that folder is called; an empty one is named in the error."""
    import shutil

    fork = tmp_path / "our-charts"
    shutil.copytree(REPO / "charts", fork)
    env = {**installed.env, "HELM_MLOPS_CHARTS": str(fork)}
    checked = subprocess.run(
        [str(installed.exe), "docs", "--check"], cwd=installed.root, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert f"{fork}/training-job/values.schema.json: up to date" in checked.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    (installed.root / "t.py").write_text("print('t')\n")
    refused = subprocess.run(
        [str(installed.exe), "train", "r", "--script", "t.py", "--render-to", "out"],
        cwd=installed.root,
        env={**installed.env, "HELM_MLOPS_CHARTS": str(empty)},
        capture_output=True,
        text=True,
    )
    assert (
        refused.returncode == 2
        and "HELM_MLOPS_CHARTS:" in refused.stderr
        and "holds no charts" in refused.stderr
    )


def test_versions_falls_back_to_the_bundled_list_of_the_wheel(installed: Installed, tmp_path: Path) -> None:
    """The wheel ships generator/data/versions.json: offline with no cache, `versions` lists it."""
    shipped = installed.site_packages / "generator" / "data" / "versions.json"
    assert shipped.read_bytes() == (REPO / "generator" / "data" / "versions.json").read_bytes()
    env = {k: v for k, v in installed.env.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    env |= {"GITHUB_API_URL": f"http://127.0.0.1:{free_port()}", "HELM_MLOPS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(installed.exe), "versions", "mlflow", "--all", "-o", "json"],
        cwd=installed.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "source: bundled list" in result.stderr
    tags = [r["tag_name"] for r in json.loads(shipped.read_text())["projects"]["mlflow"]]
    assert sorted(item["tag"] for item in json.loads(result.stdout)) == sorted(tags)
