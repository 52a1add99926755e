"""Your own NengoDL network, end to end: the forum user's path (docs/own-network.md).

A plain NengoDL script: a native ``nengo.Network`` (a 2-D reaching direction → 32 LIF neurons with
their own spiking threshold J_th = 0.25 → the direction back), trained with ``sim.fit`` while a
callback keeps every gain and bias in [0, 0.5]; then spiketune's Python API analyses the trained
simulator (J_th, x-intercepts, rates, response curves, cosine tuning, the membrane voltage with
the threshold on its axis) and records an MLflow run.

Run it::

    .venv/bin/python examples/own_network.py                   # spiketune's default store
    .venv/bin/python examples/own_network.py --uri sqlite:////tmp/own.db --epochs 5
    .venv/bin/spiketune-ui                                     # then look at the run

It prints the run id and the neuron table, and exits 1 if a gain or bias ended outside the range.
"""
from __future__ import annotations

import argparse
import warnings

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

import framework.api as spiketune
from framework.native import ThresholdLIF, register_tf_builders

RANGE = (0.0, 0.5)  # gains (J per unit x) and biases (J) are kept inside
J_TH = 0.25  # the neurons' spiking threshold (input current): below the largest J = 0.5 + 0.5


def reaching(n_per_direction: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Center-out reaching: 8 directions (degrees) and their unit vectors with a little noise."""
    deg = np.repeat(np.arange(8) * 45.0, n_per_direction)
    x = np.stack([np.cos(np.radians(deg)), np.sin(np.radians(deg))], axis=1)
    return deg, (x + rng.normal(0, 0.05, x.shape)).astype(np.float32)


def network(seed: int) -> tuple[nengo.Network, nengo.Node, nengo.Ensemble, nengo.Probe]:
    """Input → ``hidden`` (Nengo's default gains and biases for these neurons) → output."""
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(2), label="direction")
        hidden = nengo.Ensemble(32, 2, neuron_type=ThresholdLIF(threshold=J_TH), label="hidden",
                                max_rates=nengo.dists.Uniform(60, 120),
                                intercepts=nengo.dists.Uniform(-0.5, 0.5))
        out = nengo.Node(size_in=2, label="readout")
        nengo.Connection(inp, hidden, synapse=None)
        nengo.Connection(hidden, out, synapse=None)
        probe = nengo.Probe(out)
    return net, inp, hidden, probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="", help="MLflow tracking URI ('': spiketune's store)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # TensorFlow's and NengoDL's start-up chatter
    register_tf_builders()  # ThresholdLIF runs natively (with a gradient) in NengoDL
    rng = np.random.default_rng(0)
    _, x_train = reaching(40, rng)
    dir_test, x_test = reaching(6, rng)
    net, inp, hidden, probe = network(seed=0)

    with nengo_dl.Simulator(net, minibatch_size=32, seed=0, progress_bar=False) as sim:
        # 1. your training, with the gains and biases kept in [0, 0.5] after every batch
        keep = spiketune.range_callback(sim, [hidden], gains=RANGE, biases=RANGE)
        sim.compile(optimizer=tf.optimizers.Adam(0.005), loss={probe: tf.losses.mse})
        sim.fit({inp: x_train[:, None]}, {probe: x_train[:, None]}, epochs=args.epochs,
                verbose=0, callbacks=[keep])
        print("inside [0, 0.5]:", {k: v for k, v in keep.ranges.stats.items()
                                   if k.count("/") == 2})

        # 2. spiketune's analyses of the trained network, and the voltage with J_th on its axis
        out = spiketune.analyse(
            sim, {inp: x_test}, {"hidden": hidden}, n_steps=300, directions=dir_test,
            analyses=["auto", "voltage"], options={"voltage": {"n_neurons": 4}},
            experiment="own-network", run_name="forum-reaching", tags={"example": "own_network"},
            tracking_uri=args.uri, plots=not args.no_plots, metrics=keep.ranges.stats)

    neurons = out.tables["neurons.csv"]
    cols = ["neuron", "gain", "bias", "threshold", "x_intercept", "max_rate_hz", "mean_rate_hz"]
    print(neurons[cols + (["pd_deg"] if "pd_deg" in neurons else [])].head(8).to_string())
    print(f"run {out.run_id}: tables {sorted(out.tables)}, figures {sorted(out.figures)}")
    print(f"figures in {out.folder}")
    inside = all(neurons[c].between(*RANGE).all() for c in ("gain", "bias"))
    print("every gain and bias inside [0, 0.5]:", inside)
    return 0 if inside else 1


if __name__ == "__main__":
    raise SystemExit(main())
