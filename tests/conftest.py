"""Shared fixtures: a private outputs folder for the suite, a private MLflow store per test
(helpers that are not fixtures live in tests/helpers)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

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


@pytest.fixture(scope="module")
def template_store(tmp_path_factory) -> Path:
    """An empty, migrated MLflow sqlite store, created once (creating one takes seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def store(tmp_path, template_store) -> str:
    shutil.copy(template_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
