"""Conversion gap of networks trained elsewhere: uniform scale against data-based normalisation.

Three ReLU networks are trained in Keras 3 (not in NengoDL) on their data as it is, saved as
``.keras`` and run through ``model=keras_file`` (``model.train=false``) with spiking ReLU and LIF
neurons, once at the uniform ``simulation.scale_firing_rates`` (``conversion.normalize=none``) and
once per ``conversion.max_rate_hz`` with ``conversion.normalize=percentile``:

* ``emg``: the seed-000 user's 8-50-50-9 classifier on rectified EMG in microvolts with a rest class
  (tests/test_user_model.py's recording);
* ``digits``: a conv net (conv 16, average pool, conv 32 stride 2, dense 64) on the 8×8 digits;
* ``reach``: an 8-64-64-2 regressor of (cos θ, sin θ) on the synthetic reach channels.

Each row: Keras's own score, the rate network's, the spiking network's, the mean firing rate and
the highest neuron's mean rate (Hz). Accuracy numbers, not timings: the machine's load does not
matter.

    .venv/bin/python benchmarks/conversion_gap.py [--rates 100,200,400]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, compose, machine

sys.path.insert(0, str(REPO / "tests"))

BASE = ["model=keras_file", "model.train=false", "tracking.plots=false", "training.cache=false",
        "analysis=[firing]"]


def train_models(folder: Path) -> dict[str, list[str]]:
    """Train and save the three Keras 3 networks; return each one's dataset overrides."""
    import keras
    from test_user_model import emg_recording

    from framework.config import validate
    from framework.data import base as datasets

    out = {}
    x, label, direction = emg_recording()
    np.savez(folder / "emg.npz", x=x, label=label, direction=direction)
    out["emg"] = ["dataset=file", f"dataset.path={folder / 'emg.npz'}", "dataset.target=label",
                  "dataset.direction=direction", "dataset.task=classification"]
    out["digits"] = ["dataset=digits"]
    out["reach"] = ["dataset.emg=ideal"]  # the cosine channels these numbers were measured on
    for name, keys in out.items():
        data = datasets.load(validate(compose(keys)).dataset, 0)
        keras.utils.set_random_seed(0)
        if name == "digits":
            inp = keras.Input((8, 8, 1))
            h = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(inp)
            h = keras.layers.AveragePooling2D(2)(h)
            h = keras.layers.Conv2D(32, 3, strides=2, activation="relu", padding="same")(h)
            h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(h))
            outputs, loss, epochs = 10, "xent", 30
        else:
            inp = keras.Input((8,))
            width = 50 if name == "emg" else 64
            h = keras.layers.Dense(width, activation="relu")(inp)
            h = keras.layers.Dense(width, activation="relu")(h)
            outputs, loss, epochs = (9, "xent", 150) if name == "emg" else (2, "mse", 100)
        model = keras.Model(inp, keras.layers.Dense(outputs)(h))
        model.compile(keras.optimizers.Adam(1e-3), loss=(
            keras.losses.SparseCategoricalCrossentropy(from_logits=True) if loss == "xent"
            else "mse"))
        model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
        model.save(folder / f"{name}.keras")
        out[name] = keys + [f"model.path={folder / f'{name}.keras'}"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,400", help="conversion.max_rate_hz values")
    args = parser.parse_args()
    from framework import quiet

    quiet.tensorflow()
    from framework.pipeline import run
    from framework.progress import Console

    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        nets = train_models(Path(tmp))
        uri = f"sqlite:///{tmp}/mlflow.db"
        print(f"machine: {machine()}")
        print("| network | neuron | conversion | keras | rate | spiking | mean Hz | max Hz |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, keys in nets.items():
            key = "angle_error_deg" if name == "reach" else "accuracy"
            for neuron in ("spiking_relu", "lif"):
                settings = [("uniform, scale 100", ["conversion.normalize=none"])] + [
                    (f"percentile 99.9 → {r:g} Hz",
                     ["conversion.normalize=percentile", f"conversion.max_rate_hz={r:g}"])
                    for r in rates]
                for label, extra in settings:
                    res = run(compose(BASE + keys + [f"neuron={neuron}", f"tracking.uri={uri}"]
                                      + extra), console=Console(quiet=True))
                    m = res.metrics
                    print(f"| {name} | {neuron} | {label} | {m[f'keras/{key}']:.3g} | "
                          f"{m[f'rate/{key}']:.3g} | {m[f'spiking/{key}']:.3g} | "
                          f"{m['firing/mean_rate_hz']:.0f} | {m['firing/max_rate_hz']:.0f} |",
                          flush=True)


if __name__ == "__main__":
    main()
