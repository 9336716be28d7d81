"""``mlpot train`` with a TrajCast forecaster config: pairs of trajectory frames, split by
trajectory, output scales from the training split, the normalised MSE, exact resume.

Mutants checked: ``split_rms`` over all pairs instead of the training split → the scale
test fails; the velocity term dropped from the step loss → the loss-value test fails;
the optimiser state not restored on resume → the resume test fails; ``open_pairs``
accepting a store without velocities (error swallowed) → the bad-config test fails.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mlpot
from mlpot.checkpoint import load_training_state
from mlpot.cli.main import app
from mlpot.datasets.forecast import ForecastPairs, collate_samples
from mlpot.datasets.reference.trajectory import copper_emt_reference
from mlpot.models import TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_loss import forecast_loss
from mlpot.train import ConfigError, fit, parse_config
from mlpot.train.distributed import World
from mlpot.train.forecast import ForecastRun

TINY = {"cutoff": 4.0, "channels": 4, "lmax": 1, "num_layers": 1, "num_knots": 6}


@pytest.fixture(scope="module")
def traj_store(tmp_path_factory):
    """4 EMT Cu trajectories (32 atoms) of 5 frames, 5 fs apart: 16 pairs."""
    path = tmp_path_factory.mktemp("traj") / "cu_traj.h5"
    copper_emt_reference(
        path,
        size=2,
        temperatures=(300.0, 600.0),
        forecast_fs=5.0,
        frames=5,
        trajectories_per_temperature=2,
        equilibration_fs=20.0,
    )
    return path


def _config(run_dir, store, **sections) -> dict:
    raw = {
        "run_dir": str(run_dir),
        "data": {"train": [str(store)], "batch_size": 2, "valid_fraction": 0.25},
        "model": {"kind": "TrajCastForecaster", "params": dict(TINY)},
        "optimizer": {"lr": 1e-2, "schedule": "constant", "ema_decay": None},
        "train": {"epochs": 1, "dtype": "float64", "seed": 0, "threads": 1, "device": "cpu"},
        "log": {"progress": False, "tensorboard": False},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return raw


def _run(raw) -> ForecastRun:
    return ForecastRun(parse_config(raw), World(), torch.device("cpu"), False)


def test_split_by_trajectory_and_scales_from_training_split(tmp_path, traj_store):
    run = _run(_config(tmp_path / "run", traj_store))
    pairs = run.data.train.datasets[0]
    groups = pairs.groups()
    train, valid = set(groups[run.data.train_idx]), set(groups[run.data.valid_idx])
    assert train and valid and not train & valid
    dx, v = pairs.rms(residual=True, indices=run.data.train_idx)
    all_dx, _ = pairs.rms(residual=True)
    assert abs(dx - all_dx) > 1e-6 * all_dx  # the splits differ, so the test can tell
    assert float(run.model.displacement_rms) == pytest.approx(dx, rel=1e-12)
    assert float(run.model.velocity_rms) == pytest.approx(v, rel=1e-12)
    # the speed embedding's scale: the RMS input velocity, several times the residual's
    _, v_in = pairs.rms(residual=False, indices=run.data.train_idx)
    assert run.model.config.input_velocity_rms == pytest.approx(v_in, rel=1e-12)
    assert v_in > 2 * v
    assert run.model.forecast_fs == 5.0  # taken from the data


def test_step_loss_is_the_normalised_mse(tmp_path, traj_store):
    run = _run(_config(tmp_path / "run", traj_store, loss={"displacement": 2.0, "velocity": 0.5}))
    sample = collate_samples([run.data.train[int(k)] for k in run.data.train_idx[:2]])
    with torch.no_grad():
        expected = forecast_loss(
            run.model,
            run.model(sample.graph),
            Forecast(sample.displacement, sample.velocities),
            displacement_weight=2.0,
            velocity_weight=0.5,
        ).total
    assert float(run._step(sample)[0]) == pytest.approx(float(expected), rel=1e-10)


def test_one_epoch_lowers_the_validation_loss(tmp_path, traj_store):
    raw = _config(tmp_path / "run", traj_store, train={"epochs": 2})
    run = _run(raw)
    before = run.validate()
    result = run.run()
    after = result.history[-1]
    assert result.steps == 12  # 12 training pairs, batches of 2, 2 epochs
    assert after["valid_loss"] < 0.7 * before["loss"], (before, after)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,lr") and len(rows) == 3
    model = mlpot.load_model(tmp_path / "run" / "best.pt")
    assert isinstance(model, TrajCastForecaster) and model.forecast_fs == 5.0


def train_and_resume(tmp_path, traj_store, sections: dict, resume_step: int):
    """Train once uninterrupted (``tmp_path/full``) and once resumed from that run's
    checkpoint of step ``resume_step`` (``tmp_path/resumed``); assert that both end
    with the same weights (to 1e-12) and return (full, resumed) results."""
    full = fit(parse_config(_config(tmp_path / "full", traj_store, **sections)))
    mid = tmp_path / "full" / "checkpoints" / f"step-{resume_step:08d}.pt"
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(mid, resumed_dir / "checkpoints" / mid.name)
    resumed = fit(parse_config(_config(resumed_dir, traj_store, **sections)), resume=True)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-12)
    return full, resumed


@pytest.mark.parametrize(
    "loss",
    [{}, {"position_noise": 0.01, "velocity_noise": 5e-4}],  # noise is drawn per step
    ids=["plain", "noise"],
)
def test_resume_reproduces_uninterrupted_run(tmp_path, traj_store, loss):
    sections = {
        "train": {"epochs": 2},
        "optimizer": {"schedule": "cosine", "ema_decay": 0.9},
        "checkpoint": {"every_steps": 4, "keep_last": 10},
        "loss": loss,
    }
    full, resumed = train_and_resume(tmp_path, traj_store, sections, resume_step=4)
    assert resumed.steps == full.steps == 12
    mid = tmp_path / "full" / "checkpoints" / "step-00000004.pt"
    assert [r["valid_loss"] for r in resumed.history] == pytest.approx(
        [r["valid_loss"] for r in full.history], rel=1e-10
    )
    # the shared checkpoint state (mlpot.train.resumable) includes the CUDA RNG slot
    state = load_training_state(mid)
    assert {"progress", "optimizer", "ema", "plateau", "torch_rng", "cuda_rng"} <= set(state)


def test_forecaster_on_a_potential_dataset_is_a_clear_error(tmp_path, cu_store, traj_store):
    with pytest.raises(ConfigError, match=r"data\.train: .*cu\.h5 cannot train a forecaster"):
        fit(parse_config(_config(tmp_path / "run", cu_store)))
    with pytest.raises(ConfigError, match=r"forecast_fs: 10.0 fs, but the pairs"):
        fit(
            parse_config(
                _config(
                    tmp_path / "r2", traj_store, model={"params": {**TINY, "forecast_fs": 10.0}}
                )
            )
        )
    with pytest.raises(ConfigError, match=r"equivariance\.mode"):
        fit(parse_config(_config(tmp_path / "r3", traj_store, equivariance={"mode": "augment"})))
    # a potential's loss settings would be ignored: named, with every other problem
    loss = {"forces": 5.0, "kind": "huber"}
    with pytest.raises(ConfigError, match=r"loss\.forces: 5\.0 is a potential's loss") as err:
        fit(parse_config(_config(tmp_path / "r5", traj_store, loss=loss)))
    assert "loss.kind: 'huber'" in str(err.value)
    assert not (tmp_path / "r5").exists()
    # through the CLI: one line naming the file, exit code 2, no run left behind
    raw = _config(tmp_path / "r4", cu_store)
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    out = CliRunner().invoke(app, ["train", str(path)])
    assert out.exit_code == 2 and "cannot train a forecaster" in out.output
    assert not (tmp_path / "r4" / "final.pt").exists()


def test_pairs_rms_of_a_subset(traj_store):
    pairs = ForecastPairs(traj_store)
    half = np.arange(len(pairs) // 2)
    assert pairs.rms(indices=half) != pairs.rms()
    with pytest.raises(ValueError, match="no pairs"):
        pairs.rms(indices=half[:0])


@pytest.mark.parametrize(
    "name",
    [
        "ar",
        "cu",
        "ethanol",
        "ar-trajcast-unroll",
        "cu-trajcast-unroll",
        "cu-trajcast-unroll2",
        "ethanol-trajcast-unroll",
        "ethanol-trajcast-unroll2",
        "ethanol-trajcast-unroll3",
    ],
)
def test_shipped_forecaster_configs_validate(tmp_path, traj_store, name):
    """Stage 1 (``mlpot-X-trajcast.yaml``) builds a forecaster; each later stage
    (``-unroll``, ``-unroll2``) fine-tunes the previous stage's checkpoint with the
    unrolled loss."""
    from pathlib import Path

    from mlpot.train import load_config

    examples = Path(__file__).parents[2] / "examples"
    file = f"mlpot-{name}.yaml" if "unroll" in name else f"mlpot-{name}-trajcast.yaml"
    cfg = load_config(examples / file, [f"data.train={traj_store}", f"run_dir={tmp_path}"])
    assert cfg.loss.displacement == cfg.loss.velocity == 1.0
    if "unroll" in name:
        # stage unrollN fine-tunes unroll(N-1) (unroll2 -> unroll), unroll fine-tunes stage 1
        n = re.search(r"-unroll(\d*)\.yaml$", file).group(1)
        before_suffix = "" if not n else ("-unroll" if n == "2" else f"-unroll{int(n) - 1}")
        previous = re.sub(r"-unroll\d*\.yaml$", f"{before_suffix}.yaml", file)
        before = load_config(examples / previous, [f"data.train={traj_store}"])
        assert Path(cfg.model.from_).parent == Path(before.run_dir)
        assert cfg.loss.unroll_steps > 1
    else:
        assert cfg.model.kind == "TrajCastForecaster"
