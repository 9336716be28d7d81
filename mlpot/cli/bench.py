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


@bench_app.command("data")
def data(
    json_mb: float = typer.Option(200.0, help="Size of the generated MPTrj JSON, MB."),
    n_random: int = typer.Option(10000, help="Structures in the random-access comparison."),
    repeats: int = typer.Option(3, help="Timed repetitions (median reported)."),
) -> None:
    """MPTrj streaming rate and peak RSS; HDF5 vs extxyz vs aselmdb random access."""
    from mlpot.benchmarks.data_throughput import run

    run(json_mb=json_mb, n_random=n_random, repeats=repeats)


@bench_app.command("md")
def md(
    steps: int = typer.Option(100, help="MD steps per timed block (3 blocks per case)."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    dtype: str = typer.Option("float32", help="float32 | float64."),
    systems: int = typer.Option(16, help="Small systems for the batching speed-up."),
    ml_steps: int = typer.Option(10, help="Steps per block for the equivariant model "
                                 "(0 skips it)."),
) -> None:
    """MD loop overhead vs the bare model and vs ASE VelocityVerlet; batching speed-up."""
    from mlpot.benchmarks.md_overhead import run

    run(steps=steps, device=device, dtype=dtype, n_systems=systems, ml_steps=ml_steps)
