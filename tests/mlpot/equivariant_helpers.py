"""Structures and small float64 models shared by the EquivariantPotential tests."""

import ase
import numpy as np
import torch
from ase.build import bulk, molecule

from mlpot.models import EquivariantPotential


def small_model(backend: str = "grid", self_mlp: bool = True, **kwargs) -> EquivariantPotential:
    torch.manual_seed(0)
    args = {"channels": 6, "lmax": 2, "correlation": 3, "num_layers": 2, "num_knots": 6,
            "cutoff": 4.0, "avg_num_neighbors": 10.0}
    args.update(kwargs)
    species = args.pop("species", ["H", "C", "N", "O", "Cu", "Ni"])
    return EquivariantPotential(species, backend=backend, self_mlp=self_mlp, **args).double()


def cuni_cell(seed: int = 0) -> ase.Atoms:
    """Rattled, sheared 8-atom Cu–Ni cell (cell narrower than 2 × cutoff)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.numbers[[1, 4, 6]] = 28
    rng = np.random.default_rng(seed)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.03 * rng.normal(size=(3, 3))),
                   scale_atoms=True)
    atoms.positions += 0.1 * rng.normal(size=atoms.positions.shape)
    return atoms


def organic() -> ase.Atoms:
    """A small non-periodic molecule (ethylamine + a shifted water)."""
    mol = molecule("CH3CH2NH2")
    water = molecule("H2O")
    water.positions += [2.2, 1.0, 0.5]
    return mol + water


def chiral() -> ase.Atoms:
    """A tetrahedral carbon with four different neighbours (H, N, O, Cu) — chiral."""
    d = 1.1 * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    d[1] *= 1.2
    d[2] *= 1.3
    return ase.Atoms("CHNOCu", positions=np.vstack([[0, 0, 0], d]))
