"""``mlpot eval MODEL DATA``: errors, per-element force MAE, equivariance error, parity plot."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    model: Annotated[str, typer.Argument(help="A checkpoint file or a shipped model name.")],
    data: Annotated[Path, typer.Argument(help="Labelled structures (store, extxyz, ...).")],
    batch_size: int = typer.Option(16, help="Structures per model call (lower it if memory "
                                   "runs out)."),
    rotations: int = typer.Option(
        4, help="Random rotations per structure for the equivariance error (0: skip)."
    ),
    rotation_structures: int = typer.Option(
        16, help="Structures (the first N) in the equivariance test."
    ),
    parity: Annotated[
        Path | None,
        typer.Option(help="Write energy/force/stress parity plots (PNG). Default: none."),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the report as JSON (errors in eV, eV/Å, eV/Å³)."),
    ] = None,
    dtype: str | None = typer.Option(None, help="float32 | float64 (default: the model's)."),
    seed: int = typer.Option(0, help="Seed of the random rotations."),
) -> None:
    """Energy/force/stress MAE and RMSE per structure class, per-element force MAE and the
    equivariance error of MODEL on DATA.

    Printed in meV/atom, meV/Å and meV/Å³; the equivariance error is the relative change of
    energy and forces under random rotations, in float64."""
    import torch
    from rich.console import Console
    from rich.table import Table

    import mlpot
    from mlpot.datasets import DataFormatError
    from mlpot.train.evaluate import evaluate as run_eval

    try:
        potential = mlpot.load_model(model, dtype=getattr(torch, dtype) if dtype else None)
        if not isinstance(potential, mlpot.models.Potential):
            raise ValueError(f"{model}: a {type(potential).__name__} has no energies or forces "
                             "to evaluate")
        report = run_eval(
            potential,
            data,
            batch_size=batch_size,
            rotations=rotations,
            rotation_structures=rotation_structures,
            seed=seed,
            parity_png=parity,
        )
    except (ValueError, FileNotFoundError, DataFormatError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    console = Console(width=130)
    table = Table(title=f"{model} on {data}")
    for col in (
        "class",
        "structures",
        "E MAE meV/atom",
        "E RMSE",
        "F MAE meV/Å",
        "F RMSE",
        "S MAE meV/Å³",
        "S RMSE",
    ):
        table.add_column(col, justify="right")
    for name, s in [("all", report.overall), *report.by_class.items()]:
        table.add_row(
            name,
            str(s.structures),
            *(
                _mev(v)
                for v in (
                    s.energy_mae,
                    s.energy_rmse,
                    s.forces_mae,
                    s.forces_rmse,
                    s.stress_mae,
                    s.stress_rmse,
                )
            ),
        )
    console.print(table)
    console.print(
        "force MAE per element (meV/Å): "
        + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in report.element_force_mae.items())
    )
    if report.equivariance is not None:
        q = report.equivariance
        console.print(
            f"equivariance ({q.structures} structures × {q.rotations} rotations, "
            f"{q.dtype}): energy mean {q.energy_mean:.2e} max {q.energy_max:.2e}; "
            f"forces mean {q.forces_mean:.2e} max {q.forces_max:.2e} (relative)"
        )
    if report.parity_png is not None:
        console.print(f"parity plot: {report.parity_png}")
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(report), indent=1, default=str))


def _mev(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1e3:.2f}"


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the ``mlpot`` app."""
    app.command("eval")(evaluate)
