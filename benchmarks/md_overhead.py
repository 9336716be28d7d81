"""MD overhead benchmark (same as ``mlpot bench md``)."""

from mlpot.benchmarks.md_overhead import run

if __name__ == "__main__":
    run()
