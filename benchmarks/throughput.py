"""Spiking simulation throughput in NengoDL against a Keras forward pass over the same
samples × steps.

A spiking network simulated for T steps on S samples does the dense algebra of S·T forward passes
of the rate network (plus the neurons' state updates and the synapses' filtering), so the fair
baseline is Keras's ``predict`` on those S·T inputs. Two dense ReLU networks with random weights,
converted to LIF (``scale_firing_rates`` 100, synapse 0.01 s, as spiketune does):

* small: 8-64-64-2 (the default experiment's shape), S = 1024 samples;
* large: 784-1024-1024-10 (an MNIST-sized MLP), S = 128 samples;

T = 100 steps. NengoDL is tried over minibatch sizes, ``unroll_simulation`` and
``nengo_dl.configure_settings(inference_only=True)``; each configuration is built once (build time
reported apart), warmed with one minibatch, then timed on all S samples (best of three). Keras gets
its best batch size. Throughput is neuron-steps per second (hidden neurons × S × T / time); the
ratio is NengoDL's time over Keras's (target ≤ 3). At the best settings the script also times
the network without synapses and with rate ReLU neurons, to show where the gap comes from.

    .venv/bin/python benchmarks/throughput.py [--quick]
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np
from common import Timer, machine

STEPS = 100
NETS = {  # name: (inputs, hidden, outputs, samples, minibatch sizes to try)
    "small 8-64-64-2": (8, [64, 64], 2, 1024, [32, 256, 1024]),
    "large 784-1024-1024-10": (784, [1024, 1024], 10, 128, [32, 128]),
}


def keras_model(d_in: int, hidden: list[int], d_out: int):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((d_in,))
    h = inp
    for n in hidden:
        h = tf.keras.layers.Dense(n, activation=tf.nn.relu)(h)
    return tf.keras.Model(inp, tf.keras.layers.Dense(d_out)(h))


def keras_seconds(model, x: np.ndarray, repeats: int = 2, batches=(256, 4096)
                  ) -> tuple[float, int]:
    """Best time of ``model.predict`` on every sample held for every step, and its batch size."""
    flat = np.repeat(x, STEPS, axis=0)  # S·T inputs
    best = (np.inf, 0)
    for batch in batches:
        model.predict(flat[:batch], batch_size=batch, verbose=0)  # trace once
        for _ in range(repeats):
            with Timer() as t:
                model.predict(flat, batch_size=batch, verbose=0)
            best = min(best, (t.s, batch))
    return best


def nengo_seconds(model, x: np.ndarray, minibatch: int, unroll: int, inference_only: bool,
                  repeats: int = 3, neuron=None, synapse: float | None = 0.01
                  ) -> tuple[float, float]:
    """(build seconds, best predict seconds) of the converted network (LIF with 0.01 s synapses
    unless told otherwise) on ``x`` held for STEPS steps."""
    import nengo
    import nengo_dl
    import tensorflow as tf

    conv = nengo_dl.Converter(model, swap_activations={tf.nn.relu: neuron or nengo.LIF()},
                              scale_firing_rates=100.0, synapse=synapse)
    with conv.net:
        nengo_dl.configure_settings(stateful=False, inference_only=inference_only)
    inp, out = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    xs = np.repeat(x[:, None, :], STEPS, axis=1)
    with Timer() as build:
        sim = nengo_dl.Simulator(conv.net, minibatch_size=minibatch, unroll_simulation=unroll,
                                 progress_bar=False)
    with sim:
        sim.predict_on_batch({inp: xs[:minibatch]})  # trace once
        best = np.inf
        for _ in range(repeats):
            with Timer() as t:
                y = sim.predict({inp: xs}, verbose=0)[out]
            best = min(best, t.s)
        assert y.shape == (len(x), STEPS, model.outputs[0].shape[-1])
    return build.s, best


def main() -> None:
    # the summary, which the docstring wraps over two lines, joined back into one
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--quick", action="store_true", help="fewer configurations, one repeat")
    args = p.parse_args()
    from framework import quiet

    quiet.tensorflow()
    print(f"machine: {machine()}", flush=True)
    for name, (d_in, hidden, d_out, samples, minibatches) in NETS.items():
        model = keras_model(d_in, hidden, d_out)
        x = np.random.default_rng(0).standard_normal((samples, d_in)).astype(np.float32)
        neuron_steps = sum(hidden) * samples * STEPS
        repeats = 1 if args.quick else 3
        k_s, k_batch = keras_seconds(model, x, repeats)
        print(f"\n### {name}: {samples} samples × {STEPS} steps, {sum(hidden)} neurons\n")
        print(f"Keras predict on {samples * STEPS} inputs (batch {k_batch}): {k_s:.2f} s, "
              f"{neuron_steps / k_s:.3g} neuron-steps/s\n")
        print("The machine is shared, so Keras is timed again beside every row (best of "
              f"{repeats}) and each ratio uses that time.\n")
        print("| minibatch | unroll | inference_only | build s | simulate s | Keras s | "
              "neuron-steps/s | ratio to Keras |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- |",
              flush=True)
        grid = itertools.product(minibatches[-1:] if args.quick else minibatches, (1, 10),
                                 (False, True))
        rows = []
        for mb, unroll, io in grid:
            b, s = nengo_seconds(model, x, mb, unroll, io, repeats)
            k, _ = keras_seconds(model, x, repeats, (k_batch,))
            rows.append((s / k, s, mb, unroll, io))
            print(f"| {mb} | {unroll} | {io} | {b:.1f} | {s:.2f} | {k:.2f} | "
                  f"{neuron_steps / s:.3g} | {s / k:.2f} |", flush=True)
        ratio, s, mb, unroll, io = min(rows)
        print(f"\nbest: minibatch {mb}, unroll {unroll}, inference_only {io}: {ratio:.2f}× Keras")
        # where the gap comes from, at the best settings: the synapses, then the spiking neurons
        import nengo

        for label, neuron, synapse in (("LIF, no synapses", None, None),
                                       ("rate ReLU, no synapses", nengo.RectifiedLinear(), None)):
            _, s2 = nengo_seconds(model, x, mb, unroll, io, repeats, neuron, synapse)
            k, _ = keras_seconds(model, x, repeats, (k_batch,))
            print(f"same settings, {label}: {s2:.2f} s, {s2 / k:.2f}× Keras", flush=True)
    print(f"\nmachine at the end: {machine()}")


if __name__ == "__main__":
    main()
