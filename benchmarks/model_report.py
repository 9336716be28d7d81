"""Tables and target checks of the model benchmark (``python -m benchmarks model``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from benchmarks.model_vs_mace import BenchResult

# Acceptance targets of issue 4 (MACE time / mlpot grid time; per-atom time ratio).
TARGET_SPEEDUP = {"energy_forces": 2.0, "train_step": 1.5}
TARGET_SCALING = 1.3
# Targets of issue 13 for the model with the fused Triton kernels (GPU).
TARGET_SPEEDUP_TRITON = {"energy_forces": 3.0, "train_step": 2.0}
LABELS = {"grid": "mlpot grid", "triton": "mlpot grid+triton", "cg": "mlpot cg",
          "mace": "MACE"}


@dataclass(frozen=True)
class CaseRow:
    """One case of the main table.

    Attributes:
        case, task, num_atoms: what was measured.
        num_edges: edges of the grid (else first) framework's graph.
        seconds: median time per framework, s.
        peak_mib: peak memory rise per framework, MiB.
    """

    case: str
    task: str
    num_atoms: int
    num_edges: int
    seconds: dict[str, float]
    peak_mib: dict[str, float]

    def speedup(self, framework: str) -> float | None:
        """MACE time / ``framework`` time, or None when either is missing."""
        if "mace" not in self.seconds or framework not in self.seconds:
            return None
        return self.seconds["mace"] / self.seconds[framework]

    def memory_ratio(self, framework: str) -> float | None:
        """MACE peak memory / ``framework`` peak memory, or None when missing/zero."""
        if "mace" not in self.peak_mib or not self.peak_mib.get(framework):
            return None
        return self.peak_mib["mace"] / self.peak_mib[framework]


def case_rows(result: BenchResult) -> list[CaseRow]:
    """Group the measurements by case, in the order measured."""
    groups: dict[str, list] = {}
    for m in result.measurements:
        groups.setdefault(m.case, []).append(m)
    rows = []
    for case, group in groups.items():
        ref = next((m for m in group if m.framework == "grid"), group[0])
        rows.append(CaseRow(case, ref.task, ref.num_atoms, ref.num_edges,
                            {m.framework: m.median for m in group},
                            {m.framework: m.peak_bytes / 2**20 for m in group}))
    return rows


def scaling_ratio(result: BenchResult) -> float | None:
    """(time per atom at the large size) / (time per atom at the small size)."""
    if len(result.scaling) != 2:
        return None
    small, large = result.scaling
    return (large.median / large.num_atoms) / (small.median / small.num_atoms)


def target_checks(result: BenchResult) -> list[tuple[str, bool]]:
    """(description, met) for each acceptance target the run could check."""
    checks = []
    for row in case_rows(result):
        speedup = row.speedup("grid")
        if speedup is not None:
            need = TARGET_SPEEDUP[row.task]
            checks.append((f"{row.case}: MACE/grid time {speedup:.2f}x >= {need}x",
                           speedup >= need))
        speedup = row.speedup("triton")
        if speedup is not None:
            need = TARGET_SPEEDUP_TRITON[row.task]
            checks.append((f"{row.case}: MACE/grid+triton time {speedup:.2f}x >= {need}x",
                           speedup >= need))
        if "triton" in row.peak_mib and "cg" in row.peak_mib:
            checks.append((f"{row.case}: grid+triton peak memory "
                           f"{row.peak_mib['triton']:.0f} MiB <= cg {row.peak_mib['cg']:.0f} MiB",
                           row.peak_mib["triton"] <= row.peak_mib["cg"]))
        mem = row.memory_ratio("grid")
        if mem is not None:
            checks.append((f"{row.case}: grid peak memory {row.peak_mib['grid']:.0f} MiB < "
                           f"MACE {row.peak_mib['mace']:.0f} MiB", mem > 1.0))
    ratio = scaling_ratio(result)
    if ratio is not None:
        small, large = result.scaling
        checks.append((f"per-atom time {large.num_atoms} vs {small.num_atoms} atoms: "
                       f"{ratio:.2f}x <= {TARGET_SCALING}x", ratio <= TARGET_SCALING))
    return checks


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _title(result: BenchResult, what: str) -> str:
    cfg, m = result.config, result.config.model
    return (f"{what} — {cfg.device}, {cfg.dtype}, {cfg.threads} threads; channels "
            f"{m.channels}, lmax {m.lmax}, hidden lmax {m.hidden_lmax}, correlation "
            f"{m.correlation}, {m.num_layers} layers, cutoff {m.cutoff} Å")


def time_table(result: BenchResult) -> Table:
    """Median times and MACE/mlpot time ratios per case."""
    fws = result.config.frameworks
    ratio_fws = [f for f in ("grid", "triton", "cg") if f in fws] if "mace" in fws else []
    table = Table(title=_title(result, f"time, median of {result.config.repeats}"))
    for col in ("case", "atoms", "edges", *(f"{LABELS[f]} ms" for f in fws),
                *(f"MACE/{f}" for f in ratio_fws)):
        table.add_column(col, justify="right")
    for row in case_rows(result):
        table.add_row(
            row.case, str(row.num_atoms), str(row.num_edges),
            *(_fmt(row.seconds[f] * 1e3 if f in row.seconds else None, ".1f") for f in fws),
            *(_fmt(row.speedup(f), ".2f", "x") for f in ratio_fws))
    return table


def memory_table(result: BenchResult) -> Table:
    """Peak memory rise of the first call and MACE/mlpot memory ratios per case."""
    fws = result.config.frameworks
    ratio_fws = [f for f in ("grid", "triton", "cg") if f in fws] if "mace" in fws else []
    table = Table(title=_title(result, "peak memory rise of one call (fresh process)"))
    for col in ("case", *(f"{LABELS[f]} MiB" for f in fws), *(f"MACE/{f}" for f in ratio_fws)):
        table.add_column(col, justify="right")
    for row in case_rows(result):
        table.add_row(row.case, *(_fmt(row.peak_mib.get(f), ".0f") for f in fws),
                      *(_fmt(row.memory_ratio(f), ".2f", "x") for f in ratio_fws))
    return table


def scaling_table(result: BenchResult) -> Table:
    """Per-atom energy+forces time of the grid backend at two sizes."""
    table = Table(title=f"scaling, mlpot grid energy+forces (median of "
                        f"{result.config.scaling_timed})")
    for col in ("atoms", "edges", "ms", "µs/atom", "MiB"):
        table.add_column(col, justify="right")
    for m in result.scaling:
        table.add_row(str(m.num_atoms), str(m.num_edges), f"{m.median * 1e3:.1f}",
                      f"{m.median / m.num_atoms * 1e6:.1f}", f"{m.peak_bytes / 2**20:.0f}")
    return table


def print_report(result: BenchResult, console: Console | None = None) -> None:
    """Print the tables, parameter counts, versions and target checks."""
    if console is None:
        console = Console() if Console().is_terminal else Console(width=140)
    if result.measurements:
        console.print(time_table(result))
        console.print(memory_table(result))
    seen: dict[str, str] = {}
    for m in result.measurements:
        if m.framework not in seen:
            versions = ", ".join(f"{k} {v}" for k, v in m.versions.items())
            seen[m.framework] = (f"{LABELS[m.framework]}: {m.num_params:,} parameters; "
                                 f"{versions}; memory {m.peak_method}")
    for line in seen.values():
        console.print(line)
    if result.scaling:
        console.print(scaling_table(result))
        ratio = scaling_ratio(result)
        console.print(f"per-atom time ratio {result.scaling[1].num_atoms} / "
                      f"{result.scaling[0].num_atoms} atoms: {ratio:.2f}x")
    for m in (*result.measurements, *result.scaling):
        if m.profile:
            console.print(f"\nprofile: {LABELS[m.framework]}, {m.case} ({m.num_atoms} atoms)")
            console.print(m.profile, markup=False, highlight=False)
    if result.scaling_error:
        console.print(f"scaling check: {result.scaling_error.strip().splitlines()[-1]}")
    for text, met in target_checks(result):
        console.print(f"[{'green' if met else 'red'}]{'met   ' if met else 'missed'}[/] {text}")
