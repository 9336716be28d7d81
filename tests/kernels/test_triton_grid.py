"""Triton fused grid node update (CPU interpreter) vs the torch reference: values,
first and second derivatives, odd sizes, and that nothing of the grid is saved.

Without a GPU the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``, set
by ``tests/conftest.py`` before anything imports Triton); with one, on CUDA tensors.
"""

import pytest
import torch

from mlpot.kernels.grid_product import (
    GridMLPWeights,
    grid_node_update,
    grid_node_update_vjp,
)
from mlpot.kernels.s2grid import num_sh, s2_grid

pytest.importorskip("triton")
from mlpot.kernels import triton_grid

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _inputs(lmax, lmax_out, res, nodes, factors, channels, hidden, dtype, mlp=True, device=DEVICE):
    grid = s2_grid(lmax, lmax_out, *res)
    gen = torch.Generator().manual_seed(7)

    def randn(*shape):
        return (
            torch.randn(*shape, generator=gen, dtype=torch.float64)
            .to(device, dtype)
            .requires_grad_()
        )

    x = randn(num_sh(lmax), nodes, factors, channels)
    lam = randn(nodes, factors, channels)
    weights = (
        GridMLPWeights(randn(channels, hidden), randn(hidden), randn(hidden, channels))
        if mlp
        else None
    )
    return x, lam, grid.to_grid.to(device, dtype), grid.from_grid.to(device, dtype), weights


def _params(x, lam, mlp):
    return [x, lam] + ([] if mlp is None else [mlp.w1, mlp.b1, mlp.w2])


# (lmax, lmax_out, grid resolution, nodes, factors, channels, hidden, mlp):
# 45 and 6 grid points (not multiples of the 32-point chunk), 17 nodes (with at most 4
# backward programs: runs of 5, 5, 5 and 2 nodes), channels/hidden not powers of two
CASES = [
    (2, 1, (5, 9), 17, 3, 5, 7, True),
    (1, 0, (2, 3), 3, 2, 3, 2, True),
    (2, 2, (5, 9), 4, 1, 6, 4, False),
    (0, 0, (1, 1), 2, 4, 2, 3, True),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_values_and_gradients_match_reference(case, dtype, tol, monkeypatch):
    monkeypatch.setattr(triton_grid, "MAX_BACKWARD_PROGRAMS", 4)
    *shape, mlp = case
    x, lam, t, p, weights = _inputs(*shape, dtype=dtype, mlp=mlp)
    ref = grid_node_update(x, lam, t, p, weights)
    ours = triton_grid.grid_node_update(x, lam, t, p, weights)
    scale = float(ref.detach().abs().max())
    torch.testing.assert_close(ours, ref, atol=tol * scale, rtol=0)
    gy = torch.randn_like(ref)
    params = _params(x, lam, weights)
    for a, b in zip(
        torch.autograd.grad(ours, params, gy), torch.autograd.grad(ref, params, gy), strict=True
    ):
        torch.testing.assert_close(a, b, atol=tol * float(b.abs().max()), rtol=0)


def test_analytic_vjp_matches_autograd():
    x, lam, t, p, weights = _inputs(2, 1, (5, 9), 3, 3, 4, 5, torch.float64)
    y = grid_node_update(x, lam, t, p, weights)
    gy = torch.randn_like(y)
    vjp = grid_node_update_vjp(x, lam, t, p, weights, gy)
    ours = [vjp.factors, vjp.coupling, vjp.mlp.w1, vjp.mlp.b1, vjp.mlp.w2]
    for a, b in zip(ours, torch.autograd.grad(y, _params(x, lam, weights), gy), strict=True):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)


@pytest.mark.slow
def test_gradcheck_and_gradgradcheck_float64():
    x, lam, t, p, weights = _inputs(1, 1, (2, 3), 1, 2, 2, 2, torch.float64)

    def fn(x, lam, w1, b1, w2):
        return triton_grid.grid_node_update(x, lam, t, p, GridMLPWeights(w1, b1, w2))

    args = (x, lam, weights.w1, weights.b1, weights.w2)
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


def _force_like_loss(update, x0, lam0, weights, pos, t, p):
    """Two chained updates (as two layers), a "force" ∂E/∂pos with create_graph, and the
    parameter gradient of |force|² — the double backward of force training, where the
    second layer's gradient depends on the first layer's factors."""
    x = x0 * torch.sin(pos)
    y = update(x, lam0, t, p, weights)
    m_out, n, c = y.shape
    x2 = (
        y[:, :, None, :]
        .expand(m_out, n, x0.shape[2], c)
        .repeat(x0.shape[0] // m_out + 1, 1, 1, 1)[: x0.shape[0]]
    )
    energy = (update(x2, lam0, t, p, weights) ** 2).sum()
    force = torch.autograd.grad(energy, pos, create_graph=True)[0]
    return torch.autograd.grad((force**2).sum(), _params(x0, lam0, weights))


def test_double_backward_through_chained_updates_matches_reference():
    x0, lam0, t, p, weights = _inputs(2, 2, (5, 9), 3, 3, 4, 5, torch.float64)
    pos = torch.randn(x0.shape, dtype=torch.float64, device=DEVICE, requires_grad=True)
    ref = _force_like_loss(grid_node_update, x0, lam0, weights, pos, t, p)
    ours = _force_like_loss(triton_grid.grid_node_update, x0, lam0, weights, pos, t, p)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-11 * float(b.abs().max()), rtol=0)


def test_forward_saves_no_grid_values():
    """Memory: the autograd graph of the fused update holds its inputs only (the
    reference saves [G, N, C] grid tensors)."""
    x, lam, t, p, weights = _inputs(2, 1, (5, 9), 6, 3, 4, 5, torch.float64)
    saved = {}

    def record(kind):
        def pack(tensor):
            saved.setdefault(kind, []).append(tensor.numel())
            return tensor

        return pack

    for kind, fn in (("ours", triton_grid.grid_node_update), ("ref", grid_node_update)):
        with torch.autograd.graph.saved_tensors_hooks(record(kind), lambda tensor: tensor):
            fn(x, lam, t, p, weights)
    inputs = sum(a.numel() for a in (x, lam, t, p, *_params(x, lam, weights)[2:]))
    assert sum(saved["ours"]) == inputs
    grid_values = t.shape[1] * x.shape[1] * x.shape[3]  # one [G, N, C] tensor
    assert sum(saved["ref"]) >= inputs + x.shape[2] * grid_values


def test_empty_and_constant_grid():
    x, lam, t, p, weights = _inputs(1, 1, (2, 3), 0, 2, 3, 2, torch.float64)
    out = triton_grid.grid_node_update(x, lam, t, p, weights)
    assert out.shape == (4, 0, 3)
    grads = torch.autograd.grad(out.sum(), _params(x, lam, weights), allow_unused=True)
    assert all(float(g.abs().sum()) == 0.0 for g in grads)
    with pytest.raises(RuntimeError, match="grid matrices"):
        triton_grid.grid_node_update(x, lam, t.requires_grad_(), p, weights)


def test_kernels_imported_without_interpreter_refuse_cpu_tensors(monkeypatch):
    """Triton decides at import whether to interpret; a module imported without
    TRITON_INTERPRET=1 gives a clear error on CPU tensors (not a driver failure)."""
    x, lam, t, p, weights = _inputs(1, 1, (2, 3), 2, 2, 3, 2, torch.float64, device="cpu")
    monkeypatch.setattr(triton_grid, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match="imported without TRITON_INTERPRET=1"):
        triton_grid.grid_node_update(x, lam, t, p, weights)
