"""What a run costs (framework/cost.py, docs/cost.md): counts on networks counted by hand, a
convolution's fan-out at its padded edges, and a real run's ``cost/*`` against its firing rates."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TINY, compose, runs

from framework import cost

# Keras Dense 3 -> 4 (ReLU) -> 2, Keras's layout (inputs × units), some weights exactly zero
W1 = np.array([[1.0, 0.0, 2.0, 0.0],
               [0.0, 0.0, 1.0, 1.0],
               [3.0, 0.0, 0.0, -1.0]])
W2 = np.array([[1.0, 0.0],
               [0.0, 0.0],
               [2.0, -1.0],
               [0.0, 1.0]])
X = np.array([1.0, 0.0, 2.0])  # one test sample: h = relu(X @ W1) = [7, 0, 2, 0]
STEPS, DT = 10, 0.001
# the hidden layer's spikes in the 10 steps of the sample: neuron 0 every other step, neuron 2
# twice, in one step (a spiking ReLU above 1/dt), 1 and 3 silent
SPIKES = np.zeros((STEPS, 4))
SPIKES[::2, 0] = 1
SPIKES[3, 2] = 2


class Hidden:
    """A simulated layer as :func:`framework.cost.sources` reads it."""

    name = "hidden"
    neuron_type = SimpleNamespace(spiking=True)
    gain = np.ones(4)
    rates = SPIKES.sum(axis=0)[None] / (STEPS * DT)  # Hz, one sample
    active_steps = np.count_nonzero(SPIKES, axis=0).astype(float)


def hand_network() -> list[cost.Source]:
    """The sources of the hand network; Nengo holds weights as post × pre."""
    synapses = {cost.INPUT: cost.dense_synapses(W1.T), "hidden": cost.dense_synapses(W2.T)}
    h = np.maximum(X @ W1, 0.0)
    keras_active = {cost.INPUT: (X != 0).astype(float), "hidden": (h != 0).astype(float)}
    input_active = (X != 0) * float(STEPS)  # the input is held for every step
    return cost.sources([Hidden()], synapses, {cost.INPUT: input_active}, STEPS * DT,
                        keras_active)


def test_fan_out_of_dense_layers_counts_nonzero_weights():
    syn = cost.dense_synapses(W1.T)
    assert syn.fan_out.tolist() == [2, 2, 2]  # nonzero weights per input row of W1
    assert syn.dense.tolist() == [4, 4, 4]
    assert (syn.weights, syn.zeros) == (12, 6)
    assert cost.dense_synapses(W2.T).fan_out.tolist() == [1, 0, 2, 1]


def test_hand_network_counts():
    m = cost.totals(hand_network(), cost.Run(steps=STEPS, dt=DT, param_bytes=4 * 26))
    # Keras: dense 3·4 + 4·2 = 20 MACs; effective: inputs 0 and 2 (fan-out 2 each) = 4, hidden
    # units 0 (fan-out 1) and 2 (fan-out 2) = 3
    assert m["cost/keras_macs_per_sample"] == 20
    assert m["cost/keras_effective_macs_per_sample"] == 7
    assert m["cost/keras_activation_sparsity"] == 0.5  # 2 of 4 units are zero
    # spiking: 5 spikes × fan-out 1 + 2 spikes × fan-out 2 = 9 ACs; the input is not spikes:
    # 2 nonzero inputs × fan-out 2 × 10 steps = 40 MACs
    assert m["cost/effective_acs_per_sample"] == pytest.approx(9)
    assert m["cost/effective_macs_per_sample"] == 40
    assert m["cost/synops_per_sample"] == pytest.approx(49)
    assert m["cost/spikes_per_sample"] == pytest.approx(7)
    assert m["cost/dense_synops_per_sample"] == 200  # 20 synapses × 10 steps
    # 6 neuron-steps with a spike (5 + the double one) of 4 × 10
    assert m["cost/activation_sparsity"] == pytest.approx(1 - 6 / 40)
    assert m["cost/hidden/activation_sparsity"] == pytest.approx(1 - 6 / 40)
    assert m["cost/hidden/synops_per_sample"] == pytest.approx(9)
    assert m["cost/connection_sparsity"] == pytest.approx(10 / 20)  # 6 + 4 zero weights of 20
    assert m["cost/param_bytes"] == 104
    assert m["cost/readout_time_s"] == pytest.approx(0.01)
    assert m["cost/neurons"] == 4


def test_a_non_spiking_layer_s_outputs_are_macs_at_every_nonzero_step():
    """``neuron=relu``: units 0 and 2 output a nonzero rate at every one of the 10 steps, so they
    drive their fan-outs (1 and 2) as MACs each step; no spikes, no ACs."""
    rate = SimpleNamespace(name="hidden", neuron_type=SimpleNamespace(spiking=False),
                           gain=np.ones(4), rates=np.array([[700.0, 0.0, 200.0, 0.0]]),
                           active_steps=np.array([10.0, 0.0, 10.0, 0.0]))
    synapses = {cost.INPUT: cost.dense_synapses(W1.T), "hidden": cost.dense_synapses(W2.T)}
    srcs = cost.sources([rate], synapses, {cost.INPUT: (X != 0) * float(STEPS)}, STEPS * DT)
    m = cost.totals(srcs, cost.Run(steps=STEPS, dt=DT), keras=False)
    assert m["cost/effective_acs_per_sample"] == 0
    assert m["cost/effective_macs_per_sample"] == 40 + 10 * 1 + 10 * 2
    assert m["cost/spikes_per_sample"] == 0
    assert m["cost/activation_sparsity"] == 0.5
    assert np.isnan(cost.layer_rows(srcs, cost.Run(steps=STEPS, dt=DT))[1]["spikes_per_sample"])


def test_energy_is_keras_spiking_s_estimate():
    m = cost.totals(hand_network(), cost.Run(steps=STEPS, dt=DT))
    # non-spiking devices run the Keras model once: 20 MACs + 4 neuron updates
    assert m["cost/energy_cpu_j"] == pytest.approx(8.6e-9 * 20 + 8.6e-9 * 4)
    assert m["cost/energy_gpu_j"] == pytest.approx(0.3e-9 * 24)
    assert m["cost/energy_arm_j"] == pytest.approx(0.9e-9 * 24)
    # spiking devices: 49 synops + 4 neurons × 10 steps
    assert m["cost/energy_loihi_j"] == pytest.approx(27.1e-12 * 49 + 81e-12 * 40)
    assert m["cost/energy_spinnaker_j"] == pytest.approx(13.3e-9 * 49 + 26e-9 * 40)
    assert m["cost/energy_spinnaker2_j"] == pytest.approx(450e-12 * 49 + 2.19e-9 * 40)
    without = cost.totals(hand_network(), cost.Run(steps=STEPS, dt=DT), keras=False)
    assert "cost/energy_cpu_j" not in without and "cost/keras_macs_per_sample" not in without
    assert without["cost/energy_loihi_j"] == m["cost/energy_loihi_j"]


def test_cost_csv_rows_add_up_to_the_totals():
    srcs = hand_network()
    run = cost.Run(steps=STEPS, dt=DT)
    rows = cost.layer_rows(srcs, run)
    assert [r["layer"] for r in rows] == ["input", "hidden"]
    m = cost.totals(srcs, run)
    for column, total in (("synops_per_sample", "cost/synops_per_sample"),
                          ("macs_per_sample", "cost/keras_macs_per_sample"),
                          ("keras_effective_macs_per_sample",
                           "cost/keras_effective_macs_per_sample")):
        assert sum(r[column] for r in rows) == pytest.approx(m[total])
    assert rows[1]["fan_out"] == 1.0 and rows[1]["spikes_per_sample"] == pytest.approx(7)
    assert np.isnan(rows[0]["spikes_per_sample"]) and np.isnan(rows[0]["activation_sparsity"])
    text = cost.csv(rows)
    assert text.splitlines()[0] == ("layer,neurons,fan_out,spikes_per_sample,synops_per_sample,"
                                    "activation_sparsity,macs_per_sample,"
                                    "keras_effective_macs_per_sample")


def test_sparse_and_elementwise_synapses():
    syn = cost.sparse_synapses(np.array([0, 0, 2, 1]), np.array([1.0, 0.5, 0.0, 2.0]), 4)
    assert syn.fan_out.tolist() == [2, 1, 0, 0] and syn.dense.tolist() == [2, 1, 1, 0]
    assert (syn.weights, syn.zeros) == (4, 1)
    one_to_one = cost.dense_synapses(np.array(1.0), 3)
    assert one_to_one.fan_out.tolist() == [1, 1, 1]
    diag = cost.dense_synapses(np.array([1.0, 0.0]))
    assert diag.fan_out.tolist() == [1, 0] and diag.zeros == 1


def brute_conv_fan_out(kernel, shape, strides, padding):
    """Fan-out by the definition: for every output position and tap, the input it reads."""
    spatial, (cin, cout) = shape[:-1], kernel.shape[-2:]
    dims = len(spatial)
    if padding == "valid":
        out = [-(-(s - k + 1) // st) for s, k, st in zip(spatial, kernel.shape, strides)]
        before = [0] * dims
    else:
        out = [-(-s // st) for s, st in zip(spatial, strides)]
        before = [max((o - 1) * st + k - s, 0) // 2
                  for o, st, k, s in zip(out, strides, kernel.shape, spatial)]
    fan = np.zeros(shape, int)
    dense = np.zeros(shape, int)
    for o in itertools.product(*(range(n) for n in out)):
        for tap in itertools.product(*(range(k) for k in kernel.shape[:dims])):
            p = tuple(oi * st + t - b for oi, st, t, b in zip(o, strides, tap, before))
            if all(0 <= pi < s for pi, s in zip(p, spatial)):
                for c in range(cin):
                    fan[p + (c,)] += np.count_nonzero(kernel[tap + (c,)])
                    dense[p + (c,)] += cout
    return fan.ravel(), dense.ravel()


def test_conv_fan_out_counted_by_hand_at_the_padded_edges():
    ones = np.ones((3, 3, 1, 1))
    same = cost.conv_synapses(ones, (3, 3, 1), (1, 1), "same")
    # each input feeds the outputs within one step of it: corners 4, edges 6, the centre 9
    assert same.fan_out.tolist() == [4, 6, 4, 6, 9, 6, 4, 6, 4]
    assert same.dense.sum() == 49  # not 81: the padding is no synapse
    valid = cost.conv_synapses(np.ones((2, 2, 1, 1)), (3, 3, 1), (1, 1), "valid")
    assert valid.fan_out.tolist() == [1, 2, 1, 2, 4, 2, 1, 2, 1]
    corner = ones.copy()
    corner[0, 0] = 0  # tap (0, 0) reads input o − (1, 1): inputs with y, x ≤ 1 lose one synapse
    assert cost.conv_synapses(corner, (3, 3, 1), (1, 1), "same").fan_out.tolist() == [
        3, 5, 4, 5, 8, 6, 4, 6, 4]
    assert cost.conv_synapses(corner, (3, 3, 1), (1, 1), "same").zeros == 1
    # stride 2, "same" on 4 × 4: 2 outputs per axis, padding 1 after: positions read 1, 1, 2, 1
    # times per axis
    strided = cost.conv_synapses(np.ones((3, 3, 1, 1)), (4, 4, 1), (2, 2), "same")
    assert strided.fan_out.reshape(4, 4).tolist() == np.outer([1, 1, 2, 1], [1, 1, 2, 1]).tolist()


@pytest.mark.parametrize("shape, kernel_size, strides, padding", [
    ((5, 6, 2), (3, 3), (1, 1), "same"), ((6, 5, 3), (3, 2), (2, 2), "same"),
    ((7, 7, 2), (3, 3), (2, 1), "valid"), ((8, 2), (3,), (2,), "same")])
def test_conv_fan_out_matches_the_definition(shape, kernel_size, strides, padding):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(*kernel_size, shape[-1], 4))
    kernel[rng.random(kernel.shape) < 0.4] = 0.0
    syn = cost.conv_synapses(kernel, shape, strides, padding)
    fan, dense = brute_conv_fan_out(kernel, shape, strides, padding)
    assert syn.fan_out.tolist() == fan.tolist()
    assert syn.dense.tolist() == dense.tolist()
    first = cost.conv_synapses(kernel, (shape[-1], *shape[:-1]), strides,
                               padding, channels_last=False)
    assert first.fan_out.tolist() == np.moveaxis(fan.reshape(shape), -1, 0).ravel().tolist()


def test_grouped_conv_feeds_its_own_group():
    kernel = np.ones((1, 1, 1, 4))  # 2 groups: 2 input channels, each to its own 2 filters
    kernel[..., 0, 3] = 0.0
    syn = cost.conv_synapses(kernel, (1, 1, 2), (1, 1), "same", groups=2)
    assert syn.fan_out.tolist() == [2, 1]
    assert syn.dense.tolist() == [2, 2]


DEVICES = ("cpu", "gpu", "arm", "loihi", "spinnaker", "spinnaker2")


def logged_cost(uri: str, experiment: str = "spiketune"):
    """The one run's metrics and its ``cost.csv``."""
    import pandas as pd

    client, (run,) = runs(uri, experiment)
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "cost.csv"))
    return run.data.metrics, table


