"""MACE's own virtual environment for the model benchmark.

mace-torch 0.3.16 pins e3nn 0.4.4, which must not replace mlpot's e3nn, so MACE
runs in a separate venv (created here when missing, with the same torch version
as the driver, so both frameworks run the same torch) and is driven through
:mod:`benchmarks.mace_worker`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

MACE_VERSION = "0.3.16"
_CREATING = ".mlpot-creating"


class MaceEnvError(RuntimeError):
    """MACE's environment could not be found or created."""


def default_venv_dir() -> Path:
    """``$MLPOT_MACE_VENV``, else ``$XDG_CACHE_HOME/mlpot/mace-<version>-venv`` (~/.cache)."""
    if os.environ.get("MLPOT_MACE_VENV"):
        return Path(os.environ["MLPOT_MACE_VENV"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mlpot" / f"mace-{MACE_VERSION}-venv"


def venv_python(venv: Path) -> Path:
    """The interpreter inside a virtual environment."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def torch_requirement() -> str:
    """``torch==X.Y.Z`` of the running torch (local tags such as ``+cpu`` dropped)."""
    return f"torch=={torch.__version__.split('+')[0]}"


def _run_step(argv: list[str], what: str, venv: Path) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        shutil.rmtree(venv, ignore_errors=True)
        raise MaceEnvError(
            f"creating MACE's virtual environment at {venv} failed while {what} "
            f"(exit {proc.returncode}); command: {' '.join(argv)}\n{tail}\n"
            "Fix the cause (network/package index?), or point --mace-python at an "
            "interpreter that has mace-torch, or run with --no-mace.")


def _imports_mace(python: Path) -> subprocess.CompletedProcess:
    code = ("import torch\n"
            "if hasattr(torch.serialization, 'add_safe_globals'):\n"
            "    torch.serialization.add_safe_globals([slice])\n"
            "import mace.modules, e3nn.o3\n")
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=False)


def ensure_mace_venv(venv: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Python of MACE's venv, creating the venv first when missing.

    An existing venv is used when its Python imports mace. A directory left by an
    interrupted creation (it holds the ``.creating`` marker) is removed and built
    again; any other directory is never deleted: that is an error. On failure the
    partial venv is removed and :class:`MaceEnvError` says which step failed and why.
    """
    venv = Path(venv) if venv is not None else default_venv_dir()
    python = venv_python(venv)
    if venv.exists() and not (venv / _CREATING).exists():
        if python.exists() and _imports_mace(python).returncode == 0:
            return python
        raise MaceEnvError(f"{venv} exists but is not a working MACE environment "
                           "('import mace' fails there); delete it, or pass another "
                           "--mace-venv / --mace-python")
    if venv.exists():
        log(f"removing the interrupted MACE environment {venv}")
        shutil.rmtree(venv)
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MaceEnvError(f"cannot create MACE's environment at {venv} while creating "
                           f"the venv's parent directory: {err}") from err
    log(f"creating MACE's environment at {venv} ({torch_requirement()}, "
        f"mace-torch=={MACE_VERSION}; a one-time download of a few hundred MB)")
    _run_step([sys.executable, "-m", "venv", str(venv)], "creating the venv", venv)
    (venv / _CREATING).write_text("mlpot is creating this environment\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run_step([*pip, torch_requirement()], f"installing {torch_requirement()}", venv)
    _run_step([*pip, f"mace-torch=={MACE_VERSION}"], f"installing mace-torch=={MACE_VERSION}",
              venv)
    check = _imports_mace(python)
    if check.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise MaceEnvError(f"MACE's environment at {venv} was installed but "
                           f"'import mace' fails:\n{check.stderr.strip()[-2000:]}")
    (venv / _CREATING).unlink()
    return python
