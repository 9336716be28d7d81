"""What a run shows and records: progress bar, per-epoch validation table, CSV, TensorBoard.

Only rank 0 creates a :class:`RunLog`; other ranks get a :class:`SilentLog`.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

#: The training-loss terms of a step, in order: the total loss, its energy, force and
#: stress parts, and the TransIP contrastive objective (before its weight λ; NaN when the
#: run has no contrastive term).
TRAIN_TERMS = ("loss", "energy", "forces", "stress", "contrastive")

CSV_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "seconds",
    "structures_per_s",
    "train_loss",
    "train_energy",
    "train_forces",
    "train_stress",
    "train_contrastive",
    "valid_loss",
    "valid_energy_mae",
    "valid_energy_rmse",
    "valid_forces_mae",
    "valid_forces_rmse",
    "valid_stress_mae",
    "valid_stress_rmse",
)


class SilentLog:
    """The log of ranks other than 0: does nothing."""

    def start_epoch(self, epoch: int, steps: int, done: int) -> None: ...
    def step(self, values: dict[str, float]) -> None: ...
    def end_epoch(self, row: dict[str, float]) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class RunLog(SilentLog):
    """Progress bar (epoch, step, loss terms, LR, structures/s, ETA), tables, metrics files.

    ``metrics.csv`` has one row per validation (:data:`CSV_COLUMNS`) in eV, eV/atom,
    eV/Å and eV/Å³ (``train_contrastive``: nats, NaN without a contrastive term); the
    printed table shows the same errors in meV.

    Args:
        run_dir: ``metrics.csv`` (and ``tensorboard/``) go here.
        progress: draw a live bar (``auto``: only on a terminal).
        tensorboard: ``auto``: when ``tensorboard`` is installed; True: required.
        resume_epoch: rows of later epochs in an existing CSV are dropped (a resumed
            run rewrites them).
    """

    def __init__(
        self,
        run_dir: Path,
        progress: bool | str,
        tensorboard: bool | str,
        epochs: int,
        resume_epoch: int = 0,
    ) -> None:
        self.console = Console(stderr=False)
        live = sys.stdout.isatty() if progress == "auto" else bool(progress)
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/" + str(epochs)),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not live,
            transient=False,
        )
        self.task: TaskID | None = None
        self.csv_path = run_dir / "metrics.csv"
        _truncate_csv(self.csv_path, resume_epoch)
        self.writer = _tensorboard(run_dir, tensorboard)
        if live:
            self.progress.start()

    def start_epoch(self, epoch: int, steps: int, done: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            "train", total=steps, completed=done, epoch=epoch + 1, info=""
        )

    def step(self, values: dict[str, float]) -> None:
        contrastive = values["contrastive"]
        info = (
            f"loss {values['loss']:.4g} (E {values['energy']:.3g} F {values['forces']:.3g}"
            f" S {values['stress']:.3g}"
            + ("" if math.isnan(contrastive) else f" C {contrastive:.3g}")
            + f")  lr {values['lr']:.2e}  {values['structures_per_s']:.1f} struct/s"
        )
        self.progress.update(self.task, advance=1, info=info)  # type: ignore[arg-type]  # start_epoch() creates the task first
        if self.writer is not None:
            for key in (*TRAIN_TERMS, "lr"):
                self.writer.add_scalar(f"train/{key}", values[key], int(values["step"]))

    def end_epoch(self, row: dict[str, float]) -> None:
        table = Table(
            title=f"epoch {int(row['epoch'])}  step {int(row['step'])}  "
            f"lr {row['lr']:.2e}  {row['structures_per_s']:.1f} struct/s"
        )
        for col in (
            "train loss",
            "valid loss",
            "E MAE meV/atom",
            "E RMSE meV/atom",
            "F MAE meV/Å",
            "F RMSE meV/Å",
            "S MAE meV/Å³",
        ):
            table.add_column(col, justify="right")
        table.add_row(
            f"{row['train_loss']:.4g}",
            f"{row['valid_loss']:.4g}",
            *(
                f"{row[k] * 1e3:.2f}"
                for k in (
                    "valid_energy_mae",
                    "valid_energy_rmse",
                    "valid_forces_mae",
                    "valid_forces_rmse",
                    "valid_stress_mae",
                )
            ),
        )
        self.console.print(table)
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
        if self.writer is not None:
            for k in CSV_COLUMNS[5:]:
                self.writer.add_scalar(k.replace("_", "/", 1), row[k], int(row["step"]))
            self.writer.flush()

    def message(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        self.progress.stop()
        if self.writer is not None:
            self.writer.close()


def _truncate_csv(path: Path, resume_epoch: int) -> None:
    """Keep only rows of epochs before ``resume_epoch`` (atomically rewritten)."""
    if not path.exists():
        return
    if resume_epoch == 0:
        path.unlink()
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= resume_epoch]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _tensorboard(run_dir: Path, wanted: bool | str) -> Any:
    if wanted is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if wanted is True:
            raise RuntimeError(
                "log.tensorboard is true but tensorboard is not installed (pip install tensorboard)"
            ) from None
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
