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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Heaviest files first. ``make test`` hands whole files to 2 workers in collection order
    (``--dist loadfile --no-loadscope-reorder``); a long file that starts last is a tail one
    worker runs alone (xdist's own order, by number of tests, put the 1-test browser and the
    5-test digits files last). A slow-marked test counts 30 (they run 10-100 s), any other 1.
    The sort is stable, so after pytest-randomly's shuffle (tryfirst) files of equal weight and
    the tests inside each file keep their random order."""
    weight: dict[str, int] = {}
    for item in items:
        weight[item.nodeid.split("::")[0]] = weight.get(item.nodeid.split("::")[0], 0) + (
            30 if item.get_closest_marker("slow") else 1)
    items.sort(key=lambda item: -weight[item.nodeid.split("::")[0]])


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(os.environ.pop("SPIKETUNE_OUTPUTS", ""), ignore_errors=True)


@pytest.fixture
def uri(tmp_path) -> str:
    """A fresh, absolute sqlite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def template_store(tmp_path_factory) -> Path:
    """An empty, migrated MLflow sqlite store, created once per test process (creating one runs
    MLflow's schema migrations: 2-5 s); never written to, each test gets a copy (``store``)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def store(tmp_path, template_store) -> str:
    shutil.copy(template_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
