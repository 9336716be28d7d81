"""Reference trajectories for TrajCast forecasters: frames every forecast interval.

Each trajectory: Maxwell–Boltzmann velocities at T (seeded), Langevin equilibration,
total momentum removed, then microcanonical velocity Verlet with a small time step
``md_dt_fs``; every ``forecast_fs`` (an integer multiple of ``md_dt_fs``) one frame
is stored in the packed HDF5 store (:mod:`mlpot.datasets.store`) with its unwrapped
positions, velocities, cell, energy and forces. The production part is NVE so the
targets (the next frame's Δx and v) are the deterministic dynamics of the reference;
different temperatures and seeds give the thermal spread.

Frames of one trajectory are consecutive rows with the same ``group``
(``"<name>/T<temperature>/<k>"``); ``data_id`` records the interval as
``"forecast_fs=<Δt>"``. :class:`mlpot.datasets.forecast.ForecastPairs` reads
(frame, next frame) pairs back as training samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ase
import ase.build
import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from mlpot.datasets.reference.common import GenerationResult
from mlpot.datasets.store import PackedStoreWriter

DATA_ID_PREFIX = "forecast_fs="


def _snapshot(atoms: ase.Atoms, group: str, data_id: str) -> ase.Atoms:
    """Copy with velocities, energy and forces frozen (positions as ASE holds them:
    unwrapped, since ASE's MD never wraps)."""
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, **results)
    out.info = {"group": group, "data_id": data_id}
    return out


def _zero_total_momentum(atoms: ase.Atoms) -> None:
    masses, p = atoms.get_masses()[:, None], atoms.get_momenta()
    atoms.set_momenta(p - masses * p.sum(0) / masses.sum())


def _thermalise(atoms: ase.Atoms, temperature: float, rng: np.random.Generator) -> None:
    masses = atoms.get_masses()[:, None]
    p = rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * temperature)
    atoms.set_momenta(p)
    _zero_total_momentum(atoms)


def reference_trajectories(
    path: str | Path,
    structure: ase.Atoms,
    calculator: Callable[[], Calculator],
    name: str,
    temperatures: Sequence[float],
    md_dt_fs: float,
    forecast_fs: float,
    frames: int,
    trajectories_per_temperature: int = 1,
    equilibration_fs: float = 500.0,
    friction_per_fs: float = 0.01,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    melt_temperature: float | None = None,
    melt_fs: float = 0.0,
) -> GenerationResult:
    """Run reference MD and store ``frames`` frames per trajectory in ``path``.

    Args:
        path: the packed store (written atomically).
        structure: starting structure (copied; periodic or isolated).
        calculator: makes the reference calculator (EMT, LennardJones, ...).
        name: label of the system in the group names.
        temperatures: K, one set of trajectories each.
        md_dt_fs: reference time step, fs.
        forecast_fs: interval between stored frames, fs (a multiple of ``md_dt_fs``).
        frames: frames per trajectory (≥ 2).
        trajectories_per_temperature: independent runs per temperature.
        equilibration_fs: Langevin equilibration before the stored NVE part, fs.
        friction_per_fs: Langevin friction, 1/fs.
        melt_temperature: if set, first ``melt_fs`` of Langevin MD at this temperature
            (K) so that a liquid starting from a lattice really melts before it is cooled
            to T by the equilibration (a perfect fcc lattice superheats for picoseconds).
        melt_fs: length of that melting run, fs.
        seed: seeds velocities and Langevin noise.
        progress: called with (frames written, total).
    """
    stride = round(forecast_fs / md_dt_fs)
    if stride < 1 or abs(stride * md_dt_fs - forecast_fs) > 1e-9 * forecast_fs:
        raise ValueError(f"forecast_fs={forecast_fs} is not a multiple of md_dt_fs={md_dt_fs}")
    if frames < 2:
        raise ValueError(f"need at least 2 frames per trajectory, got {frames}")
    start, total = time.perf_counter(), len(temperatures) * trajectories_per_temperature * frames
    data_id, written = f"{DATA_ID_PREFIX}{forecast_fs:g}", 0
    with PackedStoreWriter(path) as writer:
        for t_index, temperature in enumerate(temperatures):
            for k in range(trajectories_per_temperature):
                run_seed = seed + 1000 * t_index + k
                atoms = structure.copy()
                atoms.calc = calculator()
                _thermalise(atoms, temperature, np.random.default_rng(run_seed))
                if melt_temperature is not None and melt_fs > 0:
                    Langevin(
                        atoms,
                        md_dt_fs * units.fs,
                        temperature_K=melt_temperature,
                        friction=friction_per_fs / units.fs,
                        fixcm=False,
                        rng=np.random.default_rng(run_seed + 2),
                    ).run(round(melt_fs / md_dt_fs))
                Langevin(
                    atoms,
                    md_dt_fs * units.fs,
                    temperature_K=temperature,
                    friction=friction_per_fs / units.fs,
                    fixcm=False,
                    rng=np.random.default_rng(run_seed + 1),
                ).run(round(equilibration_fs / md_dt_fs))
                _zero_total_momentum(atoms)
                nve = VelocityVerlet(atoms, md_dt_fs * units.fs)
                group = f"{name}/T{temperature:g}/{k}"
                for f in range(frames):
                    if f:
                        nve.run(stride)
                    writer.add(_snapshot(atoms, group, data_id))
                    written += 1
                    if progress is not None:
                        progress(written, total)
    return GenerationResult(
        path=Path(path),
        structures=written,
        failed=0,
        rejected=0,
        seconds=time.perf_counter() - start,
        kinds={name: written},
    )


