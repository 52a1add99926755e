"""Stage 5, simulation: evaluate the trained network as rates and as spikes.

``evaluate_rates`` runs the rate version of the network for one step (no synapses): the accuracy the
weights can reach. ``simulate`` runs the spiking network for ``simulation.n_steps`` on the test
split in minibatches, reads the output over time as configured, and records each hidden neuron's
spiking rate, what was built (gains, biases, neuron types) and a few spike trains for rasters.
"""
from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nengo
import numpy as np
import numpy.typing as npt

from framework import cost
from framework.batches import as_steps, pad_to, readout_bins
from framework.conversion import Conversion, hidden_layers, neuron_layers
from framework.data.base import Data, angle_diff
from framework.errors import UserError, check_interrupt
from framework.limits import check_simulation
from framework.schema import bounded


class Readout(str, enum.Enum):
    """How the spiking network's output is read over time."""

    last = "last"  # the last step only
    mean = "mean"  # the mean of the last ``readout_steps`` steps
    # the mean of the last k steps, k the window that scores best on training samples
    # (framework.calibration.fit_readout); static inputs only
    fitted = "fitted"
    auto = "auto"  # ``fitted`` for a loaded model of static inputs, else ``mean``


@dataclass
class SimulationConfig:
    """The ``simulation`` node: how the spiking network is run and read."""

    n_steps: int = bounded(100, ge=1)  # simulation steps per test sample
    # step, s: NengoDL computes in float32 (a step under 1 µs loses the time itself) and a step
    # over 100 ms is longer than any neuron's time constant
    dt: float = bounded(0.001, ge=1e-6, le=0.1)
    synapse: float | None = bounded(0.01, ge=0.0)  # lowpass time constant on every connection, s
    scale_firing_rates: float = bounded(100.0, gt=0.0)  # neuron input × this, output ÷ this
    minibatch_size: int = bounded(200, ge=1)  # samples simulated together
    readout: Readout = Readout.auto  # how the output is read over time
    # steps averaged by the ``mean`` read-out; None: the whole trial for sequences, else the last
    # fifth of n_steps (framework.resolve.resolve_defaults); ``fitted`` chooses them
    readout_steps: int | None = bounded(None, ge=1)
    max_samples: int = bounded(0, ge=0)  # test samples simulated; 0: all

    def check(self) -> None:
        if (self.readout in (Readout.mean, Readout.auto) and self.readout_steps is not None
                and self.readout_steps > self.n_steps):
            raise UserError(f"simulation.readout_steps: {self.readout_steps} is more than "
                            f"simulation.n_steps ({self.n_steps})")
        if self.readout == Readout.fitted and self.readout_steps is not None:
            raise UserError(f"simulation.readout_steps: {self.readout_steps} given with "
                            f"simulation.readout=fitted, which chooses the window on training "
                            f"samples; give one of the two")


N_RASTER = 4  # test samples whose spike trains are kept for raster plots


@dataclass
class BuiltLayer:
    """A converted layer as built: neuron type and per-neuron gain and bias (J = gain·x + bias)."""

    name: str
    neuron_type: object
    gain: np.ndarray
    bias: np.ndarray
    rates: np.ndarray | None = None  # (n_samples, n_neurons), Hz
    spikes: np.ndarray | None = None  # (N_RASTER, n_steps, n_neurons), spikes per step
    x: np.ndarray | None = None  # (n_samples, n_neurons), input x averaged over the trial
    binned_rates: np.ndarray | None = None  # sequences: (n_samples, n_bins, n_neurons), Hz
    binned_x: np.ndarray | None = None  # sequences: (n_samples, n_bins, n_neurons), x units
    # steps with a nonzero output (a spike), per test sample (mean over samples): (n_neurons,)
    active_steps: np.ndarray | None = None


