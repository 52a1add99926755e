"""Keras 3 model files (``.keras`` and ``.h5``, any backend) load natively: read by Keras 3 in safe
mode, rebuilt as the tf-keras model NengoDL converts, every weight copied exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from framework.errors import UserError

FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def keras():
    from framework import quiet

    quiet.tensorflow()
    import keras as keras3

    assert keras3.__version__.startswith("3.")
    return keras3


def seed_thread_model(keras):
    """The seed-000 user's network: Input 8 → Dense 50 relu → Dense 50 relu → Dense 9."""
    inp = keras.Input((8,), name="input_5")
    h = keras.layers.Dense(50, activation="relu", name="dense_13")(inp)
    h = keras.layers.Dense(50, activation="relu", name="dense_14")(h)
    return keras.Model(inp, keras.layers.Dense(9, name="out")(h))


def sequential_model(keras):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dropout(0.3), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def conv_model(keras, pool="AveragePooling2D"):
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv0")(inp)
    h = getattr(keras.layers, pool)(2, name="pool")(h)
    h = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv1")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    return keras.Model(inp, keras.layers.Dense(10, name="out")(h))


BUILDERS = {"functional": (seed_thread_model, (8,)), "sequential": (sequential_model, (8,)),
            "conv": (conv_model, (8, 8, 1)),
            "conv-maxpool": (lambda k: conv_model(k, "MaxPooling2D"), (8, 8, 1))}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_rebuilt_model_predicts_what_keras3_predicts(keras, kind, suffix, tmp_path):
    from framework.keras_io import keras_major, load_keras

    build, shape = BUILDERS[kind]
    keras.utils.set_random_seed(7)
    model = build(keras)
    rng = np.random.default_rng(7)
    for layer in model.layers:  # BatchNormalization's statistics away from 0 and 1
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([w + rng.uniform(0.5, 2.0, w.shape).astype("float32")
                               for w in layer.get_weights()])
    path = tmp_path / f"{kind}{suffix}"
    model.save(path)
    assert keras_major(path) == 3
    x = rng.normal(size=(32, *shape)).astype("float32")
    expected = model.predict(x, verbose=0)

    rebuilt = load_keras(path)
    assert type(rebuilt).__module__.startswith("tf_keras")
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # weights copied exactly, layer by layer, under the same names
    for layer in model.layers:
        if layer.get_weights():
            for a, b in zip(layer.get_weights(), rebuilt.get_layer(layer.name).get_weights()):
                assert np.array_equal(a, b), layer.name


@pytest.mark.parametrize("name,key", [("keras3_jax_dense.keras", "dense"),
                                      ("keras3_jax_conv.h5", "conv")])
def test_files_written_by_the_jax_backend_load(keras, name, key):
    """Written by Keras 3.15.1 on JAX (tests/fixtures/make_keras3_jax.py), read here on TF."""
    from framework.keras_io import load_keras

    ref = np.load(FIXTURES / "keras3_jax.npz")
    rebuilt = load_keras(FIXTURES / name)
    np.testing.assert_allclose(rebuilt.predict(ref[f"x_{key}"], verbose=0), ref[f"y_{key}"],
                               rtol=1e-4, atol=1e-5)


def _data(n_outputs=3, shape=(8,)):
    """What check_shapes and the screen read of a dataset."""
    from types import SimpleNamespace

    return SimpleNamespace(name="test", input_shape=shape, sequence=False, n_outputs=n_outputs,
                           classification=True, task="classification")


def _load(path, data):
    """Load as the pipeline does: with the trial conversion (``convert`` given)."""
    from framework.conversion import convert
    from framework.keras_io import load_model
    from framework.models import KerasFileModel

    return load_model(KerasFileModel(path=str(path)), data, convert=convert)


def test_keras3_lambda_is_refused_without_running_it(keras, tmp_path):
    marker = tmp_path / "ran"
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    inp = keras.Input((8,))
    h = keras.layers.Lambda(fn, name="sneaky")(keras.layers.Dense(4, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"lam{suffix}"
        model.save(path)
        marker.unlink(missing_ok=True)
        with pytest.raises(UserError) as err:
            _load(path, _data())
        assert str(err.value).startswith(f"model.path: {path.name}: layer 'sneaky' is a Lambda")
        assert not marker.exists()


def test_unconvertible_keras3_layer_is_named_with_what_to_use(keras, tmp_path):
    inp = keras.Input((5, 8))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.LSTM(4, name="rnn")(inp)))
    path = tmp_path / "rnn.keras"
    model.save(path)
    with pytest.raises(UserError) as err:
        _load(path, _data(shape=(5, 8)))
    msg = str(err.value)
    assert msg.startswith("model.path: rnn.keras: layer 'rnn' (LSTM) cannot be converted")
    assert "use feed the sequence one time step per simulation step" in msg


def test_unknown_class_under_keras_module_is_refused_as_custom(keras, tmp_path):
    """A stored class that claims Keras's module but is not a Keras layer is custom code."""
    import json
    import zipfile

    src = tmp_path / "plain.keras"
    seed_thread_model(keras).save(src)
    path = tmp_path / "spoofed.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["class_name"] = "Doubler"
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    with pytest.raises(UserError, match=r"spoofed.keras: layer 'dense_13' has the custom class "
                                        r"'Doubler'"):
        _load(path, _data(n_outputs=9))


def test_max_pooling_is_refused_with_what_to_use(keras, tmp_path):
    path = tmp_path / "maxpool.keras"
    conv_model(keras, "MaxPooling2D").save(path)
    with pytest.raises(UserError) as err:
        _load(path, _data(n_outputs=10, shape=(8, 8, 1)))
    assert str(err.value).startswith("model.path: maxpool.keras: layer 'pool' (MaxPooling2D): "
                                     "NengoDL converts max pooling only by replacing it")
    assert str(err.value).endswith("use AveragePooling2D and retrain")


