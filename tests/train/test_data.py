"""Training inputs: every format trains, charge/spin travel, groups never straddle splits."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import torch
from format_writers import make_mptrj, write_omol25_shard
from train_helpers import tiny_config

from mlpot.datasets import read
from mlpot.train import fit, parse_config
from mlpot.train.distributed import World
from mlpot.train.setup import open_data


def test_mptrj_json_trains_and_splits_by_mp_id(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mptrj.json"
    path.write_text(json.dumps(make_mptrj(rng, n_materials=6, frames=3)))
    raw = tiny_config(
        tmp_path / "run",
        path,
        data={"valid_fraction": 0.34, "batch_size": 3},
        train={"max_steps": 2},
    )
    raw["model"]["species"] = None
    cfg = parse_config(raw)
    data = open_data(cfg, World(), 4.0, torch.float64)
    ids = [data.train.source[i].info["group"] for i in range(len(data.train.source))]  # mp_id
    train_ids = {ids[i] for i in data.train.indices}
    valid_ids = {ids[i] for i in data.valid.indices}
    assert train_ids and valid_ids and not train_ids & valid_ids
    assert len(data.train) + len(data.valid) == 18
    assert list((tmp_path / "run" / "cache").glob("mptrj-*.h5"))
    assert fit(cfg).steps == 2


def test_omol25_charge_and_spin_reach_the_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "omol"
    folder.mkdir()
    written = write_omol25_shard(folder / "a.aselmdb", rng, 10)
    raw = tiny_config(
        tmp_path / "run", folder, data={"valid_fraction": 0.0}, train={"max_steps": 1}
    )
    raw["model"]["params"]["max_charge"] = 3
    cfg = parse_config(raw)
    data = open_data(cfg, World(), 4.0, torch.float64)
    charges = [int(data.train[i].charge[0]) for i in data.train.indices]
    spins = [int(data.train[i].spin[0]) for i in data.train.indices]
    assert charges == [w["charge"] for w in written]
    assert spins == [w["spin"] for w in written]
    assert any(c != 0 for c in charges) and any(s > 1 for s in spins)
    assert fit(cfg).steps == 1


def test_extxyz_and_atom_count_batches(tmp_path, cu_store):
    path = tmp_path / "cu.extxyz"
    ase.io.write(path, list(read(cu_store)))
    raw = tiny_config(
        tmp_path / "run",
        path,
        data={"max_atoms": 60, "valid_fraction": 0.2},
        train={"max_steps": 3},
    )
    result = fit(parse_config(raw))
    assert result.steps == 3
