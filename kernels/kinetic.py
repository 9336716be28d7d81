"""Kinetic energy per system, Σ_a |p_a|²/(2 m_a) (pure-torch reference + numba CPU kernel).

The MD loop asks for it at every check and log row, and the CSVR, Nosé–Hoover and
Langevin thermostats at every step. In eager torch it is six passes (square, row sum,
2m, divide, zeros, index_add); the numba kernel is one pass with the same float
operations in the same order, so the two agree bit for bit. ``backend`` is resolved
as for :mod:`mlpot.kernels.pair_select`.
"""

from __future__ import annotations

import functools

import torch

from mlpot.kernels.pair_select import resolve_backend


def kinetic_energy(momenta: torch.Tensor, masses: torch.Tensor, system_index: torch.Tensor,
                   num_systems: int, backend: str = "auto") -> torch.Tensor:
    """``[B]`` Σ |p|²/(2m) per system, in amu·Å²/fs² (multiply by MVV2E for eV).

    Args:
        momenta: ``[N, 3]`` amu·Å/fs.
        masses: ``[N]`` amu (same dtype).
        system_index: ``[N]`` int64 system of each atom, in ``[0, num_systems)``.
        num_systems: B.
        backend: ``"auto" | "numba" | "torch"``.
    """
    if resolve_backend(backend, momenta.device) == "numba" and not momenta.requires_grad:
        out = torch.zeros(num_systems, dtype=momenta.dtype)
        _numba_kernel()(momenta.numpy(), masses.numpy(), system_index.numpy(), out.numpy())
        return out
    return kinetic_energy_reference(momenta, masses, system_index, num_systems)


def kinetic_energy_reference(momenta: torch.Tensor, masses: torch.Tensor,
                             system_index: torch.Tensor, num_systems: int) -> torch.Tensor:
    """Pure-torch :func:`kinetic_energy` (any device, differentiable)."""
    per_atom = (momenta**2).sum(1) / (2 * masses)
    out = torch.zeros(num_systems, dtype=per_atom.dtype, device=per_atom.device)
    return out.index_add(0, system_index, per_atom)


@functools.cache
def _numba_kernel():
    from mlpot.kernels import kinetic_numba

    return kinetic_numba.kinetic_energy
