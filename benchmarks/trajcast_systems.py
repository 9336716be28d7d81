"""The three TrajCast validation systems: start structure, reference MD, rollout, MD peer.

Each system starts from one equilibrated state (reference Langevin MD from a seeded
Maxwell–Boltzmann start, then total momentum, and for the molecule angular momentum,
removed). From it run, over the same simulated time and with the same CSVR (Bussi)
thermostat target and time constant:

* the reference MD: ASE's ``Bussi`` integrator with the reference calculator at its
  small time step (Cu, ethanol), or for argon ``replicas`` independent copies run as
  one batch by mlpot's engine (CSVR, the same thermostat; each copy its own noise
  stream), together covering the rollout's simulated time; sampled every forecast
  interval and cached in an ``.npz`` keyed by system, length, interval, temperature
  and seed, so reruns are cheap;
* the rollout: the shipped forecaster through :func:`mlpot.md.run_md` with a
  :class:`~mlpot.md.rollout.ForecastStep`;
* the speed peer: ``mlpot md``'s engine (CSVR, :class:`~mlpot.md.ForceField`) with an
  :class:`~mlpot.models.EquivariantPotential` of the forecaster's size (same cutoff,
  channels, lmax, layers; weights untrained: only its cost is used) at the reference
  time step.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.build
import numpy as np
import torch
from ase import units
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

from mlpot.checkpoint import load_model
from mlpot.md import CSVR, ForceField, MDState, run_md
from mlpot.md.rollout import ForecastField, ForecastStep
from mlpot.models import EquivariantPotential, TrajCastForecaster


@dataclass(frozen=True)
class System:
    """One validation system.

    Attributes:
        name: short name (``ar``, ``cu``, ``ethanol``).
        forecaster: shipped forecaster name.
        temperature: CSVR target, K.
        md_dt_fs: reference MD time step, fs.
        tau_fs: CSVR time constant (reference and rollout), fs.
        equilibration_fs: reference Langevin equilibration before both runs, fs.
        kind: ``liquid`` (diffusion), ``crystal`` (VDOS) or ``molecule`` (VDOS, bonds).
        rdf_r_max: range of the RDF / pair-distance distribution, Å.
        repeat: conventional cells per edge (periodic systems).
        replicas: independent reference copies (batched; argon only).
    """

    name: str
    forecaster: str
    temperature: float
    md_dt_fs: float
    tau_fs: float
    equilibration_fs: float
    kind: str
    rdf_r_max: float
    repeat: int = 3
    replicas: int = 1

    @property
    def periodic(self) -> bool:
        return self.kind != "molecule"

    def structure(self) -> ase.Atoms:
        if self.name == "ar":
            mass_g = 39.948 / 6.02214076e23
            a = (4 * mass_g / 1.4) ** (1 / 3) * 1e8  # 1.4 g/cm³, as the training data
            return ase.build.bulk("Ar", "fcc", a=a, cubic=True).repeat(self.repeat)
        if self.name == "cu":
            return ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(self.repeat)
        atoms = ase.build.molecule("CH3CH2OH")
        atoms.center()
        return atoms

    def calculator(self) -> Callable[[], object]:
        """Factory of the reference calculator (as in the training data)."""
        if self.name == "ar":
            from mlpot.calculator import MLPotCalculator
            from mlpot.models import LennardJones

            lj = LennardJones(["Ar"], epsilon=0.0104, sigma=3.40, cutoff=8.5).double()
            return lambda: MLPotCalculator(lj)
        if self.name == "cu":
            from ase.calculators.emt import EMT

            return EMT
        from tblite.ase import TBLite

        return lambda: TBLite(method="GFN2-xTB", verbosity=0)


#: Cu runs in the 3x3x3 cell it was trained in (108 atoms). In a 2x2x2 cell (32 atoms,
#: 7.22 Å, cheaper EMT) an atom's neighbours within 5 Å include two images of one
#: atom, moving as one: environments the training never showed; measured with the same
#: forecaster over 1000 forecast steps, RDF error 0.137 there against 0.056 (400 steps)
#: in 3x3x3.
#:
#: Ethanol's CSVR couples at τ = 20 fs (4 forecast steps), in both runs: the forecaster
#: damps the O-H and C-H stretches a little every step (its v̂ regresses towards the
#: mean where the 5-fs step aliases a ~9-fs period), and a global CSVR with τ = 50 fs
#: let the rollout settle 18 K cold. CSVR samples the canonical ensemble for any τ, so
#: the reference's distributions do not depend on it. Measured with the same forecaster
#: over 10⁴ steps against one τ = 50 fs reference: RDF error 0.114 (τ 50), 0.082 (τ 20),
#: 0.061 (τ 10); rollout T 282, 288, 292 K.
SYSTEMS: dict[str, System] = {
    "ar": System("ar", "mlpot-ar-trajcast", 105.0, 2.0, 50.0, 4000.0, "liquid", 8.0, 3, 10),
    "cu": System("cu", "mlpot-cu-trajcast", 450.0, 1.0, 50.0, 2000.0, "crystal", 6.0, 3),
    "ethanol": System(
        "ethanol", "mlpot-ethanol-trajcast", 300.0, 0.5, 20.0, 1000.0, "molecule", 5.0
    ),
}


@dataclass
class Trajectory:
    """Frames every forecast interval, of one or more independent runs (segments).

    Attributes:
        positions: ``[R, T, N, 3]`` unwrapped, Å (R runs of T frames).
        velocities: ``[R, T, N, 3]`` Å/fs.
        dt_fs: time between frames, fs.
        wall_s: wall-clock seconds of the run (without the start-up).
        steps: integrator / forecast steps taken.
        stable: the run finished without a blow-up.
        message: why it stopped, if it did.
    """

    positions: np.ndarray
    velocities: np.ndarray
    dt_fs: float
    wall_s: float
    steps: int
    stable: bool = True
    message: str = ""

    @property
    def ps_per_s(self) -> float:
        return self.steps * self.dt_fs / 1000.0 / max(self.wall_s, 1e-12) if self.steps else 0.0


def _velocities(atoms: ase.Atoms) -> np.ndarray:
    return atoms.get_velocities() * units.fs  # ASE units → Å/fs


def equilibrated(system: System, seed: int, cache: Path) -> ase.Atoms:
    """The shared start: reference Langevin MD at T, momentum (and rotation) removed."""
    size = f"-r{system.repeat}" if system.periodic else ""
    path = cache / (f"{system.name}{size}-start-T{system.temperature:g}-"
                    f"eq{system.equilibration_fs:g}-s{seed}.npz")
    atoms = system.structure()
    if path.exists():
        data = np.load(path)
        atoms.positions = data["positions"]
        atoms.set_velocities(data["velocities"] / units.fs)
        return atoms
    atoms.calc = system.calculator()()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=system.temperature, rng=rng)
    Langevin(
        atoms,
        system.md_dt_fs * units.fs,
        temperature_K=system.temperature,
        friction=0.02 / units.fs,
        fixcm=False,
        rng=np.random.default_rng(seed + 1),
    ).run(round(system.equilibration_fs / system.md_dt_fs))
    Stationary(atoms)
    if not system.periodic:
        ZeroRotation(atoms)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, positions=atoms.positions, velocities=_velocities(atoms))
    return atoms


def reference_md(
    system: System, start: ase.Atoms, forecast_fs: float, frames: int, seed: int, cache: Path
) -> Trajectory:
    """ASE Bussi MD over ``frames`` forecast intervals (cached)."""
    stride = round(forecast_fs / system.md_dt_fs)
    key = (f"{system.name}|{frames}|{forecast_fs}|{system.temperature}|{system.tau_fs}|"
           f"{system.equilibration_fs}|{seed}|{system.repeat}|{system.replicas}")
    if system.name != "ar":  # ASE's Bussi, thermostatting the conserved-momentum DOF
        key += f"|ndof={degrees_of_freedom(system, start)}"
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    path = cache / f"{system.name}-reference-{frames}-{tag}.npz"
    if path.exists():
        d = np.load(path)
        return Trajectory(d["positions"], d["velocities"], forecast_fs, float(d["wall_s"]),
                          int(d["steps"]))
    if system.name == "ar":
        traj = _reference_mlpot(system, start, stride, frames, seed)
    else:
        traj = _reference_ase(system, start, stride, frames, seed)
    traj.dt_fs = forecast_fs
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, positions=traj.positions, velocities=traj.velocities, wall_s=traj.wall_s,
             steps=traj.steps)
    tmp.replace(path)
    return traj


def degrees_of_freedom(system: System, atoms: ase.Atoms) -> int:
    """N_f of the runs: 3N − 3 (total momentum conserved), 3N − 6 for the molecule
    (angular momentum too), as the rollout's thermostat counts them."""
    return 3 * len(atoms) - (3 if system.periodic else 6)


