"""Data throughput: MPTrj streaming (rate, peak RSS) and random access per storage format.

1. Writes an MPTrj-format JSON of at least ``json_mb`` MB (random crystals in
   pymatgen dict layout) into a temporary directory, streams it with
   :func:`mlpot.datasets.read` in a fresh process and reports structures/s and
   that process's peak RSS (and its RSS right after imports, for reference).
2. Writes the first ``n_random`` structures to the packed HDF5 store (several
   chunk/compression layouts), to extxyz and to an OMol25-style ``.aselmdb``,
   and times random access of the same shuffled indices in each, in the same
   run, round-robin. The plain ``ase.io.read(path, index=i)`` peer rescans the
   file per call, so it is timed on 10 indices only.

Everything generated is deleted at the end.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import ase.db
import ase.io
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.timing import interleaved_median_times

_ELEMENTS = ("Li", "O", "Fe", "Si", "Mn", "P", "Na", "Cl", "Mg", "Al")


def _frame(rng: np.random.Generator, mp_id: str, n: int) -> dict:
    """One MPTrj frame in the dataset's key layout (random values)."""
    cell = np.diag(rng.uniform(4, 9, size=3)) + rng.normal(scale=0.3, size=(3, 3))
    frac = rng.uniform(size=(n, 3))
    xyz = frac @ cell
    symbols = rng.choice(_ELEMENTS, size=n)
    magmom = rng.normal(size=n).round(3).tolist()
    sites = [{"species": [{"element": str(s), "occu": 1}], "abc": frac[k].tolist(),
              "xyz": xyz[k].tolist(), "label": str(s), "properties": {"magmom": magmom[k]}}
             for k, s in enumerate(symbols)]
    e = float(rng.normal(-6, 1) * n)
    stress = rng.normal(scale=10, size=(3, 3))
    return {"structure": {"@module": "pymatgen.core.structure", "@class": "Structure",
                          "charge": 0, "lattice": {"matrix": cell.tolist(),
                                                   "pbc": [True, True, True]},
                          "properties": {}, "sites": sites},
            "uncorrected_total_energy": e, "corrected_total_energy": e - 1.0,
            "energy_per_atom": (e - 1.0) / n, "ef_per_atom": float(rng.normal()),
            "e_per_atom_relaxed": float(rng.normal()), "ef_per_atom_relaxed": None,
            "force": rng.normal(size=(n, 3)).tolist(), "stress": ((stress + stress.T) / 2
                                                                 ).tolist(),
            "magmom": magmom, "bandgap": float(rng.uniform(0, 3)), "mp_id": mp_id}


def write_mptrj_json(path: Path, target_mb: float, seed: int = 0) -> int:
    """Write an MPTrj-format JSON of at least ``target_mb`` MB, one material at a time."""
    rng = np.random.default_rng(seed)
    frames = 0
    with open(path, "w") as fh:
        fh.write("{")
        m = 0
        while fh.tell() < target_mb * 1e6:
            mp_id = f"mp-{m}"
            material = {f"{m}-0-{k}": _frame(rng, mp_id, int(rng.integers(4, 48)))
                        for k in range(int(rng.integers(1, 12)))}
            fh.write(("," if m else "") + json.dumps(mp_id) + ": " + json.dumps(material))
            frames += len(material)
            m += 1
        fh.write("}")
    return frames


