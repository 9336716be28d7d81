"""Teaching a non-equivariant potential rotational symmetry; measuring how well it learned.

Modes (:data:`EquivarianceMode`, the training config's ``equivariance:``):

- ``"none"``: the energy/force loss on the batch as given.
- ``"augment"``: the baseline: every structure of every batch is rotated by a fresh
  uniformly random rotation (labels included) before the energy/force loss
  (:func:`augment`).
- ``"contrastive"``: ``augment`` plus λ × :func:`contrastive_loss`, so the comparison
  with ``augment`` isolates the contrastive term.

Contrastive objective (TransIP-style; the paper's exact loss is not at hand, these are
our choices). For a batch of B structures x_b with pooled embeddings z_b and fresh random
rotations R_b, a learned rotation-conditioned map T predicts the embedding of the
rotated structure, p_b = T(z_b, R_b), and InfoNCE with temperature τ (cosine
similarities) picks the true z(R_b x_b) among the candidates

- p_b (positive), p_c for c ≠ b (the other structures: negatives, as in SimCLR),
- T(z_b, R'_bk) for k = 1…K fresh wrong rotations R'_bk (rotation negatives).

``level="atoms"`` applies the same objective to the per-atom tokens instead of the
pooled vector: each atom a of system b is an anchor with rotation R_b, the other atoms
of the batch (at most ``max_anchors`` anchors, drawn at random) are its negatives. The
energy head reads the atom tokens, so this level shapes the features forces come from;
the pooled level only sees their mean.

Collapse guards:

- rotation negatives block the *invariant* collapse: if z(R x) = z(x), the target does
  not depend on R_b, so p_b and T(z_b, R'_bk) are equally good candidates and the
  loss cannot fall below log(1 + K); the encoder has to keep orientation information
  that T can turn. Without them, an invariant encoder and T = identity reach zero loss.
- a VICReg variance hinge (Bardes et al. 2022) on z and z(Rx):
  mean_d max(0, γ − std_b(z_bd)) blocks total/dimensional collapse (all structures on
  one point or one axis), which cosine InfoNCE alone penalises only weakly once its
  logits saturate; it is zero whenever the spread already exceeds γ, so it never
  fights the energy loss.

Limitation: a structure with a rotational point-group symmetry g has z(R g x) = z(R x);
a wrong rotation R' = R g then is no true negative. Random rotations hit that set with
probability zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as tnf
from torch import nn

from mlpot.graph import AtomicGraph
from mlpot.models.transip import TransIPPotential

EquivarianceMode = Literal["contrastive", "augment", "none"]
#: The valid values of :data:`EquivarianceMode`.
EQUIVARIANCE_MODES: tuple[str, ...] = get_args(EquivarianceMode)
ContrastiveLevel = Literal["system", "atoms"]
#: The valid values of :data:`ContrastiveLevel`.
CONTRASTIVE_LEVELS: tuple[str, ...] = get_args(ContrastiveLevel)


def random_rotations(
    count: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[count, 3, 3]`` uniformly random proper rotations (normalised Gaussian quaternions)."""
    q = torch.randn(count, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    matrix = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        dim=1,
    )
    return matrix.view(count, 3, 3).to(dtype=dtype, device=device)


def rotate_graph(graph: AtomicGraph, rotations: torch.Tensor) -> AtomicGraph:
    """Rotate every system b by ``rotations[b]`` (``[B, 3, 3]``) about the origin.

    Vectors (rows) map r → R r: positions, velocities, force labels, cell rows and
    periodic shifts; the stress label maps σ → R σ Rᵀ. Edges and energies are unchanged.
    """
    if rotations.shape != (graph.num_systems, 3, 3):
        raise ValueError(
            f"rotate_graph needs [{graph.num_systems}, 3, 3] rotations, got "
            f"{tuple(rotations.shape)}"
        )
    rot = rotations.to(dtype=graph.dtype, device=graph.device)
    per_atom = rot[graph.system_index]

    def turn(vectors: torch.Tensor | None, matrices: torch.Tensor) -> torch.Tensor | None:
        return None if vectors is None else torch.einsum("nij,nj->ni", matrices, vectors)

    changes = {
        "positions": turn(graph.positions, per_atom),
        "velocities": turn(graph.velocities, per_atom),
        "forces": turn(graph.forces, per_atom),
        "cell": torch.einsum("bij,bkj->bki", rot, graph.cell),
    }
    if graph.shifts is not None and graph.edge_index is not None:
        changes["shifts"] = turn(graph.shifts, rot[graph.system_index[graph.edge_index[0]]])
    if graph.stress is not None:
        changes["stress"] = rot @ graph.stress @ rot.transpose(1, 2)
    return graph.replace(**changes)


