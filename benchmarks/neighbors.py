"""Neighbour-list benchmark (same as ``mlpot bench neighbors``)."""

from mlpot.benchmarks.neighbors import run

if __name__ == "__main__":
    run()
