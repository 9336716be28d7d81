"""Triton twin of :mod:`mlpot.kernels.spline`: the enveloped cubic B-spline radial basis
and its derivatives with respect to r, fused (knot lookup, B-spline pieces, envelope).

With x = r / r_c, t_k = r / h − k + 3 (h the knot spacing) and b_k(r) = u(x) B(t_k),
B evaluated piece by piece in local coordinates (``cubic_bspline_piece``, the same
arithmetic as the reference), the n-th derivative follows from Leibniz' rule,

    b_k⁽ⁿ⁾(r) = Σ_{j ≤ n} C(n, j) · u⁽ʲ⁾(x) / r_cʲ · B⁽ⁿ⁻ʲ⁾(t_k) / hⁿ⁻ʲ,

with the closed forms of the p = 6 envelope (DimeNet) in factored form (no
cancellation near x = 1)

    u   = (1 − x)³ (1 + 3x + 6x² + 10x³ + 15x⁴ + 21x⁵),   u'  = −168 x⁵ (1 − x)²,
    u'' = −168 x⁴ (1 − x)(5 − 7x),                          u''' = −336 x³ (10 − 30x + 21x²),

and u⁽ʲ⁾ = 0 for r ≥ r_c (as the reference, whose envelope is exactly 0 there).

Two kernels do all the work: ``_basis_kernel`` writes b⁽ⁿ⁾ ``[E, K]`` and
``_contract_kernel`` writes Σ_k g[e, k] b_k⁽ⁿ⁾(r_e) ``[E]`` without storing b⁽ⁿ⁾. Every
derivative is one of them: the backward of "basis of order n" is "contract of order
n + 1"; the backward of "contract of order n" is (contract of order n + 1, basis of
order n). So first, second and third derivatives (force training, its checks) run as
kernels, never as autograd over the reference. Orders above 3 raise.

:func:`spline_radial` fuses the table lookup R[e, p] = Σ_{s<4} b_{j+s}(r_e) C[j+s, p]
(j = ⌊r/h⌋, the four non-zero splines) into the forward kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mlpot.kernels.dispatch import check_triton_launch
from mlpot.kernels.spline import ENVELOPE_POWER, knot_spacing

MAX_ORDER = 3
INTERPRETED = bool(triton.knobs.runtime.interpret)  # how @triton.jit below decorated
BLOCK_E = 64

if ENVELOPE_POWER != 6:  # the closed forms below are those of p = 6
    raise ImportError(f"triton_spline implements the p = 6 envelope, got {ENVELOPE_POWER}")


@triton.jit
def _envelope(x, J: tl.constexpr):
    """u⁽ᴶ⁾(x) of the p = 6 envelope, 0 ≤ x ≤ 1."""
    w = 1.0 - x
    if J == 0:
        poly = 1.0 + x * (3.0 + x * (6.0 + x * (10.0 + x * (15.0 + x * 21.0))))
        out = w * w * w * poly
    elif J == 1:
        x2 = x * x
        out = -168.0 * x2 * x2 * x * w * w
    elif J == 2:
        x2 = x * x
        out = -168.0 * x2 * x2 * w * (5.0 - 7.0 * x)
    else:
        out = -336.0 * x * x * x * (10.0 + x * (-30.0 + 21.0 * x))
    return out


@triton.jit
def _bspline(u, piece, J: tl.constexpr):
    """B⁽ᴶ⁾ of the cardinal cubic B-spline at t = piece + u (0 ≤ u < 1), each piece in
    its local coordinate as in :func:`mlpot.kernels.spline.cubic_bspline_piece`."""
    w = 1.0 - u
    if J == 0:
        p0 = u * u * u / 6.0
        p1 = ((-3.0 * u + 3.0) * u * u + 3.0 * u + 1.0) / 6.0
        p2 = (3.0 * u - 6.0) * u * u / 6.0 + 2.0 / 3.0
        p3 = w * w * w / 6.0
    elif J == 1:
        p0 = 0.5 * u * u
        p1 = (-1.5 * u + 1.0) * u + 0.5
        p2 = (1.5 * u - 2.0) * u
        p3 = -0.5 * w * w
    elif J == 2:
        p0 = u
        p1 = 1.0 - 3.0 * u
        p2 = 3.0 * u - 2.0
        p3 = w
    else:
        p0 = u * 0.0 + 1.0
        p1 = u * 0.0 - 3.0
        p2 = u * 0.0 + 3.0
        p3 = u * 0.0 - 1.0
    out = tl.where(piece == 0, p0, tl.where(piece == 1, p1, tl.where(piece == 2, p2, p3)))
    return tl.where((piece >= 0) & (piece <= 3), out, 0.0 * u)


@triton.jit
def _derivative(r, u, piece, h, cutoff, N: tl.constexpr):
    """dᴺ/drᴺ [u(r / r_c) B(piece + u)] with du/dr = 1/h (Leibniz' rule, N ≤ 3)."""
    x = tl.minimum(r / cutoff, 1.0)
    inside = r < cutoff
    ih = 1.0 / h
    ic = 1.0 / cutoff
    b0 = _bspline(u, piece, 0)
    u0 = tl.where(inside, _envelope(x, 0), 0.0 * x)
    if N == 0:
        out = u0 * b0
    else:
        b1 = _bspline(u, piece, 1) * ih
        u1 = tl.where(inside, _envelope(x, 1), 0.0 * x) * ic
        if N == 1:
            out = u1 * b0 + u0 * b1
        else:
            b2 = _bspline(u, piece, 2) * ih * ih
            u2 = tl.where(inside, _envelope(x, 2), 0.0 * x) * ic * ic
            if N == 2:
                out = u2 * b0 + 2.0 * u1 * b1 + u0 * b2
            else:
                b3 = _bspline(u, piece, 3) * ih * ih * ih
                u3 = tl.where(inside, _envelope(x, 3), 0.0 * x) * ic * ic * ic
                out = u3 * b0 + 3.0 * u2 * b1 + 3.0 * u1 * b2 + u0 * b3
    return out


@triton.jit
def _tile(r_ptr, consts_ptr, E, K, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, N: tl.constexpr):
    """(b⁽ᴺ⁾ tile ``[BLOCK, BLOCK_K]``, edge offsets, 2-D mask) of this program."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    k = tl.arange(0, BLOCK_K)
    h = tl.load(consts_ptr)
    cutoff = tl.load(consts_ptr + 1)
    r = tl.load(r_ptr + e, mask=e < E, other=0.0)
    q = r / h
    j = tl.floor(q)
    piece = j[:, None].to(tl.int32) + 3 - k[None, :]
    mask = (e[:, None] < E) & (k[None, :] < K)
    return _derivative(r[:, None], (q - j)[:, None], piece, h, cutoff, N), e, mask


@triton.jit
def _basis_kernel(
    r_ptr, consts_ptr, out_ptr, E, K, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, N: tl.constexpr
):
    values, e, mask = _tile(r_ptr, consts_ptr, E, K, BLOCK, BLOCK_K, N)
    k = tl.arange(0, BLOCK_K)
    tl.store(out_ptr + e[:, None] * K + k[None, :], values, mask=mask)


@triton.jit
def _contract_kernel(
    r_ptr,
    consts_ptr,
    g_ptr,
    out_ptr,
    E,
    K,
    BLOCK: tl.constexpr,
    BLOCK_K: tl.constexpr,
    N: tl.constexpr,
):
    values, e, mask = _tile(r_ptr, consts_ptr, E, K, BLOCK, BLOCK_K, N)
    k = tl.arange(0, BLOCK_K)
    g = tl.load(g_ptr + e[:, None] * K + k[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + e, tl.sum(tl.where(mask, g * values, 0.0 * g), axis=1), mask=e < E)


@triton.jit
def _radial_kernel(
    r_ptr, consts_ptr, c_ptr, out_ptr, E, K, P, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr
):
    """R[e, p] = Σ_{s<4} b_{j+s}(r_e) C[j+s, p], j = ⌊r_e / h⌋ (the knot interval)."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    h = tl.load(consts_ptr)
    cutoff = tl.load(consts_ptr + 1)
    r = tl.load(r_ptr + e, mask=e < E, other=0.0)
    q = r / h
    jf = tl.floor(q)
    j = jf.to(tl.int32)
    acc = tl.zeros((BLOCK, BLOCK_P), dtype=r.dtype)
    for s in tl.static_range(4):
        k = j + s
        valid = (e < E) & (k >= 0) & (k < K)
        b = _derivative(r, q - jf, 3 - s + 0 * j, h, cutoff, 0)
        rows = tl.load(
            c_ptr + k[:, None] * P + p[None, :], mask=valid[:, None] & (p[None, :] < P), other=0.0
        )
        acc += tl.where(valid, b, 0.0 * b)[:, None] * rows
    tl.store(out_ptr + e[:, None] * P + p[None, :], acc, mask=(e[:, None] < E) & (p[None, :] < P))


def _consts(r: torch.Tensor, num_knots: int, cutoff: float) -> torch.Tensor:
    """[h, r_c] in r's dtype on r's device (scalar kernel arguments would be rounded to
    float32), written by fills rather than a host copy, so CUDA graphs can capture it."""
    consts = r.new_full((2,), cutoff)
    consts[0] = knot_spacing(num_knots, cutoff)
    return consts


def _check_order(order: int) -> None:
    if order > MAX_ORDER:
        raise NotImplementedError(
            f"derivatives of order {order} > {MAX_ORDER} of the spline "
            "radial basis are not implemented"
        )


def basis_derivative(r: torch.Tensor, num_knots: int, cutoff: float, order: int) -> torch.Tensor:
    """``[E, K]`` dⁿ/drⁿ of the enveloped basis (kernel launch, no autograd)."""
    _check_order(order)
    check_triton_launch(r.device, INTERPRETED, __name__)
    r = r.contiguous()
    out = torch.empty(r.shape[0], num_knots, dtype=r.dtype, device=r.device)
    if r.shape[0]:
        _basis_kernel[(triton.cdiv(r.shape[0], BLOCK_E),)](
            r,
            _consts(r, num_knots, cutoff),
            out,
            r.shape[0],
            num_knots,
            BLOCK=BLOCK_E,
            BLOCK_K=triton.next_power_of_2(num_knots),
            N=order,
        )
    return out


def contract_derivative(
    r: torch.Tensor, g: torch.Tensor, cutoff: float, order: int
) -> torch.Tensor:
    """``[E]`` Σ_k g[e, k] · dⁿ/drⁿ b_k(r_e) for ``g`` ``[E, K]`` (no autograd)."""
    _check_order(order)
    check_triton_launch(r.device, INTERPRETED, __name__)
    r, g = r.contiguous(), g.contiguous()
    out = torch.empty_like(r)
    if r.shape[0]:
        num_knots = g.shape[1]
        _contract_kernel[(triton.cdiv(r.shape[0], BLOCK_E),)](
            r,
            _consts(r, num_knots, cutoff),
            g,
            out,
            r.shape[0],
            num_knots,
            BLOCK=BLOCK_E,
            BLOCK_K=triton.next_power_of_2(num_knots),
            N=order,
        )
    return out


class _BasisDerivative(torch.autograd.Function):
    """b⁽ⁿ⁾(r); backward: Σ_k g b⁽ⁿ⁺¹⁾ (a contract kernel)."""

    @staticmethod
    def forward(ctx, r: torch.Tensor, num_knots: int, cutoff: float, order: int):
        ctx.save_for_backward(r)
        ctx.cutoff, ctx.order = cutoff, order
        return basis_derivative(r, num_knots, cutoff, order)

    @staticmethod
    def backward(ctx, grad):
        (r,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        return _Contract.apply(r, grad, ctx.cutoff, ctx.order + 1), None, None, None


class _Contract(torch.autograd.Function):
    """Σ_k g[e, k] b_k⁽ⁿ⁾(r_e); backward: (gg · contract⁽ⁿ⁺¹⁾(r, g), gg · b⁽ⁿ⁾(r))."""

    @staticmethod
    def forward(ctx, r: torch.Tensor, g: torch.Tensor, cutoff: float, order: int):
        ctx.save_for_backward(r, g)
        ctx.cutoff, ctx.order = cutoff, order
        return contract_derivative(r, g, cutoff, order)

    @staticmethod
    def backward(ctx, grad):
        r, g = ctx.saved_tensors
        grad_r = grad_g = None
        if ctx.needs_input_grad[0]:
            grad_r = grad * _Contract.apply(r, g, ctx.cutoff, ctx.order + 1)
        if ctx.needs_input_grad[1]:
            basis = _BasisDerivative.apply(r, g.shape[1], ctx.cutoff, ctx.order)
            grad_g = grad[:, None] * basis
        return grad_r, grad_g, None, None


class _SplineRadial(torch.autograd.Function):
    """R = b(r) @ C in one kernel; backward through the basis/contract kernels."""

    @staticmethod
    def forward(ctx, r: torch.Tensor, coefficients: torch.Tensor, cutoff: float):
        ctx.save_for_backward(r, coefficients)
        ctx.cutoff = cutoff
        r, coefficients = r.contiguous(), coefficients.contiguous()
        num_knots, width = coefficients.shape
        out = torch.empty(r.shape[0], width, dtype=r.dtype, device=r.device)
        if r.shape[0] and width:
            block_p = min(64, triton.next_power_of_2(width))
            grid = (triton.cdiv(r.shape[0], BLOCK_E), triton.cdiv(width, block_p))
            _radial_kernel[grid](
                r,
                _consts(r, num_knots, cutoff),
                coefficients,
                out,
                r.shape[0],
                num_knots,
                width,
                BLOCK=BLOCK_E,
                BLOCK_P=block_p,
            )
        return out

    @staticmethod
    def backward(ctx, grad):
        r, coefficients = ctx.saved_tensors
        grad_r = grad_c = None
        if ctx.needs_input_grad[0]:
            grad_r = _Contract.apply(r, grad @ coefficients.T, ctx.cutoff, 1)
        if ctx.needs_input_grad[1]:
            grad_c = _BasisDerivative.apply(r, coefficients.shape[0], ctx.cutoff, 0).T @ grad
        return grad_r, grad_c, None


def radial_basis(r: torch.Tensor, num_knots: int, cutoff: float) -> torch.Tensor:
    """Triton :func:`mlpot.kernels.spline.radial_basis`: ``[E, K]`` u(r/r_c) B_k(r).

    Args:
        r: ``[E]`` edge lengths, Å (float32/float64, CUDA or interpreted CPU).
        num_knots: K.
        cutoff: r_c, Å.
    """
    knot_spacing(num_knots, cutoff)  # validates num_knots
    return _BasisDerivative.apply(r, num_knots, float(cutoff), 0)


def spline_radial(r: torch.Tensor, coefficients: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Triton :func:`mlpot.kernels.spline.spline_radial`: ``[E, P]`` u(r/r_c) · B(r) @ C."""
    knot_spacing(coefficients.shape[0], cutoff)
    check_triton_launch(r.device, INTERPRETED, __name__)
    return _SplineRadial.apply(r, coefficients, float(cutoff))
