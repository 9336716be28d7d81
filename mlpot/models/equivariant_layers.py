"""One message-passing layer of :class:`~mlpot.models.EquivariantPotential`.

Features are channels-last SH coefficients ``[N, M, C]`` (M = (L+1)², e3nn order and
conventions, natural parity: l even ↔ even, l odd ↔ odd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as tnf
from torch import nn

from mlpot.kernels.dispatch import dispatch
from mlpot.kernels.gaunt import cg_node_update, gaunt_tensor, product_chain_degrees
from mlpot.kernels.grid_product import GridMLPWeights
from mlpot.kernels.neighbors import NeighborSlots, contract_density, neighbor_slots
from mlpot.kernels.s2grid import grid_resolution, num_sh, s2_grid, spherical_harmonics


@dataclass(frozen=True)
class EdgeFeatures:
    """Per-edge quantities shared by all layers, in the padded neighbour layout.

    Attributes:
        slots: the ``[N, K_max]`` slot table.
        basis: ``[N, K_max, K]`` enveloped spline basis b_k(r) (zero in empty slots).
        sh: ``[N, K_max, M]`` Y_m(r̂).
    """

    slots: NeighborSlots
    basis: torch.Tensor
    sh: torch.Tensor

    def basis_sh(self, start: int, stop: int) -> torch.Tensor:
        """``[stop − start, K_max, K·M]`` b_k(r) Y_m(r̂) of centres start … stop − 1."""
        b, y = self.basis[start:stop], self.sh[start:stop]
        return (b[:, :, :, None] * y[:, :, None, :]).flatten(2)

    @classmethod
    def build(cls, edge_index: torch.Tensor, edge_vectors: torch.Tensor, num_nodes: int,
              lmax: int, num_knots: int, cutoff: float, kernels: str | None = None
              ) -> EdgeFeatures:
        """From ``edge_index`` ``[2, E]`` and ``edge_vectors`` ``[E, 3]`` (Å); ``kernels``
        picks the spline-basis backend (:func:`mlpot.kernels.dispatch.resolve`)."""
        slots = neighbor_slots(edge_index, num_nodes)
        r = torch.linalg.vector_norm(edge_vectors, dim=-1)
        basis = dispatch("spline_basis", kernels, r.device)(r, num_knots, cutoff)
        sh = spherical_harmonics(lmax, edge_vectors)
        return cls(slots=slots, basis=slots.pad(basis), sh=slots.pad(sh))


def linear_per_l(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Equivariant channel mixing: ``[N, M, Cin]`` @ ``weight[l]`` ``[Cin, Cout]`` per l.

    Uses the l-blocks present in x (M = (l_x + 1)², l_x < len(weight)).
    """
    lmax_x = math.isqrt(x.shape[1]) - 1
    if lmax_x == 0:
        return x @ weight[0]
    return torch.cat([x[:, l * l:(l + 1) ** 2] @ weight[l] for l in range(lmax_x + 1)], dim=1)


#: Target size of per-block temporaries, bytes (16 MB: below glibc's largest mmap
#: threshold, so freed blocks are reused from the heap).
BLOCK_BYTES = 16 * 2**20


