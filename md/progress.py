"""The live progress bar of ``mlpot md`` and ``mlpot rollout``."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mlpot.md.state import MDState
from mlpot.md.units import FS_PER_NS


def total_energy(state: MDState) -> float:
    """Potential + kinetic energy of all systems, eV."""
    return float((state.energy + state.kinetic_energy()).sum())


def kinetic_energy(state: MDState) -> float:
    """Kinetic energy of all systems, eV (a forecaster has no potential energy)."""
    return float(state.kinetic_energy().sum())


class RunProgress:
    """Live bar: steps/s, ns/day, mean T, an energy, ETA; redrawn at most every 0.25 s.

    Called with each new state (``run_md``'s ``on_step``).

    Args:
        console: where the bar is drawn.
        total: steps of the whole run.
        done: steps already done (a resumed run).
        dt: fs per step.
        enabled: False draws nothing.
        label: the bar's name ("MD", "rollout").
        energy: (column name, state → eV), e.g. ("Etot", :func:`total_energy`).
    """

    def __init__(
        self,
        console: Console,
        total: int,
        done: int,
        dt: float,
        enabled: bool,
        label: str = "MD",
        energy: tuple[str, Callable[[MDState], float]] = ("Etot", total_energy),
    ) -> None:
        self.dt, self.enabled, self.start, self.done0 = dt, enabled, time.perf_counter(), done
        self.energy = energy[1]
        self.bar = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("T {task.fields[T]}"),
            TextColumn(f"{energy[0]} {{task.fields[E]}}"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            refresh_per_second=4,
        )
        self.task = self.bar.add_task(label, total=total, completed=done, rate="", T="", E="")
        self.last = 0.0

    def __call__(self, state: MDState) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < 0.25:
            return
        self.last = now
        sps = (state.step - self.done0) / max(now - self.start, 1e-9)
        ns_day = sps * self.dt / FS_PER_NS * 86400
        self.bar.update(
            self.task,
            completed=state.step,
            T=f"{float(state.temperature().mean()):.1f} K",
            E=f"{self.energy(state):.4f} eV",
            rate=f"{sps:.1f} steps/s {ns_day:.3g} ns/day",
        )
