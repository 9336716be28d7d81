"""TrajCastForecaster: E(3) and permutation equivariance, the conservation layer,
checkpoint round trip, loss and bad input.

Mutants these tests were checked against (each made a test here fail):
- l = 1 inputs fed in cartesian instead of e3nn (y, z, x) order → rotation/reflection tests;
- momentum projection dropped (``v_com - v_target`` → ``0 * ...``) → momentum tests;
- angular-momentum projection with ``+ ω × r`` instead of ``−`` → angular-momentum test;
- centre-of-mass drift term ``v_target * dt`` dropped → centre-of-mass test;
- residual forecaster without the ``+ v`` of free flight → residual test;
- RMS buffers not saved in the checkpoint → checkpoint test;
- dtype check removed → bad-input test (torch's own matmul error instead).
"""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import pytest
import torch

from mlpot.checkpoint import load_model, save_model
from mlpot.graph import AtomicGraph
from mlpot.models import EquivariantPotential, TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_conservation import angular_momentum
from mlpot.models.trajcast_loss import forecast_loss

SMALL = {"channels": 6, "lmax": 2, "num_layers": 2, "num_knots": 6, "speed_basis": 4}


def _with_velocities(atoms: ase.Atoms, seed: int, scale: float = 0.01) -> ase.Atoms:
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    atoms.set_velocities(
        rng.normal(scale=scale, size=(len(atoms), 3)) / ase.units.fs * 1.0
    )  # Å/fs → ASE units
    return atoms


def cu_cell(seed: int = 0) -> ase.Atoms:
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    cu.set_cell(
        cu.cell[:] + np.array([[0.0, 0.3, 0.1], [0.2, 0.0, 0.0], [0.0, 0.1, 0.0]]), scale_atoms=True
    )  # triclinic
    return _with_velocities(cu, seed)


def molecule(seed: int = 1) -> ase.Atoms:
    return _with_velocities(ase.build.molecule("CH3CH2OH"), seed)


def forecaster(species, **kw) -> TrajCastForecaster:
    model = TrajCastForecaster(species, forecast_fs=5.0, cutoff=3.0, **{**SMALL, **kw}).double()
    model.set_output_scales(0.05, 0.01)
    return model


def graph(atoms: ase.Atoms) -> AtomicGraph:
    return AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False)


def predict(model: TrajCastForecaster, atoms: ase.Atoms) -> Forecast:
    return model.forecast(graph(atoms))


def _random_rotation(seed: int, proper: bool) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q = -q
    return q


def _transformed(atoms: ase.Atoms, rot: np.ndarray, shift: np.ndarray) -> ase.Atoms:
    out = atoms.copy()
    out.positions = atoms.positions @ rot.T + shift
    out.set_cell(atoms.cell[:] @ rot.T, scale_atoms=False)
    out.set_velocities(atoms.get_velocities() @ rot.T)
    return out


CASES = [("cell", cu_cell, {}), ("molecule", molecule, {"angular_momentum": True})]


@pytest.mark.parametrize(("name", "make", "kw"), CASES)
@pytest.mark.parametrize("proper", [True, False])
def test_rotation_reflection_translation_equivariance(name, make, kw, proper):
    atoms = make()
    model = forecaster(sorted(set(atoms.numbers)), **kw)
    rot = _random_rotation(3, proper)
    base = predict(model, atoms)
    moved = predict(model, _transformed(atoms, rot, np.array([1.3, -0.7, 2.1])))
    rot_t = torch.as_tensor(rot.T)
    for got, ref in zip(moved, base, strict=True):
        scale = float(ref.abs().max())
        assert scale > 1e-4  # the forecast is not trivially zero
        torch.testing.assert_close(got, ref @ rot_t, atol=1e-10 * scale, rtol=0)


@pytest.mark.parametrize(("name", "make", "kw"), CASES)
def test_permutation_equivariance(name, make, kw):
    atoms = make()
    model = forecaster(sorted(set(atoms.numbers)), **kw)
    perm = np.random.default_rng(5).permutation(len(atoms))
    base = predict(model, atoms)
    permuted = predict(model, atoms[perm])
    for got, ref in zip(permuted, base, strict=True):
        torch.testing.assert_close(got, ref[torch.as_tensor(perm)], atol=1e-12, rtol=0)


def _totals(atoms: ase.Atoms, out: Forecast):
    m = torch.as_tensor(atoms.get_masses())[:, None]
    v0 = torch.as_tensor(atoms.get_velocities() * ase.units.fs)
    return (m * v0).sum(0), (m * out.velocities).sum(0), (m * out.displacement).sum(0) / m.sum()


def test_momentum_conserved_and_centre_of_mass_moves_freely():
    atoms = molecule()
    model = forecaster(sorted(set(atoms.numbers)))
    out = predict(model, atoms)
    p_in, p_out, dx_com = _totals(atoms, out)
    assert float(p_in.abs().max()) > 1e-3  # a real test: the input momentum is not zero
    torch.testing.assert_close(p_out, p_in, atol=1e-14, rtol=0)
    m_total = float(atoms.get_masses().sum())
    torch.testing.assert_close(dx_com, p_in / m_total * model.forecast_fs, atol=1e-14, rtol=0)
    zero = forecaster(sorted(set(atoms.numbers)), momentum="zero")
    _, p_zero, dx_zero = _totals(atoms, predict(zero, atoms))
    assert float(p_zero.abs().max()) < 1e-14 and float(dx_zero.abs().max()) < 1e-14


