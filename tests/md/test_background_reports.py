"""Reports written on the worker thread are the files written in the foreground."""

import pytest
from mlpot.md import CSVR
from mlpot.md.reporters import ThermoReporter, TrajectoryReporter
from mlpot.md.simulate import run_md

from .helpers import argon_lj, fcc_argon, start


def _run(tmp_path, background: bool, name: str):
    model = argon_lj()
    state, ff = start([fcc_argon(), fcc_argon(a=5.4)], model, 80.0, seed=3)
    log = tmp_path / f"{name}.csv"
    reporters = [ThermoReporter(log, 3), TrajectoryReporter(tmp_path / f"{name}.extxyz", state, 4)]
    summary = run_md(state, CSVR(4.0, 80.0, tau=50.0), ff, 25, reporters,
                     background_reports=background)
    return summary, log


def test_background_reports_match_foreground_files(tmp_path):
    """NVT with CSVR: the conserved-energy column needs the thermostat's reservoir at
    each logged step, which the worker gets from a snapshot taken at that step."""
    fg, fg_log = _run(tmp_path, False, "fg")
    bg, bg_log = _run(tmp_path, True, "bg")
    assert fg_log.read_text() == bg_log.read_text()
    assert len(fg_log.read_text().splitlines()) == 1 + 2 * 9  # header + 2 systems x steps 0..24/3
    for b in range(2):
        fg_traj = (tmp_path / f"fg_{b}.extxyz").read_text()
        assert fg_traj == (tmp_path / f"bg_{b}.extxyz").read_text()
        assert fg_traj.count("Lattice=") == 7  # steps 0, 4, ..., 24
    assert fg.drift_per_atom_per_ns == pytest.approx(bg.drift_per_atom_per_ns, rel=0, abs=0)


class _Broken:
    """Fails on its second report (on the worker thread)."""

    def __init__(self):
        self.calls, self.closed = 0, False

    def due(self, step):
        return step % 2 == 0

    def report(self, state, integrator):
        self.calls += 1
        if self.calls == 2:
            raise OSError("disk full (test)")

    def close(self):
        self.closed = True


def test_worker_error_reaches_the_caller_and_reporters_are_closed(tmp_path):
    model = argon_lj()
    state, ff = start([fcc_argon()], model, 50.0)
    broken = _Broken()
    log = ThermoReporter(tmp_path / "log.csv", 2)
    with pytest.raises(OSError, match="disk full"):
        run_md(state, CSVR(4.0, 50.0), ff, 10, [broken, log])
    assert broken.closed
    assert log._fh.closed