def reference_thermostat(system: System, atoms: ase.Atoms, seed: int) -> Bussi:
    """ASE's Bussi integrator of the reference run, with N_f = :func:`degrees_of_freedom`."""
    md = Bussi(
        atoms,
        system.md_dt_fs * units.fs,
        temperature_K=system.temperature,
        taut=system.tau_fs * units.fs,
        rng=np.random.default_rng(seed + 2),
    )
    md.ndof = degrees_of_freedom(system, atoms)
    md.target_kinetic_energy = 0.5 * md.temp * md.ndof
    return md


def _reference_ase(system: System, start: ase.Atoms, stride: int, frames: int,
                   seed: int) -> Trajectory:
    """ASE's Bussi integrator with the reference calculator (EMT, GFN2-xTB).

    ASE's Bussi counts 3N degrees of freedom, but its dynamics keep the total momentum
    (and for an isolated molecule the angular momentum) at zero; with 3N the kinetic
    energy target would put the reference at 3N/N_f × T (+3 % for 32 Cu atoms, +29 %
    for ethanol) against the rollout's CSVR, which counts N_f. So N_f is set here.
    """
    atoms = start.copy()
    atoms.calc = system.calculator()()
    md = reference_thermostat(system, atoms, seed)
    pos, vel = [atoms.positions.copy()], [_velocities(atoms)]

    def record() -> None:
        pos.append(atoms.positions.copy())
        vel.append(_velocities(atoms))

    md.attach(record, interval=stride)
    begin = time.perf_counter()
    md.run(stride * frames)
    wall = time.perf_counter() - begin
    return Trajectory(np.array(pos[: frames + 1])[None], np.array(vel[: frames + 1])[None],
                      0.0, wall, stride * frames)


