"""Model benchmark: mlpot ``EquivariantPotential`` (grid and cg backends) vs mace-torch.

Measured in one run (``python -m benchmarks model``): energy+forces wall time and peak
memory on fcc Cu supercells and aspirin, one training step (energy+force loss,
double backward, Adam step) on a Cu cell, each with the same hyper-parameters for
every framework and random weights; then energy+forces time per atom of the grid
backend at ~10k atoms vs 864 atoms.

Every framework runs in its own worker process (MACE in its own venv, see
:mod:`benchmarks.mace_env`), started fresh for each case: the first call
gives the peak memory, then warm-up calls, then timed calls alternating between
the frameworks (one call each per round, order rotating) so machine noise hits
them alike; medians are reported. Neighbour lists are built once per worker and
are not timed.

Usage: ``python -m benchmarks model`` (first use creates MACE's venv, see
:func:`~benchmarks.mace_env.ensure_mace_venv`); ``--quick`` for a smoke test;
``--profile`` adds torch.profiler tables. On a machine without internet, install
mace-torch 0.3.16 + e3nn 0.4.4 from wheels into a separate directory
(``pip install --no-deps --target DIR``) and pass ``--mace-python python3
--mace-pythonpath DIR``: only the MACE worker sees DIR.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

import mlpot
from benchmarks.mace_env import ensure_mace_venv
from benchmarks.model_cases import (
    Case,
    build_cases,
    cu_case,
    species_of,
    structure_message,
)
from benchmarks.model_report import print_report
from benchmarks.worker_client import Worker, WorkerError, worker_env

FRAMEWORKS = ("grid", "triton", "cg", "mace")
#: mlpot frameworks → (model backend, kernels): "grid" is the torch reference, "triton"
#: the same model with the fused Triton kernels (GPU only).
MLPOT_FRAMEWORKS = {"grid": ("grid", "torch"), "triton": ("grid", "triton"),
                    "cg": ("cg", "torch")}
MACE_WORKER = Path(__file__).with_name("mace_worker.py")
REPO_ROOT = Path(__file__).resolve().parent.parent  # so `-m benchmarks.mlpot_worker` resolves


def mlpot_worker_pythonpath() -> str:
    """PYTHONPATH of the mlpot worker: the folder ``mlpot`` was imported from, then the
    repository (for ``benchmarks``).

    The repository's ``mlpot/`` folder is not the whole package (``kernels/``, ``md/`` and
    ``datasets/`` are mapped into it at install), so with a regular (non-editable) install
    the repository must not come first: its ``mlpot/`` would shadow the installed one.
    The path is not resolved, so a tree of links to the sources stays that tree.
    """
    home = str(Path(mlpot.__file__).parent.parent)
    return os.pathsep.join(dict.fromkeys([home, str(REPO_ROOT)]))


@dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters shared by every framework.

    Attributes:
        channels: feature channels per (l, m).
        lmax: highest spherical-harmonic degree (mlpot ``lmax``, MACE ``max_ell``).
        correlation: body order − 1 of the node update (both).
        num_layers: message-passing layers (MACE ``num_interactions``).
        num_knots: spline knots of mlpot's radial basis (None: the model's default;
            MACE uses 8 Bessel functions and its radial MLP [64, 64, 64]).
        cutoff: Å (MACE ``r_max``).
        hidden_lmax: highest l of the node features passed between layers (mlpot
            ``hidden_lmax``; MACE ``hidden_irreps`` = channels × (0e + 1o + …)).
    """

    channels: int = 64
    lmax: int = 3
    correlation: int = 3
    num_layers: int = 2
    num_knots: int | None = None
    cutoff: float = 5.0
    hidden_lmax: int = 1

    def message(self, species: list[int], framework: str) -> dict:
        """The worker protocol's ``model`` object (``framework`` a key of FRAMEWORKS)."""
        backend, kernels = MLPOT_FRAMEWORKS.get(framework, (framework, None))
        return {"species": species, "channels": self.channels, "lmax": self.lmax,
                "hidden_lmax": self.hidden_lmax, "correlation": self.correlation,
                "num_layers": self.num_layers, "num_knots": self.num_knots,
                "cutoff": self.cutoff, "backend": backend, "kernels": kernels}


