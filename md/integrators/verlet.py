"""Velocity Verlet: microcanonical (NVE) dynamics."""

from __future__ import annotations

from dataclasses import dataclass

from mlpot.md.integrators.base import (
    ForcesFn,
    Integrator,
    advance_clock,
    drift,
    kick,
    require_positive,
    update_forces,
)
from mlpot.md.state import MDState


@dataclass(frozen=True)
class VelocityVerlet(Integrator):
    """Velocity Verlet (Swope, Andersen, Berens & Wilson, J. Chem. Phys. 76, 637 (1982)).

    p(t+Δt/2) = p(t) + (Δt/2)·F(t)
    r(t+Δt)   = r(t) + Δt·p(t+Δt/2)/m
    p(t+Δt)   = p(t+Δt/2) + (Δt/2)·F(t+Δt)

    (the B-A-B splitting; symplectic and time reversible). Forces in eV/Å are
    converted to amu·Å/fs² by 1/MVV2E. Runs on a plain :class:`MDState`.

    Args:
        dt: time step, fs.
    """

    dt: float

    def __post_init__(self) -> None:
        require_positive(self, dt="fs")

    def step(self, state: MDState, forces_fn: ForcesFn, compute_stress: bool = False
             ) -> MDState:
        state = drift(kick(state, 0.5 * self.dt), self.dt)
        state = kick(update_forces(state, forces_fn, compute_stress), 0.5 * self.dt)
        return advance_clock(state, self.dt)