def _reference_mlpot(system: System, start: ase.Atoms, stride: int, frames: int,
                     seed: int) -> Trajectory:
    """mlpot's MD engine (CSVR, float64) with the Lennard-Jones reference (argon): the
    same Bussi thermostat as ASE's, several times faster than ASE with a calculator."""
    from mlpot.models import LennardJones

    r, n = system.replicas, len(start)
    per_copy = -(-frames // r)  # together at least `frames` intervals
    lj = LennardJones(["Ar"], epsilon=0.0104, sigma=3.40, cutoff=8.5).double()
    field = ForceField(lj)
    state = field.evaluate(MDState.from_atoms([start] * r, seed=seed + 2, dtype=torch.float64))
    integrator = CSVR(dt=system.md_dt_fs, temperature=system.temperature, tau=system.tau_fs)
    v0 = np.broadcast_to(_velocities(start), (r, n, 3))
    pos, vel = [np.broadcast_to(start.positions, (r, n, 3)).copy()], [v0.copy()]

    def record(s: MDState) -> None:
        if s.step % stride == 0:
            pos.append(s.positions.numpy().reshape(r, n, 3).copy())
            vel.append((s.momenta / s.masses[:, None]).numpy().reshape(r, n, 3).copy())

    summary = run_md(state, integrator, field, stride * per_copy, on_step=record)
    return Trajectory(np.stack(pos, axis=1), np.stack(vel, axis=1), 0.0, summary.wall_s,
                      summary.steps * r)


def reference_speed(traj: Trajectory, system: System) -> float:
    """Simulated ps per wall second of the reference MD (its own step; all replicas)."""
    return traj.steps * system.md_dt_fs / 1000.0 / max(traj.wall_s, 1e-12)


def rollout(
    system: System, model: TrajCastForecaster, start: ase.Atoms, frames: int, seed: int
) -> Trajectory:
    """The forecaster's thermostatted rollout over ``frames`` forecast steps."""
    state = MDState.from_atoms(start, seed=seed, dtype=model.dtype)
    step = ForecastStep.for_forecaster(model, temperature=system.temperature, tau=system.tau_fs)
    pos, vel = [start.positions.copy()], [_velocities(start)]

    def record(s: MDState) -> None:
        pos.append(s.positions.numpy().copy())
        vel.append((s.momenta / s.masses[:, None]).numpy().copy())

    summary = run_md(step.init(state), step, ForecastField(model), frames, on_step=record,
                     report_initial=False)
    return Trajectory(
        np.array(pos)[None],
        np.array(vel)[None],
        model.forecast_fs,
        summary.wall_s,
        summary.steps,
        stable=summary.stop_reason == "completed",
        message=summary.message or "",
    )


def md_peer_speed(system: System, model: TrajCastForecaster, start: ase.Atoms,
                  steps: int) -> tuple[float, int]:
    """(ps per wall second, parameters) of ``mlpot md``'s engine with an equivariant
    potential of the forecaster's size at the reference time step."""
    c = model.config
    torch.manual_seed(0)
    potential = EquivariantPotential(
        list(model.species), cutoff=c.cutoff, channels=c.channels, lmax=c.lmax,
        num_layers=c.num_layers, num_knots=c.num_knots, avg_num_neighbors=c.avg_num_neighbors,
    ).to(model.dtype).eval()
    field = ForceField(potential)
    state = field.evaluate(MDState.from_atoms(start, seed=0, dtype=model.dtype))
    integrator = CSVR(dt=system.md_dt_fs, temperature=system.temperature, tau=system.tau_fs)
    run_md(state, integrator, field, 5)  # warm-up
    summary = run_md(state, integrator, field, steps)
    params = sum(p.numel() for p in potential.parameters())
    return summary.steps * system.md_dt_fs / 1000.0 / summary.wall_s, params


def load_forecaster(system: System) -> TrajCastForecaster:
    model = load_model(system.forecaster)
    if not isinstance(model, TrajCastForecaster):
        raise TypeError(f"{system.forecaster} is not a forecaster")
    return model.eval()
