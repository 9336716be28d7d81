"""NPT with stochastic cell rescaling (isotropic, anisotropic or full cell) + CSVR."""

from __future__ import annotations

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
from mlpot.md.integrators.csvr import CSVRThermostat
from mlpot.md.state import MDState
from mlpot.md.units import GPA, KB

CELL_MODES = ("isotropic", "anisotropic", "full")


def matmul3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3] @ [..., 3, 3]`` as an elementwise sum, so every matrix of a batch is
    computed exactly as it would be alone (batched GEMM kernels may round differently)."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def expm_small(a: torch.Tensor, squarings: int = 4, order: int = 12) -> torch.Tensor:
    """exp of ``[B, 3, 3]`` matrices with small norm (barostat strain increments).

    Scaling and squaring with a fixed Taylor order, every matrix treated alike
    (``torch.linalg.matrix_exp`` picks its algorithm from the whole batch's norms,
    which would make a system's trajectory depend on its batch-mates).
    """
    x = a / 2**squarings
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(a)
    term, total = eye, eye.clone()
    for k in range(1, order + 1):
        term = matmul3(term, x) / k
        total = total + term
    for _ in range(squarings):
        total = matmul3(total, total)
    return total


class NPTStochasticCellRescaling(Integrator):
    """Isothermal–isobaric dynamics: stochastic cell rescaling (Bernetti & Bussi,
    J. Chem. Phys. 153, 114107 (2020); anisotropic variants as in Del Tatto, Raiteri,
    Bernetti & Bussi, Appl. Sci. 12, 1139 (2022)) with the CSVR thermostat
    (Bussi, Donadio & Parrinello 2007) on the particles. (The deterministic alternative,
    the MTK barostat of Martyna, Tobias & Klein, J. Chem. Phys. 101, 4177 (1994), is
    not implemented: SCR samples the same ensemble with a first-order, noise-driven
    cell equation that needs no barostat mass.)

    Isotropic, for ε = ln V (first-order, overdamped barostat):
    dε = −(β_T/τ_p)(P₀ − P_int − k_BT/V) dt + sqrt(2 k_BT β_T/(V τ_p)) dW,
    positions and cell scaled by exp(dε/3), momenta by exp(−dε/3);
    P_int = (Σ p²/m)/(3V) − tr σ/3 is the instantaneous pressure.
    ``anisotropic`` applies the same law to each ln L_a with P_int,aa (and β_T/3,
    so the volume relaxes as in the isotropic case); ``full`` adds the shear strains,
    dε_ab = (2β_T/3τ_p) P_int,ab dt + sqrt(2 k_BT β_T/(3 V τ_p)) dW_ab (a < b).
    Deformations act as cell ← cell·exp(dε), r ← r·exp(dε), p ← p·exp(−dε).
    Splitting: T(Δt/2) B(Δt/2) A(Δt) S(Δt) B(Δt/2) T(Δt/2), with T the CSVR step and
    S the cell step (which uses the stress of the step's start, one step old), applied
    before the new forces are computed so forces always match the positions.

    Args:
        dt: time step, fs.
        temperature: K (scalar or one per system).
        pressure: target P₀, eV/Å³ (use ``pressure_gpa`` for GPa).
        tau_t: thermostat time constant, fs.
        tau_p: barostat time constant, fs.
        compressibility: β_T, Å³/eV (default 0.5 GPa⁻¹); only sets the relaxation speed.
        cell_mode: "isotropic", "anisotropic" (orthorhombic) or "full".
    """

    def __init__(self, dt: float, temperature: float | torch.Tensor, pressure: float = 0.0,
                 tau_t: float = 100.0, tau_p: float = 1000.0,
                 compressibility: float = 0.5 / GPA, cell_mode: str = "isotropic") -> None:
        if not dt > 0:
            raise ValueError(f"time step must be positive, got {dt} fs")
        if not (tau_t > 0 and tau_p > 0 and compressibility > 0):
            raise ValueError("tau_t, tau_p and compressibility must be positive")
        if cell_mode not in CELL_MODES:
            raise ValueError(f"cell_mode must be one of {CELL_MODES}, got {cell_mode!r}")
        self.dt, self.temperature, self.pressure = float(dt), temperature, pressure
        self.tau_t, self.tau_p = float(tau_t), float(tau_p)
        self.compressibility, self.cell_mode = float(compressibility), cell_mode
        self.thermostat = CSVRThermostat(temperature, tau_t)

    def _strain(self, state: MDState, dt: float) -> torch.Tensor:
        """``[B, 3, 3]`` symmetric strain increment dε for one barostat step."""
        kT = KB * per_system(self.temperature, state)
        P0 = per_system(self.pressure, state)
        V = state.volume()
        P = state.pressure_tensor()
        if self.cell_mode == "isotropic":
            drive = P0 - torch.diagonal(P, dim1=1, dim2=2).mean(1) - kT / V
            noise = torch.sqrt(2 * kT * self.compressibility * dt / (V * self.tau_p))
            de = -(self.compressibility / self.tau_p) * drive * dt \
                + noise * state.normal_per_system()
            return torch.diag_embed((de / 3)[:, None].expand(-1, 3))
        beta = self.compressibility / 3
        amp = torch.sqrt(2 * kT * beta * dt / (V * self.tau_p))[:, None, None]
        R = state.normal_per_system((3, 3))
        eye = torch.eye(3, dtype=P.dtype, device=P.device)
        diag_drive = (P0 - kT / V)[:, None, None] * eye - P * eye
        de = -(beta / self.tau_p) * diag_drive * dt + amp * R * eye
        if self.cell_mode == "full":
            upper = torch.triu(torch.ones(3, 3, dtype=P.dtype, device=P.device), diagonal=1)
            shear = (2 * beta / self.tau_p) * P * dt + amp * R
            de = de + shear * upper + (shear * upper).transpose(1, 2)
        return de

    def barostat(self, state: MDState, dt: float) -> MDState:
        """S(dt): deform the cells, scale positions and momenta."""
        if state.stress is None:
            raise ValueError("NPT needs the stress: use ForceField(model, compute_stress=True)")
        if not bool(state.graph.pbc.all()):
            raise ValueError("NPT needs cells periodic in all three directions")
        de = self._strain(state, dt)
        mu, mu_inv = expm_small(de), expm_small(-de)
        idx = state.system_index
        positions = (state.positions[:, :, None] * mu[idx]).sum(1)
        momenta = (state.momenta[:, :, None] * mu_inv[idx]).sum(1)
        return state.with_positions(positions, matmul3(state.cell, mu)).replace(momenta=momenta)

    def step(self, state: MDState, forces_fn: ForcesFn) -> MDState:
        half = 0.5 * self.dt
        state = drift(kick(self.thermostat(state, half), half), self.dt)
        state = update_forces(self.barostat(state, self.dt), forces_fn)
        return advance_clock(self.thermostat(kick(state, half), half), self.dt)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.thermostat.state_dict()

    def load_state_dict(self, values: dict[str, torch.Tensor]) -> None:
        self.thermostat.load_state_dict(values)