def test_angular_momentum_conserved_for_molecules():
    atoms = molecule()
    species = sorted(set(atoms.numbers))
    g = graph(atoms)
    m = torch.as_tensor(atoms.get_masses())
    index = torch.zeros(len(atoms), dtype=torch.int64)
    l_in = angular_momentum(g.positions, g.velocities, m, index, 1)
    for kw, target in (({"momentum": "input"}, l_in), ({"momentum": "zero"}, 0 * l_in)):
        out = forecaster(species, angular_momentum=True, **kw).forecast(g)
        l_out = angular_momentum(g.positions + out.displacement, out.velocities, m, index, 1)
        torch.testing.assert_close(l_out, target, atol=1e-13, rtol=0)
    free = forecaster(species).forecast(g)
    l_free = angular_momentum(g.positions + free.displacement, free.velocities, m, index, 1)
    assert float((l_free - l_in).abs().max()) > 1e-4  # without the layer it is not conserved


def test_residual_forecast_departs_from_free_flight():
    """With the network's readout at zero a residual forecaster is free flight
    (Δx = v·Δt, v' = v), a direct one predicts only the centre-of-mass motion."""
    atoms = cu_cell()
    g = graph(atoms)
    v_com = g.velocities.mean(0).expand_as(g.velocities)  # one element: equal masses
    for residual in (True, False):
        model = forecaster([29], residual=residual)
        with torch.no_grad():
            model.readout.zero_()
        out = model.forecast(g)
        v = g.velocities if residual else v_com
        torch.testing.assert_close(out.velocities, v, atol=1e-15, rtol=0)
        torch.testing.assert_close(out.displacement, v * model.forecast_fs, atol=1e-14, rtol=0)


def test_batch_equals_single():
    cell, mol = cu_cell(), molecule()
    model = forecaster(sorted(set(cell.numbers) | set(mol.numbers)))
    both = model.forecast(
        AtomicGraph.from_atoms([cell, mol], dtype=torch.float64, read_labels=False)
    )
    single = [predict(model, a) for a in (cell, mol)]
    for k in range(2):
        torch.testing.assert_close(both[k], torch.cat([s[k] for s in single]), atol=1e-13, rtol=0)


def test_checkpoint_round_trip(tmp_path):
    atoms = molecule()
    model = forecaster(sorted(set(atoms.numbers)), angular_momentum=True, momentum="zero")
    path = save_model(model, tmp_path / "f.pt")
    loaded = load_model(path)
    assert isinstance(loaded, TrajCastForecaster) and loaded.config == model.config
    assert float(loaded.displacement_rms) == 0.05 and loaded.dtype == torch.float64
    for got, ref in zip(predict(loaded, atoms), predict(model, atoms), strict=True):
        assert torch.equal(got, ref)


def test_loss_is_normalised_mse_and_differentiable():
    atoms = molecule()
    model = forecaster(sorted(set(atoms.numbers)))
    pred = model(graph(atoms))
    target = Forecast(pred.displacement.detach() + 0.05, pred.velocities.detach() - 0.02)
    loss = forecast_loss(model, pred, target)
    assert float(loss.displacement) == pytest.approx(1.0)  # (0.05 / 0.05)²
    assert float(loss.velocity) == pytest.approx(4.0)  # (0.02 / 0.01)²
    loss.total.backward()
    assert model.readout.grad is not None and float(model.readout.grad.abs().sum()) > 0


def test_bad_input_errors():
    atoms = molecule()
    model = forecaster(sorted(set(atoms.numbers)))
    no_v = atoms.copy()
    no_v.set_velocities(np.zeros((len(atoms), 3)))
    g = graph(no_v)
    with pytest.raises(ValueError, match="needs velocities"):
        model.forecast(g.replace(velocities=None))
    with pytest.raises(ValueError, match=r"element Cu .* not supported"):
        predict(model, cu_cell())
    with pytest.raises(ValueError, match="periodic"):
        forecaster([29], angular_momentum=True).forecast(graph(cu_cell()))
    with pytest.raises(ValueError, match="momentum must be one of"):
        TrajCastForecaster([1], momentum="half")
    with pytest.raises(ValueError, match="forecast_fs must be positive"):
        TrajCastForecaster([1], forecast_fs=0)
    with pytest.raises(ValueError, match=r"the graph is torch\.float32"):
        model.forecast(graph(atoms).to(dtype=torch.float32))
    with pytest.raises(ValueError, match="not finite"):
        model.forecast(g.replace(velocities=g.positions * float("nan")))


def test_potentials_and_forecasters_stay_apart():
    """A forecaster is no Potential: ``save_model`` accepts both, ``load_model`` gives each
    back as its own class."""
    pot = EquivariantPotential([1, 6, 8], channels=4, lmax=1, num_layers=1, correlation=1)
    assert not isinstance(forecaster([1, 6, 8]), type(pot))


def test_input_velocity_scale_sets_the_speed_embedding():
    """None falls back to the output scale ``velocity_rms`` (the first shipped models);
    another σ_in changes what the speed embedding sees, hence the forecast."""
    atoms = cu_cell()
    g = graph(atoms)
    fallback = forecaster([29])
    explicit = forecaster([29], input_velocity_rms=float(fallback.velocity_rms))
    explicit.load_state_dict(fallback.state_dict())
    for got, ref in zip(predict(explicit, atoms), predict(fallback, atoms), strict=True):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
    other = forecaster([29], input_velocity_rms=3.0 * float(fallback.velocity_rms))
    other.load_state_dict(fallback.state_dict())
    assert not torch.allclose(other.forecast(g).velocities, fallback.forecast(g).velocities)
    with pytest.raises(ValueError, match="input_velocity_rms"):
        forecaster([29], input_velocity_rms=0.0)
