"""Fixtures for the training tests: a tiny EMT data set and a tiny model config."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpot.datasets.reference.emt import emt_metals


@pytest.fixture(scope="session")
def cu_store(tmp_path_factory) -> Path:
    """24 EMT-labelled Cu structures (bulk, vacancies, surfaces, rattled, MD)."""
    path = tmp_path_factory.mktemp("data") / "cu.h5"
    emt_metals(path, count=24, seed=3, metals=("Cu",))
    return path


@pytest.fixture(scope="session")
def cuni_store(tmp_path_factory) -> Path:
    """16 EMT-labelled Cu/Ni structures (for fine-tuning with a new element)."""
    path = tmp_path_factory.mktemp("data") / "cuni.h5"
    emt_metals(path, count=16, seed=4, metals=("Cu", "Ni"))
    return path


@pytest.fixture(scope="session")
def cual_store(tmp_path_factory) -> Path:
    """12 EMT-labelled Cu/Al structures (fine-tuning a Cu/Ni model adds Al)."""
    path = tmp_path_factory.mktemp("data") / "cual.h5"
    emt_metals(path, count=12, seed=5, metals=("Cu", "Al"))
    return path
