"""Stage 3, conversion: ``convert(model, neuron_type, ...) -> nengo_dl.Converter``.

The Keras model's ReLU activations become ensembles of the configured neuron type. With
``scale_firing_rates`` s, the Converter multiplies each neuron's gain (and bias) by s and divides
its amplitude by s: the same network function, neurons firing s times faster.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import nengo
import numpy as np

from framework.errors import UserError
from framework.native import rate_version, register_tf_builders
from framework.schema import bounded


class Normalize(str, enum.Enum):
    """How each converted layer's firing-rate scale is chosen."""

    auto = "auto"  # mean_rate for a loaded model, none for a network trained here as converted
    none = "none"  # every layer at simulation.scale_firing_rates
    percentile = "percentile"  # data-based (Diehl 2015, Rueckauer 2017): per layer, see below
    mean_rate = "mean_rate"  # per layer: its mean rate on the training inputs is mean_rate_hz

    @property
    def data_based(self) -> bool:
        """Whether each layer's scale comes from its activations on the training data."""
        return self in (Normalize.percentile, Normalize.mean_rate)


class Calibrate(str, enum.Enum):
    """What is corrected after conversion, on training samples (framework/calibration.py)."""

    none = "none"  # nothing: the converted network as trained
    bias = "bias"  # Li et al. 2021's light calibration: each neuron's mean error, layer by layer


class InitialVoltage(str, enum.Enum):
    """Each spiking neuron's membrane voltage at the start of a sample, as a fraction of the
    voltage at which it spikes."""

    uniform = "uniform"  # Nengo's default: drawn uniformly from [0, 1)
    half = "half"  # all at 0.5 (Bu et al. 2022: halves the expected first-spike error)
    zero = "zero"  # all at rest: the first spike comes a whole inter-spike interval late


@dataclass
class ConversionConfig:
    """Data-based normalisation: each layer's ``percentile``-th positive ReLU activation on the
    training inputs is made to fire at ``max_rate_hz`` (its own ``scale_firing_rates``)."""

    normalize: Normalize = Normalize.auto
    percentile: float = bounded(99.9, gt=0.0, le=100.0)  # of a layer's positive activations, %
    # rate that activation is mapped to, Hz (benchmarks/conversion_gap.py: 400 keeps spiking ReLU
    # within 1 point of the Keras model on digits and reach in 100 steps; 100-200 lose 1-12)
    max_rate_hz: float = bounded(400.0, gt=0.0)
    # normalize=mean_rate: each layer's mean rate over its neurons and the training inputs, Hz
    # (benchmarks/frontier.py: 100 keeps digits and EMG within 1 point of Keras in 50 steps)
    mean_rate_hz: float = bounded(100.0, gt=0.0)
    # per-layer scale_firing_rates (layer name -> scale); filled by normalize=percentile, or by hand
    layer_scales: dict[str, float] = field(default_factory=dict)
    # bias: after training, shift each neuron's input so that its mean spiking output on training
    # samples matches the rate network's, one layer after the other (Li et al. 2021)
    calibrate: Calibrate = Calibrate.none
    # training samples the calibration and a fitted read-out (simulation.readout) simulate
    calibration_samples: int = bounded(256, ge=1)
    initial_voltage: InitialVoltage = InitialVoltage.uniform  # at each sample's start


def unused(settings: dict[str, str]) -> set[str]:
    """Which of a run's dotted config keys (``settings``: key -> value as logged) its conversion
    did not use: a searched setting that had no effect, so a label need not name it."""
    def value(key: str) -> str:
        return str(settings.get(key, "")).rsplit(".", 1)[-1]

    normalize, out = value("conversion.normalize"), set()
    if "conversion.normalize" in settings:  # else: set elsewhere, unknown here
        if normalize in (Normalize.percentile.value, Normalize.mean_rate.value):
            out.add("simulation.scale_firing_rates")  # each layer's scale came from the data
        if normalize != Normalize.percentile.value:
            out.update({"conversion.max_rate_hz", "conversion.percentile"})
        if normalize != Normalize.mean_rate.value:
            out.add("conversion.mean_rate_hz")
    if ("conversion.calibrate" in settings and value("conversion.calibrate") != Calibrate.bias.value
            and value("simulation.readout") not in ("fitted", "auto")):  # a fitted read-out's too
        out.add("conversion.calibration_samples")
    return out & set(settings)


#: the membrane voltage each InitialVoltage starts at (fractions of the spiking voltage)
_VOLTAGE = {InitialVoltage.half: 0.5, InitialVoltage.zero: 0.0}


