"""Restart files: everything needed to continue a run bit-for-bit.

A restart holds the state (unwrapped positions, momenta, forces, cell, ...), each
system's generator state, the integrator's internal variables, the reference
configuration of the Verlet list (so the resumed run uses the very same pair
list) and free-form run settings (``extra``: plain Python values). Written with
``torch.save`` to a temporary file renamed into place; read with
``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from mlpot.atomic_io import atomic_torch_save
from mlpot.graph import AtomicGraph
from mlpot.md.forces import ForceField
from mlpot.md.integrators.base import Integrator
from mlpot.md.state import MDState

FORMAT = "mlpot-md-restart"


@dataclass
class RestartData:
    """What :func:`load_restart` returns.

    Attributes:
        state: the saved state.
        integrator_state: the integrator's ``state_dict()``.
        verlet_reference: (positions ``[N, 3]``, cell ``[B, 3, 3]``) of the pair list, or None.
        extra: run settings saved alongside (plain values).
    """

    state: MDState
    integrator_state: dict[str, torch.Tensor]
    verlet_reference: tuple[torch.Tensor, torch.Tensor] | None
    extra: dict


def save_restart(path: str | Path, state: MDState, integrator: Integrator,
                 force_field: ForceField | None = None, extra: dict | None = None) -> Path:
    """Write a restart file atomically; returns its path."""
    graph = {f.name: getattr(state.graph, f.name) for f in fields(AtomicGraph)
             if f.name in ("positions", "atomic_numbers", "system_index", "cell", "pbc",
                           "charge", "spin")}
    verlet = None
    if force_field is not None and force_field.verlet is not None:
        verlet = {"positions": force_field.verlet.ref_positions.cpu(),
                  "cell": force_field.verlet.ref_cell.cpu()}
    payload = {
        "format": FORMAT,
        "graph": {k: v.detach().cpu() for k, v in graph.items()},
        "momenta": state.momenta.cpu(), "masses": state.masses.cpu(),
        "energy": state.energy.cpu(), "forces": state.forces.cpu(),
        "stress": None if state.stress is None else state.stress.cpu(),
        "generators": [g.get_state() for g in state.generators],
        "step": int(state.step), "time": float(state.time),
        "integrator": type(integrator).__name__,
        "integrator_state": {k: v.cpu() for k, v in integrator.state_dict().items()},
        "verlet": verlet, "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, path)


def load_restart(path: str | Path, device: torch.device | str = "cpu") -> RestartData:
    """Read a restart file (ValueError when it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: restart file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        raise ValueError(f"{path}: not a readable restart file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mlpot MD restart file")
    g = {k: v.to(device) for k, v in payload["graph"].items()}
    gens = []
    for s in payload["generators"]:
        gen = torch.Generator(device=device)
        gen.set_state(s)
        gens.append(gen)
    stress = payload["stress"]
    state = MDState(
        graph=AtomicGraph(**g), momenta=payload["momenta"].to(device),
        masses=payload["masses"].to(device), energy=payload["energy"].to(device),
        forces=payload["forces"].to(device),
        stress=None if stress is None else stress.to(device), generators=gens,
        step=payload["step"], time=payload["time"])
    verlet = payload.get("verlet")
    ref = None if verlet is None else (verlet["positions"].to(device),
                                       verlet["cell"].to(device))
    istate = {k: v.to(device) for k, v in payload["integrator_state"].items()}
    extra = dict(payload["extra"])
    extra.setdefault("integrator", payload["integrator"])
    return RestartData(state=state, integrator_state=istate, verlet_reference=ref, extra=extra)
