"""Runs inside MACE's own venv: train with MACE's own CLI, or predict a validation file.

    python mace_train_worker.py train ARGS...   # mace.cli.run_train.main with ARGS
    python mace_train_worker.py predict MODEL XYZ OUT.json

Imports only the standard library, numpy, torch and ase at module level (never
mlpot). e3nn 0.4.4 under torch >= 2.6 needs ``slice`` allowed for weights-only
unpickling before ``from e3nn import o3`` runs.
"""

from __future__ import annotations

import json
import sys

import torch


def _allow_slice() -> None:
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals([slice])


def train(args: list[str]) -> None:
    _allow_slice()
    from mace.cli.run_train import main

    sys.argv = ["mace_run_train", *args]
    main()


def predict(model_path: str, xyz: str, out: str) -> None:
    """Energy and forces of every structure in ``xyz`` by the trained MACE model."""
    _allow_slice()
    import ase.io
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=model_path, device="cpu", default_dtype="float32")
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for atoms in ase.io.read(xyz, ":"):
        atoms.calc = calc
        rows.append(
            {"energy": float(atoms.get_potential_energy()), "forces": atoms.get_forces().tolist()}
        )
    with open(out, "w") as fh:
        json.dump({"params": params, "predictions": rows}, fh)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2:])
    else:
        predict(*sys.argv[2:5])
