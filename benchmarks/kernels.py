"""Kernel benchmark (``python -m benchmarks kernels``): fused Triton kernels vs their torch
references vs e3nn's Clebsch–Gordan ``TensorProduct``, then the whole model with and
without the kernels against MACE (:mod:`benchmarks.model_vs_mace`).

Tables, each row timed in one process with the same inputs (median of ``repeats``
calls after a warm-up; CUDA synchronised; peak CUDA memory of one call):

1. Spline radial basis, forward + backward over E edges: Triton vs the torch reference.
2. Channel-wise product of two degree-L features (E rows, C channels, projected onto
   l ≤ L), forward + backward: the fused grid update (Triton), its torch reference,
   and e3nn's ``TensorProduct`` with every "uuu" path (the CG way to the same result).
3. The model: energy+forces and one training step at 256 / 864 / 10,976 fcc Cu atoms,
   grid model (torch reference), grid model + Triton kernels, CG model and MACE
   (with cuEquivariance where installed), peak memory.

Triton runs on GPUs only; on a CPU the Triton columns read "GPU only" and the model
table omits the Triton row, the rest is measured as on a GPU (numbers from an H200:
docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mlpot.kernels.dispatch import unavailable_reason
from mlpot.kernels.grid_product import grid_node_update
from mlpot.kernels.s2grid import num_sh, product_grid
from mlpot.kernels.spline import radial_basis

CUTOFF, KNOTS = 5.0, 12


@dataclass(frozen=True)
class KernelBenchConfig:
    """What ``python -m benchmarks kernels`` measures.

    Attributes:
        device: "cpu" or "cuda".
        dtype: "float32" or "float64".
        lmax: degrees L of the product table.
        edges: row counts E (edges, or nodes for the product table).
        channels: C of the product table.
        repeats: timed calls per entry (median reported).
        threads: torch CPU threads.
    """

    device: str = "cpu"
    dtype: str = "float32"
    lmax: tuple[int, ...] = (1, 2, 3, 4)
    edges: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    channels: int = 32
    repeats: int = 5
    threads: int = 2


def _timed(
    fn: Callable[[], object], device: torch.device, repeats: int
) -> tuple[float, float | None]:
    """(median seconds, peak CUDA bytes of one call or None) of ``fn``; "OOM" raises."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    peak = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync()
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), peak


def _safe(
    fn: Callable[[], object], device: torch.device, repeats: int
) -> tuple[float, float | None] | str:
    try:
        return _timed(fn, device, repeats)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "OOM"


def spline_case(
    e: int, device: torch.device, dtype: torch.dtype, backend: str
) -> Callable[[], None]:
    """Forward + backward of the enveloped basis ``[E, K]`` for E edge lengths."""
    gen = torch.Generator().manual_seed(0)
    r = (0.5 + 4.5 * torch.rand(e, generator=gen, dtype=torch.float64)).to(device, dtype)
    r.requires_grad_()
    w = torch.randn(e, KNOTS, generator=gen, dtype=torch.float64).to(device, dtype)
    if backend == "triton":
        from mlpot.kernels.triton_spline import radial_basis as basis
    else:
        basis = radial_basis

    def step() -> None:
        torch.autograd.grad((basis(r, KNOTS, CUTOFF) * w).sum(), r)

    return step


def product_case(
    lmax: int, e: int, channels: int, device: torch.device, dtype: torch.dtype, backend: str
) -> Callable[[], None]:
    """Forward + backward of the channel-wise product x₁ ⊗ x₂ → l ≤ L for E rows."""
    gen = torch.Generator().manual_seed(0)
    m = num_sh(lmax)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device, dtype)

    if backend == "e3nn":
        tp = _e3nn_product(lmax, channels).to(device=device, dtype=dtype)
        x1 = randn(e, channels * m).requires_grad_()
        x2 = randn(e, channels * m).requires_grad_()

        def step() -> None:
            out = tp(x1, x2)
            torch.autograd.grad(out.sum(), (x1, x2))

        return step
    grid = product_grid(lmax, 2, lmax)
    t, p = grid.to_grid.to(device, dtype), grid.from_grid.to(device, dtype)
    factors = randn(m, e, 2, channels).requires_grad_()
    coupling = torch.zeros(e, 2, channels, dtype=dtype, device=device)
    coupling[:, 1] = 1.0  # the ν = 2 product only
    if backend == "triton":
        from mlpot.kernels.triton_grid import grid_node_update as update
    else:
        update = grid_node_update

    def step() -> None:
        torch.autograd.grad(update(factors, coupling, t, p, None).sum(), factors)

    return step


