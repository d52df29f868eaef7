"""The helm-mlops command line. It only parses arguments and calls into the package; errors map to
exit codes in main(). Heavy modules are imported inside the commands so `--help` stays fast."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from generator import __version__
from generator.errors import HelmMlopsError
from generator.versions import PROJECT_NAMES

OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def _print_rows(rows: list[dict[str, Any]], output: str, columns: list[str]) -> None:
    """A listing as JSON, YAML, a rich table on a terminal, or plain aligned text when piped."""
    if output == "json":
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    if output == "yaml":
        from generator import yamlio

        click.echo(yamlio.dump(rows), nl=False)
        return
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.table import Table

        table = Table(*[c.upper() for c in columns], box=None, header_style="bold")
        for row in rows:
            table.add_row(*[str(row.get(c, "")) for c in columns])
        Console().print(table)
        return
    widths = [max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        click.echo(
            "  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
        )


SET_OPTIONS = [
    click.option(
        "--set",
        "set_values",
        multiple=True,
        help="Set an answer, e.g. --set mlflow.replicas=2 (helm's rules).",
    ),
    click.option("--set-string", multiple=True, help="Set answers as strings (helm's --set-string)."),
    click.option(
        "--set-json", multiple=True, help="Set answers from JSON, e.g. --set-json 'training.jobs=[...]'."
    ),
    click.option("--set-file", multiple=True, help="Set answers from files' contents."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _set_options(func: F) -> F:
    for option in reversed(SET_OPTIONS):
        func = option(func)
    return func


def _release_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """RELEASE is input: helm's rule is checked as the argument is parsed, before anything runs."""
    from generator.values import check_release_name

    if value is not None:
        check_release_name(value)
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="helm-mlops")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Helm charts and lifecycle commands for an ML platform: MLflow, training jobs, inference."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("chart_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Fail (exit 4) instead of writing when a README is stale.")
def docs(chart_dirs: tuple[Path, ...], check: bool) -> None:
    """Regenerate each chart's README values table and values.schema.json from values.yaml, and its
    Grafana dashboard (files/dashboards/) from generator/dashboards.py."""
    from generator.charts.docs import undocumented_keys, update_readme
    from generator.charts.schema import update_schema
    from generator.dashboards import DASHBOARDS, dashboard_file, update_dashboard
    from generator.errors import UserError
    from generator.paths import chart_dirs as all_charts
    from generator.yamlio import load_mapping

    charts = list(chart_dirs) or all_charts()
    if not charts:
        raise UserError(
            "no charts to document", field="CHART_DIR", hint="name chart folders, or set HELM_MLOPS_CHARTS"
        )
    for chart in charts:
        if not (chart / "values.yaml").is_file() or not (chart / "Chart.yaml").is_file():
            raise UserError(
                f"{chart} is not a chart (no Chart.yaml and values.yaml)",
                field="CHART_DIR",
                hint="name a chart folder",
            )
        missing = undocumented_keys(chart / "values.yaml")
        if missing:
            raise UserError(
                f"{len(missing)} undocumented value(s): {', '.join(missing)}",
                field=f"{chart}/values.yaml",
                hint="add a `# -- description` comment above each key",
            )
        for name, changed in (
            ("values.schema.json", update_schema(chart, check=check)),
            ("README.md", update_readme(chart, check=check)),
        ):
            click.echo(f"{chart}/{name}: {'updated' if changed else 'up to date'}")
        chart_name = str(load_mapping(chart / "Chart.yaml").get("name") or chart.name)
        if chart_name in DASHBOARDS:
            written = update_dashboard(chart, chart_name, check=check)
            click.echo(f"{dashboard_file(chart, chart_name)}: {'updated' if written else 'up to date'}")
    if not chart_dirs:
        from generator.charts.docs import update_answers_docs

        for path, changed in update_answers_docs(check=check):
            click.echo(f"{path}: {'updated' if changed else 'up to date'}")


@cli.command()
@click.option("--preset", default="full-stack", show_default=True, help="Preset to generate and install.")
@click.option(
    "-o",
    "--output-dir",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the stack (default: ./helm-mlops-demo/<preset>).",
)
@click.option("--set", "set_values", multiple=True, help="Change an answer, e.g. --set mlflow.replicas=1.")
@click.option(
    "--helm",
    "helm_bin",
    envvar="HELM_MLOPS_HELM",
    help="helm binary (default: $HELM_MLOPS_HELM, a checkout's .tools/bin/helm, then helm on PATH).",
)
@click.option("--install/--no-install", default=True, show_default=True, help="Install after linting.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to install into (default: $KUBECONFIG, ~/.kube/config, else the embedded local cluster).",
)
@click.option("-n", "--namespace", help="Namespace to install into (default: the preset's).")
@click.option("--kube-context", envvar="HELM_KUBECONTEXT", help="Context of the kubeconfig to use.")
def demo(
    preset: str,
    out: Path | None,
    set_values: tuple[str, ...],
    helm_bin: str | None,
    install: bool,
    kubeconfig: Path | None,
    namespace: str | None,
    kube_context: str | None,
) -> None:
    """Generate a preset's stack, lint it, install it and show how to reach it."""
    from generator.demo import run_demo

    lines = run_demo(
        preset,
        out,
        helm_bin,
        install=install,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        namespace=namespace,
        sets=[("--set", s) for s in set_values],
    )
    for line in lines:
        click.echo(line)


