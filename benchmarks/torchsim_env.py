"""TorchSim's own virtual environment for the MD benchmark.

``torch-sim-atomistic`` brings its own pins, so it runs in a separate venv (created
here when missing) with the same torch version as the driver, and is driven through
:mod:`benchmarks.torchsim_worker`. The newest TorchSim (0.6.x) needs Python ≥ 3.12;
with a 3.11 driver pip picks the newest release for 3.11 (0.3.0). Pass
``--torchsim-python`` to use another interpreter that has torch-sim.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

_CREATING = ".mlpot-creating"


class TorchSimEnvError(RuntimeError):
    """TorchSim's environment could not be found or created."""


def default_venv_dir() -> Path:
    """``$MLPOT_TORCHSIM_VENV``, else ``$XDG_CACHE_HOME/mlpot/torchsim-venv`` (~/.cache)."""
    if os.environ.get("MLPOT_TORCHSIM_VENV"):
        return Path(os.environ["MLPOT_TORCHSIM_VENV"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mlpot" / "torchsim-venv"


def _imports_torchsim(python: Path) -> bool:
    code = "import torch_sim.integrators, torch_sim.models.lennard_jones"
    return (
        subprocess.run([str(python), "-c", code], capture_output=True, check=False).returncode == 0
    )


def _run(argv: list[str], what: str, venv: Path) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise TorchSimEnvError(
            f"creating TorchSim's venv at {venv} failed while {what} "
            f"(exit {proc.returncode}):\n{tail}"
        )


def ensure_torchsim_venv(venv: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Python of TorchSim's venv, creating it (same torch as the driver) when missing.

    A directory left by an interrupted creation is rebuilt; any other directory that
    is not a working TorchSim environment is an error, never deleted.
    """
    venv = Path(venv) if venv is not None else default_venv_dir()
    python = venv / "bin" / "python"
    if venv.exists() and not (venv / _CREATING).exists():
        if python.exists() and _imports_torchsim(python):
            return python
        raise TorchSimEnvError(
            f"{venv} exists but 'import torch_sim' fails there; delete it or pass --torchsim-python"
        )
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    log(f"creating TorchSim's environment at {venv} ({torch_pin}, torch-sim-atomistic)")
    _run([sys.executable, "-m", "venv", str(venv)], "creating the venv", venv)
    (venv / _CREATING).write_text("mlpot is creating this environment\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, torch_pin], f"installing {torch_pin}", venv)
    _run([*pip, "torch-sim-atomistic"], "installing torch-sim-atomistic", venv)
    if not _imports_torchsim(python):
        shutil.rmtree(venv, ignore_errors=True)
        raise TorchSimEnvError(f"TorchSim's venv at {venv} was installed but does not import")
    (venv / _CREATING).unlink()
    return python