def _weighted_sum(dens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Σ_k dens[:, k] · table[k] for ``dens`` ``[N, K, M, C]``, ``table`` ``[K, M, C]``
    (accumulated slice by slice: no ``[N, K, M, C]`` temporary)."""
    slices, weights = dens.unbind(1), table.unbind(0)
    out = slices[0] * weights[0]
    for x, w in zip(slices[1:], weights[1:], strict=True):
        out = torch.addcmul(out, x, w)
    return out


def _normal(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


class EquivariantLayer(nn.Module):
    """Spline-radial messages, then a many-body node update (grid or CG backend).

    Messages from neighbour j to centre i (channel-wise, c):
        m_ij[lm, c] = R¹_ij[l, c] Y_lm(r̂_ij) s_j[c]  +  R²_ij[l, c] h_j[lm, c],
    with s = h[l=0] W_up and R = spline radial weights (R² only after the first layer),
    A_i = Σ_j m_ij / avg_num_neighbors. Factors x_k = W_k,l A + W'_k,l h_i,
    then y = products + self-MLP (see :func:`grid_node_update`), and
    h_new = W_out,l y + W_skip,l h. ``kernels`` (``"auto" | "torch" | "triton"``, None:
    ``MLPOT_KERNELS``) picks the grid update's backend through
    :mod:`mlpot.kernels.dispatch` (the CG backend has only the torch one). On CPU the
    centres are processed in blocks whose
    temporaries stay ≲ BLOCK_BYTES (same result; avoids page-faulting large buffers).
    """

    l_of_m: torch.Tensor
    to_grid: torch.Tensor
    from_grid: torch.Tensor
    radial_features: nn.Parameter | None
    skip: nn.Parameter | None

    def __init__(
        self,
        num_species: int,
        channels: int,
        lmax: int,
        lmax_out: int,
        correlation: int,
        num_knots: int,
        cutoff: float,
        lmax_in: int | None,
        backend: str,
        self_mlp: bool,
        avg_num_neighbors: float,
        grid_oversample: int = 0,
        kernels: str | None = None,
    ) -> None:
        super().__init__()
        self.kernels = kernels
        c, num_l = channels, lmax + 1
        self.lmax, self.lmax_out, self.lmax_in = lmax, lmax_out, lmax_in
        first = lmax_in is None
        self.cutoff, self.backend = cutoff, backend
        self.inv_avg_neighbors = 1.0 / avg_num_neighbors
        self.radial = _normal(num_knots, num_l, c, std=1.0)
        self.radial_features = (None if lmax_in is None
                                else _normal(num_knots, lmax_in + 1, c, std=1.0))
        self.up = _normal(c, c, std=1.0 / math.sqrt(c))
        self.mix = _normal(num_l, c, correlation * c, std=1.0 / math.sqrt(c))
        self.self_mix = _normal(1 if lmax_in is None else lmax_in + 1, c, correlation * c,
                                std=1.0 / math.sqrt(c))
        self.coupling = nn.Parameter(torch.ones(num_species, correlation, c)
                                     / torch.arange(1, correlation + 1)[:, None] ** 2)
        self.out = _normal(lmax_out + 1, c, c, std=1.0 / math.sqrt(c))
        self.skip = None if first else _normal(lmax_out + 1, c, c, std=1.0 / math.sqrt(c))
        self.self_mlp = self_mlp
        if self_mlp:
            self.mlp_w1 = _normal(c, c, std=0.5 / math.sqrt(c))  # mild: less aliasing
            self.mlp_b1 = nn.Parameter(torch.zeros(c))
            self.mlp_w2 = _normal(c, c, std=1.0 / math.sqrt(c))
            if backend == "cg":
                self.gate = _normal(c, c, std=1.0 / math.sqrt(c))
        self._masters: dict[str, torch.Tensor] = {}
        if backend == "grid":
            res = grid_resolution(correlation * lmax + grid_oversample, lmax_out)
            grid = s2_grid(lmax, lmax_out, *res)
            self._register_constant("to_grid", grid.to_grid)
            self._register_constant("from_grid", grid.from_grid)
            self.grid_shape = res
        else:
            chain = product_chain_degrees(lmax, correlation, lmax_out)
            self.num_gaunts = len(chain)
            for k, (l_in, l_keep) in enumerate(chain):
                self._register_constant(f"gaunt{k}", gaunt_tensor(l_in, lmax, l_keep))
        self.register_buffer("l_of_m", torch.repeat_interleave(
            torch.arange(num_l), 2 * torch.arange(num_l) + 1), persistent=False)

    def _register_constant(self, name: str, value64: torch.Tensor) -> None:
        """A non-persistent buffer re-derived from its float64 master on every dtype or
        device change (so float32 → float64 does not keep float32 rounding)."""
        self._masters[name] = value64
        self.register_buffer(name, value64.to(torch.get_default_dtype()), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name, master in self._masters.items():
            buf = self._buffers[name]
            self._buffers[name] = master.to(device=buf.device, dtype=buf.dtype)
        return self

    def messages(self, h: torch.Tensor, s: torch.Tensor, edges: EdgeFeatures, start: int,
                 stop: int) -> torch.Tensor:
        """Aggregated neighbour density A ``[stop − start, M, C]`` of centres
        start … stop − 1, from features ``h`` ``[N, M_h, C]`` and ``s = h[l=0] W_up``.

        With R[e, l, c] = Σ_k b_k(r_e) C[k, l, c], the sum over edges is done first:
        A¹[i, m, c] = Σ_k C¹[k, l(m), c] Σ_e b_k(r_e) Y_m(r̂_e) s_j[c] (one batched
        matmul over the padded neighbour slots), likewise A² with h_j.
        """
        n, c = stop - start, h.shape[-1]
        k, m = edges.basis.shape[-1], self.l_of_m.shape[0]
        sj = edges.slots.gather(s, start, stop)
        dens = contract_density(edges.basis_sh(start, stop), sj).view(n, k, m, c)
        a = _weighted_sum(dens, self.radial[:, self.l_of_m])
        if self.radial_features is not None:
            m_in = h.shape[1]
            hj = edges.slots.gather(h.reshape(h.shape[0], m_in * c), start, stop)
            dens = contract_density(edges.basis[start:stop], hj).view(n, k, m_in, c)
            a2 = _weighted_sum(dens, self.radial_features[:, self.l_of_m[:m_in]])
            a = torch.cat([a[:, :m_in] + a2, a[:, m_in:]], dim=1)
        return a * self.inv_avg_neighbors

    def node_update(self, a: torch.Tensor, h: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Many-body update of the density ``a`` ``[N, M, C]`` → ``[M_out, N, C]``
        (SH-major, see :mod:`mlpot.kernels.grid_product`)."""
        n, m, c = a.shape
        a_sh = a.transpose(0, 1).contiguous()
        h_sh = h.transpose(0, 1).contiguous()
        blocks = []
        for l in range(self.lmax + 1):
            x = a_sh[l * l:(l + 1) ** 2] @ self.mix[l]
            if l * l < h_sh.shape[0]:
                x = x + h_sh[l * l:(l + 1) ** 2] @ self.self_mix[l]
            blocks.append(x)
        factors = torch.cat(blocks, dim=0).view(m, n, -1, c)  # [M, N, F, C]
        coupling = self.coupling[species]
        if self.backend == "grid":
            mlp = (GridMLPWeights(self.mlp_w1, self.mlp_b1, self.mlp_w2)
                   if self.self_mlp else None)
            update = dispatch("grid_node_update", self.kernels, factors.device)
            return update(factors, coupling, self.to_grid, self.from_grid, mlp)
        gaunts = [getattr(self, f"gaunt{k}") for k in range(self.num_gaunts)]
        y = cg_node_update(factors, coupling, gaunts, self.lmax_out)
        if self.self_mlp:
            y = y + self._gated_mlp(factors[:num_sh(self.lmax_out), :, 0])
        return y

    def _gated_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """CG-backend counterpart of the grid MLP on ``x`` ``[M, N, C]``: scalars through
        the MLP, l > 0 scaled by sigmoid gates computed from the scalars."""
        s = x[0]
        scalars = tnf.silu(s @ self.mlp_w1 + self.mlp_b1) @ self.mlp_w2
        if x.shape[0] == 1:
            return scalars[None]
        gated = x[1:] * torch.sigmoid(s @ self.gate)[None]
        return torch.cat([scalars[None], gated], dim=0)

    def chunk_size(self, channels: int, max_neighbors: int, num_knots: int,
                   element_size: int) -> int:
        """Centres per block, so per-block temporaries stay ≲ BLOCK_BYTES (then the
        allocator reuses memory instead of page-faulting fresh mappings each call)."""
        m = self.l_of_m.shape[0]
        if self.backend == "grid":
            points = self.to_grid.shape[1]
        else:
            points = max(g.shape[0] * g.shape[1] for g in
                         (getattr(self, f"gaunt{k}") for k in range(self.num_gaunts))) \
                if self.num_gaunts else m
        factors = self.mix.shape[-1] // channels
        per_node = max(points * factors * channels, max_neighbors * num_knots * m,
                       num_knots * m * channels, max_neighbors * m * channels)
        return max(8, BLOCK_BYTES // (per_node * element_size))

    def forward(self, h: torch.Tensor, edges: EdgeFeatures, species: torch.Tensor
                ) -> torch.Tensor:
        """``h`` ``[N, M_h, C]`` → ``[N, (lmax_out+1)², C]``, in blocks of centres."""
        n, c = h.shape[0], h.shape[-1]
        s = h[:, 0] @ self.up
        # blocks only help the CPU allocator; CUDA's caching allocator reuses memory
        step = max(n, 1) if h.is_cuda else self.chunk_size(
            c, edges.slots.max_neighbors, edges.basis.shape[-1], h.element_size())
        out = []
        for start in range(0, n, step):
            stop = min(n, start + step)
            a = self.messages(h, s, edges, start, stop)
            y = self.node_update(a, h[start:stop], species[start:stop]).transpose(0, 1)
            y = linear_per_l(y, self.out)
            if self.skip is not None:
                y = y + linear_per_l(h[start:stop, :num_sh(self.lmax_out)], self.skip)
            out.append(y)
        return out[0] if len(out) == 1 else torch.cat(out)
