"""Multi-step unrolled forecaster loss (``loss.unroll_steps``).

Mutants checked: the window mask not narrowed for K > 1 (windows crossing trajectory
ends) → the window test fails; the later steps started from the reference instead of
the prediction, or the cumulative displacement replaced by the step's own → the
free-flight value test fails; the prediction detached between steps → the
finite-difference gradient test fails; ``_to``/collate dropping the later targets →
the step-loss test fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpot.datasets.forecast import ForecastPairs, collate_samples
from mlpot.train import ConfigError, fit, parse_config
from mlpot.train.forecast import squared_errors, unrolled_squared_errors

from .test_forecast_fit import (  # noqa: F401  (traj_store: fixture)
    _config,
    _run,
    train_and_resume,
    traj_store,
)


def test_windows_stay_inside_one_trajectory(traj_store):  # noqa: F811
    pairs, windows = ForecastPairs(traj_store), ForecastPairs(traj_store, steps=3)
    # 4 trajectories of 5 frames: 4 pairs each, 2 windows of 4 frames each
    assert len(pairs) == 16 and len(windows) == 8
    store = windows.store
    positions, velocities = store.read_array("positions"), store.read_array("velocities")
    offsets = store.offsets
    for index in range(len(windows)):
        k = int(windows.pairs[index])
        s = windows[index]
        assert s.steps == 3 and s.later_displacements.shape == (32, 2, 3)
        assert len({store.read_array("group")[k + j] for j in range(4)}) == 1
        frame = [positions[offsets[k + j] : offsets[k + j + 1]] for j in range(4)]
        for j in (2, 3):
            np.testing.assert_allclose(s.later_displacements[:, j - 2], frame[j] - frame[0])
            np.testing.assert_allclose(
                s.later_velocities[:, j - 2], velocities[offsets[k + j] : offsets[k + j + 1]]
            )
    with pytest.raises(ValueError, match="steps"):
        ForecastPairs(traj_store, steps=0)
    from mlpot.datasets.errors import DataFormatError

    with pytest.raises(DataFormatError, match="no 6 consecutive frames"):
        ForecastPairs(traj_store, steps=5)


def test_unrolled_loss_of_free_flight_by_hand(tmp_path, traj_store):  # noqa: F811
    """Readout zeroed: every step is free flight (x += v·Δt, v' = v), so the K = 2 loss
    is computable from the stored frames alone."""
    run = _run(_config(tmp_path / "run", traj_store, loss={"unroll_steps": 2}))
    model = run.model
    with torch.no_grad():
        model.readout.zero_()
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    v, dt = sample.graph.velocities, model.forecast_fs
    sx, sv = float(model.displacement_rms), float(model.velocity_rms)
    by_hand = (
        (
            ((v * dt - sample.displacement) / sx).square().sum()
            + ((v * 2 * dt - sample.later_displacements[:, 0]) / sx).square().sum()
        )
        / 2,
        (
            ((v - sample.velocities) / sv).square().sum()
            + ((v - sample.later_velocities[:, 0]) / sv).square().sum()
        )
        / 2,
    )
    with torch.no_grad():
        got = unrolled_squared_errors(model, sample)
    torch.testing.assert_close(got, torch.stack(by_hand), rtol=1e-9, atol=0)
    # K = 1 is the one-step loss
    one = _run(_config(tmp_path / "one", traj_store))
    s1 = collate_samples([one.data.train[int(k)] for k in one.data.train_idx[:2]])
    with torch.no_grad():
        torch.testing.assert_close(
            unrolled_squared_errors(one.model, s1),
            squared_errors(one.model, one.model(s1.graph), s1),
            rtol=0,
            atol=0,
        )


def test_gradient_flows_through_the_unroll(tmp_path, traj_store):  # noqa: F811
    run = _run(_config(tmp_path / "run", traj_store, loss={"unroll_steps": 3}))
    model = run.model
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:1]])
    param = model.readout
    loss = unrolled_squared_errors(model, sample).sum()
    (grad,) = torch.autograd.grad(loss, param)
    direction = torch.randn_like(param)
    h = 1e-6
    with torch.no_grad():
        param += h * direction
        up = unrolled_squared_errors(model, sample).sum()
        param -= 2 * h * direction
        down = unrolled_squared_errors(model, sample).sum()
        param += h * direction
    numeric = (up - down) / (2 * h)
    assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-6)


def test_step_loss_and_exact_resume_with_unroll(tmp_path, traj_store):  # noqa: F811
    sections = {
        "train": {"epochs": 2},
        "optimizer": {"schedule": "cosine", "ema_decay": 0.9},
        "checkpoint": {"every_steps": 2, "keep_last": 10},
        "loss": {"unroll_steps": 2, "position_noise": 0.01},
    }
    run = _run(_config(tmp_path / "probe", traj_store, **sections))
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    assert sample.later_displacements is not None
    from mlpot.train.forecast_noise import noise_generator, perturb

    noisy = perturb(sample, run.model, 0.01, 0.0, noise_generator(0, 0))
    with torch.no_grad():
        sums = unrolled_squared_errors(run.model, noisy)
    expected = float(sums.sum()) / (3 * sample.graph.num_atoms)
    assert float(run._step(sample)[0]) == pytest.approx(expected, rel=1e-10)

    full, resumed = train_and_resume(tmp_path, traj_store, sections, resume_step=2)
    assert resumed.steps == full.steps


def test_unroll_option_is_validated(tmp_path, traj_store):  # noqa: F811
    with pytest.raises(ConfigError, match="unroll_steps"):
        parse_config(_config(tmp_path / "run", traj_store, loss={"unroll_steps": 0}))
    with pytest.raises(ConfigError, match="no 7 consecutive frames"):
        fit(parse_config(_config(tmp_path / "r2", traj_store, loss={"unroll_steps": 6})))