def augment(graph: AtomicGraph, generator: torch.Generator | None = None) -> AtomicGraph:
    """The ``augment`` mode: each system turned by its own uniformly random rotation."""
    return rotate_graph(
        graph, random_rotations(graph.num_systems, generator, graph.dtype, graph.device)
    )


class RotationConditionedTransform(nn.Module):
    """T(z, R) = z + MLP([z, vec R]): the predicted embedding of R·x from that of x.

    A generic MLP (no built-in representation theory) with a residual path; the last
    layer starts at zero, so T starts as the identity. Only used in training.

    Args:
        dim: embedding width d (the model's ``dim``).
        hidden: hidden width (default 2d).
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or 2 * dim
        self.net = nn.Sequential(
            nn.Linear(dim + 9, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, dim),
        )
        nn.init.zeros_(self.net[-1].weight)  # type: ignore[arg-type]  # net[-1] is a Linear
        nn.init.zeros_(self.net[-1].bias)  # type: ignore[arg-type]  # net[-1] is a Linear

    def forward(self, embedding: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """``[B, d]`` predictions from ``embedding [B, d]`` and ``rotations [B, 3, 3]``."""
        flat = rotations.to(embedding.dtype).flatten(1)
        return embedding + self.net(torch.cat([embedding, flat], dim=1))


@dataclass(frozen=True)
class ContrastiveConfig:
    """Settings of :func:`contrastive_loss`.

    Attributes:
        temperature: τ of the InfoNCE softmax over cosine similarities.
        rotation_negatives: K wrong-rotation candidates per structure (0 disables the
            invariant-collapse guard).
        variance_floor: γ, the per-dimension standard deviation the embeddings keep.
        variance_weight: weight of the variance hinge relative to InfoNCE.
        level: ``"system"`` (pooled embeddings) or ``"atoms"`` (atom tokens).
        max_anchors: ``atoms`` level: at most this many atoms of the batch (drawn at
            random) are anchors; the InfoNCE logits are anchors × (K + 1)·anchors.
    """

    temperature: float = 0.1
    rotation_negatives: int = 2
    variance_floor: float = 0.1
    variance_weight: float = 1.0
    level: ContrastiveLevel = "system"
    max_anchors: int = 512

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.level not in CONTRASTIVE_LEVELS:
            raise ValueError(f"level must be one of {CONTRASTIVE_LEVELS}, got {self.level!r}")
        if self.max_anchors < 2:
            raise ValueError(f"max_anchors must be >= 2, got {self.max_anchors}")
        if self.rotation_negatives < 0 or self.variance_floor < 0 or self.variance_weight < 0:
            raise ValueError("rotation_negatives, variance_floor and variance_weight must be >= 0")


@dataclass(frozen=True)
class ContrastiveLoss:
    """Terms of the contrastive objective (scalars).

    Attributes:
        loss: info_nce + variance_weight · variance_penalty (differentiable).
        info_nce: the InfoNCE cross-entropy, nats.
        variance_penalty: mean_d max(0, γ − std_b z_bd).
        spread: mean_d std_b z_bd of the embeddings (detached): the collapse monitor.
    """

    loss: torch.Tensor
    info_nce: torch.Tensor
    variance_penalty: torch.Tensor
    spread: torch.Tensor


def contrastive_objective(
    embedding: torch.Tensor,
    rotated_embedding: torch.Tensor,
    rotations: torch.Tensor,
    transform: RotationConditionedTransform,
    config: ContrastiveConfig,
    generator: torch.Generator | None = None,
) -> ContrastiveLoss:
    """The loss from embeddings: z ``[B, d]`` of x, z(R x) ``[B, d]``, R ``[B, 3, 3]``."""
    b = embedding.shape[0]
    predicted = transform(embedding, rotations)
    candidates = [predicted]
    if config.rotation_negatives:
        wrong = random_rotations(
            b * config.rotation_negatives, generator, embedding.dtype, embedding.device
        )
        candidates.append(transform(embedding.repeat(config.rotation_negatives, 1), wrong))
    keys = tnf.normalize(torch.cat(candidates), dim=1)
    logits = tnf.normalize(rotated_embedding, dim=1) @ keys.T / config.temperature
    info_nce = tnf.cross_entropy(logits, torch.arange(b, device=logits.device))
    both = torch.cat([embedding, rotated_embedding])
    std = torch.sqrt(both.var(dim=0, correction=0) + 1e-8)
    penalty = tnf.relu(config.variance_floor - std).mean()
    return ContrastiveLoss(
        loss=info_nce + config.variance_weight * penalty,
        info_nce=info_nce,
        variance_penalty=penalty,
        spread=std.mean().detach(),
    )


def contrastive_loss(
    model: TransIPPotential,
    transform: RotationConditionedTransform,
    graph: AtomicGraph,
    config: ContrastiveConfig | None = None,
    generator: torch.Generator | None = None,
) -> ContrastiveLoss:
    """The ``contrastive`` term for one batch: embeds x and R·x (fresh random R per
    structure) with ``model.embed`` and scores them with :func:`contrastive_objective`,
    per structure (``config.level == "system"``) or per atom (``"atoms"``)."""
    config = config or ContrastiveConfig()
    rotations = random_rotations(graph.num_systems, generator, model.dtype, model.e0.device)
    plain = model.embed(graph)
    rotated = model.embed(rotate_graph(graph.to(model.e0.device, model.dtype), rotations))
    if config.level == "system":
        return contrastive_objective(
            plain.pooled, rotated.pooled, rotations, transform, config, generator
        )
    per_atom = rotations[graph.system_index.to(rotations.device)]
    anchors = torch.randperm(graph.num_atoms, generator=generator)[: config.max_anchors]
    anchors = anchors.to(per_atom.device)
    return contrastive_objective(
        plain.atoms[anchors], rotated.atoms[anchors], per_atom[anchors], transform, config,
        generator,
    )


@dataclass(frozen=True)
class EquivarianceError:
    """How far a model is from exact symmetry under one random rotation per structure.

    Attributes:
        energy: mean over systems of |E(R x) − E(x)| / n_atoms, eV/atom.
        forces: ‖F(R x) − R F(x)‖ / ‖F(x)‖ over the batch (Frobenius norms).
    """

    energy: float
    forces: float


def equivariance_error(
    model: torch.nn.Module, graph: AtomicGraph, generator: torch.Generator | None = None
) -> EquivarianceError:
    """Measure :class:`EquivarianceError` of any Potential on a batch (edges rebuilt)."""
    graph = graph.replace(edge_index=None, shifts=None)
    rotations = random_rotations(graph.num_systems, generator, graph.dtype, graph.device)
    ref = model(graph)
    out = model(rotate_graph(graph, rotations))
    per_atom = graph.atoms_per_system.to(ref.energy.dtype)
    energy = ((out.energy - ref.energy).abs() / per_atom).mean()
    expected = torch.einsum("nij,nj->ni", rotations.to(ref.forces)[graph.system_index], ref.forces)
    forces = (out.forces - expected).norm() / ref.forces.norm().clamp_min(1e-30)
    return EquivarianceError(energy=float(energy), forces=float(forces))
