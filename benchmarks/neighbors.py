"""Neighbour-list benchmark: mlpot (vesin) vs ase.neighborlist vs matscipy, same run."""

from __future__ import annotations

import ase.build
import torch
from ase.neighborlist import neighbor_list as ase_neighbor_list
from rich.console import Console
from rich.table import Table

from benchmarks.timing import interleaved_median_times
from mlpot.graph import AtomicGraph
from mlpot.neighbors import with_neighbors


def fcc_cu(repeat: int) -> ase.Atoms:
    """Cubic fcc Cu (a = 3.61 Å) repeated ``repeat`` times along each axis (4·repeat³ atoms)."""
    return ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)


def run(cutoff: float = 5.0, repeats: int = 5, sizes: tuple[int, ...] = (6, 14)) -> list[dict]:
    """Time the three neighbour lists on fcc Cu supercells; print and return the rows."""
    try:
        from matscipy.neighbours import neighbour_list as matscipy_neighbor_list
    except ImportError:  # matscipy is a test/benchmark extra
        matscipy_neighbor_list = None
    rows = []
    for repeat in sizes:
        atoms = fcc_cu(repeat)
        graph = AtomicGraph.from_atoms(atoms, dtype=torch.float64)
        fns = {
            "mlpot": lambda g=graph: with_neighbors(g, cutoff),
            "ase": lambda a=atoms: ase_neighbor_list("ijS", a, cutoff),
        }
        if matscipy_neighbor_list is not None:
            fns["matscipy"] = lambda a=atoms: matscipy_neighbor_list("ijS", a, cutoff)
        slow_repeats = repeats if len(atoms) < 5000 else max(2, repeats // 2)
        times = interleaved_median_times(fns, repeats=slow_repeats)
        n_edges = with_neighbors(graph, cutoff).edge_index.shape[1]
        assert n_edges == len(ase_neighbor_list("i", atoms, cutoff)), "pair counts differ"
        rows.append({"atoms": len(atoms), "edges": n_edges, **times})
    table = Table(title=f"neighbour lists, fcc Cu, cutoff {cutoff} Å (median of {repeats})")
    for col in ("atoms", "edges", "mlpot ms", "ase ms", "matscipy ms", "ase/mlpot",
                "matscipy/mlpot"):
        table.add_column(col, justify="right")
    for r in rows:
        ms = r.get("matscipy")
        table.add_row(str(r["atoms"]), str(r["edges"]), f"{r['mlpot'] * 1e3:.2f}",
                      f"{r['ase'] * 1e3:.1f}", f"{ms * 1e3:.2f}" if ms else "n/a",
                      f"{r['ase'] / r['mlpot']:.1f}x",
                      f"{ms / r['mlpot']:.2f}x" if ms else "n/a")
    Console().print(table)
    return rows
