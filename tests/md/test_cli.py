"""``mlpot md`` / ``mlpot relax``: trajectories readable by mdtraj and ase, exact restarts,
one-line errors for bad input."""

import ase
import ase.build
import ase.io
import mdtraj
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mlpot import save_model
from mlpot.cli.main import app
from mlpot.md.reporters import load_restart
from mlpot.models import LennardJones

runner = CliRunner()
BASE = ["--model", "lj", "--lj-cutoff", "6.0", "--timestep", "5", "--no-progress"]


@pytest.fixture
def argon_file(tmp_path):
    path = tmp_path / "ar.extxyz"
    ase.io.write(path, ase.build.bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2))
    return path


def mlpot(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("ext", ["dcd", "xtc", "h5", "extxyz"])
def test_trajectory_formats_are_readable(tmp_path, argon_file, ext):
    traj = tmp_path / f"run.{ext}"
    res = mlpot("md", argon_file, *BASE, "--ensemble", "npt", "--temperature", "60",
                "--steps", "40", "--every", "10", "--traj", traj, "--log", tmp_path / "log.csv",
                "--tau-p", "100", "--compressibility", "1.0")
    assert res.exit_code == 0, res.output
    final = load_restart(tmp_path / "run.restart.pt").state
    pos = final.positions.numpy()
    cell = final.cell[0].numpy()
    if ext == "extxyz":
        frames = ase.io.read(traj, index=":")
        assert len(frames) == 5
        assert np.allclose(frames[-1].positions, pos, atol=1e-6)
        assert np.allclose(frames[-1].cell[:], cell, atol=1e-6)
        assert frames[-1].info["step"] == 40
    else:
        top = tmp_path / "run.pdb" if ext in ("dcd", "xtc") else None
        t = mdtraj.load(str(traj), top=str(top)) if top else mdtraj.load(str(traj))
        assert t.n_frames == 5 and t.n_atoms == 32
        atol = 6e-3 if ext == "xtc" else 2e-3  # XTC stores 1e-3 nm
        assert np.allclose(t.xyz[-1] * 10, pos, atol=atol)
        assert np.allclose(t.unitcell_vectors[-1] * 10, cell, atol=atol)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,time_fs,system,epot_eV,ekin_eV,etot_eV,temperature_K")
    assert len(rows) == 6


def _frames(path):
    if path.suffix == ".extxyz":
        return np.stack([a.positions for a in ase.io.read(path, index=":")])
    top = path.with_suffix(".pdb")
    t = mdtraj.load(str(path), top=str(top)) if top.exists() else mdtraj.load(str(path))
    return t.xyz


@pytest.mark.parametrize("ext", ["extxyz", "dcd", "xtc", "h5"])
def test_restart_resumes_bit_for_bit(tmp_path, argon_file, ext):
    """Interrupted at step 20 and resumed (twice, the second time over a trajectory that
    already ran past the restart) == one uninterrupted run: state, frames and log."""
    common = ["--ensemble", "nvt", "--thermostat", "langevin", "--temperature", "80",
              "--every", "5", "--seed", "4", *BASE]
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir()
    part.mkdir()

    def md(folder, steps, *extra):
        res = mlpot("md", argon_file, *common, "--steps", steps, "--traj", folder / f"t.{ext}",
                    "--log", folder / "log.csv", *extra)
        assert res.exit_code == 0, res.output

    md(full, 40)
    md(part, 20)
    (part / "t.restart.pt").rename(part / "step20.pt")
    md(part, 40, "--restart", part / "step20.pt")  # frames 25..40 written
    md(part, 40, "--restart", part / "step20.pt")  # again: frames after step 20 replaced
    a = load_restart(full / "t.restart.pt").state
    b = load_restart(part / "t.restart.pt").state
    assert a.step == b.step == 40
    assert torch.equal(a.positions, b.positions) and torch.equal(a.momenta, b.momenta)
    assert torch.equal(a.forces, b.forces)
    fa, fb = _frames(full / f"t.{ext}"), _frames(part / f"t.{ext}")
    assert len(fa) == len(fb) == 9
    assert np.array_equal(fa, fb)
    assert (full / "log.csv").read_text() == (part / "log.csv").read_text()


def test_relax_with_cell(tmp_path, argon_file):
    out = tmp_path / "relaxed.extxyz"
    res = mlpot("relax", argon_file, "--model", "lj", "--cell", "--fmax", "1e-3", "--out", out)
    assert res.exit_code == 0, res.output
    relaxed = ase.io.read(out)
    assert abs(relaxed.cell[0, 0] - 5.3 * 2) > 0.05  # the cell changed
    assert np.abs(relaxed.get_forces()).max() < 1e-3


@pytest.fixture
def ar_checkpoint(tmp_path):
    return save_model(LennardJones(["Ar"]), tmp_path / "ar_lj.pt")


BAD_INPUT = {
    "missing structure": lambda p, c: ["md", p / "nope.xyz", "--model", "lj"],
    "unreadable structure": lambda p, c: ["md", p / "garbage.xyz", "--model", "lj"],
    "unknown model": lambda p, c: ["md", p / "ar.extxyz", "--model", "no-such-model"],
    "element not in model": lambda p, c: ["md", p / "cu.extxyz", "--model", c],
    "negative timestep": lambda p, c: ["md", p / "ar.extxyz", "--model", "lj",
                                       "--timestep", "-1"],
    "unknown ensemble": lambda p, c: ["md", p / "ar.extxyz", "--model", "lj",
                                      "--ensemble", "nph"],
    "unknown trajectory format": lambda p, c: ["md", p / "ar.extxyz", "--model", "lj",
                                               "--traj", p / "t.abc"],
    "relax missing structure": lambda p, c: ["relax", p / "nope.xyz", "--model", "lj"],
    "npt without a cell": lambda p, c: ["md", p / "cluster.xyz", "--model", "lj",
                                        "--ensemble", "npt"],
    "unknown dtype": lambda p, c: ["md", p / "ar.extxyz", "--model", "lj", "--dtype", "fp8"],
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gives_one_clear_line(tmp_path, argon_file, ar_checkpoint, case):
    (tmp_path / "garbage.xyz").write_text("this is not\nan xyz file\n")
    ase.io.write(tmp_path / "cu.extxyz", ase.build.bulk("Cu", "fcc", a=3.61))
    ase.io.write(tmp_path / "cluster.xyz", ase.Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0],
                                                                       [0, 3.8, 0]]))
    res = mlpot(*BAD_INPUT[case](tmp_path, ar_checkpoint), "--steps", "5", "--no-progress")
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    print(f"{case}: {lines[0]}")


