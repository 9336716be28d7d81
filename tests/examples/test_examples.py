"""Every example in examples/ runs as written, at its reduced size, in a fresh folder.

The scripts run verbatim with ``MLPOT_EXAMPLE_QUICK=1``; the training configs run
``mlpot train CONFIG`` unchanged except for ``--set`` overrides that point them at tiny
data sets and stop after one optimiser step (model sizes, loss, schedule stay as written).
Besides "it ran", each test checks a physical or file-level result of the example.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, timeout: float = 600) -> str:
    """Run ``command`` in ``cwd`` with the quick mode on; return stdout (fail with both
    streams on a non-zero exit)."""
    env = dict(
        os.environ,
        MLPOT_EXAMPLE_QUICK="1",
        OMP_NUM_THREADS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(command)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"


def test_relax_with_ase_matches_emt_lattice_constant(tmp_path: Path) -> None:
    out = run([sys.executable, str(EXAMPLES / "relax_with_ase.py")], tmp_path)
    match = re.search(r"lattice constant: mlpot ([\d.]+) Å, EMT ([\d.]+) Å", out)
    assert match, out
    a_ml, a_emt = map(float, match.groups())
    # EMT's Cu is 3.590 Å; the model was trained on EMT labels
    assert abs(a_emt - 3.590) < 0.005
    assert abs(a_ml - a_emt) < 0.02
    assert " bulk step " in out and "GPa" in out  # per-step energy/volume/pressure lines
    gammas = re.search(r"surface energy: mlpot ([\d.]+) J/m², EMT ([\d.]+) J/m²", out)
    assert gammas and 0.5 < float(gammas.group(1)) < 2.0


def test_md_from_cli_writes_trajectories_rdf_and_plot(tmp_path: Path) -> None:
    out = run(["bash", str(EXAMPLES / "md_from_cli.sh"), "md"], tmp_path)
    folder = tmp_path / "md"
    for name in ("nve", "nvt", "npt"):
        assert (folder / f"{name}.dcd").stat().st_size > 0
        rows = (folder / f"{name}.csv").read_text().splitlines()
        assert len(rows) == 1 + 11  # header + steps 0, 2, ..., 20
        assert f"{name}: <T> =" in out
    _png(folder / "rdf.png")
    _png(folder / "thermo.png")
    rdf = np.loadtxt(folder / "rdf.csv", delimiter=",", skiprows=1)
    for column in range(1, 4):  # first peak at the fcc Cu nearest-neighbour distance
        assert abs(rdf[np.argmax(rdf[:, column]), 0] - 3.61 / np.sqrt(2)) < 0.1


def test_trajcast_rollout_compares_rdf_and_msd(tmp_path: Path) -> None:
    out = run(["bash", str(EXAMPLES / "trajcast_rollout.sh"), "tc"], tmp_path)
    folder = tmp_path / "tc"
    _png(folder / "rdf.png")
    _png(folder / "msd.png")
    match = re.search(
        r"RDF error vs reference: ([\d.]+); diffusion coefficient: reference "
        r"([\d.e+-]+) Å²/ps, rollout ([\d.e+-]+) Å²/ps",
        out,
    )
    assert match, out
    error, d_ref, d_roll = map(float, match.groups())
    assert 0.0 <= error < 1.0  # an untrained forecaster still keeps a liquid's structure
    assert d_ref > 0 and np.isfinite(d_roll)
    table = np.loadtxt(folder / "comparison.csv", delimiter=",", skiprows=1)
    assert table.shape == (11, 3) and abs(table[0, 1]) < 1e-9  # MSD(0) = 0


def test_trajcast_reference_temperatures(tmp_path: Path) -> None:
    from mlpot.datasets.store import PackedStore

    run([sys.executable, str(EXAMPLES / "trajcast_reference.py"), "cu", "cu.h5", "--frames",
         "2", "--trajectories", "1", "--equilibration-fs", "5", "--temperatures", "350,700"],
        tmp_path)
    store = PackedStore(tmp_path / "cu.h5")
    groups = [store[k].info["group"] for k in range(len(store))]
    assert groups == ["Cu-fcc/T350/0"] * 2 + ["Cu-fcc/T700/0"] * 2, groups


def test_relax_argon_lattice_constant_and_nve(tmp_path: Path) -> None:
    out = run([sys.executable, str(EXAMPLES / "relax_argon.py")], tmp_path)
    a = float(re.search(r"relaxed fcc Ar: a = ([\d.]+) Å", out).group(1))
    assert abs(a - 5.2647) < 0.03  # LJ argon (ε 0.0104 eV, σ 3.40 Å, r_c 8.5 Å)
    drift = float(re.search(r"NVE energy drift over [\d.]+ ps: ([\d.e+-]+) eV/atom", out).group(1))
    assert drift < 1e-4


def test_regrid_model_keeps_every_weight(tmp_path: Path) -> None:
    import mlpot

    run(
        [
            sys.executable,
            str(EXAMPLES / "regrid_model.py"),
            "mlpot-metals-small",
            "fine.pt",
            "--grid-oversample",
            "8",
        ],
        tmp_path,
    )
    old, new = mlpot.load_model("mlpot-metals-small"), mlpot.load_model(tmp_path / "fine.pt")
    assert new.config.grid_oversample == 8
    old_state, new_state = old.state_dict(), new.state_dict()
    assert old_state.keys() == new_state.keys()
    for key, value in old_state.items():
        assert bool((value == new_state[key]).all()), key


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny data sets in each format the configs read (OMol25 shards, MPTrj JSON)."""
    from format_writers import make_mptrj, write_omol25_shard

    root = tmp_path_factory.mktemp("data")
    (root / "omol_train").mkdir()
    (root / "omol_valid").mkdir()
    write_omol25_shard(root / "omol_train" / "a.aselmdb", np.random.default_rng(0), 6)
    write_omol25_shard(root / "omol_valid" / "a.aselmdb", np.random.default_rng(1), 3)
    mptrj = root / "mptrj.json"
    mptrj.write_text(json.dumps(make_mptrj(np.random.default_rng(0), 3, 2)))
    return {"omol_train": root / "omol_train", "omol_valid": root / "omol_valid", "mptrj": mptrj}


