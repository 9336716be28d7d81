"""ASE calculator adapter: ``ase.Atoms`` → AtomicGraph → Potential → ASE results."""

from __future__ import annotations

import os

import ase
import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from mlpot.graph import AtomicGraph
from mlpot.models.base import Potential
from mlpot.neighbors import VerletList, update, verlet_list


class MLPotCalculator(Calculator):
    """ASE calculator for any mlpot :class:`~mlpot.models.Potential`.

    Args:
        model: a Potential, a checkpoint path, or a shipped model name.
        device: torch device (default: the model's, or CPU for loaded models).
        dtype: floating dtype to evaluate in (default: the model's).
        skin: Verlet skin, Å: the pair list is kept between calls and rebuilt only when
            an atom may have come within the cutoff (0: a new list every call). The
            pairs given to the model are the same either way (forces bit for bit).

    Results: ``energy``/``free_energy`` (eV), ``energies`` (eV per atom),
    ``forces`` (eV/Å), ``stress`` (Voigt-6, eV/Å³, ASE sign; periodic cells only).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: Potential | str | os.PathLike,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        skin: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if skin < 0:
            raise ValueError(f"neighbour-list skin must be >= 0 Å, got {skin}")
        self.skin = float(skin)
        self.pairs: VerletList | None = None
        if not isinstance(model, Potential):
            from mlpot.checkpoint import load_model

            loaded = load_model(model)
            if not isinstance(loaded, Potential):
                raise ValueError(f"{model}: a {type(loaded).__name__} predicts trajectories, "
                                 "not energies and forces; it cannot be an ASE calculator")
            model = loaded
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()

    def calculate(
        self,
        atoms: ase.Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        properties = properties or ["energy"]
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                "stress needs a cell that is periodic in all three directions")
        _check_cell(atoms)
        graph = AtomicGraph.from_atoms(atoms, dtype=self.model.dtype,
                                       device=self.model.e0.device, read_labels=False)
        self.pairs = (verlet_list(graph, self.model.cutoff, self.skin) if self.pairs is None
                      else update(self.pairs, graph))
        graph = graph.with_edges(self.pairs.edge_index, self.pairs.shifts)
        out = self.model(graph, compute_forces=True, compute_stress=want_stress)
        energy = float(out.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out.energies.detach().cpu().double().numpy(),
            "forces": out.forces.detach().cpu().double().numpy(),
        }
        if want_stress:
            s = out.stress[0].detach().cpu().double().numpy()
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def _check_cell(atoms: ase.Atoms) -> None:
    """Periodic lattice vectors must be non-zero and linearly independent."""
    periodic = np.asarray(atoms.pbc, dtype=bool)
    if not periodic.any():
        return
    vectors = np.asarray(atoms.cell[:])[periodic]
    if np.linalg.matrix_rank(vectors, tol=1e-8) < periodic.sum():
        raise ValueError(f"cell is singular along its periodic directions "
                         f"(pbc={periodic.tolist()}, cell={np.asarray(atoms.cell[:]).tolist()})")