@dataclass
class Simulated:
    """Spiking evaluation of the test split.

    Attributes
    ----------
    outputs : ndarray, shape (n_samples, n_outputs)
        The read-out (last step, or mean of the last ``readout_steps`` steps).
    sample : ndarray of int
        Test-split indices that were simulated.
    layers : list of BuiltLayer
    n_steps : int
        Steps simulated per sample (sequences: time bins × steps per bin).
    bin_steps : int
        Sequences: steps each time bin of the input is held (0 for static inputs).
    synapses : dict
        Layer name (or :data:`framework.cost.INPUT`) -> its elements' outgoing synapses
        (:class:`framework.cost.Synapses`), from the trained weights as simulated.
    node_active : dict
        :data:`framework.cost.INPUT` and each relay layer (:func:`relay_layers`) -> per element,
        steps with a nonzero value per test sample (mean over samples).
    """

    outputs: np.ndarray
    sample: np.ndarray
    layers: list[BuiltLayer] = field(default_factory=list)
    n_steps: int = 0
    bin_steps: int = 0
    synapses: dict[str, cost.Synapses] = field(default_factory=dict)
    node_active: dict[str, np.ndarray] = field(default_factory=dict)


def seeded_subset(n: int, k: int, seed: int) -> np.ndarray:
    """Indices into ``n`` samples: all (``k`` 0 or at least ``n``), or a seeded sorted subset of
    ``k``."""
    if not k or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


def test_sample(data: Data, max_samples: int, seed: int) -> np.ndarray:
    """Indices of the test samples to simulate: all, or a seeded subset of ``max_samples``."""
    return seeded_subset(len(data.x_test), max_samples, seed)


def held(x: np.ndarray, n_steps: int) -> np.ndarray:
    """Inputs with a time axis (:func:`framework.batches.as_steps`) held over time: each static
    sample for ``n_steps``; each sequence bin for ``ceil(n_steps / bins)`` steps."""
    return np.repeat(x, int(np.ceil(n_steps / x.shape[1])), axis=1)


def spiking_inputs(data: Data, idx: np.ndarray, n_steps: int) -> np.ndarray:
    """Test inputs ``idx`` held over time (:func:`held`)."""
    return held(as_steps(data.x_test[idx], data.sequence), n_steps)


def readout(y: np.ndarray, sim_cfg: SimulationConfig) -> np.ndarray:
    """The output over time (n, steps, k) read as one value per sample."""
    if sim_cfg.readout.value == "last":
        return y[:, -1]
    steps = cast(int, sim_cfg.readout_steps)  # resolved before any simulation (resolve_defaults)
    mean: np.ndarray = y[:, -steps:].mean(axis=1)
    return mean


