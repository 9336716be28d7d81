"""Per-atom loss weights of forecaster training (``loss.mass_exponent``).

Mutants checked: weights m̄/m_i instead of m_i/m̄, the exponent ignored (always 1),
or the mean over the whole batch instead of per system → the by-hand weight test
fails; the weights dropped in ``ForecastRun._step`` or in ``validate`` → the
step-loss / validation tests fail; the weights applied to the first unrolled step
only → the unrolled test fails.
"""

from __future__ import annotations

import ase.build
import numpy as np
import pytest
import torch

from mlpot.datasets.forecast import collate_samples
from mlpot.datasets.reference.trajectory import molecule_xtb_reference
from mlpot.graph import AtomicGraph
from mlpot.models.trajcast import Forecast
from mlpot.train import ConfigError, parse_config
from mlpot.train.forecast import atom_weights, squared_errors, unrolled_squared_errors

from .test_forecast_fit import _config, _run


@pytest.fixture(scope="module")
def mol_store(tmp_path_factory):
    """2 GFN2-xTB ethanol trajectories of 4 frames, 5 fs apart (H, C, O: 3 masses)."""
    path = tmp_path_factory.mktemp("mol") / "ethanol.h5"
    molecule_xtb_reference(
        path,
        temperatures=(300.0, 400.0),
        frames=4,
        trajectories_per_temperature=2,
        equilibration_fs=10.0,
    )
    return path


def _mass_run(tmp_path, store, **loss):
    return _run(_config(tmp_path, store, loss={"mass_exponent": 1.0, **loss}))


def test_mass_weights_by_hand(tmp_path, mol_store):
    run = _mass_run(tmp_path / "run", mol_store)
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    graph = sample.graph
    masses = ase.build.molecule("CH3CH2OH").get_masses()
    for alpha in (1.0, 0.5):
        w = atom_weights(run.model, graph, alpha)
        one = masses**alpha / (masses**alpha).mean()
        np.testing.assert_allclose(w[:, 0].numpy(), np.concatenate([one, one]), rtol=1e-12)
        assert w.shape == (18, 1)
    # two systems of different composition: the mean is taken per system
    mixed = AtomicGraph.from_atoms(
        [ase.build.molecule("H2O"), ase.build.molecule("CH4")], dtype=torch.float64
    )
    w = atom_weights(run.model, mixed, 1.0)
    expected = [m / m.mean() for m in (ase.build.molecule(f).get_masses() for f in ("H2O", "CH4"))]
    np.testing.assert_allclose(w[:, 0].numpy(), np.concatenate(expected), rtol=1e-12)
    assert atom_weights(run.model, graph, 0.0) is None
    with pytest.raises(ValueError, match="mass exponent"):
        atom_weights(run.model, graph, -1.0)
    with pytest.raises(ConfigError, match="mass_exponent"):
        parse_config(_config(tmp_path / "bad", mol_store, loss={"mass_exponent": 2.0}))


def test_thermal_fraction_errors_cost_alike_on_every_atom(tmp_path, mol_store):
    """An error of the same fraction of every atom's thermal velocity √(kT/m_i) costs the
    same on a hydrogen, a carbon and the oxygen with mass weights (the kinetic-energy
    metric); with α = 0 (uniform) a hydrogen's costs 12× a carbon's."""
    run = _mass_run(tmp_path / "run", mol_store)
    model = run.model
    sample = collate_samples([run.data.train[int(run.data.train_idx[0])]])
    masses = model.masses(sample.graph)
    unit = torch.zeros(len(masses), 3, dtype=torch.float64)
    unit[:, 0] = 1.0
    error = 0.05 * unit / masses.sqrt()[:, None]  # 5 % of √(θ/m_i) for θ = 1
    cost = {}
    for z in (1, 6, 8):
        atom = int((sample.graph.atomic_numbers == z).nonzero()[0, 0])
        only = torch.zeros_like(error)
        only[atom] = error[atom]
        pred = Forecast(sample.displacement + only, sample.velocities + only)
        for alpha in (1.0, 0.0):
            w = atom_weights(model, sample.graph, alpha)
            cost[alpha, z] = squared_errors(model, pred, sample, w)
    for z in (6, 8):
        torch.testing.assert_close(cost[1.0, z], cost[1.0, 1], rtol=1e-12, atol=0)
    ratio = cost[0.0, 1] / cost[0.0, 6]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 12.011 / 1.008), rtol=1e-3, atol=0)


def test_step_and_validation_losses_are_mass_weighted(tmp_path, mol_store):
    run = _mass_run(tmp_path / "run", mol_store, displacement=2.0, velocity=0.5)
    model = run.model
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    w = atom_weights(model, sample.graph, 1.0)
    with torch.no_grad():
        sums = squared_errors(model, model(sample.graph), sample, w)
    expected = float(2.0 * sums[0] + 0.5 * sums[1]) / (3 * sample.graph.num_atoms)
    unweighted = squared_errors(model, model(sample.graph), sample).detach()
    assert abs(float(2.0 * unweighted[0] + 0.5 * unweighted[1]) / (3 * 18) - expected) > (
        1e-3 * expected
    )  # the weights change the loss, so the test can tell
    assert float(run._step(sample)[0]) == pytest.approx(expected, rel=1e-10)

    deployed = run._deployed()
    valid = collate_samples([run.data.valid[int(k)] for k in run.data.valid_idx])
    with torch.no_grad():
        vs = squared_errors(
            deployed, deployed(valid.graph), valid, atom_weights(deployed, valid.graph, 1.0)
        )
    by_hand = float(2.0 * vs[0] + 0.5 * vs[1]) / (3 * valid.graph.num_atoms)
    assert run.validate()["loss"] == pytest.approx(by_hand, rel=1e-10)


def test_unrolled_loss_weights_every_step(tmp_path, mol_store):
    """Readout zeroed (free flight): the K = 2 mass-weighted loss by hand."""
    run = _mass_run(tmp_path / "run", mol_store, unroll_steps=2)
    model = run.model
    with torch.no_grad():
        model.readout.zero_()
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    w = atom_weights(model, sample.graph, 1.0)
    v, dt = sample.graph.velocities, model.forecast_fs
    sx, sv = float(model.displacement_rms), float(model.velocity_rms)
    later_x, later_v = sample.later_displacements[:, 0], sample.later_velocities[:, 0]
    by_hand = (
        torch.stack(
            [
                (w * ((v * dt - sample.displacement) / sx).square()).sum()
                + (w * ((2 * v * dt - later_x) / sx).square()).sum(),
                (w * ((v - sample.velocities) / sv).square()).sum()
                + (w * ((v - later_v) / sv).square()).sum(),
            ]
        )
        / 2
    )
    with torch.no_grad():
        got = unrolled_squared_errors(model, sample, w)
    torch.testing.assert_close(got, by_hand, rtol=1e-9, atol=0)
