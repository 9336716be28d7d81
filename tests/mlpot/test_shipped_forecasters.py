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
from mlpot.datasets.reference.trajectory import (
    argon_lj_reference,
    copper_emt_reference,
    molecule_xtb_reference,
)
from mlpot.md.units import KB, MVV2E
from mlpot.models import TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_loss import forecast_loss

#: name → (reference generator, its interval fs, temperature K of the unseen test run)
CASES = {
    "mlpot-ar-trajcast": (argon_lj_reference, 20.0, 105.0),
    "mlpot-cu-trajcast": (copper_emt_reference, 10.0, 450.0),
    "mlpot-ethanol-trajcast": (molecule_xtb_reference, 5.0, 300.0),
}
#: name → the composition its thermal velocity scale is averaged over
FORMULAS = {"mlpot-ar-trajcast": "Ar", "mlpot-cu-trajcast": "Cu", "mlpot-ethanol-trajcast": "C2H6O"}


def test_argon_copper_and_ethanol_forecasters_ship():
    names = shipped_models()
    for name, (_, fs, temperature) in CASES.items():
        assert name in names
        model = mlpot.load_model(name)
        assert isinstance(model, TrajCastForecaster) and model.forecast_fs == fs
        # the isolated molecule's forecaster also conserves its angular momentum
        assert model.config.angular_momentum == ("ethanol" in name)
        # trained with the speed embedding on the data's thermal velocity scale: the RMS
        # velocity component sqrt(⟨k_B T / m_i⟩) of the formula at the case's temperature
        # (training spans a range of T around it), not the residual scale velocity_rms
        v_in = model.config.input_velocity_rms
        masses = ase.Atoms(FORMULAS[name]).get_masses()
        thermal = np.sqrt(np.mean(KB * temperature / MVV2E / masses))
        assert v_in is not None and 0.8 < v_in / thermal < 1.25, (v_in, thermal)


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_forecaster_beats_free_flight_on_unseen_reference_md(tmp_path, name):
    make, fs, temperature = CASES[name]
    path = tmp_path / "fresh.h5"
    # a seed the training data did not use; short equilibration (the start is a crystal,
    # so the frames are off the training distribution for argon: a hard test)
    make(
        path,
        temperatures=(temperature,),
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


def test_ethanol_rollout_by_shipped_name_keeps_the_molecule(tmp_path):
    """``mlpot rollout --forecaster mlpot-ethanol-trajcast`` on ethanol in vacuum: 400
    forecast steps (2 ps) at 300 K keep every bond within 20 % of its start length (a
    forecaster that lets the molecule fall apart or freeze fails), with the bonds still
    vibrating, and total and angular momentum stay zero."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    from mlpot.models.trajcast_conservation import angular_momentum

    atoms = ase.build.molecule("CH3CH2OH")
    atoms.center()
    structure = tmp_path / "ethanol.xyz"
    ase.io.write(structure, atoms)
    out = CliRunner().invoke(
        app,
        [
            "rollout", str(structure), "--forecaster", "mlpot-ethanol-trajcast",
            "--steps", "400", "--temperature", "300", "--tau", "20", "--seed", "3",
            "--traj", str(tmp_path / "eth.extxyz"), "--log", str(tmp_path / "eth.csv"),
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    frames = ase.io.read(tmp_path / "eth.extxyz", ":")
    assert len(frames) == 401
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=1.2))
    assert len(i) == 16  # 8 bonds, both ways
    lengths = np.array([np.linalg.norm(f.positions[j] - f.positions[i], axis=1) for f in frames])
    ratio = lengths / lengths[0]
    assert ratio.min() > 0.8 and ratio.max() < 1.2, (ratio.min(), ratio.max())
    assert lengths[100:].std(axis=0).min() > 0.005  # Å: the bonds still vibrate
    last = frames[-1]
    masses = torch.as_tensor(last.get_masses())
    v = torch.as_tensor(last.get_velocities())
    assert float((masses[:, None] * v).sum(0).abs().max()) < 1e-4
    ang = angular_momentum(torch.as_tensor(last.positions), v, masses,
                           torch.zeros(len(last), dtype=torch.long), 1)
    assert float(ang.abs().max()) < 1e-3
