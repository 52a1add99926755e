"""Stage 2, model: the ``model`` schemas and ``build(model_cfg, data, seed) -> keras.Model``.

Hidden layers use ``tf.nn.relu``, which the conversion stage swaps for the configured neuron type;
the output layer is linear (logits for classification). Native Nengo models (``ensemble``) are not
Keras models; :mod:`framework.networks.ensemble` holds their schema and runs them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from framework.conversion import convert
from framework.data.base import Data
from framework.errors import UserError
from framework.keras_io import load_model
from framework.registry import Registry
from framework.schema import MISSING, bounded, option


@dataclass
class ModelConfig:
    """The ``model`` node every option shares."""

    #: a model the user trained elsewhere and saved: its own score is reported, its inputs kept
    loaded: ClassVar[bool] = False
    #: whether the network runs on ``dataset`` (the ensemble makes its own ramp of inputs)
    reads_data: ClassVar[bool] = True
    #: fields holding a user's path, taken from ``paths.data`` when relative
    path_fields: ClassVar[tuple[str, ...]] = ()

    name: str = MISSING

    def check(self) -> None:
        """Refuse values that are each in range but do not make a model (one line naming the
        key)."""

    def start_params(self) -> str:
        """NengoDL parameters (``sim.save_params`` .npz) the network starts from; "" for none."""
        return ""


#: the ``model`` options, by name
MODELS: Registry[type[ModelConfig]] = Registry("model")


@dataclass
class KerasModelConfig(ModelConfig):
    """A Keras network that NengoDL converts (run by :mod:`framework.networks.keras`)."""

    path_fields: ClassVar[tuple[str, ...]] = ("params",)

    params: str = ""  # NengoDL parameters (sim.save_params .npz) to start from; empty: none

    def build(self, data: Data) -> Any:
        """The Keras model for ``data``'s input and output shapes."""
        raise NotImplementedError

    def start_params(self) -> str:
        return self.params

    def trains(self) -> bool:
        """Whether the network is trained in NengoDL (a saved model only when asked)."""
        return True


def build(model_cfg: KerasModelConfig, data: Data, seed: int) -> Any:
    """The Keras model the ``model`` node describes, for ``data``'s input and output shapes."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    return model_cfg.build(data)


@option(MODELS)
@dataclass
class DenseModel(KerasModelConfig):
    """Fully connected network: hidden layers with the neuron non-linearity, a linear output."""

    name: str = "dense"
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # neurons per hidden layer

    def check(self) -> None:
        if not self.hidden:
            raise UserError("model.hidden: needs at least one hidden layer")
        for i, n in enumerate(self.hidden):
            if n < 1:
                raise UserError(f"model.hidden[{i}]: a layer needs at least 1 neuron, got {n}")

    def build(self, data: Data) -> Any:
        return dense(self, data)


@option(MODELS)
@dataclass
class ConvModel(KerasModelConfig):
    """Small convolutional network for images (digits)."""

    name: str = "conv"
    filters: list[int] = field(default_factory=lambda: [16, 32])  # channels per 3×3 conv layer
    kernel_size: int = bounded(3, ge=1)  # conv kernel side, pixels
    dense: int = bounded(64, ge=1)  # neurons in the dense layer after the convolutions

    def check(self) -> None:
        if not self.filters:
            raise UserError("model.filters: needs at least one convolutional layer")

    def build(self, data: Data) -> Any:
        return conv(self, data)


@option(MODELS)
@dataclass
class KerasFileModel(KerasModelConfig):
    """A user's saved Keras model (.keras, .h5 or a SavedModel folder), loaded in safe mode."""

    loaded: ClassVar[bool] = True
    path_fields: ClassVar[tuple[str, ...]] = ("path", "params")

    name: str = "keras_file"
    path: str = ""  # model file or SavedModel folder; relative paths are from the launch directory
    train: bool = False  # True: train further in NengoDL; False: evaluate the weights as they are
    # NengoDL parameters (sim.save_params .npz) of this network converted at
    # simulation.scale_firing_rates, e.g. trained in NengoDL, loaded over the file's weights;
    # empty: the file's own weights
    params: str = ""

    def build(self, data: Data) -> Any:
        """A user's saved model, loaded in safe mode (see :mod:`framework.keras_io`)."""
        return load_model(self, data, convert=convert)

    def trains(self) -> bool:
        return self.train


def _input_shape(data: Data) -> tuple[int, ...]:
    # Sequences (trials × time × channels) are fed to NengoDL one time step per step: the Keras
    # model sees one step's channels.
    return data.input_shape[1:] if data.sequence else data.input_shape


def dense(cfg: DenseModel, data: Data) -> Any:
    """Input → ``hidden`` ReLU layers → linear output (flattening image inputs first)."""
    import tensorflow as tf

    inp = tf.keras.Input(shape=_input_shape(data), name="input")
    h = tf.keras.layers.Flatten(name="flatten")(inp) if len(_input_shape(data)) > 1 else inp
    for i, n in enumerate(cfg.hidden):
        h = tf.keras.layers.Dense(n, activation=tf.nn.relu, name=f"hidden{i}")(h)
    out = tf.keras.layers.Dense(data.n_outputs, name="output")(h)
    return tf.keras.Model(inp, out, name="dense")


def conv(cfg: ConvModel, data: Data) -> Any:
    """Conv (3×3, ReLU) layers, the second and later with stride 2, a dense ReLU layer, a linear
    output."""
    import tensorflow as tf

    shape = _input_shape(data)
    if len(shape) == 1:  # flat features: treat them as a 1-row image
        shape = (1, shape[0], 1)
    inp = tf.keras.Input(shape=data.input_shape if len(data.input_shape) == 3 else shape,
                         name="input")
    h = inp
    for i, f in enumerate(cfg.filters):
        h = tf.keras.layers.Conv2D(f, cfg.kernel_size, strides=1 if i == 0 else 2, padding="same",
                                   activation=tf.nn.relu, name=f"conv{i}")(h)
    h = tf.keras.layers.Flatten(name="flatten")(h)
    h = tf.keras.layers.Dense(cfg.dense, activation=tf.nn.relu, name="hidden")(h)
    out = tf.keras.layers.Dense(data.n_outputs, name="output")(h)
    return tf.keras.Model(inp, out, name="conv")
