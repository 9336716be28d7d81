"""Compare a TrajCast rollout with the reference MD it was trained on: RDF and MSD.

    python examples/trajcast_compare.py start REF.h5 START.extxyz
    python examples/trajcast_compare.py compare REF.h5 ROLLOUT.extxyz OUT_DIR

``start`` writes the first frame (positions, velocities, cell) of the reference
trajectory — the last group of a store that training did not see (``trajcast_rollout.sh``
writes one with its own seed) — as the rollout's starting structure. ``compare`` reads
that trajectory and the rollout (``mlpot rollout --traj``, any format mlpot writes), and
writes OUT_DIR/rdf.png, OUT_DIR/msd.png and OUT_DIR/comparison.csv; it prints the RDF error
∫|g − g_ref| dr / ∫ g_ref dr and the diffusion coefficients (Å²/ps) from MSD slopes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase
import ase.io
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mlpot.datasets import PackedStore
from mlpot.datasets.forecast import DATA_ID_PREFIX
from mlpot.md.observables import diffusion_coefficient, load_frames, msd, rdf


def held_out(store_path: Path) -> list[ase.Atoms]:
    """The frames of the store's last trajectory (group), in time order."""
    store = PackedStore(store_path)
    frames = [store[k] for k in range(len(store))]
    last = frames[-1].info["group"]
    return [a for a in frames if a.info["group"] == last]


def write_start(store_path: Path, output: Path) -> None:
    first = held_out(store_path)[0]
    ase.io.write(output, first, format="extxyz")
    print(
        f"wrote {output}: {len(first)} atoms, group {first.info['group']}, "
        f"T = {first.get_temperature():.1f} K"
    )


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def compare(store_path: Path, rollout_path: Path, out: Path) -> None:
    reference = held_out(store_path)
    ref_pos = np.stack([a.positions for a in reference])
    ref_cell = reference[0].cell[:]
    interval = float(str(reference[0].info["data_id"]).removeprefix(DATA_ID_PREFIX))  # fs
    roll = load_frames(rollout_path)
    dt_roll = float(np.diff(roll.times_fs).mean())
    if not np.isclose(dt_roll, interval):
        raise SystemExit(
            f"rollout frames are {dt_roll:g} fs apart, reference frames "
            f"{interval:g} fs: write the rollout with --every 1"
        )
    r_max = 0.5 * float(np.linalg.norm(ref_cell, axis=1).min())
    r, g_ref = rdf(ref_pos, ref_cell, r_max=r_max, bins=60)
    _, g = rdf(roll.positions[len(roll.positions) // 4 :], roll.cells[-1], r_max=r_max, bins=60)
    error = _trapezoid(np.abs(g - g_ref), r) / _trapezoid(g_ref, r)
    n = min(len(ref_pos), len(roll.positions))
    msd_ref, msd_roll = msd(ref_pos[:n]), msd(roll.positions[:n])
    times = np.arange(n) * interval
    d_ref = 1000 * diffusion_coefficient(msd_ref, times)  # Å²/fs -> Å²/ps
    d_roll = 1000 * diffusion_coefficient(msd_roll, times)
    print(
        f"RDF error vs reference: {error:.3f}; diffusion coefficient: reference "
        f"{d_ref:.3g} Å²/ps, rollout {d_roll:.3g} Å²/ps ({n} frames, Δt {dt_roll:g} fs)"
    )
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(r, g_ref, label="reference MD")
    ax.plot(r, g, "--", label="TrajCast rollout")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=f"Ar RDF (error {error:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rdf.png", dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(times / 1000, msd_ref, label="reference MD")
    ax.plot(times / 1000, msd_roll, "--", label="TrajCast rollout")
    ax.set(xlabel="time (ps)", ylabel="MSD (Å²)", title="mean squared displacement")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "msd.png", dpi=120)
    np.savetxt(
        out / "comparison.csv",
        np.column_stack([times, msd_ref, msd_roll]),
        delimiter=",",
        header="time_fs,msd_ref_A2,msd_rollout_A2",
        comments="",
    )
    print(f"wrote {out / 'rdf.png'}, {out / 'msd.png'}, {out / 'comparison.csv'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="write the rollout's starting structure")
    start.add_argument("store", type=Path)
    start.add_argument("output", type=Path)
    comp = sub.add_parser("compare", help="RDF and MSD of rollout vs reference")
    comp.add_argument("store", type=Path)
    comp.add_argument("rollout", type=Path)
    comp.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    if args.command == "start":
        write_start(args.store, args.output)
    else:
        compare(args.store, args.rollout, args.out_dir)


if __name__ == "__main__":
    main()
