"""Restarts continue every ensemble bit for bit: the state file holds the ensemble's
variables and the random streams (seeds; the step is the counter)."""

import dataclasses

import pytest
import torch

from mlpot.md import ForceField, run_md
from mlpot.md.reporters import load_restart, save_restart
from mlpot.md.reporters.restart import FORMAT
from mlpot.md.simulate import RestartSchedule

from .helpers import argon_lj, fcc_argon, start
from .test_batched import INTEGRATORS

CASES = {
    **INTEGRATORS,
    "npt-iso": lambda: dataclasses.replace(INTEGRATORS["npt"](), cell_mode="isotropic"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_restart_continues_bit_for_bit(tmp_path, name):
    npt = name.startswith("npt")
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2, a=5.35), fcc_argon(2, a=5.45)], model, 80.0, seed=4, stress=npt)
    first = run_md(state, CASES[name](), ff, 25, restart=RestartSchedule(tmp_path / "r.pt"))
    reference = run_md(first.state, CASES[name](), ff, 25).state
    data = load_restart(tmp_path / "r.pt")
    assert type(data.state) is type(first.state) and data.state.step == 25
    ff2 = ForceField(model, compute_stress=npt)
    ff2.rebuild_from(*data.verlet_reference, data.state.graph)
    resumed = run_md(data.state, CASES[name](), ff2, 25).state
    for f in dataclasses.fields(reference):
        want, got = getattr(reference, f.name), getattr(resumed, f.name)
        if f.name == "graph":
            want, got = want.positions, got.positions
            assert torch.equal(reference.cell, resumed.cell)
        if isinstance(want, torch.Tensor):
            assert torch.equal(want, got), f.name
        else:
            assert want == got, f.name


def test_old_or_foreign_restart_files_are_refused(tmp_path):
    state, ff = start([fcc_argon(2)], argon_lj(7.0), 50.0)
    path = save_restart(tmp_path / "r.pt", state, ff.verlet)
    payload = torch.load(path, weights_only=True)
    payload["version"] = 1
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt: restart format version 1"):
        load_restart(tmp_path / "old.pt")
    payload.update(version=2, state_type="builtins.eval")
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="unknown state type"):
        load_restart(tmp_path / "odd.pt")
    torch.save({"format": FORMAT[::-1]}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an mlpot MD restart file"):
        load_restart(tmp_path / "other.pt")
