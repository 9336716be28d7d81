"""What the MD-like commands (``mlpot md``, ``mlpot rollout``) share: their run and output
options, the start state, the split of many structures into batches run one after the
other, and the log and trajectory reporters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import ase
import torch
from rich.console import Console

from mlpot.md.batching import max_batch_atoms, plan_batches
from mlpot.md.forces import ForceField
from mlpot.md.reporters import ThermoReporter, TrajectoryReporter
from mlpot.md.reporters.restart import RestartData
from mlpot.md.simulate import Reporter, RunSummary
from mlpot.md.state import MDState, maxwell_boltzmann


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Options every MD-like run has (units: K, Å).

    ``steps`` is the step count the run ends at, so re-running the same command with
    ``restart`` continues an interrupted run to the same end.

    Attributes:
        structure: the input structures (every frame is a system).
        steps: the step the run ends at.
        traj, log: trajectory and thermo-log files (None: not written).
        every: write the log and the trajectory every this many steps.
        seed: random stream of system 0 (system ``b`` gets ``seed + b``).
        device: torch device.
        dtype: "float32", "float64" or None (the model's).
        restart: restart file to continue from.
        restart_out: where restart files go (default: :meth:`restart_path`).
        restart_every: write a restart file every this many steps (None: at the end).
        skin: Verlet neighbour-list skin, Å.
        max_temperature: stop when any system gets hotter, K.
        max_batch_atoms: run the structures in consecutive batches of at most this
            many atoms (default: one batch on CPU; on CUDA what fits in free memory).
        progress: show the live progress bar.
    """

    structure: Path
    steps: int = 1000
    traj: Path | None = None
    log: Path | None = None
    every: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str | None = None
    restart: Path | None = None
    restart_out: Path | None = None
    restart_every: int | None = None
    skin: float = 1.0
    max_temperature: float = 1.0e5
    max_batch_atoms: int | None = None
    progress: bool = True

    def check(self) -> None:
        """Clear errors for bad ``steps``, ``every`` or trajectory format."""
        if self.steps < 0:
            raise ValueError(f"--steps must be >= 0, got {self.steps}")
        if self.every < 1:
            raise ValueError(f"--every must be >= 1, got {self.every}")
        if self.traj is not None:
            from mlpot.md.reporters.trajectory import trajectory_format

            trajectory_format(self.traj)

    def restart_path(self, stem: str) -> Path:
        """Where the run writes its restart file: ``restart_out``, else beside the
        trajectory or log (``NAME.restart.pt``), else ``STEM.restart.pt``."""
        if self.restart_out is not None:
            return self.restart_out
        base = self.traj or self.log or Path(stem)
        return base.with_name(base.stem + ".restart.pt")


def start_state(
    structures: Sequence[ase.Atoms],
    seed: int | Sequence[int],
    dtype: torch.dtype,
    device: str,
    temperature: float,
) -> MDState:
    """State of ``structures`` with their velocities, or Maxwell–Boltzmann ones at
    ``temperature`` (K) when none of them has any."""
    state = MDState.from_atoms(structures, seed=seed, dtype=dtype, device=device)
    if not bool((state.momenta != 0).any()):
        state = maxwell_boltzmann(state, temperature)
    return state


@dataclass(frozen=True)
class BatchPart:
    """One batch of a run over many structures.

    Attributes:
        state: its start state.
        first_index: index of its first system among all the structures.
        restart: its restart file.
        append_log: the thermo log already holds earlier batches.
    """

    state: MDState
    first_index: int
    restart: Path
    append_log: bool


def batch_parts(
    opts: RunOptions,
    structures: Sequence[ase.Atoms],
    dtype: torch.dtype,
    temperature: float,
    probe_field: ForceField,
    restart: Path,
    console: Console,
) -> Iterator[BatchPart]:
    """The structures as consecutive batches of at most ``opts.max_batch_atoms`` atoms
    (when None: what ``probe_field`` on one structure says fits, see
    :func:`~mlpot.md.batching.max_batch_atoms`), each built when it is reached (see
    :func:`start_state`); all structures are checked on the CPU first. With several
    batches, batch ``k`` writes ``NAME.partK.pt`` next to ``restart`` and its range is
    printed."""
    # Every structure is checked (positions, cell, masses) before the first batch runs
    # and anything is written, on the CPU: only one batch is on the run's device at once.
    MDState.from_atoms(structures, dtype=dtype, device="cpu")
    limit = opts.max_batch_atoms
    if limit is None and len(structures) > 1:
        probe = MDState.from_atoms(structures[:1], dtype=dtype, device=opts.device)
        limit = max_batch_atoms(probe_field, probe)
    groups = plan_batches([len(a) for a in structures], limit)
    for k, group in enumerate(groups):
        state = start_state(
            [structures[i] for i in group],
            [opts.seed + i for i in group],
            dtype,
            opts.device,
            temperature,
        )
        path = restart
        if len(groups) > 1:
            path = restart.with_name(f"{restart.stem}.part{k}{restart.suffix}")
            console.print(f"part {k + 1}/{len(groups)}: systems {group[0]}..{group[-1]}")
        yield BatchPart(state, group[0], path, append_log=k > 0)


def output_reporters(
    opts: RunOptions,
    state: MDState,
    restart_data: RestartData | None,
    first_index: int,
    total: int,
    append_log: bool,
    pressure: bool = True,
) -> tuple[list[Reporter], TrajectoryReporter | None]:
    """The thermo-log and trajectory reporters ``opts`` asks for, continuing those of
    ``restart_data`` when resuming; also returns the trajectory reporter alone (its
    frame count goes into restart files). ``pressure`` adds the pressure column."""
    reporters: list[Reporter] = []
    if opts.log is not None:
        resume_step = None if restart_data is None else state.step
        reporters.append(
            ThermoReporter(
                opts.log, opts.every, resume_step, append_log, first_index, pressure=pressure
            )
        )
    traj = None
    if opts.traj is not None:
        frames = None if restart_data is None else restart_data.extra.get("frames", 0)
        traj = TrajectoryReporter(opts.traj, state, opts.every, frames, first_index, total)
        reporters.append(traj)
    return reporters, traj


def print_outcome(console: Console, s: RunSummary) -> None:
    """The end of a run's report: the stop message (red unless interrupted) and the
    restart file."""
    if s.message:
        console.print(f"[red]{s.message}[/]" if s.stop_reason != "interrupted" else s.message)
    if s.restart_path is not None:
        console.print(f"restart file: {s.restart_path}")
