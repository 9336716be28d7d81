"""Exact Gaunt (Clebsch–Gordan) products of real SH coefficients (pure-torch reference).

The real Gaunt tensor G[i, j, k] = (1/4π) ∫ Y_i Y_j Y_k dΩ (component-normalised e3nn
SH) couples (l₁, l₂) → l₃ only when l₁ + l₂ + l₃ is even and |l₁ − l₂| ≤ l₃ ≤ l₁ + l₂.
Each such block is γ · w3j(l₁, l₂, l₃), with e3nn's Wigner 3j symbol (``o3.wigner_3j``,
unit Frobenius norm) and γ = c (2l₃ + 1), where c is fixed by the pointwise identity
Σ_ij w3j[i, j, k] Y_i(x) Y_j(x) = c Y_k(x) (evaluated at a few random directions). No
quadrature is involved, so this is an independent twin of the grid products:
the product of f = Σ x_i Y_i and h = Σ y_j Y_j has coefficients Σ_ij x_i y_j G[i,j,k].
"""

from __future__ import annotations

import torch
from e3nn import o3

from mlpot.kernels.s2grid import num_sh, spherical_harmonics


def _gaunt_scale(l1: int, l2: int, l3: int, w3j: torch.Tensor) -> float:
    gen = torch.Generator().manual_seed(1234 + 100 * l1 + 10 * l2 + l3)
    x = torch.randn(16, 3, dtype=torch.float64, generator=gen)
    y1 = spherical_harmonics(l1, x)[:, l1 * l1:]
    y2 = spherical_harmonics(l2, x)[:, l2 * l2:]
    y3 = spherical_harmonics(l3, x)[:, l3 * l3:]
    v = torch.einsum("ijk,ni,nj->nk", w3j, y1, y2)
    c = float((v * y3).sum() / (y3 * y3).sum())
    return c * (2 * l3 + 1)


def gaunt_tensor(l1max: int, l2max: int, l3max: int) -> torch.Tensor:
    """``[(l1max+1)², (l2max+1)², (l3max+1)²]`` real Gaunt tensor, float64."""
    out = torch.zeros(num_sh(l1max), num_sh(l2max), num_sh(l3max), dtype=torch.float64)
    for l1 in range(l1max + 1):
        for l2 in range(l2max + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, l3max) + 1):
                if (l1 + l2 + l3) % 2:
                    continue
                w3j = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
                out[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2] = (
                    _gaunt_scale(l1, l2, l3, w3j) * w3j)
    return out


def cg_product(x: torch.Tensor, y: torch.Tensor, gaunt: torch.Tensor) -> torch.Tensor:
    """Channel-wise product of two SH-coefficient features.

    Args:
        x: ``[N, M1, C]``; y: ``[N, M2, C]``; gaunt: ``[M1, M2, M3]``.

    Returns:
        ``[N, M3, C]`` with out[n, k, c] = Σ_ij G[i, j, k] x[n, i, c] y[n, j, c].
    """
    m1, m2, m3 = gaunt.shape
    outer = (x[:, :, None, :] * y[:, None, :, :]).reshape(x.shape[0], m1 * m2, x.shape[-1])
    return torch.matmul(gaunt.reshape(m1 * m2, m3).T, outer)


def product_chain_degrees(lmax: int, correlation: int, lmax_out: int) -> list[tuple[int, int]]:
    """(l_in, l_out) of the running product before/after each of the ``correlation − 1``
    CG steps, keeping only what can still reach l ≤ ``lmax_out``."""
    degrees, current = [], lmax
    for nu in range(1, correlation):
        keep = min((nu + 1) * lmax, lmax_out + (correlation - 1 - nu) * lmax)
        degrees.append((current, keep))
        current = keep
    return degrees


def cg_node_update(
    factors: torch.Tensor,
    coupling: torch.Tensor,
    gaunts: list[torch.Tensor],
    lmax_out: int,
) -> torch.Tensor:
    """Exact twin of the polynomial path of
    :func:`~mlpot.kernels.grid_product.grid_node_update`: Σ_ν λ_ν Π_{k≤ν} x_k.

    Args:
        factors: ``[M, N, F, C]`` (SH-major); coupling: ``[N, F, C]``.
        gaunts: F − 1 Gaunt tensors, shapes from :func:`product_chain_degrees`.
        lmax_out: keep l ≤ lmax_out of the result.

    Returns:
        ``[(lmax_out+1)², N, C]``.
    """
    m_out = num_sh(lmax_out)
    nodes = factors.permute(2, 1, 0, 3)  # [F, N, M, C]
    product = nodes[0]
    total = coupling[:, 0, None, :] * product[:, :m_out]
    for nu, gaunt in enumerate(gaunts, start=1):
        product = cg_product(product, nodes[nu], gaunt)
        total = total + coupling[:, nu, None, :] * product[:, :m_out]
    return total.transpose(0, 1)