def test_keras3_setting_without_tf_keras_counterpart_is_refused(keras, tmp_path):
    """A LoRA-enabled Dense computes kernel + A·B: silently dropping lora_rank would change it."""
    model = seed_thread_model(keras)
    model.get_layer("dense_13").enable_lora(2)
    path = tmp_path / "lora.keras"
    model.save(path)
    with pytest.raises(UserError, match=r"layer 'dense_13' \(Dense\) sets lora_rank=2, which "
                                        r"tf-keras .* does not have"):
        _load(path, _data(n_outputs=9))


def test_keras2_files_still_take_the_tf_keras_loader(keras, tmp_path):
    import tensorflow as tf

    from framework.keras_io import keras_major, load_keras

    inp = tf.keras.Input((8,))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(inp))
    x = np.ones((2, 8), "float32")
    for path in (tmp_path / "k2.h5", tmp_path / "k2.keras"):
        model.save(path)
        assert keras_major(path) == 2
        assert np.array_equal(load_keras(Path(path)).predict(x, verbose=0),
                              model.predict(x, verbose=0))


# ----------------------------------------------------------------------------- through the pipeline
#: tiny runs of a loaded model: no training, rate neurons equal to Keras's ReLU
LOADED = ["simulation.n_steps=20", "simulation.readout_steps=5", "tracking.plots=false",
          "analysis=[firing]", "training.cache=false", "model=keras_file", "model.train=false",
          "neuron=relu"]


def _spiketune_data(overrides):
    from helpers import compose

    from framework.config import validate
    from framework.data import base as datasets

    cfg = validate(compose(overrides))
    return datasets.load(cfg.dataset, cfg.seed)


def _run(overrides, uri):
    from helpers import compose

    from framework.pipeline import run
    from framework.progress import Console

    return run(compose(overrides + [f"tracking.uri={uri}"]), console=Console(quiet=True))


@pytest.mark.parametrize("case", ["seed_thread", "conv"])
def test_keras3_file_runs_to_a_finished_run_with_keras3s_accuracy(keras, case, tmp_path, uri):
    """The seed thread's 8-50-50-9 network and a conv net, trained and saved by Keras 3: the
    converted ReLU rate network scores exactly what Keras 3 scores on the same test inputs."""
    if case == "seed_thread":
        data_keys = ["dataset.task=classification", "dataset.n_directions=9",
                     "dataset.trials_per_direction=20"]
        model = seed_thread_model(keras)
    else:
        data_keys = ["dataset=digits"]
        model = conv_model(keras)
    data = _spiketune_data(data_keys)
    keras.utils.set_random_seed(5)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=15,
              batch_size=32, verbose=0)
    path = tmp_path / f"{case}.keras"
    model.save(path)
    keras_acc = float(np.mean(model.predict(data.x_test, verbose=0).argmax(-1) == data.y_test))
    assert keras_acc > 0.5  # it learned: chance is 1/9 or 1/10

    res = _run(data_keys + LOADED + [f"model.path={path}"], uri)
    assert res.status == "FINISHED"
    assert res.metrics["rate/accuracy"] == pytest.approx(keras_acc, abs=1e-9)


def test_users_own_digits_npz_feeds_their_conv_model(keras, tmp_path, uri):
    """An npz of (samples, 8, 8) images with no channel axis, for a model taking (8, 8, 1): the
    layout comes from the model's input; the rate network scores what Keras scores."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.savez(tmp_path / "digits.npz", x=bunch.images / 16.0, y=bunch.target)
    keys = ["dataset=file", f"dataset.path={tmp_path / 'digits.npz'}", "dataset.target=y",
            "dataset.task=classification"]
    data = _spiketune_data(keys)
    assert data.x_train.shape[1:] == (8, 8) and data.sequence  # by rank alone: a sequence
    keras.utils.set_random_seed(5)
    model = conv_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train[..., None], data.y_train, epochs=15, batch_size=32, verbose=0)
    path = tmp_path / "conv.keras"
    model.save(path)
    own = float(np.mean(model.predict(data.x_test[..., None], verbose=0).argmax(-1)
                        == data.y_test))
    assert own > 0.5
    res = _run(keys + LOADED + [f"model.path={path}"], uri)
    assert res.metrics["keras/accuracy"] == pytest.approx(own, abs=1e-9)
    assert res.metrics["rate/accuracy"] == pytest.approx(own, abs=1e-9)


def test_layout_follows_the_models_input():
    from framework.data.base import Data
    from framework.data.files import fit_layout

    def make(*shape):
        return Data(name="file", task="classification", x_train=np.zeros((4, *shape)),
                    y_train=np.zeros(4), x_test=np.zeros((2, *shape)), y_test=np.zeros(2),
                    n_outputs=3, sequence=len(shape) == 2)

    seq, lines = fit_layout(make(50, 8), (8,))  # (trials, time, channels) into Dense(8): sequence
    assert seq.sequence and lines == []  # as the rank said: nothing to report
    img, lines = fit_layout(make(8, 8), (8, 8))  # a model taking (8, 8) images: not a sequence
    assert not img.sequence and lines == ["dataset.layout=auto -> image (the model takes (8, 8), "
                                          "the file's samples are (8, 8))"]
    chan, lines = fit_layout(make(8, 8), (8, 8, 1))
    assert chan.x_train.shape == (4, 8, 8, 1) and not chan.sequence and "reshaped" in lines[0]
    same, lines = fit_layout(make(5, 3), (7,))  # nothing fits: left for the shape check
    assert same.x_train.shape == (4, 5, 3) and lines == []
