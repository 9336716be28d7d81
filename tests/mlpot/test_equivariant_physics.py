"""Finite differences, extensivity, cutoff smoothness, batching and checkpoints of
EquivariantPotential (float64)."""

import numpy as np
import pytest
import torch
from equivariant_helpers import cuni_cell, organic, small_model

from mlpot import AtomicGraph, load_model, save_model, with_neighbors
from mlpot.models import EquivariantPotential
from mlpot.testing import (
    assert_batched_equals_single,
    assert_extensive,
    assert_forces_match_finite_differences,
    assert_smooth_at_cutoff,
    assert_stress_matches_finite_differences,
)


@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_forces_and_stress_match_finite_differences(backend):
    model = small_model(backend, True)
    atoms = cuni_cell()
    assert_forces_match_finite_differences(model, atoms, rtol=1e-6)
    assert_stress_matches_finite_differences(model, atoms, rtol=1e-6)
    assert_forces_match_finite_differences(model, organic()[:6], rtol=1e-6)


@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_extensive(backend):
    assert_extensive(small_model(backend, True), cuni_cell(), repeat=(2, 1, 2), rtol=1e-10)


@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_smooth_through_the_cutoff(backend):
    model = small_model(backend, True)
    assert_smooth_at_cutoff(model, (29, 28), atol=1e-8)
    # an atom crossing the cutoff of a larger cluster: E and F continuous
    base = organic()[:4]
    rc = model.cutoff
    far = base.positions[:, 0].max()
    rs = np.linspace(rc - 0.02, rc + 0.02, 81)
    structs = []
    for r in rs:
        a = base.copy()
        a.append("Cu")
        a.positions[-1] = [far + r, 0.05, 0.02]
        a.positions[-1] = base.positions[base.positions[:, 0].argmax()] + [r, 0.0, 0.0]
        structs.append(a)
    out = model(AtomicGraph.from_atoms(structs, dtype=torch.float64))
    e = out.energy.numpy()
    f = out.forces.numpy().reshape(len(rs), -1, 3)
    de, df = np.abs(np.diff(e)).max(), np.abs(np.diff(f, axis=0)).max()
    dr = rs[1] - rs[0]
    assert de <= 1.5 * dr * np.abs(f).max()
    assert df < 1e-3  # forces change smoothly (C1): no jump between neighbouring points
    beyond = rs > rc
    np.testing.assert_allclose(e[beyond], e[beyond][0], rtol=0, atol=1e-13)


def test_verlet_skin_edges_change_nothing():
    model = small_model("grid", True)
    g = AtomicGraph.from_atoms(cuni_cell(), dtype=torch.float64)
    exact = model(with_neighbors(g, model.cutoff), compute_stress=True)
    skin = model(with_neighbors(g, model.cutoff + 1.0), compute_stress=True)
    assert float(exact.energy - skin.energy) == 0.0
    np.testing.assert_allclose(skin.forces.numpy(), exact.forces.numpy(), atol=1e-14)
    np.testing.assert_allclose(skin.stress.numpy(), exact.stress.numpy(), atol=1e-14)


