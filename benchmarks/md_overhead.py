"""MD engine overhead: mlpot's NVE loop vs the bare model and vs ASE, plus batching speed-up.

For 864-atom fcc Cu and each model (LennardJones; the default-size
``EquivariantPotential``) it measures, in the same run:

* ``bare``: the model alone (energy + forces) on a ready pair list of r < r_c;
* ``mlpot``: one step of the NVE loop (``run_md`` with VelocityVerlet, Verlet-skin
  list, blow-up checks, a thermo log and a DCD trajectory every 10 steps);
* ``in-model``: the part of that step spent inside the model call;
* ``ase``: one step of ``ase.md.VelocityVerlet`` driving the same model through
  ``MLPotCalculator``.

Overhead = (mlpot − in-model)/mlpot, per block (median): integrator, neighbour list (check, rebuild,
pruning to the cutoff) and reporters; "vs bare" = (mlpot − bare)/mlpot also counts
any slow-down of the model itself. The reporters stay open across the timed blocks
(one long run), so opening files happens once, as in a real run. A second LJ row
hands the model the whole skin list instead (no pruning): less overhead outside the
model, more inside it.

Both loops drive the same model along the same trajectory, so their difference lies
outside the model call; the last columns give that per-step time for each (for ASE:
``AtomicGraph`` from the Atoms, a fresh pair list every step, its integrator), which
resolves the comparison far better than the ratio of totals when the model dominates.
Then 16 small systems are advanced as one batch and one by one.
"""

from __future__ import annotations

import importlib.util
import tempfile
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

from benchmarks.timing import interleaved_median_times, interleaved_times
from mlpot.calculator import MLPotCalculator
from mlpot.md import ForceField, MDState, VelocityVerlet, maxwell_boltzmann
from mlpot.md.reporters import ThermoReporter, TrajectoryReporter
from mlpot.md.simulate import run_md
from mlpot.models import LennardJones, Potential
from mlpot.neighbors import with_neighbors

#: Halicioğlu & Pound (1975) LJ parameters for Cu, with a 5 Å cutoff like an MLIP's.
CU_LJ = {"epsilon": 0.4093, "sigma": 2.338, "cutoff": 5.0}


class _TimedModel:
    """Wraps a Potential and accumulates the wall time of its calls. A graph without a
    pair list (the ASE calculator's) gets one first, outside the timed part: building
    it is the caller's cost, not the model's."""

    def __init__(self, model: Potential) -> None:
        self.model, self.cutoff, self.seconds = model, model.cutoff, 0.0
        self.cuda = model.e0.device.type == "cuda"
        self.dtype, self.e0 = model.dtype, model.e0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, graph, **kwargs):
        if graph.edge_index is None:
            graph = with_neighbors(graph, self.cutoff)
        self._sync()
        start = time.perf_counter()
        out = self.model(graph, **kwargs)
        self._sync()
        self.seconds += time.perf_counter() - start
        return out


@dataclass
class OverheadRow:
    name: str
    model_ms: float
    mlpot_ms: float
    in_model_ms: float
    ase_ms: float
    outside_ms: float  # per step outside the model call: median over blocks (paired)
    ase_outside_ms: float
    overhead: float  # median over blocks of outside / step
    overhead_range: tuple[float, float]  # lowest and highest block
    rebuilds: int
    steps: int
    ase_ratio: float  # median over blocks of the paired ratio ase/mlpot
    ase_slower_blocks: int  # blocks in which the ASE loop was the slower one
    blocks: int

    @property
    def over_bare(self) -> float:
        """Share of the step beyond the bare model on a ready r < r_c list (stricter:
        also counts a model slowed down by the pair list it is handed)."""
        return (self.mlpot_ms - self.model_ms) / self.mlpot_ms


def fcc_cu(repeat: int = 6, rattle: float = 0.0, seed: int = 0) -> ase.Atoms:
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


class _KeepOpen:
    """A reporter whose ``close`` waits for the end of the benchmark: the timed blocks
    continue one long run, so opening files and writing the PDB topology happen once."""

    def __init__(self, reporter) -> None:
        self.reporter = reporter
        # the reporter's own methods, so the loop calls them without an extra layer
        self.due, self.report = reporter.due, reporter.report

    def close(self) -> None:
        pass


