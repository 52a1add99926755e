"""The forum users' cases, run as they would run them, with the verdict each run must carry.

A Keras 3 model trained on the user's own split of an EMG-like recording is scored on exactly its
held-out trials; without the split the run says it may be scored on training trials; a scale given
on the command line changes the network; a fine-tune that falls below the loaded model says so;
params remember the scale they were trained at; a bias range at float32 edges is reported inside;
the default experiment ends ok.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import compose, runs, user_split_model

from framework.pipeline import run
from framework.progress import Console

N_DIR, PER_DIR, N_REST, N_CH = 8, 30, 40, 8


def recording(seed: int = 0):
    """Cosine-tuned EMG envelopes in µV (8 directions and rest trials), and the user's own split:
    every fourth trial of each class held out."""
    rng = np.random.default_rng(seed)
    pd_ch = rng.uniform(0, 2 * np.pi, N_CH)
    directions = np.repeat(np.arange(N_DIR) * 45.0, PER_DIR)
    theta = np.deg2rad(directions)[:, None]
    x = np.concatenate([40 + 60 * np.maximum(np.cos(theta - pd_ch), 0),
                        np.full((N_REST, N_CH), 40.0)])
    x = (x * (1 + 0.25 * rng.standard_normal(x.shape))).astype(np.float32)
    label = np.concatenate([np.repeat(np.arange(N_DIR), PER_DIR), np.full(N_REST, N_DIR)])
    direction = np.concatenate([directions, np.full(N_REST, np.nan)])
    split = np.where(np.arange(len(label)) % 4 == 3, "test", "train")
    return x, label, direction, split


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The user's files: ``emg.npz`` (with its ``split`` array) and ``model.keras``, trained on
    the training trials only; and the model's own accuracy on the held-out ones."""
    from framework import quiet

    quiet.tensorflow()
    folder = tmp_path_factory.mktemp("user")
    return folder, user_split_model(folder, *recording())


def keys(folder, store, *more):
    return ["dataset=file", f"dataset.path={folder / 'emg.npz'}", "dataset.target=label",
            "dataset.direction=direction", "dataset.task=classification", "model=keras_file",
            f"model.path={folder / 'model.keras'}", "simulation.n_steps=50",
            "analysis=[firing]", "tracking.plots=false", "tracking.log_model=false",
            f"tracking.uri={store}", *more]


def last_run(store):
    client, found = runs(store)
    return client, found[-1]


def test_the_users_split_is_scored_exactly_and_its_absence_is_the_verdict(user, store):
    folder, own = user
    res = run(compose(keys(folder, store, "dataset.split=split")), console=Console(quiet=True))
    assert own > 0.6  # the model learnt the task
    # Keras's own prediction on exactly the held-out trials (a quarter of every class)
    assert res.metrics["keras/accuracy"] == pytest.approx(own, abs=1e-9)
    client, r = last_run(store)
    assert "spiketune.health.held_out" not in r.data.tags
    assert r.data.params["neuron.name"] == "spiking_relu"  # the loaded ReLU model's default
    table = pd.read_csv(client.download_artifacts(r.info.run_id, "split.csv"))
    _, _, _, split = recording()
    assert table["split"].tolist() == split.tolist()
    assert table["index"].tolist() == list(range(len(split)))

    res = run(compose(keys(folder, store)), console=Console(quiet=True))
    _, r = last_run(store)
    assert r.data.tags["spiketune.health"] == "warn"
    assert "dataset.split" in r.data.tags["spiketune.health.held_out"]


def test_a_scale_given_for_a_loaded_model_is_the_scale_it_runs_at(user, store):
    folder, _ = user
    rates = []
    for scale in (1, 10):
        res = run(compose(keys(folder, store, "dataset.split=split",
                               f"simulation.scale_firing_rates={scale}")),
                  console=Console(quiet=True))
        _, r = last_run(store)
        assert r.data.params["conversion.normalize"] == "none"  # auto did not overrule it
        assert r.data.params["simulation.scale_firing_rates"] == str(float(scale))
        rates.append(res.metrics["firing/mean_rate_hz"])
    assert rates[1] == pytest.approx(10 * rates[0], rel=0.1)  # spiking ReLU: rates × scale