def copper_emt_reference(
    path: str | Path,
    size: int = 3,
    temperatures: Sequence[float] = (300.0, 450.0, 600.0),
    forecast_fs: float = 10.0,
    frames: int = 50,
    **kw: Any,
) -> GenerationResult:
    """fcc Cu (``size``³ conventional cells, periodic) with ASE's EMT, 1 fs reference step."""
    from ase.calculators.emt import EMT

    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(size)
    return reference_trajectories(
        path, cu, EMT, "Cu-fcc", temperatures, 1.0, forecast_fs, frames, **kw
    )


def argon_lj_reference(
    path: str | Path,
    size: int = 3,
    density_g_cm3: float = 1.4,
    temperatures: Sequence[float] = (90.0, 120.0),
    forecast_fs: float = 20.0,
    frames: int = 50,
    melt_temperature: float = 300.0,
    melt_fs: float = 2000.0,
    **kw: Any,
) -> GenerationResult:
    """Liquid argon (fcc start, ``size``³ cells at the given density) with mlpot's
    Lennard-Jones (ε 0.0104 eV, σ 3.40 Å, r_c 8.5 Å), 2 fs reference step.

    The lattice is melted at ``melt_temperature`` for ``melt_fs`` first: without it the
    90 K runs (and some at 120 K) stay fcc crystals for the whole trajectory (MSD
    plateau ~1 Å², measured). ``melt_fs=0`` reproduces the data of the shipped
    ``mlpot-ar-trajcast``."""
    import torch

    from mlpot.calculator import MLPotCalculator
    from mlpot.models import LennardJones

    mass_g = 39.948 / 6.02214076e23
    a = (4 * mass_g / density_g_cm3) ** (1 / 3) * 1e8  # Å, 4 atoms per fcc cell
    argon = ase.build.bulk("Ar", "fcc", a=a, cubic=True).repeat(size)
    model = LennardJones(["Ar"], epsilon=0.0104, sigma=3.40, cutoff=8.5).to(torch.float64)
    return reference_trajectories(
        path,
        argon,
        lambda: MLPotCalculator(model),
        "Ar-liquid",
        temperatures,
        2.0,
        forecast_fs,
        frames,
        melt_temperature=melt_temperature,
        melt_fs=melt_fs,
        **kw,
    )


def molecule_xtb_reference(
    path: str | Path,
    molecule: str = "CH3CH2OH",
    temperatures: Sequence[float] = (300.0, 400.0),
    forecast_fs: float = 5.0,
    frames: int = 50,
    **kw: Any,
) -> GenerationResult:
    """A small molecule in vacuum (``ase.build.molecule`` name, default ethanol) with
    GFN2-xTB (tblite, one OpenMP thread), 0.5 fs reference step."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tblite.ase import TBLite

    atoms = ase.build.molecule(molecule)
    atoms.center()
    return reference_trajectories(
        path,
        atoms,
        lambda: TBLite(method="GFN2-xTB", verbosity=0),
        f"{molecule}-xtb",
        temperatures,
        0.5,
        forecast_fs,
        frames,
        **kw,
    )
