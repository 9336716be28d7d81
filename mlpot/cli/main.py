"""Entry point of the ``mlpot`` console script."""

from __future__ import annotations

import typer

import mlpot
from mlpot.cli import eval as eval_commands
from mlpot.cli import md as md_commands
from mlpot.cli import rollout as rollout_command
from mlpot.cli import train as train_commands
from mlpot.cli.data import data_app

app = typer.Typer(
    name="mlpot",
    help="Molecular simulation with machine-learned interatomic potentials.",
    epilog="Units: energies eV, lengths Å, time fs, temperature K, pressure GPa (stress "
    "eV/Å³ in files). Models: 'lj', a shipped name (mlpot models) or a checkpoint path.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mlpot {mlpot.__version__}")
        raise typer.Exit()

app.add_typer(data_app, name="data")
md_commands.register(app)
app.command("rollout")(rollout_command.rollout)
train_commands.register(app)
eval_commands.register(app)


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True,
        help="Print the version and exit."),
) -> None:
    """Molecular simulation with machine-learned interatomic potentials."""


@app.command("models")
def models() -> None:
    """List the models shipped with mlpot (name, then the checkpoint file)."""
    shipped = mlpot.shipped_models()
    if not shipped:
        typer.echo("no shipped models in this installation")
    for name, path in shipped.items():
        typer.echo(f"{name}\t{path}")


if __name__ == "__main__":
    app()
