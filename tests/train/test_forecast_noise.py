"""Noise injection in forecaster training (``loss.position_noise`` / ``velocity_noise``).

Mutants checked: the target correction ``- eps_x`` dropped → the consistency test
fails; the drift removal skipped → the zero-mean test fails; the generator seeded from
the global torch RNG instead of (seed, step, rank) → the resume test fails; the noise
not applied in ``_step`` → the step-loss test fails.
"""

from __future__ import annotations

import ase.build
import numpy as np
import pytest
import torch

from mlpot.datasets.forecast import ForecastSample, collate_samples
from mlpot.graph import AtomicGraph, system_sum
from mlpot.models import TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_conservation import angular_momentum
from mlpot.models.trajcast_loss import forecast_loss
from mlpot.train import ConfigError, parse_config
from mlpot.train.forecast_noise import noise_generator, perturb

from .test_forecast_fit import _config, _run, traj_store  # noqa: F401  (fixture)


def _sample(atoms_list, seed=0) -> ForecastSample:
    rng = np.random.default_rng(seed)
    graphs = []
    for atoms in atoms_list:
        g = AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False)
        graphs.append(g.replace(velocities=torch.as_tensor(rng.normal(size=(len(atoms), 3)))))
    graph = AtomicGraph.from_atoms(atoms_list, dtype=torch.float64, read_labels=False)
    graph = graph.replace(velocities=torch.cat([g.velocities for g in graphs]))
    n = graph.num_atoms
    return ForecastSample(
        graph, torch.as_tensor(rng.normal(size=(n, 3))), torch.as_tensor(rng.normal(size=(n, 3)))
    )


def _model(species, **kw) -> TrajCastForecaster:
    return TrajCastForecaster(species, channels=4, lmax=1, num_layers=1, **kw).double()


def test_noisy_inputs_keep_the_reference_next_frame():
    cell = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    mol = ase.build.molecule("CH3CH2OH")
    sample = _sample([cell, mol])
    model = _model([1, 6, 8, 29])
    out = perturb(sample, model, 0.05, 0.01, noise_generator(0, 7))
    g, h = sample.graph, out.graph
    # the next frame the targets point to is the reference one, whatever the noise
    torch.testing.assert_close(h.positions + out.displacement, g.positions + sample.displacement,
                               rtol=0, atol=1e-14)
    assert torch.equal(out.velocities, sample.velocities)
    eps_x, eps_v = h.positions - g.positions, h.velocities - g.velocities
    assert 0.03 < float(eps_x.std()) < 0.07 and 0.006 < float(eps_v.std()) < 0.014
    # no rigid shift and no momentum change per system
    masses = model.masses(g)
    for eps in (eps_x, eps_v):
        drift = system_sum(masses[:, None] * eps, g.system_index, g.num_systems)
        torch.testing.assert_close(drift, torch.zeros_like(drift), rtol=0, atol=1e-12)
    # a pure function of (seed, step, rank): same draw again, another step differs
    again = perturb(sample, model, 0.05, 0.01, noise_generator(0, 7))
    assert torch.equal(again.graph.positions, h.positions)
    other = perturb(sample, model, 0.05, 0.01, noise_generator(0, 8))
    assert not torch.equal(other.graph.positions, h.positions)
    # off: the very same sample
    assert perturb(sample, model, 0.0, 0.0, noise_generator(0, 7)) is sample


def test_no_rigid_rotation_for_angular_momentum_forecasters():
    mol = ase.build.molecule("CH3CH2OH")
    sample = _sample([mol, mol], seed=3)
    model = _model([1, 6, 8], angular_momentum=True)
    out = perturb(sample, model, 0.0, 0.01, noise_generator(1, 0))
    g = sample.graph
    masses = model.masses(g)
    args = (masses, g.system_index, g.num_systems)
    before = angular_momentum(g.positions, g.velocities, *args)
    after = angular_momentum(g.positions, out.graph.velocities, *args)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)
    assert torch.equal(out.graph.positions, g.positions)  # σ_x = 0


