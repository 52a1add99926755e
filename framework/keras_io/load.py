"""Loading a screened Keras model as the tf-keras model NengoDL converts:
``load_model(cfg, data, convert=framework.conversion.convert)``.

Keras 2 files (``.h5``, Keras 2's ``.keras``, SavedModel folders) are read by tf-keras, which is
Keras 2. Keras 3 files (``.keras`` and ``.h5`` written by Keras 3.x with any backend) are read by
Keras 3 itself (``keras.saving.load_model`` in safe mode) and rebuilt layer by layer as a tf-keras
model: each layer from its own config, translated where the two APIs differ (dtype policies, the
input layer's ``batch_shape``; initialisers, regularisers and constraints are left out: the
weights are copied, and regularisers and constraints only shape Keras training), wired as the
stored graph wires it, and every weight copied exactly. A layer setting tf-keras has no counterpart
for is refused with one line naming the layer and the setting.

This package sits below the conversion stage (which imports the model builders that load user
models from here): the trial conversion that proves NengoDL takes a model is handed the
conversion function by the caller, never imported.
"""
from __future__ import annotations

import inspect as pyinspect
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from framework.errors import UserError
from framework.keras_io.screen import (
    IDENTITY_LAYERS,
    KEY,
    TRAINING_ONLY,
    inspect,
    keras_major,
    resolve,
)
from framework.keras_io.sequence import per_step_model

#: arguments tf-keras's Layer takes besides each class's own
LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_shape", "batch_input_shape",
                "batch_size", "input_dim", "weights", "autocast"}
#: Keras 3 config keys that carry nothing the rebuilt (inference-equivalent) layer needs
DROPPED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def known_classes() -> set[str]:
    """Names of tf-keras's built-in layer classes (a stored class outside them is custom code)."""
    import tensorflow as tf

    return {name for name, cls in vars(tf.keras.layers).items()
            if isinstance(cls, type) and issubclass(cls, tf.keras.layers.Layer)}


def convertible_classes() -> set[str]:
    """Names of the Keras layer classes NengoDL's Converter turns into native Nengo objects."""
    from nengo_dl.converter import Converter

    return {c.__name__ for c in Converter.converters if isinstance(c, type)}


def _register_identity_converters() -> None:
    """Convert dropout and noise layers as pass-throughs (they are the identity at inference)."""
    import tensorflow as tf
    from nengo_dl.converter import Converter, LayerConverter

    class ConvertIdentity(LayerConverter):  # type: ignore[misc]  # nengo-dl has no types
        """A layer that is the identity at inference: its input object is its output."""

        def convert(self, node_id: Any) -> Any:
            return self.get_input_obj(node_id)

    for cls_name in IDENTITY_LAYERS:
        cls = getattr(tf.keras.layers, cls_name, None)
        if cls is not None and cls not in Converter.converters:
            Converter.converters[cls] = ConvertIdentity


def expected_input(data: Any) -> tuple[int, ...]:
    """The input shape a model for ``data`` takes: one sample, or one time step of a sequence."""
    return tuple(data.input_shape[1:] if data.sequence else data.input_shape)


def check_shapes(model: Any, data: Any, path: Path) -> None:
    """Refuse a model whose input does not take ``data``'s samples or whose output size is wrong.

    A flat input of the same size as an image sample is accepted (the data is fed flattened in
    C order, which is what ``Flatten`` does).
    """
    where = f"{KEY}: {path.name}"
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"{where} has {len(model.inputs)} inputs and {len(model.outputs)} "
                        f"outputs; spiketune needs one of each")
    got = tuple(model.inputs[0].shape[1:])
    want = expected_input(data)
    what = "one time step of its sequences has" if data.sequence else "its samples have"
    if any(d is None for d in got):
        raise UserError(f"{where} takes inputs of shape {got} with an unspecified size; "
                        f"dataset '{data.name}': {what} shape {want}")
    flat_ok = len(got) == 1 and got[0] == int(np.prod(want))
    if got != want and not flat_ok:
        raise UserError(f"{where} takes inputs of shape {got}, but dataset '{data.name}': {what} "
                        f"shape {want}")
    out = tuple(model.outputs[0].shape[1:])
    if len(out) != 1 or out[0] != data.n_outputs:
        task = f"{data.task} on dataset '{data.name}'"
        need = f"{data.n_outputs} classes" if data.classification else f"{data.n_outputs} targets"
        raise UserError(f"{where} has outputs of shape {out}, but {task} needs {need} "
                        f"(shape ({data.n_outputs},))")


