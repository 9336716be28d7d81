"""Benchmark worker for mlpot's ``EquivariantPotential``.

Run as ``python -m benchmarks.mlpot_worker``.

Same JSON-lines protocol and timing code as :mod:`benchmarks.mace_worker`
(whose loop it reuses), so mlpot and MACE are measured alike; ``model.backend``
picks ``"grid"`` or ``"cg"``, ``model.kernels`` ``"torch"`` or ``"triton"``.
"""

from __future__ import annotations

from importlib.metadata import version

import torch

from benchmarks.mace_worker import (
    Workload,
    energy_force_loss,
    protocol_streams,
    serve,
    structure_to_atoms,
    training_targets,
)
from mlpot.graph import AtomicGraph
from mlpot.neighbors import with_neighbors


def build_mlpot(request: dict) -> Workload:
    """An ``EquivariantPotential`` (random weights) and a prebuilt neighbour graph."""
    try:
        from mlpot.models import EquivariantPotential
    except ImportError as err:
        raise ImportError("this mlpot installation has no mlpot.models.EquivariantPotential"
                          ) from err

    spec, device = request["model"], torch.device(request.get("device", "cpu"))
    dtype = getattr(torch, request.get("dtype", "float32"))
    knots = {} if spec.get("num_knots") is None else {"num_knots": int(spec["num_knots"])}
    model = EquivariantPotential(
        spec["species"], cutoff=float(spec["cutoff"]), channels=int(spec["channels"]),
        lmax=int(spec["lmax"]), hidden_lmax=int(spec["hidden_lmax"]),
        correlation=int(spec["correlation"]), num_layers=int(spec["num_layers"]),
        backend=spec["backend"], kernels=spec.get("kernels"), **knots,
    ).to(device=device, dtype=dtype)
    atoms = structure_to_atoms(request["structure"])
    graph = with_neighbors(AtomicGraph.from_atoms(atoms, dtype=dtype, read_labels=False),
                           model.cutoff).to(device, dtype)  # list built on CPU, untimed
    versions = {"mlpot": version("mlpot"), "e3nn": version("e3nn"), "torch": torch.__version__,
                "num_knots": str(model.config.num_knots),
                "grid_oversample": str(getattr(model.config, "grid_oversample", "n/a")),
                "kernels": str(spec.get("kernels"))}
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if request["task"] == "energy_forces":
        def step() -> None:
            model(graph, compute_forces=True)
    else:
        targets = training_targets(len(atoms), int(request.get("seed", 0)), dtype, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step() -> None:
            out = model(graph, compute_forces=True, training=True)
            loss = energy_force_loss(out.energy, out.forces, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return Workload(step=step, num_edges=int(graph.edge_index.shape[1]),
                    num_params=num_params, versions=versions)


if __name__ == "__main__":
    serve(build_mlpot, *protocol_streams())
