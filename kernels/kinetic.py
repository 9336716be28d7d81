"""Kinetic energy per system, Σ_a |p_a|²/(2 m_a), in plain torch (any device).

(numba kernels used to sit beside this and the Verlet-list pruning; measured on a
Langevin step of 864-atom LJ argon, float32, one thread, they saved 0.5–2 ms of
11.1–14.1 ms (4–14 %, the machine was shared), so they were removed with numba itself.)
"""

from __future__ import annotations

import torch

from mlpot.graph import system_sum


def kinetic_energy(momenta: torch.Tensor, masses: torch.Tensor, system_index: torch.Tensor,
                   num_systems: int) -> torch.Tensor:
    """``[B]`` Σ |p|²/(2m) per system, in amu·Å²/fs² (multiply by MVV2E for eV).

    The squares are summed as (p_x² + p_y²) + p_z² and the atoms in index order (on
    CPU), so a system's value does not depend on its batch-mates.

    Args:
        momenta: ``[N, 3]`` amu·Å/fs.
        masses: ``[N]`` amu (same dtype).
        system_index: ``[N]`` int64 system of each atom, in ``[0, num_systems)``.
        num_systems: B.
    """
    p2 = momenta * momenta
    per_atom = ((p2[:, 0] + p2[:, 1]) + p2[:, 2]) / (masses + masses)
    return system_sum(per_atom, system_index, num_systems)
