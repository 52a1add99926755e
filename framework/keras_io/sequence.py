"""A whole-trial sequence model as the per-step network a spiking simulation runs.

A common EMG model takes the whole trial at once: ``Input((T, C))`` → Dense layers applied to
every time step → ``GlobalAveragePooling1D`` over time → linear Dense layers. NengoDL cannot convert
Dense layers over a time axis (it would build T × units neurons). But the pooled mean commutes with
the linear layers after it: out = W·mean_t(h_t) + b = mean_t(W·h_t + b). So the same model is the
per-step network ``Input((C,))`` → the same Dense layers → the same linear layers, fed one time bin
per step and read out as the mean over the whole trial, which is what spiketune's sequence
read-out does (``simulation.readout_steps`` = the whole trial for sequences).

A nonlinear layer after the pooling does not commute with the mean and is refused, naming what to
use instead.
"""
from __future__ import annotations

from typing import Any

from framework.errors import UserError

#: the pooling layer that makes a whole-trial model a per-step one
POOL = "GlobalAveragePooling1D"
#: layers that act on each time step alone (and pass through unchanged in the per-step model)
PER_STEP = ("Dense", "Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "Activation", "ReLU")


def per_step_shape(layer_classes: list[str], shape: tuple[int | None, ...] | None
                   ) -> tuple[int | None, ...] | None:
    """The input shape a loaded model takes per time step: ``shape`` without its time axis when
    the model pools over time with :data:`POOL`, else ``shape`` as it is (no TensorFlow)."""
    if shape is not None and len(shape) == 2 and POOL in layer_classes:
        return tuple(shape[1:])
    return shape


def per_step_model(model: Any, where: str) -> tuple[Any, str | None]:
    """``model`` rebuilt as its per-step network when it pools over time (see the module's
    docstring), with a line saying so; else ``(model, None)``.

    Raises
    ------
    UserError
        Naming ``where`` (``model.path: <file>``): a layer before the pooling that mixes time
        steps, or a nonlinear layer after it.
    """
    import tensorflow as tf

    layers = [layer for layer in model.layers if not isinstance(layer, tf.keras.layers.InputLayer)]
    names = [type(layer).__name__ for layer in layers]
    if POOL not in names or len(model.inputs[0].shape) != 3:
        return model, None
    cut = names.index(POOL)
    before, after = layers[:cut], layers[cut + 1:]
    for layer in before:
        if type(layer).__name__ not in PER_STEP:
            raise UserError(f"{where}: layer '{layer.name}' ({type(layer).__name__}) before "
                            f"{POOL} mixes time steps; a whole-trial model converts only with "
                            f"per-step Dense layers before the pooling")
    for layer in after:
        act = getattr(layer, "activation", None)
        if type(layer).__name__ not in PER_STEP or (act is not None and act.__name__ not in
                                                   ("linear", "softmax")):
            raise UserError(f"{where}: layer '{layer.name}' after {POOL} is nonlinear, so the "
                            f"mean over time cannot move past it; put the hidden layers before "
                            f"the pooling and end with linear Dense layers")
    x = inp = tf.keras.Input(tuple(model.inputs[0].shape[2:]), name=model.inputs[0].name
                             .split(":")[0])
    # copies with the same weights: a layer shared with the original model keeps its first
    # graph, which NengoDL's converter walks
    for layer in before + after:
        clone = type(layer).from_config(layer.get_config())
        x = clone(x)
        clone.set_weights(layer.get_weights())
    rebuilt = tf.keras.Model(inp, x, name=model.name)
    steps = int(model.inputs[0].shape[1])
    return rebuilt, (f"{where}: the model averages {steps} time steps ({POOL}); it runs as its "
                     f"per-step network, one time bin per step, read out as the mean over the "
                     f"whole trial (the same output: the layers after the pooling are linear)")