def test_step_loss_uses_the_noisy_sample(tmp_path, traj_store):  # noqa: F811
    raw = _config(tmp_path / "run", traj_store, loss={"position_noise": 0.02,
                                                      "velocity_noise": 1e-3})
    run = _run(raw)
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    noisy = perturb(sample, run.model, 0.02, 1e-3, noise_generator(0, 0))
    with torch.no_grad():
        expected = forecast_loss(run.model, run.model(noisy.graph),
                                 Forecast(noisy.displacement, noisy.velocities)).total
        clean = forecast_loss(run.model, run.model(sample.graph),
                              Forecast(sample.displacement, sample.velocities)).total
    assert abs(float(expected) - float(clean)) > 1e-3 * float(clean)  # the noise matters
    assert float(run._step(sample)[0]) == pytest.approx(float(expected), rel=1e-10)


# Exact resume with noise: the [noise] case of
# tests/train/test_forecast_fit.py::test_resume_reproduces_uninterrupted_run.


def test_negative_noise_is_a_config_error(tmp_path, traj_store):  # noqa: F811
    with pytest.raises(ConfigError, match="position_noise"):
        parse_config(_config(tmp_path / "run", traj_store, loss={"position_noise": -0.1}))


def test_thermal_noise_has_the_maxwell_boltzmann_shape():
    # 40 ethanol copies at different temperatures: each atom's noise is α·sqrt(θ/m_i)
    # (velocities) and α·sqrt(θ/m_i)·Δt (positions), θ the copy's own Σ m v²/(3N); the
    # centre-of-mass part removed leaves the variance α²·θ·(1/m_i − 1/M) per component
    mol = ase.build.molecule("CH3CH2OH")
    sample = _sample([mol] * 40, seed=5)
    model = _model([1, 6, 8], forecast_fs=5.0)
    g = sample.graph
    masses = model.masses(g)
    scales = torch.linspace(0.5, 2.0, 40, dtype=torch.float64).index_select(0, g.system_index)
    v = g.velocities * 0.01 * scales[:, None] / masses.sqrt()[:, None]
    sample = ForecastSample(g.replace(velocities=v), sample.displacement, sample.velocities)
    out = perturb(sample, model, 0.2, 0.1, noise_generator(2, 0), scale="thermal")
    theta = system_sum(masses * v.square().sum(-1), g.system_index, g.num_systems) / (3 * 9)
    total = float(masses[:9].sum())
    per_atom = (theta.index_select(0, g.system_index) * (1 / masses - 1 / total)).sqrt()[:, None]
    z_v = (out.graph.velocities - v) / per_atom / 0.1
    z_x = (out.graph.positions - g.positions) / (per_atom * 5.0) / 0.2
    heavy = masses > 2.0
    for z in (z_v, z_x):  # unit normal for light and heavy atoms alike
        assert 0.9 < float(z[heavy].std()) < 1.1 and 0.9 < float(z[~heavy].std()) < 1.1
    # the absolute scale: one σ for hydrogen and carbon (less the centre-of-mass part)
    flat = perturb(sample, model, 0.0, 0.01, noise_generator(2, 0))
    eps = flat.graph.velocities - v
    assert 0.6 < float(eps[heavy].std() / eps[~heavy].std()) < 1.1  # thermal: ~0.3
    # targets still point at the reference next frame
    torch.testing.assert_close(out.graph.positions + out.displacement,
                               g.positions + sample.displacement, rtol=0, atol=1e-14)


def test_unknown_noise_scale_is_an_error(tmp_path, traj_store):  # noqa: F811
    with pytest.raises(ConfigError, match="noise_scale"):
        parse_config(_config(tmp_path / "run", traj_store, loss={"noise_scale": "per-atom"}))
    with pytest.raises(ValueError, match="noise scale"):
        perturb(_sample([ase.build.molecule("H2O")]), _model([1, 8]), 0.1, 0.1,
                noise_generator(0, 0), scale="relative")
