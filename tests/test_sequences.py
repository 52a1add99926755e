"""Sequences (trials × time × channels): fed over time, trained and read out on the same time
bins."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import compose, runs

from framework.config import validate

#: a small reach-sequence run whose read-out covers the whole movement
SMALL = ["dataset.sequence=true", "dataset.trials_per_direction=20", "model.hidden=[32]",
         "training.epochs=15", "simulation.n_steps=40", "simulation.readout_steps=40",
         "tracking.plots=false", "analysis=[firing]", "training.cache=false",
         "tracking.log_model=false"]  # no test here reads the MLflow model (test_model_flavour)


@pytest.fixture
def uri(store):
    """This module's runs log to a copy of an empty, migrated store (conftest's ``store``): no
    run here is about creating a store, and MLflow's migrations cost each run seconds."""
    return store


def sim_cfg(*overrides):
    return validate(compose(["~tuned", "dataset.sequence=true", *overrides])).simulation


def test_preset_reads_out_the_whole_movement():
    cfg = validate(compose(["experiment=reach_sequence", "simulation.n_steps=70"]))
    assert cfg.dataset.name == "reach" and cfg.dataset.sequence
    assert cfg.simulation.readout_steps == 70


def test_readout_bins_follow_the_spiking_readout():
    from framework.training import readout_bins

    # 20 bins over 100 steps: each bin held 5 steps; the last 20 steps are the last 4 bins
    assert readout_bins(20, sim_cfg("simulation.readout_steps=20")) == 4
    assert readout_bins(20, sim_cfg("simulation.readout_steps=21")) == 5
    assert readout_bins(20, sim_cfg("simulation.readout=last")) == 1
    assert readout_bins(20, sim_cfg("simulation.readout_steps=100")) == 20
    # 40 steps: 2 per bin; 5 steps reach into the 3rd bin from the end
    assert readout_bins(20, sim_cfg("simulation.n_steps=40", "simulation.readout_steps=5")) == 3
    # more bins than steps: each bin held one step
    assert readout_bins(50, sim_cfg("simulation.n_steps=30", "simulation.readout_steps=30")) == 30


@pytest.mark.parametrize("overrides,sequence,steps", [
    ([], True, 100), (["simulation.n_steps=37"], True, 37),  # sequences: the whole trial
    ([], False, 20), (["simulation.n_steps=10"], False, 2),  # else the last fifth of n_steps
    (["simulation.n_steps=3"], False, 1), (["simulation.readout_steps=7"], True, 7)])
def test_readout_window_follows_the_data_unless_set(overrides, sequence, steps):
    from types import SimpleNamespace

    from framework.resolve import resolve_defaults

    obj = validate(compose(["~tuned", *overrides]))  # the schema's n_steps (100)
    resolve_defaults(obj, SimpleNamespace(sequence=sequence))
    assert obj.simulation.readout_steps == steps


@pytest.mark.parametrize("overrides,loaded,sequence,readout,steps", [
    ([], True, False, "fitted", None),  # a loaded model of static inputs: chosen after training
    (["simulation.readout_steps=7"], True, False, "mean", 7),  # a window given is kept
    (["simulation.readout=mean"], True, False, "mean", 20),  # so is the read-out given
    ([], True, True, "mean", 100),  # sequences: the whole trial, as the loss pools it
    ([], False, False, "mean", 20)])  # a network spiketune trains: the last fifth, as before
def test_auto_readout_is_fitted_only_for_a_loaded_model_whose_window_was_not_given(
        tmp_path, overrides, loaded, sequence, readout, steps):
    from types import SimpleNamespace

    from framework.resolve import resolve_defaults

    (tmp_path / "m.keras").write_text("not read before the run")
    model = ["model=keras_file", f"model.path={tmp_path / 'm.keras'}"] if loaded else []
    obj = validate(compose(["~tuned", *model, *overrides]))
    said = resolve_defaults(obj, SimpleNamespace(sequence=sequence))
    assert (obj.simulation.readout.value, obj.simulation.readout_steps) == (readout, steps)
    assert any(line.startswith("simulation.readout=auto -> fitted") for line in said) == (
        readout == "fitted")


