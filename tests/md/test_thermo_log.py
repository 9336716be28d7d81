"""The thermo log's pressure column in NVE/NVT, and that asking for it changes nothing."""

import csv

import numpy as np
import torch

from mlpot.md import Langevin, VelocityVerlet
from mlpot.md.reporters import ThermoReporter
from mlpot.md.simulate import run_md
from mlpot.md.units import GPA

from .helpers import argon_lj, fcc_argon, start


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_nve_log_pressure_is_virial_pressure_and_trajectory_unchanged(tmp_path):
    model = argon_lj()
    state, ff = start([fcc_argon()], model, 60.0)
    logged = run_md(state, VelocityVerlet(2.0), ff, 20,
                    [ThermoReporter(tmp_path / "log.csv", 5)]).state
    state2, ff2 = start([fcc_argon()], model, 60.0)
    plain = run_md(state2, VelocityVerlet(2.0), ff2, 20).state
    # stress requests on report steps leave positions and momenta bit-for-bit alone
    assert torch.equal(logged.positions, plain.positions)
    assert torch.equal(logged.momenta, plain.momenta)
    rows = _rows(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20]
    assert all(np.isfinite(float(r["pressure_GPa"])) for r in rows[1:])
    # the last row equals kinetic + virial pressure from a fresh stress evaluation
    ff_stress = type(ff)(model, compute_stress=True)
    fresh = ff_stress.evaluate(logged)
    expected = float(fresh.pressure()[0]) / GPA
    assert abs(float(rows[-1]["pressure_GPa"]) - expected) < 1e-9 * max(1.0, abs(expected))


def test_log_without_pressure_leaves_column_nan(tmp_path):
    state, ff = start([fcc_argon()], argon_lj(), 60.0)
    run_md(state, Langevin(2.0, 60.0), ff, 10,
           [ThermoReporter(tmp_path / "log.csv", 5, pressure=False)])
    rows = _rows(tmp_path / "log.csv")
    assert all(np.isnan(float(r["pressure_GPa"])) for r in rows)
