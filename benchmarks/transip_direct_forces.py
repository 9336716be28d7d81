"""Pilot (kept in history, not in the tree): TransIP with a direct force head.

Hypothesis tested: the TransIP paper's 40–60 % gain of the contrastive objective over
augmentation comes from a model whose forces are a direct output (a vector head on the
atom tokens, which augmentation must teach to turn with the molecule), not from a
conservative one (forces = −∂E/∂r of an energy that only has to be invariant), where
the experiment finds the orientation-dependent part of the error to be 0.4–3 %.

``DirectForceTransIP`` is ``TransIPPotential`` plus F_i = scale · MLP(h_i) on the final
atom tokens (d → 64 → 3, SiLU); the energy is the model's usual energy head and the
forces are not its gradient (not conservative: for this measurement only). It is
registered in ``MODEL_CLASSES`` of this process, and the experiment's training config
names it instead of ``TransIPPotential``.

``python -m benchmarks.transip_direct_forces VARIANT [LEVEL] [TRAIN_SEED]`` trains one
variant (``contrastive``, ``augment``, ``none``) on the experiment's 3000-structure cell
(4000 steps of 16, the experiment's TransIP options at ``dim`` 56, its label cache
``runs/transip-experiment/labels``) and prints the experiment's table row; LEVEL is the
contrastive level (``system`` or ``atoms``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
from torch import nn

import benchmarks.transip_experiment as experiment
from mlpot.graph import AtomicGraph
from mlpot.models import MODEL_CLASSES
from mlpot.models.base import PotentialOutput, energy_forces_stress
from mlpot.models.transip import TransIPPotential, TransIPPotentialConfig

#: The hyper-parameters are TransIPPotential's (the trainer looks for ``<Name>Config``).
DirectForceTransIPConfig = TransIPPotentialConfig


class DirectForceTransIP(TransIPPotential):
    """TransIP whose forces come from a head on the atom tokens (eV/Å, ``[N, 3]``)."""

    def __init__(self, species, **hyperparameters) -> None:  # type: ignore[no-untyped-def]
        super().__init__(species, **hyperparameters)
        dim = self.config.dim
        self.force_head = nn.Sequential(nn.Linear(dim, 64), nn.SiLU(), nn.Linear(64, 3))

    def forward(self, graph: AtomicGraph, compute_forces: bool = True,
                compute_stress: bool = False, training: bool = False) -> PotentialOutput:
        out = energy_forces_stress(self, graph, False, compute_stress, training)
        if not compute_forces:
            return out
        forces = self.force_head(self.embed(graph).atoms) * self.scale
        return PotentialOutput(out.energy, out.energies,
                               forces if training else forces.detach(), out.stress)


def _direct_training_config(cfg, variant, size, files, run_dir):  # type: ignore[no-untyped-def]
    raw = _experiment_training_config(cfg, variant, size, files, run_dir)
    if raw["model"]["kind"] == "TransIPPotential":
        raw["model"]["kind"] = "DirectForceTransIP"
    return raw


_experiment_training_config = experiment.training_config


def main(variant: str, level: str = "system", train_seed: int = 0) -> None:
    MODEL_CLASSES["DirectForceTransIP"] = DirectForceTransIP  # type: ignore[assignment]
    experiment.training_config = _direct_training_config
    base = experiment.ExperimentConfig()
    cfg = dataclasses.replace(
        base, sizes=(3000,), variants=(variant,), speed_sizes=(), train_seed=train_seed,
        out=Path(f"runs/transip-direct/{variant}-{level}-s{train_seed}"),
        cache=Path("runs/transip-experiment/labels"),
        equivariance={**base.equivariance, "level": level},
    )
    torch.set_num_threads(1)
    experiment.run(cfg)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], *(args[1:2] or ["system"]), *(int(a) for a in args[2:3]))
