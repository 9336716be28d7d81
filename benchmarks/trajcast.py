"""``python -m benchmarks trajcast``: TrajCast rollouts against reference MD, and speed.

For each system (liquid Ar with Lennard-Jones, fcc Cu with EMT, ethanol with
GFN2-xTB; :mod:`benchmarks.trajcast_systems`) the shipped forecaster rolls out
``--steps`` forecast steps from an equilibrated state, and the reference MD runs the
same simulated time from the same state, both under CSVR at the same target. Printed
per system: RDF error (target ≤ 0.10), mean temperature ± spread, stability,
self-diffusion (liquid; within 20 % of the reference), VDOS peaks (crystal,
molecule), bond-length distributions (molecule), and speed: simulated ps per wall
second of the rollout against ``mlpot md``'s engine with an equivariant potential of
the forecaster's size at the reference time step (target ≥ 10×), measured in the same
run. Plots (PNG): ``rdf.png``, ``msd.png``, ``vdos.png``, ``bonds.png`` in ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.trajcast_analysis import (
    THZ_TO_INV_CM,
    BondStats,
    bond_stats,
    diffusion,
    matched_shifts,
    pair_distribution,
    peaks,
    rdf_frames,
    relative_l1,
    spectrum,
    split_half_rdf_error,
    temperatures,
)
from benchmarks.trajcast_systems import (
    SYSTEMS,
    System,
    degrees_of_freedom,
    equilibrated,
    load_forecaster,
    md_peer_speed,
    reference_md,
    reference_speed,
    rollout,
)

RDF_TARGET, DIFFUSION_TARGET, SPEED_TARGET = 0.10, 0.20, 10.0


@dataclass
class Result:
    """Numbers of one system (units in the names)."""

    name: str
    forecast_fs: float
    md_dt_fs: float
    steps: int
    stable: bool
    message: str
    rdf_error: float
    rdf_floor: float
    t_mean: tuple[float, float]
    t_std: tuple[float, float]
    diffusion: tuple[float, float] | None = None
    vdos_peaks_thz: tuple[list[float], list[float]] | None = None
    bonds: BondStats | None = None
    rollout_ps_per_s: float = 0.0
    md_ps_per_s: float = 0.0
    md_params: int = 0
    reference_ps_per_s: float = 0.0
    plots: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.rollout_ps_per_s / self.md_ps_per_s if self.md_ps_per_s else float("nan")


def evaluate_system(
    system: System, steps: int, seed: int, cache: Path, peer_steps: int
) -> Result:
    """Run (or load) both trajectories of one system and compare them."""
    model = load_forecaster(system)
    start = equilibrated(system, seed, cache)
    ref = reference_md(system, start, model.forecast_fs, steps, seed, cache)
    roll = rollout(system, model, start, steps, seed)
    masses = start.get_masses()
    dof = degrees_of_freedom(system, start)
    p_ref, v_ref = _after_burn_in(ref.positions), _after_burn_in(ref.velocities)
    p_roll, v_roll = _after_burn_in(roll.positions), _after_burn_in(roll.velocities)
    t_ref = temperatures(_frames(v_ref), masses, dof)
    t_roll = temperatures(_frames(v_roll), masses, dof)
    f_ref, f_roll = _frames(p_ref), _frames(p_roll)
    r, g_ref = pair_distribution(rdf_frames(f_ref, system.periodic), start,
                                 system.rdf_r_max, 160, system.periodic)
    _, g = pair_distribution(rdf_frames(f_roll, system.periodic), start,
                             system.rdf_r_max, 160, system.periodic)
    floor = split_half_rdf_error(p_ref, start, system.rdf_r_max, 160, system.periodic)
    res = Result(
        system.name, model.forecast_fs, system.md_dt_fs, roll.steps, roll.stable, roll.message,
        relative_l1(r, g, g_ref), floor, (t_roll.mean(), t_ref.mean()),
        (t_roll.std(), t_ref.std()),
    )
    res.plots["rdf"] = (r, g, g_ref)
    # time-dependent observables: the runs' atoms side by side ([T, R·N, 3])
    masses_all = np.tile(masses, p_ref.shape[0])
    p_ref, v_ref = _side_by_side(p_ref), _side_by_side(v_ref)
    p_roll, v_roll = _side_by_side(p_roll), _side_by_side(v_roll)
    if system.kind == "liquid":
        lags = min(int(5_000.0 / model.forecast_fs), min(len(p_ref), len(p_roll)) // 4)
        times, msd_ref, d_ref = diffusion(p_ref, model.forecast_fs, lags)
        _, msd_roll, d_roll = diffusion(p_roll, model.forecast_fs, lags)
        res.diffusion = (d_roll, d_ref)
        res.plots["msd"] = (times, msd_roll, msd_ref)
    else:
        lags = min(int(4000.0 / model.forecast_fs), min(len(v_ref), len(v_roll)) // 4)
        f, s_ref = spectrum(v_ref, masses_all, model.forecast_fs, lags)
        _, s_roll = spectrum(v_roll, masses, model.forecast_fs, lags)
        res.vdos_peaks_thz = (peaks(f, s_roll).tolist(), peaks(f, s_ref).tolist())
        res.plots["vdos"] = (f, s_roll, s_ref)
    if system.kind == "molecule":
        res.bonds, res.plots["bonds"] = bond_stats(start, f_ref, f_roll)
        res.stable = res.stable and res.bonds.max_stretch < 1.5
    res.rollout_ps_per_s = roll.ps_per_s
    res.reference_ps_per_s = reference_speed(ref, system)
    res.md_ps_per_s, res.md_params = md_peer_speed(system, model, start, peer_steps)
    return res


def _after_burn_in(x: np.ndarray) -> np.ndarray:
    """``[R, T, N, 3]`` without the first 10 % of every run's frames."""
    return x[:, x.shape[1] // 10 :]


def _frames(x: np.ndarray) -> np.ndarray:
    """All frames of all runs, ``[R·T, N, 3]``."""
    return x.reshape(-1, *x.shape[2:])


def _side_by_side(x: np.ndarray) -> np.ndarray:
    """The runs' atoms side by side, ``[T, R·N, 3]`` (per-atom averages are unchanged)."""
    r, t, n = x.shape[:3]
    return x.transpose(1, 0, 2, 3).reshape(t, r * n, 3)


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if np.isfinite(x) else "n/a"


def print_result(res: Result) -> None:
    ok = lambda flag: "PASS" if flag else "FAIL"  # noqa: E731
    print(f"\n== {res.name}: Δt {res.forecast_fs:g} fs = {res.forecast_fs / res.md_dt_fs:g} × "
          f"the {res.md_dt_fs:g} fs reference step; {res.steps} forecast steps "
          f"({res.steps * res.forecast_fs / 1000:.1f} ps)")
    print(f"  stable:            {'yes' if res.stable else 'NO ' + res.message}")
    print(f"  RDF error:         {res.rdf_error:.3f} (target ≤ {RDF_TARGET}) "
          f"{ok(res.rdf_error <= RDF_TARGET)}; reference first half vs second half "
          f"{res.rdf_floor:.3f} (the sampling floor)")
    print(f"  T mean ± std, K:   rollout {res.t_mean[0]:.1f} ± {res.t_std[0]:.1f}, "
          f"reference {res.t_mean[1]:.1f} ± {res.t_std[1]:.1f}")
    if res.diffusion is not None:
        d_roll, d_ref = res.diffusion
        rel = d_roll / d_ref - 1
        print(f"  D, 1e-5 cm²/s:     rollout {d_roll * 1e4:.3f}, reference {d_ref * 1e4:.3f} "
              f"({rel:+.1%}; target ±{DIFFUSION_TARGET:.0%}) {ok(abs(rel) <= DIFFUSION_TARGET)}")
    if res.vdos_peaks_thz is not None:
        roll, ref = res.vdos_peaks_thz
        shifts = matched_shifts(np.array(ref), np.array(roll))
        print("  VDOS peaks, THz:   reference " + ", ".join(f"{f:.2f}" for f in ref)
              + "; rollout " + ", ".join(f"{f:.2f}" for f in roll)
              + "; shifts " + ", ".join(f"{s:+.2f}" for s in shifts)
              + (f" (cm⁻¹: {', '.join(f'{s * THZ_TO_INV_CM:+.0f}' for s in shifts)})"
                 if res.name == "ethanol" else ""))
    if res.bonds is not None:
        for name, (m_ref, m_roll) in res.bonds.mean.items():
            s_ref, s_roll = res.bonds.std[name]
            print(f"  bond {name:4s} Å:       reference {m_ref:.4f} ± {s_ref:.4f}, rollout "
                  f"{m_roll:.4f} ± {s_roll:.4f}; histogram error {res.bonds.error[name]:.3f}")
    print(f"  speed, ps/s:       rollout {_fmt(res.rollout_ps_per_s)}, mlpot md "
          f"(EquivariantPotential, {res.md_params} parameters, {res.md_dt_fs:g} fs) "
          f"{_fmt(res.md_ps_per_s)} → {_fmt(res.speedup)}× (target ≥ {SPEED_TARGET:g}×) "
          f"{ok(res.speedup >= SPEED_TARGET)}; reference MD {_fmt(res.reference_ps_per_s)}")


def write_plots(results: list[Result], out: Path) -> list[Path]:
    """RDF / MSD / VDOS / bond-length comparison PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, xlabel, ylabel in (
        ("rdf", "r (Å)", "g(r)"),
        ("msd", "lag (ps)", "MSD (Å²)"),
        ("vdos", "frequency (THz)", "VDOS"),
    ):
        chosen = [r for r in results if key in r.plots]
        if not chosen:
            continue
        fig, axes = plt.subplots(1, len(chosen), figsize=(4.5 * len(chosen), 3.6), squeeze=False)
        for ax, res in zip(axes[0], chosen, strict=True):
            x, y, y_ref = res.plots[key]
            x = x / 1000 if key == "msd" else x
            ax.plot(x, y_ref, "k-", lw=1.5, label="reference MD")
            ax.plot(x, y, "r--", lw=1.2, label=f"TrajCast ({res.forecast_fs:g} fs)")
            ax.set(title=res.name, xlabel=xlabel, ylabel=ylabel)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for res in results:
        if "bonds" not in res.plots:
            continue
        hists = res.plots["bonds"]
        fig, axes = plt.subplots(1, len(hists), figsize=(3.6 * len(hists), 3.2), squeeze=False)
        for ax, (name, (x, h_ref, h)) in zip(axes[0], hists.items(), strict=True):
            ax.plot(x, h_ref, "k-", label="reference")
            ax.plot(x, h, "r--", label="TrajCast")
            ax.set(title=f"{res.name} {name}", xlabel="bond length (Å)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "bonds.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def run(systems: list[str], steps: int, seed: int, cache: Path, out: Path,
        peer_steps: int, models: dict[str, str] | None = None,
        equilibration_fs: float | None = None) -> list[Result]:
    """Evaluate the systems, print their tables, write the plots and ``results.json``.

    ``models`` replaces a system's shipped forecaster (name → checkpoint path or name);
    ``equilibration_fs`` replaces every system's equilibration (short test runs).
    """
    torch.set_num_threads(1)
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; known: {sorted(SYSTEMS)}")
    results = []
    for name in systems:
        begin = time.perf_counter()
        system = SYSTEMS[name]
        if models and name in models:
            system = dataclasses.replace(system, forecaster=models[name])
        if equilibration_fs is not None:
            system = dataclasses.replace(system, equilibration_fs=equilibration_fs)
        res = evaluate_system(system, steps, seed, cache, peer_steps)
        print_result(res)
        print(f"  ({time.perf_counter() - begin:.0f} s for this system)", flush=True)
        results.append(res)
    for path in write_plots(results, out):
        print(f"wrote {path}")
    summary = [
        {k: v for k, v in vars(r).items() if k not in ("plots", "bonds")}
        | {"speedup": r.speedup, "bonds": vars(r.bonds) if r.bonds else None}
        for r in results
    ]
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    return results
