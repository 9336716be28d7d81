"""A store larger than the memory the run may use still trains (structures are streamed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ase.build
import yaml
from ase.calculators.emt import EMT
from train_helpers import tiny_config

from mlpot.datasets import PackedStoreWriter
from mlpot.datasets.reference.common import label

STRUCTURES = 20_000  # × 256 atoms × 49 bytes ≈ 250 MB on disk
HEADROOM = 160 * 2**20  # address space the run may add after its imports, bytes

SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from mlpot.train import fit, load_config
    from mlpot.datasets import PackedStore
    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    limit = size + int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = fit(load_config(sys.argv[1]))
    print("steps", result.steps)
    try:  # control: holding the data in memory is impossible under this limit
        PackedStore(sys.argv[3]).read_array("positions").copy()
    except MemoryError:
        print("whole-file read: MemoryError")
""")


def test_store_larger_than_memory_limit_trains(tmp_path, cu_store):
    atoms = label(ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(4), EMT(), stress=True)
    big = tmp_path / "big.h5"
    with PackedStoreWriter(big, buffer_size=2000) as writer:
        for _ in range(STRUCTURES):
            writer.add(atoms)
    assert big.stat().st_size > 1.4 * HEADROOM
    raw = tiny_config(
        tmp_path / "run",
        big,
        data={"valid": [str(cu_store)], "batch_size": 1, "max_valid": 4},
        train={"max_steps": 3},
    )
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    script = tmp_path / "run_limited.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(config), str(HEADROOM), str(big)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "steps 3" in proc.stdout
    assert "whole-file read: MemoryError" in proc.stdout