ONE_STEP = [
    "--set",
    "train.max_steps=1",
    "--set",
    "train.device=cpu",
    "--set",
    "data.num_workers=0",
    "--set",
    "log.progress=false",
]


def _train(config: str, cwd: Path, *overrides: str) -> None:
    out = run(
        ["mlpot", "train", str(EXAMPLES / config), "--set", "run_dir=run", *ONE_STEP, *overrides],
        cwd,
    )
    assert "done: 1 steps" in out
    assert (cwd / "run" / "final.pt").is_file()


def test_train_small_with_generated_labels(tmp_path: Path) -> None:
    run(
        [
            sys.executable,
            str(EXAMPLES / "generate_labels.py"),
            "emt",
            "data/emt_small.h5",
            "--count",
            "8",
            "--seed",
            "0",
        ],
        tmp_path,
    )
    _train("train_small.yaml", tmp_path, "--set", "data.valid_fraction=0.3")


def test_train_omol25_config(tmp_path: Path, tiny_data: dict[str, Path]) -> None:
    _train(
        "train_omol25.yaml",
        tmp_path,
        "--set",
        f"data.train={tiny_data['omol_train']}",
        "--set",
        f"data.valid={tiny_data['omol_valid']}",
        "--set",
        "data.max_atoms=64",
    )


@pytest.mark.parametrize("config", ["train_mptrj.yaml", "train_teacher.yaml"])
def test_train_mptrj_configs(tmp_path: Path, tiny_data: dict[str, Path], config: str) -> None:
    _train(
        config,
        tmp_path,
        "--set",
        f"data.train={tiny_data['mptrj']}",
        "--set",
        "data.valid_fraction=0.34",
        "--set",
        "data.max_atoms=64",
    )


@pytest.mark.parametrize(
    ("config", "kind", "base"),
    [
        ("mlpot-metals-small-finetune.yaml", "emt", "mlpot-metals-small"),
        ("mlpot-metals-small-stage3.yaml", "emt", "mlpot-metals-small"),
        ("mlpot-metals-small-stage4.yaml", "emt", "mlpot-metals-small"),
        ("mlpot-organic-small-finetune.yaml", "xtb", "mlpot-organic-small"),
        ("mlpot-organic-small-stage3.yaml", "xtb", "mlpot-organic-small"),
    ],
)
def test_shipped_model_finetune_configs(tmp_path: Path, config: str, kind: str, base: str) -> None:
    """The shipped models' fine-tuning stages, started from the shipped weights (their
    configs name the previous stage's run folder, absent in a fresh checkout)."""
    import mlpot

    data = "data/tiny.h5"
    run([sys.executable, str(EXAMPLES / "generate_labels.py"), kind, data, "--count", "8"],
        tmp_path)
    _train(config, tmp_path, "--set", f"data.train={data}", "--set", f"model.from={base}",
           "--set", "data.valid_fraction=0.3")
    shipped, tuned = mlpot.load_model(base), mlpot.load_model(tmp_path / "run" / "final.pt")
    assert tuned.species == shipped.species
    assert tuned.config.channels == shipped.config.channels
    assert tuned.config.grid_oversample == 4  # trained on the coarse grid, as the stages were


def test_every_example_is_tested() -> None:
    """A new example must be added here (scripts, shell scripts and training configs)."""
    tested = {
        "relax_with_ase.py",
        "md_from_cli.sh",
        "analyze_md.py",
        "trajcast_rollout.sh",
        "trajcast_compare.py",
        "trajcast_reference.py",
        "generate_labels.py",
        "train_small.yaml",
        "train_omol25.yaml",
        "train_mptrj.yaml",
        "train_teacher.yaml",
        # tested elsewhere: tests/train/test_equivariance_modes.py (train_transip),
        # tests/mlpot/test_shipped_models.py (shipped-model configs)
        "train_transip.yaml",
        "mlpot-metals-small.yaml",
        "mlpot-metals-small-finetune.yaml",
        "mlpot-metals-small-stage3.yaml",
        "mlpot-metals-small-stage4.yaml",
        "mlpot-organic-small.yaml",
        "mlpot-organic-small-finetune.yaml",
        "mlpot-organic-small-stage3.yaml",
        # tests/train/test_forecast_fit.py validates the forecaster configs against a
        # trajectory store; tests/mlpot/test_shipped_forecasters.py checks what they trained
        "mlpot-ar-trajcast.yaml",
        "mlpot-cu-trajcast.yaml",
        "mlpot-ethanol-trajcast.yaml",
        "mlpot-ar-trajcast-unroll.yaml",
        "mlpot-cu-trajcast-unroll.yaml",
        "mlpot-cu-trajcast-unroll2.yaml",
        "mlpot-ethanol-trajcast-unroll.yaml",
        "mlpot-ethanol-trajcast-unroll2.yaml",
        "mlpot-ethanol-trajcast-unroll3.yaml",
        "relax_argon.py",
        "regrid_model.py",
    }
    present = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".sh", ".yaml")}
    assert present <= tested, f"untested examples: {sorted(present - tested)}"
