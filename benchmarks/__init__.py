"""Benchmarks against peers, measured in the same run (not installed with mlpot).

Run from the repository root: ``python -m benchmarks --help``.
"""
