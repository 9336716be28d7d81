"""Training benchmark: mlpot's equivariant model vs MACE trained by MACE's own code.

Same EMT metals data (generated here), same group split, same batch size and number of
optimiser steps, similar parameter count; both float32 on the CPU with the same thread
count, each framework's own training program (``mlpot train``, ``mace_run_train``)
run as a subprocess and timed end to end (start-up, E0/statistics, training and a
validation pass after every epoch; each keeps its best epoch's EMA weights, MACE's default
behaviour). Reported: validation energy MAE (meV/atom) and force MAE (meV/Å) of those
saved models, predicted by each framework on the same file, and training throughput in
structures/s = steps × batch / wall time; ratios mlpot/MACE.

MACE validates (and saves) only in epochs with ``epoch % eval_interval == 0``, counting
from 0: an interval equal to the epoch count, used here until 2026-11-29, validated and
saved after the first epoch only, so MACE's errors were those of a one-epoch model.

Model sizes: MACE runs at ``mace_channels``; mlpot's width is then chosen so that its
parameter count is the closest to the trained MACE model's (both counts printed; a
run whose counts differ by more than ``PARAMS_TOLERANCE`` says so).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
import yaml

from benchmarks.mace_env import ensure_mace_venv
from mlpot.datasets import group_split, read
from mlpot.datasets.reference.emt import emt_metals

WORKER = Path(__file__).with_name("mace_train_worker.py")
METALS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
PARAMS_TOLERANCE = 0.2  # relative difference of the parameter counts called "similar"


@dataclass(frozen=True)
class Outcome:
    """One framework's result."""

    name: str
    params: int
    seconds: float
    structures_per_s: float
    energy_mae: float  # eV/atom
    forces_mae: float  # eV/Å


def write_xyz(structures: list, path: Path) -> None:
    """extxyz with ASE's energy/forces/stress and MACE's REF_* copies."""
    out = []
    for atoms in structures:
        a = atoms.copy()
        a.calc = atoms.calc
        a.info["REF_energy"] = atoms.get_potential_energy()
        a.arrays["REF_forces"] = atoms.get_forces()
        out.append(a)
    ase.io.write(path, out, format="extxyz")


def _errors(
    structures: list, energies: list[float], forces: list[np.ndarray]
) -> tuple[float, float]:
    de = [
        abs(e - a.get_potential_energy()) / len(a)
        for a, e in zip(structures, energies, strict=True)
    ]
    df = np.concatenate(
        [np.abs(f - a.get_forces()).ravel() for a, f in zip(structures, forces, strict=True)]
    )
    return float(np.mean(de)), float(df.mean())


def mlpot_params(channels: int) -> dict:
    """mlpot's hyper-parameters in this benchmark (MACE's max_L 1, max_ell 2 analogue)."""
    return {
        "cutoff": 5.0,
        "channels": channels,
        "lmax": 2,
        "hidden_lmax": 1,
        "correlation": 3,
        "num_layers": 2,
    }


def matching_channels(target_params: int, species: tuple[str, ...] = METALS) -> int:
    """mlpot width (4-128 channels) whose parameter count is closest to ``target_params``."""
    from mlpot.models import EquivariantPotential

    def count(channels: int) -> int:
        model = EquivariantPotential(list(species), **mlpot_params(channels))
        return sum(p.numel() for p in model.parameters())

    return min(range(4, 129), key=lambda c: abs(count(c) - target_params))


def run_mlpot(
    work: Path,
    train: Path,
    valid: Path,
    valid_set: list,
    steps: int,
    epochs: int,
    batch: int,
    threads: int,
    channels: int,
) -> Outcome:
    config = {
        "run_dir": str(work / "mlpot-run"),
        "data": {"train": [str(train)], "valid": [str(valid)], "batch_size": batch},
        "model": {"params": {**mlpot_params(channels), "avg_num_neighbors": "auto"}},
        "loss": {"energy": 10.0, "forces": 1.0, "stress": 0.0},
        "optimizer": {"lr": 5e-3, "ema_decay": 0.99, "grad_clip": 10.0},
        "train": {
            "epochs": epochs,
            "max_steps": steps,
            "dtype": "float32",
            "threads": threads,
            "valid_every": 1,
        },
        "log": {"progress": False, "tensorboard": False},
    }
    path = work / "mlpot.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlpot.cli.main", "train", str(path)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    import torch

    import mlpot

    model = mlpot.load_model(work / "mlpot-run" / "best.pt")
    energies, forces = [], []
    for atoms in valid_set:
        graph = mlpot.AtomicGraph.from_atoms(atoms, dtype=torch.float32)
        out = model(graph)
        energies.append(float(out.energy[0]))
        forces.append(out.forces.detach().double().numpy())
    e, f = _errors(valid_set, energies, forces)
    return Outcome(
        "mlpot", sum(p.numel() for p in model.parameters()), seconds, steps * batch / seconds, e, f
    )


