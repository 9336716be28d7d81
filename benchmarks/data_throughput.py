"""Data throughput benchmark (same as ``mlpot bench data``)."""

from mlpot.benchmarks.data_throughput import run

if __name__ == "__main__":
    run()
