"""PCA frames for frame averaging (Puny et al., "Frame Averaging for Invariant and
Equivariant Network Design", ICLR 2022).

For a centred point cloud X ``[n, 3]`` (rows are atoms) the covariance
C = (1/n) Σ_i x_i x_iᵀ has eigenvectors V = [v₁ v₂ v₃] (ascending eigenvalues).
Rotating the input, X → X Rᵀ, maps C → R C Rᵀ and V → R V D with D a diagonal sign
matrix, so the coordinates X V D are the same up to the signs D. Averaging a function
over the frame group {V S}, S ∈ ``PROPER_SIGNS``, makes it exactly SO(3)-invariant:

    E(X) = (1/|G|) Σ_S f(X V S),    |G| = 4.

Only the four proper sign matrices (det S = +1) are used, after V is made proper
(det V = +1): the average is invariant under rotations, not under reflections, which
halves the cost compared with the eight O(3) frames. Rotations are the symmetry that
matters for dynamics (angular momentum); mirror symmetry of the energy is left to the
network (it can be taught with reflected training data).

Weights are uniform (geometric centroid and covariance), not masses: the frame group
only needs a tensor that rotates with the molecule, and the centroid is the one the
network already centres on.

Degenerate spectra. Where two eigenvalues coincide the eigenvectors in that subspace
are arbitrary and the derivative of V has a 1/(λᵢ − λⱼ) singularity
(:func:`torch.linalg.eigh` then returns NaN/inf gradients). :class:`SymmetricEigh`
drops the coupling terms of pairs whose gap is below √ε·λ_max (ε = machine epsilon of
the dtype), so energy and forces stay finite. What that means:

- linear molecules (two zero eigenvalues) and single atoms: X V does not depend on the
  arbitrary vectors (X has no component along them), so the frame average is still
  exactly invariant and its forces are the exact gradient;
- symmetric and spherical tops (NH₃, C₆H₆, CH₄ at their symmetric geometries): the
  frame is arbitrary inside the degenerate subspace, so the energy is finite but NOT
  rotation invariant there, and near (not at) such geometries the frame turns fast
  (forces ∝ 1/gap). ``PrincipalFrames.relative_gap`` reports how close a system is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The four proper diagonal sign matrices (det = +1), as their diagonals ``[4, 3]``.
PROPER_SIGNS = ((1.0, 1.0, 1.0), (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0))


class SymmetricEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` of ``[B, 3, 3]`` symmetric matrices with a gap-guarded backward.

    Backward: Ā = V (diag(λ̄) + F ∘ (Vᵀ V̄)) Vᵀ, symmetrised, with F_ij = 1/(λ_j − λ_i)
    for |λ_j − λ_i| > √ε·max|λ| and 0 otherwise (the standard formula with the
    degenerate couplings dropped). Written with differentiable torch operations, so
    double backward (force training) works.
    """

    @staticmethod
    def forward(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.linalg.eigh(matrix)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ARG004
        ctx.save_for_backward(*output)

    @staticmethod
    def backward(ctx, grad_values, grad_vectors):
        values, vectors = ctx.saved_tensors
        gap = values[..., None, :] - values[..., :, None]  # [B, i, j] = λ_j − λ_i
        scale = (
            values.abs()
            .amax(dim=-1, keepdim=True)[..., None]
            .clamp_min(torch.finfo(values.dtype).tiny)
        )
        resolved = gap.abs() > torch.finfo(values.dtype).eps ** 0.5 * scale
        inverse_gap = torch.where(resolved, 1.0 / torch.where(resolved, gap, 1.0), 0.0)
        inner = torch.zeros_like(gap)
        if grad_vectors is not None:
            inner = inverse_gap * (vectors.transpose(-1, -2) @ grad_vectors)
        if grad_values is not None:
            inner = inner + torch.diag_embed(grad_values)
        grad = vectors @ inner @ vectors.transpose(-1, -2)
        return 0.5 * (grad + grad.transpose(-1, -2))


@dataclass(frozen=True)
class PrincipalFrames:
    """The frame group of each system.

    Attributes:
        rotations: ``[B, 4, 3, 3]`` proper rotations V S; coordinates in frame g are
            ``X @ rotations[b, g]``.
        relative_gap: ``[B]`` min(λ₂ − λ₁, λ₃ − λ₂) / λ₃ of the covariance; 0 means a
            degenerate spectrum where the frame is not unique (see the module docstring).
    """

    rotations: torch.Tensor
    relative_gap: torch.Tensor


def principal_frames(centred: torch.Tensor, mask: torch.Tensor) -> PrincipalFrames:
    """PCA frames of padded, centred point clouds.

    Args:
        centred: ``[B, n, 3]`` positions minus each system's centroid, Å (padding rows 0).
        mask: ``[B, n]`` bool, True for real atoms.
    """
    weights = mask.to(centred.dtype)
    covariance = torch.einsum("bn,bni,bnj->bij", weights, centred, centred)
    covariance = covariance / weights.sum(dim=1).clamp_min(1.0)[:, None, None]
    values, vectors = SymmetricEigh.apply(covariance)
    # make V proper (det +1) by flipping v₃; the sign is a constant for autograd
    det_sign = torch.sign(torch.linalg.det(vectors.detach()))
    det_sign = torch.where(det_sign == 0, torch.ones_like(det_sign), det_sign)
    ones = torch.ones_like(det_sign)
    vectors = vectors * torch.stack([ones, ones, det_sign], dim=-1)[:, None, :]
    signs = torch.tensor(PROPER_SIGNS, dtype=centred.dtype, device=centred.device)
    rotations = vectors[:, None] * signs[None, :, None, :]
    spread = values.detach()
    gap = torch.minimum(spread[:, 1] - spread[:, 0], spread[:, 2] - spread[:, 1])
    relative_gap = gap / spread[:, 2].clamp_min(torch.finfo(spread.dtype).tiny)
    return PrincipalFrames(rotations=rotations, relative_gap=relative_gap)