KUBECONFIG_OPTION = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster (default: $KUBECONFIG, ~/.kube/config, else the embedded local cluster).",
)
NAMESPACE_OPTION = click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    envvar="HELM_NAMESPACE",  # `helm -n NS mlops ...` hands it over
    help="Namespace (as a helm plugin: helm's -n).",
)
KUBE_CONTEXT_OPTION = click.option(
    "--kube-context",
    envvar="HELM_KUBECONTEXT",  # `helm --kube-context X mlops ...` hands it over
    help="Context of the kubeconfig to use (default: its current context).",
)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("release", callback=_release_name)
@click.option("--script", type=click.Path(path_type=Path), help="Training script (.py) to ship and run.")
@click.option(
    "--command", "command", multiple=True, help="Run this from your image instead (repeat per argv item)."
)
@click.option("--arg", "script_args", multiple=True, help="Argument for the script or command (repeatable).")
@click.option(
    "-r", "--requirement", "requirements", multiple=True, help="pip requirement to install at start."
)
@click.option(
    "--requirements-file", type=click.Path(path_type=Path), help="requirements.txt to install at start."
)
@click.option("--index-url", help="Package index (mirror) for the requirements.")
@click.option(
    "--image", help="Training image, e.g. python:3.12-slim or your own (default: python:3.11-slim)."
)
@click.option("--cpu", help="CPU request = limit per pod, e.g. 2 or 500m.")
@click.option("--memory", help="Memory request = limit per pod, e.g. 8Gi.")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per pod (nvidia.com/gpu).")
@click.option("--nodes", type=click.IntRange(min=1), help="Distributed: number of pods (torchrun nodes).")
@click.option("--nproc-per-node", type=click.IntRange(min=1), help="Distributed: processes per pod.")
@click.option(
    "--operator",
    type=click.Choice(["none", "pytorchjob", "trainjob"]),
    help="Distributed: Indexed Job (none) or a Kubeflow PyTorchJob/TrainJob.",
)
@click.option(
    "--sweep", "sweep_file", type=click.Path(path_type=Path), help="YAML file with the sweep values."
)
@click.option("--tracking-uri", help="MLflow tracking URI.")
@click.option("--experiment", help="MLflow experiment name.")
@click.option("--schedule", help="Cron schedule: periodic retraining as a CronJob.")
@click.option(
    "-f", "--values", "values_files", multiple=True, type=click.Path(path_type=Path), help="Values file."
)
@click.option(
    "--set",
    "set_values",
    multiple=True,
    help="Set chart values (helm's rules), e.g. --set job.backoffLimit=0.",
)
@click.option("--set-string", multiple=True, help="Set chart values as strings (helm's --set-string).")
@click.option("--set-json", multiple=True, help="Set chart values from JSON, e.g. --set-json 'env=[...]'.")
@click.option(
    "--set-file", multiple=True, help="Set chart values from files, e.g. --set-file script.content=t.py."
)
@click.option(
    "--render-to", type=click.Path(file_okay=False, path_type=Path), help="Write manifests, do not install."
)
@click.option(
    "--skip-preflight",
    is_flag=True,
    help="Install even when the cluster has no node with the GPUs asked for.",
)
@click.option(
    "--helm",
    "helm_bin",
    envvar="HELM_MLOPS_HELM",
    help="helm binary (default: $HELM_MLOPS_HELM, a checkout's .tools/bin/helm, then helm on PATH).",
)
@KUBECONFIG_OPTION
@KUBE_CONTEXT_OPTION
@NAMESPACE_OPTION
def train(
    release: str,
    script: Path | None,
    command: tuple[str, ...],
    script_args: tuple[str, ...],
    requirements: tuple[str, ...],
    requirements_file: Path | None,
    index_url: str | None,
    image: str | None,
    cpu: str | None,
    memory: str | None,
    gpus: int | None,
    nodes: int | None,
    nproc_per_node: int | None,
    operator: str | None,
    sweep_file: Path | None,
    tracking_uri: str | None,
    experiment: str | None,
    schedule: str | None,
    values_files: tuple[Path, ...],
    set_values: tuple[str, ...],
    set_string: tuple[str, ...],
    set_json: tuple[str, ...],
    set_file: tuple[str, ...],
    render_to: Path | None,
    skip_preflight: bool,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str,
) -> None:
    """Submit a training job: a script (or your image's command), optionally distributed or a sweep.

    Again for the same release: a new run, even with the same script (it sets the chart's `rerun`;
    --set rerun=... chooses the value). Install does not wait for training to finish."""
    from generator.training import TrainRequest, run_train
    from generator.values import helm_order

    req = TrainRequest(
        release=release,
        script=script,
        command=command,
        script_args=script_args,
        requirements=requirements,
        requirements_file=requirements_file,
        index_url=index_url,
        image=image,
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        nodes=nodes,
        nproc_per_node=nproc_per_node,
        operator=operator,
        sweep_file=sweep_file,
        tracking_uri=tracking_uri,
        experiment=experiment,
        schedule=schedule,
        values_files=values_files,
        sets=tuple(helm_order(set_json, set_values, set_string, set_file)),
    )
    lines = run_train(
        req,
        helm_bin,
        namespace=namespace,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        render_to=render_to,
        skip_preflight=skip_preflight,
    )
    for line in lines:
        click.echo(line)


RELEASE_NAMESPACE_OPTION = click.option(
    "-n",
    "--namespace",
    envvar="HELM_NAMESPACE",  # `helm -n NS mlops ...` hands it over
    help="Namespace (default: the kubeconfig context's, else default; as a helm plugin: helm's -n).",
)
HELM_OPTION = click.option(
    "--helm",
    "helm_bin",
    envvar="HELM_MLOPS_HELM",
    help="helm binary (default: the helm running the plugin, .tools/bin/helm of a checkout, helm on PATH).",
)


