"""Small systems and runners shared by the MD tests."""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import torch

from mlpot.md import ForceField, MDState, maxwell_boltzmann
from mlpot.md.integrators import Integrator
from mlpot.models import LennardJones


def fcc_argon(repeat: int = 2, a: float = 5.30) -> ase.Atoms:
    """Cubic fcc Ar, 4·repeat³ atoms."""
    return ase.build.bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat)


def argon_lj(cutoff: float = 8.5) -> LennardJones:
    """Argon LJ in float64 (ε = 0.0104 eV, σ = 3.40 Å)."""
    return LennardJones(["Ar"], cutoff=cutoff).double()


def start(structures: list[ase.Atoms], model: LennardJones, temperature: float, seed: int = 1,
          stress: bool = False, skin: float = 1.0, device: str = "cpu"
          ) -> tuple[MDState, ForceField]:
    """State with Maxwell–Boltzmann momenta and forces, plus its force field."""
    ff = ForceField(model.to(device), skin=skin, compute_stress=stress)
    state = maxwell_boltzmann(MDState.from_atoms(structures, seed=seed, device=device),
                              temperature)
    return ff.evaluate(state), ff


def run(state: MDState, integrator: Integrator, ff: ForceField, steps: int,
        record: int | None = None) -> tuple[MDState, list[MDState]]:
    """Advance ``steps`` steps; keep every state from step ``record`` on."""
    kept = []
    for k in range(steps):
        state = integrator.step(state, ff)
        if record is not None and k >= record:
            kept.append(state)
    return state, kept


def as_numpy(values: list[torch.Tensor]) -> np.ndarray:
    return torch.stack(values).detach().cpu().double().numpy()
