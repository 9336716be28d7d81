"""NVE of a TransIP model on a molecule, with and without frame averaging.

``python -m benchmarks transip-md --model CHECKPOINT`` (issue 15, acceptance 4): the same
weights run twice from the same start (Maxwell–Boltzmann momenta, zero total momentum),
velocity Verlet in float64; reported per run: the conserved-energy drift (slope of a
linear fit, and the largest excursion, per atom) and the angular-momentum change
|L(t) − L(0)| about the centre of mass. An exactly rotation-invariant energy has zero
torque, so velocity Verlet keeps L to rounding; a learned, approximate invariance shows
up as a drift of L. Without ``--model`` a randomly initialised model is used (a smoke run:
its energy surface is arbitrary). Any other potential (an ``EquivariantPotential``
trained on the same data, for comparison) runs with ``--frames off``. With ``--series
PREFIX`` each run also writes its time series (``PREFIX-plain.csv`` / ``PREFIX-fa.csv``:
conserved and potential energy, temperature, |L(t) − L(0)|, shortest pair distance and
largest force), to find when and where an energy excursion happens.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.build
import numpy as np
import torch

from mlpot.checkpoint import load_model
from mlpot.md import ForceField, MDState, VelocityVerlet, maxwell_boltzmann
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
        seconds: wall time of the run.
    """

    frame_averaging: bool
    energy_drift: float
    energy_excursion: float
    angular_momentum_change: float
    angular_momentum: float
    seconds: float


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


def write_series(path: Path, samples: list[Sample], atoms: int) -> None:
    """Write ``samples`` as CSV to ``path`` (through a temporary file, then renamed).
    Energies are per atom relative to the first sample, eV/atom."""
    e0, p0, ell0 = samples[0].conserved, samples[0].potential, samples[0].angular_momentum
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["time_ps", "conserved_dE_eV_per_atom", "potential_dE_eV_per_atom",
                      "temperature_K", "dL_amu_A2_per_fs", "min_distance_A", "max_force_eV_A"])
        for s in samples:
            out.writerow([f"{s.time:.5f}", f"{(s.conserved - e0) / atoms:.6e}",
                          f"{(s.potential - p0) / atoms:.6e}", f"{s.temperature:.2f}",
                          f"{np.linalg.norm(s.angular_momentum - ell0):.4e}",
                          f"{s.min_distance:.4f}", f"{s.max_force:.4f}"])
    os.replace(tmp, path)


def nve_run(
    model: Potential,
    atoms: ase.Atoms,
    steps: int,
    timestep: float,
    temperature: float,
    every: int,
    seed: int = 0,
    series: Path | None = None,
) -> DriftResult:
    """Velocity Verlet for ``steps`` steps of ``timestep`` fs, sampled ``every`` steps
    (the samples written to ``series`` as CSV when given)."""
    force_field = ForceField(model)
    state = maxwell_boltzmann(MDState.from_atoms([atoms], seed=seed), temperature)
    state = force_field.evaluate(state)
    integrator = VelocityVerlet(timestep)
    samples = []
    start = time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0:
            samples.append(sample(state, integrator, step * timestep / 1000.0))
        if step < steps:
            state = integrator.step(state, force_field)
    seconds = time.perf_counter() - start
    n = len(atoms)
    if series is not None:
        write_series(series, samples, n)
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
) -> list[DriftResult]:
    """Run NVE with and without frame averaging; print and return both results
    (also written to ``json_out`` with the run's settings when given). ``frames``:
    ``both``, ``off`` (without frame averaging only) or ``on`` (with it only), so the two
    runs can go to two processes. ``series``: a path prefix for the time series of each
    run (``-plain.csv``, ``-fa.csv``)."""
    if frames not in ("both", "off", "on"):
        raise ValueError(f"frames: {frames!r}, expected both, off or on")
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
        f"{temperature} K start, float64, model {model_path or 'random init'}"
    )
    print(
        f"{'frames':>8} {'dE/dt eV/atom/ps':>18} {'max|dE| eV/atom':>16} "
        f"{'max|dL|':>10} {'|L0|':>10} {'s':>7}"
    )
    results = []
    chosen = {"both": (False, True), "off": (False,), "on": (True,)}[frames]
    for enabled in chosen:
        path = None if series is None else Path(f"{series}-{'fa' if enabled else 'plain'}.csv")
        r = nve_run(
            with_frame_averaging(model, enabled), atoms, steps, timestep, temperature, every,
            series=path,
        )
        results.append(r)
        print(
            f"{'4 (FA)' if enabled else 'none':>8} {r.energy_drift:>18.2e} "
            f"{r.energy_excursion:>16.2e} {r.angular_momentum_change:>10.2e} "
            f"{r.angular_momentum:>10.2e} {r.seconds:>7.1f}"
        )
        if json_out:
            settings = {"model": model_path, "molecule": molecule, "atoms": len(atoms),
                        "time_ps": time_ps, "steps": steps, "timestep_fs": timestep,
                        "temperature_K": temperature, "dtype": "float64"}
            runs = [dataclasses.asdict(x) for x in results]
            Path(json_out).write_text(json.dumps({**settings, "runs": runs}, indent=2))
    return results
