"""`TrajCastForecaster`: positions + velocities → displacement and new velocities.

An autoregressive equivariant forecaster after Thiemann et al., "Force-free molecular
dynamics through autoregressive equivariant networks" (TrajCast, 2025): one network
evaluation replaces a force evaluation and an integrator step over a fixed forecast
interval Δt (several MD steps). It is not a :class:`~mlpot.models.Potential`: it has
no energy. The MD engine uses it through :class:`mlpot.md.rollout.ForecastStep`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from ase.data import atomic_masses, chemical_symbols
from torch import nn

from mlpot.graph import AtomicGraph
from mlpot.models.base import species_to_numbers
from mlpot.models.equivariant_layers import EdgeFeatures, EquivariantLayer
from mlpot.models.trajcast_conservation import (
    MOMENTUM_MODES,
    fix_angular_momentum,
    fix_linear_momentum,
)
from mlpot.neighbors import with_neighbors


class Forecast(NamedTuple):
    """What a forecaster predicts for each atom over one forecast interval.

    Attributes:
        displacement: ``[N, 3]`` Δx = x(t + Δt) − x(t), Å.
        velocities: ``[N, 3]`` v(t + Δt), Å/fs.
    """

    displacement: torch.Tensor
    velocities: torch.Tensor


@dataclass(frozen=True)
class TrajCastForecasterConfig:
    """Hyper-parameters of :class:`TrajCastForecaster` (= its constructor arguments).

    Attributes:
        species: atomic numbers the model accepts.
        forecast_fs: Δt, the forecast interval, fs.
        cutoff: r_c of the edges, Å.
        channels: C, feature channels per (l, m).
        lmax: highest spherical-harmonic degree of edges and neighbour densities.
        correlation: body order − 1 of each node update.
        num_layers: message-passing layers (≥ 1).
        num_knots: cubic B-spline radial basis functions.
        speed_basis: Gaussian basis functions of |v|/v_rms (on [0, 4]).
        backend: "cg" (exact Clebsch–Gordan products) or "grid" (with ``self_mlp`` the
            grid MLP aliases; "cg" is exactly equivariant).
        self_mlp: the layers' gated (cg) / grid (grid) self-connection MLP.
        avg_num_neighbors: normalisation of the neighbour density.
        momentum: "input" (total momentum of v(t+Δt) = that of v(t)) or "zero".
        angular_momentum: also conserve the angular momentum (isolated systems only).
        residual: predict the departure from free flight, Δx = v·Δt + σ_x·Δx̃ and
            v(t+Δt) = v + σ_v·ṽ (σ: RMS of those residuals in training); otherwise
            Δx = σ_x·Δx̃, v(t+Δt) = σ_v·ṽ (σ: RMS of Δx and v).
        input_velocity_rms: σ_in, Å/fs, the scale of the input velocities in the
            speed embedding (``mlpot train`` sets the training data's RMS velocity
            component). None: the output scale ``velocity_rms``, as the first shipped
            forecasters did; with ``residual`` that is the RMS of v' − v, several
            times smaller than thermal speeds, which then fall beyond the speed basis.
    """

    species: tuple[int, ...]
    forecast_fs: float = 10.0
    cutoff: float = 5.0
    channels: int = 32
    lmax: int = 2
    correlation: int = 2
    num_layers: int = 2
    num_knots: int = 8
    speed_basis: int = 8
    backend: str = "cg"
    self_mlp: bool = True
    avg_num_neighbors: float = 12.0
    momentum: str = "input"
    angular_momentum: bool = False
    residual: bool = True
    input_velocity_rms: float | None = None


class TrajCastForecaster(nn.Module):
    """Equivariant forecaster of Δx and v(t + Δt) for a fixed interval Δt.

    Inputs per atom: species; per edge (r_ij within the cutoff, periodic images
    through ``graph.shifts``) the cubic-spline radial basis and the spherical harmonics
    of r̂_ij (the same :class:`~mlpot.models.equivariant_layers.EdgeFeatures` as
    :class:`~mlpot.models.EquivariantPotential`); the velocity as u = |v|/v_rms through
    a Gaussian basis g(u) (v_rms: ``input_velocity_rms``): scalars h⁰ = E(Z) + W₀ g(u) and vectors
    h¹_m,c = √3 (v/v_rms)_m (W₁ g(u))_c = Y¹_m(v̂)·u·(W₁ g(u))_c (smooth at v = 0).
    ``num_layers`` :class:`~mlpot.models.equivariant_layers.EquivariantLayer` s keep
    l ≤ 1 features; the l = 1 block of the last one is mixed linearly into two
    vectors, the normalised Δx̃ and ṽ, scaled by the training RMS (buffers
    ``displacement_rms`` Å and ``velocity_rms`` Å/fs, set by the trainer with
    :meth:`set_output_scales`), by default as departures from free flight
    (``residual``: Δx = v·Δt + σ_x Δx̃, v' = v + σ_v ṽ; over a forecast interval much
    shorter than the velocity decorrelation time free flight is already close, measured
    on liquid argon at Δt = 20 fs: normalised velocity MSE 0.025 of the v RMS², so the
    network learns only the force-driven part). The conservation layer
    (:mod:`mlpot.models.trajcast_conservation`) then fixes the total momentum exactly,
    removes the centre-of-mass drift of Δx and, with ``angular_momentum``, fixes the
    angular momentum of isolated systems. Masses are ASE's standard atomic masses
    unless :meth:`forward` is given the state's masses.

    Every part is E(3)-equivariant (natural parity, vectors are l = 1 odd) and
    permutation-equivariant, so rotating, reflecting, translating or permuting the
    input transforms the forecast the same way (tested at 1e-10 in float64).
    """

    species_numbers: torch.Tensor
    species_lookup: torch.Tensor
    displacement_rms: torch.Tensor
    velocity_rms: torch.Tensor
    config: TrajCastForecasterConfig

    def __init__(
        self,
        species: Sequence[int | str],
        forecast_fs: float = 10.0,
        cutoff: float = 5.0,
        channels: int = 32,
        lmax: int = 2,
        correlation: int = 2,
        num_layers: int = 2,
        num_knots: int = 8,
        speed_basis: int = 8,
        backend: str = "cg",
        self_mlp: bool = True,
        avg_num_neighbors: float = 12.0,
        momentum: str = "input",
        angular_momentum: bool = False,
        residual: bool = True,
        input_velocity_rms: float | None = None,
    ) -> None:
        super().__init__()
        numbers = species_to_numbers(species)
        _validate(forecast_fs, cutoff, channels, lmax, num_layers, speed_basis, momentum)
        if input_velocity_rms is not None and not input_velocity_rms > 0:
            raise ValueError(f"input_velocity_rms must be positive, got {input_velocity_rms}")
        self.config = TrajCastForecasterConfig(
            species=tuple(numbers),
            forecast_fs=float(forecast_fs),
            cutoff=float(cutoff),
            channels=int(channels),
            lmax=int(lmax),
            correlation=int(correlation),
            num_layers=int(num_layers),
            num_knots=int(num_knots),
            speed_basis=int(speed_basis),
            backend=backend,
            self_mlp=bool(self_mlp),
            avg_num_neighbors=float(avg_num_neighbors),
            momentum=momentum,
            angular_momentum=bool(angular_momentum),
            residual=bool(residual),
            input_velocity_rms=None if input_velocity_rms is None else float(input_velocity_rms),
        )
        self.cutoff = float(cutoff)
        lookup = torch.full((len(chemical_symbols),), -1, dtype=torch.int64)
        lookup[torch.tensor(numbers)] = torch.arange(len(numbers))
        self.register_buffer("species_numbers", torch.tensor(numbers, dtype=torch.int64))
        self.register_buffer("species_lookup", lookup)
        self.register_buffer("displacement_rms", torch.tensor(1.0))
        self.register_buffer("velocity_rms", torch.tensor(1.0))
        c, k = channels, speed_basis
        self.species_embedding = nn.Parameter(torch.randn(len(numbers), c))
        self.speed_scalars = nn.Parameter(torch.randn(k, c) / math.sqrt(k))
        self.speed_vectors = nn.Parameter(torch.randn(k, c) / math.sqrt(k))
        self.layers = nn.ModuleList(
            EquivariantLayer(
                len(numbers),
                c,
                lmax,
                1,
                correlation,
                num_knots,
                self.cutoff,
                lmax_in=1,
                backend=backend,
                self_mlp=self_mlp,
                avg_num_neighbors=avg_num_neighbors,
            )
            for _ in range(num_layers)
        )
        self.readout = nn.Parameter(torch.randn(c, 2) / math.sqrt(c))

    @property
    def forecast_fs(self) -> float:
        """Δt, fs."""
        return self.config.forecast_fs

    @property
    def species(self) -> list[str]:
        """Element symbols of the model, sorted by atomic number."""
        return [chemical_symbols[int(z)] for z in self.species_numbers]

    @property
    def dtype(self) -> torch.dtype:
        return self.velocity_rms.dtype

    def set_output_scales(self, displacement_rms: float, velocity_rms: float) -> None:
        """Store the training RMS of Δx (Å) and of v (Å/fs) (both > 0)."""
        if not (displacement_rms > 0 and velocity_rms > 0):
            raise ValueError(f"RMS scales must be positive, got {displacement_rms}, {velocity_rms}")
        self.displacement_rms.fill_(float(displacement_rms))
        self.velocity_rms.fill_(float(velocity_rms))

    def species_index(self, graph: AtomicGraph) -> torch.Tensor:
        """``[N]`` species index of every atom; unknown elements raise ``ValueError``."""
        z = graph.atomic_numbers.clamp(0, len(chemical_symbols) - 1)
        idx = self.species_lookup[z]
        if bool((idx < 0).any()):
            n = int((idx < 0).nonzero()[0, 0])
            raise ValueError(
                f"element {chemical_symbols[int(z[n])]} (atom {n}, system "
                f"{int(graph.system_index[n])}) is not supported by this forecaster; "
                f"it knows {self.species}"
            )
        return idx

    def masses(self, graph: AtomicGraph) -> torch.Tensor:
        """``[N]`` ASE standard masses of the atoms, amu (from float64 ``ase.data``)."""
        table = torch.as_tensor(atomic_masses, dtype=self.dtype, device=graph.device)
        return table[graph.atomic_numbers]

    def forward(self, graph: AtomicGraph, masses: torch.Tensor | None = None) -> Forecast:
        """Forecast of ``graph`` (with ``velocities``; edges are built when missing).

        Args:
            graph: batch with ``velocities [N, 3]`` Å/fs; ``edge_index``/``shifts``
                within the cutoff, or none.
            masses: ``[N]`` amu for the conservation layer (default: ASE's).
        """
        species = self.species_index(graph)
        v = _checked_velocities(graph)
        if graph.positions.dtype != self.dtype:
            raise ValueError(
                f"the graph is {graph.positions.dtype}, the forecaster "
                f"{self.dtype}; convert one (e.g. model.to({graph.positions.dtype}))"
            )
        if self.config.angular_momentum and bool(graph.pbc.any()):
            b = int(graph.pbc.any(1).nonzero()[0, 0])
            raise ValueError(
                f"system {b} is periodic: angular momentum is conserved only "
                "for isolated systems (build the forecaster with "
                "angular_momentum=False)"
            )
        if graph.edge_index is None:
            graph = with_neighbors(graph, self.cutoff)
        assert graph.edge_index is not None and graph.shifts is not None  # built above
        i, j = graph.edge_index
        edge_vectors = graph.positions[j] - graph.positions[i] + graph.shifts
        raw = self._raw(graph, species, v, edge_vectors)
        masses = self.masses(graph) if masses is None else masses
        return self._conserve(graph, raw, v, masses)

    def _raw(
        self, graph: AtomicGraph, species: torch.Tensor, v: torch.Tensor, edge_vectors: torch.Tensor
    ) -> Forecast:
        """Network output before the conservation layer (physical units)."""
        c = self.config
        v_norm = v / (self.velocity_rms if c.input_velocity_rms is None else c.input_velocity_rms)
        speed = torch.linalg.vector_norm(v_norm, dim=-1)
        centres = torch.linspace(0.0, 4.0, c.speed_basis, dtype=v.dtype, device=v.device)
        width = 4.0 / (c.speed_basis - 1)
        basis = torch.exp(-0.5 * ((speed[:, None] - centres) / width) ** 2)
        scalars = self.species_embedding[species] + basis @ self.speed_scalars
        vectors = math.sqrt(3.0) * v_norm[:, :, None] * (basis @ self.speed_vectors)[:, None]
        h = torch.cat([scalars[:, None], vectors], dim=1)
        assert graph.edge_index is not None  # forecast() built the neighbour list
        edges = EdgeFeatures.build(
            graph.edge_index, edge_vectors, graph.num_atoms, c.lmax, c.num_knots, self.cutoff
        )
        for layer in self.layers:
            h = layer(h, edges, species)
        out = h[:, 1:4] @ self.readout  # [N, 3, 2]; e3nn 0.6 orders l = 1 as (x, y, z)
        dx, v_new = out[:, :, 0] * self.displacement_rms, out[:, :, 1] * self.velocity_rms
        if c.residual:
            return Forecast(v * c.forecast_fs + dx, v + v_new)
        return Forecast(dx, v_new)

    def _conserve(
        self, graph: AtomicGraph, raw: Forecast, v: torch.Tensor, masses: torch.Tensor
    ) -> Forecast:
        c, b = self.config, graph.num_systems
        dx, v_new = fix_linear_momentum(
            raw.displacement,
            raw.velocities,
            v,
            masses,
            graph.system_index,
            b,
            c.forecast_fs,
            c.momentum,
        )
        if c.angular_momentum:
            v_new = fix_angular_momentum(
                graph.positions, dx, v_new, v, masses, graph.system_index, b, c.momentum
            )
        return Forecast(dx, v_new)

    def forecast(self, graph: AtomicGraph, masses: torch.Tensor | None = None) -> Forecast:
        """:meth:`forward` without autograd (for rollouts)."""
        with torch.no_grad():
            return self(graph, masses)


def _checked_velocities(graph: AtomicGraph) -> torch.Tensor:
    v = graph.velocities
    if v is None:
        raise ValueError(
            "a forecast needs velocities: the graph has none (set "
            "atoms.set_velocities or graph.replace(velocities=...))"
        )
    if v.shape != graph.positions.shape:
        raise ValueError(
            f"velocities have shape {tuple(v.shape)}, positions {tuple(graph.positions.shape)}"
        )
    if not bool(torch.isfinite(v).all()):
        n = int((~torch.isfinite(v)).any(1).nonzero()[0, 0])
        raise ValueError(f"velocity of atom {n} is not finite")
    return v


def _validate(
    forecast_fs: float,
    cutoff: float,
    channels: int,
    lmax: int,
    num_layers: int,
    speed_basis: int,
    momentum: str,
) -> None:
    if not forecast_fs > 0:
        raise ValueError(f"forecast_fs must be positive, got {forecast_fs}")
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    for name, value, low in (
        ("channels", channels, 1),
        ("lmax", lmax, 1),
        ("num_layers", num_layers, 1),
        ("speed_basis", speed_basis, 2),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if momentum not in MOMENTUM_MODES:
        raise ValueError(f"momentum must be one of {MOMENTUM_MODES}, got {momentum!r}")
