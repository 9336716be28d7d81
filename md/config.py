"""Building runs from user input: structures, models and integrators, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import ase
import ase.io
import torch
from ase.data import chemical_symbols

from mlpot.md.integrators import (
    CSVR,
    Integrator,
    Langevin,
    NoseHooverChain,
    NPTStochasticCellRescaling,
    VelocityVerlet,
)
from mlpot.md.units import gpa_to_ev_per_a3
from mlpot.models import LennardJones, Potential

ENSEMBLES = ("nve", "nvt", "npt")
THERMOSTATS = ("csvr", "langevin", "nose-hoover")
DTYPES = MappingProxyType({"float32": torch.float32, "float64": torch.float64})


@dataclass(frozen=True)
class LJParameters:
    """Lennard-Jones parameters for ``--model lj`` (argon by default): eV, Å, Å."""

    epsilon: float = 0.0104
    sigma: float = 3.40
    cutoff: float = 8.5


@dataclass(frozen=True)
class EnsembleConfig:
    """Which dynamics to run (all times fs, temperature K, pressure GPa).

    ``compressibility`` is in 1/GPa; ``cell_mode`` is isotropic, anisotropic or full.
    """

    ensemble: str = "nve"
    thermostat: str = "csvr"
    timestep: float = 1.0
    temperature: float = 300.0
    pressure_gpa: float = 0.0
    tau_t: float = 100.0
    tau_p: float = 1000.0
    compressibility_per_gpa: float = 0.5
    cell_mode: str = "isotropic"

    def validate(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {self.ensemble!r}; choose one of "
                             f"{', '.join(ENSEMBLES)}")
        if self.thermostat not in THERMOSTATS:
            raise ValueError(f"unknown thermostat {self.thermostat!r}; choose one of "
                             f"{', '.join(THERMOSTATS)}")
        if not self.timestep > 0:
            raise ValueError(f"--timestep must be positive, got {self.timestep} fs")
        if self.temperature < 0:
            raise ValueError(f"--temperature must be >= 0 K, got {self.temperature}")
        if not (self.tau_t > 0 and self.tau_p > 0 and self.compressibility_per_gpa > 0):
            raise ValueError("--tau-t, --tau-p and --compressibility must be positive")


def build_integrator(cfg: EnsembleConfig) -> Integrator:
    """The integrator for an :class:`EnsembleConfig` (GPa converted here, once)."""
    cfg.validate()
    dt, T = cfg.timestep, cfg.temperature
    if cfg.ensemble == "nve":
        return VelocityVerlet(dt)
    if cfg.ensemble == "npt":
        if cfg.thermostat != "csvr":
            raise ValueError("NPT uses the CSVR thermostat; drop --thermostat or pass csvr")
        return NPTStochasticCellRescaling(
            dt, T, gpa_to_ev_per_a3(cfg.pressure_gpa), tau_t=cfg.tau_t, tau_p=cfg.tau_p,
            compressibility=1.0 / gpa_to_ev_per_a3(1.0 / cfg.compressibility_per_gpa),
            cell_mode=cfg.cell_mode)
    if cfg.thermostat == "langevin":
        return Langevin(dt, T, friction=1.0 / cfg.tau_t)
    if cfg.thermostat == "nose-hoover":
        return NoseHooverChain(dt, T, tau=cfg.tau_t)
    return CSVR(dt, T, tau=cfg.tau_t)


def read_structures(path: str | Path) -> list[ase.Atoms]:
    """Every frame of a file ase can read (FileNotFoundError/ValueError naming the file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: structure file not found")
    if not path.is_file():
        raise ValueError(f"{path}: is not a file")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:  # ase raises many types for unreadable files
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ValueError(f"{path}: cannot read structure ({type(err).__name__}"
                         f"{': ' + detail if detail else ''})") from None
    frames = [frames] if isinstance(frames, ase.Atoms) else list(frames)
    if not frames or any(len(a) == 0 for a in frames):
        raise ValueError(f"{path}: contains no atoms")
    return frames


def build_model(name_or_path: str, structures: list[ase.Atoms], lj: LJParameters,
                device: str, dtype: str | None) -> Potential:
    """``lj`` or a checkpoint/shipped name, on ``device`` in ``dtype``; checks the elements."""
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose float32 or float64")
    elements = sorted({int(z) for a in structures for z in a.numbers})
    if name_or_path.lower() == "lj":
        model: Potential = LennardJones(elements, epsilon=lj.epsilon, sigma=lj.sigma,
                                        cutoff=lj.cutoff)
        model = model.to(DTYPES[dtype or "float64"])
    else:
        from mlpot.checkpoint import load_model

        loaded = load_model(name_or_path, dtype=DTYPES[dtype] if dtype else None)
        if not isinstance(loaded, Potential):
            raise ValueError(f"{name_or_path}: a {type(loaded).__name__} predicts trajectories, "
                             "not forces; run it with `mlpot rollout`")
        model = loaded
    known = set(model.species_numbers.tolist())
    missing = [chemical_symbols[z] for z in elements if z not in known]
    if missing:
        raise ValueError(f"model {name_or_path!r} does not support element(s) "
                         f"{', '.join(missing)}; it knows {', '.join(model.species)}")
    try:
        return model.to(device=device).eval()
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"cannot use device {device!r}: {str(err).splitlines()[0]}") from None
