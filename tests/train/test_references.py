"""Per-system charge/spin reference energies: the model term, the fit, checkpoints."""

from __future__ import annotations

import ase
import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from train_helpers import TINY_MODEL, tiny_config

from mlpot.checkpoint import load_model, save_model
from mlpot.datasets.omol25_writer import write_aselmdb
from mlpot.graph import AtomicGraph
from mlpot.models import EquivariantPotential, TransIPPotential
from mlpot.train import parse_config
from mlpot.train.data import ReferenceColumn, solve_references
from mlpot.train.distributed import World
from mlpot.train.report import SilentLog
from mlpot.train.setup import build_model, open_data

E0 = {1: -13.6, 6: -1029.0, 8: -2041.0}
CHARGE = {-1: -4.5, 1: 13.4, 2: 30.0}
SPIN = {2: 2.3, 3: 4.4}


def tiny_equivariant(**kwargs) -> EquivariantPotential:
    return EquivariantPotential(["H", "C", "O"], **{**TINY_MODEL, **kwargs}).double()


def tiny_transip(**kwargs) -> TransIPPotential:
    size = {"dim": 8, "heads": 2, "num_layers": 1, "num_radial": 4, "head_hidden": 8}
    return TransIPPotential(["H", "C", "O"], cutoff=3.0, **{**size, **kwargs}).double()


def molecule(rng: np.random.Generator, n: int, charge: int, spin: int) -> ase.Atoms:
    numbers = rng.choice([1, 6, 8], size=n)
    positions = rng.uniform(0.0, 1.2 * n ** (1 / 3), size=(n, 3))
    atoms = ase.Atoms(numbers=numbers, positions=positions)
    atoms.info.update(charge=charge, spin=spin)
    return atoms


@pytest.mark.parametrize("make", [tiny_equivariant, tiny_transip])
def test_references_shift_each_system_energy_and_nothing_else(make):
    """E(Q, S) = E(neutral singlet) + e_Q + e_S, forces unchanged; the per-atom energies
    still add up to the total."""
    torch.manual_seed(0)
    model = make()
    model.system_references.set({1: 13.4, -1: -4.5, 2: 30.0}, {2: 2.3})
    plain = ase.Atoms("COH2CH2", positions=np.random.default_rng(0).uniform(0, 2.5, (7, 3)))
    states = [(0, 1), (1, 2), (-1, 2), (2, 1)]  # 24 protons: parities allowed
    batch = []
    for q, s in states:
        atoms = plain.copy()
        atoms.info.update(charge=q, spin=s)
        batch.append(atoms)
    graph = AtomicGraph.from_atoms(batch, dtype=torch.float64)
    out = model(graph)
    model.system_references.set({}, {})
    bare = model(graph)
    expected = torch.tensor([0.0, 13.4 + 2.3, -4.5 + 2.3, 30.0], dtype=torch.float64)
    assert torch.allclose(out.energy - bare.energy, expected, atol=1e-10)
    assert torch.equal(out.forces, bare.forces)
    per_system = torch.zeros(len(batch), dtype=torch.float64).index_add(
        0, graph.system_index, out.energies
    )
    assert torch.allclose(per_system, out.energy, atol=1e-9)


def test_out_of_range_states_are_rejected():
    model = tiny_equivariant(max_charge=2, max_spin=3)
    with pytest.raises(ValueError, match="charge 3"):
        model.system_references.set({3: 1.0}, {})
    with pytest.raises(ValueError, match="by definition"):
        model.system_references.set({0: 1.0}, {})
    for model in (tiny_equivariant(max_charge=2, max_spin=3),
                  tiny_transip(max_charge=2, max_spin=3)):
        for charge, spin, system in ((0, 4, 1), (3, 1, 0), (-3, 1, 1)):
            bad = [molecule(np.random.default_rng(0), 4, 0, 1),
                   molecule(np.random.default_rng(1), 4, charge, spin)]
            if system == 0:
                bad.reverse()
            with pytest.raises(ValueError, match=f"system {system}: charge {charge} / spin "
                               f"multiplicity {spin} outside the model's range"):
                model(AtomicGraph.from_atoms(bad, dtype=torch.float64))


