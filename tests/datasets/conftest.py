"""Fixtures for the dataset tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from format_writers import make_mptrj


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def mptrj_file(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, dict]:
    data = make_mptrj(rng)
    path = tmp_path / "MPtrj_small.json"
    path.write_text(json.dumps(data))
    return path, data
