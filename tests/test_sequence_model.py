"""A whole-trial sequence model (per-step Dense layers, GlobalAveragePooling1D over time, a linear
read-out), as an EMG user saves it, runs as its per-step network read out over the whole trial:
the same predictions as Keras's own, in the recording's own time."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import compose, runs

from framework.errors import UserError
from framework.pipeline import run
from framework.progress import Console

T, C, K = 50, 10, 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from framework import quiet

    quiet.tensorflow()
    import keras

    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(K), 40)
    pattern = rng.uniform(0, 1, (K, C))
    x = (pattern[label][:, None, :] * np.hanning(T)[None, :, None]
         + 0.3 * rng.standard_normal((len(label), T, C))).astype(np.float32)
    split = np.where(np.arange(len(label)) % 4 == 0, "test", "train")
    folder = tmp_path_factory.mktemp("seq")
    np.savez(folder / "emg.npz", x=x, label=label, split=split)
    keras.utils.set_random_seed(0)
    inp = keras.Input((T, C))
    h = keras.layers.Dense(32, activation="relu")(inp)
    out = keras.layers.Dense(K)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = split == "train"
    model.fit(x[train], label[train], epochs=40, verbose=0)
    model.save(folder / "gap.keras")
    own = float(np.mean(model.predict(x[~train], verbose=0).argmax(-1) == label[~train]))
    bad = keras.Model(inp, keras.layers.Dense(K)(keras.layers.Dense(
        8, activation="relu")(keras.layers.GlobalAveragePooling1D()(h))))
    bad.save(folder / "after.keras")
    return folder, own


def keys(folder, store, name, *more):
    return ["dataset=file", f"dataset.path={folder / 'emg.npz'}", "dataset.target=label",
            "dataset.split=split", "dataset.task=classification", "model=keras_file",
            f"model.path={folder / name}", "neuron=relu", "dataset.bin_s=0.002",
            "analysis=[firing]", "tracking.plots=false", "tracking.log_model=false",
            f"tracking.uri={store}", *more]


def test_a_whole_trial_model_runs_per_step_and_keeps_its_predictions(files, store):
    folder, own = files
    res = run(compose(keys(folder, store, "gap.keras")), console=Console(quiet=True))
    assert own > 0.8
    assert res.metrics["keras/accuracy"] == pytest.approx(own, abs=1e-9)
    assert res.metrics["rate/accuracy"] == pytest.approx(own, abs=1e-9)  # ReLU: the same net
    _, found = runs(store)
    params = found[-1].data.params
    assert params["simulation.n_steps"] == str(T * 2)  # 50 bins of 2 ms
    assert params["simulation.readout_steps"] == str(T * 2)  # the mean over the whole trial


def test_a_nonlinear_layer_after_the_pooling_is_refused(files, store):
    folder, _ = files
    with pytest.raises(UserError, match="after GlobalAveragePooling1D is nonlinear"):
        run(compose(keys(folder, store, "after.keras")), console=Console(quiet=True))
