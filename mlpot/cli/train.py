"""``mlpot train CONFIG``: parse options into a typed config and call :func:`mlpot.train.fit`.

Data parallel: ``torchrun --nproc_per_node N -m mlpot.cli.main train CONFIG``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config value: section.key=value (the value is parsed as "
            "YAML, e.g. optimizer.lr=2e-3); repeatable."
        ),
    ] = None,
    resume: bool = typer.Option(
        False, "--resume", help="Continue bit for bit from the latest checkpoint in the "
        "config's run_dir."
    ),
    resume_from: Annotated[
        Path | None,
        typer.Option(help="Continue from this resumable checkpoint (a step-*.pt file)."),
    ] = None,
) -> None:
    """Train a model as CONFIG says (checkpoints, metrics.csv under its run_dir).

    Many processes: torchrun --nproc_per_node N -m mlpot.cli.main train CONFIG. Exit status:
    0 done, 1 bad data or files, 2 invalid config (every problem listed, one per line)."""
    from mlpot.train import ConfigError, fit, load_config

    try:
        cfg = load_config(config, set_ or [])
        result = fit(cfg, resume=resume_from or resume)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"done: {result.steps} steps; best {result.best}, final {result.final}")


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``mlpot`` app."""
    app.command("train")(train)