def test_solve_references_recovers_planted_values_and_holds_fixed_ones():
    columns = [ReferenceColumn("element", z) for z in (1, 6, 8)]
    columns += [ReferenceColumn("charge", q) for q in (-1, 1, 2)]
    columns += [ReferenceColumn("spin", s) for s in (2, 3, 4)]
    truth = np.array([-13.6, -1029.0, -2041.0, -4.5, 13.4, 0.0, 2.3, 4.4, 0.0])
    rng = np.random.default_rng(3)
    rows = np.zeros((60, len(columns)))
    rows[:, :3] = rng.integers(0, 6, size=(60, 3))
    charge = rng.choice([-1, 0, 1], size=60)  # charge 2 and spin 4 never occur
    spin = rng.choice([1, 2, 3], size=60)
    rows[np.arange(60), 3 + np.searchsorted([-1, 1], charge)] = charge != 0
    rows[np.arange(60), 6 + spin - 2] = spin > 1
    rows[spin == 1, 6] = 0.0  # spin 1 has no column (undo the wrapped index)
    y = rows @ truth
    free = solve_references(rows.T @ rows, rows.T @ y, {}, columns)
    assert [free[c] for c in columns] == pytest.approx(truth.tolist(), abs=1e-8)
    held = solve_references(rows.T @ rows, rows.T @ y, {columns[1]: -1000.0}, columns)
    assert held[columns[1]] == -1000.0
    values = np.array([held[c] for c in columns])
    residual = rows @ values - y
    free_rows = np.delete(rows, 1, axis=1)
    assert np.abs(free_rows.T @ residual).max() < 1e-6  # least squares over the rest


def write_planted(path, rng: np.random.Generator, count: int) -> None:
    """Molecules whose energies are exactly Σ E0 + e_Q + e_S (zero forces)."""
    structures = []
    for k in range(count):
        q, s = [(0, 1), (1, 2), (-1, 2), (0, 3), (2, 1), (0, 2), (1, 1), (-1, 1)][k % 8]
        atoms = molecule(rng, int(rng.integers(2, 7)), q, s)
        energy = sum(E0[int(z)] for z in atoms.numbers) + CHARGE.get(q, 0.0) + SPIN.get(s, 0.0)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
        structures.append(atoms)
    write_aselmdb(path, structures)


def build(tmp_path, data_path, **sections):
    cfg = parse_config(tiny_config(tmp_path / "run", data_path, **sections))
    data = open_data(cfg, World(), float(TINY_MODEL["cutoff"]), torch.float64)
    return build_model(cfg, data, torch.float64, SilentLog())


def test_training_setup_fits_charge_and_spin_references_with_e0(tmp_path):
    write_planted(tmp_path / "planted.aselmdb", np.random.default_rng(4), 40)
    model = build(tmp_path, tmp_path / "planted.aselmdb", data={"valid_fraction": 0.0})
    e0 = dict(zip(model.species_numbers.tolist(), model.e0.tolist(), strict=True))
    assert e0 == pytest.approx(E0, abs=1e-6)
    charge, spin = model.system_references.as_dicts()
    assert charge == pytest.approx(CHARGE, abs=1e-6)
    assert spin == pytest.approx(SPIN, abs=1e-6)


def test_fine_tuning_keeps_references_unless_asked_to_fit(tmp_path):
    base = tiny_equivariant()
    base.set_reference_energies({"H": -10.0, "C": -1000.0, "O": -2000.0})
    base.system_references.set({1: 7.0}, {2: 1.0})
    save_model(base, tmp_path / "base.pt")
    write_planted(tmp_path / "planted.aselmdb", np.random.default_rng(5), 40)
    for e0 in (None, "keep"):
        kept = build(tmp_path, tmp_path / "planted.aselmdb",
                     model={"from": str(tmp_path / "base.pt"), "params": {}},
                     data={"valid_fraction": 0.0, "e0": e0})
        assert kept.e0.tolist() == [-10.0, -1000.0, -2000.0]
        assert kept.system_references.as_dicts() == ({1: 7.0}, {2: 1.0})
    refit = build(tmp_path, tmp_path / "planted.aselmdb",
                  model={"from": str(tmp_path / "base.pt"), "params": {}},
                  data={"valid_fraction": 0.0, "e0": "fit"})
    assert refit.system_references.as_dicts()[0] == pytest.approx(CHARGE, abs=1e-6)


def test_given_e0_still_fits_the_references(tmp_path):
    write_planted(tmp_path / "planted.aselmdb", np.random.default_rng(6), 40)
    given = {"H": -13.6, "C": -1029.0, "O": -2041.0}
    model = build(tmp_path, tmp_path / "planted.aselmdb", data={"valid_fraction": 0.0, "e0": given})
    assert model.e0.tolist() == [-13.6, -1029.0, -2041.0]
    assert model.system_references.as_dicts()[1] == pytest.approx(SPIN, abs=1e-6)


@pytest.mark.parametrize("make", [tiny_equivariant, tiny_transip])
def test_checkpoints_round_trip_and_old_ones_load_without_references(tmp_path, make):
    model = make()
    model.system_references.set({-1: -4.5}, {3: 4.4})
    path = save_model(model, tmp_path / "model.pt")
    assert load_model(path).system_references.as_dicts() == ({-1: -4.5}, {3: 4.4})
    old = make(system_references=False)
    path = save_model(old, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["system_references"]  # written before the option existed
    torch.save(payload, path)
    loaded = load_model(path)
    assert loaded.system_references is None and not loaded.config.system_references
