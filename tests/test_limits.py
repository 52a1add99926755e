"""Budgets before work: archives that would unpack beyond the memory limit, simulations that
cannot fit, and paths that are not regular files are refused in one line, before anything heavy
runs (and a refused run is FAILED, not RUNNING)."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
from helpers import TINY, cli, runs

from framework import limits
from framework.errors import UserError


@pytest.fixture
def small_limit():
    limits.configure(0.001)  # 1 MB
    yield
    limits.configure(None)


def test_a_zip_bomb_npz_is_refused_unread(tmp_path, small_limit):
    """2 MB of zeros compress to a few kB: the declared size, not the file size, counts."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((500, 500)), target=np.zeros(500))
    assert path.stat().st_size < 50_000
    with pytest.raises(UserError) as err:
        limits.check_archive(path, "dataset.path")
    assert str(err.value) == ("dataset.path: bomb.npz would unpack to 2 MB, more than the memory "
                              "limit of 1 MB (limits.memory_gb)")
    ok = tmp_path / "ok.npz"
    np.savez_compressed(ok, x=np.zeros((10, 10)))
    limits.check_archive(ok, "dataset.path")  # well inside: nothing said


def test_a_zip_bomb_keras_file_is_refused_before_keras_reads_it(tmp_path, small_limit):
    from types import SimpleNamespace

    from framework.keras_io.screen import resolve

    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"\0" * 3_000_000)
    with pytest.raises(UserError) as err:
        resolve(SimpleNamespace(path=str(path)))
    assert str(err.value).startswith("model.path: bomb.keras would unpack to 3 MB")


def test_simulation_estimate_counts_inputs_and_probes():
    # 100 samples × 1000 steps × 8 features, + 50 per minibatch × 1000 × (2·128 + 2) × 2, float32
    got = limits.simulation_bytes(100, 1000, 8, 50, 128, 2)
    assert got == 4 * (100 * 1000 * 8 + 50 * 1000 * 258 * 2)
    limits.configure(0.01)
    try:
        with pytest.raises(UserError) as err:
            limits.check_simulation(100, 1000, 8, 50, 128, 2)
        assert str(err.value) == (
            "simulation.n_steps: 100 samples × 1000 steps of 128 neurons need about 106 MB, more "
            "than the memory limit of 10 MB (limits.memory_gb); lower simulation.n_steps, "
            "simulation.minibatch_size or simulation.max_samples")
        limits.check_simulation(100, 10, 8, 50, 128, 2)  # 100 times fewer steps: fits
    finally:
        limits.configure(None)


def test_a_pipe_as_dataset_path_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    proc = cli(["dataset=file", f"dataset.path={fifo}", "tracking.plots=false"],
               uri=f"sqlite:///{tmp_path}/mlflow.db", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"spiketune: dataset.path: {fifo} is not a regular file (a pipe, device or socket)")


def test_ten_million_steps_are_refused_before_training(tmp_path):
    """The adversarial case that was OOM-killed: refused in one line, the run FAILED, no
    training done (time/train_s never logged)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = cli([*TINY, "simulation.n_steps=10000000", "analysis=[firing]"], uri=uri)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("spiketune: simulation.n_steps: 24 samples × 10000000 steps of 16 "
                           "neurons need about "), last
    assert last.endswith("lower simulation.n_steps, simulation.minibatch_size or "
                         "simulation.max_samples")
    _, (run,) = runs(uri)
    assert run.info.status == "FAILED" and "time/train_s" not in run.data.metrics
