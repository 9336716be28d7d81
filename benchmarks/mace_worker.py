"""Benchmark worker: one model on one structure, driven over stdin/stdout as JSON lines.

Run as a script with the Python of MACE's own environment (mace-torch pins e3nn
0.4.4, which must not meet mlpot's e3nn)::

    /path/to/mace-venv/bin/python mace_worker.py

This file imports only the standard library, numpy, torch and ase at module level
(mace and e3nn lazily, in :func:`build_mace`) and never mlpot, so it runs in that
environment. ``benchmarks.mlpot_worker`` reuses its loop (:func:`serve`) with
an mlpot model, so both frameworks are timed by the same code.

Protocol: one JSON object per line in, one per line out; every reply has ``ok``.

* ``{"op": "load", "structure": {...}, "model": {...}, "task": "energy_forces" |
  "train_step", "dtype": "float32", "device": "cpu", "threads": 2, "seed": 0}``
  → ``{"ok": true, "num_atoms", "num_edges", "num_params", "versions"}``.
  ``structure`` holds ``numbers [N]``, ``positions [N][3]`` Å, ``cell [3][3]`` Å
  (rows), ``pbc [3]``; ``model`` holds ``species``, ``channels``, ``lmax``,
  ``hidden_lmax``, ``correlation``, ``num_layers``, ``cutoff``.
* ``{"op": "peak"}`` → runs the task once; ``{"ok": true, "peak_bytes", "method"}``:
  the rise of peak resident memory (CPU: ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``) or of ``torch.cuda.max_memory_allocated`` (CUDA) over
  what was in use before the call. Send it first, in a fresh worker.
* ``{"op": "run", "repeats": k}`` → ``{"ok": true, "times": [k seconds]}``, wall
  time of each call (CUDA synchronised).
* ``{"op": "profile", "rows": 15}`` → ``{"ok": true, "table"}``: torch.profiler's
  top ops (by self time) of one call.
* ``{"op": "quit"}`` → exits. Errors reply ``{"ok": false, "error": traceback}``.

Tasks: ``energy_forces`` = energy and forces (−∂E/∂r) on a prebuilt neighbour
graph; ``train_step`` = energy+force MSE loss, backward through the forces
(double backward), one Adam step.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import ase
import numpy as np
import torch

TASKS = ("energy_forces", "train_step")


@dataclass
class Workload:
    """A loaded model + structure whose ``step`` is the unit that gets timed.

    Attributes:
        step: runs the task once (energy+forces, or one training step).
        num_edges: directed edges in the neighbour graph the model sees.
        num_params: trainable parameters of the model.
        versions: package versions of the framework (and model settings worth
            reporting), for the report.
    """

    step: Callable[[], None]
    num_edges: int
    num_params: int
    versions: dict[str, str]


def structure_to_atoms(structure: dict) -> ase.Atoms:
    """``ase.Atoms`` from the protocol's ``structure`` object (see module docstring)."""
    return ase.Atoms(numbers=structure["numbers"], positions=structure["positions"],
                     cell=structure["cell"], pbc=structure["pbc"])


