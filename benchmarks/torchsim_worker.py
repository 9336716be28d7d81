"""Runs inside TorchSim's own virtual environment (never imports mlpot).

``python torchsim_worker.py '<json>'`` with ``{"cases": [{"name", "cells", "repeat",
"steps", "warmup"}], "a": lattice constant Å, "temperature": K, "dt_fs": fs,
"friction": 1/fs}`` prints one JSON line ``{name: ms per step}``: NVT Langevin
(TorchSim's BAOAB ``nvt_langevin``) of Lennard-Jones argon (ε 0.0104 eV, σ 3.40 Å,
r_c 8.5 Å), float32, one thread (process CPU time), on ``cells`` copies of fcc argon
``repeat``³ cubic cells.
"""

from __future__ import annotations

import json
import sys
import time

import torch

torch.set_num_threads(1)

import torch_sim as ts  # noqa: E402
from torch_sim.integrators import nvt_langevin  # noqa: E402
from torch_sim.models.lennard_jones import LennardJonesModel  # noqa: E402
from torch_sim.units import MetalUnits  # noqa: E402


def fcc_argon_state(a: float, repeat: int, cells: int, dtype: torch.dtype) -> ts.SimState:
    """``cells`` copies of fcc Ar, ``repeat``³ cubic cells of 4 atoms (the order of
    ``ase.build.bulk("Ar", "fcc", a, cubic=True).repeat(repeat)``); no ase here."""
    basis = torch.tensor(
        [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=torch.float64
    )
    grid = torch.stack(torch.meshgrid(*[torch.arange(repeat)] * 3, indexing="ij"), -1)
    frac = (grid.reshape(-1, 1, 3).double() + basis).reshape(-1, 3)
    one = frac * a
    n = one.shape[0]
    cell = torch.eye(3, dtype=dtype) * a * repeat  # symmetric: row = column convention
    return ts.SimState(
        positions=one.repeat(cells, 1).to(dtype),
        masses=torch.full((n * cells,), 39.948, dtype=dtype),
        cell=cell.expand(cells, 3, 3).contiguous(),
        pbc=True,
        atomic_numbers=torch.full((n * cells,), 18, dtype=torch.int64),
        system_idx=torch.arange(cells).repeat_interleave(n),
    )


def run_case(case: dict, cfg: dict) -> float:
    """ms per Langevin step of one case."""
    device, dtype = torch.device("cpu"), torch.float32
    state = fcc_argon_state(cfg["a"], case["repeat"], case["cells"], dtype)
    model = LennardJonesModel(
        sigma=3.40,
        epsilon=0.0104,
        cutoff=8.5,
        device=device,
        dtype=dtype,
        compute_forces=True,
        compute_stress=False,
        use_neighbor_list=True,
    )
    dt = torch.tensor(cfg["dt_fs"] * 1e-3 * MetalUnits.time, dtype=dtype)
    kT = torch.tensor(cfg["temperature"] * MetalUnits.temperature, dtype=dtype)
    gamma = torch.tensor(cfg["friction"] / (1e-3 * MetalUnits.time), dtype=dtype)
    init, update = nvt_langevin(model, dt=dt, kT=kT, gamma=gamma, seed=0)
    state = init(state)
    for _ in range(case["warmup"]):
        state = update(state)
    start = time.process_time()
    for _ in range(case["steps"]):
        state = update(state)
    elapsed = time.process_time() - start
    if not bool(torch.isfinite(state.positions).all()):
        raise RuntimeError(f"{case['name']}: TorchSim run blew up")
    return 1e3 * elapsed / case["steps"]


def main() -> None:
    cfg = json.loads(sys.argv[1])
    print(json.dumps({c["name"]: run_case(c, cfg) for c in cfg["cases"]}))


if __name__ == "__main__":
    main()
