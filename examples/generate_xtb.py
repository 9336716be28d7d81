"""Generate the GFN2-xTB molecule reference set (>= 2,000 structures) into an HDF5 store.

    python examples/generate_xtb.py data/xtb_molecules.h5 --count 2000 --seed 0
"""

from __future__ import annotations

import argparse
import os

os.environ["OMP_NUM_THREADS"] = "1"  # tblite: one thread is far faster here

from mlpot.datasets.reference import xtb_molecules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the .h5 store to write")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = xtb_molecules(args.output, count=args.count, seed=args.seed,
                        progress=lambda done, total: print(f"  {done}/{total}", flush=True))
    print(f"wrote {result.structures} structures to {result.path} in {result.seconds:.0f} s "
          f"({result.structures / result.seconds:.1f}/s); failed {result.failed}, "
          f"rejected (max force) {result.rejected}; "
          f"kinds {result.kinds}")


if __name__ == "__main__":
    main()
