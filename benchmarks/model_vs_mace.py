"""Model benchmark, mlpot vs MACE (same as ``mlpot bench model``; see its --help)."""

from mlpot.benchmarks.model_vs_mace import run

if __name__ == "__main__":
    run()