def _cluster_options(func: F) -> F:
    for option in reversed([KUBECONFIG_OPTION, KUBE_CONTEXT_OPTION, RELEASE_NAMESPACE_OPTION, HELM_OPTION]):
        func = option(func)
    return func


def _connect(
    helm_bin: str | None, kubeconfig: Path | None, kube_context: str | None, namespace: str | None
) -> Any:
    from generator.lifecycle import connect

    return connect(helm_bin, kubeconfig, kube_context, namespace)


@cli.command()
@click.argument("release", callback=_release_name)
@click.argument("component")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming, including pods that start later.")
@click.option(
    "--all-pods", is_flag=True, help="Every pod (all ranks, retries, trials, replicas), not just one."
)
@_cluster_options
def logs(
    release: str,
    component: str,
    follow: bool,
    all_pods: bool,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Stream the logs of a training job or an inference service (or MLflow), each line prefixed with
    its pod (and rank).

    COMPONENT is a training job or inference service as `helm-mlops status RELEASE` lists it, or its
    name in the stack's answers (e.g. train-iris, iris; `mlflow` for MLflow's server), or `training-job`
    for a release of `helm-mlops train`."""
    from generator.kube.logs import follower

    c = _connect(helm_bin, kubeconfig, kube_context, namespace)
    for line in follower(c.kube, c.namespace, release, component, follow=follow, all_pods=all_pods).lines():
        click.echo(line)


@cli.command()
@click.argument("release", callback=_release_name)
@_cluster_options
@click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True
)
@click.option("-w", "--watch", is_flag=True, help="Refresh every 2 seconds until Ctrl-C.")
def status(
    release: str,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
    output: str,
    watch: bool,
) -> None:
    """A release: its revision and chart, then MLflow (version, stores, tracking UI), training jobs
    (phase, pods, duration, MLflow runs) and inference services (replicas, phase, endpoints)."""
    from generator.lifecycle import status_data, status_lines

    c = _connect(helm_bin, kubeconfig, kube_context, namespace)

    def show() -> str:
        data = status_data(c, release)
        if output == "json":
            import json

            return json.dumps(data, indent=2) + "\n"
        if output == "yaml":
            from generator import yamlio

            return yamlio.dump(data)
        return "\n".join(status_lines(data)) + "\n"

    if not watch:
        click.echo(show(), nl=False)
        return
    import time
    from datetime import UTC, datetime

    from generator.errors import UserError

    try:
        while True:
            try:
                text = show()
            except UserError as exc:  # uninstalled while watched
                click.echo(f"watch ended: {str(exc).splitlines()[0]}")
                return
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if sys.stdout.isatty():
                click.clear()
                click.echo(f"every 2s: status {release} (Ctrl-C to stop)  {stamp}\n")
            else:
                click.echo(f"--- {stamp}")
            click.echo(text, nl=False)
            time.sleep(2)
    except KeyboardInterrupt:  # the way to stop watching: not an error
        return


def _progress() -> tuple[Any, Any]:
    """A live display of what the install waits for, on a terminal only (stderr)."""
    import contextlib

    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return None, contextlib.nullcontext()
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    live = Live(Text("waiting for the cluster..."), console=Console(stderr=True), transient=True)

    def update(lines: list[str]) -> None:
        shown = [f"  {line}" for line in lines[:12]] + (
            [f"  ... and {len(lines) - 12} more"] if len(lines) > 12 else []
        )
        live.update(
            Text("\n".join(["not ready yet:", *shown]) if lines else "all ready; helm is finishing...")
        )

    return update, live


def _install(
    release: str,
    stack_dir: Path | None,
    preset: str | None,
    answers_file: str | None,
    sets: list[tuple[str, str]],
    versions: tuple[str, ...],
    timeout: str,
    skip_preflight: bool,
    wait: bool,
    cluster: tuple[str | None, Path | None, str | None, str | None],
    *,
    upgrade: bool,
) -> None:
    from generator.lifecycle import InstallRequest, Source, install

    c = _connect(*cluster)
    req = InstallRequest(
        release,
        Source(stack_dir, preset, answers_file, sets, list(versions)),
        timeout=timeout,
        skip_preflight=skip_preflight,
        wait=wait,
    )
    update, live = _progress()
    with live:
        for line in install(c, req, upgrade=upgrade, progress=update):
            click.echo(line)


INSTALL_OPTIONS = [
    click.argument("release", callback=_release_name),
    click.argument("stack_dir", required=False, type=click.Path(file_okay=False, path_type=Path)),
    click.option("--preset", help="Install a preset (see `helm-mlops presets`); the stack is named RELEASE."),
    click.option("--answers", "answers_file", help="Install from an answers file (- for standard input)."),
    *SET_OPTIONS,
    click.option(
        "--version",
        "versions",
        multiple=True,
        help="Move a project's version: mlflow=3.17.2 or mlserver=1.7.1 (checked against its releases).",
    ),
    click.option("--timeout", default="10m", show_default=True, help="How long helm waits (Go duration)."),
    click.option(
        "--skip-preflight", is_flag=True, help="Do not check the cluster first (CRDs, GPUs, classes...)."
    ),
    click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the stack is ready."),
]


def _install_options(func: F) -> F:
    for option in reversed(INSTALL_OPTIONS):
        func = option(func)
    return _cluster_options(func)


def _release_command(name: str, upgrade: bool, doc: str) -> Any:
    """install and upgrade: the same sources and options, one command each."""

    @cli.command(name, help=doc)
    @_install_options
    def command(
        release: str,
        stack_dir: Path | None,
        preset: str | None,
        answers_file: str | None,
        set_values: tuple[str, ...],
        set_string: tuple[str, ...],
        set_json: tuple[str, ...],
        set_file: tuple[str, ...],
        versions: tuple[str, ...],
        timeout: str,
        skip_preflight: bool,
        wait: bool,
        helm_bin: str | None,
        kubeconfig: Path | None,
        kube_context: str | None,
        namespace: str | None,
    ) -> None:
        from generator.values import helm_order

        sets = list(helm_order(set_json, set_values, set_string, set_file))
        _install(release, stack_dir, preset, answers_file, sets, versions, timeout, skip_preflight, wait,
                 (helm_bin, kubeconfig, kube_context, namespace), upgrade=upgrade)  # fmt: skip

    return command


install_cmd = _release_command(
    "install",
    False,
    """Install a stack as RELEASE: a generated STACK_DIR, --preset NAME or --answers FILE.

    Checks the cluster first (preflight), waits until the stack is ready while showing what it waits
    for, and rolls back when it fails (exit 1, with the failing pods' events and logs).""",
)
upgrade_cmd = _release_command(
    "upgrade",
    True,
    """Upgrade RELEASE to a stack (same sources as install); with STACK_DIR and --set or --version,
    the directory is regenerated first. Rolls back when the upgrade fails.""",
)


