"""Triton twin of :func:`mlpot.kernels.grid_product.grid_node_update`: SH → grid →
products + per-point MLP → SH in one kernel per pass, grid values in registers only.

Forward (one program per node n, a loop over chunks of ``BLOCK_G`` grid points):

    f_k = T_chunkᵀ x_k[n]                      (k < F, ``[BLOCK_G, C]`` tiles)
    total = f_0 (λ_0 + f_1 (λ_1 + …)) + W₂ᵀ silu(W₁ᵀ f_0 + b₁)
    y[n] += P_chunkᵀ total

Backward (at most ``MAX_BACKWARD_PROGRAMS`` programs, each a run of consecutive nodes:
enough to fill a GPU, few enough that the per-program weight-gradient partials stay
small) recomputes the f_k chunk by
chunk — nothing of the grid is saved between the passes, so the memory of the forward
is that of its inputs — and applies the analytic derivatives of
:func:`~mlpot.kernels.grid_product.grid_node_update_vjp`: ∂/∂f_k = ĝ π_k η_k,
∂/∂λ_k = Σ_g ĝ π_k f_k, the MLP's (ĝ W₂ᵀ ⊙ silu'(a)) W₁ᵀ, with ĝ = P_chunk g. The
weight gradients are summed over the program's nodes in registers and over programs
by torch.

Double backward (force training): the backward is itself an autograd Function whose
backward differentiates the pure-torch transcription of the analytic first derivative
(:func:`~mlpot.kernels.grid_product.grid_node_update_vjp`) on detached copies of its
inputs (the saved gradient may itself depend on the saved factors, through later
layers: differentiating the originals would count those paths twice). That path
materialises the grid, as the reference does, and only runs when forces are
differentiated (force training). Third derivatives raise NotImplementedError.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mlpot.kernels.dispatch import KernelUnavailableError, check_triton_launch
from mlpot.kernels.grid_product import GridMLPWeights, grid_node_update_vjp

BLOCK_G = 32
MAX_BACKWARD_PROGRAMS = 512
MIN_DOT = 16  # tl.dot needs every dimension ≥ 16 on GPUs
INTERPRETED = bool(triton.knobs.runtime.interpret)  # how @triton.jit below decorated


@triton.jit
def _grid_values(x_ptr, tt, n, k, N, F, C, M, om, oc):
    """f_k(g) of node n on this chunk: T_chunkᵀ x[:, n, k, :] → ``[BLOCK_G, BLOCK_C]``."""
    x = tl.load(
        x_ptr + ((om[:, None] * N + n) * F + k) * C + oc[None, :],
        mask=(om[:, None] < M) & (oc[None, :] < C),
        other=0.0,
    )
    return tl.dot(tl.trans(tt), x, input_precision="ieee")


@triton.jit
def _coupling(lam_ptr, n, k, F, C, oc):
    return tl.load(lam_ptr + (n * F + k) * C + oc, mask=oc < C, other=0.0)


@triton.jit
def _load_mlp(w1_ptr, b1_ptr, w2_ptr, C, H, oc, oh):
    w1 = tl.load(
        w1_ptr + oc[:, None] * H + oh[None, :],
        mask=(oc[:, None] < C) & (oh[None, :] < H),
        other=0.0,
    )
    b1 = tl.load(b1_ptr + oh, mask=oh < H, other=0.0)
    w2 = tl.load(
        w2_ptr + oh[:, None] * C + oc[None, :],
        mask=(oh[:, None] < H) & (oc[None, :] < C),
        other=0.0,
    )
    return w1, b1, w2


@triton.jit
def _forward_kernel(
    x_ptr,
    lam_ptr,
    t_ptr,
    p_ptr,
    w1_ptr,
    b1_ptr,
    w2_ptr,
    out_ptr,
    N,
    M,
    MO,
    G,
    C,
    H,
    F: tl.constexpr,
    HAS_MLP: tl.constexpr,
    BM: tl.constexpr,
    BMO: tl.constexpr,
    BG: tl.constexpr,
    BC: tl.constexpr,
    BH: tl.constexpr,
):
    n = tl.program_id(0)
    om, omo = tl.arange(0, BM), tl.arange(0, BMO)
    oc, oh, og = tl.arange(0, BC), tl.arange(0, BH), tl.arange(0, BG)
    if HAS_MLP:
        w1, b1, w2 = _load_mlp(w1_ptr, b1_ptr, w2_ptr, C, H, oc, oh)
    acc = tl.zeros((BMO, BC), dtype=out_ptr.dtype.element_ty)
    for g0 in range(0, G, BG):
        g = g0 + og
        tt = tl.load(
            t_ptr + om[:, None] * G + g[None, :],
            mask=(om[:, None] < M) & (g[None, :] < G),
            other=0.0,
        )
        last = _coupling(lam_ptr, n, F - 1, F, C, oc)
        inner = tl.zeros((BG, BC), dtype=acc.dtype) + last[None, :]
        for i in tl.static_range(F - 1):
            fk = _grid_values(x_ptr, tt, n, F - 1 - i, N, F, C, M, om, oc)
            inner = _coupling(lam_ptr, n, F - 2 - i, F, C, oc)[None, :] + fk * inner
        f0 = _grid_values(x_ptr, tt, n, 0, N, F, C, M, om, oc)
        total = f0 * inner
        if HAS_MLP:
            pre = tl.dot(f0, w1, input_precision="ieee") + b1[None, :]
            total += tl.dot(pre * tl.sigmoid(pre), w2, input_precision="ieee")
        pt = tl.load(
            p_ptr + g[:, None] * MO + omo[None, :],
            mask=(g[:, None] < G) & (omo[None, :] < MO),
            other=0.0,
        )
        acc += tl.dot(tl.trans(pt), total, input_precision="ieee")
    tl.store(
        out_ptr + (omo[:, None] * N + n) * C + oc[None, :],
        acc,
        mask=(omo[:, None] < MO) & (oc[None, :] < C),
    )


@triton.jit
def _backward_kernel(
    x_ptr,
    lam_ptr,
    t_ptr,
    p_ptr,
    w1_ptr,
    b1_ptr,
    w2_ptr,
    gy_ptr,
    gx_ptr,
    glam_ptr,
    gw1_ptr,
    gb1_ptr,
    gw2_ptr,
    N,
    M,
    MO,
    G,
    C,
    H,
    NPP,
    F: tl.constexpr,
    HAS_MLP: tl.constexpr,
    BM: tl.constexpr,
    BMO: tl.constexpr,
    BG: tl.constexpr,
    BC: tl.constexpr,
    BH: tl.constexpr,
):
    pid = tl.program_id(0)
    om, omo = tl.arange(0, BM), tl.arange(0, BMO)
    oc, oh, og = tl.arange(0, BC), tl.arange(0, BH), tl.arange(0, BG)
    dtype = gx_ptr.dtype.element_ty
    if HAS_MLP:
        w1, b1, w2 = _load_mlp(w1_ptr, b1_ptr, w2_ptr, C, H, oc, oh)
    gw1 = tl.zeros((BC, BH), dtype=dtype)
    gb1 = tl.zeros((BH,), dtype=dtype)
    gw2 = tl.zeros((BH, BC), dtype=dtype)
    for n in range(pid * NPP, tl.minimum(pid * NPP + NPP, N)):
        gy = tl.load(
            gy_ptr + (omo[:, None] * N + n) * C + oc[None, :],
            mask=(omo[:, None] < MO) & (oc[None, :] < C),
            other=0.0,
        )
        for k in tl.static_range(F):
            acc_x = tl.zeros((BM, BC), dtype=dtype)
            acc_l = tl.zeros((BC,), dtype=dtype)
            for g0 in range(0, G, BG):
                g = g0 + og
                tt = tl.load(
                    t_ptr + om[:, None] * G + g[None, :],
                    mask=(om[:, None] < M) & (g[None, :] < G),
                    other=0.0,
                )
                pt = tl.load(
                    p_ptr + g[:, None] * MO + omo[None, :],
                    mask=(g[:, None] < G) & (omo[None, :] < MO),
                    other=0.0,
                )
                g_tot = tl.dot(pt, gy, input_precision="ieee")  # ĝ [BG, BC]
                prefix = tl.zeros((BG, BC), dtype=dtype) + 1.0
                for j in tl.static_range(k):
                    prefix *= _grid_values(x_ptr, tt, n, j, N, F, C, M, om, oc)
                fk = _grid_values(x_ptr, tt, n, k, N, F, C, M, om, oc)
                tail = (
                    tl.zeros((BG, BC), dtype=dtype)
                    + _coupling(lam_ptr, n, F - 1, F, C, oc)[None, :]
                )
                for i in tl.static_range(F - 1 - k):
                    fj = _grid_values(x_ptr, tt, n, F - 1 - i, N, F, C, M, om, oc)
                    tail = _coupling(lam_ptr, n, F - 2 - i, F, C, oc)[None, :] + fj * tail
                g_f = g_tot * prefix * tail
                acc_l += tl.sum(g_tot * prefix * fk, axis=0)
                if HAS_MLP and k == 0:
                    pre = tl.dot(fk, w1, input_precision="ieee") + b1[None, :]
                    sig = tl.sigmoid(pre)
                    g_pre = tl.dot(g_tot, tl.trans(w2), input_precision="ieee") * (
                        sig * (1.0 + pre * (1.0 - sig))
                    )
                    g_f += tl.dot(g_pre, tl.trans(w1), input_precision="ieee")
                    gw1 += tl.dot(tl.trans(fk), g_pre, input_precision="ieee")
                    gb1 += tl.sum(g_pre, axis=0)
                    gw2 += tl.dot(tl.trans(pre * sig), g_tot, input_precision="ieee")
                acc_x += tl.dot(tt, g_f, input_precision="ieee")
            tl.store(
                gx_ptr + ((om[:, None] * N + n) * F + k) * C + oc[None, :],
                acc_x,
                mask=(om[:, None] < M) & (oc[None, :] < C),
            )
            tl.store(glam_ptr + (n * F + k) * C + oc, acc_l, mask=oc < C)
    if HAS_MLP:
        tl.store(
            gw1_ptr + pid * C * H + oc[:, None] * H + oh[None, :],
            gw1,
            mask=(oc[:, None] < C) & (oh[None, :] < H),
        )
        tl.store(gb1_ptr + pid * H + oh, gb1, mask=oh < H)
        tl.store(
            gw2_ptr + pid * H * C + oh[:, None] * C + oc[None, :],
            gw2,
            mask=(oh[:, None] < H) & (oc[None, :] < C),
        )


def _blocks(m: int, m_out: int, c: int, h: int) -> dict[str, int]:
    def size(n: int) -> int:
        return max(MIN_DOT, triton.next_power_of_2(max(n, 1)))

    return {"BM": size(m), "BMO": size(m_out), "BG": BLOCK_G, "BC": size(c), "BH": size(h)}


def _mlp_tensors(
    mlp: GridMLPWeights | None, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    if mlp is None:
        dummy = like.new_zeros(1)
        return dummy, dummy, dummy, 1
    return mlp.w1.contiguous(), mlp.b1.contiguous(), mlp.w2.contiguous(), mlp.w1.shape[1]


def _forward(factors, coupling, t, p, mlp) -> torch.Tensor:
    m, n, f, c = factors.shape
    g, m_out = p.shape
    w1, b1, w2, h = _mlp_tensors(mlp, factors)
    out = factors.new_empty(m_out, n, c)
    if n and c and m_out:
        _forward_kernel[(n,)](
            factors,
            coupling,
            t,
            p,
            w1,
            b1,
            w2,
            out,
            n,
            m,
            m_out,
            g,
            c,
            h,
            F=f,
            HAS_MLP=mlp is not None,
            **_blocks(m, m_out, c, h),
        )
    else:
        out.zero_()
    return out


def _backward(grad_out, factors, coupling, t, p, mlp):
    m, n, f, c = factors.shape
    g, m_out = p.shape
    w1, b1, w2, h = _mlp_tensors(mlp, factors)
    nodes_per_program = max(1, triton.cdiv(n, MAX_BACKWARD_PROGRAMS))
    programs = triton.cdiv(n, nodes_per_program)
    grad_x, grad_lam = torch.zeros_like(factors), torch.zeros_like(coupling)
    gw1 = factors.new_zeros(max(programs, 1), *w1.shape)
    gb1 = factors.new_zeros(max(programs, 1), *b1.shape)
    gw2 = factors.new_zeros(max(programs, 1), *w2.shape)
    if n and c and m_out:
        _backward_kernel[(programs,)](
            factors,
            coupling,
            t,
            p,
            w1,
            b1,
            w2,
            grad_out.contiguous(),
            grad_x,
            grad_lam,
            gw1,
            gb1,
            gw2,
            n,
            m,
            m_out,
            g,
            c,
            h,
            nodes_per_program,
            F=f,
            HAS_MLP=mlp is not None,
            **_blocks(m, m_out, c, h),
        )
    grad_mlp = None if mlp is None else GridMLPWeights(gw1.sum(0), gb1.sum(0), gw2.sum(0))
    return grad_x, grad_lam, grad_mlp


def _mlp_or_none(w1, b1, w2) -> GridMLPWeights | None:
    return None if w1 is None else GridMLPWeights(w1, b1, w2)


class _GridUpdate(torch.autograd.Function):
    """Fused forward; backward = :class:`_GridUpdateBackward` (saves inputs only)."""

    @staticmethod
    def forward(ctx, factors, coupling, t, p, w1, b1, w2):
        ctx.save_for_backward(factors, coupling, t, p, w1, b1, w2)
        return _forward(factors, coupling, t, p, _mlp_or_none(w1, b1, w2))

    @staticmethod
    def backward(ctx, grad_out):
        factors, coupling, t, p, w1, b1, w2 = ctx.saved_tensors
        grads = _GridUpdateBackward.apply(grad_out, factors, coupling, t, p, w1, b1, w2)
        return grads[0], grads[1], None, None, *grads[2:]


class _GridUpdateBackward(torch.autograd.Function):
    """The fused backward kernel; its own backward differentiates the analytic VJP."""

    @staticmethod
    def forward(ctx, grad_out, factors, coupling, t, p, w1, b1, w2):
        ctx.save_for_backward(grad_out, factors, coupling, t, p, w1, b1, w2)
        mlp = _mlp_or_none(w1, b1, w2)
        grad_x, grad_lam, grad_mlp = _backward(grad_out, factors, coupling, t, p, mlp)
        if grad_mlp is None:
            return grad_x, grad_lam, None, None, None
        return grad_x, grad_lam, grad_mlp.w1, grad_mlp.b1, grad_mlp.w2

    @staticmethod
    def backward(ctx, *grad_grads):
        saved = ctx.saved_tensors
        wanted = [i for i, need in enumerate(ctx.needs_input_grad) if need]
        if torch.is_grad_enabled():
            raise NotImplementedError(
                "grid_node_update (triton): third derivatives are not implemented"
            )
        with torch.enable_grad():
            leaves = [x.detach().requires_grad_(i in wanted) for i, x in enumerate(saved)]
            vjp = grid_node_update_vjp(
                leaves[1], leaves[2], leaves[3], leaves[4], _mlp_or_none(*leaves[5:]), leaves[0]
            )
            outs = [vjp.factors, vjp.coupling]
            if vjp.mlp is not None:
                outs += [vjp.mlp.w1, vjp.mlp.b1, vjp.mlp.w2]
            pairs = [(o, g) for o, g in zip(outs, grad_grads, strict=False) if g is not None]
            result = torch.autograd.grad(
                [o for o, _ in pairs],
                [leaves[i] for i in wanted],
                [g for _, g in pairs],
                allow_unused=True,
            )
        full = [None] * len(saved)
        for i, value in zip(wanted, result, strict=True):
            full[i] = torch.zeros_like(saved[i]) if value is None else value
        return tuple(full)


def grid_node_update(
    factors: torch.Tensor,
    coupling: torch.Tensor,
    to_grid_matrix: torch.Tensor,
    from_grid_matrix: torch.Tensor,
    mlp: GridMLPWeights | None,
) -> torch.Tensor:
    """Triton :func:`mlpot.kernels.grid_product.grid_node_update` (same arguments,
    ``[M_out, N, C]`` result); the grid matrices are constants (no gradient)."""
    if to_grid_matrix.requires_grad or from_grid_matrix.requires_grad:
        raise KernelUnavailableError(
            "grid_node_update (triton): gradients with respect to "
            "the grid matrices are not implemented"
        )
    check_triton_launch(factors.device, INTERPRETED, __name__)
    w1, b1, w2 = (None, None, None) if mlp is None else (mlp.w1, mlp.b1, mlp.w2)
    return _GridUpdate.apply(
        factors.contiguous(),
        coupling.contiguous(),
        to_grid_matrix.contiguous(),
        from_grid_matrix.contiguous(),
        w1,
        b1,
        w2,
    )