class _MlpotLoop:
    """Blocks of mlpot NVE steps with a thermo log and a DCD trajectory every 10 steps."""

    def __init__(self, model, atoms, steps, dt, device, skin, workdir: Path,
                 prune: bool = True) -> None:
        state = MDState.from_atoms(atoms, seed=1, dtype=model.dtype, device=device)
        self.timed = _TimedModel(model)
        self.ff = ForceField(model, skin=skin, prune=prune)
        self.ff.model = self.timed
        self.state = self.ff.evaluate(maxwell_boltzmann(state, 300.0))
        self.vv, self.steps, self.workdir = VelocityVerlet(dt), steps, workdir
        self.in_model: list[float] = []
        self.rebuilds = 0
        # no pressure column: the ASE loop computes no stress either
        self.reporters = [ThermoReporter(workdir / "log.csv", 10, pressure=False)]
        if importlib.util.find_spec("mdtraj") is not None:
            self.reporters.append(TrajectoryReporter(workdir / "traj.dcd", self.state, 10))

    def close(self) -> None:
        for r in self.reporters:
            r.close()

    def __call__(self) -> None:
        self.timed.seconds = 0.0
        before = self.ff.rebuilds
        summary = run_md(self.state, self.vv, self.ff, self.steps,
                         [_KeepOpen(r) for r in self.reporters], report_initial=False)
        self.state = summary.state
        self.in_model.append(self.timed.seconds / self.steps)
        self.rebuilds += self.ff.rebuilds - before


class _AseLoop:
    """Blocks of ase.md.VelocityVerlet steps through MLPotCalculator."""

    def __init__(self, model, atoms, steps, dt, velocities: np.ndarray) -> None:
        self.atoms = atoms.copy()
        self.atoms.calc = MLPotCalculator(model)
        self.timed = _TimedModel(model)
        self.atoms.calc.model = self.timed
        self.atoms.set_velocities(velocities / ase.units.fs)  # Å/fs → ASE units
        self.dyn = AseVelocityVerlet(self.atoms, timestep=dt * ase.units.fs)
        self.steps = steps
        self.in_model: list[float] = []

    def __call__(self) -> None:
        self.timed.seconds = 0.0
        self.dyn.run(self.steps)
        self.in_model.append(self.timed.seconds / self.steps)


def overhead_row(name, model, steps=300, dt=2.0, device="cpu", skin=1.0, repeats=3,
                 prune: bool = True) -> OverheadRow:
    """Median per-step times of the bare model, the mlpot loop and the ASE loop (interleaved)."""
    atoms = fcc_cu(6)
    graph = with_neighbors(MDState.from_atoms(atoms, dtype=model.dtype, device=device).graph,
                           model.cutoff)
    with tempfile.TemporaryDirectory() as tmp:
        mlpot_loop = _MlpotLoop(model, atoms, steps, dt, device, skin, Path(tmp), prune)
        # the same start (positions and 300 K velocities): both loops follow the same
        # trajectory, so the model sees the same number of pairs in both
        ase_loop = _AseLoop(model, atoms, steps, dt,
                            mlpot_loop.state.velocities.detach().cpu().double().numpy())
        samples = interleaved_times(
            {"model": lambda: model(graph), "mlpot": mlpot_loop, "ase": ase_loop},
            repeats=repeats)
        mlpot_loop.close()
    times = {name: float(np.median(t)) for name, t in samples.items()}
    # per block (the warm-up block has no sample): time outside the model, paired
    step = np.asarray(samples["mlpot"]) / steps
    outside = step - np.asarray(mlpot_loop.in_model[1:])
    ase_outside = np.asarray(samples["ase"]) / steps - np.asarray(ase_loop.in_model[1:])
    ratios = np.asarray(samples["ase"]) / np.asarray(samples["mlpot"])
    return OverheadRow(name, times["model"] * 1e3, times["mlpot"] / steps * 1e3,
                       float(np.median(mlpot_loop.in_model[1:])) * 1e3,
                       times["ase"] / steps * 1e3, float(np.median(outside)) * 1e3,
                       float(np.median(ase_outside)) * 1e3, float(np.median(outside / step)),
                       (float(np.min(outside / step)), float(np.max(outside / step))),
                       mlpot_loop.rebuilds,
                       steps * repeats, float(np.median(ratios)), int((ratios >= 1).sum()),
                       repeats)