def run_mace(
    python: Path,
    work: Path,
    train: Path,
    valid: Path,
    valid_set: list,
    epochs: int,
    steps: int,
    batch: int,
    threads: int,
    channels: int,
) -> Outcome:
    args = [
        "--name",
        "bench",
        "--train_file",
        str(train),
        "--valid_file",
        str(valid),
        "--E0s",
        "average",
        "--model",
        "MACE",
        "--num_channels",
        str(channels),
        "--max_L",
        "1",
        "--max_ell",
        "2",
        "--correlation",
        "3",
        "--num_interactions",
        "2",
        "--r_max",
        "5.0",
        "--num_radial_basis",
        "8",
        "--radial_MLP",
        "[16, 16, 16]",
        "--batch_size",
        str(batch),
        "--valid_batch_size",
        str(batch),
        "--max_num_epochs",
        str(epochs),
        "--eval_interval",
        "1",
        "--lr",
        "5e-3",
        "--amsgrad",
        "--ema",
        "--ema_decay",
        "0.99",
        "--energy_weight",
        "10",
        "--forces_weight",
        "1",
        "--energy_key",
        "REF_energy",
        "--forces_key",
        "REF_forces",
        "--default_dtype",
        "float32",
        "--device",
        "cpu",
        "--seed",
        "0",
        "--clip_grad",
        "10",
        "--model_dir",
        str(work / "mace"),
        "--checkpoints_dir",
        str(work / "mace"),
        "--log_dir",
        str(work / "mace"),
        "--results_dir",
        str(work / "mace"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(WORKER), "train", *args],
        env=env,
        text=True,
        capture_output=True,
        cwd=work,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"MACE training failed:\n{proc.stderr[-3000:]}")
    out = work / "mace_pred.json"
    subprocess.run(
        [
            str(python),
            str(WORKER),
            "predict",
            str(work / "mace" / "bench.model"),
            str(valid),
            str(out),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    pred = json.loads(out.read_text())
    e, f = _errors(
        valid_set,
        [r["energy"] for r in pred["predictions"]],
        [np.array(r["forces"]) for r in pred["predictions"]],
    )
    return Outcome("MACE", int(pred["params"]), seconds, steps * batch / seconds, e, f)


def run(
    structures: int = 400,
    epochs: int = 4,
    batch: int = 4,
    threads: int = 1,
    mlpot_channels: int | None = None,
    mace_channels: int = 16,
    seed: int = 0,
) -> None:
    """Generate data, train both, print the side-by-side table.

    ``mlpot_channels`` None: the width matching the trained MACE model's parameter count.
    """
    python = ensure_mace_venv()
    with tempfile.TemporaryDirectory(prefix="mlpot-train-bench-") as tmp:
        work = Path(tmp)
        emt_metals(work / "all.h5", count=structures, seed=seed, metals=METALS)
        everything = list(read(work / "all.h5"))
        groups = [a.info.get("group", "") for a in everything]
        train_idx, valid_idx = group_split(groups, (0.85, 0.15), seed=seed)
        train_set = [everything[i] for i in train_idx]
        valid_set = [everything[i] for i in valid_idx]
        write_xyz(train_set, work / "train.xyz")
        write_xyz(valid_set, work / "valid.xyz")
        steps = epochs * math.ceil(len(train_set) / batch)
        print(
            f"EMT metals: {len(train_set)} train / {len(valid_set)} valid structures; "
            f"{epochs} epochs x batch {batch} = {steps} steps; float32, {threads} thread(s)",
            flush=True,
        )
        mace = run_mace(
            python,
            work,
            work / "train.xyz",
            work / "valid.xyz",
            valid_set,
            epochs,
            steps,
            batch,
            threads,
            mace_channels,
        )
        channels = mlpot_channels or matching_channels(mace.params)
        mlpot = run_mlpot(
            work,
            work / "train.xyz",
            work / "valid.xyz",
            valid_set,
            steps,
            epochs,
            batch,
            threads,
            channels,
        )
        results = [mlpot, mace]
    ratio = mlpot.params / mace.params
    similar = abs(ratio - 1) <= PARAMS_TOLERANCE
    print(
        f"parameters: mlpot {mlpot.params} ({channels} channels), MACE {mace.params} "
        f"({mace_channels} channels): ratio {ratio:.2f}"
        + ("" if similar else f" -- NOT within {PARAMS_TOLERANCE:.0%}, not comparable")
    )
    print(
        f"{'':8s}{'params':>9s}{'wall s':>9s}{'struct/s':>10s}{'E MAE meV/atom':>16s}"
        f"{'F MAE meV/Å':>13s}"
    )
    for r in results:
        print(
            f"{r.name:8s}{r.params:9d}{r.seconds:9.1f}{r.structures_per_s:10.2f}"
            f"{r.energy_mae * 1e3:16.2f}{r.forces_mae * 1e3:13.1f}"
        )
    m, c = results
    print(
        f"mlpot/MACE: throughput {m.structures_per_s / c.structures_per_s:.2f}x, "
        f"energy MAE {m.energy_mae / c.energy_mae:.2f}x, "
        f"force MAE {m.forces_mae / c.forces_mae:.2f}x (goal: >= 1.5x throughput, "
        f"<= 1x errors)"
    )
