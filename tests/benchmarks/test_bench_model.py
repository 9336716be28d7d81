"""The model benchmark's harness (cases, protocol, reply parsing, report maths).

No timing is asserted and nothing here needs MACE's environment.
"""

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from benchmarks.mace_env import MaceEnvError, ensure_mace_venv, torch_requirement
from benchmarks.mace_worker import (
    Workload,
    mace_hidden_irreps,
    serve,
    structure_to_atoms,
    training_targets,
)
from benchmarks.model_cases import (
    Case,
    aspirin,
    build_cases,
    species_of,
    structure_message,
)
from benchmarks.model_report import case_rows, scaling_ratio, target_checks
from benchmarks.model_vs_mace import (
    BenchConfig,
    BenchResult,
    Measurement,
    ModelSpec,
    quick_config,
    scaling_memory_problem,
    write_json,
)
from benchmarks.worker_client import Worker, WorkerError, parse_reply, worker_env


def test_cases_sizes_and_tasks():
    cases = build_cases((4, 6), train_repeats=(4,))
    assert [(len(c.atoms), c.task) for c in cases] == [
        (256, "energy_forces"), (864, "energy_forces"), (21, "energy_forces"),
        (256, "train_step")]
    assert len({c.name for c in cases}) == len(cases)
    assert species_of(cases) == [1, 6, 8, 29]
    assert [c.task for c in build_cases((2,), (), molecule=False)] == ["energy_forces"]
    with pytest.raises(ValueError, match="task"):
        Case("x", aspirin(), "energy")


def test_aspirin_is_a_sensible_molecule():
    atoms = aspirin()
    assert atoms.get_chemical_formula() == "C9H8O4"
    assert not atoms.pbc.any()
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.9  # no clashes
    heavy = atoms.numbers > 1
    for k in np.flatnonzero(~heavy):  # every H bonded to exactly one heavy atom
        assert np.sum(d[k, heavy] < 1.15) == 1
    # connected: every heavy atom within 1.6 Å of another heavy atom
    assert (d[np.ix_(heavy, heavy)].min(axis=1) < 1.6).all()


@pytest.mark.parametrize("atoms", [aspirin(), build_cases((2,), (), False)[0].atoms])
def test_structure_message_round_trip(atoms):
    message = json.loads(json.dumps(structure_message(atoms)))
    back = structure_to_atoms(message)
    np.testing.assert_array_equal(back.numbers, atoms.numbers)
    np.testing.assert_allclose(back.positions, atoms.positions, atol=0)
    np.testing.assert_allclose(np.asarray(back.cell), np.asarray(atoms.cell), atol=0)
    np.testing.assert_array_equal(back.pbc, atoms.pbc)
    assert len(neighbor_list("i", back, 5.0)) == len(neighbor_list("i", atoms, 5.0))


def test_model_spec_message_and_mace_irreps():
    spec = ModelSpec(channels=16, lmax=2, hidden_lmax=2)
    assert spec.message([29], "cg")["hidden_lmax"] == 2
    assert spec.message([29], "cg")["backend"] == "cg"
    assert ModelSpec(lmax=3).message([29], "grid")["hidden_lmax"] == 1
    assert mace_hidden_irreps(16, 3) == "16x0e+16x1o+16x2e+16x3o"


def test_config_validation_and_quick():
    with pytest.raises(ValueError, match="frameworks"):
        BenchConfig(frameworks=("grid", "nequip"))
    with pytest.raises(ValueError, match="device"):
        BenchConfig(device="tpu")
    with pytest.raises(ValueError, match="repeats"):
        BenchConfig(repeats=0)
    quick = quick_config(BenchConfig())
    assert quick.repeats < BenchConfig().repeats
    assert quick.scaling_repeats is not None
    assert quick_config(BenchConfig(scaling_repeats=None, train_repeats=())).scaling_repeats \
        is None


def test_training_targets_are_reproducible():
    a = training_targets(5, 3, torch.float32, torch.device("cpu"))
    b = training_targets(5, 3, torch.float32, torch.device("cpu"))
    assert a[1].shape == (5, 3)
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def _fake_build(request):
    calls = []
    return Workload(step=lambda: calls.append(1), num_edges=7, num_params=11,
                    versions={"fake": "1"})