def batching_speedup(model, n_systems=16, steps=30, dt=2.0, device="cpu") -> tuple[float, float]:
    """(one batch, one by one) seconds per step for ``n_systems`` rattled 32-atom Cu cells."""
    systems = [fcc_cu(2, rattle=0.05, seed=k) for k in range(n_systems)]

    def prepare(group):
        state = maxwell_boltzmann(MDState.from_atoms(group, dtype=model.dtype, device=device),
                                  300.0)
        ff = ForceField(model, skin=1.0, prune=True)
        return ff.evaluate(state), ff

    batch = prepare(systems)
    singles = [prepare([a]) for a in systems]
    vv = VelocityVerlet(dt)

    def run_batch():
        run_md(batch[0], vv, batch[1], steps)

    def run_singles():
        for s, ff in singles:
            run_md(s, vv, ff, steps)

    times = interleaved_median_times({"batch": run_batch, "singles": run_singles}, repeats=3)
    return times["batch"] / steps, times["singles"] / steps


def equivariant_model(device: str, dtype: torch.dtype) -> Potential:
    """The default-size equivariant model for Cu (random weights; speed does not depend on them)."""
    from mlpot.models import EquivariantPotential

    return EquivariantPotential(species=["Cu"], cutoff=5.0).to(device=device, dtype=dtype).eval()


def run(steps: int = 300, device: str = "cpu", dtype: str = "float32",
        n_systems: int = 16, ml_steps: int = 5, ml_blocks: int = 9,
        blocks: int = 5) -> list[OverheadRow]:
    """Print the overhead table and the batching speed-up; return the rows."""
    console = Console(width=max(Console().width, 170))
    torch_dtype = getattr(torch, dtype)
    lj = LennardJones(["Cu"], **CU_LJ).to(device=device, dtype=torch_dtype)
    rows = [overhead_row("LennardJones", lj, steps=steps, device=device, repeats=blocks)]
    if ml_steps > 0:
        rows.append(overhead_row("EquivariantPotential", equivariant_model(device, torch_dtype),
                                 steps=ml_steps, device=device, repeats=ml_blocks))
    # the trade-off for a model as cheap as LJ: no pruning, the model sees the whole skin list
    rows.insert(1, overhead_row("LJ, no pruning", lj, steps=steps, device=device,
                                repeats=blocks, prune=False))
    table = Table(title=f"NVE, 864-atom fcc Cu, {dtype}, {device}: ms per step, median of "
                  f"{blocks} interleaved blocks of {steps} steps ({ml_blocks} of {ml_steps} "
                  "for the equivariant model); ase/mlpot: median of the per-block ratios (blocks "
                  "in which ASE was slower)")
    for col in ("model", "bare", "mlpot", "in-model", "overhead (blocks)", "vs bare", "ase",
                "ase/mlpot", "outside model: mlpot | ase", "rebuilds"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r.name, f"{r.model_ms:.2f}", f"{r.mlpot_ms:.2f}", f"{r.in_model_ms:.2f}",
                      f"{r.overhead:.1%} ({r.overhead_range[0]:.1%}-{r.overhead_range[1]:.1%})",
                      f"{r.over_bare:.1%}", f"{r.ase_ms:.2f}",
                      f"{r.ase_ratio:.3f}x ({r.ase_slower_blocks}/{r.blocks})",
                      f"{r.outside_ms:.3f} | {r.ase_outside_ms:.3f}",
                      f"{r.rebuilds}/{r.steps}")

    console.print(table)
    if importlib.util.find_spec("mdtraj") is None:
        console.print("[yellow]mdtraj missing: no DCD trajectory in the timed loop[/]")
    batch_s, single_s = batching_speedup(lj, n_systems=n_systems, device=device)
    console.print(f"batching {n_systems} x 32-atom Cu (LJ): {batch_s * 1e3:.2f} ms/step as one "
                  f"batch vs {single_s * 1e3:.2f} ms/step one by one -> "
                  f"{single_s / batch_s:.2f}x speed-up")
    return rows