@dataclass
class Conversion:
    """How a Keras model becomes a spiking network: the same settings for training, the rate
    evaluation and the spiking simulation.

    Attributes
    ----------
    neuron_type : nengo.neurons.NeuronType
        The type replacing ReLU.
    scale : float
        ``simulation.scale_firing_rates``: every layer's gain multiplier (and amplitude divisor).
    layer_scales : dict
        Layer name -> its own scale (``conversion.layer_scales``); empty: ``scale`` everywhere.
    seed : int
        The network's seed.
    calibration : dict
        Layer name -> each neuron's input shift, in the layer's activation units (the Keras
        layer's pre-activation; Nengo multiplies it by the neuron's gain), from
        :func:`framework.calibration.calibrate`; empty: none.
    initial_voltage : InitialVoltage
        The spiking neurons' voltage at the start of each sample.
    """

    neuron_type: Any
    scale: float
    layer_scales: dict[str, float]
    seed: int
    calibration: dict[str, np.ndarray] = field(default_factory=dict)
    initial_voltage: InitialVoltage = InitialVoltage.uniform

    def scales(self, model: Any) -> float | dict[Any, float]:
        """What NengoDL's ``scale_firing_rates`` gets: the per-layer scales as a dict of the
        model's layers when set, else the one scale."""
        if self.layer_scales:
            return {model.get_layer(name): float(s) for name, s in self.layer_scales.items()}
        return float(self.scale)

    def convert(self, model: Any, synapse: float | None, rate: bool = False) -> Any:
        """:func:`convert` with these settings (``rate``: the neurons' rate versions)."""
        neuron_type = rate_version(self.neuron_type) if rate else self.neuron_type
        if not rate and self.initial_voltage in _VOLTAGE and "voltage" in neuron_type.state:
            # Nengo's parameters are read-only: the same type again, with its initial voltage
            kwargs = {p.name: getattr(neuron_type, p.name) for p in neuron_type._params
                      if p.name != "initial_state"}
            neuron_type = type(neuron_type)(**kwargs, initial_state={
                "voltage": nengo.dists.Choice([_VOLTAGE[self.initial_voltage]])})
        return convert(model, neuron_type, self.scales(model), synapse, self.seed)

    def simulator(self, converter: Any, model: Any, params: Any, minibatch_size: int,
                  rate: bool = False) -> Any:
        """A NengoDL Simulator of ``converter`` (from :meth:`convert`, probes added) holding the
        trained ``params``; with a ``calibration``, the spiking network's neurons get their input
        shifts.

        The shifts are connections the saved parameters do not have, so the parameters are loaded
        into the network as converted, written back into it (``freeze_params``), and the network
        with its shifts is built again: the logged parameters stay those that were trained.
        """
        import nengo_dl

        def build(size: int) -> Any:
            return nengo_dl.Simulator(converter.net, minibatch_size=size, seed=self.seed,
                                      progress_bar=False)

        if self.calibration and not rate:
            with build(1) as loaded:
                loaded.load_params(str(params))
                loaded.freeze_params(converter.net)
            shift_inputs(converter, model, self.calibration)
            return build(minibatch_size)
        sim = build(minibatch_size)
        sim.load_params(str(params))
        return sim


def shift_inputs(converter: Any, model: Any, shifts: dict[str, np.ndarray]) -> None:
    """Add a constant input to each neuron of the named layers: a connection from a constant
    node. Nengo multiplies a connection into neurons by their gain, so ``shifts`` are in
    activation units.

    The node and connections live in a subnetwork of their own: Nengo seeds a network's
    connections before its ensembles and its subnetworks after them, so the ensembles keep the
    seeds (and initial voltages) they have without the shifts. A short read-out window depends on
    those voltages more than on a shift.
    """
    layers = neuron_layers(converter, model)
    with converter.net, nengo.Network(label="calibration"):
        one = nengo.Node([1.0], label="calibration.one")
        for name, shift in shifts.items():
            nengo.Connection(one, layers[name], synapse=None,
                             transform=np.asarray(shift, float)[:, None])


def normalise(model: Any, x_train: np.ndarray, sequence: bool,
              neuron_type: nengo.neurons.NeuronType, conv_cfg: ConversionConfig
              ) -> dict[str, tuple[float, float]]:
    """Data-based per-layer normalisation (Diehl et al. 2015; Rueckauer et al. 2017).

    Each converted ReLU layer's activations on the training inputs are computed in Keras. With
    ``percentile``, the layer's scale is chosen so that its ``percentile``-th positive activation
    a_p drives the neuron type to ``max_rate_hz``: scale = J* / a_p, where J* is the input current
    at which the type fires at that rate (Nengo's ``gain_bias`` for an x-intercept of 0:
    J* = gain + bias); for ReLU-family neurons J* is the rate itself. With ``mean_rate``, the
    scale at which the layer's mean rate is ``mean_rate_hz`` (:func:`mean_rate_scale`).

    Returns
    -------
    dict
        ``layer name -> (scale, a)``: a_p (percentile) or the mean activation (mean_rate).
    """
    import tensorflow as tf

    layers = hidden_layers(model)
    probe = tf.keras.Model(model.inputs, [layer.output for layer in layers])
    x = x_train.reshape(-1, *x_train.shape[2:]) if sequence else x_train
    acts = probe.predict(x, verbose=0, batch_size=512)
    acts = acts if isinstance(acts, list) else [acts]
    if conv_cfg.normalize == Normalize.mean_rate:
        return {layer.name: mean_rate_scale(neuron_type, np.ravel(a), conv_cfg.mean_rate_hz)
                for layer, a in zip(layers, acts)}
    gain, bias = neuron_type.gain_bias(np.array([conv_cfg.max_rate_hz]), np.array([0.0]))
    j_star = float(gain[0] + bias[0])
    out = {}
    for layer, a in zip(layers, acts):
        positive = a[a > 0]
        a_p = float(np.percentile(positive, conv_cfg.percentile)) if positive.size else 0.0
        out[layer.name] = (j_star / a_p if a_p > 0 else 1.0, a_p)
    return out


