"""numba kernel behind :mod:`mlpot.kernels.kinetic` (CPU; machine code cached on disk)."""

from __future__ import annotations

import numba


@numba.njit(cache=True)
def kinetic_energy(p, m, system, out):
    """``out[system[a]] += ((p_x² + p_y²) + p_z²) / (m + m)`` over atoms a, in order
    (the reference's operations: row sum left to right, then index_add)."""
    for a in range(p.shape[0]):
        t = (p[a, 0] * p[a, 0] + p[a, 1] * p[a, 1]) + p[a, 2] * p[a, 2]
        out[system[a]] += t / (m[a] + m[a])
