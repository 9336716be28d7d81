"""Batched FIRE relaxation, with an optional cell filter (positions and cell together)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mlpot.graph import system_sum
from mlpot.md.forces import ForceField
from mlpot.md.state import MDState


@dataclass
class RelaxResult:
    """Outcome of a relaxation.

    Attributes:
        state: relaxed systems (energy, forces and, with the cell filter, stress filled).
        converged: ``[B]`` bool, max generalized force below ``fmax``.
        fmax: ``[B]`` final max generalized force, eV/Å.
        steps: FIRE iterations taken.
    """

    state: MDState
    converged: torch.Tensor
    fmax: torch.Tensor
    steps: int


class FIRE:
    """Fast Inertial Relaxation Engine (Bitzek, Koskinen, Gähler, Moseler & Gumbsch,
    Phys. Rev. Lett. 97, 170201 (2006)), every system with its own Δt, α and counter.

    With unit masses, per system: P = F·v; if P > 0, v ← (1 − α) v + α |v| F/|F| and,
    after N_min such steps, Δt ← min(f_inc Δt, Δt_max), α ← f_α α; otherwise v ← 0,
    Δt ← f_dec Δt, α ← α₀. Then v ← v + Δt F, x ← x + Δt v (step length capped
    at ``max_step`` Å per system). Systems that converged stop moving.

    Cell filter: with cell = cell₀·D and r = u·D, the coordinates are (u, c·D),
    c = number of atoms, and the generalized forces are F·Dᵀ and
    −V D⁻ᵀ (σ + P I)/c, so a stationary point has zero forces and σ = −P I.

    Args:
        fmax: convergence threshold on the largest generalized force, eV/Å.
        max_steps: iteration limit.
        cell_filter: relax the cell too (the force field must compute stress).
        pressure: external pressure for the cell filter, eV/Å³.
        dt, dt_max, max_step, n_min, f_inc, f_dec, alpha, f_alpha: FIRE parameters
            (ASE's defaults; Δt in units of Å·(amu/eV)^½).
    """

    def __init__(self, fmax: float = 0.05, max_steps: int = 1000, cell_filter: bool = False,
                 pressure: float = 0.0, dt: float = 0.1, dt_max: float = 1.0,
                 max_step: float = 0.2, n_min: int = 5, f_inc: float = 1.1,
                 f_dec: float = 0.5, alpha: float = 0.1, f_alpha: float = 0.99) -> None:
        if not fmax > 0 or max_steps < 0:
            raise ValueError(f"need fmax > 0 and max_steps >= 0, got {fmax}, {max_steps}")
        self.fmax, self.max_steps, self.cell_filter = float(fmax), int(max_steps), cell_filter
        self.pressure = float(pressure)
        self.dt0, self.dt_max, self.max_step, self.n_min = dt, dt_max, max_step, n_min
        self.f_inc, self.f_dec, self.alpha0, self.f_alpha = f_inc, f_dec, alpha, f_alpha

    def _generalized(self, state: MDState, deform: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates ``[N(+3B), 3]`` and forces in the (filtered) space."""
        if not self.cell_filter:
            return state.positions, state.forces
        inv = torch.linalg.inv(deform)
        idx = state.system_index
        u = torch.einsum("ni,nij->nj", state.positions, inv[idx])
        fu = torch.einsum("ni,nji->nj", state.forces, deform[idx])
        c = state.graph.atoms_per_system.to(u.dtype)[:, None, None]
        eye = torch.eye(3, dtype=u.dtype, device=u.device)
        assert state.stress is not None  # the cell filter evaluates stress
        fc = -state.volume()[:, None, None] * inv.transpose(1, 2) @ (
            state.stress + self.pressure * eye) / c
        return torch.cat([u, (c * deform).reshape(-1, 3)]), torch.cat([fu, fc.reshape(-1, 3)])

    def _apply(self, state: MDState, x: torch.Tensor, cell0: torch.Tensor
               ) -> tuple[MDState, torch.Tensor]:
        if not self.cell_filter:
            return state.with_positions(x), torch.empty(0, device=x.device)
        n = state.num_atoms
        c = state.graph.atoms_per_system.to(x.dtype)[:, None, None]
        deform = x[n:].reshape(-1, 3, 3) / c
        positions = torch.einsum("ni,nij->nj", x[:n], deform[state.system_index])
        return state.with_positions(positions, cell0 @ deform), deform

    def run(self, state: MDState, force_field: ForceField,
            callback: Callable[[int, MDState, torch.Tensor], None] | None = None
            ) -> RelaxResult:
        """Relax every system of ``state``; ``callback(step, state, fmax)`` after each step."""
        if self.cell_filter and not force_field.compute_stress:
            raise ValueError("the cell filter needs ForceField(..., compute_stress=True)")
        B, dtype, dev = state.num_systems, state.positions.dtype, state.positions.device
        cell0 = state.cell.clone()
        deform = torch.eye(3, dtype=dtype, device=dev).repeat(B, 1, 1)
        idx = state.system_index
        if self.cell_filter:
            idx = torch.cat([idx, torch.arange(B, device=dev).repeat_interleave(3)])
        state = force_field.evaluate(state)
        x, f = self._generalized(state, deform)
        v = torch.zeros_like(x)
        dt = torch.full((B,), self.dt0, dtype=dtype, device=dev)
        alpha = torch.full((B,), self.alpha0, dtype=dtype, device=dev)
        n_pos = torch.zeros(B, dtype=torch.int64, device=dev)
        fmax = self._fmax(f, idx, B)
        steps = 0
        while steps < self.max_steps and bool((fmax >= self.fmax).any()):
            active = (fmax >= self.fmax)
            v, dt, alpha, n_pos = self._fire_velocity(v, f, idx, B, dt, alpha, n_pos)
            dx = dt[idx, None] * v
            norm = torch.sqrt(system_sum((dx * dx).sum(1), idx, B))
            scale = torch.where(norm > self.max_step, self.max_step / norm, torch.ones_like(norm))
            dx = dx * (scale * active)[idx, None]
            state, new_deform = self._apply(state, x + dx, cell0)
            deform = new_deform if self.cell_filter else deform
            state = force_field.evaluate(state)
            x, f = self._generalized(state, deform)
            fmax = self._fmax(f, idx, B)
            steps += 1
            if callback is not None:
                callback(steps, state, fmax)
        return RelaxResult(state=state, converged=fmax < self.fmax, fmax=fmax, steps=steps)

    @staticmethod
    def _fmax(f: torch.Tensor, idx: torch.Tensor, B: int) -> torch.Tensor:
        out = torch.zeros(B, dtype=f.dtype, device=f.device)
        return out.scatter_reduce(0, idx, f.norm(dim=1), "amax")

    def _fire_velocity(self, v, f, idx, B, dt, alpha, n_pos):
        """FIRE mixing and Δt/α adaptation, then the Euler velocity update."""
        power = system_sum((f * v).sum(1), idx, B)
        f_norm = torch.sqrt(system_sum((f * f).sum(1), idx, B))
        v_norm = torch.sqrt(system_sum((v * v).sum(1), idx, B))
        uphill = power <= 0
        ratio = torch.where(f_norm > 0, v_norm / f_norm, torch.zeros_like(f_norm))
        mixed = (1 - alpha)[idx, None] * v + (alpha * ratio)[idx, None] * f
        v = torch.where(uphill[idx, None], torch.zeros_like(v), mixed)
        grow = (~uphill) & (n_pos > self.n_min)
        dt = torch.where(uphill, dt * self.f_dec,
                         torch.where(grow, torch.clamp(dt * self.f_inc, max=self.dt_max), dt))
        alpha = torch.where(uphill, torch.full_like(alpha, self.alpha0),
                            torch.where(grow, alpha * self.f_alpha, alpha))
        n_pos = torch.where(uphill, torch.zeros_like(n_pos), n_pos + 1)
        v = v + dt[idx, None] * f
        return v, dt, alpha, n_pos
