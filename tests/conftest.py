from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forcecast.lab.synth import SynthConfig, generate_dataset

# Fixtures shared by the clinic tests (clinic_db, empty_clinic_db: SQLite and PostgreSQL), see tests/clinic_db.py.
pytest_plugins = ["clinic_db"]

TINY = SynthConfig(subjects=3, seed=7, duration_s=6.0, speeds=("comfortable",), static_s=2.0)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (3 subjects, a 6 s walk and a 2 s static trial each). Read-only."""
    root = tmp_path_factory.mktemp("tiny") / "ds"
    generate_dataset(root, TINY)
    return root


@pytest.fixture
def dataset_copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset that a test may break."""
    target = tmp_path / "ds"
    shutil.copytree(tiny_dataset, target)
    return target
