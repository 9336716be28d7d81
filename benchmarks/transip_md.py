"""NVE of a TransIP model on a molecule, with and without frame averaging.

``python -m benchmarks transip-md --model CHECKPOINT`` (issue 15, acceptance 4): the same
weights run twice from the same start, velocity Verlet in float64; reported per run: the
conserved-energy drift (slope of a linear fit, and the largest excursion, per atom), the
angular-momentum change |L(t) − L(0)| about the centre of mass and the mean temperature.

The start (:func:`prepare_start`, with the model without frame averaging): ASE's
geometry relaxed with FIRE to ``relax_fmax`` (the molecule's own minimum on the model's
surface; ASE's geometry is not, and starting there puts the excess potential energy
into the run as heat), Maxwell–Boltzmann momenta at the temperature (zero total
momentum), then ``equilibrate_ps`` of Langevin dynamics at that temperature, so the NVE
runs start thermalised instead of at the minimum with all the energy kinetic.
``relax_fmax=None`` and ``equilibrate_ps=0`` give the older protocol (ASE's geometry and
fresh Maxwell–Boltzmann momenta). An exactly rotation-invariant energy has zero
torque, so velocity Verlet keeps L to rounding; a learned, approximate invariance shows
up as a drift of L. Without ``--model`` a randomly initialised model is used (a smoke run:
its energy surface is arbitrary). Any other potential (an ``EquivariantPotential``
trained on the same data, for comparison) runs with ``--frames off``. With ``--series
PREFIX`` each run also writes its time series (``PREFIX-plain.csv`` / ``PREFIX-fa.csv``:
conserved and potential energy, temperature, |L(t) − L(0)|, shortest pair distance and
largest force), to find when and where an energy excursion happens. The rows are written
as they are sampled to ``PREFIX-*.csv.partial`` (so a killed run leaves its series up to
that point) and the file is renamed to ``PREFIX-*.csv`` when the run completes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import ase
import ase.build
import numpy as np
import torch

from mlpot.checkpoint import load_model
from mlpot.md import FIRE, ForceField, Langevin, MDState, VelocityVerlet, maxwell_boltzmann
from mlpot.md.state import extend_state
from mlpot.models import Potential, TransIPPotential


@dataclass(frozen=True)
class DriftResult:
    """One NVE run.

    Attributes:
        frame_averaging: whether the energy was frame-averaged.
        energy_drift: slope of the conserved energy per atom, eV/atom/ps.
        energy_excursion: max |E(t) − E(0)| per atom, eV/atom.
        angular_momentum_change: max |L(t) − L(0)|, amu·Å²/fs.
        angular_momentum: |L(0)|, amu·Å²/fs.
        mean_temperature: mean of the sampled instantaneous temperatures, K.
        seconds: wall time of the run.
    """

    frame_averaging: bool
    energy_drift: float
    energy_excursion: float
    angular_momentum_change: float
    angular_momentum: float
    mean_temperature: float
    seconds: float


@dataclass(frozen=True)
class Start:
    """How the NVE start was prepared (:func:`prepare_start`).

    Attributes:
        relaxed: whether FIRE relaxed ASE's geometry first.
        relax_steps: FIRE steps taken.
        relax_energy_drop: E(ASE geometry) − E(relaxed) per atom, eV/atom.
        relax_fmax: largest force after relaxing, eV/Å.
        equilibrate_ps: Langevin time before the NVE runs, ps.
        temperature: instantaneous temperature of the start, K.
    """

    relaxed: bool
    relax_steps: int
    relax_energy_drop: float
    relax_fmax: float
    equilibrate_ps: float
    temperature: float

    def describe(self) -> str:
        geometry = (f"relaxed in {self.relax_steps} FIRE steps "
                    f"({1e3 * self.relax_energy_drop:.1f} meV/atom below ASE's geometry, "
                    f"largest force {self.relax_fmax:.1e} eV/A)" if self.relaxed
                    else f"ASE's geometry (largest force {self.relax_fmax:.2f} eV/A)")
        return (f"{geometry}, {self.equilibrate_ps} ps Langevin, "
                f"T = {self.temperature:.0f} K")


def with_frame_averaging(model: Potential, enabled: bool) -> Potential:
    """The same weights with ``frame_averaging`` set (it adds no parameters); a model
    other than TransIP is returned as it is when ``enabled`` is False."""
    if not isinstance(model, TransIPPotential):
        if enabled:
            raise ValueError(f"frame averaging needs a TransIPPotential, not a "
                             f"{type(model).__name__}: use --frames off")
        return model.eval()
    config = dataclasses.replace(model.config, frame_averaging=enabled)
    out = TransIPPotential(**dataclasses.asdict(config)).to(model.dtype)
    out.load_state_dict(model.state_dict())
    return out.eval()


def angular_momentum(state: MDState) -> torch.Tensor:
    """``[3]`` L = Σ m (r − r_cm) × v of a single-system state, amu·Å²/fs."""
    masses = state.masses[:, None]
    centre = (masses * state.positions).sum(0) / masses.sum()
    return torch.linalg.cross(state.positions - centre, state.momenta).sum(0)


@dataclass(frozen=True)
class Sample:
    """One sampled step of an NVE run (single system).

    Attributes:
        time: ps.
        conserved: conserved energy, eV.
        potential: potential energy, eV.
        temperature: instantaneous temperature, K.
        angular_momentum: ``[3]`` L about the centre of mass, amu·Å²/fs.
        min_distance: shortest pair distance, Å.
        max_force: largest per-atom |F|, eV/Å.
    """

    time: float
    conserved: float
    potential: float
    temperature: float
    angular_momentum: np.ndarray
    min_distance: float
    max_force: float


def sample(state: MDState, integrator: VelocityVerlet, time_ps: float) -> Sample:
    """The observables of a single-system ``state`` at ``time_ps``."""
    positions = state.positions.detach()
    distances = torch.pdist(positions) if len(positions) > 1 else positions.new_full((1,), 0.0)
    return Sample(
        time_ps,
        float(integrator.conserved_energy(state)[0]),
        float(state.energy[0]),
        float(state.temperature()[0]),
        angular_momentum(state).detach().numpy(),
        float(distances.min()),
        float(state.forces.detach().norm(dim=1).max()),
    )


class SeriesWriter:
    """Streams the samples of one run as CSV rows (energies per atom relative to the
    first sample, eV/atom) to ``path`` + ``.partial``, flushed per row; :meth:`close`
    renames the finished file to ``path``. A run that dies leaves the ``.partial`` file
    with every row sampled so far and no half-written ``path``."""

    HEADER = ("time_ps", "conserved_dE_eV_per_atom", "potential_dE_eV_per_atom",
              "temperature_K", "dL_amu_A2_per_fs", "min_distance_A", "max_force_eV_A")

    def __init__(self, path: Path, atoms: int) -> None:
        self.path, self.atoms = path, atoms
        self.partial = path.with_name(path.name + ".partial")
        self._file: TextIO = self.partial.open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.HEADER)
        self._first: Sample | None = None

    def write(self, s: Sample) -> None:
        first = self._first = self._first or s
        self._csv.writerow([
            f"{s.time:.5f}", f"{(s.conserved - first.conserved) / self.atoms:.6e}",
            f"{(s.potential - first.potential) / self.atoms:.6e}", f"{s.temperature:.2f}",
            f"{np.linalg.norm(s.angular_momentum - first.angular_momentum):.4e}",
            f"{s.min_distance:.4f}", f"{s.max_force:.4f}"])
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        os.replace(self.partial, self.path)


def prepare_start(
    model: Potential,
    atoms: ase.Atoms,
    temperature: float,
    timestep: float,
    relax_fmax: float | None = 0.01,
    equilibrate_ps: float = 2.0,
    friction: float = 0.01,
    seed: int = 0,
) -> tuple[MDState, Start]:
    """The NVE start: FIRE to ``relax_fmax`` eV/Å (None: ASE's geometry as given),
    Maxwell–Boltzmann momenta at ``temperature`` K, then ``equilibrate_ps`` ps of BAOAB
    Langevin (``friction`` 1/fs, ``timestep`` fs). Raises if FIRE does not converge in
    5000 steps."""
    force_field = ForceField(model)
    state = force_field.evaluate(MDState.from_atoms([atoms], seed=seed))
    n = len(atoms)
    relax_steps, drop = 0, 0.0
    if relax_fmax is not None:
        result = FIRE(fmax=relax_fmax, max_steps=5000).run(state, force_field)
        if not bool(result.converged.all()):
            raise ValueError(f"FIRE did not reach fmax {relax_fmax} eV/A in 5000 steps "
                             f"(largest force {float(result.fmax.max()):.3g} eV/A)")
        relax_steps, drop = result.steps, float(state.energy[0] - result.state.energy[0]) / n
        state = result.state
    fmax = float(state.forces.detach().norm(dim=1).max())
    state = maxwell_boltzmann(state, temperature)
    steps = round(equilibrate_ps * 1000.0 / timestep)
    if steps:
        thermostat = Langevin(timestep, temperature, friction=friction)
        for _ in range(steps):
            state = thermostat.step(state, force_field)
        # back to a plain MDState (the thermostat's heat dropped), clock at 0
        state = extend_state(state, MDState).replace(step=0, time=0.0)
    temperature_now = float(state.temperature()[0])
    return state, Start(relax_fmax is not None, relax_steps, drop, fmax, equilibrate_ps,
                        temperature_now)


def nve_run(
    model: Potential,
    start: MDState,
    steps: int,
    timestep: float,
    every: int,
    series: Path | None = None,
) -> DriftResult:
    """Velocity Verlet from ``start`` (a single system; forces recomputed with ``model``)
    for ``steps`` steps of ``timestep`` fs, sampled ``every`` steps (streamed to
    ``series`` as CSV when given)."""
    force_field = ForceField(model)
    state = force_field.evaluate(start)
    integrator = VelocityVerlet(timestep)
    writer = None if series is None else SeriesWriter(series, state.num_atoms)
    samples = []
    t0 = time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0:
            samples.append(sample(state, integrator, step * timestep / 1000.0))
            if writer is not None:
                writer.write(samples[-1])
        if step < steps:
            state = integrator.step(state, force_field)
    seconds = time.perf_counter() - t0
    if writer is not None:
        writer.close()
    n = state.num_atoms
    times = [s.time for s in samples]
    e = (np.array([s.conserved for s in samples]) - samples[0].conserved) / n
    slope = float(np.polyfit(times, e, 1)[0]) if len(times) > 1 else 0.0
    ell = np.array([s.angular_momentum for s in samples])
    return DriftResult(
        getattr(model.config, "frame_averaging", False),
        slope,
        float(np.abs(e).max()),
        float(np.linalg.norm(ell - ell[0], axis=1).max()),
        float(np.linalg.norm(ell[0])),
        float(np.mean([s.temperature for s in samples])),
        seconds,
    )


def run(
    model_path: str | None = None,
    molecule: str = "CH3CH2OH",
    time_ps: float = 1.0,
    timestep: float = 0.5,
    temperature: float = 300.0,
    every: int = 20,
    threads: int = 1,
    json_out: str | None = None,
    frames: str = "both",
    series: str | None = None,
    relax_fmax: float | None = 0.01,
    equilibrate_ps: float = 2.0,
) -> list[DriftResult]:
    """Prepare the start (:func:`prepare_start`), then run NVE with and without frame
    averaging; print and return both results (also written to ``json_out`` with the
    run's settings when given). ``frames``: ``both``, ``off`` (without frame averaging
    only) or ``on`` (with it only), so the two runs can go to two processes (the start
    is the same: it is prepared without frames, from ``seed`` 0). ``series``: a path
    prefix for the time series of each run (``-plain.csv``, ``-fa.csv``)."""
    if frames not in ("both", "off", "on"):
        raise ValueError(f"frames: {frames!r}, expected both, off or on")
    if equilibrate_ps < 0 or (relax_fmax is not None and not relax_fmax > 0):
        raise ValueError(f"need equilibrate_ps >= 0 and relax_fmax > 0 (or None), got "
                         f"{equilibrate_ps}, {relax_fmax}")
    torch.set_num_threads(threads)
    if model_path is None:
        torch.manual_seed(0)
        model = TransIPPotential(["H", "C", "N", "O"])
    else:
        loaded = load_model(model_path)
        if not isinstance(loaded, Potential):
            raise ValueError(f"{model_path}: a {type(loaded).__name__}, not a potential")
        model = loaded
    model = model.double()
    atoms = ase.build.molecule(molecule)
    steps = round(time_ps * 1000.0 / timestep)
    print(
        f"NVE {molecule} ({len(atoms)} atoms), {time_ps} ps = {steps} steps of {timestep} fs, "
        f"{temperature} K, float64, model {model_path or 'random init'}"
    )
    state, start = prepare_start(with_frame_averaging(model, False), atoms, temperature,
                                 timestep, relax_fmax, equilibrate_ps)
    print(f"start: {start.describe()}")
    print(
        f"{'frames':>8} {'dE/dt eV/atom/ps':>18} {'max|dE| eV/atom':>16} "
        f"{'max|dL|':>10} {'|L0|':>10} {'<T> K':>7} {'s':>7}"
    )
    results = []
    chosen = {"both": (False, True), "off": (False,), "on": (True,)}[frames]
    for enabled in chosen:
        path = None if series is None else Path(f"{series}-{'fa' if enabled else 'plain'}.csv")
        r = nve_run(with_frame_averaging(model, enabled), state, steps, timestep, every,
                    series=path)
        results.append(r)
        print(
            f"{'4 (FA)' if enabled else 'none':>8} {r.energy_drift:>18.2e} "
            f"{r.energy_excursion:>16.2e} {r.angular_momentum_change:>10.2e} "
            f"{r.angular_momentum:>10.2e} {r.mean_temperature:>7.0f} {r.seconds:>7.1f}"
        )
        if json_out:
            settings = {"model": model_path, "molecule": molecule, "atoms": len(atoms),
                        "time_ps": time_ps, "steps": steps, "timestep_fs": timestep,
                        "temperature_K": temperature, "dtype": "float64",
                        "start": dataclasses.asdict(start)}
            runs = [dataclasses.asdict(x) for x in results]
            tmp = Path(f"{json_out}.tmp")
            tmp.write_text(json.dumps({**settings, "runs": runs}, indent=2))
            os.replace(tmp, json_out)
    return results
