"""The TrajCast validation benchmark: its analysis functions against known answers, and
a tiny end-to-end run (no timing asserted).

Mutants checked: the RDF error divided by ∫g instead of ∫g_ref → the relative-L1 test
fails; N_f = 3N instead of 3N − 3 → the temperature test fails; the reference Bussi
left at ASE's 3N → the thermostat test fails; the MSD fit without the 1/6 → the
diffusion test fails; peak search returning the lowest maxima → the peak test fails.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.trajcast_analysis import (
    diffusion,
    matched_shifts,
    peaks,
    relative_l1,
    spectrum,
    split_half_rdf_error,
    temperatures,
)
from mlpot.md import MDState, maxwell_boltzmann
from mlpot.models import TrajCastForecaster


def test_relative_l1():
    x = np.linspace(0, 1, 101)
    g_ref = np.ones_like(x)
    assert relative_l1(x, g_ref, g_ref) == 0.0
    assert relative_l1(x, 1.5 * g_ref, g_ref) == pytest.approx(0.5)


def test_split_half_rdf_error_compares_the_two_halves():
    """Two halves that sample the same distances give 0; halves at different bond
    lengths give the relative L1 distance of their histograms (disjoint: 2)."""
    import ase

    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.75, 0, 0]])
    rng = np.random.default_rng(0)
    d = 0.7 + 0.05 * rng.random(40)
    pair = lambda x: np.stack([np.zeros((len(x), 3)), np.c_[x, 0 * x, 0 * x]], 1)  # noqa: E731
    same = pair(np.concatenate([d, d]))[None]  # [R=1, T=80, N=2, 3]
    assert split_half_rdf_error(same, atoms, 3.0, 60, False) == 0.0
    shifted = pair(np.concatenate([d, d + 1.0]))[None]
    assert split_half_rdf_error(shifted, atoms, 3.0, 60, False) == pytest.approx(2.0)
    # only the second half moved: comparing a half with itself would give 0
    partly = pair(np.concatenate([d, d[:20], d[20:] + 1.0]))[None]
    assert split_half_rdf_error(partly, atoms, 3.0, 60, False) == pytest.approx(1.0, abs=0.1)


def test_temperature_matches_the_md_state():
    import ase.build

    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    state = maxwell_boltzmann(MDState.from_atoms(atoms, dtype=torch.float64), 450.0)
    v = (state.momenta / state.masses[:, None]).numpy()
    t = temperatures(v[None], state.masses.numpy(), 3 * len(atoms) - 3)
    assert t[0] == pytest.approx(float(state.temperature()[0]), rel=1e-9)


@pytest.mark.parametrize("name", ["cu", "ethanol"])
def test_reference_thermostat_targets_the_conserved_momentum_dof(name):
    """ASE's Bussi would count 3N; the reference must thermostat N_f = 3N − 3 (− 3 more
    for the molecule) as the rollout does, or it runs 3N/N_f too hot."""
    from ase import units
    from ase.calculators.emt import EMT

    from benchmarks.trajcast_systems import SYSTEMS, degrees_of_freedom, reference_thermostat

    system = SYSTEMS[name]
    atoms = system.structure()
    atoms.calc = EMT()  # the calculator plays no part in the target
    atoms.set_velocities(np.random.default_rng(0).normal(size=(len(atoms), 3)) * 1e-2)
    md = reference_thermostat(system, atoms, 0)
    n_f = 3 * len(atoms) - (3 if name == "cu" else 6)
    assert degrees_of_freedom(system, atoms) == md.ndof == n_f
    expected = 0.5 * n_f * units.kB * system.temperature
    assert md.target_kinetic_energy == pytest.approx(expected, rel=1e-12)


def test_bonds_of_ethanol_are_its_eight_bonds():
    import ase.build

    from benchmarks.trajcast_analysis import bonds_of

    atoms = ase.build.molecule("CH3CH2OH")
    atoms.center()
    atoms.rattle(0.03, seed=1)
    _, _, names = bonds_of(atoms)
    assert sorted(names) == ["C-C", "C-H", "C-H", "C-H", "C-H", "C-H", "C-O", "O-H"]


def test_diffusion_of_a_random_walk():
    rng = np.random.default_rng(0)
    d_true, dt = 0.01, 10.0  # Å²/fs, fs
    steps = rng.normal(scale=np.sqrt(2 * d_true * dt), size=(4000, 64, 3))
    _, _, d = diffusion(np.cumsum(steps, axis=0), dt, lags=400)
    assert d == pytest.approx(d_true, rel=0.1)


def test_vdos_peak_of_harmonic_velocities():
    dt, f0 = 5.0, 20.0  # fs, THz
    t = np.arange(4000) * dt
    rng = np.random.default_rng(1)
    phases = rng.uniform(0, 2 * np.pi, size=(1, 8, 3))
    v = np.cos(2 * np.pi * f0 * 1e-3 * t[:, None, None] + phases)
    v += 0.6 * np.cos(2 * np.pi * 7.0e-3 * t[:, None, None] + phases)
    f, s = spectrum(v, np.ones(8), dt, lags=1000)
    found = peaks(f, s, count=2)
    assert found == pytest.approx([7.0, 20.0], abs=0.25)
    assert peaks(f, s, count=1) == pytest.approx([20.0], abs=0.25)  # the highest first
    assert matched_shifts(np.array([7.0, 20.0]), found) == pytest.approx([0, 0], abs=0.25)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_tiny_run_prints_every_quantity_and_writes_plots(tmp_path, capsys):
    from benchmarks.trajcast import run
    from mlpot.checkpoint import save_model

    models = {}
    for name, species, fs, ang in (("ar", ["Ar"], 20.0, False), ("cu", ["Cu"], 10.0, False),
                                   ("ethanol", ["H", "C", "O"], 5.0, True)):
        torch.manual_seed(0)
        model = TrajCastForecaster(species, forecast_fs=fs, cutoff=4.0, channels=4, lmax=1,
                                   num_layers=1, angular_momentum=ang)
        model.set_output_scales(1e-4, 1e-5)  # near free flight: an untrained but tame model
        models[name] = str(save_model(model, tmp_path / f"{name}.pt"))
    results = run(["ar", "cu", "ethanol"], 8, 0, tmp_path / "cache", tmp_path / "out", 2,
                  models=models, equilibration_fs=20.0)
    text = capsys.readouterr().out
    for needle in ("RDF error", "sampling floor", "T mean ± std", "D, 1e-5 cm²/s",
                   "VDOS peaks", "bond C-H", "speed, ps/s", "stable"):
        assert needle in text
    for png in ("rdf.png", "msd.png", "vdos.png", "bonds.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000
    assert [r.steps for r in results] == [8, 8, 8]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [s["name"] for s in saved] == ["ar", "cu", "ethanol"]
    # the reference MD is cached: a second run reuses it (same numbers)
    again = run(["cu"], 8, 0, tmp_path / "cache", tmp_path / "out2", 2, models=models,
                equilibration_fs=20.0)
    assert again[0].t_mean[1] == results[1].t_mean[1]
