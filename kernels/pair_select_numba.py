"""numba kernels behind :mod:`mlpot.kernels.pair_select` (CPU; machine code cached on
disk). Arrays are numpy views of the torch tensors; shapes as documented there."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def select_pairs(pos, edges, shifts, start, stop, cut2, out_edges, out_shifts):
    """Write the couples of candidates ``start:stop`` (even bounds) with r² < ``cut2``
    to ``out_*[start:]``; the number of pairs written. Each couple is measured once."""
    k = start
    for p in range(start, stop, 2):
        i = edges[0, p]
        j = edges[1, p]
        dx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
        dy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
        dz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
        if (dx * dx + dy * dy) + dz * dz < cut2:
            for q in range(p, p + 2):
                out_edges[0, k] = edges[0, q]
                out_edges[1, k] = edges[1, q]
                out_shifts[k, 0] = shifts[q, 0]
                out_shifts[k, 1] = shifts[q, 1]
                out_shifts[k, 2] = shifts[q, 2]
                k += 1
    return k - start


@numba.njit(nogil=True, cache=True)
def max_displacement(pos, ref):
    """max_a |pos_a − ref_a|."""
    best = 0.0
    for a in range(pos.shape[0]):
        dx = pos[a, 0] - ref[a, 0]
        dy = pos[a, 1] - ref[a, 1]
        dz = pos[a, 2] - ref[a, 2]
        best = max(best, dx * dx + dy * dy + dz * dz)
    return np.sqrt(best)


@numba.njit(nogil=True, cache=True)
def update_pair_list(pos, ref, ref_dist, edges, shifts, cutoff, skin, cut2, pristine,
                     out_edges, out_shifts):
    """``(start, end, δ)``, or ``(-1, -1, δ)`` when the list is stale."""
    delta = max_displacement(pos, ref)
    if cutoff + skin - 2 * delta < cutoff:
        return -1, -1, delta
    first = np.searchsorted(ref_dist, cutoff - 2 * delta - 1e-6)
    last = np.searchsorted(ref_dist, cutoff + 2 * delta + 1e-6)
    start = min(first, pristine)
    kept = select_pairs(pos, edges, shifts, start, last, cut2, out_edges, out_shifts)
    return start, start + kept, delta
