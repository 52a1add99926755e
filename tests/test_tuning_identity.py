"""Known truth through the whole pipeline (issue 22): a hand-built Keras model whose hidden ReLU
layer copies its 10 input channels (identity weights, no bias) over channels of known tuning,
4 cosine, 4 axial (cos 2θ) and 2 flat, 8 directions × 40 test trials, loaded as
``model=keras_file`` with ``neuron=spiking_relu`` from ``dataset=file``. Its neurons must come
out directional and cosine exactly as the channels were built."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import cli, runs

N_COS, N_AXIAL, N_FLAT = 4, 4, 2
TRIALS = 50  # per direction; test_fraction 0.8 (stratified by the direction class): 40 tested


def channels(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (trials, 10), direction class, direction in degrees): 0.5 + 0.3·cos(θ − φ) for the
    cosine channels, 0.5 + 0.3·cos 2(θ − φ) for the axial ones, 0.5 for the flat ones, each with
    Gaussian trial noise of SD 0.05 (a.u.; the spiking ReLU fires about 90-360 Hz at 0.2-0.8,
    1-2 spikes of noise per 0.1 s trial)."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(8), TRIALS)
    theta = np.deg2rad(label * 45.0)[:, None]
    phi = np.deg2rad(rng.uniform(0, 360, N_COS + N_AXIAL))
    x = np.concatenate([0.5 + 0.3 * np.cos(theta - phi[:N_COS]),
                        0.5 + 0.3 * np.cos(2 * (theta - phi[N_COS:])),
                        np.full((len(label), N_FLAT), 0.5)], axis=1)
    x += 0.05 * rng.standard_normal(x.shape)
    return x.astype(np.float32), label, label * 45.0


@pytest.fixture(scope="module")
def identity_files(tmp_path_factory):
    """The data (.npz) and the identity-copy model (.keras), saved as a user would."""
    from framework import quiet

    quiet.tensorflow()
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("identity")
    x, label, direction = channels()
    np.savez(folder / "reach.npz", emg=x, label=label, direction=direction)
    n = x.shape[1]
    inp = tf.keras.Input(shape=(n,))
    copy = tf.keras.layers.Dense(n, activation="relu", name="copy")
    out = tf.keras.layers.Dense(8, name="out")
    model = tf.keras.Model(inp, out(copy(inp)))
    copy.set_weights([np.eye(n, dtype=np.float32), np.zeros(n, np.float32)])
    tf.keras.utils.set_random_seed(0)  # the read-out's weights do not matter to tuning
    model.save(folder / "copy.keras")
    return folder


def test_identity_copied_channels_come_out_as_built(identity_files, uri):
    import pandas as pd

    args = ["model=keras_file", f"model.path={identity_files / 'copy.keras'}",
            "neuron=spiking_relu", "dataset=file", f"dataset.path={identity_files / 'reach.npz'}",
            "dataset.features=[emg]", "dataset.target=label", "dataset.direction=direction",
            "dataset.task=classification", "dataset.test_fraction=0.8",
            "analysis=[firing,tuning]", "tracking.plots=false"]
    proc = cli(args, uri=uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, found = runs(uri)
    run = found[0]
    neurons = pd.read_csv(client.download_artifacts(run.info.run_id, "neurons.csv"))
    assert neurons["layer"].unique().tolist() == ["copy"]
    neurons = neurons.sort_values("neuron")
    tuned = np.arange(10) < N_COS + N_AXIAL
    np.testing.assert_array_equal(neurons["directional"], tuned)
    np.testing.assert_array_equal(neurons["cosine_fit"], np.arange(10) < N_COS)
    assert not neurons["pinned"].any() and not neurons["near_silent"].any()
    m = run.data.metrics
    assert m["tuning/directional_fraction"] == pytest.approx(0.8)
    assert m["tuning/cosine_fraction"] == pytest.approx(0.5)
    assert "tuning: 8 of 10 directional, 50% of them cosine" in proc.stdout + proc.stderr
    # the copy adds nothing: each neuron's rate has its input's PD, and nothing is created
    cos = neurons[neurons["neuron"] < N_COS]
    assert np.abs(cos["pd_shift_deg"]).max() < 5.0
    assert m["z_detail/tuning/copy/created_fraction"] == 0.0
    rates = pd.read_csv(client.download_artifacts(run.info.run_id, "tuning_rates.csv"))
    assert (rates["n_trials"] == 40).all() and rates["direction_deg"].nunique() == 8
