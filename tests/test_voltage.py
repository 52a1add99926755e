"""The ``voltage`` analysis: Nengo's own membrane voltage, the threshold line where the spikes
happen (1 for nengo.LIF, J_th for threshold_lif), and a refusal for types without a membrane."""
from __future__ import annotations

import nengo
import numpy as np
import pandas as pd
import pytest
from helpers import TINY, cli, runs

from framework.analysis import Context, Layer
from framework.errors import UserError
from framework.native import ThresholdLIF
from plugins.voltage import Voltage, VoltageConfig, step_voltage

GAIN = np.array([1.0, 2.0, 3.0, 0.5, 1.0])
BIAS = np.array([0.2, 0.1, -0.4, 0.3, -1.0])


def context(neuron_type, threshold: float, x: float = 0.5) -> Context:
    layer = Layer(name="hidden0", neuron_type=neuron_type, threshold=threshold,
                  index=np.arange(len(GAIN)) + 10, gain=GAIN, bias=BIAS,
                  x=np.full((2, len(GAIN)), x))
    return Context(data=None, layers=[layer], dt=0.001, n_steps=100, sample=np.arange(2))


@pytest.mark.parametrize("make, threshold", [
    (lambda rest: nengo.LIF(initial_state=rest), 1.0),
    (lambda rest: ThresholdLIF(threshold=0.5, initial_state=rest), 0.5),
    (lambda rest: ThresholdLIF(threshold=2.0, tau_rc=0.05, initial_state=rest), 2.0)])
def test_the_trace_is_nengo_simulators_own(make, threshold):
    """Same spikes and voltages as nengo.Simulator's probes of the same neurons on the same J,
    except at spike steps, where Nengo has already reset the voltage the trace keeps."""
    neuron_type = make({"voltage": nengo.dists.Choice([0.0])})  # at rest, as the trace starts
    J = np.array([0.9, 1.2, 2.5, 6.0]) * threshold
    with nengo.Network() as net:
        ens = nengo.Ensemble(len(J), 1, neuron_type=neuron_type, gain=np.ones(len(J)), bias=J)
        p_v = nengo.Probe(ens.neurons, "voltage")
        p_s = nengo.Probe(ens.neurons)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(200)
    volts, spikes = step_voltage(neuron_type, J, 200, 0.001)
    np.testing.assert_array_equal(spikes, sim.data[p_s] > 0)
    np.testing.assert_allclose(volts[~spikes], sim.data[p_v][~spikes], rtol=1e-12, atol=1e-12)
    assert spikes[:, 0].sum() == 0 and spikes[:, 3].sum() > 10
    assert np.all(volts[spikes] > 1.0)  # reached in the step, before Nengo's reset


def first_spikes_where_voltage_reaches_the_line(table: pd.DataFrame, threshold: float,
                                                gradual: bool = True) -> int:
    """Check, per neuron, that the first spike is the first step at or above ``threshold`` and
    that no step without a spike reaches it; ``gradual``: currents near J_th, so the voltage
    is seen close to the line the step before; return how many neurons spiked."""
    assert (table["threshold"] == threshold).all()
    fired = 0
    for _, trace in table.groupby("neuron"):
        v, s = trace["voltage"].to_numpy(), trace["spike"].to_numpy()
        assert v[s == 0].max() < threshold
        if s.any():
            fired += 1
            assert np.argmax(v >= threshold) == np.argmax(s == 1)
            if gradual:  # rose to the line, not jumped
                assert v[np.argmax(s == 1) - 1] > 0.8 * threshold
    return fired


@pytest.mark.parametrize("neuron_type, threshold", [(nengo.LIF(amplitude=0.01), 1.0),
                                                    (ThresholdLIF(threshold=0.5), 0.5)])