def test_a_fine_tune_that_ends_below_the_loaded_model_says_so(user, store):
    folder, _ = user
    res = run(compose(keys(folder, store, "dataset.split=split", "model.train=true",
                           "training.learning_rate=0.01", "training.epochs=10",
                           "conversion.normalize=none", "neuron=lif",
                           "simulation.scale_firing_rates=100")),
              console=Console(quiet=True))
    _, r = last_run(store)
    assert "train/best_epoch" in res.metrics  # judged on held-back training trials
    kept = res.metrics["rate/accuracy"] >= res.metrics["keras/accuracy"] - 0.02
    assert kept or "spiketune.health.fine_tune_worse" in r.data.tags
    assert r.data.params["training.learning_rate"] == "0.01"  # as given, not the fine-tune rate


def test_params_remember_the_scale_they_were_trained_at(user, store, tmp_path):
    import shutil

    folder, _ = user
    run(compose(keys(folder, store, "dataset.split=split", "model.train=true",
                     "training.epochs=1", "simulation.scale_firing_rates=50",
                     "tracking.log_model=true")), console=Console(quiet=True))
    import mlflow

    _, r = last_run(store)
    logged = mlflow.MlflowClient(store).get_logged_model(r.data.tags["spiketune.model_id"])
    stored = Path(logged.artifact_location.removeprefix("file://"))
    model_dir = next(p for p in stored.rglob("params.npz")).parent
    params = model_dir / "params.npz"
    assert (model_dir / "params.conversion.json").is_file()

    run(compose(keys(folder, store, "dataset.split=split", f"model.params={params}")),
        console=Console(quiet=True))
    _, r = last_run(store)
    assert r.data.params["simulation.scale_firing_rates"] == "50.0"  # read, not assumed
    assert "spiketune.health.params_scale" not in r.data.tags

    run(compose(keys(folder, store, "dataset.split=split", f"model.params={params}",
                     "simulation.scale_firing_rates=80")), console=Console(quiet=True))
    _, r = last_run(store)
    assert "trained at simulation.scale_firing_rates=50" in r.data.tags[
        "spiketune.health.params_scale"]

    bare = tmp_path / "bare" / "params.npz"
    bare.parent.mkdir()
    shutil.copy(params, bare)
    run(compose(keys(folder, store, "dataset.split=split", f"model.params={bare}")),
        console=Console(quiet=True))
    _, r = last_run(store)
    assert "assumed simulation.scale_firing_rates=100" in r.data.tags[
        "spiketune.health.params_scale"]


def test_percentile_with_params_is_refused_in_one_line(user, store, tmp_path):
    from framework.errors import UserError

    folder, _ = user
    fake = tmp_path / "params.npz"
    np.savez(fake, np.zeros(1))
    with pytest.raises(UserError, match="conversion.normalize: percentile would rescale"):
        run(compose(keys(folder, store, f"model.params={fake}", "conversion.normalize=percentile")),
            console=Console(quiet=True))


def test_a_bias_range_at_float32_edges_is_reported_inside(store):
    from helpers import TINY

    res = run(compose([*TINY, "training.biases.enabled=true",
                       "training.biases.low=0.2", "training.biases.high=0.3",
                       "tracking.log_model=false", f"tracking.uri={store}"]),
              console=Console(quiet=True))
    assert res.metrics["reg/biases/in_range_after"] == 1.0


def test_the_default_experiment_ends_ok_with_no_layer_saturated(store):
    res = run(compose(["tracking.plots=false", "tracking.log_model=false",
                       f"tracking.uri={store}"]), console=Console(quiet=True))
    _, r = last_run(store)
    layers = {k: v for k, v in res.metrics.items() if k.count("/") == 2
              and k.startswith("firing/") and k.endswith("/saturated_fraction")}
    assert layers and max(layers.values()) <= 0.10, layers
    assert r.data.tags["spiketune.health"] == "ok", {
        k: v for k, v in r.data.tags.items() if k.startswith("spiketune.health")}
