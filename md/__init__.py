"""Batched molecular dynamics: state, integrators, thermostats, optimizers, reporters."""