def x_window(s: SimulationConfig, steps: int) -> int:
    """The last steps each neuron's x (static inputs) is averaged over: the read-out's window,
    after the synapse has settled (over the whole trial x averages the ramp-up: 9% short at 100
    steps with a 10 ms synapse). A fitted window may reach back into that ramp, so x keeps the
    last fifth there: the neurons' numbers do not move with the read-out's choice."""
    if s.readout == Readout.last:
        return 1
    if s.readout == Readout.fitted:
        return max(1, steps // 5)
    return int(s.readout_steps or steps)


def check_budget(model: Any, data: Data, s: SimulationConfig, seed: int) -> None:
    """Refuse, before any training, a spiking evaluation that would not fit in memory
    (:func:`framework.limits.check_simulation`), from the model's layer sizes and the data."""
    n = len(test_sample(data, s.max_samples, seed))
    bins = data.x_test.shape[1] if data.sequence else 1
    steps = int(np.ceil(s.n_steps / bins)) * bins
    features = int(np.prod(data.x_test.shape[2:] if data.sequence else data.x_test.shape[1:]))
    neurons = sum(int(np.prod([d for d in layer.output.shape[1:] if d])) for layer in
                  hidden_layers(model))
    check_simulation(n, steps, features, s.minibatch_size, neurons, data.n_outputs)


def evaluate_rates(model: Any, params: Path, data: Data, s: SimulationConfig,
                   conversion: Conversion, activity: dict[str, np.ndarray] | None = None
                   ) -> np.ndarray:
    """Outputs (n_test, k) of the rate network: the neurons' rate versions, one step, no
    synapses.

    With ``activity`` (a dict), the same pass also fills it with what the Keras model computes
    with: each converted layer's (and :data:`framework.cost.INPUT`'s and each relay layer's)
    nonzero activations per test sample, per element, summed over its passes (one; a sequence's
    time bins) and averaged over the samples.
    """
    converter = conversion.convert(model, synapse=None, rate=True)
    inp = converter.inputs[model.inputs[0]]
    out_p = converter.outputs[model.outputs[0]]
    probes = {}
    if activity is not None:
        with converter.net:
            probes = {name: nengo.Probe(obj, synapse=None) for name, obj in
                      {**neuron_layers(converter, model), **relay_layers(converter, model)}.items()}
    n = len(data.x_test)
    mb = min(s.minibatch_size, n)
    x = pad_to(as_steps(data.x_test, data.sequence), mb)
    with conversion.simulator(converter, model, params, mb, rate=True) as sim:
        res = sim.predict({inp: x}, verbose=0)
    if activity is not None:
        activity[cost.INPUT] = np.count_nonzero(x[:n], axis=1).mean(axis=0)
        activity.update({name: np.count_nonzero(res[p][:n], axis=1).mean(axis=0)
                         for name, p in probes.items()})
    y: np.ndarray = res[out_p][:n]
    if data.sequence:  # one step per time bin: pool the bins the spiking read-out covers
        pooled: np.ndarray = y[:, -readout_bins(y.shape[1], s):].mean(axis=1)
        return pooled
    return y[:, -1]


def simulate(model: Any, params: Path, data: Data, s: SimulationConfig, conversion: Conversion,
             console: Any) -> Simulated:
    """Run the spiking network on the test split; record outputs, rates and what was built.

    Parameters
    ----------
    model : keras.Model
    params : pathlib.Path
        Trained parameters (``sim.save_params``).
    data : framework.data.base.Data
    s : SimulationConfig
        The ``simulation`` node.
    conversion : framework.conversion.Conversion
        Neuron type, firing-rate scales and seed.
    console : framework.progress.Console
    """
    seed = conversion.seed
    converter = conversion.convert(model, synapse=s.synapse)
    inp = converter.inputs[model.inputs[0]]
    out_p = converter.outputs[model.outputs[0]]
    layers = neuron_layers(converter, model)
    relays = relay_layers(converter, model)
    with converter.net:
        probes = {name: nengo.Probe(neurons) for name, neurons in layers.items()}
        # the input current J = gain·x + bias, so each neuron's x is observed in its own units
        currents = {name: nengo.Probe(neurons, "input", synapse=None)
                    for name, neurons in layers.items()}
        relay_probes = {name: nengo.Probe(node, synapse=None) for name, node in relays.items()}
    idx = test_sample(data, s.max_samples, seed)
    bins = data.x_test.shape[1] if data.sequence else 1
    x = spiking_inputs(data, idx, s.n_steps)
    n, steps = len(x), x.shape[1]
    hold = steps // bins  # sequences: rates and x per time bin as well (tuning over time)
    mb = min(s.minibatch_size, n)
    xp = pad_to(x, mb)
    outputs = np.zeros((n, data.n_outputs), np.float32)
    window = x_window(s, steps)
    sums = {name: _Sums.empty(n, bins, hold, obj.size_out) for name, obj in layers.items()}
    active = {cost.INPUT: np.count_nonzero(x, axis=1).sum(axis=0)}
    bar = console.bar("simulate", len(xp) // mb)
    with conversion.simulator(converter, model, params, mb) as sim:
        for b in range(len(xp) // mb):
            check_interrupt()
            lo, hi = b * mb, min((b + 1) * mb, n)
            res = sim.predict_on_batch({inp: xp[b * mb:(b + 1) * mb]})
            outputs[lo:hi] = readout(res[out_p], s)[: hi - lo]
            for name, probe in probes.items():
                sums[name].add(lo, res[probe][: hi - lo], res[currents[name]][: hi - lo], window)
            for name, probe in relay_probes.items():  # steps with a nonzero value: MACs
                active[name] = active.get(name, 0) + np.count_nonzero(
                    res[probe][: hi - lo], axis=1).sum(axis=0)
            bar.update(b + 1)
        built = [_built_layer(sim, name, neurons, sums[name], s.dt, data.sequence,
                              conversion.calibration.get(name))
                 for name, neurons in layers.items()]
        synapses = network_synapses(sim, converter.net, {cost.INPUT: inp, **relays, **layers})
    return Simulated(outputs=outputs, sample=idx, layers=built, n_steps=steps,
                     bin_steps=hold if data.sequence else 0, synapses=synapses,
                     node_active={name: a / n for name, a in active.items()})


def relay_layers(converter: Any, model: Any) -> dict[str, nengo.Node]:
    """``keras layer name -> nengo Node`` for every layer the conversion made a node that feeds
    weighted connections (an average pooling, a linear layer before a ``ReLU`` layer): its values
    are not spikes, so what it drives are MACs (:mod:`framework.cost`). The input, the output and
    the biases' nodes are not relays; a node listed once, under the first layer that made it."""
    feeding = [c.pre_obj for c in converter.net.all_connections
               if not isinstance(c.transform, nengo.transforms.NoTransform)]
    inputs = list(converter.inputs.values())
    out: dict[str, nengo.Node] = {}
    for layer in model.layers:
        try:
            obj = converter.layers[layer]
        except KeyError:
            continue
        if (isinstance(obj, nengo.Node) and obj.size_in > 0
                and any(obj is f for f in feeding) and not any(obj is i for i in inputs)
                and not any(obj is o for o in out.values())):
            out[layer.name] = obj
    return out


@dataclass
class _Sums:
    """One layer's running sums over the simulated samples (:func:`simulate`'s accumulators)."""

    out: np.ndarray  # (n, bins, neurons): output per step, summed over each bin's steps
    j: np.ndarray  # (n, bins, neurons): input current J, summed over each bin's steps
    j_window: np.ndarray  # (n, neurons): J averaged over the read-out window
    active: np.ndarray  # (neurons,): steps with a nonzero output, summed over samples
    hold: int  # steps per time bin
    raster: np.ndarray | None = None  # (N_RASTER, steps, neurons): the first samples' output

    @classmethod
    def empty(cls, n: int, bins: int, hold: int, neurons: int) -> _Sums:
        """Zeros for ``n`` samples of ``bins`` bins of ``hold`` steps."""
        return cls(np.zeros((n, bins, neurons)), np.zeros((n, bins, neurons)),
                   np.zeros((n, neurons)), np.zeros(neurons), hold)

    def add(self, lo: int, act: np.ndarray, j: np.ndarray, window: int) -> None:
        """Samples ``lo…`` of one minibatch: output ``act`` and current ``j`` (m, steps, n)."""
        m, bins = len(act), self.out.shape[1]
        self.out[lo:lo + m] = act.reshape(m, bins, self.hold, -1).sum(axis=2)
        self.j[lo:lo + m] = j.reshape(m, bins, self.hold, -1).sum(axis=2)
        self.j_window[lo:lo + m] = j[:, -window:].mean(axis=1)
        self.active += np.count_nonzero(act, axis=1).sum(axis=0)
        if self.raster is None:
            self.raster = act[:N_RASTER]


def _built_layer(sim: Any, name: str, neurons: Any, sums: _Sums, dt: float,
                 sequence: bool, shift: Any = None) -> BuiltLayer:
    """A layer as built (gains and biases from ``sim``; a calibration ``shift``, activation
    units, is part of each neuron's bias) and simulated (rates and x from ``sums``)."""
    ens = neurons.ensemble
    ntype = ens.neuron_type
    amp = float(getattr(ntype, "amplitude", 1.0))
    gain = np.asarray(sim.data[ens].gain, float)
    bias = np.asarray(sim.data[ens].bias, float)
    if shift is not None:  # its shift is part of each neuron's bias
        bias = bias + gain * np.asarray(shift, float)
    binned = sums.out / (sums.hold * amp)  # mean output / amplitude = Hz
    with np.errstate(divide="ignore", invalid="ignore"):
        binned_x = (sums.j / sums.hold - bias) / gain
        x_static = (sums.j_window - bias) / gain
    raster = sums.raster if sums.raster is not None else np.zeros((0, 0, len(gain)))
    spikes = raster * dt / amp if getattr(ntype, "spiking", False) else None
    return BuiltLayer(
        name=name, neuron_type=ntype, gain=gain, bias=bias, rates=binned.mean(axis=1),
        spikes=spikes, x=binned_x.mean(axis=1) if sequence else x_static,
        binned_rates=binned if sequence else None, binned_x=binned_x if sequence else None,
        active_steps=sums.active / max(len(sums.out), 1))


def network_synapses(sim: Any, net: nengo.Network, sources: dict[str, Any]
                     ) -> dict[str, cost.Synapses]:
    """Each source's outgoing synapses in ``net``, with the weights ``sim`` holds (trained).

    Parameters
    ----------
    sim : nengo_dl.Simulator
        The simulator, its parameters loaded.
    net : nengo.Network
        The converted network.
    sources : dict
        Name -> the ``nengo.Node`` (the input) or ``Neurons`` whose connections are counted.

    Returns
    -------
    dict
        Name -> :class:`framework.cost.Synapses` over every connection leaving it (none: no
        synapses). Connections from other nodes (biases, a pooling layer's relay) are not
        counted.
    """
    out = {name: cost.no_synapses(obj.size_out) for name, obj in sources.items()}
    for conn in net.all_connections:
        for name, obj in sources.items():
            if conn.pre_obj is obj or (isinstance(obj, nengo.ensemble.Neurons)
                                       and conn.pre_obj == obj):
                out[name] = out[name] + _scatter(connection_synapses(sim, conn), conn,
                                                 obj.size_out)
    return out


def connection_synapses(sim: Any, conn: nengo.Connection) -> cost.Synapses:
    """One connection's synapses per element of its (sliced) pre, from its transform's kind:
    dense, sparse, convolution; none passes values on without a weight (no synapse); another kind
    counts every pair."""
    tr = conn.transform
    weights = sim.data[conn].weights  # None for NoTransform: one to one, weight 1
    w = np.asarray(1.0 if weights is None else weights)
    n = int(conn.size_mid)
    if isinstance(tr, nengo.transforms.Convolution):
        return cost.conv_synapses(w, tuple(tr.input_shape.shape), tuple(tr.strides),
                                  tr.padding, tr.channels_last, int(getattr(tr, "groups", 1)))
    if isinstance(tr, nengo.transforms.Sparse):
        init = tr.init
        pre = (init.indices[:, 1] if isinstance(init, nengo.transforms.SparseMatrix)
               else init.tocoo().col)
        return cost.sparse_synapses(pre, w, n)
    if isinstance(tr, nengo.transforms.NoTransform):  # passes values on: no weight, no synapse
        return cost.no_synapses(n)
    if isinstance(tr, nengo.transforms.Dense):
        return cost.dense_synapses(w, n)
    full = np.full(n, tr.size_out)
    return cost.Synapses(full, full, int(w.size), int(w.size - np.count_nonzero(w)))


def _scatter(syn: cost.Synapses, conn: nengo.Connection, size: int) -> cost.Synapses:
    """``syn`` of a connection from a slice of its pre, placed at the slice's elements."""
    if conn.pre_slice == slice(None) and len(syn.fan_out) == size:
        return syn
    idx = np.arange(size)[conn.pre_slice]
    fan, dense = np.zeros(size, np.int64), np.zeros(size, np.int64)
    np.add.at(fan, idx, syn.fan_out)
    np.add.at(dense, idx, syn.dense)
    return cost.Synapses(fan, dense, syn.weights, syn.zeros)


def simulate_constant(neuron_type: nengo.neurons.NeuronType, gain: npt.ArrayLike,
                      bias: npt.ArrayLike, x: npt.ArrayLike, n_steps: int, dt: float = 0.001,
                      seed: int = 0) -> np.ndarray:
    """Rates (Hz) of neurons simulated in Nengo on constant inputs.

    One ensemble of ``len(gain) × len(x)`` neurons (one copy of every neuron per input value),
    each driven by a constant node straight into its input, J = gain·x + bias, and simulated once
    for ``n_steps``. Nengo's LIF family starts from a random membrane voltage, so the neurons' spike
    phases are spread and the count error per neuron is below one spike.

    Parameters
    ----------
    neuron_type : nengo.neurons.NeuronType
        The type as built (its amplitude is divided out).
    gain : array_like, shape (n,)
        J per unit x.
    bias : array_like, shape (n,)
        Bias current J.
    x : array_like, shape (m,) or (m, n)
        Input values, x units: the same m values for every neuron, or a column per neuron.
    n_steps : int
        Steps simulated per value (duration ``n_steps · dt`` s).
    dt : float
        Simulation step, s.
    seed : int
        Network seed (initial voltages).

    Returns
    -------
    ndarray, shape (m, n)
        Mean rate over the simulation, spikes per second.
    """
    gains = np.asarray(gain, float).ravel()
    biases = np.asarray(bias, float).ravel()
    xs = np.asarray(x, float)
    n, m = len(gains), len(xs)
    if xs.ndim == 2 and xs.shape[1] != n:
        raise ValueError(f"x has {xs.shape[1]} columns for {n} neurons")
    with nengo.Network(seed=seed) as net:
        ens = nengo.Ensemble(n * m, 1, neuron_type=neuron_type, gain=np.tile(gains, m),
                             bias=np.tile(biases, m))
        # neuron j·n + i gets x[j] (or x[j, i])
        drive = nengo.Node(xs.ravel() if xs.ndim == 2 else np.repeat(xs, n))
        nengo.Connection(drive, ens.neurons, synapse=None)
        probe = nengo.Probe(ens.neurons, synapse=None)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Nengo warns about the max_rates of neurons silent at x = 1; they are measured anyway
        warnings.simplefilter("ignore")
        sim = nengo.Simulator(net, dt=dt, progress_bar=False, seed=seed)
    with sim:
        sim.run_steps(int(n_steps))
        out: np.ndarray = sim.data[probe]
    amp = float(getattr(neuron_type, "amplitude", 1.0))
    mean: np.ndarray = out.mean(axis=0)  # output per step, times amplitude
    return (mean / amp).reshape(m, n)


def task_metrics(prefix: str, outputs: np.ndarray, data: Data, idx: np.ndarray) -> dict[str, float]:
    """Accuracy (classification) or MSE (regression) of ``outputs`` on test samples ``idx``, and
    the angle error (degrees) where the targets or classes are directions."""
    y = data.y_test[idx]
    if data.classification:
        predicted = np.argmax(outputs, axis=-1)
        m = {f"{prefix}/accuracy": float(np.mean(predicted == y))}
        if data.dir_test is not None and data.class_deg is not None:  # has_directions
            err = angle_diff(data.class_deg[predicted], data.dir_test[idx])
            m[f"{prefix}/angle_error_deg"] = float(np.nanmean(np.abs(err)))
        return m
    y = y.reshape(len(y), -1)
    m = {f"{prefix}/mse": float(np.mean((outputs - y) ** 2))}
    if data.dir_test is not None and y.shape[1] == 2:  # has_directions
        pred = np.rad2deg(np.arctan2(outputs[:, 1], outputs[:, 0]))
        err = angle_diff(pred, data.dir_test[idx])  # NaN where a trial has no direction
        if np.isfinite(err).any():
            m[f"{prefix}/angle_error_deg"] = float(np.nanmean(np.abs(err)))
    return m
