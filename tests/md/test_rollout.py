"""TrajCast rollouts through run_md: the step machinery, conservation over a rollout,
the CSVR ensemble on predicted velocities, trajectories, restarts and CLI errors.

Mutants these tests were checked against (each made a test here fail):
- ``ForecastState.degrees_of_freedom`` without ``− rotational_constraints`` → the
  angular-momentum CSVR ensemble test (mean K off by 3/2 k_B T per system);
- ``MDState.degrees_of_freedom`` returning 3N → the CSVR ensemble test;
- positions advanced by ``2 * dx`` → the ballistic test;
- thermostat noise keyed by ``step + 1`` on resume (restart) → restart test;
- momentum projection dropped in the conservation layer → rollout momentum test;
- momentum fixed over the whole batch instead of per system → batched test;
- the per-step momentum projection in ``ForecastStep.step`` dropped → the
  dissipative-forecaster test (total momentum 0.3 amu·Å/fs instead of < 1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass

import ase
import ase.build
import ase.data
import ase.io
import mdtraj
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mlpot.checkpoint import save_model
from mlpot.cli.main import app
from mlpot.md import MDState, run_md
from mlpot.md.reporters import load_restart
from mlpot.md.rollout import ForecastField, ForecastState, ForecastStep
from mlpot.md.units import KB
from mlpot.models import LennardJones, TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_conservation import angular_momentum


@dataclass(frozen=True)
class _Config:
    angular_momentum: bool = False


class Ballistic(torch.nn.Module):
    """Test forecaster: Δx = v·Δt, v unchanged (free flight)."""

    def __init__(self, forecast_fs: float = 5.0, angular_momentum: bool = False) -> None:
        super().__init__()
        self.forecast_fs, self.cutoff = forecast_fs, 3.0
        self.config = _Config(angular_momentum)

    def forecast(self, graph, masses=None) -> Forecast:
        return Forecast(graph.velocities * self.forecast_fs, graph.velocities.clone())


def gas(num_systems: int, atoms_per_system: int, periodic: bool, seed: int = 0) -> MDState:
    rng = np.random.default_rng(seed)
    systems = []
    for _ in range(num_systems):
        a = ase.Atoms(
            "Ar" * atoms_per_system,
            positions=rng.uniform(0, 12, (atoms_per_system, 3)),
            cell=np.eye(3) * 12.0,
            pbc=periodic,
        )
        a.set_velocities(rng.normal(scale=0.005, size=(atoms_per_system, 3)) / ase.units.fs)
        systems.append(a)
    return MDState.from_atoms(systems, seed=seed)


def test_ballistic_steps_move_positions_and_time():
    state = gas(2, 5, periodic=True)
    step = ForecastStep(dt=5.0)
    start = step.init(state)
    summary = run_md(start, step, ForecastField(Ballistic()), 7)
    end = summary.state
    assert isinstance(end, ForecastState) and end.step == 7 and end.time == pytest.approx(35.0)
    torch.testing.assert_close(
        end.positions, start.positions + 35.0 * start.velocities, atol=1e-12, rtol=0
    )
    torch.testing.assert_close(end.momenta, start.momenta, atol=0, rtol=1e-14)


@pytest.mark.parametrize(
    ("periodic", "angular", "nf_per_system"), [(True, False, 9), (False, True, 6)]
)
def test_csvr_on_predicted_velocities_samples_the_right_ensemble(periodic, angular, nf_per_system):
    """Free flight keeps K, so K's distribution is CSVR's stationary Gamma(N_f/2, k_B T)
    with N_f = 3N − 3 (− 3 with angular-momentum conservation): mean N_f k_B T/2 and
    variance N_f (k_B T)²/2, here for 4-atom systems (N_f = 9 or 6)."""
    temperature = 100.0
    step = ForecastStep(dt=5.0, temperature=temperature, tau=5.0, angular_momentum=angular)
    state = step.init(gas(48, 4, periodic=periodic, seed=3))
    assert state.degrees_of_freedom().tolist() == [nf_per_system] * 48
    field = ForecastField(Ballistic(angular_momentum=angular))
    samples = []
    for k in range(160):
        state = step.step(state, field)
        if k >= 10:
            samples.append(state.kinetic_energy())
    k_over_kt = torch.stack(samples) / (KB * temperature)
    assert float(k_over_kt.mean()) == pytest.approx(nf_per_system / 2, rel=0.03)
    assert float(k_over_kt.var()) == pytest.approx(nf_per_system / 2, rel=0.12)


def small_forecaster(species, angular: bool = False) -> TrajCastForecaster:
    model = TrajCastForecaster(
        species,
        forecast_fs=4.0,
        cutoff=3.5,
        channels=6,
        lmax=1,
        num_layers=1,
        num_knots=6,
        speed_basis=4,
        angular_momentum=angular,
    ).double()
    model.set_output_scales(0.02, 0.004)
    return model


def test_rollout_conserves_momentum_and_angular_momentum():
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    cu.rattle(0.05, seed=1)
    mol = ase.build.molecule("CH3CH2OH")
    for atoms, angular in ((cu, False), (mol, True)):
        model = small_forecaster(sorted(set(atoms.numbers)), angular)
        step = ForecastStep.for_forecaster(model, temperature=300.0, tau=20.0)
        from mlpot.md import maxwell_boltzmann

        state = step.init(maxwell_boltzmann(MDState.from_atoms(atoms, seed=2), 300.0))
        summary = run_md(state, step, ForecastField(model), 25)
        assert summary.stop_reason == "completed", summary.message
        end = summary.state
        moved = float((end.positions - state.positions).abs().max())
        assert moved > 1e-3  # the rollout did something
        p = end.sum_per_system(end.momenta)
        assert float(p.abs().max()) < 1e-12
        if angular:
            ang = angular_momentum(end.positions, end.velocities, end.masses, end.system_index, 1)
            assert float(ang.abs().max()) < 1e-11
            assert float(end.degrees_of_freedom()[0]) == 3 * len(mol) - 6


class Dissipative(Ballistic):
    """Test forecaster that damps the motion relative to the centre of mass by 10 % a
    step, keeps the total momentum, and leaks a rounding-sized 1e-9 Å/fs into the
    centre-of-mass velocity (what a float32 conservation layer does)."""

    def forecast(self, graph, masses=None) -> Forecast:
        v = graph.velocities
        m = torch.as_tensor(ase.data.atomic_masses[graph.atomic_numbers.numpy()], dtype=v.dtype)
        v_com = (m[:, None] * v).sum(0) / m.sum()
        return Forecast(v * self.forecast_fs, 0.9 * (v - v_com) + v_com + 1e-9)


@pytest.mark.parametrize("angular", [False, True])
def test_thermostat_does_not_pump_up_momentum_drift(angular):
    """A damping forecaster makes CSVR scale the velocities up at every step; without the
    per-step projection that scaling amplifies the momentum (and angular momentum)
    leak exponentially, the "flying ice cube"."""
    mol = ase.build.molecule("CH3CH2OH")
    model = Dissipative(angular_momentum=angular)
    step = ForecastStep(dt=5.0, temperature=300.0, tau=10.0, angular_momentum=angular)
    from mlpot.md import maxwell_boltzmann

    state = step.init(maxwell_boltzmann(MDState.from_atoms(mol, seed=4), 300.0))
    end = run_md(state, step, ForecastField(model), 200).state
    p = end.sum_per_system(end.momenta)
    assert float(p.abs().max()) < 1e-12
    assert float(end.temperature()[0]) > 100.0  # the thermostat kept the motion going
    if angular:
        ang = angular_momentum(end.positions, end.velocities, end.masses, end.system_index, 1)
        assert float(ang.abs().max()) < 1e-11


def test_batched_rollout_equals_single_rollouts():
    """Two systems in one batch follow their single runs (thermostat noise is per system;
    the forecasts agree to rounding)."""
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    cu.rattle(0.05, seed=1)
    other = cu.copy()
    other.rattle(0.05, seed=2)
    model = small_forecaster([29])
    step = ForecastStep.for_forecaster(model, temperature=500.0, tau=20.0)
    from mlpot.md import maxwell_boltzmann

    def rollout(structures, seeds):
        state = maxwell_boltzmann(MDState.from_atoms(structures, seed=seeds), 300.0)
        return run_md(step.init(state), step, ForecastField(model), 10).state

    both = rollout([cu, other], [3, 4])
    singles = [rollout([cu], [3]), rollout([other], [4])]
    for name in ("positions", "momenta"):
        torch.testing.assert_close(
            getattr(both, name), torch.cat([getattr(s, name) for s in singles]), atol=1e-10, rtol=0
        )


# ----------------------------------------------------------------------------- CLI
runner = CliRunner()


def mlpot(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def cu_files(tmp_path):
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    structure = tmp_path / "cu.xyz"
    ase.io.write(structure, cu)
    forecaster = save_model(small_forecaster([29]), tmp_path / "cu-forecaster.pt")
    return structure, forecaster


BASE = [
    "--steps",
    "12",
    "--every",
    "3",
    "--temperature",
    "400",
    "--tau",
    "20",
    "--seed",
    "7",
    "--no-progress",
]


@pytest.mark.parametrize("ext", ["dcd", "extxyz", "h5"])
def test_rollout_writes_readable_trajectories(tmp_path, cu_files, ext):
    structure, forecaster = cu_files
    traj = tmp_path / f"roll.{ext}"
    res = mlpot(
        "rollout",
        structure,
        "--forecaster",
        forecaster,
        *BASE,
        "--traj",
        traj,
        "--log",
        tmp_path / "roll.csv",
    )
    assert res.exit_code == 0, res.output
    final = load_restart(tmp_path / "roll.restart.pt").state
    assert isinstance(final, ForecastState) and final.step == 12
    assert final.time == pytest.approx(48.0)
    pos = final.positions.numpy()
    if ext == "extxyz":
        frames = ase.io.read(traj, index=":")
        assert len(frames) == 5 and np.allclose(frames[-1].positions, pos, atol=1e-6)
    else:
        top = tmp_path / "roll.pdb" if ext == "dcd" else None
        t = mdtraj.load(str(traj), top=str(top)) if top else mdtraj.load(str(traj))
        assert t.n_frames == 5 and t.n_atoms == 32
        assert np.allclose(t.xyz[-1] * 10, pos, atol=2e-3)
    rows = (tmp_path / "roll.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[-1].startswith("12,48")


def test_restart_resumes_bit_for_bit(tmp_path, cu_files):
    structure, forecaster = cu_files
    full, part = tmp_path / "full", tmp_path / "part"
    assert (
        mlpot(
            "rollout", structure, "-f", forecaster, *BASE, "--traj", full.with_suffix(".extxyz")
        ).exit_code
        == 0
    )
    half = [*BASE]
    half[1] = "6"
    assert (
        mlpot(
            "rollout", structure, "-f", forecaster, *half, "--traj", part.with_suffix(".extxyz")
        ).exit_code
        == 0
    )
    res = mlpot(
        "rollout",
        structure,
        "-f",
        forecaster,
        *BASE,
        "--traj",
        part.with_suffix(".extxyz"),
        "--restart",
        tmp_path / "part.restart.pt",
    )
    assert res.exit_code == 0, res.output
    a = load_restart(tmp_path / "full.restart.pt").state
    b = load_restart(tmp_path / "part.restart.pt").state
    assert b.step == 12
    for name in ("momenta", "thermostat_work"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.positions, b.positions)
    fa = np.stack([x.positions for x in ase.io.read(full.with_suffix(".extxyz"), ":")])
    fb = np.stack([x.positions for x in ase.io.read(part.with_suffix(".extxyz"), ":")])
    assert fa.shape == fb.shape and np.array_equal(fa, fb)


def test_cli_bad_input(tmp_path, cu_files):
    structure, forecaster = cu_files
    missing = mlpot("rollout", structure, "-f", tmp_path / "nope.pt", "--no-progress")
    assert missing.exit_code == 1 and "nope.pt" in missing.output
    potential = save_model(LennardJones(["Cu"]), tmp_path / "lj.pt")
    wrong = mlpot("rollout", structure, "-f", potential, "--no-progress")
    assert wrong.exit_code == 1 and "not a TrajCastForecaster" in wrong.output
    ar = tmp_path / "ar.xyz"
    ase.io.write(ar, ase.build.bulk("Ar", "fcc", a=5.3, cubic=True))
    species = mlpot("rollout", ar, "-f", forecaster, "--no-progress")
    assert species.exit_code == 1 and "does not support element(s) Ar" in species.output
    mol = tmp_path / "mol.pt"
    save_model(small_forecaster([1, 6, 8, 29], angular=True), mol)
    periodic = mlpot("rollout", structure, "-f", mol, "--no-progress")
    assert periodic.exit_code == 1 and "isolated molecules" in periodic.output
    md_restart = mlpot(
        "rollout",
        structure,
        "-f",
        forecaster,
        "--no-progress",
        "--steps",
        "1",
        "--restart",
        structure,
    )
    assert md_restart.exit_code == 1 and "restart" in md_restart.output
    assert not list(tmp_path.glob("*.restart.pt"))  # nothing written on bad input


def test_rollout_progress_bar_names_the_rollout_and_kinetic_energy():
    """The bar says "rollout" and shows E_kin (a forecaster has no potential energy);
    mutant checked: reusing the MD bar ("MD", "Etot") fails it."""
    import io

    from rich.console import Console

    from mlpot.md.rollout_driver import rollout_progress

    out = io.StringIO()
    state = gas(1, 8, periodic=True)
    progress = rollout_progress(Console(file=out, width=200, force_terminal=True), 10, 0, 5.0,
                               True)
    with progress.bar:
        progress(state)
    text = out.getvalue()
    assert "rollout" in text and "E_kin" in text and "Etot" not in text
    assert f"{float(state.kinetic_energy().sum()):.4f} eV" in text


def test_md_progress_bar_shows_total_energy():
    """``mlpot md``'s bar (the same class) says "MD" and shows Etot = E_pot + E_kin;
    mutant checked: the kinetic energy alone in that column fails it."""
    import io

    from rich.console import Console

    from mlpot.md.progress import RunProgress

    out = io.StringIO()
    state = gas(1, 8, periodic=True)
    state = state.replace(energy=torch.full_like(state.energy, -3.25))
    progress = RunProgress(Console(file=out, width=200, force_terminal=True), 10, 0, 1.0, True)
    with progress.bar:
        progress(state)
    text = out.getvalue()
    assert "MD" in text and "Etot" in text and "E_kin" not in text
    assert f"{float((state.energy + state.kinetic_energy()).sum()):.4f} eV" in text


def test_max_batch_atoms_splits_into_parts_with_the_same_trajectories(tmp_path, cu_files):
    """Two structures run as two parts give the same per-system trajectories and log rows
    as one batch (each system keeps its seed and noise stream). Mutant checked: parts
    seeded from ``cfg.seed`` instead of ``cfg.seed + index`` → second system differs."""
    structure, forecaster = cu_files
    atoms = ase.io.read(structure)
    other = atoms.copy()
    other.rattle(0.05, seed=3)
    two = tmp_path / "two.extxyz"
    ase.io.write(two, [atoms, other])
    runs = {}
    for name, extra in (("one", []), ("parts", ["--max-batch-atoms", str(len(atoms))])):
        res = mlpot("rollout", two, "--forecaster", forecaster, *BASE, "--traj",
                    tmp_path / f"{name}.extxyz", "--log", tmp_path / f"{name}.csv", *extra)
        assert res.exit_code == 0, res.output
        runs[name] = [ase.io.read(tmp_path / f"{name}_{b}.extxyz", ":") for b in (0, 1)]
    assert "part 2/2" in res.output
    for b in (0, 1):
        assert len(runs["one"][b]) == len(runs["parts"][b]) == 5
        for f1, f2 in zip(runs["one"][b], runs["parts"][b], strict=True):
            np.testing.assert_allclose(f2.positions, f1.positions, atol=1e-10)
    assert len((tmp_path / "parts.csv").read_text().splitlines()) == len(
        (tmp_path / "one.csv").read_text().splitlines()
    )
