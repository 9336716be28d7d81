"""Observables against known answers: fcc RDF shells, ballistic MSD, harmonic VACF/VDOS,
and the same numbers read back from a written trajectory."""

import numpy as np

from mlpot.md import VelocityVerlet
from mlpot.md.observables import diffusion_coefficient, load_frames, msd, rdf, vacf, vdos
from mlpot.md.reporters import TrajectoryReporter
from mlpot.md.simulate import run_md

from .helpers import argon_lj, fcc_argon, start


def test_rdf_of_fcc_has_shells_and_ideal_gas_is_flat():
    a = 5.3
    atoms = fcc_argon(3, a=a)
    r, g = rdf(atoms.positions, atoms.cell[:], r_max=7.0, bins=140)
    first = r[np.argmax(g)]
    assert abs(first - a / np.sqrt(2)) < 0.05
    lo, hi = r - 0.025, r + 0.025  # bin edges (width 7/140 Å)
    shells = 4 / 3 * np.pi * (hi**3 - lo**3)
    coordination = np.sum((g * shells)[r < 4.5]) * len(atoms) / atoms.get_volume()
    assert abs(coordination - 12) < 1e-6
    rng = np.random.default_rng(1)
    cell = np.eye(3) * 20.0
    gas = rng.uniform(0, 20.0, size=(50, 400, 3))
    r, g = rdf(gas, cell, r_max=8.0, bins=16)
    assert np.all(np.abs(g[4:] - 1) < 0.05)


def test_msd_ballistic_and_diffusion():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(200, 3))
    t = np.arange(50, dtype=float)
    x = t[:, None, None] * v[None]
    m = msd(x)
    assert np.allclose(m, (v**2).sum(1).mean() * t**2)
    # random walk with step variance 3·s² per frame: MSD = 3 s² t, D = s²/2
    steps = rng.normal(scale=0.1, size=(2000, 300, 3))
    walk = np.cumsum(steps, axis=0)
    m = msd(walk)
    D = diffusion_coefficient(m, np.arange(2000.0), 0.05, 0.3)
    assert abs(D / (0.01 / 2) - 1) < 0.05


def test_vacf_and_vdos_of_harmonic_motion():
    dt, nu = 1.0, 0.05  # fs, 1/fs = 50 THz
    t = np.arange(2000) * dt
    phases = np.random.default_rng(3).uniform(0, 2 * np.pi, 64)
    vel = np.cos(2 * np.pi * nu * t[:, None] + phases[None])[:, :, None] * np.ones(3)
    c = vacf(vel)
    assert abs(c[0] - 1) < 1e-12
    assert np.allclose(c[:200], np.cos(2 * np.pi * nu * t[:200]), atol=0.02)
    freq, spec = vdos(c, dt)
    assert abs(freq[np.argmax(spec)] - 50.0) < 1.0


def test_observables_from_written_trajectory(tmp_path):
    state, ff = start([fcc_argon(2)], argon_lj(6.0), 60.0)
    traj = TrajectoryReporter(tmp_path / "t.extxyz", state, every=2)
    final = run_md(state, VelocityVerlet(5.0), ff, 40, [traj]).state
    frames = load_frames(tmp_path / "t.extxyz")
    assert frames.positions.shape == (21, 32, 3)
    assert np.allclose(frames.positions[-1], final.positions.numpy())
    assert np.allclose(frames.velocities[-1], final.velocities.numpy())
    assert np.allclose(frames.times_fs[-1], 200.0)
    m = msd(frames.positions)
    assert m[0] == 0 and m[-1] > 0
    c = vacf(frames.velocities)
    assert c[0] == 1.0
    _, g = rdf(frames.positions, frames.cells, r_max=5.0)
    assert g.max() > 2
