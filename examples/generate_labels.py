"""Generate a reference set with real labels into an HDF5 store.

    python examples/generate_labels.py emt data/emt_metals.h5 --count 5000 --seed 0
    python examples/generate_labels.py xtb data/xtb_molecules.h5 --count 2000 --seed 0
    python examples/generate_labels.py teacher data/sevennet_mptrj.json --count 600 --seed 0

``emt``: ASE EMT metals (energy, forces, stress; >= 5,000 structures by default).
``xtb``: GFN2-xTB molecules through tblite, charged and open-shell (2,000 by default).
``teacher``: inorganic crystals labelled by SevenNet-0 (``pip install 'mlpot[teacher]'``),
written as MPTrj JSON (600 by default).
"""

from __future__ import annotations

import argparse
import os

DEFAULT_COUNTS = {"emt": 5000, "xtb": 2000, "teacher": 600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(DEFAULT_COUNTS), help="which reference set")
    parser.add_argument("output", help="the .h5 store (MPTrj .json for teacher) to write")
    parser.add_argument("--count", type=int, default=None,
                        help="structures (default: 5000 emt, 2000 xtb, 600 teacher)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # before torch/tblite start their thread pools: one thread is far faster for tblite
    # on small molecules, and EMT runs one structure at a time
    if args.kind in ("xtb", "teacher"):
        os.environ["OMP_NUM_THREADS"] = "1"
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mlpot.datasets.reference import emt_metals, xtb_molecules
    from mlpot.datasets.reference.teacher import teacher_mptrj

    generate = {"emt": emt_metals, "xtb": xtb_molecules, "teacher": teacher_mptrj}[args.kind]
    count = DEFAULT_COUNTS[args.kind] if args.count is None else args.count
    result = generate(args.output, count=count, seed=args.seed,
                      progress=lambda done, total: print(f"  {done}/{total}", flush=True))
    print(f"wrote {result.structures} structures to {result.path} in {result.seconds:.0f} s "
          f"({result.structures / result.seconds:.1f}/s); failed {result.failed}, "
          f"rejected (max force) {result.rejected}; kinds {result.kinds}")


if __name__ == "__main__":
    main()
