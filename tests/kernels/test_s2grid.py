"""S² grid projections and grid products vs independent twins (Lebedev quadrature,
Gaunt tensors from Wigner 3j, explicit per-point loops)."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import lebedev_rule

from mlpot.kernels.gaunt import cg_node_update, gaunt_tensor, product_chain_degrees
from mlpot.kernels.grid_product import GridMLPWeights, grid_node_update
from mlpot.kernels.s2grid import (
    grid_resolution,
    num_sh,
    product_grid,
    s2_grid,
    spherical_harmonics,
)


def _lebedev(order: int = 25):
    x, w = lebedev_rule(order)
    return torch.tensor(x.T), torch.tensor(w)


def _lebedev_project(values: torch.Tensor, lmax: int, order: int = 25) -> torch.Tensor:
    """(1/4π) Σ_q w_q f(x_q) Y_lm(x_q): values ``[Q, ...]`` at the Lebedev points."""
    x, w = _lebedev(order)
    y = spherical_harmonics(lmax, x)
    return torch.einsum("q,qm,q...->m...", w, y, values) / (4 * math.pi)


def test_resolution_rule():
    assert grid_resolution(6, 2) == (5, 9)
    assert grid_resolution(9, 3) == (7, 13)
    assert grid_resolution(0, 0) == (1, 1)


@pytest.mark.parametrize("lmax", [0, 1, 3, 4])
def test_roundtrip_is_identity(lmax):
    grid = s2_grid(lmax, lmax, *grid_resolution(lmax, lmax))
    np.testing.assert_allclose((grid.to_grid @ grid.from_grid).numpy(), np.eye(num_sh(lmax)),
                               atol=1e-13)
    assert abs(float(grid.weights.sum()) - 4 * math.pi) < 1e-12


def _random_factors(num: int, lmax: int, n: int = 3, c: int = 2) -> torch.Tensor:
    """``[M, N, F, C]`` SH-major factors."""
    return torch.randn(num_sh(lmax), n, num, c, dtype=torch.float64)


@pytest.mark.parametrize(("lmax", "correlation"), [(1, 3), (2, 2), (2, 3), (3, 3)])
def test_grid_products_match_lebedev(lmax, correlation):
    factors = _random_factors(correlation, lmax)
    coupling = torch.randn(3, correlation, 2, dtype=torch.float64)
    grid = product_grid(lmax, correlation, lmax)
    ours = grid_node_update(factors, coupling, grid.to_grid, grid.from_grid, None)
    x, _ = _lebedev()
    y = spherical_harmonics(lmax, x)
    values = torch.einsum("qm,mnfc->fqnc", y, factors)
    total = torch.zeros_like(values[0])
    prod = torch.ones_like(values[0])
    for nu in range(correlation):
        prod = prod * values[nu]
        total = total + coupling[:, nu] * prod
    ref = _lebedev_project(total, lmax)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-12)


def test_grid_one_below_the_rule_aliases():
    """The rule is tight: one fewer β ring breaks exactness of the triple product."""
    lmax, corr = 2, 3
    factors = _random_factors(corr, lmax)
    coupling = torch.ones(3, corr, 2, dtype=torch.float64)
    rb, ra = grid_resolution(corr * lmax, lmax)
    exact = s2_grid(lmax, lmax, rb, ra)
    coarse = s2_grid(lmax, lmax, rb - 1, ra)
    a = grid_node_update(factors, coupling, exact.to_grid, exact.from_grid, None)
    b = grid_node_update(factors, coupling, coarse.to_grid, coarse.from_grid, None)
    assert float((a - b).abs().max()) > 1e-6


@pytest.mark.parametrize(("l1", "l2", "l3"), [(1, 1, 2), (2, 3, 5), (3, 3, 3), (6, 3, 3)])
def test_gaunt_tensor_matches_lebedev(l1, l2, l3):
    x, _ = _lebedev(31)
    y1, y2 = spherical_harmonics(l1, x), spherical_harmonics(l2, x)
    ref = _lebedev_project(y1[:, :, None] * y2[:, None, :], l3, order=31).permute(1, 2, 0)
    np.testing.assert_allclose(gaunt_tensor(l1, l2, l3).numpy(), ref.numpy(), atol=1e-12)


@pytest.mark.parametrize(("lmax", "correlation", "lmax_out"), [(2, 3, 2), (3, 3, 0), (2, 4, 1)])
def test_cg_chain_equals_grid(lmax, correlation, lmax_out):
    factors = _random_factors(correlation, lmax)
    coupling = torch.randn(3, correlation, 2, dtype=torch.float64)
    grid = product_grid(lmax, correlation, lmax_out)
    gaunts = [gaunt_tensor(a, lmax, b)
              for a, b in product_chain_degrees(lmax, correlation, lmax_out)]
    a = grid_node_update(factors, coupling, grid.to_grid, grid.from_grid, None)
    b = cg_node_update(factors, coupling, gaunts, lmax_out)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


def _mlp(c: int, h: int) -> GridMLPWeights:
    return GridMLPWeights(torch.randn(c, h, dtype=torch.float64),
                          torch.randn(h, dtype=torch.float64),
                          torch.randn(h, c, dtype=torch.float64))


def test_mlp_path_matches_pointwise_loop():
    lmax, c = 2, 3
    factors = _random_factors(1, lmax, n=2, c=c)
    mlp = _mlp(c, 4)
    grid = s2_grid(lmax, lmax, 4, 7)
    zero = torch.zeros(2, 1, c, dtype=torch.float64)
    ours = grid_node_update(factors, zero, grid.to_grid, grid.from_grid, mlp)
    ref = torch.zeros(num_sh(lmax), 2, c, dtype=torch.float64)
    y = spherical_harmonics(lmax, grid.points)
    for n in range(2):
        for g in range(grid.size):
            f = factors[:, n, 0].T @ y[g]  # [C] function value at point g
            out = torch.tensor([sum(mlp.w2[k, d] * torch.nn.functional.silu(
                (f * mlp.w1[:, k]).sum() + mlp.b1[k]) for k in range(4)) for d in range(c)])
            ref[:, n] += grid.weights[g] * y[g][:, None] * out[None, :] / (4 * math.pi)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-12)


def test_gradcheck_grid_and_cg():
    lmax, corr = 1, 3
    factors = _random_factors(corr, lmax, n=2, c=2).requires_grad_()
    coupling = torch.randn(2, corr, 2, dtype=torch.float64, requires_grad=True)
    grid = product_grid(lmax, corr, lmax)
    mlp = _mlp(2, 3)
    w1 = mlp.w1.clone().requires_grad_()

    def fn_grid(x, lam, w):
        return grid_node_update(x, lam, grid.to_grid, grid.from_grid,
                                GridMLPWeights(w, mlp.b1, mlp.w2))

    gaunts = [gaunt_tensor(a, lmax, b) for a, b in product_chain_degrees(lmax, corr, lmax)]

    def fn_cg(x, lam):
        return cg_node_update(x, lam, gaunts, lmax)

    assert torch.autograd.gradcheck(fn_grid, (factors, coupling, w1))
    assert torch.autograd.gradgradcheck(fn_grid, (factors, coupling, w1))
    assert torch.autograd.gradcheck(fn_cg, (factors, coupling))
