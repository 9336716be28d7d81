"""Clean stops: out-of-memory, blow-ups and Ctrl-C leave valid trajectories and restarts."""

import os
import signal

import ase.io
import pytest
import torch

from mlpot.cli.md import stop_on_sigint
from mlpot.md import ForceField, Langevin, VelocityVerlet
from mlpot.md.batching import plan_batches
from mlpot.md.errors import BlowUpError
from mlpot.md.reporters import TrajectoryReporter, load_restart
from mlpot.md.simulate import RestartSchedule, SafetyLimits, check_blow_up, run_md
from mlpot.md.units import MVV2E
from mlpot.models import LennardJones

from .helpers import argon_lj, fcc_argon, start


class FailingLJ(LennardJones):
    """LJ that raises a CUDA-style out-of-memory error from its ``fail_at``-th call on."""

    def __init__(self, fail_at: int) -> None:
        super().__init__(["Ar"], cutoff=6.0)
        self.calls, self.fail_at = 0, fail_at

    def atomic_energies(self, graph, edge_vectors, species):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().atomic_energies(graph, edge_vectors, species)


def test_out_of_memory_stops_cleanly_and_resumes(tmp_path):
    model = FailingLJ(fail_at=26).double()
    state, ff = start([fcc_argon(2)], model, 60.0)
    integ = Langevin(5.0, 60.0)
    traj = TrajectoryReporter(tmp_path / "t.extxyz", state, every=5)
    summary = run_md(state, integ, ff, 100, [traj], restart=RestartSchedule(tmp_path / "r.pt"))
    assert summary.stop_reason == "out-of-memory"
    assert "out of memory" in summary.message
    assert summary.state.step == 24  # the failed step was not taken
    data = load_restart(tmp_path / "r.pt")
    assert data.state.step == 24
    assert torch.equal(data.state.positions, summary.state.positions)
    assert len(ase.io.read(tmp_path / "t.extxyz", index=":")) == 5  # steps 0, 5, ..., 20
    # the resumed run equals a run that never failed
    ref_state, ref_ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)
    ref_integ = Langevin(5.0, 60.0)
    ref = run_md(ref_state, ref_integ, ref_ff, 40).state
    ff2 = ForceField(argon_lj(6.0))
    ff2.rebuild_from(*data.verlet_reference, data.state.graph)
    resumed = run_md(data.state, Langevin(5.0, 60.0), ff2, 16, report_initial=False).state
    assert torch.equal(resumed.positions, ref.positions)
    assert torch.equal(resumed.momenta, ref.momenta)
    assert torch.equal(resumed.heat, ref.heat)


def test_blow_up_detected_and_trajectory_valid(tmp_path):
    """The run stops at the failed step, which is not written."""
    state, ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)
    # push two atoms almost on top of each other: huge forces
    pos = state.positions.clone()
    pos[1] = pos[0] + torch.tensor([0.9, 0.0, 0.0], dtype=pos.dtype)
    state = ff.evaluate(state.with_positions(pos))
    traj = TrajectoryReporter(tmp_path / "t.dcd", state, every=1)
    summary = run_md(state, VelocityVerlet(5.0), ff, 200, [traj],
                     restart=RestartSchedule(tmp_path / "r.pt"),
                     limits=SafetyLimits(max_temperature=5000.0, check_every=1))
    assert summary.stop_reason == "blow-up", summary.message
    assert f"step {summary.state.step}:" in summary.message
    assert summary.steps == summary.state.step
    assert "K" in summary.message or "apart" in summary.message or "NaN" in summary.message
    assert summary.restart_path is None
    import mdtraj

    t = mdtraj.load(str(tmp_path / "t.dcd"), top=str(tmp_path / "t.pdb"))
    assert t.n_frames == summary.steps  # frames 0..k-1; the blown-up step is not written


