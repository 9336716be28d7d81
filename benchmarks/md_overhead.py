"""``python -m benchmarks md``: the MD engine against peers and against itself, as ratios.

All in one run, one CPU thread (``torch.set_num_threads(1)``; TorchSim's worker too):

1. **TorchSim** (``torch-sim-atomistic``, in its own venv, :mod:`benchmarks.torchsim_env`):
   NVT Langevin (BAOAB) of Lennard-Jones argon (ε 0.0104 eV, σ 3.40 Å, r_c 8.5 Å,
   5 fs, float32) on one 864-atom cell and on 256 × 32-atom cells. Ratio = TorchSim
   time per step / mlpot time per step (> 1: mlpot faster).
2. **ASE**: ``ase.md.VelocityVerlet`` driving the same LJ model through
   :class:`~mlpot.calculator.MLPotCalculator` vs mlpot's ``run_md`` (NVE) on 864 atoms.
3. **Equivariant model** (default size, 256 Cu atoms): CPU time of ``run_md`` steps (NVE,
   Verlet list, checks) against the CPU time spent inside the model during those steps.
   Overhead = step/in-model − 1 (target < 1 %); the bare model on a ready pair list is
   printed alongside (noisier: timed apart).
4. **Batching**: Langevin on 1,024 × 32-atom argon cells vs one 32,768-atom cell at the
   same density. Ratio = batched/single time per step (target ≤ 1.5).

Blocks of steps of the compared runs are interleaved and timed by the process's CPU
time (``time.process_time``; every run is single-threaded), so other processes on a
shared machine disturb the ratios far less than wall time would; medians over blocks
are reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.build
import numpy as np
import torch
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet
from rich.console import Console
from rich.table import Table

from benchmarks import timing
from mlpot.calculator import MLPotCalculator
from mlpot.md import ForceField, Langevin, MDState, VelocityVerlet, maxwell_boltzmann, run_md
from mlpot.models import LennardJones, Potential

A_ARGON = 5.26  # Å, fcc argon near its triple point
T_ARGON = 94.0  # K
DT, FRICTION = 5.0, 0.01  # fs, 1/fs


@dataclass(frozen=True)
class Row:
    """One comparison: ``ratio`` = peer/mlpot (speed-ups) or mlpot/reference (overheads)."""

    name: str
    mlpot_ms: float
    other_ms: float
    other: str
    ratio: float
    target: str


def argon(repeat: int | tuple[int, int, int]) -> ase.Atoms:
    """fcc argon, 4·∏repeat atoms."""
    return ase.build.bulk("Ar", "fcc", a=A_ARGON, cubic=True).repeat(repeat)


def argon_lj(dtype: torch.dtype = torch.float32) -> LennardJones:
    return LennardJones(["Ar"], epsilon=0.0104, sigma=3.40, cutoff=8.5).to(dtype)


class MLPotRun:
    """``steps`` steps of ``run_md`` per call, continuing from the last state."""

    def __init__(self, model: Potential, systems: list[ase.Atoms], integrator, steps: int,
                 temperature: float = T_ARGON) -> None:
        self.ff = ForceField(model, skin=1.0)
        state = MDState.from_atoms(systems, dtype=model.dtype)
        self.state = self.ff.evaluate(maxwell_boltzmann(state, temperature))
        self.integrator, self.steps = integrator, steps

    def __call__(self) -> None:
        summary = run_md(self.state, self.integrator, self.ff, self.steps)
        if summary.stop_reason != "completed":
            raise RuntimeError(f"mlpot benchmark run stopped: {summary.message}")
        self.state = summary.state


def interleaved_times(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """CPU times (s) of several callables, run round-robin ``repeats`` times."""
    return timing.interleaved_times(fns, repeats, warmup, clock=time.process_time)


def per_step_ms(times: list[float], steps: int) -> float:
    return 1e3 * float(np.median(times)) / steps


def torchsim_rows(python: Path, blocks: int) -> list[Row]:
    """mlpot vs TorchSim, NVT Langevin LJ argon, single cell and batch."""
    cases = [{"name": "864-atom cell", "cells": 1, "repeat": 6, "steps": 20, "warmup": 3},
             {"name": "256 x 32-atom cells", "cells": 256, "repeat": 2, "steps": 5,
              "warmup": 2}]
    cfg = {"cases": cases, "a": A_ARGON, "temperature": T_ARGON, "dt_fs": DT,
           "friction": FRICTION}
    worker = Path(__file__).with_name("torchsim_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    peer: dict[str, list[float]] = {c["name"]: [] for c in cases}
    runs = {c["name"]: MLPotRun(argon_lj(), [argon(c["repeat"])] * c["cells"],
                                Langevin(DT, T_ARGON, FRICTION), c["steps"]) for c in cases}
    ours: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(blocks):  # alternate: one TorchSim process, then mlpot's blocks
        proc = subprocess.run([str(python), str(worker), json.dumps(cfg)], capture_output=True,
                              text=True, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"TorchSim worker failed:\n{proc.stderr[-2000:]}")
        for name, ms in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            peer[name].append(ms)
        for c in cases:
            times = interleaved_times({"x": runs[c["name"]]}, repeats=1,
                                      warmup=1 if not ours[c["name"]] else 0)["x"]
            ours[c["name"]].append(per_step_ms(times, c["steps"]))
    for c in cases:
        mine, theirs = float(np.median(ours[c["name"]])), float(np.median(peer[c["name"]]))
        rows.append(Row(f"Langevin LJ Ar, {c['name']}", mine, theirs, "TorchSim",
                        theirs / mine, "> 1 (mlpot ahead)"))
    return rows


class AseRun:
    """``steps`` steps of ASE's VelocityVerlet with MLPotCalculator per call."""

    def __init__(self, model: Potential, atoms: ase.Atoms, steps: int) -> None:
        self.atoms = atoms.copy()
        rng = np.random.default_rng(0)
        sigma = np.sqrt(ase.units.kB * T_ARGON / self.atoms.get_masses())[:, None]
        self.atoms.set_velocities(sigma * rng.normal(size=(len(atoms), 3)))
        self.atoms.calc = MLPotCalculator(model)
        self.dyn = AseVelocityVerlet(self.atoms, timestep=DT * ase.units.fs)
        self.steps = steps

    def __call__(self) -> None:
        self.dyn.run(self.steps)


