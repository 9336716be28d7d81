"""Benchmark drivers behind ``mlpot bench`` (and the scripts in ``benchmarks/``)."""
