"""``mlpot data``: convert datasets into the packed HDF5 store and inspect them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Datasets: convert to the packed HDF5 store, inspect.",
                       no_args_is_help=True)


@data_app.command("convert")
def convert(
    paths: Annotated[list[Path], typer.Argument(
        help="INPUT... OUTPUT.h5: input files or directories (OMol25 folders are searched "
             "for .aselmdb shards), then the store to write.")],
    format: str | None = typer.Option(None, help="Input format (omol25, mptrj, extxyz, "
                                                 "store or an ase.io name). Default: from "
                                                 "the suffix/contents."),
    energy_key: str | None = typer.Option(None, help="MPTrj energy label, e.g. "
                                                     "corrected_total_energy. Default: "
                                                     "uncorrected_total_energy."),
    append: bool = typer.Option(False, help="Append to an existing store (atomically: an "
                                "interrupted append leaves the old contents)."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid records (counted and logged) "
                                      "instead of stopping at the first one."),
) -> None:
    """Stream INPUT files/directories into the store OUTPUT.h5 (written atomically)."""
    from mlpot.datasets import DataFormatError
    from mlpot.datasets import convert as convert_files

    if len(paths) < 2:
        _fail("give at least one INPUT and the OUTPUT.h5")
    *inputs, output = paths
    options = {"energy_key": energy_key} if energy_key else {}
    try:
        report = convert_files(inputs, output, format=format, append=append,
                               skip_invalid=skip_invalid,
                               progress=lambda n: typer.echo(f"  {n} structures", err=True),
                               **options)
    except (DataFormatError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {report.read} structures to {output}"
               + (f" (skipped {report.skipped} invalid records)" if report.skipped else ""))


@data_app.command("inspect")
def inspect(
    path: Annotated[Path, typer.Argument(help="A dataset file or OMol25 directory.")],
    format: str | None = typer.Option(None, help="Input format (as for convert). Default: "
                                                 "detect."),
    bins: int = typer.Option(10, help="Histogram bins for atoms per structure."),
    cutoffs: str = typer.Option("", help="Comma-separated cutoffs (Å) for neighbour counts, "
                                         "e.g. 4,5,6 (on the first --sample structures)."),
    sample: int = typer.Option(1000, help="Structures (the first N) used for neighbour "
                                          "counts."),
) -> None:
    """Print counts, elements, an atoms-per-structure histogram and label statistics."""
    from itertools import islice

    from mlpot.datasets import DataFormatError, neighbor_statistics, read, summarize
    from mlpot.datasets.statistics import format_neighbor_statistics, format_summary

    try:
        summary = summarize(read(path, format, require=()), bins=bins)
        typer.echo(format_summary(summary, str(path)))
        if cutoffs:
            radii = [float(c) for c in cutoffs.split(",")]
            stats = neighbor_statistics(islice(read(path, format, require=()), sample), radii)
            typer.echo(format_neighbor_statistics(stats))
    except (DataFormatError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