def test_line_at_j_th_and_first_spike_where_voltage_reaches_it(neuron_type, threshold):
    res = Voltage().run(context(neuron_type, threshold), VoltageConfig(n_neurons=5))
    table = res.tables["voltage.csv"]
    assert list(table.columns[:6]) == ["layer", "neuron", "t_s", "voltage", "threshold", "spike"]
    assert len(table) == 5 * 100 and table["t_s"].iloc[-1] == pytest.approx(0.1)
    np.testing.assert_allclose(table.groupby("neuron")["current"].first(), GAIN * 0.5 + BIAS)
    fired = first_spikes_where_voltage_reaches_the_line(table, threshold)
    # J = 0.7, 1.1, 1.1, 0.55, -0.5: LIF fires for two, J_th = 0.5 for four
    assert fired == (2 if threshold == 1.0 else 4)
    assert res.metrics["voltage/threshold"] == threshold
    assert res.metrics["voltage/max_subthreshold"] < threshold


def test_a_lower_threshold_spikes_earlier_and_more_often():
    firsts = {}
    for nt, th in [(nengo.LIF(), 1.0), (ThresholdLIF(threshold=0.5), 0.5)]:
        table = Voltage().run(context(nt, th, x=1.0), VoltageConfig(neurons=[11])).tables[
            "voltage.csv"]  # J = 2.1
        firsts[th] = (table.loc[table["spike"] == 1, "t_s"].min(), table["spike"].sum())
    assert firsts[0.5][0] < firsts[1.0][0] and firsts[0.5][1] > firsts[1.0][1]


def test_automatic_choice_prefers_firing_neurons_then_those_nearest_the_line():
    table = Voltage().run(context(nengo.LIF(), 1.0), VoltageConfig(n_neurons=3)).tables[
        "voltage.csv"]
    # J = 0.7, 1.1, 1.1, 0.55, -0.5: the two firing, then the silent one nearest J_th
    assert sorted(table["neuron"].unique()) == [10, 11, 12]


@pytest.mark.parametrize("neuron_type", [nengo.RectifiedLinear(), nengo.LIFRate(),
                                         nengo.SpikingRectifiedLinear()])
def test_types_without_a_membrane_are_refused_in_one_line(neuron_type):
    with pytest.raises(UserError, match=r"analysis voltage: .* neuron=lif or neuron=threshold_lif"):
        Voltage().run(context(neuron_type, 0.0), VoltageConfig())


def test_a_layer_without_a_membrane_is_skipped_with_its_reason_beside_a_lif_one():
    ctx = context(nengo.LIF(), 1.0)
    relu = Layer(name="hidden1", neuron_type=nengo.RectifiedLinear(), threshold=0.0,
                 index=np.arange(3), gain=np.ones(3), bias=np.zeros(3))
    ctx.layers.append(relu)
    res = Voltage().run(ctx, VoltageConfig())
    assert set(res.tables["voltage.csv"]["layer"]) == {"hidden0"}
    assert res.remarks == ["hidden1: skipped, RectifiedLinear has no LIF membrane voltage"]


def test_unknown_neuron_or_sample_names_the_key():
    with pytest.raises(UserError, match=r"analyses.voltage.neurons: \[3\]"):
        Voltage().run(context(nengo.LIF(), 1.0), VoltageConfig(neurons=[3]))
    with pytest.raises(UserError, match="analyses.voltage.sample"):
        Voltage().run(context(nengo.LIF(), 1.0), VoltageConfig(sample=2))


def test_the_figure_draws():
    res = Voltage().run(context(ThresholdLIF(threshold=0.5), 0.5), VoltageConfig())
    fig = res.figures["voltage"]()
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert lines and all(np.allclose(ln.get_ydata(), 0.5) for ln in lines)


@pytest.mark.slow
def test_cli_threshold_lif_at_half(uri):
    proc = cli(TINY + ["analysis=[voltage]", "neuron=threshold_lif", "neuron.threshold=0.5",
                       "analyses.voltage.n_neurons=3"], uri=uri)
    assert proc.returncode == 0, proc.stderr[-2000:]
    client, (run,) = runs(uri)
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "voltage.csv"))
    assert first_spikes_where_voltage_reaches_the_line(table, 0.5, gradual=False) >= 1
    assert run.data.metrics["voltage/threshold"] == 0.5
