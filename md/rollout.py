"""TrajCast rollouts as one more kind of MD step.

A forecaster (:class:`~mlpot.models.TrajCastForecaster`) replaces the force
evaluation and the integrator: :class:`ForecastStep` is an
:class:`~mlpot.md.integrators.Integrator` whose ``step(state, field)`` asks a
:class:`ForecastField` for (Δx, v') and returns the next state, so
:func:`mlpot.md.run_md` drives rollouts with the same loop, reporters, restart files
and blow-up checks as MD. Per forecast interval Δt:

    x ← x + Δx                  (positions stay unwrapped, as in every MD state; the
                                 forecaster sees only edge vectors with their periodic
                                 image shifts, so wrapping into the cell would change
                                 no prediction, and MSDs stay readable)
    p ← m v'                    (v' from the conservation layer: total momentum exact)
    p ← p − m_i P/M (− m_i ω × (r_i − R))
                                (total and, for isolated systems, angular momentum
                                 held at the zero :meth:`ForecastStep.init` set)
    p ← α p                     (CSVR, Bussi et al. 2007, over the whole Δt, on the
                                 predicted velocities, N_f = 3N − 3, or 3N − 6 with
                                 angular-momentum conservation for isolated systems)
    neighbours: the Verlet list is brought up to date at every step.

Why the momenta are projected at every step although the conservation layer keeps
them: it keeps them only to rounding (float32 in a shipped forecaster), and a
forecaster that damps the internal motion a little makes the thermostat scale all
velocities up at every step, which amplifies that rounding exponentially; measured
on ethanol (5 fs, 10^4 steps): the total momentum grew from 1e-6 to 0.35 amu·Å/fs
within 3000 steps, the centre-of-mass translation took more than half of the kinetic
energy the thermostat holds at 3N − 6 degrees of freedom and the bonds froze (the
"flying ice cube" of velocity-rescaling thermostats). The projection removes only
that drift (rounding-sized at every step), so it does not enter the thermostat work.

The state carries no forces or energy (zeros): the "conserved" column of a log is
E_kin minus the thermostat work, which a forecaster does not conserve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlpot.md.errors import ResourceExhaustedError, is_out_of_memory
from mlpot.md.forces import ForceField
from mlpot.md.integrators.base import (
    Integrator,
    advance_clock,
    per_system,
    require_positive,
    zeros_per_system,
)
from mlpot.md.integrators.csvr import CSVRState, csvr_thermostat
from mlpot.md.state import MDState, extend_state, remove_total_momentum
from mlpot.models.base import PotentialOutput
from mlpot.models.trajcast import Forecast, TrajCastForecaster
from mlpot.models.trajcast_conservation import fix_angular_momentum

#: noise stream of the rollout thermostat.
THERMOSTAT_STREAM = 1


@dataclass(frozen=True, kw_only=True)
class ForecastState(CSVRState):
    """:class:`CSVRState` of a rollout (``thermostat_work``: the energy the thermostat
    has added, eV).

    Attributes:
        rotational_constraints: ``[B]`` 3 where the angular momentum is conserved
            (isolated systems), else 0; removed from the degrees of freedom.
    """

    rotational_constraints: torch.Tensor

    def degrees_of_freedom(self) -> torch.Tensor:
        """``[B]`` 3N − 3 − (3 with angular-momentum conservation)."""
        return super().degrees_of_freedom() - self.rotational_constraints


class ForecastField(ForceField):
    """A forecaster behind a Verlet-skin neighbour list (the rollout's "force field").

    Shares :class:`ForceField`'s pair list (``verlet``, ``edges``, ``rebuild_from``), so
    :func:`mlpot.md.run_md`, its safety check and restart files work unchanged; it has
    no energies (calling it raises), only :meth:`forecast`.

    Args:
        forecaster: the trained :class:`~mlpot.models.TrajCastForecaster`.
        skin: extra radius of the candidate list, Å.
    """

    def __init__(self, forecaster: TrajCastForecaster, skin: float = 1.0) -> None:
        super().__init__(forecaster, skin=skin)  # type: ignore[arg-type]

    def __call__(self, graph: object, compute_stress: bool = False) -> PotentialOutput:
        raise TypeError("a forecaster has no energies or forces; step it with ForecastStep")

    def evaluate(self, state: MDState, compute_stress: bool = False) -> MDState:
        """Run the forecaster once on ``state`` and return the state unchanged (a
        forecaster sets no forces); what :func:`mlpot.md.batching.max_batch_atoms`
        needs to measure the memory of one evaluation."""
        self.forecast(state)
        return state

    def forecast(self, state: MDState) -> Forecast:
        """(Δx ``[N, 3]`` Å, v(t+Δt) ``[N, 3]`` Å/fs) of ``state``."""
        graph = self.edges(state.graph).replace(velocities=state.velocities)
        try:
            out = self.model.forecast(graph, state.masses)  # type: ignore[operator]  # self.model is the TrajCastForecaster given to __init__
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise ResourceExhaustedError(
                f"out of memory forecasting {state.num_systems} system(s) / "
                f"{state.num_atoms} atoms: {str(err).splitlines()[0][:200]}"
            ) from None
        dtype = state.momenta.dtype
        return Forecast(out.displacement.to(dtype), out.velocities.to(dtype))


@dataclass(frozen=True)
class ForecastStep(Integrator):
    """One forecast interval Δt = ``dt`` (see the module docstring for the update).

    ``init`` removes the total momentum (and, with ``angular_momentum``, the angular
    momentum of isolated systems) so the thermostat's N_f is right; every step holds
    them at zero (see the module docstring).

    Args:
        dt: the forecaster's interval, fs (use :meth:`for_forecaster`).
        temperature: CSVR target, K (scalar or one per system), or None (no thermostat).
        tau: thermostat time constant, fs.
        angular_momentum: the forecaster conserves angular momentum.
    """

    dt: float
    temperature: float | torch.Tensor | None = None
    tau: float = 100.0
    angular_momentum: bool = False
    state_type = ForecastState

    def __post_init__(self) -> None:
        require_positive(self, dt="fs", tau="fs")

    @classmethod
    def for_forecaster(
        cls,
        forecaster: TrajCastForecaster,
        temperature: float | torch.Tensor | None = None,
        tau: float = 100.0,
    ) -> ForecastStep:
        """The step matching ``forecaster`` (its interval and conservation laws)."""
        return cls(
            dt=forecaster.forecast_fs,
            temperature=temperature,
            tau=tau,
            angular_momentum=forecaster.config.angular_momentum,
        )

    def init(self, state: MDState) -> ForecastState:
        if isinstance(state, ForecastState):
            return state
        constraints = zeros_per_system(state)
        if self.angular_momentum:
            _check_isolated(state)
            constraints = constraints + 3.0
        return extend_state(
            state.replace(momenta=self._zero_momenta(state)),
            ForecastState,
            thermostat_work=zeros_per_system(state),
            rotational_constraints=constraints,
        )

    def step(
        self, state: MDState, forces_fn: ForecastField, compute_stress: bool = False  # type: ignore[override]  # steps with a ForecastField, not a ForcesFn
    ) -> ForecastState:
        """Forecast, move, thermostat; ``compute_stress`` is ignored (no stress)."""
        state = self.init(state)
        dx, v = forces_fn.forecast(state)
        new = state.with_positions(state.positions + dx).replace(momenta=state.masses[:, None] * v)
        new = new.replace(momenta=self._zero_momenta(new))
        if self.temperature is not None:
            new = csvr_thermostat(
                new, per_system(self.temperature, new), self.tau, self.dt, THERMOSTAT_STREAM
            )
        return advance_clock(new, self.dt)

    def _zero_momenta(self, state: MDState) -> torch.Tensor:
        """``state``'s momenta without total (and, with ``angular_momentum``, angular)
        momentum per system."""
        momenta = remove_total_momentum(state, state.momenta)
        if not self.angular_momentum:
            return momenta
        v = momenta / state.masses[:, None]
        v = fix_angular_momentum(
            state.positions,
            torch.zeros_like(v),
            v,
            v,
            state.masses,
            state.system_index,
            state.num_systems,
            "zero",
        )
        return v * state.masses[:, None]

    def reservoir_energy(self, state: MDState) -> torch.Tensor:
        return -self.init(state).thermostat_work


def _check_isolated(state: MDState) -> None:
    periodic = state.graph.pbc.any(1)
    if bool(periodic.any()):
        b = int(periodic.nonzero()[0, 0])
        raise ValueError(
            f"system {b} is periodic: angular momentum is conserved only for isolated molecules"
        )
    small = state.graph.atoms_per_system < 3
    if bool(small.any()):
        b = int(small.nonzero()[0, 0])
        raise ValueError(
            f"system {b} has fewer than 3 atoms: angular-momentum "
            "conservation needs a non-singular inertia tensor"
        )
