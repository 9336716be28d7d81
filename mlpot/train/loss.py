"""Weighted energy/force/stress loss and error sums, normalised by global label counts.

Each term is a sum over this process's labelled components divided by the number of
labelled components in the whole global batch (all ranks). Summing the gradients of
all ranks therefore gives exactly the gradient of the single-process loss of the same
global batch. Missing labels (NaN) are masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as tnf

from mlpot.graph import AtomicGraph
from mlpot.models.base import PotentialOutput

#: Names of the terms, in the order of :meth:`LabelCounts.as_tensor`.
TERMS = ("energy", "forces", "stress")


@dataclass(frozen=True)
class LabelCounts:
    """Labelled components in a batch: structures with energy, force and stress components."""

    energy: float
    forces: float
    stress: float

    @classmethod
    def of(cls, graph: AtomicGraph) -> LabelCounts:
        return cls(
            float(torch.isfinite(graph.energy).sum()),  # type: ignore[arg-type]  # training batches carry every label, NaN where missing
            float(torch.isfinite(graph.forces).sum()),  # type: ignore[arg-type]  # training batches carry every label, NaN where missing
            float(torch.isfinite(graph.stress).sum()),  # type: ignore[arg-type]  # training batches carry every label, NaN where missing
        )

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.energy, self.forces, self.stress], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> LabelCounts:
        return cls(*(float(x) for x in t))


@dataclass(frozen=True)
class LossTerms:
    """Loss of a batch: the weighted total and its unweighted terms (scalars)."""

    total: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor


def _penalty(error: torch.Tensor, kind: str, delta: float) -> torch.Tensor:
    """Σ over components of the per-component penalty (MSE or Huber)."""
    if kind == "huber":
        return tnf.huber_loss(error, torch.zeros_like(error), reduction="sum", delta=delta)
    return (error**2).sum()


def loss_terms(
    out: PotentialOutput,
    graph: AtomicGraph,
    counts: LabelCounts,
    weights: tuple[float, float, float],
    kind: str = "mse",
    delta: float = 0.01,
) -> LossTerms:
    """Loss of this process's part of a global batch.

    Args:
        out: model output (forces; stress when its weight is non-zero).
        graph: the batch with labels (NaN = absent).
        counts: labelled components of the whole global batch (all ranks).
        weights: (energy per atom, forces, stress) weights.
        kind: ``mse`` or ``huber``.
        delta: Huber threshold, in each term's unit.
    """
    zero = out.energy.new_zeros(())
    n = graph.atoms_per_system.to(out.energy.dtype)
    e_err = (out.energy - graph.energy) / n  # type: ignore[operator]  # training batches carry every label, NaN where missing
    e_mask = torch.isfinite(e_err)
    energy = _penalty(e_err[e_mask], kind, delta) / max(counts.energy, 1.0)
    forces = zero
    if out.forces is not None:
        f_err = out.forces - graph.forces  # type: ignore[operator]  # training batches carry every label, NaN where missing
        forces = _penalty(f_err[torch.isfinite(f_err)], kind, delta) / max(counts.forces, 1.0)
    stress = zero
    if out.stress is not None:
        s_err = out.stress - graph.stress  # type: ignore[operator]  # training batches carry every label, NaN where missing
        stress = _penalty(s_err[torch.isfinite(s_err)], kind, delta) / max(counts.stress, 1.0)
    total = weights[0] * energy + weights[1] * forces + weights[2] * stress
    return LossTerms(total=total, energy=energy, forces=forces, stress=stress)


@dataclass
class ErrorSums:
    """Running sums for MAE/RMSE over a data set (float64, summable across ranks).

    Order of :meth:`as_tensor`: energy |err| per atom, err², count; force |err|,
    err², count; stress |err|, err², count; loss × structures, structures.
    """

    values: torch.Tensor

    @classmethod
    def zeros(cls) -> ErrorSums:
        return cls(torch.zeros(11, dtype=torch.float64))

    def add(self, out: PotentialOutput, graph: AtomicGraph, loss: float) -> None:
        v = self.values
        n = graph.atoms_per_system.double()
        e = (out.energy.detach().double() - graph.energy.double()) / n  # type: ignore[union-attr]  # training batches carry every label, NaN where missing
        for offset, err in (
            (0, e),
            (3, _diff(out.forces, graph.forces)),  # type: ignore[arg-type]  # training batches carry every label, NaN where missing
            (6, _diff(out.stress, graph.stress)),  # type: ignore[arg-type]  # training batches carry every label, NaN where missing
        ):
            err = err[torch.isfinite(err)]
            v[offset] += err.abs().sum()
            v[offset + 1] += (err**2).sum()
            v[offset + 2] += err.numel()
        v[9] += loss * graph.num_systems
        v[10] += graph.num_systems

    def metrics(self) -> dict[str, float]:
        """MAE/RMSE: energy eV/atom, forces eV/Å, stress eV/Å³; mean loss."""
        v = self.values.tolist()
        out = {}
        for offset, name in ((0, "energy"), (3, "forces"), (6, "stress")):
            count = v[offset + 2]
            out[f"{name}_mae"] = v[offset] / count if count else float("nan")
            out[f"{name}_rmse"] = (v[offset + 1] / count) ** 0.5 if count else float("nan")
        out["loss"] = v[9] / v[10] if v[10] else float("nan")
        return out


def _diff(pred: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
    if pred is None:
        return ref.new_empty(0).double()
    return (pred.detach().double() - ref.double()).flatten()
