"""Spline radial basis vs scipy's BSpline, envelope smoothness, gradients."""

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from mlpot.kernels.spline import (
    bspline_basis,
    knot_spacing,
    polynomial_envelope,
    spline_radial,
)

CUTOFF = 5.0


def _scipy_spline(coefficients: np.ndarray, cutoff: float) -> BSpline:
    k = coefficients.shape[0]
    h = knot_spacing(k, cutoff)
    knots = (np.arange(k + 4) - 3) * h
    return BSpline(knots, coefficients, 3, extrapolate=False)


@pytest.mark.parametrize("num_knots", [4, 8, 13])
def test_basis_matches_scipy_values_and_derivatives(num_knots):
    rng = np.random.default_rng(1)
    coeffs = rng.normal(size=(num_knots, 3))
    ref = _scipy_spline(coeffs, CUTOFF)
    r = torch.tensor(np.concatenate([rng.uniform(0, CUTOFF, 200), [0.0, CUTOFF - 1e-12]]),
                     requires_grad=True)
    c = torch.tensor(coeffs)
    ours = bspline_basis(r, num_knots, CUTOFF) @ c
    np.testing.assert_allclose(ours.detach().numpy(), ref(r.detach().numpy()), atol=1e-12)
    for order in (1, 2):
        grads = []
        for p in range(3):
            g = ours[:, p]
            for _ in range(order):
                g = torch.autograd.grad(g.sum(), r, create_graph=True)[0]
            grads.append(g.detach().numpy())
        np.testing.assert_allclose(np.stack(grads, 1), ref.derivative(order)(r.detach().numpy()),
                                   atol=1e-9)


def test_partition_of_unity_and_support():
    r = torch.linspace(0, CUTOFF, 1001, dtype=torch.float64)
    basis = bspline_basis(r, 8, CUTOFF)
    np.testing.assert_allclose(basis.sum(1).numpy(), 1.0, atol=1e-13)
    assert int(((basis > 0).sum(1) > 4).sum()) == 0


def test_envelope_is_c2_and_zero_beyond_cutoff():
    r = torch.tensor([CUTOFF - 1e-6, CUTOFF, CUTOFF + 0.3, 7.0], dtype=torch.float64,
                     requires_grad=True)
    u = polynomial_envelope(r, CUTOFF)
    d1 = torch.autograd.grad(u.sum(), r, create_graph=True)[0]
    d2 = torch.autograd.grad(d1.sum(), r)[0]
    u = u.detach()
    x = np.array([0.1, 0.5, 0.93])
    expected = 1 - 28 * x**6 + 48 * x**7 - 21 * x**8
    got = polynomial_envelope(torch.tensor(x * CUTOFF), CUTOFF).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-14)
    assert float(u[0]) < 1e-16 and float(u[1:].abs().max()) == 0.0
    assert float(d1.detach().abs().max()) < 1e-10 and float(d2.abs().max()) < 1e-4
    r0 = torch.tensor([0.0], dtype=torch.float64)
    assert float(polynomial_envelope(r0, CUTOFF)[0]) == 1.0


def test_p3_envelope_is_the_smoothstep_with_one_cutoff_per_pair():
    """p = 3 (TransIP, the ZBL switch) with a cutoff per element: 1 − 10x³ + 15x⁴ − 6x⁵
    of each element's own x, and exactly 0 at and beyond its cutoff."""
    r = torch.tensor([0.0, 0.3, 0.9, 1.2, 2.0, 2.5], dtype=torch.float64)
    cutoff = torch.tensor([1.0, 1.0, 1.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    x = (r / cutoff).clamp(max=1.0).numpy()
    expected = 1 - 10 * x**3 + 15 * x**4 - 6 * x**5
    got = polynomial_envelope(r, cutoff, p=3).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-15)
    assert got[3] == 0.0 and got[4] == 0.0 and got[0] == 1.0


def test_radial_exactly_zero_beyond_cutoff():
    coeffs = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([CUTOFF, CUTOFF + 1e-9, 6.5, 9.0], dtype=torch.float64, requires_grad=True)
    out = spline_radial(r, coeffs, CUTOFF)
    assert bool((out == 0).all())
    gr, gc = torch.autograd.grad(out.sum(), (r, coeffs))
    assert bool((gr == 0).all()) and bool((gc == 0).all())


def test_gradcheck_and_gradgradcheck():
    coeffs = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([0.3, 1.1, 2.5, 3.33, 4.7, 4.99], dtype=torch.float64, requires_grad=True)

    def fn(r, c):
        return spline_radial(r, c, CUTOFF)

    assert torch.autograd.gradcheck(fn, (r, coeffs))
    assert torch.autograd.gradgradcheck(fn, (r, coeffs))


def test_too_few_knots_is_an_error():
    with pytest.raises(ValueError, match="num_knots >= 4"):
        bspline_basis(torch.zeros(3), 3, CUTOFF)
