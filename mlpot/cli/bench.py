"""``mlpot bench``: benchmarks that print ratios against peers measured in the same run."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks (ratios against peers measured in the same run).",
                        no_args_is_help=True)


@bench_app.command("neighbors")
def neighbors(
    cutoff: float = typer.Option(5.0, help="Cutoff, Å."),
    repeats: int = typer.Option(5, help="Timed repetitions per case (median reported)."),
) -> None:
    """Neighbour lists: mlpot (vesin) vs ase.neighborlist vs matscipy on fcc Cu."""
    from mlpot.benchmarks.neighbors import run

    run(cutoff=cutoff, repeats=repeats)
