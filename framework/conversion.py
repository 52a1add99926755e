"""Stage 3, conversion: ``convert(model, neuron_type, ...) -> nengo_dl.Converter``.

The Keras model's ReLU activations become ensembles of the configured neuron type. With
``scale_firing_rates`` s, the Converter multiplies each neuron's gain (and bias) by s and divides
its amplitude by s: the same network function, neurons firing s times faster.
"""
from __future__ import annotations


def convert(model, neuron_type, scale_firing_rates: float | None, synapse: float | None,
            seed: int):
    """Convert ``model``, swapping ReLU for ``neuron_type``.

    Parameters
    ----------
    model : keras.Model
        The network; hidden layers use ``tf.nn.relu``.
    neuron_type : nengo.neurons.NeuronType
        The neuron type replacing ReLU.
    scale_firing_rates : float or None
        Gain multiplier (and amplitude divisor) of every converted layer.
    synapse : float or None
        Lowpass time constant on every connection, s (None: no filtering, as for training).
    seed : int
        The network's seed: Nengo seeds every object from it, and draws one at random when unset.
    """
    import nengo_dl
    import tensorflow as tf

    from .native import register_tf_builders

    register_tf_builders()
    swap = {tf.nn.relu: neuron_type, tf.keras.activations.relu: neuron_type}
    converter = nengo_dl.Converter(model, swap_activations=swap,
                                   scale_firing_rates=scale_firing_rates, synapse=synapse,
                                   allow_fallback=False)
    converter.net.seed = seed
    with converter.net:
        nengo_dl.configure_settings(stateful=False)
    return converter


def neuron_layers(converter, model) -> dict:
    """``keras layer name -> nengo Neurons`` for every layer the conversion turned into neurons.

    Layers that only pass their input on (Flatten, Reshape) map to the Neurons of the
    layer before them in ``converter.layers``; those neurons are listed once, under the layer that
    made them.
    """
    import nengo

    out: dict = {}
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
