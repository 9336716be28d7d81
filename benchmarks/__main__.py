"""``python -m benchmarks``: benchmarks that print ratios against peers measured in the same run.

Run from the repository root; the folder is not part of the installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks (ratios against peers measured in the same run).",
                        no_args_is_help=True)


@bench_app.command("neighbors")
def neighbors(
    cutoff: float = typer.Option(5.0, help="Cutoff, Å."),
    repeats: int = typer.Option(5, help="Timed repetitions per case (median reported)."),
) -> None:
    """Neighbour lists: mlpot (vesin) vs ase.neighborlist vs matscipy on fcc Cu."""
    from benchmarks.neighbors import run

    run(cutoff=cutoff, repeats=repeats)


@bench_app.command("data")
def data(
    json_mb: float = typer.Option(200.0, help="Size of the generated MPTrj JSON, MB."),
    n_random: int = typer.Option(10000, help="Structures in the random-access comparison."),
    repeats: int = typer.Option(3, help="Timed repetitions (median reported)."),
) -> None:
    """MPTrj streaming rate and peak RSS; HDF5 vs extxyz vs aselmdb random access."""
    from benchmarks.data_throughput import run

    run(json_mb=json_mb, n_random=n_random, repeats=repeats)


@bench_app.command("md")
def md(
    blocks: int = typer.Option(5, help="Interleaved timed blocks per comparison (median)."),
    torchsim_python: str = typer.Option(None, help="Python that has torch-sim-atomistic "
                                        "(skips creating its venv)."),
    skip_torchsim: bool = typer.Option(False, help="Leave out the TorchSim comparison."),
) -> None:
    """MD engine vs TorchSim and ASE, equivariant MD-step overhead, batching (ratios)."""
    from benchmarks.md_overhead import run
    from benchmarks.torchsim_env import TorchSimEnvError

    try:
        run(blocks=blocks, torchsim_python=torchsim_python, skip_torchsim=skip_torchsim)
    except (TorchSimEnvError, RuntimeError) as err:
        typer.echo(f"benchmarks md: {err}", err=True)
        raise typer.Exit(1) from err


def _int_tuple(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise typer.BadParameter(f"{option} takes comma-separated integers, got {text!r}") \
            from err


def _float_pair(text: str, option: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError as err:
        raise typer.BadParameter(f"{option} takes two comma-separated numbers, got {text!r}") \
            from err
    return low, high


@bench_app.command("model")
def model(
    device: str = typer.Option("cpu", help="cpu or cuda."),
    dtype: str = typer.Option("float32", help="float32 or float64."),
    threads: int = typer.Option(2, help="torch threads per framework."),
    channels: int = typer.Option(64, help="Feature channels."),
    lmax: int = typer.Option(3, help="Highest l (MACE max_ell)."),
    correlation: int = typer.Option(3, help="Correlation order (both)."),
    layers: int = typer.Option(2, help="Message-passing layers."),
    knots: int = typer.Option(0, help="mlpot spline knots (0: the model's default)."),
    cutoff: float = typer.Option(5.0, help="Cutoff, Å (MACE r_max)."),
    hidden_lmax: int = typer.Option(
        1, help="Highest l of node features between layers (MACE hidden irreps)."),
    sizes: str = typer.Option("4,6", help="fcc Cu supercells n (4·n³ atoms) for energy+forces."),
    molecule: bool = typer.Option(True, help="Time aspirin (21 atoms) too."),
    train_sizes: str = typer.Option("4", help="fcc Cu supercells n of the training step "
                                    "('' to skip)."),
    scaling: str = typer.Option("6,14", help="Two supercells n for the per-atom scaling check "
                                "of the grid backend ('' to skip)."),
    repeats: int = typer.Option(5, help="Timed calls per framework and case (median)."),
    frameworks: str = typer.Option("grid,cg,mace", help="Subset of grid,triton,cg,mace "
                                   "(triton: the grid model with the fused Triton kernels, "
                                   "--device cuda only)."),
    quick: bool = typer.Option(False, help="Smoke test: small cells, 2 repeats."),
    mace_python: str = typer.Option(None, help="Python that has mace-torch (skips the venv)."),
    mace_venv: str = typer.Option(None, help="MACE venv dir (default ~/.cache/mlpot/...)."),
    mace_pythonpath: str = typer.Option(None, help="Prepended to PYTHONPATH of MACE only."),
    json_out: str = typer.Option(None, "--json", help="Also write the raw results here."),
    profile: bool = typer.Option(False, help="Also print torch.profiler top ops per case."),
) -> None:
    """mlpot EquivariantPotential (grid, cg) vs mace-torch: time, memory, ratios."""
    from benchmarks.mace_env import MaceEnvError
    from benchmarks.model_vs_mace import BenchConfig, ModelSpec, quick_config, run
    from benchmarks.worker_client import WorkerError

    scaling_n = _int_tuple(scaling, "--scaling")
    if len(scaling_n) not in (0, 2):
        raise typer.BadParameter(f"--scaling takes two sizes or '', got {scaling!r}")
    try:
        config = BenchConfig(
            model=ModelSpec(channels, lmax, correlation, layers, knots or None, cutoff,
                            hidden_lmax),
            device=device, dtype=dtype, threads=threads, cu_repeats=_int_tuple(sizes, "--sizes"),
            train_repeats=_int_tuple(train_sizes, "--train-sizes"), molecule=molecule,
            scaling_repeats=scaling_n or None,
            repeats=repeats, frameworks=tuple(f.strip() for f in frameworks.split(",")),
            mace_python=mace_python, mace_venv=mace_venv, mace_pythonpath=mace_pythonpath,
            profile=profile)
        if quick:
            config = quick_config(config)
        run(config, json_out)
    except (ValueError, MaceEnvError, WorkerError) as err:
        typer.echo(f"benchmarks model: {err}", err=True)
        raise typer.Exit(1) from err


@bench_app.command("transip")
def transip(
    sizes: str = typer.Option("20,100,500", help="Molecule sizes (atoms)."),
    repeats: int = typer.Option(5, help="Timed calls per model and size (median)."),
    threads: int = typer.Option(2, help="torch threads."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    dtype: str = typer.Option("float32", help="float32 or float64."),
    frame_averaging: bool = typer.Option(True, help="Also time TransIP with frame averaging."),
    neighbour_density: bool = typer.Option(True, help="TransIP with neighbour_density."),
    neighbour_sum: bool = typer.Option(True, help="TransIP with neighbour_sum (a sum over "
                                       "the neighbours in every block)."),
    angular_density: bool = typer.Option(True, help="TransIP with angular_density (the "
                                         "bond-angle power spectrum in the input tokens)."),
) -> None:
    """TransIPPotential vs EquivariantPotential: energy+forces time on molecules (both at
    their class defaults unless an option says otherwise)."""
    from benchmarks.transip_speed import run

    run(sizes=_int_tuple(sizes, "--sizes"), repeats=repeats, threads=threads, device=device,
        dtype=dtype, frame_averaging=frame_averaging,
        transip={"neighbour_density": neighbour_density, "neighbour_sum": neighbour_sum,
                 "angular_density": angular_density})


@bench_app.command("transip-md")
def transip_md(
    model: str = typer.Option(None, help="TransIP checkpoint (default: random weights)."),
    molecule: str = typer.Option("CH3CH2OH", help="ase.build.molecule name."),
    time_ps: float = typer.Option(1.0, help="Simulated time per run, ps."),
    timestep: float = typer.Option(0.5, help="Time step, fs."),
    temperature: float = typer.Option(300.0, help="Temperature of the start, K."),
    every: int = typer.Option(20, help="Sample energy and angular momentum every N steps."),
    threads: int = typer.Option(1, help="torch threads."),
    json_out: str = typer.Option(None, "--json", help="Also write the results here."),
    frames: str = typer.Option("both", help="Frame averaging: both, off or on (one run)."),
    series: str = typer.Option(None, help="Write each run's time series to PREFIX-*.csv."),
    relax: bool = typer.Option(True, help="Relax ASE's geometry with the model (FIRE) "
                               "before drawing momenta."),
    fmax: float = typer.Option(0.01, help="FIRE convergence, eV/A."),
    equilibrate_ps: float = typer.Option(2.0, help="Langevin equilibration at the "
                                         "temperature before the NVE runs, ps."),
) -> None:
    """TransIP NVE: energy and angular-momentum drift with and without frame averaging."""
    from benchmarks.transip_md import run

    try:
        run(model_path=model, molecule=molecule, time_ps=time_ps, timestep=timestep,
            temperature=temperature, every=every, threads=threads, json_out=json_out,
            frames=frames, series=series, relax_fmax=fmax if relax else None,
            equilibrate_ps=equilibrate_ps)
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"benchmarks transip-md: {err}", err=True)
        raise typer.Exit(1) from err


@bench_app.command("transip-experiment")
def transip_experiment(
    sizes: str = typer.Option("300,1000,3000", help="Training-set sizes (structures)."),
    valid: int = typer.Option(100, help="Validation structures (model selection, tuning)."),
    test: int = typer.Option(200, help="Held-out test structures (generation seed + 1)."),
    steps: int = typer.Option(4000, help="Optimiser steps per training (all variants)."),
    batch: int = typer.Option(16, help="Structures per batch."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (cosine)."),
    seed: int = typer.Option(0, help="Seed of labels, initialisation and batch order."),
    train_seed: int = typer.Option(None, help="Seed of initialisation and batch order only "
                                   "(default: --seed), for the spread between trainings."),
    variants: str = typer.Option(",".join(("contrastive", "augment", "none", "equivariant")),
                                 help="Variants to train."),
    transip_dim: int = typer.Option(56, help="TransIP token width."),
    transip_layers: int = typer.Option(3, help="TransIP blocks."),
    neighbour_density: bool = typer.Option(True, help="TransIP neighbour_density (the "
                                           "radial neighbour density in the input tokens)."),
    neighbour_sum: bool = typer.Option(True, help="TransIP neighbour_sum (a sum over the "
                                       "neighbours within the cutoff in every block)."),
    wavelengths: str = typer.Option("2,40", help="TransIP rotary wavelengths MIN,MAX (Å)."),
    learned_rotary: bool = typer.Option(True, help="TransIP learned_rotary (trained rotary "
                                        "wave vectors)."),
    angular_density: bool = typer.Option(True, help="TransIP angular_density (the "
                                         "bond-angle power spectrum in the input tokens)."),
    pair_repulsion: bool = typer.Option(False, help="Both architectures with the ZBL "
                                        "pair repulsion (pair_repulsion=True)."),
    equivariant_channels: int = typer.Option(48, help="EquivariantPotential channels."),
    equivariant_lmax: int = typer.Option(2, help="EquivariantPotential lmax."),
    weight: float = typer.Option(0.03, help="Contrastive weight λ (tuned on the "
                                "validation split: 0.01, 0.03, 0.1)."),
    temperature: float = typer.Option(0.1, help="Contrastive InfoNCE temperature."),
    rotation_negatives: int = typer.Option(2, help="Wrong-rotation negatives per structure."),
    level: str = typer.Option("system", help="Contrastive level: system (pooled "
                              "embeddings) or atoms (atom tokens)."),
    contrastive_augment: bool = typer.Option(True, help="The contrastive variant's "
                                             "energy/force loss sees rotated batches "
                                             "(--no-contrastive-augment: the batches as "
                                             "given; symmetry from the contrastive term "
                                             "alone)."),
    averaged_rotations: int = typer.Option(32, help="Rotations of the rotation-averaged "
                                           "force MAE (0 skips it)."),
    train_error_structures: int = typer.Option(400, help="Training structures the "
                                               "training-set force MAE is measured on "
                                               "(0 skips it)."),
    speed_sizes: str = typer.Option("20,100,500", help="Speed-table sizes ('' skips it)."),
    threads: int = typer.Option(1, help="torch threads (per training)."),
    workers: int = typer.Option(1, help="Trainings at once, one process each "
                                "(workers x threads <= cores)."),
    out: str = typer.Option("runs/transip-experiment", help="Run folders and results."),
    cache: str = typer.Option(None, help="Label cache (default OUT/labels)."),
    pilot: bool = typer.Option(False, help="Tuning pilot: report validation-set errors "
                               "(the test set is not used)."),
) -> None:
    """TransIP contrastive/augment/none vs EquivariantPotential on xTB labels (.aselmdb)."""
    from pathlib import Path

    from benchmarks.transip_experiment import ExperimentConfig, run

    try:
        shortest, longest = _float_pair(wavelengths, "--wavelengths")
        cfg = ExperimentConfig(
            cache=Path(cache) if cache else Path(out) / "labels", out=Path(out),
            sizes=_int_tuple(sizes, "--sizes"), valid=valid, test=test, steps=steps,
            batch_size=batch, lr=lr, seed=seed, train_seed=train_seed,
            variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
            transip={"dim": transip_dim, "heads": 4, "num_layers": transip_layers,
                     "head_hidden": 64, "neighbour_density": neighbour_density,
                     "neighbour_sum": neighbour_sum,
                     "min_wavelength": shortest, "max_wavelength": longest,
                     "learned_rotary": learned_rotary, "angular_density": angular_density,
                     "pair_repulsion": pair_repulsion},
            equivariant={"channels": equivariant_channels, "lmax": equivariant_lmax,
                         "num_layers": 2, "avg_num_neighbors": "auto",
                         "pair_repulsion": pair_repulsion},
            equivariance={"weight": weight, "temperature": temperature,
                          "rotation_negatives": rotation_negatives, "variance_floor": 0.1,
                          "level": level, "augment": contrastive_augment},
            averaged_rotations=averaged_rotations, train_error_structures=train_error_structures,
            speed_sizes=_int_tuple(speed_sizes, "--speed-sizes") if speed_sizes else (),
            threads=threads, report_on="valid" if pilot else "test", workers=workers)
        run(cfg)
    except ValueError as err:
        typer.echo(f"benchmarks transip-experiment: {err}", err=True)
        raise typer.Exit(1) from err


@bench_app.command("kernels")
def kernels(
    device: str = typer.Option("cpu", help="cpu or cuda (Triton runs on cuda only)."),
    dtype: str = typer.Option("float32", help="float32 or float64."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    lmax: str = typer.Option("1,2,3,4", help="Degrees L of the product table."),
    edges: str = typer.Option("", help="Rows E of the kernel tables (default: "
                              "10000,100000,1000000 on cuda, 2000,10000 on cpu)."),
    channels: int = typer.Option(32, help="Channels of the product table."),
    repeats: int = typer.Option(5, help="Timed calls per entry (median)."),
    sizes: str = typer.Option("", help="fcc Cu supercells n (4·n³ atoms) of the model "
                              "table (default: 4,6,14 on cuda, 4 on cpu; '0' skips it)."),
    train_sizes: str = typer.Option("", help="Supercells of the training step (default: "
                                    "4,6,14 on cuda, 4 on cpu)."),
    frameworks: str = typer.Option("grid,cg,mace", help="Model table frameworks (triton "
                                   "is added on cuda)."),
    mace_python: str = typer.Option(None, help="Python that has mace-torch (skips the venv)."),
    mace_venv: str = typer.Option(None, help="MACE venv dir (default ~/.cache/mlpot/...)."),
    mace_pythonpath: str = typer.Option(None, help="Prepended to PYTHONPATH of MACE only."),
) -> None:
    """Triton kernels vs torch references vs e3nn CG; the model with/without them vs MACE."""
    from benchmarks.kernels import KernelBenchConfig, model_config_for, run_kernels
    from benchmarks.mace_env import MaceEnvError
    from benchmarks.model_vs_mace import BenchConfig, ModelSpec, run
    from benchmarks.worker_client import WorkerError

    gpu = device == "cuda"
    rows = _int_tuple(edges, "--edges") or ((10_000, 100_000, 1_000_000) if gpu
                                            else (2_000, 10_000))
    cells = _int_tuple(sizes, "--sizes") or ((4, 6, 14) if gpu else (4,))
    train = _int_tuple(train_sizes, "--train-sizes") or ((4, 6, 14) if gpu else (4,))
    try:
        triton_ok = run_kernels(KernelBenchConfig(
            device=device, dtype=dtype, lmax=_int_tuple(lmax, "--lmax"), edges=rows,
            channels=channels, repeats=repeats, threads=threads))
        if cells == (0,):
            return
        config = model_config_for(BenchConfig(
            model=ModelSpec(), device=device, dtype=dtype, threads=threads, cu_repeats=cells,
            train_repeats=train, molecule=False, scaling_repeats=None, repeats=repeats,
            frameworks=tuple(f.strip() for f in frameworks.split(",")),
            mace_python=mace_python, mace_venv=mace_venv, mace_pythonpath=mace_pythonpath),
            triton_ok)
        run(config)
    except (ValueError, MaceEnvError, WorkerError) as err:
        typer.echo(f"benchmarks kernels: {err}", err=True)
        raise typer.Exit(1) from err


@bench_app.command("train")
def train(
    structures: int = typer.Option(400, help="EMT metal structures generated (85/15 split)."),
    epochs: int = typer.Option(4, help="Epochs (the same optimiser steps for both)."),
    batch: int = typer.Option(4, help="Structures per batch."),
    threads: int = typer.Option(1, help="torch threads per framework."),
    mlpot_channels: int = typer.Option(
        0, help="mlpot channels (lmax 2, hidden_lmax 1); 0: match MACE's parameter count."),
    mace_channels: int = typer.Option(16, help="MACE num_channels (max_L 1, max_ell 2)."),
) -> None:
    """Training: mlpot train vs mace_run_train on the same data, split and steps."""
    from benchmarks.mace_env import MaceEnvError
    from benchmarks.train_vs_mace import run

    try:
        run(structures=structures, epochs=epochs, batch=batch, threads=threads,
            mlpot_channels=mlpot_channels or None, mace_channels=mace_channels)
    except (MaceEnvError, RuntimeError) as err:
        typer.echo(f"benchmarks train: {err}", err=True)
        raise typer.Exit(1) from err


@bench_app.command("trajcast")
def trajcast(
    steps: int = typer.Option(10_000, help="Forecast steps per rollout (reference: same time)."),
    systems: str = typer.Option("ar,cu,ethanol", help="Comma-separated: ar, cu, ethanol."),
    seed: int = typer.Option(0, help="Seeds the start, both thermostats and the rollout."),
    cache: str = typer.Option("runs/bench-trajcast/cache",
                              help="Cached equilibrated starts and reference MD."),
    out: str = typer.Option("runs/bench-trajcast", help="PNG plots and results.json."),
    peer_steps: int = typer.Option(200, help="Timed MD steps of the equivariant-potential peer."),
    model: Annotated[list[str] | None, typer.Option(
        help="SYSTEM=CHECKPOINT: use this forecaster instead of the shipped one (repeatable)."
    )] = None,
    equilibration_fs: float = typer.Option(None, help="Override every system's "
                                           "equilibration, fs (short test runs)."),
) -> None:
    """TrajCast rollouts vs reference MD (RDF, T, D, VDOS, bonds, stability) and speed."""
    from benchmarks.trajcast import run

    try:
        models = dict(item.split("=", 1) for item in model or [])
        run([s.strip() for s in systems.split(",") if s.strip()], steps, seed, Path(cache),
            Path(out), peer_steps, models, equilibration_fs)
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"benchmarks trajcast: {err}", err=True)
        raise typer.Exit(1) from err


if __name__ == "__main__":
    bench_app()