def ase_row(blocks: int, steps: int = 20) -> Row:
    model = argon_lj()
    runs = {"mlpot": MLPotRun(model, [argon(6)], VelocityVerlet(DT), steps),
            "ase": AseRun(model, argon(6), steps)}
    t = interleaved_times(runs, repeats=blocks)
    mine, theirs = per_step_ms(t["mlpot"], steps), per_step_ms(t["ase"], steps)
    return Row("NVE LJ Ar 864 atoms", mine, theirs, "ASE VelocityVerlet + MLPotCalculator",
               theirs / mine, "> 1 (mlpot ahead)")


class TimedModel:
    """A Potential wrapper that adds up the CPU time of its calls (``seconds``)."""

    def __init__(self, model: Potential) -> None:
        self.model, self.cutoff, self.dtype, self.seconds = model, model.cutoff, model.dtype, 0.0

    def __call__(self, graph, **kwargs):
        start = time.process_time()
        out = self.model(graph, **kwargs)
        self.seconds += time.process_time() - start
        return out


def equivariant_row(blocks: int, steps: int = 5) -> Row:
    """The default EquivariantPotential (256 Cu): CPU time of ``run_md`` steps against the
    time spent inside the model during those same steps, so machine load that slows the
    model down cancels; the bare model on a ready pair list is timed alongside as a check.
    ``2 * blocks`` blocks of ``steps`` steps."""
    from mlpot.models import EquivariantPotential

    model = EquivariantPotential(species=["Cu"], cutoff=5.0).float().eval()
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)  # 256 atoms
    atoms.rattle(0.02, seed=1)
    timed = TimedModel(model)
    run = MLPotRun(timed, [atoms], VelocityVerlet(2.0), steps, temperature=300.0)
    totals, inside, bare = [], [], []
    run()  # warm-up
    for _ in range(2 * blocks):
        timed.seconds, start = 0.0, time.process_time()
        run()
        totals.append(time.process_time() - start)
        inside.append(timed.seconds)
        graph = run.ff.edges(run.state.graph)
        start = time.process_time()
        for _ in range(steps):
            model(graph.with_positions(graph.positions), compute_forces=True)
        bare.append(time.process_time() - start)
    overhead = float(np.median(np.array(totals) / np.array(inside)))
    mine, ref = per_step_ms(totals, steps), per_step_ms(inside, steps)
    print(f"equivariant: MD step / bare model call (timed apart) = "
          f"{mine / per_step_ms(bare, steps):.3f}")
    return Row("EquivariantPotential 256 Cu, MD step", mine, ref, "model time in the step",
               overhead, "< 1.01")


def batching_row(blocks: int, steps: int = 3) -> Row:
    """Langevin: 1,024 × 32 atoms vs one 32,768-atom cell (same density)."""
    runs = {"batch": MLPotRun(argon_lj(), [argon(2)] * 1024, Langevin(DT, T_ARGON, FRICTION),
                              steps),
            "single": MLPotRun(argon_lj(), [argon((16, 16, 32))],
                               Langevin(DT, T_ARGON, FRICTION), steps)}
    t = interleaved_times(runs, repeats=blocks)
    batch, single = per_step_ms(t["batch"], steps), per_step_ms(t["single"], steps)
    return Row("Langevin 1,024 x 32 Ar vs one 32,768-atom cell", batch, single,
               "single 32,768-atom cell", batch / single, "<= 1.5")


def run(blocks: int = 5, torchsim_python: str | None = None, skip_torchsim: bool = False,
        console: Console | None = None) -> list[Row]:
    """Run every comparison and print the table; returns the rows."""
    from benchmarks.torchsim_env import ensure_torchsim_venv

    console = console or Console()
    torch.set_num_threads(1)
    rows: list[Row] = []
    if not skip_torchsim:
        python = Path(torchsim_python) if torchsim_python else ensure_torchsim_venv(
            log=console.print)
        rows += torchsim_rows(python, blocks)
    rows.append(ase_row(blocks))
    rows.append(equivariant_row(blocks))
    rows.append(batching_row(blocks))
    table = Table(title="mlpot MD benchmarks (1 thread, float32; CPU time, medians)")
    for col in ("case", "mlpot ms/step", "other ms/step", "other", "ratio", "target"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, f"{r.mlpot_ms:.2f}", f"{r.other_ms:.2f}", r.other,
                      f"{r.ratio:.3f}", r.target)
    console.print(table)
    return rows
