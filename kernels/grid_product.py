"""Fused SH → grid → pointwise products + MLP → SH node update (pure-torch reference).

Features are SH-major ``[M, N, C]`` (M = (L+1)² real SH coefficients, e3nn order, N
nodes, C channels), so SH ↔ grid are single matrix products over M and the MLP is a
single matrix product over C. With F factor features x_1 … x_F mapped to
the grid, f_k(g) = Σ_lm x_k[lm] Y_lm(g), the update is

    y = P_out[ Σ_{ν=1}^{F} λ_ν ⊙ Π_{k ≤ ν} f_k(g)  +  W₂ᵀ silu(W₁ᵀ f_1(g) + b₁) ],

with per-node, per-channel weights λ_ν (``[N, F, C]``) and a per-grid-point MLP over
channels (shared by all points: a Facet-style self-connection). P_out is the
quadrature projection onto l ≤ L_out (:mod:`mlpot.kernels.s2grid`). The product
terms are polynomials of degree ≤ F·L, projected exactly when the grid follows
:func:`~mlpot.kernels.s2grid.grid_resolution`; then they equal Gaunt (CG) products and
are exactly equivariant. The MLP term is not band-limited and aliases (measured in the
tests and documented on :class:`~mlpot.models.EquivariantPotential`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as tnf


@dataclass(frozen=True)
class GridMLPWeights:
    """A one-hidden-layer MLP over channels, applied at each grid point.

    Attributes:
        w1: ``[C, H]``; b1: ``[H]``; w2: ``[H, C]``.
    """

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor


def to_grid(x: torch.Tensor, to_grid_matrix: torch.Tensor) -> torch.Tensor:
    """``[M, ...]`` SH coefficients → ``[G, ...]`` grid values."""
    return (to_grid_matrix.T @ x.reshape(x.shape[0], -1)).view(-1, *x.shape[1:])


def from_grid(f: torch.Tensor, from_grid_matrix: torch.Tensor) -> torch.Tensor:
    """``[G, ...]`` grid values → ``[M_out, ...]`` SH coefficients."""
    return (from_grid_matrix.T @ f.reshape(f.shape[0], -1)).view(-1, *f.shape[1:])


def grid_mlp(f: torch.Tensor, mlp: GridMLPWeights) -> torch.Tensor:
    """``[..., C]`` → ``[..., C]``: W₂ᵀ silu(W₁ᵀ f + b₁) at every point."""
    hidden = tnf.silu(torch.addmm(mlp.b1, f.reshape(-1, f.shape[-1]), mlp.w1))
    return (hidden @ mlp.w2).view(f.shape)


def grid_node_update(
    factors: torch.Tensor,
    coupling: torch.Tensor,
    to_grid_matrix: torch.Tensor,
    from_grid_matrix: torch.Tensor,
    mlp: GridMLPWeights | None,
) -> torch.Tensor:
    """Many-body products and MLP on the grid, projected back.

    Args:
        factors: ``[M, N, F, C]`` factor features x_1 … x_F (SH coefficients).
        coupling: ``[N, F, C]`` weights λ_ν of the ν-fold product.
        to_grid_matrix: ``[M, G]`` SH → grid.
        from_grid_matrix: ``[G, M_out]`` grid → SH (quadrature weights included).
        mlp: the per-point MLP applied to f_1, or None for the polynomial path only.

    Returns:
        ``[M_out, N, C]``.
    """
    grid = to_grid(factors, to_grid_matrix).unbind(2)  # F × [G, N, C]
    lam = coupling.unbind(1)  # F × [N, C]
    # Horner: λ1 f1 + λ2 f1 f2 + λ3 f1 f2 f3 = f1 (λ1 + f2 (λ2 + λ3 f3))
    inner = lam[-1].expand_as(grid[0])
    for nu in range(len(grid) - 1, 0, -1):
        inner = torch.addcmul(lam[nu - 1], grid[nu], inner)
    if mlp is None:
        total = grid[0] * inner
    else:
        total = torch.addcmul(grid_mlp(grid[0], mlp), grid[0], inner)
    return from_grid(total, from_grid_matrix)


@dataclass(frozen=True)
class GridUpdateGrads:
    """Gradients of :func:`grid_node_update` (None where the input has none).

    Attributes:
        factors: ``[M, N, F, C]``; coupling: ``[N, F, C]``;
        mlp: the MLP weights' gradients, or None without an MLP.
    """

    factors: torch.Tensor
    coupling: torch.Tensor
    mlp: GridMLPWeights | None


def grid_node_update_vjp(
    factors: torch.Tensor,
    coupling: torch.Tensor,
    to_grid_matrix: torch.Tensor,
    from_grid_matrix: torch.Tensor,
    mlp: GridMLPWeights | None,
    grad_out: torch.Tensor,
) -> GridUpdateGrads:
    """The analytic vector–Jacobian product of :func:`grid_node_update` (pure torch).

    With ĝ = P_out^T g (``grad_out`` on the grid), prefix products π_k = Π_{j<k} f_j and
    Horner tails η_k = λ_k + f_{k+1} η_{k+1} (η_{F−1} = λ_{F−1}), the product term's
    derivatives are ∂/∂f_k = ĝ π_k η_k and ∂/∂λ_k = Σ_g ĝ π_k f_k; the MLP adds
    (ĝ W₂ᵀ ⊙ silu'(a)) W₁ᵀ to ∂/∂f_1 with a = W₁ᵀ f_1 + b₁. Twin of the Triton backward
    kernel, and (being differentiable torch) the source of its double backward.

    Args:
        factors … mlp: as :func:`grid_node_update`.
        grad_out: ``[M_out, N, C]`` gradient of the output.
    """
    grid = to_grid(factors, to_grid_matrix).unbind(2)  # F × [G, N, C]
    lam = coupling.unbind(1)  # F × [N, C]
    g_tot = to_grid(grad_out, from_grid_matrix.T)  # [G, N, C]
    tails = [lam[-1].expand_as(grid[0])]
    for k in range(len(grid) - 2, -1, -1):
        tails.insert(0, lam[k] + grid[k + 1] * tails[0])
    prefix = torch.ones_like(grid[0])
    grad_grid, grad_lam = [], []
    for k, f in enumerate(grid):
        grad_grid.append(g_tot * prefix * tails[k])
        grad_lam.append((g_tot * prefix * f).sum(0))
        prefix = prefix * f
    mlp_grads = None
    if mlp is not None:
        f1 = grid[0].reshape(-1, grid[0].shape[-1])
        g1 = g_tot.reshape(f1.shape)
        pre = torch.addmm(mlp.b1, f1, mlp.w1)
        sig = torch.sigmoid(pre)
        g_pre = (g1 @ mlp.w2.T) * (sig * (1 + pre * (1 - sig)))
        grad_grid[0] = grad_grid[0] + (g_pre @ mlp.w1.T).view(grid[0].shape)
        mlp_grads = GridMLPWeights(w1=f1.T @ g_pre, b1=g_pre.sum(0), w2=(pre * sig).T @ g1)
    grad_factors = from_grid(torch.stack(grad_grid, 2), to_grid_matrix.T)
    return GridUpdateGrads(factors=grad_factors, coupling=torch.stack(grad_lam, 1),
                           mlp=mlp_grads)
