"""Analyse `mlpot md` runs: Cu–Cu RDF with mdtraj, temperature/energy/volume vs time.

    python examples/analyze_md.py OUT_DIR nve nvt npt

Reads OUT_DIR/NAME.dcd (topology OUT_DIR/NAME.pdb, written by mlpot beside every DCD)
and OUT_DIR/NAME.csv for each NAME; writes OUT_DIR/rdf.png, OUT_DIR/rdf.csv and
OUT_DIR/thermo.png, and prints the mean temperature, the total-energy drift and the first
RDF peak of each run.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mdtraj
import numpy as np

NM = 10.0  # Å per nm (mdtraj works in nm and ps)


def read_log(path: Path) -> dict[str, np.ndarray]:
    """The thermo CSV of system 0 as columns (time_fs, etot_eV, temperature_K, ...)."""
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["system"] == "0"]
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def load_second_half(dcd: Path) -> mdtraj.Trajectory:
    """The second half of a DCD trajectory (topology from the PDB beside it)."""
    traj = mdtraj.load(str(dcd), top=str(dcd.with_suffix(".pdb")))
    return traj[len(traj) // 2 :]


def radial_distribution(traj: mdtraj.Trajectory, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(r Å, g(r)) up to ``r_max`` Å (periodic, minimum image)."""
    pairs = traj.topology.select_pairs("all", "all")
    r, g = mdtraj.compute_rdf(traj, pairs, r_range=(0.1, r_max / NM), bin_width=0.005)
    return r * NM, g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("names", nargs="+", help="run names (NAME.dcd, NAME.csv)")
    args = parser.parse_args()
    fig, axes = plt.subplots(3, 1, figsize=(6, 8), sharex=True)
    rdf_fig, rdf_ax = plt.subplots(figsize=(6, 4))
    trajectories = {name: load_second_half(args.out_dir / f"{name}.dcd") for name in args.names}
    # one r grid for all runs: up to half the smallest box (minimum image), at most 6 Å
    r_max = min(6.0, *(0.5 * NM * float(t.unitcell_lengths.min()) for t in trajectories.values()))
    table = {}
    for name in args.names:
        log = read_log(args.out_dir / f"{name}.csv")
        t_ps = log["time_fs"] / 1000
        de_tot = log["etot_eV"] - log["etot_eV"][0]
        axes[0].plot(t_ps, log["temperature_K"], label=name)
        axes[1].plot(t_ps, de_tot, label=name)
        axes[2].plot(t_ps, log["volume_A3"], label=name)
        r, g = radial_distribution(trajectories[name], r_max)
        rdf_ax.plot(r, g, label=name)
        table[name] = g
        drift = (log["conserved_eV"][-1] - log["conserved_eV"][0]) / max(t_ps[-1], 1e-12)
        print(
            f"{name}: <T> = {log['temperature_K'].mean():.1f} K, conserved-energy change "
            f"{drift:+.4f} eV/ps, first RDF peak at {r[np.argmax(g)]:.3f} Å"
        )
    axes[0].set_ylabel("T (K)")
    axes[1].set_ylabel("E_tot − E_tot(0) (eV)")
    axes[2].set_ylabel("volume (Å³)")
    axes[2].set_xlabel("time (ps)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.out_dir / "thermo.png", dpi=120)
    rdf_ax.set_xlabel("r (Å)")
    rdf_ax.set_ylabel("g(r)")
    rdf_ax.legend()
    rdf_fig.tight_layout()
    rdf_fig.savefig(args.out_dir / "rdf.png", dpi=120)
    np.savetxt(
        args.out_dir / "rdf.csv",
        np.column_stack([r, *table.values()]),
        delimiter=",",
        header="r_A," + ",".join(f"g_{n}" for n in table),
        comments="",
    )
    print(f"wrote {args.out_dir / 'thermo.png'}, {args.out_dir / 'rdf.png'}")


if __name__ == "__main__":
    main()
