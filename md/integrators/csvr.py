"""Canonical sampling through velocity rescaling (CSVR, Bussi thermostat), NVT."""

from __future__ import annotations

import math

import torch

from mlpot.md.integrators.base import (
    ForcesFn,
    Integrator,
    advance_clock,
    drift,
    kick,
    per_system,
    update_forces,
)
from mlpot.md.state import MDState
from mlpot.md.units import KB


def csvr_rescale(state: MDState, temperature: torch.Tensor, tau: float, dt: float
                 ) -> tuple[MDState, torch.Tensor]:
    """Exact CSVR propagation of the kinetic energy over ``dt``; returns (state, ΔK [B] eV).

    With c = exp(−Δt/τ), K̄ = N_f k_B T / 2, R₁ ~ N(0,1) and S ~ χ²(N_f − 1):
    K' = c K + (1 − c) K̄ (R₁² + S)/N_f + 2 R₁ sqrt(c (1 − c) K K̄ / N_f),
    momenta scaled by α = sqrt(K'/K) with the sign of R₁ + sqrt(c N_f K/((1−c) K̄))
    (Bussi, Donadio & Parrinello, J. Chem. Phys. 126, 014101 (2007), appendix).
    χ² is drawn as a sum of squared normals from each system's own generator.
    """
    K = state.kinetic_energy()
    nf = state.degrees_of_freedom()
    kbar = 0.5 * nf * KB * temperature
    c = math.exp(-dt / tau)
    draws = [torch.randn(int(n), generator=g, dtype=K.dtype, device=K.device)
             for n, g in zip(nf.tolist(), state.generators, strict=True)]
    r1 = torch.stack([d[0] for d in draws])
    s = torch.stack([(d[1:] ** 2).sum() for d in draws])
    safe_K = torch.where(K > 0, K, torch.ones_like(K))
    k_new = (c * K + (1 - c) * kbar * (r1 * r1 + s) / nf
             + 2 * r1 * torch.sqrt(c * (1 - c) * K * kbar / nf))
    alpha = torch.sqrt(torch.clamp(k_new, min=0) / safe_K)
    sign = torch.sign(r1 + torch.sqrt(c * nf * K / ((1 - c) * kbar)))
    alpha = torch.where((K > 0) & (kbar > 0), alpha * torch.where(sign == 0, 1, sign),
                        torch.ones_like(alpha))
    new = state.replace(momenta=state.momenta * alpha[state.system_index, None])
    return new, new.kinetic_energy() - K


class CSVRThermostat:
    """The CSVR rescaling step with its energy bookkeeping, shared by CSVR and NPT.

    Args:
        temperature: target, K (scalar or one per system).
        tau: time constant, fs.

    Attributes:
        injected: ``[B]`` energy the thermostat has added so far, eV (None before use).
    """

    def __init__(self, temperature: float | torch.Tensor, tau: float) -> None:
        if not tau > 0:
            raise ValueError(f"thermostat time constant must be positive, got {tau} fs")
        self.temperature, self.tau = temperature, float(tau)
        self.injected: torch.Tensor | None = None

    def __call__(self, state: MDState, dt: float) -> MDState:
        """T(dt): rescale the momenta exactly (:func:`csvr_rescale`), book the energy."""
        state, dK = csvr_rescale(state, per_system(self.temperature, state), self.tau, dt)
        self.injected = dK if self.injected is None else self.injected + dK
        return state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.injected is None else {"injected": self.injected}

    def load_state_dict(self, values: dict[str, torch.Tensor]) -> None:
        self.injected = values.get("injected")


class CSVR(Integrator):
    """Velocity Verlet with the stochastic velocity-rescaling thermostat of
    Bussi, Donadio & Parrinello, J. Chem. Phys. 126, 014101 (2007).

    The kinetic energy obeys dK = (K̄ − K) dt/τ + 2 sqrt(K K̄/(N_f τ)) dW, which
    leaves the canonical distribution invariant. Splitting:
    T(Δt/2) B(Δt/2) A(Δt) B(Δt/2) T(Δt/2), T being the exact rescaling of
    :func:`csvr_rescale`. The conserved quantity is E_pot + E_kin minus the
    energy the thermostat injected.

    Args:
        dt: time step, fs.
        temperature: target, K (scalar or one per system).
        tau: thermostat time constant, fs (default 100).
    """

    def __init__(self, dt: float, temperature: float | torch.Tensor, tau: float = 100.0
                 ) -> None:
        if not dt > 0:
            raise ValueError(f"time step must be positive, got {dt} fs")
        self.dt = float(dt)
        self.thermostat = CSVRThermostat(temperature, tau)

    def step(self, state: MDState, forces_fn: ForcesFn) -> MDState:
        half = 0.5 * self.dt
        state = drift(kick(self.thermostat(state, half), half), self.dt)
        state = kick(update_forces(state, forces_fn), half)
        return advance_clock(self.thermostat(state, half), self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor | float:
        injected = self.thermostat.injected
        return 0.0 if injected is None else -injected

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.thermostat.state_dict()

    def load_state_dict(self, values: dict[str, torch.Tensor]) -> None:
        self.thermostat.load_state_dict(values)
