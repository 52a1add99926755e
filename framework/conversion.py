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

from framework.native import rate_version, register_tf_builders
from framework.schema import bounded


class Normalize(str, enum.Enum):
    """How each converted layer's firing-rate scale is chosen."""

    auto = "auto"  # percentile for a loaded model, none for a network trained here as converted
    none = "none"  # every layer at simulation.scale_firing_rates
    percentile = "percentile"  # data-based (Diehl 2015, Rueckauer 2017): per layer, see below


@dataclass
class ConversionConfig:
    """Data-based normalisation: each layer's ``percentile``-th positive ReLU activation on the
    training inputs is made to fire at ``max_rate_hz`` (its own ``scale_firing_rates``)."""

    normalize: Normalize = Normalize.auto
    percentile: float = bounded(99.9, gt=0.0, le=100.0)  # of a layer's positive activations, %
    # rate that activation is mapped to, Hz (benchmarks/conversion_gap.py: 400 keeps spiking ReLU
    # within 1 point of the Keras model on digits and reach in 100 steps; 100-200 lose 1-12)
    max_rate_hz: float = bounded(400.0, gt=0.0)
    # per-layer scale_firing_rates (layer name -> scale); filled by normalize=percentile, or by hand
    layer_scales: dict[str, float] = field(default_factory=dict)


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
    """

    neuron_type: Any
    scale: float
    layer_scales: dict[str, float]
    seed: int

    def scales(self, model: Any) -> float | dict[Any, float]:
        """What NengoDL's ``scale_firing_rates`` gets: the per-layer scales as a dict of the
        model's layers when set, else the one scale."""
        if self.layer_scales:
            return {model.get_layer(name): float(s) for name, s in self.layer_scales.items()}
        return float(self.scale)

    def convert(self, model: Any, synapse: float | None, rate: bool = False) -> Any:
        """:func:`convert` with these settings (``rate``: the neurons' rate versions)."""
        neuron_type = rate_version(self.neuron_type) if rate else self.neuron_type
        return convert(model, neuron_type, self.scales(model), synapse, self.seed)


def normalise(model: Any, x_train: np.ndarray, sequence: bool,
              neuron_type: nengo.neurons.NeuronType, conv_cfg: ConversionConfig
              ) -> dict[str, tuple[float, float]]:
    """Data-based per-layer normalisation (Diehl et al. 2015; Rueckauer et al. 2017).

    Each converted ReLU layer's activations on the training inputs are computed in Keras; the
    layer's scale is chosen so that its ``percentile``-th positive activation a_p drives the neuron
    type to ``max_rate_hz``: scale = J* / a_p, where J* is the input current at which the type
    fires at that rate (Nengo's ``gain_bias`` for an x-intercept of 0: J* = gain + bias). For
    ReLU-family neurons J* is the rate itself, so a_p fires at exactly ``max_rate_hz``.

    Returns
    -------
    dict
        ``layer name -> (scale, a_p)``.
    """
    import tensorflow as tf

    gain, bias = neuron_type.gain_bias(np.array([conv_cfg.max_rate_hz]), np.array([0.0]))
    j_star = float(gain[0] + bias[0])
    layers = hidden_layers(model)
    probe = tf.keras.Model(model.inputs, [layer.output for layer in layers])
    x = x_train.reshape(-1, *x_train.shape[2:]) if sequence else x_train
    acts = probe.predict(x, verbose=0, batch_size=512)
    acts = acts if isinstance(acts, list) else [acts]
    out = {}
    for layer, a in zip(layers, acts):
        positive = a[a > 0]
        a_p = float(np.percentile(positive, conv_cfg.percentile)) if positive.size else 0.0
        out[layer.name] = (j_star / a_p if a_p > 0 else 1.0, a_p)
    return out


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
