"""Shared fixtures: a private outputs folder for the suite, a private MLflow store per test
(helpers that are not fixtures live in tests/helpers)."""
from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config):
    """Keep the suite out of the user's outputs/: store, training cache and Hydra logs of every
    test, in-process or in a subprocess, go to a temporary folder (set before framework imports)."""
    os.environ["SPIKETUNE_OUTPUTS"] = tempfile.mkdtemp(prefix="spiketune-test-outputs-")


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(os.environ.pop("SPIKETUNE_OUTPUTS", ""), ignore_errors=True)


@pytest.fixture
def uri(tmp_path) -> str:
    """A fresh, absolute sqlite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