def _strip(model: Any) -> list[str]:
    """Remove what only Keras training uses, and the output softmax; freeze BatchNormalization
    (NengoDL folds a frozen one into the weights and converts no other kind); return what was
    changed, one phrase each."""
    import tensorflow as tf

    changed = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization) and layer.trainable:
            layer.trainable = False
            changed.append(f"{layer.name} (BatchNormalization) frozen with its stored statistics")
        for attr in TRAINING_ONLY:
            if getattr(layer, attr, None) is not None:
                setattr(layer, attr, None)
                changed.append(f"{layer.name}.{attr} dropped (it only shapes Keras training)")
    out = model.get_layer(model.output_names[0])
    if getattr(out, "activation", None) is tf.keras.activations.softmax:
        out.activation = tf.keras.activations.linear  # logits: same arg-max, from_logits loss
        changed.append(f"{out.name}.activation softmax -> linear (logits: the same arg-max)")
    return changed


#: ``framework.conversion.convert``'s signature: ``convert(model, neuron, scale, synapse=,
#: seed=)`` (neuron a Nengo neuron type, scale the firing-rate scale or None)
Convert = Callable[..., Any]


def check_conversion(model: Any, path: Path, convert: Convert, seed: int = 0) -> None:
    """Convert ``model`` once with ReLU neurons; a layer NengoDL refuses becomes a UserError.

    Parameters
    ----------
    model : tf_keras.Model
        The loaded, prepared model.
    path : pathlib.Path
        The file it came from (named in the error).
    convert : callable
        ``framework.conversion.convert`` (passed in: this package sits below the conversion).
    seed : int
        The trial conversion's seed.
    """
    import nengo  # Nengo is heavy: imported only when a model is converted

    try:
        convert(model, nengo.RectifiedLinear(), None, synapse=None, seed=seed)
    except (TypeError, ValueError) as ex:
        text = " ".join(str(ex).split())
        cut = text.find("; set allow_fallback")
        raise UserError(f"{KEY}: {path.name}: NengoDL cannot convert it: "
                        f"{text[:cut] if cut > 0 else text[:300]}") from None


def _keras_error(path: Path, ex: Exception, who: str) -> UserError:
    text = " ".join(str(ex).split())[:200] or type(ex).__name__
    return UserError(f"{KEY}: {who} cannot load {path.name}: {text}")


def _load_keras2(path: Path) -> Any:
    """tf-keras's own loader (Keras 2 files); its errors become one-line UserErrors."""
    import tensorflow as tf

    try:
        return tf.keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as ex:  # Keras raises ValueError, TypeError, OSError, ... on a bad file
        raise _keras_error(path, ex, "Keras") from None


def _load_keras3(path: Path) -> Any:
    """Keras 3's own loader (safe mode, no compile), then :func:`rebuild` as tf-keras."""
    import keras

    try:
        k3 = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as ex:  # noqa: BLE001 - any failure of Keras's loader is the file's
        raise _keras_error(path, ex, f"Keras {keras.__version__}") from None
    return rebuild(k3, path)


