"""Spherical-harmonic ↔ S² grid projections (pure-torch reference).

A band-limited function on the sphere is stored by its real spherical-harmonic
coefficients x[lm], l ≤ L, in e3nn's conventions (``o3.spherical_harmonics`` with
``normalization="component"``, so (1/4π)∫ Y_lm Y_l'm' dΩ = δ), f(g) = Σ_lm x[lm] Y_lm(g).

The grid is Gauss–Legendre in cos β (``res_beta`` nodes) × uniform in α (``res_alpha``
nodes), points from ``o3.angles_to_xyz`` (polar axis y, as in e3nn). The quadrature

    ∫ f dΩ ≈ Σ_g w_g f(g),   w_g = w_GL(β) · 2π / res_alpha,

is exact for every polynomial on the sphere of degree ≤ D when
``res_beta ≥ (D + 1) / 2`` and ``res_alpha ≥ D + 1`` (Gauss–Legendre with n nodes is
exact to degree 2n − 1 in cos β; the uniform rule with n nodes is exact for e^{imα},
|m| < n). Projecting a product of functions of total degree D_p onto degree ≤ L_out
integrates a polynomial of degree D_p + L_out, hence the rule in
:func:`grid_resolution`. Then grid → SH inverts SH → grid exactly (no aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from e3nn import o3


def num_sh(lmax: int) -> int:
    """Number of real spherical harmonics with l ≤ lmax, (lmax + 1)²."""
    return (lmax + 1) ** 2


def grid_resolution(product_degree: int, lmax_out: int) -> tuple[int, int]:
    """(res_beta, res_alpha) so products of total degree ``product_degree`` project
    exactly onto l ≤ ``lmax_out``: D = product_degree + lmax_out,
    res_beta = ⌈(D + 1)/2⌉, res_alpha = D + 1."""
    d = product_degree + lmax_out
    return (d + 2) // 2, d + 1


def spherical_harmonics(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    """``[..., (lmax+1)²]`` real SH (e3nn, component normalisation) of the directions
    of ``vectors`` ``[..., 3]`` (normalised inside)."""
    return o3.spherical_harmonics(list(range(lmax + 1)), vectors, normalize=True,
                                  normalization="component")


@dataclass(frozen=True)
class S2Grid:
    """A quadrature grid on S² with its projection matrices (float64, CPU).

    Attributes:
        points: ``[G, 3]`` unit vectors.
        weights: ``[G]`` quadrature weights, Σ w = 4π.
        to_grid: ``[M_in, G]`` Y_lm(g): x ``[..., M_in]`` @ to_grid = f(g).
        from_grid: ``[G, M_out]`` w_g Y_lm(g) / 4π: f(g) @ from_grid = coefficients.
    """

    points: torch.Tensor
    weights: torch.Tensor
    to_grid: torch.Tensor
    from_grid: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.weights.shape[0])


def s2_grid(lmax_in: int, lmax_out: int, res_beta: int, res_alpha: int) -> S2Grid:
    """Gauss–Legendre × uniform grid with SH → grid (l ≤ lmax_in) and grid → SH
    (l ≤ lmax_out) matrices, built in float64."""
    if res_beta < 1 or res_alpha < 1:
        raise ValueError(f"grid resolution must be positive, got {res_beta}x{res_alpha}")
    cos_beta, w_beta = np.polynomial.legendre.leggauss(res_beta)
    beta = torch.as_tensor(np.arccos(cos_beta), dtype=torch.float64)
    alpha = torch.arange(res_alpha, dtype=torch.float64) * (2 * math.pi / res_alpha)
    bb, aa = torch.meshgrid(beta, alpha, indexing="ij")
    points = o3.angles_to_xyz(aa.reshape(-1), bb.reshape(-1))
    weights = (torch.as_tensor(w_beta, dtype=torch.float64)[:, None]
               * (2 * math.pi / res_alpha)).expand(res_beta, res_alpha).reshape(-1)
    y = spherical_harmonics(max(lmax_in, lmax_out), points)  # [G, M]
    to_grid = y[:, :num_sh(lmax_in)].T.contiguous()
    from_grid = (weights[:, None] * y[:, :num_sh(lmax_out)] / (4 * math.pi)).contiguous()
    return S2Grid(points=points, weights=weights.contiguous(), to_grid=to_grid,
                  from_grid=from_grid)


def product_grid(lmax: int, correlation: int, lmax_out: int) -> S2Grid:
    """The smallest exact grid for products of ``correlation`` degree-``lmax`` functions
    projected onto l ≤ ``lmax_out`` (rule of :func:`grid_resolution`)."""
    res_beta, res_alpha = grid_resolution(correlation * lmax, lmax_out)
    return s2_grid(lmax, lmax_out, res_beta, res_alpha)