@cli.command()
@click.argument("release", callback=_release_name)
@click.argument("revision", required=False, type=click.IntRange(min=1))
@click.option("--timeout", default="10m", show_default=True, help="How long helm waits.")
@_cluster_options
def rollback(
    release: str,
    revision: int | None,
    timeout: str,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Roll RELEASE back to REVISION (default: the one before the current)."""
    from generator.lifecycle import rollback as run

    for line in run(_connect(helm_bin, kubeconfig, kube_context, namespace), release, revision, timeout):
        click.echo(line)


@cli.command()
@click.argument("release", callback=_release_name)
@click.option(
    "--delete-data", is_flag=True, help="Also delete what is kept on purpose (volumes, credentials)."
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting data.")
@click.option("--timeout", default="10m", show_default=True, help="How long helm waits.")
@_cluster_options
def uninstall(
    release: str,
    delete_data: bool,
    yes: bool,
    timeout: str,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Uninstall RELEASE; lists what the charts keep on purpose (data volumes), which --delete-data
    deletes too after a confirmation."""
    from generator.errors import UserError
    from generator.lifecycle import uninstall as run

    if delete_data and not yes and not sys.stdin.isatty():
        raise UserError(
            "--delete-data deletes volumes: it asks first, and there is no terminal to ask on",
            field="--delete-data",
            hint="add --yes to confirm",
        )

    def confirm(items: list[Any]) -> bool:
        if yes:
            return True
        click.echo("these hold the release's data:")
        for item in items:
            click.echo(f"  {item.kind} {item.name}")
        return click.confirm("delete them for good?", default=False)

    c = _connect(helm_bin, kubeconfig, kube_context, namespace)
    for line in run(c, release, delete_data=delete_data, confirm=confirm, timeout=timeout):
        click.echo(line)


@cli.command("list")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@OUTPUT_OPTION
@_cluster_options
def list_cmd(
    all_namespaces: bool,
    output: str,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """helm-mlops releases: stacks and releases of its charts."""
    from generator.lifecycle import list_releases

    rows = list_releases(_connect(helm_bin, kubeconfig, kube_context, namespace), all_namespaces)
    _print_rows(rows, output, ["name", "namespace", "revision", "status", "chart", "app_version", "updated"])


@cli.command()
@click.argument("release", callback=_release_name)
@OUTPUT_OPTION
@_cluster_options
def history(
    release: str,
    output: str,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """RELEASE's revisions."""
    from generator.lifecycle import history_rows

    rows = history_rows(_connect(helm_bin, kubeconfig, kube_context, namespace), release)
    _print_rows(rows, output, ["revision", "updated", "status", "chart", "app_version", "description"])


@cli.command("test")
@click.argument("release", callback=_release_name)
@click.option("--timeout", default="5m", show_default=True, help="How long the tests may take.")
@_cluster_options
def test_cmd(
    release: str,
    timeout: str,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Run RELEASE's helm tests (each chart's test hook) and show their logs."""
    from generator.lifecycle import run_tests

    for line in run_tests(_connect(helm_bin, kubeconfig, kube_context, namespace), release, timeout):
        click.echo(line)


@cli.command()
@click.argument("release", callback=_release_name)
@click.argument("component", required=False)
@_cluster_options
def restart(
    release: str,
    component: str | None,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Restart the pods of COMPONENT (a Deployment/StatefulSet of RELEASE, or a chart alias such as
    mlflow), or of all of them, as `kubectl rollout restart` does."""
    from generator.lifecycle import restart as run

    for line in run(_connect(helm_bin, kubeconfig, kube_context, namespace), release, component):
        click.echo(line)


@cli.command()
@click.argument("release", callback=_release_name)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Local port (0: any free one). Default: 5000, or a free one when 5000 is taken.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a browser.")
@_cluster_options
def ui(
    release: str,
    port: int | None,
    open_browser: bool,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Open the release's MLflow UI: a port-forward to its MLflow Service through the API server,
    until Ctrl-C."""
    from generator.access import ui as run_ui

    c = _connect(helm_bin, kubeconfig, kube_context, namespace)
    run_ui(
        c.kube,
        c.namespace,
        release,
        port,
        open_browser,
        echo=click.echo,
        warn=lambda message: click.echo(message, err=True),
    )


@cli.command()
@click.argument("release", callback=_release_name)
@click.argument("service")
@click.option(
    "--data",
    required=True,
    help="JSON: one row [..], rows [[..], ..] or a whole request body {..}; @FILE reads a file, @- stdin.",
)
@click.option("--v2", is_flag=True, help="Open Inference Protocol v2 (/v2/models/<model>/infer).")
@_cluster_options
def predict(
    release: str,
    service: str,
    data: str,
    v2: bool,
    helm_bin: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str | None,
) -> None:
    """Send one request to an inference service through a port-forward; show the status, the latency
    and the answer.

    SERVICE is the inference service as `status` lists it, or its chart alias."""
    from generator.access import predict as run_predict

    c = _connect(helm_bin, kubeconfig, kube_context, namespace)
    for line in run_predict(c.kube, c.namespace, release, service, data, v2):
        click.echo(line)


@cli.group()
def sweep() -> None:
    """Hyperparameter sweeps: the trial plan, and the best trials from MLflow."""


@sweep.command("plan")
@click.option(
    "-f",
    "--values",
    "values_file",
    required=True,
    type=click.Path(path_type=Path),
    help="Values or sweep file.",
)
def sweep_plan(values_file: Path) -> None:
    """Every trial's parameters, by completion index, as the pods will get them.

    \b
    The file holds a sweep (or values with a `sweep:` section), e.g.:
      strategy: grid            # grid: every combination; random: `trials` draws
      trials: 50                # random only
      seed: 7                   # random only
      parallelism: 4
      parameters:
        - {name: lr, type: float, min: 0.0001, max: 0.1, count: 4, scale: log}
        - {name: depth, type: int, min: 2, max: 8, step: 2}
        - {name: optimizer, type: categorical, values: [adam, sgd]}
      objective: {metric: val_loss, goal: minimize}

    \b
    Keys:
      strategy      grid (default) or random
      trials        random: the number of trials (a whole number >= 1)
      seed          random: a whole number; trial i's draw depends on (seed, i) only
      parallelism   trials running at once
      backoffLimitPerIndex, maxFailedIndexes: retries of a trial; failures that stop it
      passAsArgs    also pass the parameters as script arguments (--name=value)
      parameters    a list; each one a mapping with
        name        a letter or _, then letters, digits, _ . - (env HPARAM_<NAME>)
        type        int, float or categorical
        values      a list (categorical: required; int: whole numbers; float: numbers)
        min, max    a range: finite numbers (whole for int), min <= max
        step        int range: a whole number >= 1 (default 1)
        count       float grid: the number of points (a whole number >= 1)
        scale       linear (default) or log (min > 0)
      objective     {metric, goal: minimize|maximize}, for `sweep best`

    \b
    A float grid starts at min and ends at max exactly; the points between are
    rounded to 12 significant digits and kept within [min, max]. Random floats
    are drawn within [min, max]. At most 10,000 trials, counted before any
    range is built."""
    from generator import sweep
    from generator.errors import UserError
    from generator.training import TrainRequest, build_values

    values = build_values(TrainRequest(release="plan", values_files=(values_file,)))
    spec = values.get("sweep", values)
    if not isinstance(spec, dict):
        raise UserError("`sweep` must be a mapping", field=str(values_file))
    # The chart's schema judges the space first, as `train --sweep` and helm do.
    from generator.paths import chart_dir
    from generator.values import check_values

    rest = values if "sweep" in values else {}
    check_values(
        chart_dir("training-job", field="charts"),
        {**rest, "sweep": {**spec, "enabled": True}},
        str(values_file),
    )
    for index, params in enumerate(sweep.plan(spec, f"{values_file}: sweep")):
        shown = " ".join(f"{k}={sweep.format_value(v)}" for k, v in params.items())
        click.echo(f"{index:>5}  {shown}")


@sweep.command("best")
@click.option(
    "--tracking-uri", required=True, envvar="MLFLOW_TRACKING_URI", help="MLflow URL reachable from here."
)
@click.option("--experiment", required=True, help="MLflow experiment of the sweep.")
@click.option("--sweep-id", required=True, help="The sweep's id: its Job's uid (tag helm-mlops.sweep).")
@click.option("--metric", required=True, help="Metric to rank by.")
@click.option("--goal", type=click.Choice(["minimize", "maximize"]), default="minimize", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--include-failed", is_flag=True, help="Also rank trials whose latest attempt FAILED or was KILLED."
)
def sweep_best(
    tracking_uri: str, experiment: str, sweep_id: str, metric: str, goal: str, top: int, include_failed: bool
) -> None:
    """The best trials of a sweep, ranked by its objective metric.

    One line per trial: its latest attempt (a retried pod makes a run per attempt; ATTEMPTS counts
    them). Trials whose latest attempt FAILED or was KILLED are left out unless --include-failed;
    a NaN or missing metric ranks last whatever the goal."""
    import os

    from generator.sweep import best, trials

    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    found = trials(
        tracking_uri, experiment, sweep_id, metric, (user, password) if user and password else None
    )
    ranked, left_out = best(found, goal, include_failed)
    if not found:
        click.echo(f"no runs tagged helm-mlops.sweep={sweep_id} in experiment {experiment}")
        return
    if ranked:
        click.echo(f"{'TRIAL':>5}  {metric:<14} {'STATUS':<9} {'ATTEMPTS':>8}  RUN / PARAMS")
    for t in ranked[:top]:
        value = "-" if t.value is None else f"{t.value:.6g}"
        params = " ".join(f"{k}={v}" for k, v in sorted(t.params.items()))
        click.echo(f"{t.index:>5}  {value:<14} {t.status:<9} {t.attempts:>8}  {t.run_id}  {params}")
    if left_out:
        click.echo(f"{left_out} trial(s) FAILED or KILLED not shown (--include-failed shows them)", err=True)


@cli.group()
def runtime() -> None:
    """The inference runtime: serve a model locally exactly as the inference-service chart does."""


class WorkerCount(click.ParamType):  # type: ignore[type-arg]  # generic in newer click only
    """`--workers`: a count of 1 or more, or auto (0 here: the runtime's `--workers auto`)."""

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            count = value
        elif value == "auto":
            return 0
        else:
            try:
                count = int(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a count (1 or more) nor auto", param, ctx)
        if count < 1:
            self.fail(f"{count} is not 1 or more (or auto)", param, ctx)
        return count


@runtime.command("serve")
@click.option(
    "--model",
    required=True,
    help="Model file (.pkl .joblib .onnx .pt .h5 .keras), MLflow model dir or models:/ URI.",
)
@click.option(
    "--format",
    "fmt",
    help="Format when the extension does not say: sklearn, joblib, onnx, torch, keras, mlflow.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--name", default="model", show_default=True, help="Model name in the v2 protocol.")
@click.option(
    "--trust-model",
    is_flag=True,
    help="Allow models that are code: pickles, PyTorch (TorchScript or pickled) and MLflow models.",
)
@click.option(
    "--sha256", help="Pinned sha256 of the model file: trusts exactly that file (not for MLflow models)."
)
@click.option("--python", "python", help="Python of a venv with the model's framework (torch, keras...).")
@click.option("--no-batching", is_flag=True, help="Predict each request on its own.")
@click.option(
    "--max-batch-rows",
    type=click.IntRange(min=0),
    help="Most rows per model call; 0 or unset: 64 on CPU, 512 on CUDA.",
)
@click.option("--max-batch-wait-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto, cpu, cuda or cuda:N. auto: the first GPU when one is visible and the model's framework "
    "can use it, else the CPU; cuda without a usable GPU is an error.",
)
@click.option(
    "--reference",
    help="Model monitoring: a sample of training rows (.npy, .csv with a header, .parquet, or an MLflow "
    "artifact URI such as runs:/<id>/reference.csv); /metrics then carries data quality and drift per "
    "feature.",
)
@click.option(
    "--monitor-sample-rate",
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of rows the monitor examines (default 1).",
)
@click.option(
    "--feedback",
    is_flag=True,
    help="POST /v2/models/{name}/feedback with request ids and true labels: rolling accuracy in /metrics.",
)
@click.option(
    "--workers",
    type=WorkerCount(),
    help="Worker processes serving the port, each batching on its own: N (1 or more) or auto (the "
    "default: one per CPU the runtime may use; 1 with --reference or --feedback, which take no more).",
)
def runtime_serve(
    model: str,
    fmt: str | None,
    port: int,
    host: str,
    name: str,
    trust_model: bool,
    sha256: str | None,
    python: str | None,
    no_batching: bool,
    max_batch_rows: int | None,
    max_batch_wait_ms: float,
    device: str,
    reference: str | None,
    monitor_sample_rate: float | None,
    feedback: bool,
    workers: int | None,
) -> None:
    """Serve a model: POST /predict, the Open Inference Protocol v2 under /v2, and /metrics."""
    from generator.runtime import ServeRequest, serve

    serve(
        ServeRequest(
            model=model,
            format=fmt,
            port=port,
            host=host,
            name=name,
            trust_model=trust_model,
            sha256=sha256,
            python=python,
            batching=not no_batching,
            max_batch_rows=max_batch_rows,
            max_batch_wait_ms=max_batch_wait_ms,
            device=device,
            reference=reference,
            monitor_sample_rate=monitor_sample_rate,
            feedback=feedback,
            workers=workers,
        )
    )


@runtime.command("predict")
@click.option("--url", required=True, help="Base URL of a served model, e.g. http://localhost:8000.")
@click.option("--input", "data", required=True, help="JSON rows: one row [..] or a batch [[..], ..].")
@click.option("--name", help="Use the v2 protocol with this model name (default: POST /predict).")
def runtime_predict(url: str, data: str, name: str | None) -> None:
    """Send one request and show the response with its status and latency."""
    from generator.runtime import predict

    for line in predict(url, data, name):
        click.echo(line)


@cli.command()
@OUTPUT_OPTION
def presets(output: str) -> None:
    """List the presets (answers files in values-presets/) with a one-line description."""
    from generator.generate import presets as all_presets

    _print_rows(all_presets(), output, ["name", "description"])


@cli.command("answers-schema")
def answers_schema() -> None:
    """Print the JSON Schema of the answers format (helm-mlops/v1)."""
    import json

    from generator.answers_schema import SCHEMA

    click.echo(json.dumps(SCHEMA, indent=2))


@cli.command()
@click.option("--preset", help="Start from a preset (see `helm-mlops presets`).")
@click.option("--answers", "answers_file", help="Answers file (YAML or JSON; - for standard input).")
@_set_options
@click.option(
    "-o",
    "--output-dir",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to write the stack's umbrella chart to.",
)
@click.option("--force", is_flag=True, help="Replace a directory helm-mlops did not create, or edited files.")
@click.option(
    "--chart-repo",
    help="Reference the charts from this repository (https:// or oci://) instead of vendoring them.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also list every component and file written.")
def generate(
    preset: str | None,
    answers_file: str | None,
    set_values: tuple[str, ...],
    set_string: tuple[str, ...],
    set_json: tuple[str, ...],
    set_file: tuple[str, ...],
    out: Path,
    force: bool,
    chart_repo: str | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Write an umbrella chart for a stack from a preset, an answers file or a seed request."""
    from generator.generate import run_generate
    from generator.values import helm_order

    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")

    lines = run_generate(
        preset=preset,
        answers_file=answers_file,
        sets=list(helm_order(set_json, set_values, set_string, set_file)),
        out=out,
        force=force,
        chart_repo=chart_repo,
        verbose=verbose,
    )
    if not quiet:
        for line in lines:
            click.echo(line)


@cli.command("template")
@click.argument("stack_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--release", callback=_release_name, help="Release name (default: the stack's name).")
@click.option("--helm", "helm_bin", envvar="HELM_MLOPS_HELM", help="helm binary.")
@click.option("-n", "--namespace", envvar="HELM_NAMESPACE", help="Namespace (default: the stack's).")
def template_cmd(stack_dir: Path, release: str | None, helm_bin: str | None, namespace: str | None) -> None:
    """Render a generated stack's manifests (helm template)."""
    from generator.stackcheck import render_text

    click.echo(render_text(stack_dir, release=release, helm_bin=helm_bin, namespace=namespace), nl=False)


@cli.command("lint")
@click.argument("stack_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--helm", "helm_bin", envvar="HELM_MLOPS_HELM", help="helm binary (Helm 4); Helm 3 is found beside it."
)
@click.option(
    "--crds",
    type=click.Path(file_okay=False, path_type=Path),
    help="CRD folder (default: ../shared/crds when present).",
)
def lint_cmd(stack_dir: Path, helm_bin: str | None, crds: Path | None) -> None:
    """Check a generated stack: helm lint --strict (Helm 4 and 3), schemas, kubernetes-validate, CRDs,
    Pod Security "restricted". Every problem is listed; exit 2 when there is any."""
    from generator.stackcheck import lint

    for line in lint(stack_dir, helm_bin=helm_bin, crd_dir=crds):
        click.echo(line)


@cli.command()
@click.argument("project", type=click.Choice(PROJECT_NAMES))
@click.option("--all", "show_all", is_flag=True, help="Every release, not just the newest 10.")
@click.option("--pre", is_flag=True, help="Include pre-releases.")
@click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True
)
@click.option(
    "--ttl",
    type=click.FloatRange(min=0),
    help="Seconds a cached answer is used without asking GitHub "
    "(default: $HELM_MLOPS_VERSIONS_TTL, else 3600).",
)
def versions(project: str, show_all: bool, pre: bool, output: str, ttl: float | None) -> None:
    """Releases of PROJECT from GitHub, newest first, with the image the chart runs for each.

    \b
    GITHUB_TOKEN or GH_TOKEN: a token for the API (a higher rate limit)
    GITHUB_API_URL: GitHub Enterprise's API, e.g. https://github.example.com/api/v3
    HELM_MLOPS_CACHE_DIR: the cache (default: $XDG_CACHE_HOME/helm-mlops or ~/.cache/helm-mlops)
    Offline or rate-limited, the cached answer (however old) or the list bundled with helm-mlops
    stands in, with a warning."""
    from generator.github import GitHubReleases
    from generator.versions import RECENT, TABLE_HEADER, list_versions, render, table_rows

    listing = list_versions(project, include_pre=pre, source=GitHubReleases.from_env(ttl))
    for warning in listing.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True, color=_color())
    click.echo(f"source: {listing.source}", err=True)
    shown = listing.versions if show_all else listing.recent(RECENT)
    if output == "table" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.table import Table

        table = Table(*TABLE_HEADER, box=None)
        for row in table_rows(project, shown):
            table.add_row(*row)
        Console().print(table)
    else:
        click.echo(render(project, shown, output))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[CHART_OR_STACK_DIR]...")
@click.option(
    "--repo-dir",
    type=click.Path(path_type=Path),
    help="An HTTP chart repository's directory (index.yaml and archives; created when missing).",
)
@click.option("--url", help="The URL --repo-dir is served at (the archives' URLs in index.yaml).")
@click.option("--oci", metavar="oci://HOST/PATH", help="Push each chart to this OCI repository.")
@click.option("--username", help="Registry user (with --password-stdin); else `helm registry login`'s.")
@click.option("--password-stdin", is_flag=True, help="Read the registry password from standard input.")
@click.option("--plain-http", is_flag=True, help="The registry speaks plain HTTP.")
@click.option("--ca-file", type=click.Path(path_type=Path), help="CA bundle for the registry's TLS.")
@click.option(
    "--insecure-skip-tls-verify", "insecure", is_flag=True, help="Do not check the registry's certificate."
)
@click.option("--sign", is_flag=True, help="Write a provenance file (.prov) signed with GnuPG.")
@click.option("--key", help="The signing key's name or email (with --sign).")
@click.option(
    "--keyring",
    type=click.Path(path_type=Path),
    help="Secret keyring with the key (gpg --export-secret-keys KEY > secring.gpg).",
)
@click.option("--passphrase-file", type=click.Path(path_type=Path), help="The key's passphrase ('-': stdin).")
@click.option("--version", "chart_version", help="Publish under this chart version instead of Chart.yaml's.")
@click.option("--app-version", help="Set appVersion in the published charts.")
@click.option("--force", is_flag=True, help="Replace a version already published with other content.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Package and check everything, say what would be published, write nothing.",
)
@click.option(
    "--check-bump",
    metavar="BASE_REF",
    help="Fail when a chart changed since BASE_REF (its merge base) without a version bump.",
)
@click.option(
    "--helm", "helm_bin", envvar="HELM_MLOPS_HELM", help="helm binary (default: the pinned or PATH's helm)."
)
def publish(
    paths: tuple[Path, ...],
    repo_dir: Path | None,
    url: str | None,
    oci: str | None,
    username: str | None,
    password_stdin: bool,
    plain_http: bool,
    ca_file: Path | None,
    insecure: bool,
    sign: bool,
    key: str | None,
    keyring: Path | None,
    passphrase_file: Path | None,
    chart_version: str | None,
    app_version: str | None,
    force: bool,
    dry_run: bool,
    check_bump: str | None,
    helm_bin: str | None,
) -> None:
    """Package charts and generated stacks and publish them: to an HTTP chart repository directory
    (--repo-dir DIR --url URL: index.yaml merged, existing entries kept) and/or an OCI registry (--oci).

    \b
    A version already published with the same content is skipped; with other content it is refused
    unless --force. Nothing is written until every chart is packaged and checked.
    --check-bump BASE_REF alone checks that changed charts (default: charts/*) have higher versions.

    \b
    Examples:
      helm-mlops publish charts/* --repo-dir site --url https://example.github.io/charts
      echo "$TOKEN" | helm-mlops publish ./stack --oci oci://ghcr.io/team/charts \\
          --username team --password-stdin
      helm-mlops publish charts/* --repo-dir site --url URL --sign --key ci@example.com \\
          --keyring secring.gpg --passphrase-file pass.txt
      helm-mlops publish --check-bump origin/main"""
    from generator import publish as pub
    from generator.errors import HelmMlopsError, UserError

    destination = repo_dir is not None or oci is not None
    if check_bump is not None:
        problems = pub.check_bump(check_bump, list(paths), Path.cwd())
        if problems:
            raise HelmMlopsError("charts changed without a version bump:\n  - " + "\n  - ".join(problems))
        click.echo(f"ok: every changed chart has a higher version than at {check_bump}")
        if not destination:
            return
    password = None
    if password_stdin:
        if passphrase_file is not None and str(passphrase_file) == "-":
            raise UserError(
                "standard input cannot carry both the password and the passphrase",
                field="--passphrase-file",
                hint="give the passphrase in a file",
            )
        password = sys.stdin.read().rstrip("\r\n")
        if not password:
            raise UserError("standard input was empty", field="--password-stdin", hint="pipe the password in")
    passphrase_tmp = None
    if passphrase_file is not None and str(passphrase_file) == "-":
        import tempfile

        fd, name = tempfile.mkstemp(prefix="helm-mlops-passphrase-")
        with os.fdopen(fd, "w") as handle:
            handle.write(sys.stdin.read().rstrip("\r\n"))
        passphrase_file = passphrase_tmp = Path(name)
    try:
        options = pub.check_options(
            list(paths),
            repo_dir=repo_dir,
            url=url,
            oci=oci,
            username=username,
            password=password,
            plain_http=plain_http,
            ca_file=ca_file,
            insecure=insecure,
            sign=sign,
            key=key,
            keyring=keyring,
            passphrase_file=passphrase_file,
            version=chart_version,
            app_version=app_version,
            force=force,
            dry_run=dry_run,
        )
        from generator.helm.adapter import Helm
        from generator.helm.binary import find_helm

        pub.publish(
            Helm(find_helm(helm_bin)),
            options,
            click.echo,
            lambda line: click.secho(line, fg="yellow", err=True, color=_color()),
        )
    finally:
        if passphrase_tmp is not None:
            passphrase_tmp.unlink(missing_ok=True)


@cli.command("init")
@click.option(
    "-o",
    "--output",
    "out",
    default="answers.yaml",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Answers file to write.",
)
@click.option("--preset", help="Start from a preset's answers (see `helm-mlops presets`).")
@click.option("-y", "--yes", is_flag=True, help="Write the defaults (or the preset) without asking.")
@click.option("--force", is_flag=True, help="Overwrite an existing answers file.")
def init_cmd(out: Path, preset: str | None, yes: bool, force: bool) -> None:
    """Ask what the stack holds (MLflow, training jobs, inference services) and write an answers file
    for `helm-mlops generate --answers`. Needs a terminal, unless --yes."""
    from generator.wizard import run_init

    for line in run_init(out, preset=preset, yes=yes, force=force):
        click.echo(line)


def _color() -> bool | None:
    """No colour with NO_COLOR (https://no-color.org); otherwise click's choice (only on a terminal)."""
    return False if os.environ.get("NO_COLOR") else None


COMPLETE_ENV = "_HELM_MLOPS_COMPLETE"
DEBUG_ENV = "HELM_DEBUG"  # helm sets it for plugins when run with --debug


def _debug_from_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes an exit code: 2 bad input, 3 a tool or the cluster failed,
    4 a stale generated file, 130 interrupted, 1 a bug (one line, unless --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    instruction = os.environ.get(COMPLETE_ENV)
    if instruction:  # click's shell completion: `eval "$(_HELM_MLOPS_COMPLETE=bash_source helm-mlops)"`
        from click.shell_completion import shell_complete

        sys.exit(shell_complete(cli, {}, "helm-mlops", COMPLETE_ENV, instruction))
    debug = _debug_from_env()
    import signal

    def _terminate(_signum: int, _frame: object) -> None:  # SIGTERM (a CI cancel, `timeout`) as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        with cli.make_context("helm-mlops", args) as ctx:
            debug = debug or bool(ctx.params.get("debug"))
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        if debug:
            raise
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except HelmMlopsError as exc:
        if debug:  # the traceback, and the same exit code as without --debug
            import traceback

            traceback.print_exc()
        click.secho(f"error: {exc}", fg="red", err=True, color=_color())
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # the reader went away (| head): nothing left to say
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:
        if debug:
            raise
        click.secho(
            f"error: unexpected {type(exc).__name__}: {exc}\n"
            f"  this is a bug in helm-mlops {__version__}: please report it on the project's issue tracker "
            "with the output of the same command run with --debug (or HELM_DEBUG=1)",
            fg="red",
            err=True,
            color=_color(),
        )
        sys.exit(1)
