"""Thermodynamic log as CSV: one row per system per report."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from mlpot.md.integrators.base import Integrator
from mlpot.md.state import MDState
from mlpot.md.units import GPA

COLUMNS = ("step", "time_fs", "system", "epot_eV", "ekin_eV", "etot_eV", "temperature_K",
           "pressure_GPa", "volume_A3", "conserved_eV")


class ThermoReporter:
    """Appends ``step, time, Epot, Ekin, Etot, T, P, volume`` rows to a CSV file.

    Args:
        path: CSV file. With ``resume_step`` rows after that step are dropped
            (a resumed run rewrites them) and new rows are appended.
        every: report every this many steps.
        resume_step: the step a restart resumes from, or None for a new file.
        append: append to an existing file (later parts of a split batch).
        first_index: index of the first system in the ``system`` column.
        pressure: ask the MD loop for the stress on report steps (``needs_stress``),
            so the pressure column is filled in every ensemble; without it the column is
            NaN unless the integrator needs the stress (NPT).

    Attributes:
        interval: steps between rows (the :class:`~mlpot.md.simulate.Reporter` protocol).
        needs_stress: whether report steps need the stress.
    """

    def __init__(self, path: str | Path, every: int = 10, resume_step: int | None = None,
                 append: bool = False, first_index: int = 0, pressure: bool = True) -> None:
        if every < 1:
            raise ValueError(f"report interval must be >= 1, got {every}")
        self.path, self.interval, self.first_index = Path(path), int(every), int(first_index)
        self.needs_stress = pressure
        if (resume_step is not None or append) and self.path.exists():
            if resume_step is not None:
                _truncate_after(self.path, resume_step)
            self._fh = self.path.open("a", newline="")
            self._writer = csv.writer(self._fh)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(COLUMNS)
            self._fh.flush()

    def report(self, state: MDState, integrator: Integrator) -> None:
        """Write one row per system."""
        ekin = state.kinetic_energy()
        temperature = state.temperature()
        pressure = (torch.full_like(ekin, float("nan")) if state.stress is None
                    else state.pressure() / GPA)
        columns = torch.stack([
            state.energy, ekin, state.energy + ekin, temperature, pressure, state.volume(),
            integrator.conserved_energy(state)], dim=1).detach().cpu().double().tolist()
        for b, row in enumerate(columns):
            self._writer.writerow([state.step, f"{state.time:.6g}", self.first_index + b,
                                   *(f"{x:.10g}" for x in row)])
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _truncate_after(path: Path, step: int) -> None:
    """Keep the header and rows with ``step <= step`` (written atomically)."""
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [ln for ln in lines[1:] if ln.strip() and int(ln.split(",")[0]) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)
