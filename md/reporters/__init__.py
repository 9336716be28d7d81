"""Reporters attach to a run from outside the step: thermo log, trajectories, restarts."""

from mlpot.md.reporters.restart import RestartData, load_restart, save_restart
from mlpot.md.reporters.thermo import ThermoReporter
from mlpot.md.reporters.trajectory import TRAJECTORY_FORMATS, TrajectoryReporter

__all__ = [
    "TRAJECTORY_FORMATS",
    "RestartData",
    "ThermoReporter",
    "TrajectoryReporter",
    "load_restart",
    "save_restart",
]