@dataclass(frozen=True)
class BenchConfig:
    """What ``python -m benchmarks model`` measures and how.

    Attributes:
        model: hyper-parameters.
        device: "cpu" or "cuda".
        dtype: "float32" or "float64".
        threads: torch threads of every worker.
        cu_repeats: fcc Cu supercells (4·n³ atoms) timed for energy+forces.
        train_repeats: fcc Cu supercells of the training step (empty: skip).
        molecule: time aspirin (21 atoms).
        scaling_repeats: (small, large) supercells for the per-atom scaling check of
            the grid backend (None: skip).
        repeats: timed calls per framework and case (median reported).
        scaling_timed: timed calls per size in the scaling check.
        warmup: untimed calls after the peak-memory call.
        frameworks: subset of ``FRAMEWORKS`` ("triton" only with device "cuda").
        mace_python: interpreter with mace-torch (None: the managed venv).
        mace_venv: where the managed venv lives (None: default cache dir).
        mace_pythonpath: prepended to PYTHONPATH of the MACE worker only.
        seed: RNG seed of weights and training labels.
        profile: after timing, also record a torch.profiler table of one call of
            every framework on every case.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 2
    cu_repeats: tuple[int, ...] = (4, 6)
    train_repeats: tuple[int, ...] = (4,)
    molecule: bool = True
    scaling_repeats: tuple[int, int] | None = (6, 14)
    repeats: int = 5
    scaling_timed: int = 3
    warmup: int = 1
    frameworks: tuple[str, ...] = ("grid", "cg", "mace")
    mace_python: str | None = None
    mace_venv: str | None = None
    mace_pythonpath: str | None = None
    seed: int = 0
    profile: bool = False

    def __post_init__(self) -> None:
        bad = [f for f in self.frameworks if f not in FRAMEWORKS]
        if bad or not self.frameworks:
            raise ValueError(f"frameworks must be a non-empty subset of {FRAMEWORKS}, "
                             f"got {list(self.frameworks)}")
        if "triton" in self.frameworks and self.device != "cuda":
            raise ValueError("framework 'triton' needs --device cuda (Triton kernels run on "
                             "GPUs; the CPU interpreter is for tests only)")
        if self.device not in ("cpu", "cuda") or self.dtype not in ("float32", "float64"):
            raise ValueError(f"device must be cpu|cuda and dtype float32|float64, got "
                             f"{self.device!r}, {self.dtype!r}")
        if min(self.repeats, self.threads, self.scaling_timed) < 1 or self.warmup < 0:
            raise ValueError("repeats, scaling_timed and threads must be >= 1, warmup >= 0")


def quick_config(config: BenchConfig) -> BenchConfig:
    """A smoke-test version of ``config``: small cells, few repeats."""
    return replace(config, cu_repeats=(2, 3),
                   train_repeats=(2,) if config.train_repeats else (),
                   scaling_repeats=None if config.scaling_repeats is None else (3, 5),
                   repeats=2, scaling_timed=2, warmup=1)


@dataclass(frozen=True)
class Measurement:
    """One framework on one case.

    Attributes:
        case: case name.
        framework: "grid", "cg" or "mace".
        task: "energy_forces" or "train_step".
        num_atoms, num_edges, num_params: as reported by the worker.
        times: timed calls, s.
        peak_bytes: peak memory rise of the first call, bytes.
        peak_method: how the peak was measured.
        versions: package versions in the worker.
        profile: torch.profiler top-ops table of one call, when asked for.
    """

    case: str
    framework: str
    task: str
    num_atoms: int
    num_edges: int
    num_params: int
    times: tuple[float, ...]
    peak_bytes: int
    peak_method: str
    versions: dict[str, str]
    profile: str | None = None

    @property
    def median(self) -> float:
        """Median of the timed calls, s."""
        return float(np.median(self.times))


@dataclass(frozen=True)
class BenchResult:
    """Everything one run measured.

    Attributes:
        config: what was asked for.
        measurements: every framework on every case.
        scaling: the grid backend at the two scaling sizes, small first (or empty).
        scaling_error: why the scaling check failed, if it did (e.g. out of memory).
    """

    config: BenchConfig
    measurements: tuple[Measurement, ...]
    scaling: tuple[Measurement, ...] = ()
    scaling_error: str | None = None

    def get(self, case: str, framework: str) -> Measurement | None:
        """The measurement of ``framework`` on ``case``, if made."""
        for m in self.measurements:
            if m.case == case and m.framework == framework:
                return m
        return None


def _spawn_factory(config: BenchConfig, mace_python: str | None, workdir: str
                   ) -> Callable[[str], Worker]:
    def spawn(framework: str) -> Worker:
        if framework == "mace":
            return Worker("mace", [mace_python, str(MACE_WORKER)],
                          worker_env(config.threads, config.mace_pythonpath), cwd=workdir)
        return Worker(f"mlpot-{framework}",
                      [sys.executable, "-m", "benchmarks.mlpot_worker"],
                      worker_env(config.threads, mlpot_worker_pythonpath()), cwd=workdir)
    return spawn


def measure_interleaved(
    entries: list[tuple[str, Case]], config: BenchConfig, species: list[int],
    spawn: Callable[[str], Worker], repeats: int,
) -> list[Measurement]:
    """Peak memory and interleaved timings of (framework, case) pairs, fresh workers."""
    workers: list[Worker] = []
    try:
        loads = []
        workers += [spawn(framework) for framework, _ in entries]
        for worker, (framework, case) in zip(workers, entries, strict=True):
            loads.append(worker.request({
                "op": "load", "structure": structure_message(case.atoms),
                "model": config.model.message(species, framework), "task": case.task,
                "dtype": config.dtype, "device": config.device, "threads": config.threads,
                "seed": config.seed}))
        peaks = [w.request({"op": "peak"}) for w in workers]
        if config.warmup:
            for w in workers:
                w.request({"op": "run", "repeats": config.warmup})
        times: list[list[float]] = [[] for _ in workers]
        for r in range(repeats):
            for k in range(len(workers)):
                idx = (k + r) % len(workers)  # rotate who goes first
                times[idx] += workers[idx].request({"op": "run", "repeats": 1})["times"]
        profiles = [w.request({"op": "profile"})["table"] if config.profile else None
                    for w in workers]
    finally:
        for w in workers:
            w.close()
    return [Measurement(case.name, framework, case.task, load["num_atoms"], load["num_edges"],
                        load["num_params"], tuple(t), peak["peak_bytes"], peak["method"],
                        load["versions"], prof)
            for (framework, case), load, peak, t, prof in zip(entries, loads, peaks, times,
                                                              profiles, strict=True)]


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where unreadable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def scaling_memory_problem(measurements: list[Measurement], large_atoms: int,
                           available: int | None) -> str | None:
    """Why the large scaling case would not fit in CPU memory, or None if it should.

    Extrapolates the grid backend's peak memory per atom from its largest
    energy+forces case (with 30 % margin) and compares it with ``available``.
    """
    grid = [m for m in measurements if m.framework == "grid" and m.task == "energy_forces"]
    if not grid or available is None:
        return None
    ref = max(grid, key=lambda m: m.num_atoms)
    need = 1.3 * ref.peak_bytes * large_atoms / ref.num_atoms
    if need <= 0.8 * available:
        return None
    return (f"skipped: {large_atoms} atoms would need ~{need / 2**30:.1f} GiB (grid peak "
            f"{ref.peak_bytes / 2**20:.0f} MiB at {ref.num_atoms} atoms, scaled per atom), "
            f"only {available / 2**30:.1f} GiB available")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = _log) -> BenchResult:
    """Measure every case (and the scaling check) as ``config`` says."""
    mace_python = None
    if "mace" in config.frameworks:
        mace_python = config.mace_python or str(ensure_mace_venv(
            Path(config.mace_venv) if config.mace_venv else None, log=log))
    cases = build_cases(config.cu_repeats, config.train_repeats, config.molecule)
    scaling_cases = ([cu_case(n) for n in config.scaling_repeats]
                     if config.scaling_repeats and "grid" in config.frameworks else [])
    species = species_of([*cases, *scaling_cases])
    measurements: list[Measurement] = []
    scaling: list[Measurement] = []
    scaling_error = None
    with tempfile.TemporaryDirectory(prefix="mlpot-bench-") as workdir:
        spawn = _spawn_factory(config, mace_python, workdir)
        for case in cases:
            log(f"measuring {case.name} ({len(case.atoms)} atoms, {case.task}): "
                f"{', '.join(config.frameworks)}")
            measurements += measure_interleaved([(f, case) for f in config.frameworks],
                                                config, species, spawn, config.repeats)
        problem = None
        if scaling_cases and config.device == "cpu":
            problem = scaling_memory_problem(measurements, len(scaling_cases[1].atoms),
                                             available_memory_bytes())
        if problem:
            scaling_error = problem
            log(f"scaling check {problem}")
        elif scaling_cases:
            log(f"scaling: grid backend, {len(scaling_cases[0].atoms)} vs "
                f"{len(scaling_cases[1].atoms)} atoms")
            try:
                scaling = measure_interleaved([("grid", c) for c in scaling_cases], config,
                                              species, spawn, config.scaling_timed)
            except WorkerError as err:  # keep the main results (e.g. 10k atoms OOM)
                scaling_error = str(err)
                log(f"scaling check failed: {err}")
    return BenchResult(config, tuple(measurements), tuple(scaling), scaling_error)


def write_json(result: BenchResult, path: str | Path) -> None:
    """Write the raw result as JSON (atomically: temp file, then rename)."""
    path = Path(path)
    payload = {"config": asdict(result.config),
               "measurements": [asdict(m) for m in result.measurements],
               "scaling": [asdict(m) for m in result.scaling]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def run(config: BenchConfig | None = None, json_path: str | Path | None = None
        ) -> BenchResult:
    """Run the benchmark, print the tables, optionally save JSON; return the result."""
    result = run_benchmark(config or BenchConfig())
    print_report(result)
    if json_path is not None:
        write_json(result, json_path)
    return result