@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_batched_equals_single(backend):
    structures = [cuni_cell(0), organic(), cuni_cell(2)[:5]]
    assert_batched_equals_single(small_model(backend, True), structures, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_checkpoint_round_trip_is_bitwise(tmp_path, backend, dtype):
    model = small_model(backend, True).to(dtype)
    model.set_reference_energies({s: -float(k) for k, s in enumerate(model.species)})
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.dtype == dtype
    g = AtomicGraph.from_atoms(cuni_cell(), dtype=dtype)
    a, b = model(g, compute_stress=True), loaded(g, compute_stress=True)
    assert torch.equal(a.energy, b.energy) and torch.equal(a.forces, b.forces)
    assert torch.equal(a.stress, b.stress)


def test_float32_agrees_with_float64():
    model = small_model("grid", True)
    g = AtomicGraph.from_atoms(cuni_cell())
    e64 = model(g.to(dtype=torch.float64)).energy
    model32 = small_model("grid", True).float()
    e32 = model32(g.to(dtype=torch.float32)).energy
    assert e32.dtype == torch.float32
    assert abs(float(e32) - float(e64)) < 1e-4 * abs(float(e64))


def test_charge_and_spin_enter_the_energy():
    model = small_model("cg", True)
    torch.nn.init.normal_(model.charge_embedding)
    torch.nn.init.normal_(model.spin_embedding)
    atoms = organic()
    energies = []
    for charge, spin in ((0, 1), (1, 2), (-1, 2), (0, 3)):
        atoms.info.update(charge=charge, spin=spin)
        energies.append(float(model(AtomicGraph.from_atoms(atoms, dtype=torch.float64)).energy))
    assert len({round(e, 10) for e in energies}) == 4
    atoms.info.update(charge=11, spin=1)
    with pytest.raises(ValueError, match="system 0: charge 11"):
        model(AtomicGraph.from_atoms(atoms, dtype=torch.float64))


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="backend"):
        EquivariantPotential(["Cu"], backend="fft")
    with pytest.raises(ValueError, match="num_knots"):
        EquivariantPotential(["Cu"], num_knots=3)
    with pytest.raises(ValueError, match="lmax"):
        EquivariantPotential(["Cu"], lmax=-1)


@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_force_loss_parameter_gradient_matches_finite_differences(backend):
    """The double-backward path used in force training is right."""
    model = small_model(backend, True)
    g = AtomicGraph.from_atoms(cuni_cell(), dtype=torch.float64)
    params = [model.layers[0].radial, model.layers[1].mix, model.layers[0].mlp_w1]

    def loss():
        out = model(g, compute_stress=True, training=True)
        return (out.forces**2).sum() + (out.stress**2).sum() * 100

    grads = torch.autograd.grad(loss(), params)
    for p, grad in zip(params, grads, strict=True):
        idx = (0,) * p.dim()
        values = []
        for step in (1e-5, -2e-5, 1e-5):
            with torch.no_grad():
                p[idx] += step
            values.append(float(loss().detach()))
        up, down = values[0], values[1]
        fd = (up - down) / 2e-5
        assert abs(fd - float(grad[idx])) <= 1e-6 * max(abs(fd), 1e-3)


def test_ase_calculator_runs_the_model(tmp_path):
    from mlpot import MLPotCalculator

    model = small_model("grid", True)
    path = save_model(model, tmp_path / "eq.pt")
    atoms = cuni_cell()
    atoms.calc = MLPotCalculator(path, dtype=torch.float64)
    direct = model(AtomicGraph.from_atoms(atoms, dtype=torch.float64))
    assert abs(atoms.get_potential_energy() - float(direct.energy)) < 1e-10
    np.testing.assert_allclose(atoms.get_forces(), direct.forces.numpy(), atol=1e-10)


@pytest.mark.parametrize("backend", ["grid", "cg"])
def test_blocked_evaluation_equals_single_block(monkeypatch, backend):
    from mlpot.models import equivariant_layers

    model = small_model(backend, True)
    g = AtomicGraph.from_atoms(cuni_cell().repeat((2, 2, 1)), dtype=torch.float64)
    whole = model(g, compute_stress=True)
    monkeypatch.setattr(equivariant_layers, "BLOCK_BYTES", 1)  # 8 centres per block
    blocked = model(g, compute_stress=True)
    np.testing.assert_allclose(blocked.energy.numpy(), whole.energy.numpy(), rtol=1e-13)
    np.testing.assert_allclose(blocked.forces.numpy(), whole.forces.numpy(), atol=1e-12)
    np.testing.assert_allclose(blocked.stress.numpy(), whole.stress.numpy(), atol=1e-12)
