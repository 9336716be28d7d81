"""Conservation layer of :class:`~mlpot.models.TrajCastForecaster`.

Projections applied to a raw forecast (Δx, v') of a batch of systems, per system b
with masses m_i, total mass M and the input velocities v:

* linear momentum: v' ← v' − (Σ m_i v'_i − P_target)/M, with P_target = Σ m_i v_i
  (``momentum="input"``) or 0 (``"zero"``); the smallest change of v' in the
  kinetic-energy metric Σ m_i |δv_i|² that fixes the total momentum exactly;
* centre-of-mass drift: Δx ← Δx − (Σ m_i Δx_i)/M + (P_target/M)·Δt, so the centre of
  mass moves exactly as a free particle with the conserved momentum;
* angular momentum (isolated systems only): with r' = r + Δx, R' the new centre of
  mass, I' the inertia tensor about R' and L' = Σ m_i (r'_i − R') × v'_i,
  v' ← v' − ω × (r' − R'), ω = I'⁻¹ (L' − L_target), L_target = the input's angular
  momentum about its centre of mass (``"input"``) or 0 (``"zero"``). This removes a
  rigid rotation, again the smallest kinetic-energy-metric change; it leaves the
  linear momentum unchanged (Σ m_i ω × (r'_i − R') = 0). Needs a non-singular I'
  (three or more non-collinear atoms).
"""

from __future__ import annotations

import torch

from mlpot.graph import system_sum

MOMENTUM_MODES = ("input", "zero")


def _per_atom(values: torch.Tensor, system_index: torch.Tensor) -> torch.Tensor:
    return values.index_select(0, system_index)


def centre_of_mass(
    positions: torch.Tensor, masses: torch.Tensor, system_index: torch.Tensor, num_systems: int
) -> torch.Tensor:
    """``[B, 3]`` mass-weighted mean of ``positions`` ``[N, 3]``."""
    total_m = system_sum(masses, system_index, num_systems)
    return system_sum(masses[:, None] * positions, system_index, num_systems) / total_m[:, None]


def angular_momentum(
    positions: torch.Tensor,
    velocities: torch.Tensor,
    masses: torch.Tensor,
    system_index: torch.Tensor,
    num_systems: int,
) -> torch.Tensor:
    """``[B, 3]`` Σ m_i (r_i − R) × (v_i − V) about each system's centre of mass (amu·Å²/fs)."""
    com = centre_of_mass(positions, masses, system_index, num_systems)
    vcom = centre_of_mass(velocities, masses, system_index, num_systems)
    rel = positions - _per_atom(com, system_index)
    vrel = velocities - _per_atom(vcom, system_index)
    return system_sum(masses[:, None] * torch.linalg.cross(rel, vrel), system_index, num_systems)


def fix_linear_momentum(
    displacement: torch.Tensor,
    new_velocities: torch.Tensor,
    velocities: torch.Tensor,
    masses: torch.Tensor,
    system_index: torch.Tensor,
    num_systems: int,
    dt: float,
    mode: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact total momentum of ``new_velocities`` and centre-of-mass motion of
    ``displacement`` (see the module docstring). Shapes ``[N, 3]``; dt in fs."""
    if mode not in MOMENTUM_MODES:
        raise ValueError(f"momentum must be one of {MOMENTUM_MODES}, got {mode!r}")
    total_m = system_sum(masses, system_index, num_systems)[:, None]
    if mode == "input":
        v_target = system_sum(masses[:, None] * velocities, system_index, num_systems) / total_m
    else:
        v_target = torch.zeros_like(total_m.expand(-1, 3))
    v_com = system_sum(masses[:, None] * new_velocities, system_index, num_systems) / total_m
    dx_com = system_sum(masses[:, None] * displacement, system_index, num_systems) / total_m
    new_velocities = new_velocities - _per_atom(v_com - v_target, system_index)
    displacement = displacement - _per_atom(dx_com - v_target * dt, system_index)
    return displacement, new_velocities


def fix_angular_momentum(
    positions: torch.Tensor,
    displacement: torch.Tensor,
    new_velocities: torch.Tensor,
    velocities: torch.Tensor,
    masses: torch.Tensor,
    system_index: torch.Tensor,
    num_systems: int,
    mode: str,
) -> torch.Tensor:
    """``new_velocities`` ``[N, 3]`` with the angular momentum about the new centre of
    mass set to the target (see the module docstring). Apply after
    :func:`fix_linear_momentum`."""
    target = (
        angular_momentum(positions, velocities, masses, system_index, num_systems)
        if mode == "input"
        else torch.zeros(num_systems, 3, dtype=positions.dtype, device=positions.device)
    )
    new_positions = positions + displacement
    com = centre_of_mass(new_positions, masses, system_index, num_systems)
    rel = new_positions - _per_atom(com, system_index)
    current = angular_momentum(new_positions, new_velocities, masses, system_index, num_systems)
    r2 = (rel * rel).sum(-1)
    eye = torch.eye(3, dtype=rel.dtype, device=rel.device)
    per_atom_inertia = masses[:, None, None] * (
        r2[:, None, None] * eye - rel[:, :, None] * rel[:, None, :]
    )
    inertia = system_sum(per_atom_inertia, system_index, num_systems)
    omega = torch.linalg.solve(inertia, (current - target)[:, :, None])[:, :, 0]
    return new_velocities - torch.linalg.cross(_per_atom(omega, system_index), rel)
