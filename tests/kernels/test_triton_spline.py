"""Triton spline radial basis (CPU interpreter) vs the torch reference: values and
first to third derivatives with respect to r and the table, odd sizes, edge cases.

Without a GPU the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``, set
by ``tests/conftest.py`` before anything imports Triton); with one, on CUDA tensors.
"""

import pytest
import torch

from mlpot.kernels import spline

pytest.importorskip("triton")
from mlpot.kernels import triton_spline

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CUTOFF = 4.5
KNOTS = 7  # h = 1.125, exact in binary: knots are representable


def _edge_lengths(dtype, count=67):
    """``count`` lengths (67: not a multiple of the 64-edge block) with the odd cases:
    0, every knot, the cutoff, just below it and beyond it."""
    h = spline.knot_spacing(KNOTS, CUTOFF)
    special = [0.0, *(h * i for i in range(1, KNOTS - 3)), CUTOFF, CUTOFF - 1e-4, 5.0]
    gen = torch.Generator().manual_seed(3)
    rest = torch.rand(count - len(special), generator=gen, dtype=torch.float64) * 5.0
    return torch.cat([torch.tensor(special, dtype=torch.float64), rest]).to(DEVICE, dtype)


def _reference_derivative(r, g, order):
    """Σ_k g[e, k] dⁿ/drⁿ b_k(r_e) by autograd through the torch reference."""
    r = r.clone().requires_grad_()
    d = (spline.radial_basis(r, KNOTS, CUTOFF) * g).sum(1)
    for _ in range(order):
        d = torch.autograd.grad(d.sum(), r, create_graph=True)[0]
    return d.detach()


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-13), (torch.float32, 2e-6)])
def test_values_match_reference(dtype, tol):
    r = _edge_lengths(dtype)
    ours = triton_spline.radial_basis(r, KNOTS, CUTOFF)
    ref = spline.radial_basis(r, KNOTS, CUTOFF)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, ref, atol=tol, rtol=0)
    assert float(ours[r >= CUTOFF].abs().max()) == 0.0
    coefficients = torch.randn(KNOTS, 5, dtype=dtype, device=DEVICE)
    torch.testing.assert_close(
        triton_spline.spline_radial(r, coefficients, CUTOFF),
        spline.spline_radial(r, coefficients, CUTOFF),
        atol=10 * tol,
        rtol=0,
    )


@pytest.mark.parametrize("order", [1, 2, 3])
def test_derivatives_match_reference(order):
    """Orders 1–3 (backward, double and triple backward) at knots, 0 and the cutoff."""
    r = _edge_lengths(torch.float64)
    g = torch.randn(r.shape[0], KNOTS, dtype=torch.float64, device=DEVICE)
    ours = triton_spline.contract_derivative(r, g, CUTOFF, order)
    ref = _reference_derivative(r, g, order)
    scale = float(ref.abs().max())
    torch.testing.assert_close(ours, ref, atol=1e-13 * scale, rtol=0)
    basis = triton_spline.basis_derivative(r, KNOTS, CUTOFF, order)
    torch.testing.assert_close((basis * g).sum(1), ref, atol=1e-13 * scale, rtol=0)


def test_gradcheck_and_gradgradcheck_float64():
    r = (_edge_lengths(torch.float64, 9)[[1, 2, 5, 6, 7, 8]] + 1e-3).requires_grad_()
    c = torch.randn(KNOTS, 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: triton_spline.radial_basis(x, KNOTS, CUTOFF), (r,))
    assert torch.autograd.gradgradcheck(
        lambda x: triton_spline.radial_basis(x, KNOTS, CUTOFF), (r,)
    )
    assert torch.autograd.gradgradcheck(
        lambda x, y: triton_spline.spline_radial(x, y, CUTOFF), (r, c)
    )


def test_float32_force_training_gradients_match_reference():
    """Second derivatives as force training uses them: ∂/∂(C, r) of a loss on ∂R/∂r."""
    r32 = _edge_lengths(torch.float32)
    c32 = torch.randn(KNOTS, 4, device=DEVICE)
    w = torch.randn(r32.shape[0], 4, device=DEVICE)
    results = []
    for module in (triton_spline, spline):
        r, c = r32.clone().requires_grad_(), c32.clone().requires_grad_()
        dr = torch.autograd.grad(
            (module.spline_radial(r, c, CUTOFF) * w).sum(), r, create_graph=True
        )[0]
        results.append(torch.autograd.grad((dr**2).sum(), (r, c)))
    for ours, ref in zip(*results, strict=True):
        torch.testing.assert_close(ours, ref, atol=2e-5 * float(ref.abs().max()), rtol=0)


def test_empty_input_and_unsupported_order():
    r = torch.zeros(0, dtype=torch.float64, device=DEVICE, requires_grad=True)
    c = torch.randn(KNOTS, 2, dtype=torch.float64, device=DEVICE, requires_grad=True)
    out = triton_spline.spline_radial(r, c, CUTOFF)
    assert out.shape == (0, 2)
    gr, gc = torch.autograd.grad(out.sum(), (r, c))
    assert gr.shape == (0,)
    assert float(gc.abs().max()) == 0.0
    assert triton_spline.radial_basis(r, KNOTS, CUTOFF).shape == (0, KNOTS)
    with pytest.raises(NotImplementedError, match="order 4"):
        triton_spline.contract_derivative(
            r.detach(), torch.zeros(0, KNOTS, device=DEVICE), CUTOFF, 4
        )
    with pytest.raises(ValueError, match="num_knots"):
        triton_spline.radial_basis(r, 3, CUTOFF)


def test_kernels_imported_without_interpreter_refuse_cpu_tensors(monkeypatch):
    monkeypatch.setattr(triton_spline, "INTERPRETED", False)
    r = _edge_lengths(torch.float64, 9).cpu()
    for call in (
        lambda: triton_spline.radial_basis(r, KNOTS, CUTOFF),
        lambda: triton_spline.spline_radial(r, torch.ones(KNOTS, 2), CUTOFF),
    ):
        with pytest.raises(RuntimeError, match="imported without TRITON_INTERPRET=1"):
            call()
