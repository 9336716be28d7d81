"""The MD loop: steps, reporters, restarts, blow-up detection, clean stops and a summary.

A plain synchronous loop: step, check every ``check_every`` steps, hand the state to
the reporters that are due. States are immutable, so "roll back" means "keep the
previous state". Ctrl-C handling (a stop flag set by SIGINT) lives in the caller
(see :func:`mlpot.cli.md.stop_on_sigint`); a KeyboardInterrupt raised inside a
step is caught here and stops the run at the last complete step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from mlpot.md.errors import BlowUpError, ResourceExhaustedError
from mlpot.md.forces import ForceField
from mlpot.md.integrators.base import Integrator
from mlpot.md.reporters.restart import save_restart
from mlpot.md.state import MDState
from mlpot.md.units import FS_PER_NS
from mlpot.neighbors import VerletList, closest_pair

STOP_REASONS = ("completed", "interrupted", "blow-up", "out-of-memory")


class Reporter(Protocol):
    """Writes something about the state every ``interval`` steps.

    Attributes:
        interval: ``report`` is called on steps that are multiples of it.
        needs_stress: the loop asks the force field for the stress on those steps.
    """

    interval: int
    needs_stress: bool

    def report(self, state: MDState, integrator: Integrator) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SafetyLimits:
    """When a run counts as blown up.

    Attributes:
        max_temperature: K; any system hotter stops the run.
        min_distance: Å; two atoms closer than this stop the run.
        check_every: steps between checks (each check synchronises a GPU).
    """

    max_temperature: float = 1.0e5
    min_distance: float = 0.3
    check_every: int = 10


@dataclass(frozen=True)
class RestartSchedule:
    """Where and when :func:`run_md` writes restart files.

    Attributes:
        path: the restart file (rewritten atomically each time).
        every: steps between restarts during the run (None: only at the end).
        extra: returns run settings saved alongside (plain values).
    """

    path: Path
    every: int | None = None
    extra: Callable[[], dict] = dict

    def save(self, state: MDState, force_field: ForceField) -> Path:
        return save_restart(self.path, state, force_field.verlet, self.extra())


@dataclass
class RunSummary:
    """What happened in :func:`run_md`.

    Attributes:
        state: the last state (the failed one after a blow-up, else the one written to
            the restart file).
        steps: steps completed in this call.
        wall_s: wall time, s.
        stop_reason: one of ``STOP_REASONS``.
        message: human-readable reason when not completed.
        restart_path: restart written at the end (None when none was asked for or on blow-up).
        dt_fs: the integrator's time step, fs.
        times_fs, conserved: the conserved energy sampled at the start, at every check
            and at the end (``[T]`` fs, ``[T, B]`` eV).
    """

    state: MDState
    steps: int = 0
    wall_s: float = 0.0
    stop_reason: str = "completed"
    message: str = ""
    restart_path: Path | None = None
    dt_fs: float = 0.0
    times_fs: list[float] = field(default_factory=list)
    conserved: list[np.ndarray] = field(default_factory=list)

    @property
    def ns_per_day(self) -> float:
        sim_ns = self.steps * self.dt_fs / FS_PER_NS
        return sim_ns / self.wall_s * 86400 if self.wall_s > 0 else math.inf

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def drift_per_atom_per_ns(self) -> np.ndarray | None:
        """``[B]`` least-squares slope of the conserved energy per atom, eV/atom/ns."""
        if len(self.times_fs) < 2:
            return None
        t = np.asarray(self.times_fs) / FS_PER_NS
        t = t - t.mean()
        atoms = self.state.graph.atoms_per_system.cpu().numpy()
        y = np.stack(self.conserved) / atoms[None, :]
        return t @ (y - y.mean(0)) / (t @ t)

    def sample(self, state: MDState, integrator: Integrator) -> None:
        """Record the conserved energy of ``state``."""
        self.times_fs.append(state.time)
        self.conserved.append(integrator.conserved_energy(state).cpu().double().numpy())


def check_blow_up(state: MDState, verlet: VerletList | None, limits: SafetyLimits) -> None:
    """Raise :class:`BlowUpError` naming the first problem found (``verlet``: the pair
    list of ``state``, for the closest pair)."""
    temperature = state.temperature()
    values = torch.cat([state.positions.sum().view(1), state.energy, temperature]).tolist()
    if not all(map(math.isfinite, values)):
        raise BlowUpError(f"step {state.step}: NaN or inf in positions, momenta or energy")
    for b, T in enumerate(values[1 + temperature.shape[0]:]):
        if limits.max_temperature < T:
            raise BlowUpError(f"step {state.step}: system {b} reached {T:.3g} K "
                              f"(limit {limits.max_temperature:g} K)")
    d = None if verlet is None else closest_pair(verlet, state.graph)
    if d is not None and d < limits.min_distance:
        raise BlowUpError(f"step {state.step}: atoms {d:.3f} Å apart "
                          f"(limit {limits.min_distance} Å); the time step may be too large")


def _due(reporters: Sequence[Reporter], step: int) -> list[Reporter]:
    return [r for r in reporters if step % r.interval == 0]


def _stopped(summary: RunSummary, err: BaseException) -> None:
    oom = isinstance(err, ResourceExhaustedError)
    summary.stop_reason = "out-of-memory" if oom else "interrupted"
    summary.message = str(err) if oom else "interrupted by user"


def run_md(
    state: MDState,
    integrator: Integrator,
    force_field: ForceField,
    steps: int,
    reporters: Sequence[Reporter] = (),
    restart: RestartSchedule | None = None,
    limits: SafetyLimits | None = None,
    on_step: Callable[[MDState], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    report_initial: bool = True,
) -> RunSummary:
    """Advance ``state`` (which must carry forces: ``force_field.evaluate``) by ``steps``.
    Every ``limits.check_every`` steps the state is checked (:func:`check_blow_up`) and
    its conserved energy sampled; reporters get the states on their intervals (with the
    stress computed when one ``needs_stress``). ``should_stop()`` (e.g. a SIGINT flag),
    out-of-memory and Ctrl-C inside a step stop at the last complete step (saved to
    ``restart``); a blow-up at the failed step (not reported or saved). Reporters are closed.
    """
    limits, state = limits or SafetyLimits(), integrator.init(state)
    summary = RunSummary(state=state, dt_fs=integrator.dt)
    summary.sample(state, integrator)
    for r in _due(reporters, state.step) if report_initial else ():
        r.report(state, integrator)
    start = time.perf_counter()
    try:
        for _ in range(steps):
            if should_stop is not None and should_stop():
                summary.stop_reason, summary.message = "interrupted", "interrupted by user"
                break
            due, verlet = _due(reporters, state.step + 1), force_field.verlet
            try:
                summary.state = integrator.step(state, force_field,
                                                any(r.needs_stress for r in due))
            except (ResourceExhaustedError, KeyboardInterrupt) as err:
                summary.state, force_field.verlet = state, verlet  # the step never happened
                _stopped(summary, err)
                break
            state, summary.steps = summary.state, summary.steps + 1
            if state.step % limits.check_every == 0:
                check_blow_up(state, force_field.verlet, limits)
                summary.sample(state, integrator)
            for r in due:
                r.report(state, integrator)
            if restart is not None and restart.every and state.step % restart.every == 0:
                restart.save(state, force_field)
            if on_step is not None:
                on_step(state)
    except BlowUpError as err:
        summary.stop_reason, summary.message = "blow-up", str(err)
    finally:
        summary.wall_s = time.perf_counter() - start
        for r in reporters:
            r.close()
    if summary.stop_reason != "blow-up":
        if summary.times_fs[-1] != state.time:
            summary.sample(state, integrator)
        summary.restart_path = None if restart is None else restart.save(state, force_field)
    return summary
