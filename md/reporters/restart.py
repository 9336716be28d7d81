"""Restart files: everything needed to continue a run bit-for-bit.

A restart holds the state (unwrapped positions, momenta, forces, cell, the
ensemble's own variables, and the random streams: per-system seeds, with the step
as the counter), the reference configuration of the Verlet list (so the resumed
run uses the very same pair list) and free-form run settings (``extra``: plain
Python values). Written with ``torch.save`` to a temporary file renamed into
place; read with ``weights_only=True``. ``VERSION`` 2: states with seeds and ensemble
variables (version 1 held ``torch.Generator`` states and integrator dictionaries and
cannot be resumed by this version).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from mlpot.atomic_io import atomic_torch_save
from mlpot.graph import AtomicGraph
from mlpot.md.integrators import CSVRState, LangevinState, NoseHooverState, NPTState
from mlpot.md.rollout import ForecastState
from mlpot.md.state import MDState
from mlpot.neighbors import VerletList

FORMAT = "mlpot-md-restart"
VERSION = 2
#: the state classes a restart can hold (a closed table: names in files, never paths).
STATE_TYPES: MappingProxyType[str, type[MDState]] = MappingProxyType({
    cls.__name__: cls for cls in (MDState, LangevinState, CSVRState, NoseHooverState, NPTState,
                                  ForecastState)})
_GRAPH_FIELDS = ("positions", "atomic_numbers", "system_index", "cell", "pbc", "charge", "spin")


@dataclass
class RestartData:
    """What :func:`load_restart` returns.

    Attributes:
        state: the saved state (of the ensemble's state class).
        verlet_reference: (positions ``[N, 3]``, cell ``[B, 3, 3]``) of the pair list, or None.
        extra: run settings saved alongside (plain values).
    """

    state: MDState
    verlet_reference: tuple[torch.Tensor, torch.Tensor] | None
    extra: dict


def _cpu(value: object) -> object:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def save_restart(path: str | Path, state: MDState, verlet: VerletList | None = None,
                 extra: dict | None = None) -> Path:
    """Write a restart file atomically; returns its path."""
    values = {f.name: _cpu(getattr(state, f.name)) for f in fields(state) if f.name != "graph"}
    payload = {
        "format": FORMAT, "version": VERSION, "state_type": type(state).__name__,
        "graph": {k: _cpu(getattr(state.graph, k)) for k in _GRAPH_FIELDS},
        "state": values,
        "verlet": None if verlet is None else {"positions": _cpu(verlet.ref_positions),
                                               "cell": _cpu(verlet.ref_cell)},
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, path)


def load_restart(path: str | Path, device: torch.device | str = "cpu") -> RestartData:
    """Read a restart file (ValueError naming the file when it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: restart file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        raise ValueError(f"{path}: not a readable restart file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mlpot MD restart file")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: restart format version {payload.get('version', 1)}; this "
                         f"mlpot reads version {VERSION} (restart the run from its structure)")
    cls = STATE_TYPES.get(payload["state_type"])
    if cls is None:
        raise ValueError(f"{path}: unknown state type {payload['state_type']!r}")

    def move(v: Any) -> Any:
        return v.to(device) if isinstance(v, torch.Tensor) else v

    graph = AtomicGraph(**{k: move(v) for k, v in payload["graph"].items()})
    state = cls(graph=graph, **{k: move(v) for k, v in payload["state"].items()})
    verlet = payload["verlet"]
    ref = None if verlet is None else (move(verlet["positions"]), move(verlet["cell"]))
    return RestartData(state=state, verlet_reference=ref, extra=dict(payload["extra"]))