def _converse(lines):
    out = io.StringIO()
    serve(_fake_build, io.StringIO("".join(json.dumps(x) + "\n" for x in lines)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_worker_protocol_in_process():
    load = {"op": "load", "structure": structure_message(aspirin()), "model": {},
            "task": "energy_forces", "threads": 1}
    replies = _converse([{"op": "run", "repeats": 1}, load, {"op": "run", "repeats": 3},
                         {"op": "bogus"}, {**load, "task": "md"}, {"op": "quit"},
                         {"op": "run", "repeats": 1}])
    assert len(replies) == 5  # nothing answered after quit
    assert not replies[0]["ok"] and "before 'load'" in replies[0]["error"]
    assert replies[1] == {"ok": True, "num_atoms": 21, "num_edges": 7, "num_params": 11,
                          "versions": {"fake": "1"}}
    assert replies[2]["ok"] and len(replies[2]["times"]) == 3
    assert not replies[3]["ok"] and "unknown op" in replies[3]["error"]
    assert not replies[4]["ok"] and "task must be" in replies[4]["error"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_reply():
    load = {"op": "load", "structure": structure_message(aspirin()), "model": {},
            "task": "train_step"}
    peak = _converse([load, {"op": "peak"}])[1]
    assert peak["ok"] and peak["peak_bytes"] >= 0 and "VmHWM" in peak["method"]


def test_parse_reply_errors():
    assert parse_reply('{"ok": true, "times": [1.0]}', "w")["times"] == [1.0]
    with pytest.raises(WorkerError, match="boom"):
        parse_reply('{"ok": false, "error": "boom"}', "w")
    with pytest.raises(WorkerError, match="not JSON"):
        parse_reply("Loading model...", "w")
    with pytest.raises(WorkerError, match="malformed"):
        parse_reply("[1, 2]", "w")


def test_worker_crash_is_reported_with_stderr():
    code = "import sys; sys.stderr.write('no module named mace\\n'); sys.exit(3)"
    with Worker("fake", [sys.executable, "-c", code], worker_env(1)) as worker, \
            pytest.raises(WorkerError, match=r"(?s)code 3.*no module named mace"):
        worker.request({"op": "peak"})


def test_worker_env_threads_and_pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/a")
    env = worker_env(2, "/mace-site")
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["PYTHONPATH"].split(":") == ["/mace-site", "/a"]
    assert worker_env(1)["PYTHONPATH"] == "/a"


def _measurement(case, framework, task, atoms, seconds, mib):
    return Measurement(case, framework, task, atoms, 10 * atoms, 100, tuple(seconds),
                       int(mib * 2**20), "test", {})


def _result():
    ms = [_measurement("Cu 256", "grid", "energy_forces", 256, [0.1, 0.3, 0.2], 50),
          _measurement("Cu 256", "mace", "energy_forces", 256, [0.5, 0.5, 0.5], 100),
          _measurement("train", "grid", "train_step", 256, [1.0], 200),
          _measurement("train", "mace", "train_step", 256, [1.2], 100)]
    scaling = (_measurement("s", "grid", "energy_forces", 100, [1.0], 1),
               _measurement("l", "grid", "energy_forces", 1000, [12.0], 1))
    return BenchResult(BenchConfig(), tuple(ms), scaling)


def test_report_ratios_and_targets():
    result = _result()
    rows = case_rows(result)
    assert [r.case for r in rows] == ["Cu 256", "train"]
    assert rows[0].speedup("grid") == pytest.approx(2.5)  # 0.5 / median 0.2
    assert rows[0].memory_ratio("grid") == pytest.approx(2.0)
    assert rows[0].speedup("cg") is None
    assert scaling_ratio(result) == pytest.approx(1.2)
    checks = target_checks(result)
    assert [met for _, met in checks] == [True, True, False, False, True]
    assert "2.50x" in checks[0][0] and "1.20x" in checks[-1][0]


def test_write_json_round_trip(tmp_path):
    path = tmp_path / "bench.json"
    write_json(_result(), path)
    data = json.loads(path.read_text())
    assert data["measurements"][0]["times"] == [0.1, 0.3, 0.2]
    assert data["config"]["model"]["channels"] == ModelSpec().channels
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_mace_env_refuses_foreign_directory(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(MaceEnvError, match="not a working MACE environment"):
        ensure_mace_venv(tmp_path, log=lambda _: None)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_mace_env_creation_failure_is_clear(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(MaceEnvError, match="creating the venv"):
        ensure_mace_venv(blocker / "venv", log=lambda _: None)
    assert torch_requirement().startswith("torch==")


def test_scaling_memory_guard():
    ms = [_measurement("a", "grid", "energy_forces", 100, [1.0], 100),
          _measurement("b", "grid", "energy_forces", 200, [1.0], 100),
          _measurement("c", "grid", "train_step", 200, [1.0], 10000)]
    gib = 2**30
    # largest energy+forces case: 0.5 MiB/atom -> 10k atoms ~ 6.3 GiB with margin
    assert scaling_memory_problem(ms, 10_000, 64 * gib) is None
    problem = scaling_memory_problem(ms, 10_000, 4 * gib)
    assert problem.startswith("skipped") and "200 atoms" in problem
    assert scaling_memory_problem(ms, 10_000, None) is None
    assert scaling_memory_problem([], 10_000, gib) is None


def test_cli_rejects_bad_options_clearly():
    from typer.testing import CliRunner

    from benchmarks.__main__ import bench_app

    runner = CliRunner()
    result = runner.invoke(bench_app, ["model", "--frameworks", "grid,nequip"])
    assert result.exit_code == 1
    assert "frameworks" in result.output
    result = runner.invoke(bench_app, ["model", "--sizes", "4,x"])
    assert result.exit_code != 0
    assert "--sizes" in result.output
    result = runner.invoke(bench_app, ["transip-experiment", "--wavelengths", "20"])
    assert result.exit_code != 0
    assert "--wavelengths" in result.output


def test_mlpot_worker_pythonpath_serves_an_installed_layout(tmp_path):
    """With mlpot installed as a regular package (a tree of links here, and ``-S`` so no
    editable import hook helps), the worker's PYTHONPATH gives the whole package
    (``mlpot.kernels``, mapped in at install) and ``benchmarks``, not the repository's
    partial ``mlpot/`` folder."""
    import os
    import site
    import subprocess

    from benchmarks.model_vs_mace import REPO_ROOT
    from scripts.typecheck import build_link_tree

    tree = tmp_path / "installed"
    tree.mkdir()
    build_link_tree(tree)
    (tree / "benchmarks").symlink_to(REPO_ROOT / "benchmarks")
    libraries = os.pathsep.join(site.getsitepackages())
    worker = "import mlpot, mlpot.kernels.spline, benchmarks.mlpot_worker; print(mlpot.__file__)"
    driver = (
        "import os, subprocess, sys\n"
        "from benchmarks.model_vs_mace import mlpot_worker_pythonpath\n"
        f"path = os.pathsep.join([mlpot_worker_pythonpath(), {libraries!r}])\n"
        f"sys.exit(subprocess.run([sys.executable, '-S', '-c', {worker!r}],\n"
        "                         env=dict(os.environ, PYTHONPATH=path)).returncode)\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-c", driver], cwd=tmp_path, text=True,
                          capture_output=True, check=False,
                          env=dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{libraries}"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(tree / "mlpot" / "__init__.py")


def test_transip_experiment_cli_defaults_match_the_config_defaults(monkeypatch):
    """The command's option defaults and ``ExperimentConfig``'s field defaults are written
    in two places (the CLI imports the experiment lazily); they must describe the same
    TransIP and equivariant models."""
    from typer.testing import CliRunner

    import benchmarks.transip_experiment as exp
    from benchmarks.__main__ import bench_app

    seen = []
    monkeypatch.setattr(exp, "run", seen.append)
    result = CliRunner().invoke(bench_app, ["transip-experiment"])
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    defaults = exp.ExperimentConfig()
    assert {k: cfg.transip[k] for k in defaults.transip} == defaults.transip
    assert {k: cfg.equivariant[k] for k in defaults.equivariant} == defaults.equivariant
    assert {k: cfg.equivariance[k] for k in defaults.equivariance} == defaults.equivariance
    assert (cfg.sizes, cfg.steps, cfg.lr, cfg.batch_size) == (
        defaults.sizes, defaults.steps, defaults.lr, defaults.batch_size)