def test_a_run_logs_what_it_costs_consistent_with_its_firing(store):
    """Two LIF layers (16, 8) on reach: the ACs are each layer's spikes (mean rate × neurons ×
    simulated time, as ``firing`` measured them) times its fan-out (the next layer's size: trained
    weights are never exactly zero); an LIF neuron spikes at most once a step (τ_ref 2 ms), so
    the activation sparsity is 1 − mean rate × dt."""
    from framework.pipeline import run
    from framework.progress import Console

    result = run(compose(TINY + ["model.hidden=[16,8]", f"tracking.uri={store}"]),
                 console=Console(quiet=True))
    assert result.status == "FINISHED"
    m, table = logged_cost(store)
    for key in ("cost/synops_per_sample", "cost/activation_sparsity", "cost/keras_macs_per_sample",
                "cost/keras_effective_macs_per_sample", "cost/connection_sparsity",
                "cost/param_bytes", "cost/readout_time_s",
                *(f"cost/energy_{d}_j" for d in DEVICES)):
        assert key in m, key
    assert table.layer.tolist() == ["input", "hidden0", "hidden1"]
    n_in = int(table.neurons[0])
    assert table.neurons.tolist() == [n_in, 16, 8]
    assert table.fan_out.tolist() == [16, 8, 2]
    steps, dt = 20, 0.001
    assert m["cost/readout_time_s"] == pytest.approx(steps * dt)
    spikes = {name: m[f"z_detail/firing/{name}/mean_rate_hz"] * size * steps * dt
              for name, size in (("hidden0", 16), ("hidden1", 8))}
    acs = spikes["hidden0"] * 8 + spikes["hidden1"] * 2
    assert m["cost/effective_acs_per_sample"] == pytest.approx(acs, rel=1e-5)
    # the standardised inputs are never exactly zero: every one drives 16 synapses every step
    assert m["cost/effective_macs_per_sample"] == n_in * 16 * steps
    assert m["cost/synops_per_sample"] == pytest.approx(acs + n_in * 16 * steps, rel=1e-6)
    assert m["cost/activation_sparsity"] == pytest.approx(1 - m["firing/mean_rate_hz"] * dt,
                                                          rel=1e-5)
    assert m["cost/keras_macs_per_sample"] == n_in * 16 + 16 * 8 + 8 * 2
    assert m["cost/keras_effective_macs_per_sample"] <= m["cost/keras_macs_per_sample"]
    assert 0 < m["cost/keras_activation_sparsity"] < 1
    assert m["cost/connection_sparsity"] == 0.0
    # float32 weights and biases: (n_in + 1)·16 + 17·8 + 9·2
    assert m["cost/param_bytes"] == 4 * ((n_in + 1) * 16 + 17 * 8 + 9 * 2)
    assert m["cost/energy_loihi_j"] == pytest.approx(
        27.1e-12 * m["cost/synops_per_sample"] + 81e-12 * 24 * steps, rel=1e-6)
    assert m["cost/energy_cpu_j"] == pytest.approx(
        8.6e-9 * (m["cost/keras_macs_per_sample"] + 24), rel=1e-9)
    assert table.synops_per_sample.sum() == pytest.approx(m["cost/synops_per_sample"], rel=1e-6)


