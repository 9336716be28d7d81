"""Run mypy on the four import packages ``mlpot``, ``mlpot.md``, ``mlpot.kernels`` and
``mlpot.datasets``.

``pyproject.toml`` maps ``md/``, ``kernels/`` and ``datasets/`` into ``mlpot`` with
setuptools ``package-dir``; an editable install serves that mapping through an import
hook, which mypy cannot follow. So this script builds the installed layout as a tree of
symbolic links in a temporary folder and runs mypy there (settings: ``[tool.mypy]`` in
``pyproject.toml``). Error paths are printed relative to that tree (``mlpot/md/...`` is
``md/...`` in the repository).

Usage: ``python scripts/typecheck.py [extra mypy arguments]``; exit status is mypy's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = {"kernels": "kernels", "md": "md", "datasets": "datasets"}
# ``-p mlpot`` checks every sub-package, mlpot.md, mlpot.kernels and mlpot.datasets
# included (naming them again would make mypy see each module twice).
PACKAGE = "mlpot"


def build_link_tree(target: Path) -> Path:
    """Create ``target/mlpot`` with links to ``mlpot/*`` and the mapped sub-packages."""
    package = target / "mlpot"
    package.mkdir()
    for entry in sorted((ROOT / "mlpot").iterdir()):
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in SUBPACKAGES.items():
        (package / name).symlink_to(ROOT / folder)
    return package


def main(argv: list[str]) -> int:
    """Run mypy on the linked tree; return its exit status."""
    with tempfile.TemporaryDirectory(prefix="mlpot-typecheck-") as tmp:
        build_link_tree(Path(tmp))
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "-p",
            PACKAGE,
        ]
        return subprocess.call([*command, *argv], cwd=tmp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
