"""The shipped models against their reference methods on structures they never saw.

``mlpot-metals-small`` (``examples/mlpot-metals-small.yaml``, EMT labels) and
``mlpot-organic-small`` (``examples/mlpot-organic-small.yaml``, GFN2-xTB labels). Test
structures are generated here with seed 12345 (training used seed 0). Bounds are the
errors ``mlpot eval`` measured on the larger held-out sets (seed 1; numbers in the
constants' comments) with a margin for the smaller samples here.
"""

from __future__ import annotations

import ase.build
import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE
from typer.testing import CliRunner

import mlpot
from mlpot.checkpoint import ALIASES, shipped_models
from mlpot.cli.main import app
from mlpot.datasets import read
from mlpot.datasets.reference.emt import emt_metals
from mlpot.models import EquivariantPotential
from mlpot.train.evaluate import evaluate

METALS = "mlpot-metals-small"
ORGANIC = "mlpot-organic-small"
# Regression bounds (about 1.1-1.4x the values measured here; the test data are fixed
# by their seed, so the margin only absorbs platform rounding). The accuracy
# goals (30 meV/Å and 3 meV/atom for metals, 80 meV/Å for molecules) are checked on the
# larger held-out sets: `mlpot eval mlpot-metals-small data/metals_test.h5` (700
# structures, seed 1): energy MAE 2.26 meV/atom, force MAE 27.0 meV/Å, stress MAE 1.13
# meV/Å³; here (40 structures, seed 12345): 2.07 meV/atom, 26.3 meV/Å (the stage-3
# model before it: 3.38 meV/atom, 32.1 meV/Å, which these bounds reject).
METALS_ENERGY_MAE = 0.0028  # eV/atom
METALS_FORCE_MAE = 0.030  # eV/Å
# `mlpot eval mlpot-organic-small data/organic2_test.h5` (600 molecules, seed 1): energy
# MAE 6.12 meV/atom, force MAE 75.9 meV/Å (charged 151, open-shell 119); here (30, 40%
# charged): 11.1 meV/atom, 82.0 meV/Å (the stage-2 model before it: 12.4 meV/atom,
# 90.7 meV/Å, whose forces this bound rejects; stage 1: 38.5 meV/atom, 156 meV/Å).
ORGANIC_ENERGY_MAE = 0.016  # eV/atom
ORGANIC_FORCE_MAE = 0.088  # eV/Å
EQUIVARIANCE = 1e-4  # relative force error under rotation (issue requirement)
LATTICE_TOLERANCE = 0.01  # Å, relaxed fcc Cu vs EMT


@pytest.fixture(scope="module")
def metals() -> EquivariantPotential:
    return mlpot.load_model(METALS)


@pytest.fixture(scope="module")
def organic() -> EquivariantPotential:
    return mlpot.load_model(ORGANIC)


def test_load_by_name_small_and_aliased(metals, organic):
    shipped = shipped_models()
    for name in (METALS, ORGANIC):
        assert shipped[name].stat().st_size < 2 * 1024**2
    assert metals.species == ["Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au"]
    assert organic.species == ["H", "C", "N", "O", "F", "P", "S", "Cl"]
    assert metals.dtype == organic.dtype == torch.float32
    assert ALIASES["emt-cuni-small"] == METALS
    alias = mlpot.load_model("emt-cuni-small")
    assert torch.equal(alias.species_embedding, metals.species_embedding)


def test_metals_on_unseen_emt_structures(metals, tmp_path):
    emt_metals(tmp_path / "test.h5", count=40, seed=12345)
    report = evaluate(metals, tmp_path / "test.h5", rotations=2, rotation_structures=4)
    o = report.overall
    print(
        f"unseen EMT (40): E {o.energy_mae * 1e3:.2f} meV/atom, F {o.forces_mae * 1e3:.1f} "
        f"meV/Å, S {o.stress_mae * 1e3:.3f} meV/Å³; equivariance {report.equivariance}"
    )
    assert o.energy_mae < METALS_ENERGY_MAE
    assert o.forces_mae < METALS_FORCE_MAE
    assert report.equivariance.forces_max < EQUIVARIANCE


def test_organic_on_unseen_xtb_molecules(organic, tmp_path):
    from mlpot.datasets.reference.xtb import xtb_molecules

    xtb_molecules(tmp_path / "test.h5", count=30, seed=12345, charged_fraction=0.4)
    structures = list(read(tmp_path / "test.h5"))
    assert any(a.info["charge"] != 0 for a in structures)
    assert any(a.info["spin"] > 1 for a in structures)
    report = evaluate(organic, structures, rotations=2, rotation_structures=4)
    o = report.overall
    print(
        f"unseen xTB (30): E {o.energy_mae * 1e3:.2f} meV/atom, F {o.forces_mae * 1e3:.1f} "
        f"meV/Å; equivariance {report.equivariance}"
    )
    assert o.energy_mae < ORGANIC_ENERGY_MAE
    assert o.forces_mae < ORGANIC_FORCE_MAE
    assert report.equivariance.forces_max < EQUIVARIANCE


def _relaxed_a(calc) -> float:
    atoms = ase.build.bulk("Cu", "fcc", a=3.50, cubic=True)
    atoms.calc = calc
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=300)
    return float(np.cbrt(atoms.get_volume()))


def test_relaxed_cu_lattice_constant_matches_emt():
    a_ml = _relaxed_a(mlpot.MLPotCalculator(METALS, dtype=torch.float64))
    a_emt = _relaxed_a(EMT())
    print(f"relaxed fcc Cu: {a_ml:.4f} Å (model), {a_emt:.4f} Å (EMT)")
    assert abs(a_ml - a_emt) < LATTICE_TOLERANCE


def test_ase_nve_with_shipped_model_conserves_energy():
    atoms = ase.build.bulk("Au", "fcc", a=4.08, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    atoms.calc = mlpot.MLPotCalculator(METALS, dtype=torch.float64)
    dyn = VelocityVerlet(atoms, 2 * ase.units.fs)
    energies = []
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=5)
    dyn.run(100)
    spread = np.ptp(energies) / len(atoms)
    print(f"NVE 32 Au atoms, 100 x 2 fs: total-energy spread {spread * 1e3:.3f} meV/atom")
    assert spread < 1e-3


def test_readme_first_command_runs_md_with_the_shipped_model(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0 and METALS in listed.output and ORGANIC in listed.output
    structure = tmp_path / "cu.extxyz"
    ase.io.write(structure, ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2))
    log = tmp_path / "log.csv"
    res = runner.invoke(
        app,
        [
            "md",
            str(structure),
            "--model",
            METALS,
            "--ensemble",
            "nvt",
            "--temperature",
            "300",
            "--timestep",
            "2",
            "--steps",
            "20",
            "--every",
            "10",
            "--log",
            str(log),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(log.read_text().strip().splitlines()) == 4  # header + steps 0, 10, 20