def _e3nn_product(lmax: int, channels: int) -> torch.nn.Module:
    """e3nn ``TensorProduct`` of C×(0..L) ⊗ C×(0..L) → C×(0..L), every "uuu" path
    (channel-wise, no weights: the CG counterpart of the grid product)."""
    from e3nn import o3

    irreps = o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])
    paths = [
        (i1, i2, o, "uuu", False)
        for i1, (_, ir1) in enumerate(irreps)
        for i2, (_, ir2) in enumerate(irreps)
        for o, (_, ir_out) in enumerate(irreps)
        if ir_out in ir1 * ir2
    ]
    return o3.TensorProduct(irreps, irreps, irreps, paths)


def _cell(result: tuple[float, float | None] | str | None) -> str:
    if result is None:
        return "GPU only"
    if isinstance(result, str):
        return result
    return f"{result[0] * 1e3:.2f}"


def _ratio(a, b) -> str:
    if not isinstance(a, tuple) or not isinstance(b, tuple):
        return "n/a"
    return f"{a[0] / b[0]:.2f}x"


def _mib(result) -> str:
    return (
        "n/a" if not isinstance(result, tuple) or result[1] is None else f"{result[1] / 2**20:.0f}"
    )


def spline_table(config: KernelBenchConfig, triton_ok: bool) -> Table:
    device, dtype = torch.device(config.device), getattr(torch, config.dtype)
    table = Table(
        title=f"spline radial basis (K={KNOTS}), forward+backward, ms — "
        f"{_device_name(device)}, {config.dtype}"
    )
    for col in ("edges", "torch ref", "triton", "ref/triton"):
        table.add_column(col, justify="right")
    for e in config.edges:
        ref = _safe(spline_case(e, device, dtype, "torch"), device, config.repeats)
        tri = (
            _safe(spline_case(e, device, dtype, "triton"), device, config.repeats)
            if triton_ok
            else None
        )
        table.add_row(f"{e:,}", _cell(ref), _cell(tri), _ratio(ref, tri))
    return table


def product_table(
    config: KernelBenchConfig, triton_ok: bool, progress: Callable[[str], None]
) -> Table:
    """The product table; ``progress`` is told each entry before it is measured (the
    table itself prints only when complete)."""
    device, dtype = torch.device(config.device), getattr(torch, config.dtype)
    table = Table(
        title=f"channel-wise product x1 ⊗ x2 → l ≤ L, {config.channels} channels, "
        f"forward+backward, ms (peak MiB) — {_device_name(device)}, {config.dtype}"
    )
    for col in (
        "L",
        "rows",
        "e3nn CG",
        "grid torch",
        "grid triton",
        "CG/triton",
        "ref/triton",
        "MiB CG",
        "MiB ref",
        "MiB triton",
    ):
        table.add_column(col, justify="right")
    for lmax in config.lmax:
        for e in config.edges:
            results = {}
            for backend in ("e3nn", "torch", "triton"):
                if backend == "triton" and not triton_ok:
                    results[backend] = None
                    continue
                progress(f"measuring product L={lmax}, {e:,} rows: {backend}")
                results[backend] = _safe(
                    product_case(lmax, e, config.channels, device, dtype, backend),
                    device,
                    config.repeats,
                )
            cg, ref, tri = results["e3nn"], results["torch"], results["triton"]
            table.add_row(
                str(lmax),
                f"{e:,}",
                _cell(cg),
                _cell(ref),
                _cell(tri),
                _ratio(cg, tri),
                _ratio(ref, tri),
                _mib(cg),
                _mib(ref),
                _mib(tri),
            )
    return table


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def run_kernels(config: KernelBenchConfig, console: Console | None = None) -> bool:
    """Print the two kernel tables; True when the Triton columns were measured."""
    console = console or Console(width=150)
    torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    reason = (
        unavailable_reason("triton", device)
        if device.type == "cuda"
        else "Triton kernels run on GPUs only (the CPU interpreter is for tests)"
    )
    triton_ok = reason is None
    if not triton_ok:
        console.print(f"[bold]Triton columns not measured:[/bold] {reason}; "
                      "this run has no GPU numbers.")
    console.print(spline_table(config, triton_ok))
    console.print(product_table(config, triton_ok, lambda line: console.print(line, style="dim")))
    return triton_ok


def model_config_for(model_config, triton_ok: bool):
    """The model benchmark's config with the Triton framework added where it runs."""
    frameworks = tuple(f for f in model_config.frameworks if f != "triton")
    if triton_ok:
        frameworks = ("grid", "triton", *(f for f in frameworks if f != "grid"))
    return replace(model_config, frameworks=frameworks)