def test_the_native_ensemble_logs_its_cost(store):
    """Three LIF neurons on a ramp of 5 values (one of them 0): each nonzero value drives 3
    synapses at each of its 50 steps; the neurons feed nothing, so they add no synaptic
    operation; each spikes at most once a step."""
    from framework.pipeline import run
    from framework.progress import Console

    result = run(compose(["model=ensemble", "model.n_neurons=3", "model.n_inputs=5",
                          "simulation.n_steps=50", "tracking.plots=false",
                          f"tracking.uri={store}"]), console=Console(quiet=True))
    assert result.status == "FINISHED"
    m, table = logged_cost(store)
    assert table.layer.tolist() == ["input", "ensemble"]
    assert m["cost/synops_per_sample"] == pytest.approx(4 / 5 * 50 * 3)
    assert m["cost/effective_acs_per_sample"] == 0
    assert m["cost/activation_sparsity"] == pytest.approx(
        1 - m["firing/mean_rate_hz"] * 0.001, rel=1e-6)
    assert "cost/keras_macs_per_sample" not in m and "cost/energy_cpu_j" not in m
    assert m["cost/energy_loihi_j"] == pytest.approx(27.1e-12 * 120 + 81e-12 * 3 * 50)


def test_a_loaded_model_with_pooling_counts_the_pooled_values_as_macs(store, tmp_path):
    """Conv (4 filters, ReLU) → 2×2 average pooling → Dense 16 → a ReLU layer → Dense 10, saved
    as a Keras file: NengoDL builds the pooling as a relay node; each spike of the conv layer
    reaches one pooled unit (fan-out 1), the pooled values (not spikes) drive the Dense layer as
    MACs (fan-out 16), and the linear Dense before the ReLU layer passes its values on
    unweighted."""
    import tensorflow as tf

    from framework.pipeline import run
    from framework.progress import Console

    inp = tf.keras.Input((8, 8, 1))
    h = tf.keras.layers.Conv2D(4, 3, padding="same", activation=tf.nn.relu, name="c0")(inp)
    h = tf.keras.layers.AveragePooling2D(2, name="pool")(h)
    h = tf.keras.layers.Flatten(name="flatten")(h)
    h = tf.keras.layers.ReLU(name="r1")(tf.keras.layers.Dense(16, name="d1")(h))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10, name="output")(h))
    model.save(tmp_path / "pool.h5")
    result = run(compose(["dataset=digits", "model=keras_file", f"model.path={tmp_path}/pool.h5",
                          "neuron=spiking_relu", "simulation.max_samples=20",
                          "simulation.n_steps=20", "tracking.plots=false",
                          f"tracking.uri={store}"]), console=Console(quiet=True))
    assert result.status == "FINISHED"
    m, table = logged_cost(store)
    assert table.layer.tolist() == ["input", "c0", "pool", "r1"]
    assert table.fan_out.tolist() == [484 * 4 / 64, 1, 16, 10]
    rows = table.set_index("layer")
    assert rows.synops_per_sample["c0"] == pytest.approx(rows.spikes_per_sample["c0"])
    assert 0 < rows.synops_per_sample["pool"] <= 64 * 16 * 20
    # Keras: the 3×3 "same" conv (484 taps reach the 8×8 pixels) × 4 filters; the pooling as
    # NengoDL builds it (2×2 taps × 4 channels × 4 filters over 16 positions); 64·16; 16·10
    assert m["cost/keras_macs_per_sample"] == 484 * 4 + 16 * 16 * 4 + 64 * 16 + 16 * 10
    assert table.synops_per_sample.sum() == pytest.approx(m["cost/synops_per_sample"])