def test_many_frames_run_as_batches_split_to_fit(tmp_path):
    frames = [ase.build.bulk("Ar", "fcc", a=a, cubic=True).repeat(2) for a in (5.3, 5.35, 5.4)]
    ase.io.write(tmp_path / "three.extxyz", frames)
    res = mlpot("md", tmp_path / "three.extxyz", *BASE, "--steps", "10", "--every", "5",
                "--traj", tmp_path / "t.extxyz", "--log", tmp_path / "log.csv",
                "--max-batch-atoms", "64")
    assert res.exit_code == 0, res.output
    assert "part 2/2" in res.output
    for b in range(3):
        assert len(ase.io.read(tmp_path / f"t_{b}.extxyz", index=":")) == 3
    systems = [ln.split(",")[2] for ln in (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert sorted(set(systems)) == ["0", "1", "2"]
    assert (tmp_path / "t.restart.part0.pt").exists()
    assert (tmp_path / "t.restart.part1.pt").exists()


def test_batches_are_built_one_at_a_time_after_every_frame_is_checked(tmp_path, monkeypatch):
    """Only one batch's state is built for the run (so --max-batch-atoms bounds device
    memory), yet a bad last frame still fails before anything is written."""
    import mlpot.md.commands as commands
    import mlpot.md.driver as driver

    built = []

    def recording(structures, *args, **kwargs):
        built.append(sum(len(a) for a in structures))
        return start_state(structures, *args, **kwargs)

    start_state = commands.start_state
    monkeypatch.setattr(commands, "start_state", recording)
    monkeypatch.setattr(driver, "start_state", recording, raising=False)
    frames = [ase.build.bulk("Ar", "fcc", a=a, cubic=True).repeat(2) for a in (5.3, 5.35, 5.4)]
    ase.io.write(tmp_path / "three.extxyz", frames)
    res = mlpot("md", tmp_path / "three.extxyz", *BASE, "--steps", "4", "--every", "2",
                "--max-batch-atoms", "64")
    assert res.exit_code == 0, res.output
    assert built == [64, 32]

    frames[2].positions[5, 1] = np.nan
    ase.io.write(tmp_path / "bad.extxyz", frames)
    res = mlpot("md", tmp_path / "bad.extxyz", *BASE, "--steps", "4", "--every", "2",
                "--max-batch-atoms", "64", "--traj", tmp_path / "bad_traj.extxyz",
                "--log", tmp_path / "bad_log.csv")
    assert res.exit_code != 0
    assert "non-finite position" in res.output, res.output
    assert not any(p.name.startswith("bad_") for p in tmp_path.iterdir())
    assert not (tmp_path / "bad_traj.restart.part0.pt").exists()
