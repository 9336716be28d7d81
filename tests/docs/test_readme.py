"""The README's commands and code run as written, and the docs' local links resolve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    """The second set-up command of the README is the one .ci/run executes."""
    command = _blocks("bash")[1].strip()
    assert "pytest" in command
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow
def test_readme_md_command_runs(tmp_path: Path) -> None:
    """The README's first command (its `mlpot md` part, fewer steps) runs and writes
    the trajectory and the log."""
    first = _blocks("bash")[0].strip()
    md = first.split("&& ")[-1]
    assert md.startswith("mlpot md examples/cu_fcc_256.xyz --model mlpot-metals-small")
    args = [*md.split()[1:], "--steps", "4", "--every", "2", "--no-progress"]
    args = [str(ROOT / a) if a.startswith("examples/") else a for a in args]
    mlpot = Path(sys.executable).parent / "mlpot"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(mlpot), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cu.dcd").stat().st_size > 0
    assert len((tmp_path / "cu.csv").read_text().splitlines()) == 1 + 3  # steps 0, 2, 4


@pytest.mark.slow
def test_readme_python_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python block runs verbatim; both cells end relaxed."""
    monkeypatch.chdir(tmp_path)
    (code,) = _blocks("python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    for name in ("atoms", "cu"):
        forces = namespace[name].get_forces()
        assert abs(forces).max() < 1e-2


def test_local_links_resolve() -> None:
    """Every relative link in README.md and docs/*.md points at an existing file."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
