"""``torchrun --nproc_per_node 2`` (gloo, CPU) trains the same weights as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
import yaml
from train_helpers import tiny_config

import mlpot
from mlpot.train.sampler import epoch_batches, shard_batch


def _run(args: list[str], cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_ranks_match_one_process(tmp_path, cu_store):
    raw = tiny_config(
        tmp_path / "single",
        cu_store,
        data={"batch_size": 5, "valid_fraction": 0.2},
        train={"epochs": 2, "max_steps": 6},
        optimizer={"ema_decay": 0.9, "grad_clip": 1.0},
    )
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    _run([sys.executable, "-m", "mlpot.cli.main", "train", str(config)], tmp_path)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "mlpot.cli.main",
            "train",
            str(config),
            "--set",
            f"run_dir={tmp_path / 'ddp'}",
        ],
        tmp_path,
    )
    single = mlpot.load_model(tmp_path / "single" / "final.pt")
    ddp = mlpot.load_model(tmp_path / "ddp" / "final.pt")
    changed = 0
    start = mlpot.load_model(sorted((tmp_path / "single" / "checkpoints").glob("*.pt"))[0])
    for (key, a), b in zip(single.state_dict().items(), ddp.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=key)
    for a, b in zip(single.parameters(), start.parameters(), strict=True):
        changed += int(not torch.equal(a, b))
    assert changed > 0
    csv_single = (tmp_path / "single" / "metrics.csv").read_text().splitlines()
    csv_ddp = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    v1 = [float(r.split(",")[9]) for r in csv_single[1:]]
    v2 = [float(r.split(",")[9]) for r in csv_ddp[1:]]
    np.testing.assert_allclose(v1, v2, rtol=1e-6)  # validation sums over ranks agree


def test_shards_partition_the_global_batch_balanced():
    rng = np.random.default_rng(0)
    atoms = rng.integers(1, 200, size=500)
    for batch in epoch_batches(np.arange(500), atoms, seed=1, epoch=0, max_atoms=2000):
        assert atoms[batch].sum() <= 2000 or len(batch) == 1
        parts = [shard_batch(batch, atoms, 3, r) for r in range(3)]
        assert sorted(np.concatenate(parts).tolist()) == sorted(batch.tolist())
        loads = [atoms[p].sum() for p in parts]
        assert max(loads) - min(loads) <= atoms[batch].max()  # LPT bound
