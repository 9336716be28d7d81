"""Training runs: the loss falls, resume is exact, fine-tuning loads weights and trains."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from train_helpers import tiny_config

import mlpot
from mlpot.checkpoint import load_training_state
from mlpot.train import fit, latest_checkpoint, parse_config
from mlpot.train.data import ConcatSource, GraphDataset


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_loss(model, store) -> float:
    """Per-structure mean of (ΔE/N)² + mean ΔF² on the whole store (float64)."""
    src = ConcatSource([store])
    ds = GraphDataset(src, np.arange(len(src)), model.cutoff, torch.float64)
    total = 0.0
    for k in range(len(ds)):
        g = ds[k]
        out = model.double()(g)
        total += float(
            ((out.energy - g.energy) / g.num_atoms) ** 2 + ((out.forces - g.forces) ** 2).mean()
        )
    return total / len(ds)


def test_one_epoch_lowers_the_loss(tmp_path, cu_store):
    raw = tiny_config(
        tmp_path / "run",
        cu_store,
        optimizer={"ema_decay": None, "lr": 1e-2, "schedule": "constant"},
        train={"epochs": 1},
        data={"batch_size": 2, "valid_fraction": 0.0},
    )
    cfg = parse_config(raw)
    before = fit(
        parse_config(
            {
                **raw,
                "train": {**raw["train"], "max_steps": 1},
                "optimizer": {**raw["optimizer"], "lr": 1e-12},
                "run_dir": str(tmp_path / "zero"),
            }
        )
    ).model
    after = fit(cfg)
    assert after.steps == 12
    loss0, loss1 = _train_loss(before, cu_store), _train_loss(after.model, cu_store)
    assert loss1 < 0.8 * loss0, (loss0, loss1)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,lr") and len(rows) == 2
    assert (tmp_path / "run" / "best.pt").is_file()
    assert isinstance(mlpot.load_model(tmp_path / "run" / "final.pt"), type(after.model))


def test_resume_reproduces_uninterrupted_run(tmp_path, cu_store):
    """Run 2 epochs with a checkpoint every 3 steps; resume a copy from the mid-epoch
    checkpoint at step 3 (epoch 0 has 5 batches) and compare final weights."""
    sections = {
        "train": {"epochs": 2},
        "checkpoint": {"every_steps": 3, "keep_last": 10},
        "optimizer": {"schedule": "cosine", "ema_decay": 0.9},
        "data": {"batch_size": 4},
    }
    full = fit(parse_config(tiny_config(tmp_path / "full", cu_store, **sections)))
    mid = tmp_path / "full" / "checkpoints" / "step-00000003.pt"
    state = load_training_state(mid)
    assert state["progress"]["epoch"] == 0 and state["progress"]["step_in_epoch"] == 3
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(mid, resumed_dir / "checkpoints" / mid.name)
    assert latest_checkpoint(resumed_dir).name == mid.name
    resumed = fit(parse_config(tiny_config(resumed_dir, cu_store, **sections)), resume=True)
    assert resumed.steps == full.steps
    a, b = _weights(full.model), _weights(resumed.model)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    raw_a = mlpot.load_model(latest_checkpoint(tmp_path / "full"))
    raw_b = mlpot.load_model(latest_checkpoint(resumed_dir))
    for (k, x), y in zip(raw_a.state_dict().items(), raw_b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=k)
    assert [r["valid_loss"] for r in full.history] == pytest.approx(
        [r["valid_loss"] for r in resumed.history], rel=1e-9
    )


def test_finetune_loads_weights_adds_element_and_freezes(tmp_path, cuni_store, cual_store):
    base = fit(parse_config(tiny_config(tmp_path / "base", cuni_store,
                                        train={"max_steps": 4}))).model
    assert base.species == ["Ni", "Cu"]
    raw = tiny_config(tmp_path / "ft", cual_store, train={"epochs": 3},
                      optimizer={"ema_decay": None, "lr": 1e-2, "schedule": "constant"},
                      data={"batch_size": 2})
    raw["model"] = {"from": str(tmp_path / "base" / "final.pt"), "freeze": ["layers.0"],
                    "scale": "auto"}
    # before any step: rows of known elements and shared weights equal the base model's
    zero = fit(parse_config({**raw, "run_dir": str(tmp_path / "ft0"),
                             "train": {**raw["train"], "max_steps": 1},
                             "optimizer": {"lr": 1e-30, "ema_decay": None}})).model
    assert zero.species == ["Al", "Ni", "Cu"]
    torch.testing.assert_close(zero.species_embedding[1:], base.species_embedding)
    torch.testing.assert_close(zero.species_embedding[0], base.species_embedding.mean(0))
    torch.testing.assert_close(zero.layers[1].coupling[1:], base.layers[1].coupling)
    torch.testing.assert_close(zero.readout_w1, base.readout_w1)
    torch.testing.assert_close(zero.e0[1:], base.e0)  # E0 kept for Ni and Cu
    assert float(zero.scale) == float(base.scale)
    tuned = fit(parse_config(raw)).model
    torch.testing.assert_close(tuned.layers[0].radial, base.layers[0].radial)  # frozen
    assert not torch.allclose(tuned.layers[1].radial, base.layers[1].radial)
    loss0, loss1 = _train_loss(zero, cual_store), _train_loss(tuned, cual_store)
    assert loss1 < 0.95 * loss0, (loss0, loss1)


def test_freeze_typo_is_an_error(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["model"]["freeze"] = ["layer.0"]
    with pytest.raises(ValueError, match=r"'layer\.0' matches no parameter"):
        fit(parse_config(raw))
