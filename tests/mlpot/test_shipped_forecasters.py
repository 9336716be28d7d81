"""Shipped TrajCast forecasters: loadable by name, better than free flight on fresh
reference MD they never saw, and usable by ``mlpot rollout --forecaster NAME``.

The accuracy test compares against free flight measured on the same pairs, so a forecaster
that had learned nothing (residual zero) would fail it by construction (not run as a mutant).
"""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mlpot
from mlpot.checkpoint import shipped_models
from mlpot.cli.main import app
from mlpot.datasets.forecast import ForecastPairs, collate_samples
from mlpot.datasets.reference.trajectory import argon_lj_reference, copper_emt_reference
from mlpot.models import TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_loss import forecast_loss

#: name → (reference generator, its interval, fs)
CASES = {
    "mlpot-ar-trajcast": (argon_lj_reference, 20.0),
    "mlpot-cu-trajcast": (copper_emt_reference, 10.0),
}


def test_argon_and_copper_forecasters_ship():
    names = shipped_models()
    for name, (_, fs) in CASES.items():
        assert name in names
        model = mlpot.load_model(name)
        assert isinstance(model, TrajCastForecaster) and model.forecast_fs == fs
        # trained with the speed embedding on the data's thermal velocity scale
        v_in = model.config.input_velocity_rms
        assert v_in is not None and v_in > 2 * float(model.velocity_rms)


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_forecaster_beats_free_flight_on_unseen_reference_md(tmp_path, name):
    make, fs = CASES[name]
    path = tmp_path / "fresh.h5"
    # a seed the training data did not use; short equilibration (the start is a crystal,
    # so the frames are off the training distribution for argon: a hard test)
    make(
        path,
        temperatures=(105.0,) if "ar" in name else (450.0,),
        forecast_fs=fs,
        frames=3,
        trajectories_per_temperature=1,
        equilibration_fs=400.0,
        seed=777,
    )
    pairs = ForecastPairs(path, dtype=torch.float32)
    model = mlpot.load_model(name)
    batch = collate_samples([pairs[k] for k in range(len(pairs))])
    target = Forecast(batch.displacement, batch.velocities)
    v = batch.graph.velocities
    with torch.no_grad():
        learned = forecast_loss(model, model(batch.graph), target).total
        free = forecast_loss(model, Forecast(v * fs, v), target).total
    assert float(learned) < 0.3 * float(free), (float(learned), float(free))


def test_rollout_by_shipped_name(tmp_path):
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    structure = tmp_path / "cu.xyz"
    ase.io.write(structure, atoms)
    out = CliRunner().invoke(
        app,
        [
            "rollout",
            str(structure),
            "--forecaster",
            "mlpot-cu-trajcast",
            "--steps",
            "20",
            "--temperature",
            "450",
            "--traj",
            str(tmp_path / "cu.extxyz"),
            "--log",
            str(tmp_path / "cu.csv"),
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    frames = ase.io.read(tmp_path / "cu.extxyz", ":")
    assert len(frames) == 21
    displacement = np.linalg.norm(frames[-1].positions - frames[0].positions, axis=1)
    assert displacement.max() < 1.0  # still a crystal after 200 fs
