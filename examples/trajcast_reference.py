"""Reference MD for TrajCast forecasters, stored every forecast interval in an HDF5 store.

    python examples/trajcast_reference.py cu data/cu_trajcast.h5 --forecast-fs 10 --frames 200
    python examples/trajcast_reference.py ar data/ar_trajcast.h5 --forecast-fs 20 --frames 200

``cu``: fcc Cu (3x3x3 cubic cells, 108 atoms), ASE EMT, 1 fs steps, 300/450/600 K.
``mol``: ethanol in vacuum, GFN2-xTB (tblite), 0.5 fs steps, 300/400 K.
``--temperatures`` replaces a system's default temperatures.
``ar``: liquid argon (108 atoms, 1.4 g/cm³), mlpot's Lennard-Jones, 2 fs steps, 90/120 K
(the fcc start is melted at 300 K for 2 ps first).
Each temperature runs ``--trajectories`` independent trajectories (Langevin
equilibration, then NVE); every frame holds positions (unwrapped), velocities, cell,
energy and forces. Read the pairs back with ``mlpot.datasets.forecast.ForecastPairs``.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=("cu", "ar", "mol"))
    parser.add_argument("output", help="the .h5 store to write")
    parser.add_argument(
        "--forecast-fs",
        type=float,
        default=None,
        help="interval between stored frames, fs (default: 10 Cu, 20 Ar, 5 mol)",
    )
    parser.add_argument("--frames", type=int, default=200, help="frames per trajectory")
    parser.add_argument(
        "--temperatures",
        type=lambda text: [float(t) for t in text.split(",")],
        default=None,
        help="comma-separated, K (default: 300,450,600 Cu; 90,120 Ar; 300,400 mol)",
    )
    parser.add_argument("--trajectories", type=int, default=2, help="per temperature")
    parser.add_argument("--equilibration-fs", type=float, default=2000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--melt-fs",
        type=float,
        default=None,
        help="ar only: melt the fcc start at 300 K for this long first, fs (default 2000)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mlpot.datasets.reference.trajectory import (
        argon_lj_reference,
        copper_emt_reference,
        molecule_xtb_reference,
    )

    make = {
        "cu": copper_emt_reference,
        "ar": argon_lj_reference,
        "mol": molecule_xtb_reference,
    }[args.system]
    kw = {} if args.forecast_fs is None else {"forecast_fs": args.forecast_fs}
    if args.temperatures is not None:
        kw["temperatures"] = tuple(args.temperatures)
    if args.melt_fs is not None:
        if args.system != "ar":
            parser.error("--melt-fs applies to ar only")
        kw["melt_fs"] = args.melt_fs
    result = make(
        args.output,
        frames=args.frames,
        trajectories_per_temperature=args.trajectories,
        equilibration_fs=args.equilibration_fs,
        seed=args.seed,
        **kw,
    )
    print(f"wrote {result.structures} frames to {result.path} in {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
