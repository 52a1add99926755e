"""Determinism: one config and seed give the same numbers in separate processes, on the CPU.

Nengo seeds every object from the network's seed (the converter's ``net.seed``), the simulators get
``seed=``, TensorFlow and numpy are seeded through ``tf.keras.utils.set_random_seed`` before the
model is built and before training, and the data, splits and neuron samples come from
``numpy.random.default_rng(seed)``. So two runs must agree exactly: every metric except the
timings, and every artifact table byte for byte. A third run with another seed must not.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, TINY, runs

TABLES = ["neurons.csv", "tuning_rates.csv"]


def start(args: list[str], uri: str, cache) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SPIKETUNE_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-m", "framework", *args, f"tracking.uri={uri}"],
                            cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Seed 0 twice and seed 1 once, in three processes running side by side (training uncached,
    so each process trains for itself)."""
    tmp = tmp_path_factory.mktemp("determinism")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    from framework.tracking.store import open_store

    open_store(uri)  # created before the processes start
    # the MLflow model artifact and the system/* sampler are neither compared nor science: off,
    # they save each of the three processes the model's export (seconds on 2 busy cores)
    base = TINY + ["training.epochs=3", "training.cache=false", "tracking.log_model=false",
                   "tracking.system_metrics=false"]
    procs = {name: start(base + [f"seed={seed}", f"tracking.run_name={name}"], uri, tmp / "cache")
             for name, seed in (("a", 0), ("b", 0), ("other", 1))}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{name}: {err[-3000:]}"
    client, found = runs(uri)
    by_name = {r.info.run_name: r for r in found}
    assert sorted(by_name) == ["a", "b", "other"]
    tables = {name: {t: pd.read_csv(client.download_artifacts(r.info.run_id, t)) for t in TABLES}
              for name, r in by_name.items()}
    return by_name, tables


def science(run) -> dict[str, float]:
    """Every metric but the wall-clock timings."""
    # time/* and system/* (CPU, memory of the machine) measure the machine, not the science
    return {k: v for k, v in run.data.metrics.items() if not k.startswith(("time/", "system/"))}


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(three_runs):
    by_name, _ = three_runs
    a, b = science(by_name["a"]), science(by_name["b"])
    assert len(a) >= 10
    assert a == b  # exactly, not approximately
    params = [{k: v for k, v in by_name[n].data.params.items() if k != "tracking.run_name"}
              for n in ("a", "b")]
    assert params[0] == params[1]


@pytest.mark.slow
@pytest.mark.parametrize("table", TABLES)
def test_same_seed_gives_identical_tables(three_runs, table):
    _, tables = three_runs
    a, b = tables["a"][table], tables["b"][table]
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.slow
def test_another_seed_gives_other_numbers(three_runs):
    """Guards the two tests above against passing because the seed is ignored."""
    by_name, tables = three_runs
    assert science(by_name["a"])["spiking/mse"] != science(by_name["other"])["spiking/mse"]
    a, other = tables["a"]["neurons.csv"], tables["other"]["neurons.csv"]
    assert not np.allclose(a.bias, other.bias)