def _plain_config(value: Any) -> Any:
    """A Keras 3 config value in tf-keras's terms: dtype policies as their name, serialised
    objects as ``{class_name, config}`` (tf-keras does not know ``module``/``registered_name``)."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return (value.get("config") or {}).get("name", "float32")
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain_config(value["config"])}
        return {k: _plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_config(v) for v in value)
    return value


def _tf_keras_layer(layer: Any, path: Path) -> Any:
    """A tf-keras layer equivalent to the Keras 3 ``layer`` (not yet called, no weights)."""
    import tensorflow as tf

    cls_name = type(layer).__name__
    cls = getattr(tf.keras.layers, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, tf.keras.layers.Layer)):
        raise UserError(f"{KEY}: {path.name}: layer '{layer.name}' ({cls_name}) has no tf-keras "
                        f"counterpart for NengoDL")
    # a class passes **kwargs on to its bases (BatchNormalization to BatchNormalizationBase)
    accepted = LAYER_KWARGS.union(*(pyinspect.signature(vars(c)["__init__"]).parameters
                                    for c in cls.__mro__ if "__init__" in vars(c)))
    config = {}
    for key, value in _plain_config(layer.get_config()).items():
        if key.endswith(DROPPED_SUFFIXES) or key in TRAINING_ONLY:
            continue
        if key in accepted:
            config[key] = value
        elif value not in (None, False, {}, []):
            raise UserError(f"{KEY}: {path.name}: layer '{layer.name}' ({cls_name}) sets {key}="
                            f"{value!r}, which tf-keras (what NengoDL converts) does not have")
    return cls(**config)


def _history(value: Any) -> tuple[str, int, int] | None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return str(name), int(node), int(index)
    return None


def _fill(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """A stored call argument, every Keras 3 tensor reference replaced by its tf-keras tensor."""
    ref = _history(value)
    if ref is not None:
        return tensors[ref]
    if isinstance(value, (list, tuple)):
        return [_fill(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, tensors) for k, v in value.items()}
    return value


def _refs(spec: Any) -> list[tuple[str, int, int]]:
    """``input_layers``/``output_layers`` as a list of ``(name, node, tensor)``."""
    spec = list(spec)
    if spec and isinstance(spec[0], str):
        spec = [spec]
    return [(str(n), int(i), int(t)) for n, i, t in spec]


def rebuild(k3: Any, path: Path) -> Any:
    """The tf-keras model computing what the loaded Keras 3 model ``k3`` computes.

    Parameters
    ----------
    k3 : keras.Model
        A Keras 3 Functional or Sequential model, loaded with its weights.
    path : pathlib.Path
        The file it came from (named in errors).

    Returns
    -------
    tf_keras.Model
        A Functional tf-keras model with the same layer names, graph and weights (copied exactly).
    """
    import tensorflow as tf

    config = k3.get_config()
    if type(k3).__name__ == "Sequential":
        shape = tuple(k3.inputs[0].shape[1:])
        x = inp = tf.keras.Input(shape=shape, name=k3.inputs[0].name.split(":")[0] or None)
        pairs = []
        for layer in k3.layers:
            new = _tf_keras_layer(layer, path)
            x = new(x)
            pairs.append((layer, new))
        model = tf.keras.Model(inp, x, name=k3.name)
    else:
        tensors: dict[tuple[str, int, int], Any] = {}
        pairs = []
        for entry in config["layers"]:
            name = entry["name"]
            layer = k3.get_layer(name)
            if entry["class_name"] == "InputLayer":
                shape = tuple(entry["config"]["batch_shape"][1:])
                tensors[(name, 0, 0)] = tf.keras.Input(shape=shape, name=name,
                                                       dtype=entry["config"].get("dtype"))
                continue
            new = _tf_keras_layer(layer, path)
            for node_index, node in enumerate(entry.get("inbound_nodes") or []):
                args = _fill(node.get("args") or [], tensors)
                kwargs = {k: v for k, v in _fill(node.get("kwargs") or {}, tensors).items()
                          if v is not None}
                outputs = tf.nest.flatten(new(*args, **kwargs))
                for t_index, tensor in enumerate(outputs):
                    tensors[(name, node_index, t_index)] = tensor
            pairs.append((layer, new))
        inputs = [tensors[r] for r in _refs(config["input_layers"])]
        outputs = [tensors[r] for r in _refs(config["output_layers"])]
        model = tf.keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                               outputs[0] if len(outputs) == 1 else outputs, name=k3.name)
    for layer, new in pairs:
        weights = [w.numpy() if hasattr(w, "numpy") else w for w in layer.get_weights()]
        if [w.shape for w in weights] != [tuple(w.shape) for w in new.get_weights()]:
            raise UserError(f"{KEY}: {path.name}: layer '{layer.name}' stores weights of shapes "
                            f"{[w.shape for w in weights]}, tf-keras's {type(new).__name__} "
                            f"has {[tuple(w.shape) for w in new.get_weights()]}")
        new.set_weights(weights)
    return model


def load_keras(path: Path) -> Any:
    """The tf-keras model stored in ``path``, whichever Keras wrote it (see the module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no training configuration found" and the like
        return _load_keras3(path) if keras_major(path) >= 3 else _load_keras2(path)


def load_model(model_cfg: Any, data: Any, convert: Convert | None = None) -> Any:
    """Load, check and prepare the model ``model.path`` names.

    Parameters
    ----------
    model_cfg : framework.models.KerasFileModel
        ``path`` (file or SavedModel folder); ``train`` is read by the training stage.
    data : framework.data.base.Data
        The input shape and output size the model must fit.
    convert : callable, optional
        ``framework.conversion.convert``: given, the model is converted once with ReLU neurons so
        that a layer NengoDL refuses is said now, in one line (:func:`check_conversion`). The
        pipeline always passes it; None skips the trial (a caller that converts right after).

    Returns
    -------
    keras.Model
        The model with its stored weights, output softmax and training-only settings removed.

    Raises
    ------
    UserError
        One line naming ``model.path``: unreadable file, Lambda or custom layer, a layer or
        activation NengoDL cannot convert, wrong input or output shape.
    """
    import tensorflow as tf

    path = resolve(model_cfg)
    inspect(path, data.classification, known_classes(), convertible_classes())
    _register_identity_converters()
    model = load_keras(path)
    if isinstance(model, tf.keras.Sequential):
        # NengoDL converts a Sequential into a new Functional model whose input tensors are not
        # the Sequential's; wrapping the same layers as Functional here keeps one set of tensors
        model = tf.keras.Model(model.inputs, model.outputs, name=model.name)
    model, per_step = per_step_model(model, f"{KEY}: {path.name}")
    check_shapes(model, data, path)
    #: what loading changed, for the run's log (one line each: nothing is changed silently)
    model.spiketune_notes = [f"{KEY}: {path.name}: {change}" for change in _strip(model)]
    model.spiketune_notes += [per_step] if per_step else []
    if convert is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # swap_activations keys the model does not use
            check_conversion(model, path, convert)
    return model