def test_ctrl_c_writes_restart_at_last_step(tmp_path):
    state, ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)

    def interrupt(s):
        if s.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with stop_on_sigint() as stop:
        summary = run_md(state, VelocityVerlet(5.0), ff, 50,
                         restart=RestartSchedule(tmp_path / "r.pt"), on_step=interrupt,
                         should_stop=stop)
    assert summary.stop_reason == "interrupted"
    assert summary.state.step == 7
    assert load_restart(tmp_path / "r.pt").state.step == 7


def test_nve_drift_reported_per_atom_per_ns():
    state, ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)
    summary = run_md(state, VelocityVerlet(5.0), ff, 100)
    assert summary.drift_per_atom_per_ns is not None
    assert abs(float(summary.drift_per_atom_per_ns[0])) < 1.0
    assert summary.ns_per_day > 0


def test_batch_plan_respects_memory_limit():
    assert plan_batches([10, 10, 10, 10], None) == [[0, 1, 2, 3]]
    assert plan_batches([10, 10, 10, 10], 20) == [[0, 1], [2, 3]]
    assert plan_batches([30, 5, 5, 50], 20) == [[0], [1, 2], [3]]


def test_unit_conversion_is_ase_s():
    assert pytest.approx(103.6427, rel=1e-6) == MVV2E


def test_check_names_nan_hot_systems_and_close_atoms():
    """The check itself: NaN momenta, a system over the temperature limit (by index) and
    two atoms closer than the limit, each found with the step in the message."""
    state, ff = start([fcc_argon(2), fcc_argon(2)], argon_lj(6.0), 60.0)
    limits = SafetyLimits(max_temperature=1000.0, min_distance=0.5)
    check_blow_up(state, ff.verlet, limits)  # a sane state passes
    p = state.momenta.clone()
    p[40, 1] = float("nan")
    with pytest.raises(BlowUpError, match="step 0: NaN"):
        check_blow_up(state.replace(momenta=p), ff.verlet, limits)
    hot = state.momenta.clone()
    hot[32:] *= 10.0  # system 1: 100x the kinetic energy, ~6000 K
    with pytest.raises(BlowUpError, match="system 1 reached"):
        check_blow_up(state.replace(momenta=hot), ff.verlet, limits)
    pos = state.positions.clone()
    pos[33] = pos[32] + torch.tensor([0.3, 0.0, 0.0], dtype=pos.dtype)
    close = ff.evaluate(state.with_positions(pos))
    with pytest.raises(BlowUpError, match=r"atoms 0\.300 Å apart"):
        check_blow_up(close, ff.verlet, limits)


class InterruptingForces:
    """A force function that raises KeyboardInterrupt (a second Ctrl-C) at its n-th call."""

    def __init__(self, ff, at_call):
        self.ff, self.calls, self.at_call = ff, 0, at_call
        self.verlet = ff.verlet

    def __call__(self, graph, compute_stress=False):
        self.calls += 1
        if self.calls == self.at_call:
            raise KeyboardInterrupt
        out = self.ff(graph, compute_stress)
        self.verlet = self.ff.verlet
        return out


def test_interrupt_inside_a_step_keeps_the_previous_state(tmp_path):
    """Ctrl-C in the middle of step 13 (inside the force call): the run stops at step 12,
    the restart holds step 12, and resuming from it gives the uninterrupted trajectory."""
    state, ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)
    forces = InterruptingForces(ff, at_call=13)
    summary = run_md(state, Langevin(5.0, 60.0), forces, 30,
                     restart=RestartSchedule(tmp_path / "r.pt"))
    assert summary.stop_reason == "interrupted" and summary.state.step == 12
    data = load_restart(tmp_path / "r.pt")
    assert data.state.step == 12 and torch.equal(data.state.momenta, summary.state.momenta)
    ff2 = ForceField(argon_lj(6.0))
    ff2.rebuild_from(*data.verlet_reference, data.state.graph)
    resumed = run_md(data.state, Langevin(5.0, 60.0), ff2, 18, report_initial=False).state
    ref_state, ref_ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)
    ref = run_md(ref_state, Langevin(5.0, 60.0), ref_ff, 30).state
    assert torch.equal(resumed.positions, ref.positions)
    assert torch.equal(resumed.heat, ref.heat)
