"""Train the shipped model ``emt-cuni-small`` on ASE EMT labels for Cu and Ni.

Labels: :func:`mlpot.datasets.reference.emt_metals` (strained fcc/bcc/hcp bulk,
vacancies, rattled bulk, fcc surfaces, Cu–Ni alloys, Langevin MD snapshots at
300-1500 K; energy, forces, stress). Split by group (MD snapshots of one run stay
together), per-element E0 by least squares, then a small float32
:class:`~mlpot.models.EquivariantPotential` trained with Adam on a weighted
energy/force/stress loss and a cosine LR decay; the checkpoint with the best
validation loss is saved with :func:`mlpot.save_model`.

Run from the repository root (``--minutes`` of training, default 20)::

    OMP_NUM_THREADS=1 python examples/train_shipped_emt.py

Validation metrics are printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import mlpot
from mlpot import AtomicGraph, collate, with_neighbors
from mlpot.datasets import fit_e0, group_split, read
from mlpot.datasets.reference.emt import emt_metals
from mlpot.models import EquivariantPotential

OUTPUT = Path(__file__).resolve().parents[1] / "mlpot" / "pretrained" / "emt-cuni-small.pt"
MODEL = {"cutoff": 5.0, "channels": 16, "lmax": 2, "hidden_lmax": 1, "correlation": 3,
         "num_layers": 2, "num_knots": 12, "readout_hidden": 16, "avg_num_neighbors": 30.0}
#: Loss weights: (ΔE/N)² in eV², ΔF² per component in (eV/Å)², Δσ² in (eV/Å³)².
W_ENERGY, W_FORCE, W_STRESS = 10.0, 1.0, 100.0


@dataclass(frozen=True)
class Metrics:
    """Errors over a set of structures (eV, Å units)."""

    energy_mae: float  # eV/atom
    force_mae: float  # eV/Å per component
    force_rmse: float  # eV/Å per component
    stress_mae: float  # eV/Å³ per component
    loss: float


def labelled_graphs(path: Path, cutoff: float) -> tuple[list[AtomicGraph], list[str]]:
    """One float32 graph with neighbours per structure, and its group label."""
    graphs, groups = [], []
    for atoms in read(path, require=["energy", "forces", "stress"]):
        graphs.append(with_neighbors(AtomicGraph.from_atoms(atoms, dtype=torch.float32), cutoff))
        groups.append(str(atoms.info.get("group", "")))
    return graphs, groups


def batch_loss(model: EquivariantPotential, graph: AtomicGraph, training: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted loss of one batch and the model output (energy, forces, stress)."""
    out = model(graph, compute_stress=True, training=training)
    n = graph.atoms_per_system.to(out.energy.dtype)
    loss = (W_ENERGY * (((out.energy - graph.energy) / n) ** 2).mean()
            + W_FORCE * ((out.forces - graph.forces) ** 2).mean()
            + W_STRESS * ((out.stress - graph.stress) ** 2).mean())
    return loss, out


def evaluate(model: EquivariantPotential, graphs: list[AtomicGraph], batch: int = 16
             ) -> Metrics:
    """Errors of ``model`` on ``graphs`` (float64 accumulation)."""
    de, df, ds, losses = [], [], [], []
    for k in range(0, len(graphs), batch):
        g = collate(graphs[k:k + batch])
        loss, out = batch_loss(model, g, training=False)
        n = g.atoms_per_system.double()
        de.append(((out.energy.detach().double() - g.energy.double()) / n).abs())
        df.append((out.forces.detach().double() - g.forces.double()).flatten())
        ds.append((out.stress.detach().double() - g.stress.double()).abs().flatten())
        losses.append(float(loss) * g.num_systems)
    df_all = torch.cat(df)
    return Metrics(float(torch.cat(de).mean()), float(df_all.abs().mean()),
                   float(df_all.pow(2).mean().sqrt()), float(torch.cat(ds).mean()),
                   sum(losses) / len(graphs))


def train(model: EquivariantPotential, train_set: list[AtomicGraph],
          valid_set: list[AtomicGraph], minutes: float, max_epochs: int, batch: int,
          lr: float, seed: int) -> EquivariantPotential:
    """Adam with a cosine decay to lr/50 over a wall-time budget (or ``max_epochs``);
    returns a copy with the best validation loss (checked after every epoch)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, amsgrad=True)
    rng = np.random.default_rng(seed)
    best, best_loss, start = copy.deepcopy(model), float("inf"), time.perf_counter()
    budget = minutes * 60.0
    for epoch in range(max_epochs):
        order = rng.permutation(len(train_set))
        for k in range(0, len(order), batch):
            frac = min((time.perf_counter() - start) / budget, 1.0)
            for group in opt.param_groups:
                group["lr"] = lr / 50 + (lr - lr / 50) * 0.5 * (1 + math.cos(math.pi * frac))
            loss, _ = batch_loss(model, collate([train_set[i] for i in order[k:k + batch]]),
                                 training=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
        m = evaluate(model, valid_set)
        if m.loss < best_loss:
            best, best_loss = copy.deepcopy(model), m.loss
        elapsed = time.perf_counter() - start
        print(f"epoch {epoch + 1:3d}  {elapsed:6.0f} s  lr {opt.param_groups[0]['lr']:.1e}  "
              f"valid E {m.energy_mae * 1e3:6.2f} meV/atom  F {m.force_mae * 1e3:6.1f} meV/Å  "
              f"S {m.stress_mae * 1e3:.3f} meV/Å³{'  *' if m.loss == best_loss else ''}",
              flush=True)
        if elapsed >= budget:
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=700)
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="wall-time budget of the LR schedule and the training")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "emt_cuni.h5"
        result = emt_metals(store, count=args.structures, seed=args.seed, metals=("Cu", "Ni"))
        print(f"EMT labels: {result.structures} structures, {result.kinds}, "
              f"{result.seconds:.1f} s")
        graphs, groups = labelled_graphs(store, MODEL["cutoff"])
    train_idx, valid_idx = group_split(groups, (0.9, 0.1), seed=args.seed)
    train_set = [graphs[i] for i in train_idx]
    valid_set = [graphs[i] for i in valid_idx]
    model = EquivariantPotential(["Cu", "Ni"], **MODEL)
    e0 = fit_e0([g.atomic_numbers.numpy() for g in train_set],
                [float(g.energy[0]) for g in train_set], species=[29, 28])
    model.set_reference_energies({"Cu": e0[29], "Ni": e0[28]})
    print(f"train {len(train_set)} / valid {len(valid_set)} structures "
          f"({sum(g.num_atoms for g in train_set)} / {sum(g.num_atoms for g in valid_set)} "
          f"atoms); E0 Cu {e0[29]:.4f} eV, Ni {e0[28]:.4f} eV; "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    best = train(model, train_set, valid_set, args.minutes, args.max_epochs, args.batch,
                 args.lr, args.seed)
    m = evaluate(best, valid_set)
    mlpot.save_model(best, args.output)
    print(f"saved {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    print(f"validation ({len(valid_set)} structures): energy MAE "
          f"{m.energy_mae * 1e3:.2f} meV/atom, force MAE {m.force_mae * 1e3:.1f} meV/Å, "
          f"force RMSE {m.force_rmse * 1e3:.1f} meV/Å, stress MAE {m.stress_mae * 1e3:.3f} "
          f"meV/Å³ ({m.stress_mae * 160.2177:.4f} GPa)")


if __name__ == "__main__":
    main()
