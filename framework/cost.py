"""What a run costs: synaptic operations, sparsity, footprint and energy, on plain numbers.

The definitions are NeuroBench's (Yik et al. 2025, ``neurobench.metrics``):

- *activation sparsity*: zero activations over all activations, over every neuron layer, time
  step and test sample (``ActivationSparsity``);
- *synaptic operations*: per sample, every nonzero activation times its nonzero outgoing synapses
  (its *fan-out*); a binary activation (a spike) makes accumulates (ACs), any other value
  multiply-accumulates (MACs); *dense* counts every synapse of every element, zero or not
  (``SynapticOperations``: Effective_ACs, Effective_MACs, Dense; biases are not counted);
- *connection sparsity*: zero weights over all weights of the weighted layers
  (``ConnectionSparsity``); *footprint*: the parameters' bytes (``Footprint``).

Energy follows keras-spiking's ``ModelEnergy``: energy per synaptic operation times the
operations, plus energy per neuron update times the neuron updates; a non-spiking device (CPU,
GPU, ARM) computes every synapse once per inference, a spiking one only the synapses of the
events, and updates every neuron every time step. :data:`DEVICES` holds its published constants.

This module counts; it imports neither TensorFlow nor Nengo, so its numbers can be checked by
hand. :func:`framework.simulation.simulate` reads the network's connections into
:class:`Synapses` and the simulation's activity into :class:`Source`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the row of the input layer in ``cost.csv`` (its values are not spikes: MACs)
INPUT = "input"


@dataclass(frozen=True)
class Device:
    """One device's energy per operation, from keras-spiking's ``ModelEnergy.devices``."""

    energy_per_synop: float  # energy of one synaptic operation, J
    energy_per_neuron: float  # energy of one neuron update, J
    spiking: bool  # event-based: computes only the synapses of events, every time step
    source: str  # where the numbers come from


_DEGNAN = ("Degnan, Marr & Hasler 2016, IEEE TVLSI 24(1):58-66 (one MAC per synop or neuron "
           "update)")
#: Per-operation energies, J, exactly as keras-spiking 0.3.0 ships them
#: (``keras_spiking/model_energy.py``, ``ModelEnergy.devices``), with the sources it cites:
#: cpu (Intel i7-4960X), gpu (Nvidia GTX Titan Black), arm (ARM Cortex-A): Degnan et al. 2016;
#: loihi: Davies et al. 2018, IEEE Micro 38(1):82-99 (23.6 pJ synaptic spike op + 3.5 pJ
#: synaptic update per synop, 81 pJ per neuron update); spinnaker, spinnaker2: Höppner et al.
#: 2019, IEEE TCAS-I 66(8):2973-2986 (arXiv:1903.08941).
DEVICES: dict[str, Device] = {
    "cpu": Device(8.6e-9, 8.6e-9, False, _DEGNAN),
    "gpu": Device(0.3e-9, 0.3e-9, False, _DEGNAN),
    "arm": Device(0.9e-9, 0.9e-9, False, _DEGNAN),
    "loihi": Device((23.6 + 3.5) * 1e-12, 81e-12, True,
                    "Davies et al. 2018, IEEE Micro 38(1):82-99"),
    "spinnaker": Device(13.3e-9, 26e-9, True, "Höppner et al. 2019, IEEE TCAS-I 66(8)"),
    "spinnaker2": Device(450e-12, 2.19e-9, True, "Höppner et al. 2019, IEEE TCAS-I 66(8)"),
}


@dataclass
class Synapses:
    """The outgoing synapses of each element (neuron or input) of a layer.

    Attributes
    ----------
    fan_out : ndarray of int, shape (n,)
        Nonzero outgoing weights of each element (the synapses its spike drives).
    dense : ndarray of int, shape (n,)
        All its outgoing weights, zero or not (a convolution's padding is no synapse).
    weights : int
        Weight values stored for these connections.
    zeros : int
        How many of them are zero.
    """

    fan_out: np.ndarray
    dense: np.ndarray
    weights: int
    zeros: int

    def __add__(self, other: Synapses) -> Synapses:
        """Both connections' synapses (the same elements feeding two layers)."""
        return Synapses(self.fan_out + other.fan_out, self.dense + other.dense,
                        self.weights + other.weights, self.zeros + other.zeros)


def no_synapses(n: int) -> Synapses:
    """``n`` elements that feed nothing (a layer whose output is only probed)."""
    return Synapses(np.zeros(n, np.int64), np.zeros(n, np.int64), 0, 0)


def dense_synapses(w: np.ndarray, n_pre: int | None = None) -> Synapses:
    """A dense connection's synapses, from its weights as Nengo stores them.

    Parameters
    ----------
    w : ndarray, shape (n_post, n_pre), (n,) or ()
        The weight matrix (post × pre, Nengo's order); a vector or scalar is element-wise (each
        element feeds the one of the same index).
    n_pre : int, optional
        Elements for a scalar ``w`` (otherwise read from ``w``).
    """
    w = np.asarray(w)
    if w.ndim == 2:
        nz = w != 0
        return Synapses(nz.sum(axis=0), np.full(w.shape[1], w.shape[0]), int(w.size),
                        int(w.size - nz.sum()))
    n = int(n_pre if w.ndim == 0 and n_pre is not None else w.size)
    nz = np.broadcast_to(w != 0, (n,)).astype(np.int64)
    return Synapses(nz, np.ones(n, np.int64), int(w.size), int(w.size - np.count_nonzero(w)))


def sparse_synapses(pre: np.ndarray, w: np.ndarray, n_pre: int) -> Synapses:
    """A sparse connection's synapses: weight ``w[i]`` leaves element ``pre[i]``."""
    pre, w = np.asarray(pre, np.int64), np.asarray(w)
    fan = np.bincount(pre[w != 0], minlength=n_pre)
    return Synapses(fan, np.bincount(pre, minlength=n_pre), int(w.size),
                    int(w.size - np.count_nonzero(w)))


def _hits(size: int, kernel: int, stride: int, padding: str) -> np.ndarray:
    """``hits[k, p]``: whether input position ``p`` meets kernel tap ``k`` at some output position
    (TensorFlow's and Nengo's padding: ``same`` pads ⌊total/2⌋ before; padded taps are none)."""
    if padding == "valid":
        out, before = -(-(size - kernel + 1) // stride), 0
    else:
        out = -(-size // stride)
        before = max((out - 1) * stride + kernel - size, 0) // 2
    hits = np.zeros((kernel, size), bool)
    for k in range(kernel):
        pos = np.arange(out) * stride + k - before
        hits[k, pos[(pos >= 0) & (pos < size)]] = True
    return hits


def conv_synapses(kernel: np.ndarray, input_shape: tuple[int, ...], strides: tuple[int, ...],
                  padding: str, channels_last: bool = True, groups: int = 1) -> Synapses:
    """A convolution's synapses, counted exactly: an input element's fan-out is, over the kernel
    taps that reach it from some output position (none from padding), its nonzero weights.

    Parameters
    ----------
    kernel : ndarray, shape (*kernel_size, in_channels / groups, n_filters)
        The weights (Keras's and Nengo's layout).
    input_shape : tuple of int
        The input's shape, spatial dimensions and channels.
    strides : tuple of int
        Stride per spatial dimension.
    padding : str
        ``same`` or ``valid``.
    channels_last : bool
        Whether ``input_shape`` ends with the channels; the fan-out follows its order.
    groups : int
        Grouped convolution: channel group g feeds filter group g only.

    Returns
    -------
    Synapses
        Per input element, flattened in ``input_shape``'s order.
    """
    kernel = np.asarray(kernel)
    dims = kernel.ndim - 2
    spatial = tuple(input_shape[:dims] if channels_last else input_shape[1:])
    cout = kernel.shape[-1]
    cout_g = cout // groups
    nz = np.concatenate([(kernel[..., g * cout_g:(g + 1) * cout_g] != 0).sum(axis=-1)
                         for g in range(groups)], axis=-1)  # (*taps, in_channels)
    full = np.full(nz.shape, cout_g)
    hits = [_hits(spatial[d], kernel.shape[d], strides[d], padding).astype(np.int64)
            for d in range(dims)]
    fan, dense = (np.zeros((*spatial, nz.shape[-1]), np.int64) for _ in range(2))
    for taps in itertools.product(*(range(k) for k in kernel.shape[:dims])):
        reach = hits[0][taps[0]]
        for d in range(1, dims):
            reach = np.multiply.outer(reach, hits[d][taps[d]])
        fan += reach[..., None] * nz[taps]
        dense += reach[..., None] * full[taps]
    if not channels_last:
        fan, dense = np.moveaxis(fan, -1, 0), np.moveaxis(dense, -1, 0)
    return Synapses(fan.ravel(), dense.ravel(), int(kernel.size),
                    int(kernel.size - np.count_nonzero(kernel)))


@dataclass
class Source:
    """One layer whose output feeds synapses: a converted layer of neurons, or the input.

    Attributes
    ----------
    name : str
        The Keras layer name, or :data:`INPUT`.
    synapses : Synapses
        Its elements' outgoing synapses in the simulated network.
    active_steps : ndarray, shape (n,)
        Per element, time steps with a nonzero output, per test sample (mean over samples).
    spikes : ndarray, shape (n,) or None
        Per neuron, spikes per test sample (mean over samples); None where the values are not
        spikes (the input, a relay node, a non-spiking neuron type): its synaptic operations are
        then MACs at every step its value is nonzero.
    keras_active : ndarray, shape (n,) or None
        Per element, nonzero activations per test sample in the Keras model (its rate network),
        summed over its passes; None when there is no Keras model.
    neurons : bool
        A layer of neurons (its zero outputs count in the activation sparsity); False for the
        input and relay nodes.
    """

    name: str
    synapses: Synapses
    active_steps: np.ndarray
    spikes: np.ndarray | None = None
    keras_active: np.ndarray | None = None
    neurons: bool = True

    @property
    def size(self) -> int:
        """Elements (neurons or inputs)."""
        return len(self.synapses.fan_out)

    @property
    def synops(self) -> float:
        """Effective synaptic operations per sample: Σ spikes × fan-out (ACs) for spikes,
        Σ nonzero steps × fan-out (MACs) for other values."""
        events = self.active_steps if self.spikes is None else self.spikes
        return float(np.dot(events, self.synapses.fan_out))


@dataclass
class Run:
    """What was simulated, for the totals.

    Attributes
    ----------
    steps : int
        Time steps simulated per test sample.
    dt : float
        Simulation step, s.
    keras_passes : int
        Forward passes of the Keras model per sample (1; a sequence model: its time bins).
    param_bytes : int
        The network's parameters (weights and biases) as stored, bytes.
    """

    steps: int
    dt: float
    keras_passes: int = 1
    param_bytes: int = 0


def layer_rows(sources: list[Source], run: Run) -> list[dict[str, Any]]:
    """One row of ``cost.csv`` per source (the input first, if it is one).

    Columns: ``layer``; ``neurons`` (elements); ``fan_out`` (mean nonzero outgoing synapses per
    element); ``spikes_per_sample`` (NaN where the values are not spikes); ``synops_per_sample``
    (effective, as :attr:`Source.synops`); ``activation_sparsity`` (zero outputs over
    element-steps; NaN for the input and relays); ``macs_per_sample`` (the Keras model's dense
    MACs out of the layer) and ``keras_effective_macs_per_sample`` (its nonzero activations ×
    fan-out; NaN without a Keras model).
    """
    rows = []
    for s in sources:
        rows.append({
            "layer": s.name, "neurons": s.size,
            "fan_out": float(s.synapses.fan_out.mean()) if s.size else 0.0,
            "spikes_per_sample": float(s.spikes.sum()) if s.spikes is not None else np.nan,
            "synops_per_sample": s.synops,
            "activation_sparsity": (1.0 - float(s.active_steps.sum()) / (s.size * run.steps)
                                    if s.neurons and s.size else np.nan),
            "macs_per_sample": float(s.synapses.dense.sum() * run.keras_passes),
            "keras_effective_macs_per_sample": (float(np.dot(s.keras_active, s.synapses.fan_out))
                                                if s.keras_active is not None else np.nan)})
    return rows


def totals(sources: list[Source], run: Run, keras: bool = True) -> dict[str, float]:
    """The run's ``cost/*`` metrics from its sources (see docs/cost.md).

    Parameters
    ----------
    sources : list of Source
        The input, the relays and every converted layer.
    run : Run
        Steps, dt, the Keras model's passes and the parameters' bytes.
    keras : bool
        Whether there is a Keras model (its MACs and its devices' energy); the native ensemble
        has none.

    Returns
    -------
    dict
        ``cost/synops_per_sample`` (effective ACs of the spikes + MACs of the values that are not
        spikes, per sample), ``cost/effective_acs_per_sample``, ``cost/effective_macs_per_sample``,
        ``cost/dense_synops_per_sample``, ``cost/spikes_per_sample``, ``cost/neurons``,
        ``cost/activation_sparsity``, ``cost/connection_sparsity``, ``cost/param_bytes``,
        ``cost/readout_time_s``, ``cost/energy_<device>_j`` (J per sample) and, with a Keras
        model, ``cost/keras_macs_per_sample``, ``cost/keras_effective_macs_per_sample``,
        ``cost/keras_activation_sparsity``; per layer ``cost/<layer>/synops_per_sample`` and
        ``cost/<layer>/activation_sparsity``.
    """
    neurons = [s for s in sources if s.neurons]
    n = sum(s.size for s in neurons)
    acs = sum(s.synops for s in sources if s.spikes is not None)
    macs = sum(s.synops for s in sources if s.spikes is None)
    weights = sum(s.synapses.weights for s in sources)
    m = {"cost/synops_per_sample": acs + macs, "cost/effective_acs_per_sample": acs,
         "cost/effective_macs_per_sample": macs,
         "cost/dense_synops_per_sample": float(sum(s.synapses.dense.sum() for s in sources)
                                               * run.steps),
         "cost/spikes_per_sample": float(sum(s.spikes.sum() for s in sources
                                             if s.spikes is not None)),
         "cost/neurons": float(n),
         "cost/activation_sparsity": (1.0 - sum(float(s.active_steps.sum()) for s in neurons)
                                      / (n * run.steps) if n else 0.0),
         "cost/connection_sparsity": (sum(s.synapses.zeros for s in sources) / weights
                                      if weights else 0.0),
         "cost/param_bytes": float(run.param_bytes),
         "cost/readout_time_s": run.steps * run.dt}
    for row in layer_rows(neurons, run):
        m[f"cost/{row['layer']}/synops_per_sample"] = row["synops_per_sample"]
        m[f"cost/{row['layer']}/activation_sparsity"] = row["activation_sparsity"]
    if keras:
        m["cost/keras_macs_per_sample"] = float(
            sum(s.synapses.dense.sum() for s in sources) * run.keras_passes)
        m["cost/keras_effective_macs_per_sample"] = float(sum(
            np.dot(s.keras_active, s.synapses.fan_out) for s in sources
            if s.keras_active is not None))
        active = sum(float(s.keras_active.sum()) for s in neurons if s.keras_active is not None)
        m["cost/keras_activation_sparsity"] = 1.0 - active / (n * run.keras_passes) if n else 0.0
    m.update(energy(m, n, run, keras))
    return m


def energy(m: dict[str, float], neurons: int, run: Run, keras: bool = True) -> dict[str, float]:
    """``cost/energy_<device>_j``, J per sample, as keras-spiking's ``ModelEnergy`` estimates it.

    A non-spiking device runs the Keras model: every MAC (``cost/keras_macs_per_sample``) and
    every neuron once per pass. A spiking device runs the spiking network: its synaptic
    operations (``cost/synops_per_sample``) and every neuron at every time step.
    """
    out = {}
    for name, dev in DEVICES.items():
        if dev.spiking:
            ops, updates = m["cost/synops_per_sample"], neurons * run.steps
        elif keras:
            ops, updates = m["cost/keras_macs_per_sample"], neurons * run.keras_passes
        else:
            continue
        out[f"cost/energy_{name}_j"] = dev.energy_per_synop * ops + dev.energy_per_neuron * updates
    return out


def csv(rows: list[dict[str, Any]]) -> str:
    """``cost.csv``'s text from :func:`layer_rows` (pandas, imported here: a run has it)."""
    import pandas as pd

    return str(pd.DataFrame(rows).to_csv(index=False))


def sources(layers: list[Any], synapses: dict[str, Synapses], node_active: dict[str, np.ndarray],
            sim_time: float, keras_active: dict[str, np.ndarray] | None = None
            ) -> list[Source]:
    """The input, the relay nodes that feed synapses, and every simulated layer as
    :class:`Source`.

    Parameters
    ----------
    layers : list
        The layers as simulated, all their neurons (``framework.simulation.BuiltLayer``: ``name``,
        ``neuron_type`` (its ``spiking``), ``gain``, ``rates`` (n_samples, n) in Hz,
        ``active_steps`` (n,)). A spiking layer's spikes per sample are its rates × ``sim_time``;
        a non-spiking layer has none (its outputs drive MACs).
    synapses : dict
        Name (or :data:`INPUT`) -> outgoing :class:`Synapses`; a layer missing feeds nothing.
    node_active : dict
        :data:`INPUT` (first) and any other node whose values are not spikes (a pooling layer's
        relay) -> per element, steps with a nonzero value per sample; a node without synapses is
        left out.
    sim_time : float
        Simulated time per sample, s.
    keras_active : dict, optional
        Name (or :data:`INPUT`) -> nonzero activations per sample in the Keras model.
    """
    ka = keras_active or {}
    out = [Source(name, synapses[name], np.asarray(active, float), None, ka.get(name),
                  neurons=False)
           for name, active in node_active.items()
           if name == INPUT or synapses[name].dense.any()]
    for layer in layers:
        n = len(layer.gain)
        spiking = bool(getattr(layer.neuron_type, "spiking", False))
        spikes = np.asarray(layer.rates, float).mean(axis=0) * sim_time if spiking else None
        out.append(Source(layer.name, synapses.get(layer.name, no_synapses(n)),
                          np.asarray(layer.active_steps, float), spikes, ka.get(layer.name)))
    return out


def measure(srcs: list[Source], run: Run, keras: bool = True) -> tuple[dict[str, float], str]:
    """The ``cost/*`` metrics (:func:`totals`) and ``cost.csv``'s text (:func:`layer_rows`)."""
    return totals(srcs, run, keras), csv(layer_rows(srcs, run))
