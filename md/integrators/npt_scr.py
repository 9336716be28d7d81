"""NPT with stochastic cell rescaling (isotropic, anisotropic or full cell) + CSVR."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlpot.md.integrators.base import (
    ForcesFn,
    Integrator,
    advance_clock,
    drift,
    kick,
    per_system,
    require_positive,
    update_forces,
    zeros_per_system,
)
from mlpot.md.integrators.csvr import CSVRState, csvr_thermostat
from mlpot.md.noise import normals_per_system
from mlpot.md.state import MDState, extend_state
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


@dataclass(frozen=True, kw_only=True)
class NPTState(CSVRState):
    """:class:`CSVRState` plus the barostat's bookkeeping.

    Attributes:
        barostat_work: ``[B]`` enthalpy E_pot + K + P₀V the cell steps have added, eV.
    """

    barostat_work: torch.Tensor


BAROSTAT_STREAM = 3


@dataclass(frozen=True)
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

    Effective energy (Bernetti & Bussi 2020, Sec. II): H̃ = E_pot + K + P₀V − W_T − W_S
    is conserved up to the integration error, W_T being the energy the thermostat
    added and W_S the enthalpy change of the S steps: per step
    ΔH_S = ΔK_S + P₀ΔV + ΔU_S, with ΔU_S = ½ (V σ + V' σ') : dε (trapezoid rule with
    the stress before and after the deformation, exact to second order in dε, which
    matters because the noise makes dε² of order Δt).

    Args:
        dt: time step, fs.
        temperature: K (scalar or one per system).
        pressure: target P₀, eV/Å³ (use ``pressure_gpa`` for GPa).
        tau_t: thermostat time constant, fs.
        tau_p: barostat time constant, fs.
        compressibility: β_T, Å³/eV (default 0.5 GPa⁻¹); only sets the relaxation speed.
        cell_mode: "isotropic", "anisotropic" (orthorhombic) or "full".
    """

    dt: float
    temperature: float | torch.Tensor
    pressure: float | torch.Tensor = 0.0
    tau_t: float = 100.0
    tau_p: float = 1000.0
    compressibility: float = 0.5 / GPA
    cell_mode: str = "isotropic"
    state_type = NPTState

    def __post_init__(self) -> None:
        require_positive(self, dt="fs", tau_t="fs", tau_p="fs", compressibility="Å³/eV")
        if self.cell_mode not in CELL_MODES:
            raise ValueError(f"cell_mode must be one of {CELL_MODES}, got {self.cell_mode!r}")

    def init(self, state: MDState) -> NPTState:
        if isinstance(state, NPTState):
            return state
        zeros = zeros_per_system(state)
        return extend_state(state, NPTState, thermostat_work=zeros, barostat_work=zeros)

    def _strain(self, state: NPTState, dt: float) -> torch.Tensor:
        """``[B, 3, 3]`` symmetric strain increment dε for one barostat step."""
        kT = KB * per_system(self.temperature, state)
        P0 = per_system(self.pressure, state)
        V = state.volume()
        P = state.pressure_tensor()
        beta, dtype = self.compressibility, P.dtype
        if self.cell_mode == "isotropic":
            R = normals_per_system(state.seeds, state.step, BAROSTAT_STREAM, 1, dtype)[:, 0]
            drive = P0 - torch.diagonal(P, dim1=1, dim2=2).mean(1) - kT / V
            noise = torch.sqrt(2 * kT * beta * dt / (V * self.tau_p))
            de = -(beta / self.tau_p) * drive * dt + noise * R
            return torch.diag_embed((de / 3)[:, None].expand(-1, 3))
        beta = beta / 3
        amp = torch.sqrt(2 * kT * beta * dt / (V * self.tau_p))[:, None, None]
        R = normals_per_system(state.seeds, state.step, BAROSTAT_STREAM, 9, dtype).view(-1, 3, 3)
        eye = torch.eye(3, dtype=dtype, device=P.device)
        diag_drive = (P0 - kT / V)[:, None, None] * eye - P * eye
        de = -(beta / self.tau_p) * diag_drive * dt + amp * R * eye
        if self.cell_mode == "full":
            upper = torch.triu(torch.ones(3, 3, dtype=dtype, device=P.device), diagonal=1)
            shear = (2 * beta / self.tau_p) * P * dt + amp * R
            de = de + shear * upper + (shear * upper).transpose(1, 2)
        return de

    def barostat(self, state: NPTState, dt: float
                 ) -> tuple[NPTState, torch.Tensor, torch.Tensor]:
        """S(dt): deform the cells, scale positions and momenta. Returns the new state
        (its K and P₀V changes booked), dε ``[B, 3, 3]`` and V σ : dε ``[B]`` (eV) of
        the stress before the deformation."""
        if state.stress is None:
            raise ValueError("NPT needs the stress of the state it starts from: evaluate "
                             "it with ForceField.evaluate(state, compute_stress=True)")
        if not bool(state.graph.pbc.all()):
            raise ValueError("NPT needs cells periodic in all three directions")
        de = self._strain(state, dt)
        mu, mu_inv = expm_small(de), expm_small(-de)
        idx = state.system_index
        positions = (state.positions[:, :, None] * mu[idx]).sum(1)
        momenta = (state.momenta[:, :, None] * mu_inv[idx]).sum(1)
        new = state.with_positions(positions, matmul3(state.cell, mu)).replace(momenta=momenta)
        P0 = per_system(self.pressure, state)
        dH = new.kinetic_energy() - state.kinetic_energy() + P0 * (new.volume() - state.volume())
        virial = state.volume() * (state.stress * de).sum((1, 2))
        return new.replace(barostat_work=state.barostat_work + dH), de, virial

    def thermostat(self, state: NPTState, stream: int) -> NPTState:
        """T(Δt/2): CSVR rescaling with its energy booked."""
        return csvr_thermostat(state, per_system(self.temperature, state), self.tau_t,
                               0.5 * self.dt, stream)

    def step(self, state: MDState, forces_fn: ForcesFn, compute_stress: bool = True
             ) -> NPTState:
        state, half = self.init(state), 0.5 * self.dt
        state = drift(kick(self.thermostat(state, stream=1), half), self.dt)
        state, de, virial = self.barostat(state, self.dt)
        state = update_forces(state, forces_fn, True)
        assert state.stress is not None  # asked for above
        virial = 0.5 * (virial + state.volume() * (state.stress * de).sum((1, 2)))
        state = state.replace(barostat_work=state.barostat_work + virial)
        return advance_clock(self.thermostat(kick(state, half), stream=2), self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor:
        state = self.init(state)
        return (per_system(self.pressure, state) * state.volume() - state.thermostat_work
                - state.barostat_work)