def training_targets(num_atoms: int, seed: int, dtype: torch.dtype, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random labels for the training step: energy ``[1]`` eV, forces ``[N, 3]`` eV/Å."""
    gen = torch.Generator().manual_seed(seed)
    energy = torch.randn(1, generator=gen, dtype=torch.float64)
    forces = 0.1 * torch.randn(num_atoms, 3, generator=gen, dtype=torch.float64)
    return energy.to(device, dtype), forces.to(device, dtype)


def energy_force_loss(energy: torch.Tensor, forces: torch.Tensor,
                      targets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Energy MSE + force MSE (the same loss for every framework)."""
    return ((energy - targets[0]) ** 2).mean() + ((forces - targets[1]) ** 2).mean()


def _status_kib(field: str) -> int:
    """A ``kB`` field (e.g. ``VmRSS``, ``VmHWM``) of ``/proc/self/status``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def measure_peak(step: Callable[[], None], device: torch.device) -> tuple[int, str]:
    """Peak memory rise (bytes) of one ``step()`` call and how it was measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, "cuda max_memory_allocated"
    before = _status_kib("VmRSS")
    method = "VmHWM-VmRSS" if _reset_peak_rss() else "VmHWM-VmRSS (HWM not reset)"
    step()
    return max(_status_kib("VmHWM") - before, 0) * 1024, method


def time_steps(step: Callable[[], None], device: torch.device, repeats: int) -> list[float]:
    """Wall time (s) of ``repeats`` calls of ``step()``, synchronising CUDA."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def profile_table(step: Callable[[], None], device: torch.device, rows: int) -> str:
    """``torch.profiler`` table of one ``step()``: top ops by self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def _handle(request: dict, state: dict, build: Callable[[dict], Workload]) -> dict:
    op = request.get("op")
    if op == "load":
        if request.get("task") not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {request.get('task')!r}")
        torch.set_num_threads(int(request.get("threads", 1)))
        torch.manual_seed(int(request.get("seed", 0)))
        state["device"] = torch.device(request.get("device", "cpu"))
        state["workload"] = work = build(request)
        return {"ok": True, "num_atoms": len(request["structure"]["numbers"]),
                "num_edges": work.num_edges, "num_params": work.num_params,
                "versions": work.versions}
    if op in ("peak", "run", "profile") and "workload" not in state:
        raise RuntimeError(f"'{op}' before 'load'")
    if op == "peak":
        peak, method = measure_peak(state["workload"].step, state["device"])
        return {"ok": True, "peak_bytes": peak, "method": method}
    if op == "run":
        times = time_steps(state["workload"].step, state["device"], int(request["repeats"]))
        return {"ok": True, "times": times}
    if op == "profile":
        table = profile_table(state["workload"].step, state["device"],
                              int(request.get("rows", 15)))
        return {"ok": True, "table": table}
    raise ValueError(f"unknown op {op!r}")


def serve(build: Callable[[dict], Workload], stdin: IO[str], stdout: IO[str]) -> None:
    """Answer protocol requests from ``stdin`` until ``quit`` or end of input."""
    state: dict = {}
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("op") == "quit":
                break
            reply = _handle(request, state, build)
        except Exception:  # reported to the driver, which raises with this text
            reply = {"ok": False, "error": traceback.format_exc()}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


def protocol_streams() -> tuple[IO[str], IO[str]]:
    """(stdin, reply stream); afterwards anything printed to stdout goes to stderr.

    Libraries print banners and warnings to stdout; they must not corrupt replies.
    """
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return sys.stdin, reply


def _mace_batch(atoms: ase.Atoms, species: list[int], cutoff: float, device: torch.device
                ) -> dict:
    from mace.data import AtomicData, config_from_atoms
    from mace.tools import AtomicNumberTable, torch_geometric

    data = AtomicData.from_config(config_from_atoms(atoms), z_table=AtomicNumberTable(species),
                                  cutoff=cutoff)
    loader = torch_geometric.dataloader.DataLoader([data], batch_size=1, shuffle=False)
    return next(iter(loader)).to(device).to_dict()


def mace_hidden_irreps(channels: int, hidden_lmax: int) -> str:
    """MACE ``hidden_irreps``: ``channels`` copies of each l ≤ hidden_lmax, parity (−1)^l."""
    return "+".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(hidden_lmax + 1))


def _cueq_options(device: torch.device) -> dict:
    """MACE's cuEquivariance kernels on CUDA where ``cuequivariance_torch`` is installed
    (the peer at its best), else nothing."""
    import importlib.util

    if device.type != "cuda" or importlib.util.find_spec("cuequivariance_torch") is None:
        return {}
    from mace.modules.wrapper_ops import CuEquivarianceConfig

    return {"cueq_config": CuEquivarianceConfig(enabled=True, layout="ir_mul",
                                                group="O3_e3nn", optimize_all=True)}


def build_mace(request: dict) -> Workload:
    """mace-torch's ``MACE`` (random weights) with the requested hyper-parameters."""
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 + torch >= 2.6
    from importlib.metadata import version

    from e3nn import o3
    from mace import modules

    spec, device = request["model"], torch.device(request.get("device", "cpu"))
    dtype = getattr(torch, request.get("dtype", "float32"))
    torch.set_default_dtype(dtype)
    atoms = structure_to_atoms(request["structure"])
    species = sorted(int(z) for z in spec["species"])
    batch = _mace_batch(atoms, species, float(spec["cutoff"]), device)
    num_edges = int(batch["edge_index"].shape[1])
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.MACE(
        r_max=float(spec["cutoff"]), num_bessel=8, num_polynomial_cutoff=5,
        max_ell=int(spec["lmax"]), interaction_cls=block, interaction_cls_first=block,
        num_interactions=int(spec["num_layers"]), num_elements=len(species),
        hidden_irreps=o3.Irreps(mace_hidden_irreps(int(spec["channels"]),
                                                   int(spec["hidden_lmax"]))),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(species)),
        avg_num_neighbors=max(num_edges / len(atoms), 1.0), atomic_numbers=species,
        correlation=int(spec["correlation"]), gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64], **_cueq_options(device),
    ).to(device=device, dtype=dtype)
    versions = {"mace-torch": version("mace-torch"), "e3nn": version("e3nn"),
                "torch": torch.__version__,
                "cuequivariance": (version("cuequivariance-torch") if _cueq_options(device)
                                   else "off")}
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if request["task"] == "energy_forces":
        def step() -> None:
            model(batch, training=False, compute_force=True)
    else:
        targets = training_targets(len(atoms), int(request.get("seed", 0)), dtype, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step() -> None:
            out = model(batch, training=True, compute_force=True)
            loss = energy_force_loss(out["energy"], out["forces"], targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return Workload(step=step, num_edges=num_edges, num_params=num_params, versions=versions)


if __name__ == "__main__":
    serve(build_mace, *protocol_streams())