def test_loss_is_on_the_mean_of_the_last_bins():
    """NengoDL gives the loss the output over every step, (batch, bins, k), and targets (batch, 1,
    k); only the pooled last bins count."""
    import tensorflow as tf

    from framework.training import loss_fn

    class D:
        classification = False

    target = np.array([[[1.0, -1.0]]], np.float32)  # (1, 1, 2)
    y_pred = np.zeros((1, 6, 2), np.float32)
    y_pred[0, :3] = [9.0, 9.0]  # early bins: wrong, and must not count
    y_pred[0, 3:] = [[0.5, -0.5], [1.0, -1.0], [1.5, -1.5]]  # their mean is the target
    assert float(loss_fn(D, 3)(tf.constant(target), tf.constant(y_pred))[0, 0]) == 0.0
    # with 4 bins a wrong bin enters the mean, (3, 1.5): errors 3 − 1 and 1.5 − (−1), squared
    assert float(loss_fn(D, 4)(tf.constant(target), tf.constant(y_pred))[0, 0]) == \
        pytest.approx((2.0 ** 2 + 2.5 ** 2) / 2)

    class C:
        classification = True

    logits = np.zeros((1, 2, 3), np.float32)
    logits[0, 1] = [0.0, 2.0, 0.0]  # the last bin favours class 1
    ce = float(loss_fn(C, 1)(tf.constant([[[1]]]), tf.constant(logits))[0, 0])
    assert ce == pytest.approx(np.log1p(2 * np.exp(-2.0)), rel=1e-5)


def test_sequences_are_fed_over_time_not_flattened():
    from framework.data import base as datasets
    from framework.simulation import spiking_inputs
    from framework.training import as_steps

    cfg = validate(compose(["dataset.sequence=true", "dataset.trials_per_direction=4",
                            "dataset.n_timesteps=7"]))
    data = datasets.load(cfg.dataset, cfg.seed)
    assert data.x_train.shape[1:] == (7, 8) and data.sequence
    np.testing.assert_array_equal(as_steps(data.x_train, True), data.x_train)
    x = spiking_inputs(data, np.arange(3), 20)  # ceil(20 / 7) = 3 steps per bin
    assert x.shape == (3, 21, 8)
    np.testing.assert_array_equal(x[:, 3:6], np.repeat(data.x_test[:3, 1:2], 3, axis=1))


def run_small(overrides, uri):
    from framework.pipeline import run
    from framework.progress import Console

    return run(compose(overrides + [f"tracking.uri={uri}"]), console=Console(quiet=True))


def test_reach_sequence_decodes_direction(uri):
    res = run_small(SMALL, uri)
    m = res.metrics
    # chance is 90°; the whole movement read out gives about 12° (rate) and 14° (spiking)
    assert m["rate/angle_error_deg"] < 20
    assert m["spiking/angle_error_deg"] < 20
    assert m["spiking/mse"] < 0.2
    client, found = runs(uri)
    params = found[0].data.params
    assert params["dataset.sequence"] == "True"
    (ds,) = found[0].inputs.dataset_inputs
    assert '"train": [120, 20, 8]' in ds.dataset.profile  # trials × bins × channels


def test_readout_last_and_mean_both_run(uri):
    last = run_small(SMALL + ["simulation.readout=last", "training.epochs=3"], uri)
    mean = run_small(SMALL + ["simulation.readout_steps=10", "training.epochs=3"], uri)
    for res in (last, mean):
        assert res.status == "FINISHED"
        assert np.isfinite(res.metrics["spiking/angle_error_deg"])
    assert last.metrics["spiking/mse"] != mean.metrics["spiking/mse"]


def test_npz_sequence_file_runs_end_to_end(tmp_path, uri):
    """A user's npz of trials × time × channels goes through dataset=file like reach's."""
    from framework.data import base as datasets

    cfg = validate(compose(["dataset.sequence=true", "dataset.trials_per_direction=20"]))
    data = datasets.load(cfg.dataset, cfg.seed)
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    direction = np.concatenate([data.dir_train, data.dir_test])
    path = tmp_path / "reach_seq.npz"
    np.savez(path, x=x, y=y, direction=direction)
    overrides = [o for o in SMALL if not o.startswith("dataset.")] + [
        "dataset=file", f"dataset.path={path}", "dataset.task=regression", "dataset.target=y",
        "dataset.direction=direction"]
    res = run_small(overrides, uri)
    assert res.metrics["spiking/angle_error_deg"] < 25
    client, found = runs(uri)
    (ds,) = found[0].inputs.dataset_inputs
    assert ds.dataset.name == "file" and str(path) in ds.dataset.source
