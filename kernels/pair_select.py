"""Verlet-list hot path: keep the candidate pairs closer than the cutoff, and the
largest atom displacement (pure-torch reference + fused numba CPU kernels).

Both run every MD step. In eager torch the pair test is eight passes over the
candidates (two gathers, sub, add, square, sum, compare, nonzero) and three more to
compact them; the numba kernel does it in one pass and writes the kept pairs
straight into the output buffers. ``backend="auto"`` picks numba for CPU tensors
when it is importable and the reference otherwise (CUDA tensors always use the
reference). Both compute r² = (dx² + dy²) + dz² in the positions' dtype and
compare it with cutoff² rounded to that dtype, so they keep the same pairs.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import torch

BACKENDS = ("auto", "numba", "torch")
_HAVE_NUMBA = importlib.util.find_spec("numba") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"numba"`` or ``"torch"`` for tensors on ``device`` (ValueError when unknown
    or when numba is asked for but unusable)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown pair-selection backend {backend!r}; use one of {BACKENDS}")
    if backend == "auto":
        return "numba" if _HAVE_NUMBA and device.type == "cpu" else "torch"
    if backend == "numba" and (not _HAVE_NUMBA or device.type != "cpu"):
        raise ValueError("the numba pair-selection kernel needs numba and CPU tensors "
                         f"(numba {'found' if _HAVE_NUMBA else 'missing'}, device {device})")
    return backend


def select_pairs(positions: torch.Tensor, edge_index: torch.Tensor, shifts: torch.Tensor,
                 start: int, stop: int, cutoff: float, out_edges: torch.Tensor,
                 out_shifts: torch.Tensor, backend: str = "auto") -> int:
    """Copy the candidates ``start:stop`` with r < ``cutoff`` to ``out_*[:, start:]``.

    The candidates come in couples (i, j, S), (j, i, −S) (see
    :func:`mlpot.md.forces.build_verlet_list`): the first of each is measured, and both
    are kept or dropped.

    Args:
        positions: ``[N, 3]`` Å.
        edge_index: ``[2, E]`` candidate pairs (i, j); int64.
        shifts: ``[E, 3]`` cartesian image shifts of j, Å (positions' dtype).
        start, stop: the candidates to test (even: whole couples).
        cutoff: Å.
        out_edges, out_shifts: ``[2, E]`` / ``[E, 3]`` buffers (not aliasing the
            candidates); the kept pairs go to ``start … start + kept − 1`` in order.
        backend: ``"auto" | "numba" | "torch"``.

    Returns:
        kept: the number of pairs written.
    """
    if stop <= start:
        return 0
    if resolve_backend(backend, positions.device) == "numba":
        cut2 = _numpy_dtype(positions.dtype)(cutoff * cutoff)
        return int(_numba_kernels().select_pairs(positions.detach().numpy(), edge_index.numpy(),
                                   shifts.numpy(), start, stop, cut2, out_edges.numpy(),
                                   out_shifts.numpy()))
    return select_pairs_reference(positions, edge_index, shifts, start, stop, cutoff,
                                  out_edges, out_shifts)


def select_pairs_reference(positions: torch.Tensor, edge_index: torch.Tensor,
                           shifts: torch.Tensor, start: int, stop: int, cutoff: float,
                           out_edges: torch.Tensor, out_shifts: torch.Tensor) -> int:
    """Pure-torch :func:`select_pairs` (any device)."""
    pos_t = positions.detach().T.contiguous()  # coordinate-major: row gathers
    d = pos_t.index_select(1, edge_index[1, start:stop:2])  # first pair of each couple
    d.sub_(pos_t.index_select(1, edge_index[0, start:stop:2]))
    d.add_(shifts[start:stop:2].T)
    r2 = d.square_()
    r2 = (r2[0] + r2[1]) + r2[2]
    couples = (r2 < cutoff * cutoff).nonzero()
    keep = torch.cat([2 * couples, 2 * couples + 1], dim=1).view(-1)
    end = start + keep.numel()
    torch.index_select(edge_index[0, start:stop], 0, keep, out=out_edges[0, start:end])
    torch.index_select(edge_index[1, start:stop], 0, keep, out=out_edges[1, start:end])
    torch.index_select(shifts[start:stop], 0, keep, out=out_shifts[start:end])
    return keep.numel()


def update_pair_list_reference(positions: torch.Tensor, ref_positions: torch.Tensor,
                               ref_distance: np.ndarray, edge_index: torch.Tensor,
                               shifts: torch.Tensor, cutoff: float, skin: float, pristine: int,
                               out_edges: torch.Tensor, out_shifts: torch.Tensor
                               ) -> tuple[int, int, float] | None:
    """One MD step of a Verlet list whose cell has not changed since its rebuild
    (pure torch; :class:`SameCellUpdate` dispatches between this and the numba kernel).

    With δ = max_i |r_i − r_ref,i|, the list is stale when r_c + skin − 2δ < r_c
    (returns None: rebuild). Otherwise the candidates, sorted by their distance
    d_ref at the rebuild, with d_ref < r_c − 2δ are surely inside and those with
    d_ref > r_c + 2δ surely outside; only the band between is measured, and its kept
    pairs are written to ``out_*[start:end]``. ``out_*[:pristine]`` still hold the
    sorted candidates, so ``start = min(first band pair, pristine)``.

    Args:
        positions, ref_positions: ``[N, 3]`` now and at the rebuild, Å.
        ref_distance: ``[E]`` float64 host array of d_ref, ascending.
        edge_index, shifts: ``[2, E]`` / ``[E, 3]`` candidates (cartesian shifts, Å).
        cutoff, skin: Å.
        pristine: leading pairs of ``out_*`` still equal to the candidates.
        out_edges, out_shifts: the model's pair buffers.

    Returns:
        ``(start, end, δ)``: ``out_*[:end]`` is the pair list, the new ``pristine`` is
        ``start``; or None when the list must be rebuilt.
    """
    delta = max_displacement(positions, ref_positions, "torch")
    if cutoff + skin - 2 * delta < cutoff:
        return None
    first, last = np.searchsorted(ref_distance, (cutoff - 2 * delta - 1e-6,
                                                 cutoff + 2 * delta + 1e-6)).tolist()
    start = min(first, pristine)
    kept = select_pairs_reference(positions, edge_index, shifts, start, last, cutoff,
                                  out_edges, out_shifts)
    return start, start + kept, delta


class SameCellUpdate:
    """The per-step update of one Verlet list and its buffers (the MD hot path; see
    :func:`update_pair_list_reference`), with the backend and the array views
    prepared once per rebuild.

    Args: as :func:`update_pair_list_reference` (the tensors must stay in place while
    in use), plus ``backend``: ``"auto" | "numba" | "torch"``.
    """

    def __init__(self, ref_positions: torch.Tensor, ref_distance: np.ndarray,
                 edge_index: torch.Tensor, shifts: torch.Tensor, cutoff: float, skin: float,
                 out_edges: torch.Tensor, out_shifts: torch.Tensor,
                 backend: str = "auto") -> None:
        self.backend = resolve_backend(backend, ref_positions.device)
        self.tensors = (ref_positions, ref_distance, edge_index, shifts)
        self.out = (out_edges, out_shifts)
        self.cutoff, self.skin = float(cutoff), float(skin)
        if self.backend == "numba":
            cut2 = _numpy_dtype(ref_positions.dtype)(cutoff * cutoff)
            self._kernel = _numba_kernels().update_pair_list
            self._args = (ref_positions.numpy(), ref_distance, edge_index.numpy(),
                          shifts.numpy(), self.cutoff, self.skin, cut2)
            self._out = (out_edges.numpy(), out_shifts.numpy())

    def __call__(self, positions: torch.Tensor, pristine: int) -> tuple[int, int, float] | None:
        """``(start, end, δ)`` or None (rebuild); see :func:`update_pair_list_reference`."""
        if self.backend == "numba":
            if positions.requires_grad:
                positions = positions.detach()
            start, end, delta = self._kernel(positions.numpy(), *self._args, pristine,
                                             *self._out)
            return None if start < 0 else (start, end, delta)
        return update_pair_list_reference(positions, *self.tensors, self.cutoff, self.skin,
                                          pristine, *self.out)


def max_displacement(positions: torch.Tensor, reference: torch.Tensor,
                     backend: str = "auto") -> float:
    """max_i |r_i − r_ref,i|, Å, of ``[N, 3]`` positions (0 for no atoms)."""
    if positions.shape[0] == 0:
        return 0.0
    if resolve_backend(backend, positions.device) == "numba":
        kernel = _numba_kernels().max_displacement
        return float(kernel(positions.detach().numpy(), reference.numpy()))
    d = positions.detach() - reference
    return float(torch.linalg.vector_norm(d, dim=1).max())


def _numpy_dtype(dtype: torch.dtype) -> type:
    return {torch.float32: np.float32, torch.float64: np.float64}[dtype]


@functools.cache
def _numba_kernels():
    """The compiled kernels' module (importing numba costs ~0.3 s, so only on first use)."""
    from mlpot.kernels import pair_select_numba

    return pair_select_numba