def test_the_hand_network_counted_in_a_real_run(store, tmp_path):
    """The Dense 3 → 4 → 2 network above, saved as a Keras file and run as it is (no training) on
    test samples that are all X = [1, 0, 2]: the logged counts are the hand counts, so the weights
    the counting reads are the model's."""
    import pandas as pd
    import tensorflow as tf

    from framework.pipeline import run
    from framework.progress import Console

    inp = tf.keras.Input((3,))
    hidden = tf.keras.layers.Dense(4, activation=tf.nn.relu, name="hidden")
    out = tf.keras.layers.Dense(2, name="output")
    model = tf.keras.Model(inp, out(hidden(inp)))
    hidden.set_weights([W1, np.zeros(4)])
    out.set_weights([W2, np.zeros(2)])
    model.save(tmp_path / "hand.h5")
    rows = "\n".join(f"1,0,2,{i % 2}" for i in range(40))
    (tmp_path / "hand.csv").write_text("a,b,c,label\n" + rows + "\n")
    steps = 50
    result = run(compose(["dataset=file", f"dataset.path={tmp_path}/hand.csv",
                          "dataset.target=label", "dataset.task=classification",
                          "model=keras_file", f"model.path={tmp_path}/hand.h5",
                          "model.train=false", "neuron=spiking_relu", f"simulation.n_steps={steps}",
                          "tracking.plots=false", f"tracking.uri={store}"]),
                 console=Console(quiet=True))
    assert result.status == "FINISHED"
    m, table = logged_cost(store)
    assert table.layer.tolist() == ["input", "hidden"]
    assert table.fan_out.tolist() == [2.0, 1.0]  # [2, 2, 2] and [1, 0, 2, 1]
    assert m["cost/keras_macs_per_sample"] == 20
    assert m["cost/keras_effective_macs_per_sample"] == pytest.approx(7)
    assert m["cost/keras_activation_sparsity"] == pytest.approx(0.5)
    assert m["cost/connection_sparsity"] == pytest.approx(0.5)
    assert m["cost/param_bytes"] == 4 * (12 + 4 + 8 + 2)
    assert m["cost/effective_macs_per_sample"] == pytest.approx(4 * steps)  # inputs 0 and 2
    # units 1 and 3 never fire (h = 0, no bias); each spike drives its unit's fan-out [1, 0, 2, 1]:
    # the ACs are the firing analysis's own per-neuron rates × 50 ms × fan-out
    client, (logged,) = runs(store)
    neurons = pd.read_csv(client.download_artifacts(logged.info.run_id, "neurons.csv"))
    rates = neurons.sort_values("neuron").mean_rate_hz.to_numpy()
    assert rates[[1, 3]].tolist() == [0.0, 0.0] and rates[0] > rates[2] > 0
    assert m["cost/effective_acs_per_sample"] == pytest.approx(
        float(np.dot(rates, [1, 0, 2, 1])) * steps * 0.001, rel=1e-6)
    # at most one spike a step (400 Hz at most): the zero outputs are the steps without a spike
    assert m["cost/activation_sparsity"] == pytest.approx(1 - rates.sum() * 0.001 / 4, rel=1e-6)
