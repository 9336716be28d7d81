"""Physics checks of the Potential base class with LJ and a many-body test potential."""

import ase
import ase.build
import numpy as np
import pytest
import torch

from mlpot import AtomicGraph
from mlpot.models import LennardJones, Potential
from mlpot.testing import (
    assert_batched_equals_single,
    assert_equivariant,
    assert_extensive,
    assert_forces_match_finite_differences,
    assert_smooth_at_cutoff,
    assert_stress_matches_finite_differences,
)


class _EmbeddedAtom(Potential):
    """A learnable many-body (EAM-form) potential: E_i = F(ρ_i) with ρ_i = Σ_j f_s(r_ij).

    Exercises the base class with per-species parameters and a non-pairwise energy.
    """

    def __init__(self, species, cutoff=4.5):
        super().__init__(species, cutoff)
        n = len(self.species_numbers)
        self.amplitude = torch.nn.Parameter(torch.linspace(1.0, 2.0, n))
        self.embed = torch.nn.Parameter(torch.linspace(-0.8, -0.4, n))

    def atomic_energies(self, graph, edge_vectors, species):
        r = edge_vectors.norm(dim=-1)
        x = (r / self.cutoff).clamp(max=1.0)
        envelope = (1 - x) ** 3 * (1 + 3 * x + 6 * x**2)  # C2 at the cutoff
        density = self.amplitude[species[graph.edge_index[1]]] * torch.exp(-r) * envelope
        rho = torch.zeros_like(species, dtype=r.dtype).index_add(0, graph.edge_index[0], density)
        return self.embed[species] * torch.sqrt(rho + 1e-3) + 0.05 * rho**2


def _triclinic_ar():
    atoms = ase.build.bulk("Ar", "fcc", a=5.3).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.05, -0.03], [0.02, 0.97, 0.04],
                                               [0.0, 0.06, 1.03]]), scale_atoms=True)
    atoms.rattle(0.15, seed=3)
    return atoms


def _argon_cluster():
    rng = np.random.default_rng(4)
    grid = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], float)
    return ase.Atoms("Ar8", positions=3.8 * grid + rng.normal(scale=0.2, size=(8, 3)))


def _cuni_triclinic():
    atoms = ase.build.bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.02, 0.03, 0.0], [0.0, 0.98, -0.02],
                                               [0.04, 0.0, 1.01]]), scale_atoms=True)
    atoms.numbers[::3] = 28
    atoms.rattle(0.1, seed=5)
    return atoms


def _cuni_molecule():
    rng = np.random.default_rng(6)
    return ase.Atoms("Cu3Ni3", positions=rng.uniform(0, 4.5, size=(6, 3)))


MODELS = {
    "lj": (lambda: LennardJones(["Ar"]).double(), _triclinic_ar, _argon_cluster),
    "eam": (lambda: _EmbeddedAtom(["Cu", "Ni"]).double(), _cuni_triclinic, _cuni_molecule),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forces_and_stress_match_finite_differences(name):
    make_model, make_crystal, make_molecule = MODELS[name]
    model = make_model()
    assert assert_forces_match_finite_differences(model, make_crystal()) < 1e-6
    assert assert_forces_match_finite_differences(model, make_molecule()) < 1e-6
    assert assert_stress_matches_finite_differences(model, make_crystal()) < 1e-6


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("seed", [0, 1])
def test_rotation_translation_permutation_symmetry(name, seed):
    make_model, make_crystal, make_molecule = MODELS[name]
    model = make_model()
    assert_equivariant(model, make_crystal(), seed=seed, rtol=1e-10)
    assert_equivariant(model, make_molecule(), seed=seed, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_supercell_is_extensive(name):
    make_model, make_crystal, _ = MODELS[name]
    assert_extensive(make_model(), make_crystal(), repeat=(2, 2, 2), rtol=1e-10)


def test_batched_equals_single_with_mixed_periodicity():
    model = _EmbeddedAtom(["Cu", "Ni"]).double()
    slab = ase.build.fcc111("Cu", size=(2, 2, 2), vacuum=4.0)
    assert_batched_equals_single(model, [_cuni_triclinic(), _cuni_molecule(), slab])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_smooth_through_cutoff(name):
    model = MODELS[name][0]()
    z = int(model.species_numbers[0])
    assert_smooth_at_cutoff(model, (z, z))


def test_reference_energies_add_per_element():
    model = _EmbeddedAtom(["Cu", "Ni"]).double()
    atoms = _cuni_molecule()
    before = model(AtomicGraph.from_atoms(atoms, dtype=torch.float64)).energy
    model.set_reference_energies({"Cu": -1.5, "Ni": -2.25})
    after = model(AtomicGraph.from_atoms(atoms, dtype=torch.float64)).energy
    torch.testing.assert_close(after - before, torch.tensor([3 * -1.5 + 3 * -2.25],
                                                            dtype=torch.float64))
    with pytest.raises(ValueError, match="missing for"):
        model.set_reference_energies({"Cu": 0.0})


def test_reference_energies_keep_float64_precision():
    """E0 of organic elements is ~ -1e3 eV; float32 would round it by ~1e-4 eV."""
    model = _EmbeddedAtom(["Cu", "Ni"]).double()
    e0 = {"Cu": -1234.567890123, "Ni": -0.1}
    model.set_reference_energies(e0)
    assert float(model.e0[model.species.index("Cu")]) == e0["Cu"]


def test_unknown_element_is_named():
    model = LennardJones(["Ar"])
    atoms = ase.Atoms("ArArKr", positions=[[0, 0, 0], [3.5, 0, 0], [0, 3.5, 0]])
    with pytest.raises(ValueError, match=r"element Kr \(atom 2, system 0\) is not supported"):
        model(AtomicGraph.from_atoms(atoms))


def test_training_mode_keeps_graph_for_force_loss():
    model = _EmbeddedAtom(["Cu", "Ni"]).double()
    graph = AtomicGraph.from_atoms(_cuni_molecule(), dtype=torch.float64)
    out = model(graph, training=True)
    loss = out.forces.pow(2).sum()
    loss.backward()
    assert model.amplitude.grad is not None
    assert torch.isfinite(model.amplitude.grad).all()
    assert model.amplitude.grad.abs().sum() > 0
    eval_out = model(graph)
    assert not eval_out.forces.requires_grad
