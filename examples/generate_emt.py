"""Generate the EMT metal reference set (>= 5,000 structures) into an HDF5 store.

    python examples/generate_emt.py data/emt_metals.h5 --count 5000 --seed 0
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from mlpot.datasets.reference import emt_metals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the .h5 store to write")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = emt_metals(args.output, count=args.count, seed=args.seed,
                        progress=lambda done, total: print(f"  {done}/{total}", flush=True))
    print(f"wrote {result.structures} structures to {result.path} in {result.seconds:.0f} s "
          f"({result.structures / result.seconds:.1f}/s); failed {result.failed}, "
          f"rejected (max force) {result.rejected}; "
          f"kinds {result.kinds}")


if __name__ == "__main__":
    main()