def mean_rate_scale(neuron_type: nengo.neurons.NeuronType, acts: np.ndarray,
                    target_hz: float) -> tuple[float, float]:
    """The scale s at which neurons driven by J = s·a (``acts``: one layer's ReLU activations over
    its neurons and the training inputs) fire at ``target_hz`` on average, and the mean
    activation. ReLU types: s = target / mean(a); others (their rate curve bends and saturates):
    bisection in log s on the type's own ``rates``, up to the highest mean the type can reach."""
    mean = float(acts.mean()) if acts.size else 0.0
    if mean <= 0:
        return 1.0, mean
    if isinstance(neuron_type, (nengo.RectifiedLinear, nengo.SpikingRectifiedLinear)):
        return target_hz / mean, mean
    sample = acts[:: max(1, acts.size // 20000)]  # a mean over 20,000 values is exact enough

    def rate(log_s: float) -> float:  # one neuron of gain s, evaluated at every activation
        return float(neuron_type.rates(sample[:, None], np.array([np.exp(log_s)]),
                                       np.zeros(1)).mean())

    lo, hi = np.log(1e-3 / mean), np.log(1e6 / mean)
    if rate(hi) < target_hz:  # the LIF family saturates at 1/tau_ref
        raise UserError(f"conversion.mean_rate_hz: {target_hz:g} Hz is more than "
                        f"{type(neuron_type).__name__} neurons fire on average at any scale "
                        f"(at most {rate(hi):.4g} Hz on these activations)")
    for _ in range(60):  # the mean rate grows with s: halve the bracket 60 times
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) < target_hz else (lo, mid)
    return float(np.exp(hi)), mean


def convert(model: Any, neuron_type: nengo.neurons.NeuronType,
            scale_firing_rates: float | dict[Any, float] | None, synapse: float | None,
            seed: int) -> Any:
    """Convert ``model``, swapping ReLU for ``neuron_type``.

    Parameters
    ----------
    model : keras.Model
        The network; hidden layers use ``tf.nn.relu``.
    neuron_type : nengo.neurons.NeuronType
        The neuron type replacing ReLU.
    scale_firing_rates : float, dict or None
        Gain multiplier (and amplitude divisor) of every converted layer, or per layer
        (:func:`scales`).
    synapse : float or None
        Lowpass time constant on every connection, s (None: no filtering, as for training).
    seed : int
        The network's seed: Nengo seeds every object from it, and draws one at random when unset.
    """
    import nengo_dl
    import tensorflow as tf

    register_tf_builders()
    swap = {tf.nn.relu: neuron_type, tf.keras.activations.relu: neuron_type}
    converter = nengo_dl.Converter(model, swap_activations=swap,
                                   scale_firing_rates=scale_firing_rates, synapse=synapse,
                                   allow_fallback=False)
    converter.net.seed = seed
    with converter.net:
        nengo_dl.configure_settings(stateful=False)
    return converter


def neuron_layers(converter: Any, model: Any) -> dict[str, Any]:
    """``keras layer name -> nengo Neurons`` for every layer the conversion turned into neurons.

    Layers that only pass their input on (Flatten, Reshape) map to the Neurons of the
    layer before them in ``converter.layers``; those neurons are listed once, under the layer that
    made them.
    """
    out: dict[str, Any] = {}
    for layer in model.layers:
        obj = converter.layers.get(layer) if hasattr(converter.layers, "get") else None
        if obj is None:
            try:
                obj = converter.layers[layer]
            except KeyError:
                continue
        # Neurons compare equal when they are the same ensemble's
        if isinstance(obj, nengo.ensemble.Neurons) and obj not in out.values():
            out[layer.name] = obj
    return out


def hidden_layers(model: Any) -> list[Any]:
    """The Keras layers whose activation the conversion turns into neurons, in order."""
    import tensorflow as tf

    relus = (tf.nn.relu, tf.keras.activations.relu)
    return [layer for layer in model.layers if getattr(layer, "activation", None) in relus
            or isinstance(layer, tf.keras.layers.ReLU)]
