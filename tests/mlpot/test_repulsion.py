"""The ZBL pair-repulsion prior: its formula, smoothness, derivatives and wiring."""

import math

import ase
import ase.build
import numpy as np
import pytest
import torch
from ase.data import covalent_radii

from mlpot import AtomicGraph, load_model, save_model
from mlpot.models import EquivariantPotential, TransIPPotential
from mlpot.models.repulsion import ZBLRepulsion
from mlpot.testing import (
    assert_forces_match_finite_differences,
    assert_stress_matches_finite_differences,
)


def zbl_by_hand(z1: int, z2: int, r: float) -> float:
    """ZBL universal potential (Ziegler, Biersack, Littmark 1985) with the C² switch to
    zero at the covalent-radius sum, eV; written out independently of the module."""
    a = 0.8854 * 0.529177 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = (0.18175 * math.exp(-3.1998 * x) + 0.50986 * math.exp(-0.94229 * x)
           + 0.28022 * math.exp(-0.4029 * x) + 0.02817 * math.exp(-0.20162 * x))
    s = r / (covalent_radii[z1] + covalent_radii[z2])
    switch = 1 - 10 * s**3 + 15 * s**4 - 6 * s**5 if s < 1 else 0.0
    return 14.399645 * z1 * z2 / r * phi * switch


def pair_energy(module: ZBLRepulsion, species: tuple[int, int], r: float) -> float:
    """Sum of the per-atom energies of an isolated pair at ``r`` (full list: both ways)."""
    vectors = torch.tensor([[0.0, 0.0, r], [0.0, 0.0, -r]], dtype=torch.float64)
    edges = torch.tensor([[0, 1], [1, 0]])
    return float(module.double()(vectors, edges, torch.tensor(species)).sum())


@pytest.mark.parametrize("pair", [(1, 1), (6, 1), (8, 7), (17, 6)])
def test_pair_energy_matches_the_zbl_formula(pair):
    numbers = sorted(set(pair))
    module = ZBLRepulsion(numbers, cutoff=5.0)
    species = (numbers.index(pair[0]), numbers.index(pair[1]))
    r_switch = covalent_radii[pair[0]] + covalent_radii[pair[1]]
    for r in (0.1, 0.3, 0.5, 0.8 * r_switch, 0.99 * r_switch, r_switch, 1.5 * r_switch):
        assert pair_energy(module, species, r) == pytest.approx(
            zbl_by_hand(*pair, r), rel=1e-5, abs=1e-12), r
    # a wall: C–H at 0.5 Å costs more than 10 eV, and the energy falls monotonically
    if pair == (6, 1):
        assert pair_energy(module, species, 0.5) > 10.0
        e = [pair_energy(module, species, r) for r in np.linspace(0.2, r_switch, 50)]
        assert all(np.diff(e) < 0)


def test_switch_is_smooth_at_the_covalent_radius_sum():
    """Energy, force and curvature reach zero at r_ij: E ~ δ³ just inside."""
    module = ZBLRepulsion([1, 6], cutoff=5.0)
    rc = covalent_radii[1] + covalent_radii[6]
    for delta in (1e-2, 1e-3):
        assert pair_energy(module, (0, 1), rc - delta) < 1e3 * delta**3
    assert pair_energy(module, (0, 1), rc + 1e-9) == 0.0


def test_switch_radius_beyond_the_cutoff_raises():
    with pytest.raises(ValueError, match=r"Cs-Cs switch radius 4\.88 Å exceeds the model cutoff"):
        ZBLRepulsion([1, 55], cutoff=4.0)


def compressed_ethanol() -> ase.Atoms:
    """Ethanol with one C–H bond squeezed to 0.6 Å and an O–H to 0.55 Å."""
    atoms = ase.build.molecule("CH3CH2OH")
    for heavy, hydrogen, length in ((1, 4, 0.6), (2, 8, 0.55)):
        d = atoms.positions[hydrogen] - atoms.positions[heavy]
        atoms.positions[hydrogen] = atoms.positions[heavy] + length * d / np.linalg.norm(d)
    assert atoms.get_distance(1, 4) == pytest.approx(0.6)
    return atoms


MODELS = {
    "transip": lambda: TransIPPotential(["H", "C", "O"], dim=16, heads=2, num_layers=1,
                                        num_radial=8, head_hidden=8, pair_repulsion=True),
    "equivariant": lambda: EquivariantPotential(["H", "C", "O"], channels=4, lmax=1,
                                                num_layers=1, pair_repulsion=True),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_models_add_the_prior_with_consistent_forces_and_stress(kind):
    torch.manual_seed(0)
    model = MODELS[kind]().double()
    model.scale.fill_(1.7)  # the prior is physical: added after scale and shift
    model.shift.fill_(-0.2)
    atoms = compressed_ethanol()
    plain = type(model)(**{**vars(model.config), "pair_repulsion": False}).double()
    plain.load_state_dict(model.state_dict())
    numbers, positions = atoms.numbers, atoms.positions
    expected = sum(zbl_by_hand(numbers[i], numbers[j], float(np.linalg.norm(
        positions[i] - positions[j]))) for i in range(len(atoms)) for j in range(i))
    graph = AtomicGraph.from_atoms([atoms], dtype=torch.float64)
    added = float(model(graph).energy[0] - plain(graph).energy[0])
    assert expected > 10.0 and added == pytest.approx(expected, rel=1e-6)
    assert_forces_match_finite_differences(model, atoms, rtol=1e-6)
    cell = atoms.copy()
    cell.set_cell(np.diag([9.0, 9.5, 10.0]) + 0.3, scale_atoms=False)
    cell.pbc = True
    assert_stress_matches_finite_differences(model, cell, rtol=1e-6)


def test_checkpoint_keeps_the_prior(tmp_path):
    torch.manual_seed(0)
    model = MODELS["transip"]().double()
    loaded = load_model(save_model(model, tmp_path / "zbl.pt"))
    assert loaded.config.pair_repulsion and loaded.repulsion is not None
    graph = AtomicGraph.from_atoms([compressed_ethanol()], dtype=torch.float64)
    assert torch.equal(model(graph).energy, loaded(graph).energy)