def _stream_child(path: str, queue: mp.Queue) -> None:
    """In a fresh process: stream the file, report count, seconds, RSS after imports and peak."""
    from mlpot.datasets import read

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    count = sum(1 for _ in read(path))
    seconds = time.perf_counter() - start
    queue.put((count, seconds, rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def stream_in_child(path: Path) -> tuple[int, float, float, float]:
    """(structures, seconds, RSS MB after imports, peak RSS MB) of streaming ``path``."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_stream_child, args=(str(path), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def build_peers(tmp: Path, structures: list) -> dict[str, Path]:
    """The same structures as stores (three layouts), extxyz and aselmdb."""
    from mlpot.datasets import PackedStoreWriter

    paths = {}
    for name, kwargs in (("h5", {}), ("h5-gzip", {"compression": "gzip"}),
                         ("h5-lzf", {"compression": "lzf"}),
                         ("h5-chunk4096", {"atom_chunk": 4096, "struct_chunk": 1024})):
        paths[name] = tmp / f"{name}.h5"
        with PackedStoreWriter(paths[name], **kwargs) as writer:
            writer.extend(structures)
    paths["extxyz"] = tmp / "s.extxyz"
    ase.io.write(paths["extxyz"], structures, format="extxyz")
    paths["aselmdb"] = tmp / "s.aselmdb"
    with ase.db.connect(str(paths["aselmdb"]), type="aselmdb") as db:  # one transaction
        for atoms in structures:
            db.write(atoms, data={"charge": 0, "spin": 1, "data_id": "bench"})
    return paths


def random_access_rates(paths: dict[str, Path], n: int, repeats: int, seed: int = 0
                        ) -> dict[str, float]:
    """Structures/s for reading the same shuffled indices from each file."""
    from mlpot.datasets import ExtxyzReader, OMol25Reader, PackedStore

    order = np.random.default_rng(seed).permutation(n).tolist()
    few = order[:10]
    readers = {name: PackedStore(p) for name, p in paths.items() if name.startswith("h5")}
    readers["aselmdb"] = OMol25Reader(paths["aselmdb"], require=())
    readers["extxyz (indexed)"] = ExtxyzReader(paths["extxyz"])
    fns = {name: (lambda r=r: [r[i] for i in order]) for name, r in readers.items()}
    fns["h5 arrays only"] = lambda r=readers["h5"]: [r.record(i) for i in order]
    fns["ase.io.read(index=i)"] = lambda p=str(paths["extxyz"]): [
        ase.io.read(p, index=i, format="extxyz") for i in few]
    times = interleaved_median_times(fns, repeats=repeats)
    counts = {name: len(few) if name.startswith("ase.io") else len(order) for name in fns}
    return {name: counts[name] / t for name, t in times.items()}


def run(json_mb: float = 200.0, n_random: int = 10000, repeats: int = 3,
        workdir: str | None = None) -> dict:
    """Run both parts, print tables, return the numbers."""
    from mlpot.datasets import read

    console = Console()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "MPtrj_bench.json"
        start = time.perf_counter()
        frames = write_mptrj_json(path, json_mb)
        size_mb = path.stat().st_size / 1e6
        console.print(f"wrote {path.name}: {size_mb:.0f} MB, {frames} frames in "
                      f"{time.perf_counter() - start:.0f} s")
        count, seconds, rss0, peak = stream_in_child(path)
        assert count == frames, f"streamed {count} of {frames} frames"
        table = Table(title=f"MPTrj streaming ({size_mb:.0f} MB JSON, fresh process)")
        for col in ("structures", "seconds", "structures/s", "MB/s", "RSS after imports MB",
                    "peak RSS MB"):
            table.add_column(col, justify="right")
        table.add_row(str(count), f"{seconds:.1f}", f"{count / seconds:.0f}",
                      f"{size_mb / seconds:.1f}", f"{rss0:.0f}", f"{peak:.0f}")
        console.print(table)
        structures = []
        for atoms in read(path):
            structures.append(atoms)
            if len(structures) == n_random:
                break
        path.unlink()
        paths = build_peers(tmp, structures)
        rates = random_access_rates(paths, len(structures), repeats)
        sizes = {name: p.stat().st_size / 1e6 for name, p in paths.items()}
        sizes["extxyz (indexed)"] = sizes.pop("extxyz")
    table = Table(title=f"random access, {len(structures)} structures "
                        f"({np.mean([len(a) for a in structures]):.0f} atoms avg), "
                        f"median of {repeats}")
    for col in ("reader", "structures/s", "h5 speed-up vs this", "file MB"):
        table.add_column(col, justify="right")
    for name, rate in sorted(rates.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{rate:.0f}", f"{rates['h5'] / rate:.2f}x",
                      f"{sizes[name]:.1f}" if name in sizes else "")
    console.print(table)
    return {"json_mb": size_mb, "frames": frames, "stream_seconds": seconds,
            "stream_rate": count / seconds, "rss_after_imports_mb": rss0, "peak_rss_mb": peak,
            "random_access": rates, "file_mb": sizes}
