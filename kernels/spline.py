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


def cardinal_cubic_bspline(t: torch.Tensor) -> torch.Tensor:
    """The cardinal cubic B-spline B(t), supported on [0, 4], elementwise."""
    t2, t3 = t * t, t * t * t
    p0 = t3 / 6
    p1 = (-3 * t3 + 12 * t2 - 12 * t + 4) / 6
    p2 = (3 * t3 - 24 * t2 + 60 * t - 44) / 6
    p3 = (4 - t) ** 3 / 6
    out = torch.where(t < 1, p0, torch.where(t < 2, p1, torch.where(t < 3, p2, p3)))
    return torch.where((t >= 0) & (t < 4), out, torch.zeros_like(t))


def bspline_basis(r: torch.Tensor, num_knots: int, cutoff: float) -> torch.Tensor:
    """``[E, K]`` values B_k(r) of the K uniform cubic B-splines at ``r`` ``[E]`` (Å)."""
    h = knot_spacing(num_knots, cutoff)
    k = torch.arange(num_knots, dtype=r.dtype, device=r.device)
    return cardinal_cubic_bspline(r[:, None] / h - k + 3)


def polynomial_envelope(r: torch.Tensor, cutoff: float, p: int = ENVELOPE_POWER) -> torch.Tensor:
    """``[E]`` envelope u(r / cutoff): 1 at r = 0, C² zero at the cutoff, 0 beyond.

    Evaluated in the factored form u(x) = (1 − x)³ Σ_{k<p} (k+1)(k+2)/2 · x^k (the same
    polynomial), which has no cancellation near x = 1.
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
