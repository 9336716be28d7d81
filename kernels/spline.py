"""Cubic B-spline radial basis with a smooth polynomial envelope (pure-torch reference).

Radial weights of an edge of length r are

    R(r)[p] = u(r / r_c) · Σ_k B_k(r) C[k, p],

where B_k are the K uniform cubic B-splines on knots t_i = (i − 3) h, i = 0 … K + 3,
h = r_c / (K − 3) (so exactly four of them are non-zero at every r in [0, r_c] and they
sum to one), C is the learnable ``[K, P]`` coefficient table and u is the polynomial
envelope of Klicpera et al. (DimeNet, 2020), p = 6:

    u(x) = 1 − (p+1)(p+2)/2 · x^p + p(p+2) · x^(p+1) − p(p+1)/2 · x^(p+2),   x < 1,

u = 0 for x ≥ 1. u, u' and u'' vanish at x = 1, so R is C² through the cutoff and
exactly zero beyond it (edges from a Verlet-skin list contribute nothing). The spline
itself is C² everywhere, so forces are C¹.
"""

from __future__ import annotations

import torch

ENVELOPE_POWER = 6


def knot_spacing(num_knots: int, cutoff: float) -> float:
    """Knot spacing h, Å, for ``num_knots`` = K basis functions over [0, cutoff]."""
    if num_knots < 4:
        raise ValueError(f"a cubic B-spline basis needs num_knots >= 4, got {num_knots}")
    return cutoff / (num_knots - 3)


def cubic_bspline_piece(u: torch.Tensor, piece: torch.Tensor) -> torch.Tensor:
    """The cardinal cubic B-spline B at t = piece + u (``piece`` integer, 0 ≤ u < 1).

    Each piece is written in its local coordinate u, where its coefficients are small
    (no cancellation: float32 keeps ~1e-7 relative accuracy, where the global form
    (3t³ − 24t² + 60t − 44)/6 on [2, 3) loses two digits). Zero outside pieces 0 … 3.
    """
    w = 1 - u
    p0 = u * u * u / 6
    p1 = ((-3 * u + 3) * u * u + 3 * u + 1) / 6
    p2 = (3 * u - 6) * u * u / 6 + 2 / 3
    p3 = w * w * w / 6
    out = torch.where(piece == 0, p0, torch.where(piece == 1, p1,
                                                  torch.where(piece == 2, p2, p3)))
    return torch.where((piece >= 0) & (piece <= 3), out, torch.zeros_like(out))


def bspline_basis(r: torch.Tensor, num_knots: int, cutoff: float) -> torch.Tensor:
    """``[E, K]`` values B_k(r) = B(r/h − k + 3) of the K uniform cubic B-splines at
    ``r`` ``[E]`` (Å): with q = r/h, j = ⌊q⌋ and u = q − j, B_k uses piece j + 3 − k at u
    (the four splines k = j … j + 3 are the non-zero ones)."""
    h = knot_spacing(num_knots, cutoff)
    q = r / h
    j = torch.floor(q)
    k = torch.arange(num_knots, dtype=r.dtype, device=r.device)
    return cubic_bspline_piece((q - j)[:, None], j[:, None] + 3 - k)


def polynomial_envelope(
    r: torch.Tensor, cutoff: float | torch.Tensor, p: int = ENVELOPE_POWER
) -> torch.Tensor:
    """``[E]`` envelope u(r / cutoff): 1 at r = 0, C² zero at the cutoff, 0 beyond
    (``cutoff``: one radius, or one per element of ``r``).

    Evaluated in the factored form u(x) = (1 − x)³ Σ_{k<p} (k+1)(k+2)/2 · x^k (the same
    polynomial), which has no cancellation near x = 1. p = 3 is the smoothstep
    1 − 10x³ + 15x⁴ − 6x⁵ (TransIP's attention and density cut-offs, the ZBL switch).
    """
    x = (r / cutoff).clamp(max=1.0)
    poly = torch.full_like(x, p * (p + 1) / 2)
    for k in range(p - 2, -1, -1):
        poly = poly * x + (k + 1) * (k + 2) / 2
    u = (1 - x) ** 3 * poly
    return torch.where(r < cutoff, u, torch.zeros_like(u))


def radial_basis(r: torch.Tensor, num_knots: int, cutoff: float) -> torch.Tensor:
    """``[E, K]`` enveloped basis u(r/r_c) B_k(r); R = radial_basis @ C."""
    return bspline_basis(r, num_knots, cutoff) * polynomial_envelope(r, cutoff)[:, None]


def spline_radial(r: torch.Tensor, coefficients: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Radial weights R(r) = u(r/r_c) · B(r) @ C.

    Args:
        r: ``[E]`` edge lengths, Å (any value; r >= cutoff gives exactly 0).
        coefficients: ``[K, P]`` learnable spline coefficient table C.
        cutoff: r_c, Å.

    Returns:
        ``[E, P]`` radial weights.
    """
    return radial_basis(r, coefficients.shape[0], cutoff) @ coefficients
