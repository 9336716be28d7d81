"""The ``equivariance:`` training modes inside the trainer's step.

- ``none``: batches as given.
- ``augment``: each structure of the batch turned by a uniformly random rotation
  (positions, cell, force and stress labels) before the energy/force loss.
- ``contrastive``: ``augment`` plus λ × the contrastive embedding loss of
  :func:`mlpot.models.transip_equivariance.contrastive_loss`, scored by a learned
  :class:`~mlpot.models.transip_equivariance.RotationConditionedTransform`; with
  ``augment: false`` the energy/force loss sees the batch as given, so the contrastive
  term is the only source of rotational symmetry.

The rotations of step s on rank r come from a generator seeded by (seed, s, r), so a
resumed run draws the same rotations as the uninterrupted one. The transform is
trained with the model (same optimiser, gradients summed over ranks, clipped with
the model's) and saved in the resumable training state, never in the deployed model.
"""

from __future__ import annotations

import numpy as np
import torch

from mlpot.graph import AtomicGraph
from mlpot.models.transip_equivariance import (
    ContrastiveConfig,
    ContrastiveLoss,
    RotationConditionedTransform,
    augment,
    contrastive_loss,
)
from mlpot.train.config import EquivarianceConfig, require_embed


class EquivarianceTraining:
    """Per-step rotation augmentation and the contrastive term of one run.

    Args:
        cfg: the ``equivariance:`` section.
        model: the model being trained (``contrastive``: must have ``embed`` and
            ``config.dim``).
        seed: ``train.seed``.
        rank: this process's rank (each rank draws its own rotations).
    """

    def __init__(
        self, cfg: EquivarianceConfig, model: torch.nn.Module, seed: int, rank: int = 0
    ) -> None:
        self.weight, self.seed, self.rank = cfg.weight, seed, rank
        self.rotate_batches = cfg.mode != "none" and cfg.augment
        self.transform: RotationConditionedTransform | None = None
        if cfg.mode == "contrastive":
            require_embed(model, type(model).__name__)
            self.contrastive = ContrastiveConfig(
                temperature=cfg.temperature,
                rotation_negatives=cfg.rotation_negatives,
                variance_floor=cfg.variance_floor,
                variance_weight=cfg.variance_weight,
                level=cfg.level,
                max_anchors=cfg.max_anchors,
            )
            first = next(model.parameters())
            self.transform = RotationConditionedTransform(model.config.dim, cfg.hidden).to(  # type: ignore[arg-type]  # the config check admits only models with a TransIP config/embedding
                device=first.device, dtype=first.dtype
            )

    def parameters(self) -> list[torch.nn.Parameter]:
        """The transform's trainable parameters (empty unless ``contrastive``)."""
        return [] if self.transform is None else list(self.transform.parameters())

    def generator(self, step: int) -> torch.Generator:
        """The CPU generator of global step ``step`` (a pure function of seed, step, rank)."""
        state = np.random.SeedSequence([self.seed, step, self.rank]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def batch(self, graph: AtomicGraph, generator: torch.Generator) -> AtomicGraph:
        """The batch the energy/force loss sees (rotated unless ``none`` or
        ``contrastive`` with ``augment: false``)."""
        return augment(graph, generator) if self.rotate_batches else graph

    def contrastive_terms(
        self, model: torch.nn.Module, graph: AtomicGraph, generator: torch.Generator
    ) -> ContrastiveLoss | None:
        """The contrastive objective of this rank's batch, not yet multiplied by λ; None
        unless ``contrastive``."""
        if self.transform is None:
            return None
        return contrastive_loss(model, self.transform, graph, self.contrastive, generator)  # type: ignore[arg-type]  # the config check admits only models with a TransIP config/embedding

    def state_dict(self) -> dict | None:
        return None if self.transform is None else self.transform.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.transform is None:
            return
        if state is None:
            raise ValueError(
                "equivariance.mode is contrastive but the checkpoint has no transform state "
                "(it was written by a run with another mode)"
            )
        self.transform.load_state_dict(state)
