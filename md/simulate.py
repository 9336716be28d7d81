"""The MD loop: steps, reporters, restarts, blow-up detection, clean stops and a summary."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from mlpot.md.errors import BlowUpError, ResourceExhaustedError
from mlpot.md.forces import ForceField, VerletList, closest_pair
from mlpot.md.integrators.base import Integrator
from mlpot.md.reporters.background import BackgroundReporters, IntegratorSnapshot
from mlpot.md.reporters.restart import save_restart
from mlpot.md.state import MDState
from mlpot.md.units import FS_PER_NS

STOP_REASONS = ("completed", "interrupted", "blow-up", "out-of-memory")


class Reporter(Protocol):
    """Anything with ``report(state, integrator)`` and ``close()``.

    A reporter that needs the stress (pressure) may also have ``wants_stress(step)``;
    the loop then asks the force field for it on the steps where that returns True.
    A reporter with ``due(step)`` (whether ``report`` would write at that step) is run
    on a worker thread on those steps; it must then read only the state and the
    integrator snapshot it is handed.
    """

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


@dataclass
class RunSummary:
    """What happened in :func:`run_md`.

    Attributes:
        state: the last valid state (the one written to the restart file).
        steps: steps completed in this call.
        wall_s: wall time, s.
        stop_reason: one of ``STOP_REASONS``.
        message: human-readable reason when not completed.
        restart_path: restart written at the end (None when none was asked for or on blow-up).
        drift_per_atom_per_ns: ``[B]`` slope of the conserved energy per atom, eV/atom/ns.
        times_fs, conserved: sampled conserved energy per system (``[T]``, ``[T, B]``).
        dt_fs: the integrator's time step, fs.
    """

    state: MDState
    steps: int
    wall_s: float
    stop_reason: str
    message: str = ""
    restart_path: Path | None = None
    drift_per_atom_per_ns: np.ndarray | None = None
    times_fs: list[float] = field(default_factory=list)
    conserved: list[np.ndarray] = field(default_factory=list)

    @property
    def ns_per_day(self) -> float:
        sim_ns = self.steps * self.dt_fs / FS_PER_NS
        return sim_ns / self.wall_s * 86400 if self.wall_s > 0 else math.inf

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else math.inf

    dt_fs: float = 0.0


def check_blow_up(state: MDState, verlet: VerletList, limits: SafetyLimits,
                  backend: str = "auto") -> None:
    """Raise :class:`BlowUpError` naming the first problem found (``verlet``: the
    candidate list that served ``state``, for the closest pair; read only, so this can
    run on the reporters' worker thread)."""
    # one host transfer: the sum is finite iff no position is NaN/inf (or so large
    # that it overflows, a blow-up as well), and each T iff no momentum of its system
    # is (E_kin sums their squares)
    temperature = state.temperature()
    values = torch.cat([state.positions.sum().view(1), state.energy, temperature]).tolist()
    if not all(map(math.isfinite, values)):
        raise BlowUpError(f"step {state.step}: NaN or inf in positions, momenta or energy")
    for b, T in enumerate(values[1 + temperature.shape[0]:]):
        if limits.max_temperature < T:
            raise BlowUpError(f"step {state.step}: system {b} reached {T:.3g} K "
                              f"(limit {limits.max_temperature:g} K)")
    d = closest_pair(verlet, state.graph, below=limits.min_distance, backend=backend)
    if d is not None:
        raise BlowUpError(f"step {state.step}: atoms {d:.3f} Å apart "
                          f"(limit {limits.min_distance} Å); the time step may be too large")


class _StopFlag:
    """First Ctrl-C requests a clean stop at the next step boundary; the second aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _drift(times: list[float], values: list[np.ndarray], atoms: np.ndarray) -> np.ndarray | None:
    if len(times) < 2:
        return None
    t = np.asarray(times) / FS_PER_NS
    t = t - t.mean()
    y = np.stack(values) / atoms[None, :]
    return t @ (y - y.mean(0)) / (t @ t)  # least-squares slope per system


def run_md(
    state: MDState,
    integrator: Integrator,
    force_field: ForceField,
    steps: int,
    reporters: Sequence[Reporter] = (),
    restart_path: str | Path | None = None,
    restart_every: int | None = None,
    restart_extra: Callable[[], dict] | None = None,
    limits: SafetyLimits | None = None,
    on_step: Callable[[MDState], None] | None = None,
    report_initial: bool = True,
    background_reports: bool = True,
) -> RunSummary:
    """Advance ``state`` by ``steps`` steps of ``integrator``.

    The state must carry forces (``force_field.evaluate(state)``). Ctrl-C,
    out-of-memory and blow-ups stop the loop cleanly: reporters are closed (every
    queued report written first), and except after a blow-up a restart file of the
    last complete step is written (the integrator and random generators are rolled
    back to that step). With ``background_reports`` the reports that are due are
    written on a worker thread (see :mod:`mlpot.md.reporters.background`), and so is
    the blow-up check every ``limits.check_every`` steps (with the conserved-energy
    sample), just before that step's reports: the main thread never waits for a
    device-to-host copy, and a blow-up is found one hand-over later (at most 8 report
    steps or 1 s). The run then stops; the summary names the failed step and holds its
    state, and no report of that step or later is written.
    """
    limits = limits or SafetyLimits()
    extra = restart_extra or dict
    n_atoms = state.graph.atoms_per_system.cpu().numpy().astype(float)
    summary = RunSummary(state=state, steps=0, wall_s=0.0, stop_reason="completed")
    summary.dt_fs = integrator.dt

    pending: list[torch.Tensor] = []  # samples still on the device, moved in blocks

    def drain() -> None:
        if pending:
            summary.conserved.extend(torch.stack(pending).cpu().double().numpy())
            pending.clear()

    def sample(s: MDState, at_step: Integrator | IntegratorSnapshot = integrator) -> None:
        summary.times_fs.append(s.time)
        pending.append(at_step.conserved_energy(s).detach())
        if len(pending) >= 256:
            drain()

    def check_job(verlet: VerletList) -> Callable[[MDState, IntegratorSnapshot], None]:
        """The blow-up check and conserved-energy sample of one step, against the pair
        list of that step (run on the worker with the reports)."""
        def job(s: MDState, at_step: Integrator | IntegratorSnapshot) -> None:
            try:
                check_blow_up(s, verlet, limits, force_field.backend)
            except BlowUpError as err:
                err.state = s
                raise
            sample(s, at_step)
        return job

    wants_stress = [r.wants_stress for r in reporters if hasattr(r, "wants_stress")]
    output = BackgroundReporters(reporters, background=background_reports)
    if report_initial:
        output.report(state, integrator)
    sample(state)
    # per-run values cached on the state (carried to every later state while their
    # sources stay the same), so the worker's checks and log rows do not redo them
    state.degrees_of_freedom()
    state.volume()
    first_step, failed = state.step, None
    start = time.perf_counter()
    try:
        with _StopFlag() as stop:
            for _ in range(steps):
                if stop.requested:
                    summary.stop_reason, summary.message = "interrupted", "interrupted by user"
                    break
                saved = (integrator.state_dict(),
                         [g.get_state() for g in state.generators]
                         if integrator.stochastic else None)
                if wants_stress and any(w(state.step + 1) for w in wants_stress):
                    force_field.request_stress()
                try:
                    new = integrator.step(state, force_field)
                except (ResourceExhaustedError, KeyboardInterrupt) as err:
                    integrator.load_state_dict(saved[0])
                    if saved[1] is not None:
                        for g, s in zip(state.generators, saved[1], strict=True):
                            g.set_state(s)
                    oom = isinstance(err, ResourceExhaustedError)
                    summary.stop_reason = "out-of-memory" if oom else "interrupted"
                    summary.message = str(err) if oom else "interrupted by user"
                    break
                state = new
                summary.steps += 1
                due_check = state.step % limits.check_every == 0
                output.report(state, integrator,
                              check_job(force_field.verlet) if due_check else None)
                if restart_path and restart_every and state.step % restart_every == 0:
                    output.flush()  # the restart records how many frames were written
                    save_restart(restart_path, state, integrator, force_field, extra())
                if on_step is not None:
                    on_step(state)
    except BlowUpError as err:
        failed = err
    finally:
        try:
            output.close()
        except BlowUpError as err:  # found by a check still queued
            failed = err
        finally:
            summary.wall_s = time.perf_counter() - start
    summary.state = state
    if failed is not None:  # stop at the failed step (the loop may have gone past it)
        summary.stop_reason, summary.message = "blow-up", str(failed)
        summary.state = getattr(failed, "state", state)
        summary.steps = summary.state.step - first_step
    if summary.stop_reason != "blow-up":
        if summary.times_fs[-1] != state.time:
            sample(state)
        if restart_path:
            summary.restart_path = save_restart(restart_path, state, integrator, force_field,
                                                extra())
    drain()
    summary.drift_per_atom_per_ns = _drift(summary.times_fs, summary.conserved, n_atoms)
    return summary
