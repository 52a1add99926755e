"""``model=keras_file``: a user's saved Keras model, loaded without running its code and evaluated
or trained further exactly as saved."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY, cli, compose, runs

from framework.config import validate
from framework.errors import UserError

#: the tiny reach regression task every model here is trained for
REACH = ["dataset.trials_per_direction=12", "simulation.n_steps=20", "simulation.readout_steps=5",
         "tracking.plots=false", "analysis=[firing]", "training.cache=false"]


def tiny_data(overrides):
    """The data as a loaded model gets them: as they are (dataset.scaling=auto is none)."""
    from framework.data import base as datasets

    cfg = validate(compose(overrides))
    return datasets.load(cfg.dataset, cfg.seed)


@pytest.fixture(scope="module")
def tf():
    from framework import quiet

    quiet.tensorflow()
    import tensorflow

    return tensorflow


@pytest.fixture(scope="module")
def reach_data():
    return tiny_data(REACH)


@pytest.fixture(scope="module")
def reach_model(tf, reach_data, tmp_path_factory):
    """A relu net trained in Keras on the reach split, saved in all three formats."""
    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input(shape=reach_data.input_shape)
    h = tf.keras.layers.Dense(16, activation="relu", name="h0")(inp)
    h = tf.keras.layers.Dropout(0.1, name="drop")(h)
    h = tf.keras.layers.Dense(16, activation=tf.nn.relu, name="h1")(h)
    out = tf.keras.layers.Dense(2, name="out")(h)
    model = tf.keras.Model(inp, out)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(reach_data.x_train, reach_data.y_train, epochs=30, batch_size=16, verbose=0)
    folder = tmp_path_factory.mktemp("reach_model")
    paths = {"keras": folder / "reach.keras", "h5": folder / "reach.h5",
             "savedmodel": folder / "reach_savedmodel"}
    model.save(paths["keras"], save_format="keras_v3")
    model.save(paths["h5"])
    model.save(paths["savedmodel"], save_format="tf")
    pred = model.predict(reach_data.x_test, verbose=0)
    return {"paths": paths, "mse": float(np.mean((pred - reach_data.y_test) ** 2))}


def run_pipeline(overrides, uri):
    from framework.pipeline import run
    from framework.progress import Console

    return run(compose(overrides + [f"tracking.uri={uri}"]), console=Console(quiet=True))


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_saved_weights_evaluate_exactly_as_in_keras(reach_model, fmt, uri):
    path = reach_model["paths"][fmt]
    assert reach_model["mse"] < 0.5  # the Keras model learned something: MSE of the mean is ~1
    res = run_pipeline(REACH + ["model=keras_file", f"model.path={path}", "model.train=false",
                                "neuron=relu"], uri)
    assert res.status == "FINISHED"
    # same weights, same test split, ReLU rates: the converted network computes the Keras model
    assert res.metrics["rate/mse"] == pytest.approx(reach_model["mse"], abs=1e-5)
    client, found = runs(uri)
    run = found[0]
    assert client.get_metric_history(run.info.run_id, "train/loss") == []  # no fit
    from framework.keras_io import sha256

    assert run.data.tags["spiketune.model_file"] == str(path)
    assert run.data.tags["spiketune.model_sha256"] == sha256(path)
    assert int(run.data.tags["spiketune.model_params"]) == 8 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2
    summary = client.download_artifacts(run.info.run_id, "model_summary.txt")
    assert "h0" in open(summary).read()
    # the data is the run's input, named with its digest and shape
    (ds_input,) = run.inputs.dataset_inputs
    profile = json.loads(ds_input.dataset.profile)
    assert ds_input.dataset.name == "reach"
    assert len(ds_input.dataset.digest) == 16
    assert profile["test"] == list(tiny_data(REACH).x_test.shape)


def test_softmax_classifier_keeps_its_accuracy(tf, tmp_path, uri):
    """A digits classifier with a softmax output: the logits give the same arg-max."""
    digits = ["dataset=digits"] + REACH[1:]
    data = tiny_data(digits)
    tf.keras.utils.set_random_seed(2)
    model = tf.keras.Sequential([tf.keras.Input(shape=(8, 8, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(32, activation="relu"),
                                 tf.keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    path = tmp_path / "digits.h5"
    model.save(path)
    keras_acc = float(np.mean(model.predict(data.x_test, verbose=0).argmax(-1) == data.y_test))
    assert 0.7 < keras_acc < 1.0
    res = run_pipeline(digits + ["model=keras_file", f"model.path={path}", "neuron=relu"], uri)
    assert res.metrics["rate/accuracy"] == pytest.approx(keras_acc, abs=1e-5)


def test_train_true_trains_further_in_nengo_dl(reach_model, uri):
    res = run_pipeline(REACH + ["model=keras_file", f"model.path={reach_model['paths']['h5']}",
                                "model.train=true", "training.epochs=2", "neuron=lif"], uri)
    client, found = runs(uri)
    history = client.get_metric_history(found[0].info.run_id, "train/loss")
    assert [m.step for m in history] == [0, 1]
    assert np.isfinite(res.metrics["spiking/mse"])


# ------------------------------------------------------------------------------------- refusals
def load(path, data):
    """Load as the pipeline does: with the trial conversion (``convert`` given)."""
    from framework.conversion import convert
    from framework.keras_io import load_model
    from framework.models import KerasFileModel

    return load_model(KerasFileModel(path=str(path)), data, convert=convert)


def save_all(model, folder, name):
    """The model as zip .keras, .h5 and SavedModel."""
    paths = [folder / f"{name}.keras", folder / f"{name}.h5", folder / f"{name}_savedmodel"]
    model.save(paths[0], save_format="keras_v3")
    model.save(paths[1])
    model.save(paths[2], save_format="tf")
    return paths


def test_lambda_layer_is_refused_without_running_its_code(tf, reach_data, tmp_path):
    marker = tmp_path / "lambda_ran"
    # written as source so the marshalled code carries the marker path as a constant
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    inp = tf.keras.Input(shape=reach_data.input_shape)
    h = tf.keras.layers.Dense(4, activation="relu")(inp)
    h = tf.keras.layers.Lambda(fn, name="sneaky")(h)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(h))
    paths = save_all(model, tmp_path, "lam")
    marker.unlink()  # building and saving called the Lambda
    for path in paths:
        with pytest.raises(UserError) as err:
            load(path, reach_data)
        msg = str(err.value)
        assert msg.startswith(f"model.path: {path.name}:") and "'sneaky'" in msg
        assert "Lambda" in msg and "\n" not in msg
        assert not marker.exists(), path
    # control: Keras itself runs the Lambda's code when it loads the .h5
    tf.keras.models.load_model(paths[1], compile=False)
    assert marker.read_text() == "ran"


def test_tf_op_layer_and_custom_layer_are_refused(tf, reach_data, tmp_path):
    inp = tf.keras.Input(shape=reach_data.input_shape)
    out = tf.keras.layers.Dense(2)(tf.math.multiply(inp, 2.0))  # becomes a TFOpLambda layer
    path = tmp_path / "op.h5"
    tf.keras.Model(inp, out).save(path)
    with pytest.raises(UserError, match=r"TFOpLambda layer"):
        load(path, reach_data)

    @tf.keras.utils.register_keras_serializable(package="test")
    class Doubler(tf.keras.layers.Layer):
        def call(self, x):
            return 2 * x

    h = Doubler(name="doubler")(inp)
    path = tmp_path / "custom.keras"
    tf.keras.Model(inp, tf.keras.layers.Dense(2)(h)).save(path, save_format="keras_v3")
    # tf-keras records a registered class's module, which the screen refuses before the class
    with pytest.raises(UserError, match=r"layer 'doubler' refers to code in module "
                                        r"'test_keras_file', which spiketune does not import"):
        load(path, reach_data)


def test_unconvertible_layer_and_activation_are_named(tf, reach_data, tmp_path):
    inp = tf.keras.Input(shape=reach_data.input_shape)
    h = tf.keras.layers.Dense(8, activation="relu")(inp)
    h = tf.keras.layers.LayerNormalization(name="norm")(h)
    path = tmp_path / "norm.h5"
    tf.keras.Model(inp, tf.keras.layers.Dense(2)(h)).save(path)
    with pytest.raises(UserError, match=r"model.path: norm.h5: layer 'norm' \(LayerNormalization\) "
                                        r"cannot be converted by NengoDL"):
        load(path, reach_data)

    h = tf.keras.layers.Dense(8, activation="tanh", name="squash")(inp)
    path = tmp_path / "tanh.keras"
    tf.keras.Model(inp, tf.keras.layers.Dense(2)(h)).save(path, save_format="keras_v3")
    with pytest.raises(UserError, match=r"layer 'squash' uses activation 'tanh'"):
        load(path, reach_data)

    # a setting NengoDL's Converter refuses is caught by the trial conversion, named
    img = tiny_data(["dataset=digits"] + REACH[1:])
    inp = tf.keras.Input(shape=(8, 8, 1))
    h = tf.keras.layers.Conv2D(4, 3, dilation_rate=2, activation="relu", name="dilated")(inp)
    out = tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(h))
    path = tmp_path / "dilated.h5"
    tf.keras.Model(inp, out).save(path)
    with pytest.raises(UserError, match=r"NengoDL cannot convert it: dilated.dilation_rate"):
        load(path, img)


def test_wrong_shapes_are_refused_naming_the_file(tf, reach_data, tmp_path):
    inp = tf.keras.Input(shape=(5,))
    path = tmp_path / "narrow.h5"
    tf.keras.Model(inp, tf.keras.layers.Dense(2)(inp)).save(path)
    with pytest.raises(UserError) as err:
        load(path, reach_data)
    assert str(err.value) == ("model.path: narrow.h5 takes inputs of shape (5,), but dataset "
                              "'reach': its samples have shape (8,)")

    inp = tf.keras.Input(shape=(8,))
    path = tmp_path / "three.h5"
    tf.keras.Model(inp, tf.keras.layers.Dense(3)(inp)).save(path)
    with pytest.raises(UserError, match=r"three.h5 has outputs of shape \(3,\), but regression"):
        load(path, reach_data)


def test_not_a_model_is_refused(reach_data, tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match=r"junk.h5 is neither an HDF5 nor a zip Keras file"):
        load(path, reach_data)
    folder = tmp_path / "empty_savedmodel"
    folder.mkdir()
    with pytest.raises(UserError, match=r"not a Keras SavedModel \(no keras_metadata.pb\)"):
        load(folder, reach_data)
    with pytest.raises(UserError, match=r"model.path: no such file"):
        load(tmp_path / "missing.keras", reach_data)


@pytest.mark.slow
def test_cli_refuses_lambda_with_exit_2_and_one_line(tf, reach_data, tmp_path, uri):
    inp = tf.keras.Input(shape=reach_data.input_shape)
    h = tf.keras.layers.Lambda(lambda x: x * 2, name="twice")(inp)
    path = tmp_path / "lam.h5"
    tf.keras.Model(inp, tf.keras.layers.Dense(2)(h)).save(path)
    args = [a for a in TINY if not a.startswith("model.")]
    proc = cli(args + ["model=keras_file", f"model.path={path}"], uri=uri)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "model.path" in line]
    assert len(lines) == 1 and "'twice' is a Lambda layer" in lines[0]
    assert "Traceback" not in proc.stderr
    client, found = runs(uri)
    assert found[0].info.status == "FAILED"
    assert "Lambda" in found[0].data.tags["error"]


def test_training_only_settings_are_dropped_and_flat_inputs_accepted(tf, tmp_path):
    """An L2-regularised, constrained model (NengoDL's Converter refuses both) on flattened
    digits."""
    digits = tiny_data(["dataset=digits"] + REACH[1:])
    inp = tf.keras.Input(shape=(64,))  # 8 × 8 × 1 flattened in C order, as Flatten would
    h = tf.keras.layers.Dense(8, activation="relu", name="h",
                              kernel_regularizer=tf.keras.regularizers.L2(1e-3),
                              kernel_constraint=tf.keras.constraints.MaxNorm(2.0))(inp)
    path = tmp_path / "flat.h5"
    tf.keras.Model(inp, tf.keras.layers.Dense(10)(h)).save(path)
    model = load(path, digits)
    layer = model.get_layer("h")
    assert layer.kernel_regularizer is None and layer.kernel_constraint is None
    assert model.input_shape == (None, 64)


def test_zip_config_naming_a_foreign_module_is_refused(tf, reach_data, tmp_path):
    """A hand-edited .keras whose initialiser points at ``os.system`` is refused unread."""
    import zipfile

    inp = tf.keras.Input(shape=reach_data.input_shape)
    good = tmp_path / "good.keras"
    tf.keras.Model(inp, tf.keras.layers.Dense(2, name="out")(inp)).save(good,
                                                                        save_format="keras_v3")
    with zipfile.ZipFile(good) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    dense["config"]["kernel_initializer"] = {"module": "os", "class_name": "function",
                                             "config": "system", "registered_name": "function"}
    files["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    load(good, reach_data)
    with pytest.raises(UserError, match=r"layer 'out' refers to code in module 'os'"):
        load(bad, reach_data)
