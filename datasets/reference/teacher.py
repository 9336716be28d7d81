"""Realistic PBE-like labels from a pretrained teacher, written in the MPTrj layout.

The default teacher is SevenNet-0 (``sevenn`` package, optional extra
``pip install mlpot[teacher]``; trained on MPTrj, its weights ship inside the wheel,
so nothing is downloaded). Any ASE calculator with energy, forces and stress can
stand in (tests use EMT). Structures: :mod:`mlpot.datasets.reference.inorganic`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from mlpot.datasets.mptrj_writer import MPtrjWriter
from mlpot.datasets.reference.common import GenerationResult, label
from mlpot.datasets.reference.inorganic import inorganic_batches


def sevennet_calculator(model: str = "7net-0", device: str = "cpu") -> Calculator:
    """SevenNet's ASE calculator (raises ImportError with the install hint when missing)."""
    try:
        from sevenn.calculator import SevenNetCalculator
    except ImportError:
        raise ImportError(
            "the SevenNet teacher needs the optional 'sevenn' package: pip install 'mlpot[teacher]'"
        ) from None
    return SevenNetCalculator(model, device=device)


def teacher_mptrj(
    path: str | Path,
    count: int = 600,
    seed: int = 0,
    calculator: Calculator | None = None,
    max_force: float = 20.0,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Label ``count`` inorganic structures with a teacher into an MPTrj JSON file.

    Each batch (one strained/rattled/vacancy structure, or the snapshots of one short
    Langevin run driven by the teacher) is one "material" (``mp_id`` = its group), so
    a split by mp_id keeps MD snapshots together. Structures with a force above
    ``max_force`` (eV/Å) are dropped.
    """
    calc = calculator if calculator is not None else sevennet_calculator()
    rng = np.random.default_rng(seed)
    batches = inorganic_batches(rng, calc)
    start = time.perf_counter()
    kinds: dict[str, int] = {}
    rejected = 0
    with MPtrjWriter(path) as writer:
        while writer.frames < count:
            before = writer.frames
            kind, structures = next(batches)
            labelled = [label(a, calc, stress=True) for a in structures[: count - writer.frames]]
            keep = [
                a
                for a in labelled
                if np.linalg.norm(a.calc.results["forces"], axis=1).max() <= max_force
            ]
            rejected += len(labelled) - len(keep)
            if keep:
                writer.add_material(str(keep[0].info["group"]), keep)
                kinds[kind] = kinds.get(kind, 0) + len(keep)
            if progress is not None and writer.frames // 50 != before // 50:
                progress(writer.frames, count)
    return GenerationResult(
        Path(path), writer.frames, 0, rejected, time.perf_counter() - start, kinds
    )
