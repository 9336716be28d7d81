"""Plot docs/data/performance.csv as docs/img/performance.png (speed-up over each peer).

    python scripts/plot_performance.py

Every bar is a ratio peer time / mlpot time measured in the same benchmark run (the
benchmarks print these ratios); the CSV names the machine and the command of each row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "data" / "performance.csv"
OUT = ROOT / "docs" / "img" / "performance.png"
FIELDS = ("benchmark", "case", "mlpot_ms", "peer", "peer_ms", "machine", "command")


def read_rows(path: Path = DATA) -> list[dict[str, str]]:
    """Rows of the CSV (lines starting with # are comments)."""
    with path.open(encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(lines, fieldnames=FIELDS))


def main() -> None:
    rows = read_rows()
    labels = [f"{r['case']}\nvs {r['peer']} ({r['machine']})" for r in rows]
    ratios = [float(r["peer_ms"]) / float(r["mlpot_ms"]) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    bars = ax.barh(range(len(rows)), ratios, color="tab:blue")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of mlpot (peer time / mlpot time, same run)")
    ax.bar_label(bars, [f"{x:.2g}×" for x in ratios], fontsize=7, padding=2)
    ax.set_title("mlpot vs peers (machine in brackets; h200 = one GPU)", fontsize=10)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, metadata={"Software": None})
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
