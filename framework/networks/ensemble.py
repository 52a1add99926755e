"""``model=ensemble``: a native Nengo ensemble driven by a ramp of inputs, no training.

The ensemble is the smallest network in which thresholds can be looked at directly: each neuron
receives J = gain·x + bias, with x stepped through ``model.input_low … model.input_high``
(``model.n_inputs`` values, each held for ``simulation.n_steps`` steps of ``simulation.dt``). The
ramp drives the neurons directly (a connection to ``ens.neurons``, to which Nengo applies each
neuron's gain), so x is the input along each neuron's preferred direction, as in
``nengo.utils.ensemble.response_curves``, and a neuron starts to fire where x crosses its
x-intercept (J_th − bias)/gain. ``simulation.scale_firing_rates`` and ``simulation.synapse``
belong to converted networks and are not used here.

:func:`framework.simulation.simulate_constant` is the measurement behind response curves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import nengo
import numpy as np

from framework import cost
from framework.analysis import Context
from framework.data.base import Data
from framework.errors import UserError, check_interrupt
from framework.models import MODELS, ModelConfig
from framework.networks.base import Built, Nodes, Recorder, register
from framework.neurons import is_spiking
from framework.plugin_host import select_layers
from framework.progress import Console
from framework.schema import bounded, option
from framework.simulation import BuiltLayer, simulate_constant

#: what x is for a neuron of the ensemble: the ramp drives it straight along its encoder
X_LABEL = "x (input along the preferred direction)"


@option(MODELS)
@dataclass
class EnsembleModel(ModelConfig):
    """A native Nengo ensemble driven by a ramp of inputs; no training."""

    reads_data: ClassVar[bool] = False

    name: str = "ensemble"
    n_neurons: int = bounded(1, ge=1)  # neurons in the ensemble
    dimensions: int = bounded(1, ge=1)  # represented dimensions
    gain: list[float] | None = None  # explicit per-neuron gains (J per unit x); with ``bias``
    bias: list[float] | None = None  # explicit per-neuron bias currents (J)
    intercept_low: float = bounded(-1.0, ge=-1.0, le=1.0)  # x-intercept distribution, lower end
    intercept_high: float = bounded(0.9, ge=-1.0, le=1.0)  # x-intercept distribution, upper end
    max_rate_low: float = bounded(200.0, gt=0.0)  # max-rate distribution at x = 1, lower end, Hz
    max_rate_high: float = bounded(400.0, gt=0.0)  # max-rate distribution at x = 1, upper end, Hz
    input_low: float = -1.0  # ramp input start, x units
    input_high: float = 1.0  # ramp input end, x units
    n_inputs: int = bounded(41, ge=2)  # input values on the ramp

    def check(self) -> None:
        if (self.gain is None) != (self.bias is None):
            raise UserError("model.gain, model.bias: give both or neither")
        for key in ("gain", "bias"):
            values = getattr(self, key)
            if values is not None and len(values) != self.n_neurons:
                raise UserError(f"model.{key}: needs {self.n_neurons} values (model.n_neurons), "
                                f"got {len(values)}")
        if self.intercept_low > self.intercept_high:
            raise UserError("model.intercept_low: must be <= model.intercept_high")
        if self.max_rate_low > self.max_rate_high:
            raise UserError("model.max_rate_low: must be <= model.max_rate_high")



def ramp_data(ramp: np.ndarray) -> Data:
    """The ramp as a :class:`framework.data.base.Data`: each input value is one test sample."""
    x = ramp.reshape(-1, 1).astype(np.float32)
    return Data(name="ramp", task="regression", x_train=x, y_train=x, x_test=x, y_test=x,
                n_outputs=1, source=f"ramp {ramp[0]:g}..{ramp[-1]:g} ({len(ramp)} values)")


def build_network(m: EnsembleModel, s: Any, seed: int, neuron_type: Any
                  ) -> tuple[Any, Any, Any, np.ndarray]:
    """The ensemble, its ramp input and a probe on its neurons.

    Parameters
    ----------
    m : EnsembleModel
        The ``model`` node.
    s : framework.simulation.SimulationConfig
        ``n_steps`` and ``dt``: each ramp value is held for ``n_steps · dt`` s.
    seed : int
    neuron_type : nengo.neurons.NeuronType

    Returns
    -------
    (nengo.Network, nengo.Ensemble, nengo.Probe, ndarray)
        The network, the ensemble, the probe of its neurons' output and the ramp values.
    """
    ramp = np.linspace(m.input_low, m.input_high, m.n_inputs)
    with nengo.Network(seed=seed, label="ensemble") as net:
        if m.gain is not None:
            dist = dict(gain=np.asarray(m.gain, float), bias=np.asarray(m.bias, float))
        else:  # the type's gain_bias turns intercepts and max rates into gains and biases
            dist = dict(intercepts=nengo.dists.Uniform(m.intercept_low, m.intercept_high),
                        max_rates=nengo.dists.Uniform(m.max_rate_low, m.max_rate_high))
        ens = nengo.Ensemble(m.n_neurons, m.dimensions, neuron_type=neuron_type, label="ensemble",
                             **dist)
        stim = nengo.Node(nengo.processes.PresentInput(ramp[:, None], s.n_steps * s.dt),
                          label="ramp")
        # straight into the neurons: Nengo multiplies by each neuron's gain, so J = gain·x + bias
        nengo.Connection(stim, ens.neurons, transform=np.ones((m.n_neurons, 1)), synapse=None)
        probe = nengo.Probe(ens.neurons, synapse=None)
    return net, ens, probe, ramp


@register(EnsembleModel)
def run_ensemble(nodes: Nodes, data: Data | None, recorder: Recorder, console: Console,
                 scratch: Path) -> Built:
    """Build and simulate the ensemble; return what the analyses read.

    Parameters
    ----------
    nodes : framework.networks.base.Nodes
        Uses ``model`` (an :class:`EnsembleModel`), ``neuron``, ``simulation.n_steps``/``dt``,
        the analysed layers and ``seed``.
    data, scratch
        Unused: the ensemble makes its own inputs.
    recorder : framework.networks.base.Recorder
        Where ``cost.csv`` goes (:func:`ensemble_cost`; None: nowhere).
    console : framework.progress.Console

    Returns
    -------
    Built
        The context has one layer, ``ensemble``, with the gains and biases as built, ``rates``
        (n_inputs, n) in Hz (each input's hold) and, for spiking types, ``spikes`` of shape
        (1, n_inputs · n_steps, n): the whole ramp as one spike train. ``data.x_test`` is the
        ramp. The metrics are ``time/simulate_s`` and ``cost/*``.
    """
    console.stage("model", "native Nengo ensemble")
    t0 = time.perf_counter()
    m, s = nodes.model, nodes.simulation
    neuron_type = nodes.neuron.build()
    net, ens, probe, ramp = build_network(m, s, nodes.seed, neuron_type)
    console.stage("simulate", f"{m.n_neurons} {nodes.neuron.name} neurons, {m.n_inputs} inputs "
                  f"{m.input_low:g}..{m.input_high:g}, {s.n_steps} steps each")
    out, gain, bias = _simulate(net, ens, probe, m, s, nodes.seed, console)
    amp = float(getattr(neuron_type, "amplitude", 1.0))
    per_input = out.reshape(m.n_inputs, s.n_steps, m.n_neurons)
    rates = per_input.mean(axis=1) / amp  # mean output ÷ amplitude = Hz
    spikes = None
    if is_spiking(neuron_type):
        spikes = (out * (s.dt / amp)).astype(np.float32)[None]  # spikes per step
    # the ramp drives every neuron straight into J = gain·x + bias: x is the ramp itself
    observed = np.repeat(ramp[:, None], m.n_neurons, axis=1)
    built = [BuiltLayer(name="ensemble", neuron_type=neuron_type, gain=gain, bias=bias,
                        rates=rates, spikes=spikes, x=observed,
                        active_steps=np.count_nonzero(per_input, axis=1).mean(axis=0))]
    layers = select_layers(built, nodes.layers, nodes.max_neurons, nodes.seed)
    ctx = Context(data=ramp_data(ramp), layers=layers, dt=s.dt, n_steps=s.n_steps,
                  sample=np.arange(m.n_inputs), seed=nodes.seed,
                  simulate_constant=simulate_constant, x_label=X_LABEL)
    metrics = {"time/simulate_s": time.perf_counter() - t0}
    metrics.update(ensemble_cost(built, ramp, s, recorder))
    return Built(ctx, metrics)


def ensemble_cost(built: list[BuiltLayer], ramp: np.ndarray, s: Any,
                  recorder: Recorder | None) -> dict[str, float]:
    """What the ensemble costs per ramp value (:mod:`framework.cost`; no Keras model): the ramp
    drives every neuron through one weight each (MACs at every step it is nonzero); the neurons
    feed nothing. ``cost.csv`` is logged (unless there is no recorder), the ``cost/*`` metrics
    returned."""
    n = len(built[0].gain)
    synapses = {cost.INPUT: cost.dense_synapses(np.ones((n, 1)))}
    ramp_active = np.array([np.count_nonzero(ramp) * s.n_steps / len(ramp)])
    srcs = cost.sources(built, synapses, {cost.INPUT: ramp_active}, s.n_steps * s.dt)
    # per neuron its gain and bias, and the ramp's weight into it, in Nengo's float64
    run = cost.Run(steps=s.n_steps, dt=s.dt, param_bytes=3 * n * 8)
    metrics, table = cost.measure(srcs, run, keras=False)
    if recorder is not None:
        recorder.artifact_text(table, "cost.csv")
    return metrics


def _simulate(net: Any, ens: Any, probe: Any, m: EnsembleModel, s: Any, seed: int,
              console: Console) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the ramp, one held value at a time (interruptible); the output per step, gains and
    biases as built."""
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = nengo.Simulator(net, dt=s.dt, progress_bar=False, seed=seed)
    except nengo.exceptions.BuildError as ex:
        key = "model.gain" if m.gain is not None else "model.intercept_high"
        raise UserError(f"{key}: Nengo cannot build the ensemble: "
                        f"{' '.join(str(ex).split())}") from None
    bar = console.bar("simulate", m.n_inputs)
    with sim:
        for i in range(m.n_inputs):
            check_interrupt()
            sim.run_steps(s.n_steps)
            bar.update(i + 1)
        return (sim.data[probe], np.asarray(sim.data[ens].gain, float),
                np.asarray(sim.data[ens].bias, float))
