"""The helm-mlops command line. It only parses arguments and calls into the package; errors map to
exit codes in main(). Heavy modules are imported inside the commands so `--help` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from generator import __version__
from generator.errors import HelmMlopsError


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
    """Regenerate each chart's README values table and values.schema.json from values.yaml."""
    from generator.chart_docs import undocumented_keys, update_readme
    from generator.errors import UserError
    from generator.paths import chart_dirs as all_charts
    from generator.values_schema import update_schema

    for chart in chart_dirs or all_charts():
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


@cli.command()
@click.option("--chart", "chart", default="mlflow", show_default=True, help="Chart to show.")
@click.option(
    "--values",
    "values_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Values file (default: values-presets/<chart>-quickstart.yaml).",
)
@click.option(
    "--helm", "helm_bin", envvar="HELM_MLOPS_HELM", help="helm binary (default: .tools/bin/helm, then PATH)."
)
@click.option("--install/--no-install", default=True, show_default=True, help="Install after rendering.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to install into (default: $KUBECONFIG, ~/.kube/config, else the embedded local cluster).",
)
@click.option(
    "-n", "--namespace", default="helm-mlops-demo", show_default=True, help="Namespace to install into."
)
@click.option("--release", default="demo", show_default=True, help="Release name.")
def demo(
    chart: str,
    values_file: Path | None,
    helm_bin: str | None,
    install: bool,
    kubeconfig: Path | None,
    namespace: str,
    release: str,
) -> None:
    """Lint and render a chart with its quickstart preset, install it and show its status."""
    from generator.demo import run_demo

    lines = run_demo(
        chart,
        values_file,
        helm_bin,
        install=install,
        kubeconfig=kubeconfig,
        namespace=namespace,
        release=release,
    )
    for line in lines:
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="helm-mlops", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except HelmMlopsError as exc:
        if debug:
            raise
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
