"""Reports written on the worker thread are the files written in the foreground."""

import pytest

from mlpot.md import CSVR, VelocityVerlet
from mlpot.md.reporters import ThermoReporter, TrajectoryReporter
from mlpot.md.reporters.background import BackgroundReporters
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


class _Recorder:
    """Records the steps it reports and the thread it runs on."""

    def __init__(self, every):
        self.every, self.steps, self.threads = every, [], set()

    def due(self, step):
        return step % self.every == 0

    def report(self, state, integrator):
        import threading

        self.steps.append(state.step)
        self.threads.add(threading.current_thread().name)

    def close(self):
        pass


@pytest.mark.parametrize(("batch", "latency"), [(1, 1.0), (5, 1.0), (1000, 0.0)])
def test_batched_hand_over_writes_every_report_in_order(batch, latency):
    """Reports are handed to the worker in batches (of report steps, or by age); every
    one is written, in step order, on the worker, by the time the run returns, and a
    flush in between (as before a restart file) sees all reports so far."""
    model = argon_lj()
    state, ff = start([fcc_argon()], model, 50.0)
    a, b = _Recorder(2), _Recorder(3)
    output = BackgroundReporters([a, b], batch=batch, latency=latency)
    vv = VelocityVerlet(2.0)
    for _ in range(13):
        state = vv.step(state, ff)
        output.report(state, vv)
        if state.step == 7:
            output.flush()
            assert a.steps == [2, 4, 6] and b.steps == [3, 6]
    output.close()
    assert a.steps == list(range(2, 14, 2))
    assert b.steps == list(range(3, 14, 3))
    assert a.threads == b.threads == {"mlpot-reporters"}


def test_batch_must_be_positive():
    with pytest.raises(ValueError, match="batch and backlog must be >= 1"):
        BackgroundReporters([], batch=0)


class _Slow(_Recorder):
    """A reporter far slower than the steps (sleeps 20 ms per report)."""

    def report(self, state, integrator):
        import time

        time.sleep(0.02)
        super().report(state, integrator)


def test_slow_reporter_holds_the_run_back_instead_of_queueing_states():
    """With backlog 2, at most two handed-over batches wait: the main thread blocks
    rather than keeping every state (and its device memory) alive."""
    model = argon_lj()
    state, ff = start([fcc_argon()], model, 50.0)
    slow = _Slow(1)
    output = BackgroundReporters([slow], batch=1, backlog=2)
    vv = VelocityVerlet(2.0)
    waiting = []
    for _ in range(12):
        state = vv.step(state, ff)
        output.report(state, vv)
        waiting.append(output._queue.qsize())
    assert max(waiting) <= 2
    assert len(slow.steps) >= 12 - 3  # the run was held back to the writer's pace
    output.close()
    assert slow.steps == list(range(1, 13))
