"""A user's saved Keras model, loaded without running any code it carries: ``load_model(cfg, data)``.

Keras 2.12 runs a ``Lambda`` layer's marshalled Python (and a ``TFOpLambda``'s named TensorFlow
function) while it rebuilds a model from ``.h5`` or a SavedModel; ``safe_mode`` only guards the zip
``.keras`` format. So the file is inspected *before* Keras reads it:

* zip ``.keras`` (``save_format="keras_v3"``): the archive's ``config.json``;
* HDF5 (``.h5``, and the ``.keras`` files Keras 2.12 writes by default): the ``model_config``
  attribute, read with h5py;
* SavedModel folder: every node of ``keras_metadata.pb`` (a folder without one is not a Keras
  model and is refused).

Every layer must be a built-in Keras layer that NengoDL's Converter converts natively (or a
dropout/noise layer, the identity at inference), naming no module outside Keras (the zip format
imports the modules its config names); hidden activations must be ``relu`` (swapped for
the configured neuron type) or linear; a ``softmax`` on the output of a classifier is removed (the
arg-max, hence the accuracy, is unchanged; training and read-out use logits). Each refusal is one
line naming ``model.path``, the layer and why. Only then is the model loaded (``compile=False``, so
no custom losses or metrics are deserialised; ``safe_mode=True``), its input and output shapes are
checked against the data, regularisers and constraints (Keras training only, refused by the
Converter) are dropped, and a trial conversion confirms NengoDL accepts every layer's settings.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from .errors import UserError, existing_path

KEY = "model.path"
#: layers whose stored config names code that Keras runs when it rebuilds the model
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
#: containers that hold other layers (only as the top-level model)
MODEL_CLASSES = {"Functional", "Model", "Sequential"}
#: the identity at inference; converted as a pass-through (no dropout during NengoDL training)
IDENTITY_LAYERS = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                   "GaussianDropout", "GaussianNoise", "AlphaDropout"}
#: activations the conversion handles: relu becomes the neuron type, linear a pass-through
HIDDEN_ACTIVATIONS = {"relu", "linear"}
#: config fields that only shape training in Keras; NengoDL refuses them, and they do not change
#: what the trained network computes, so they are dropped after loading
TRAINING_ONLY = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                 "kernel_constraint", "bias_constraint")
SUFFIXES = (".keras", ".h5", ".hdf5")


def resolve(model_cfg) -> Path:
    """The model file or SavedModel folder ``model.path`` names (relative: from the launch dir)."""
    path = existing_path(model_cfg.path, KEY)
    if path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{KEY}: {path.name} is not a saved Keras model (.keras, .h5 or a "
                        f"SavedModel folder)")
    return path


def sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes, or of a folder's files (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def file_tags(model_cfg) -> dict[str, str]:
    """MLflow tags identifying the loaded file: ``model_file`` (absolute path), ``model_sha256``."""
    path = resolve(model_cfg)
    return {"model_file": str(path), "model_sha256": sha256(path)}


# ------------------------------------------------------------------------------------ inspection
def stored_format(path: Path) -> str:
    """``savedmodel``, ``keras_v3`` (zip) or ``h5``, from the content, not the suffix."""
    if path.is_dir():
        return "savedmodel"
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return "h5"
    if zipfile.is_zipfile(path):
        return "keras_v3"
    raise UserError(f"{KEY}: {path.name} is neither an HDF5 nor a zip Keras file")


def stored_config(path: Path) -> tuple[dict, list[dict]]:
    """The model's stored config, and (SavedModel only) the metadata of every saved layer.

    Reads the file as data only: nothing it contains is deserialised into Keras objects.
    """
    fmt = stored_format(path)
    try:
        if fmt == "keras_v3":
            with zipfile.ZipFile(path) as z:
                if "config.json" not in z.namelist():
                    raise UserError(f"{KEY}: {path.name} has no config.json (not a Keras model)")
                return json.loads(z.read("config.json")), []
        if fmt == "h5":
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
            if raw is None:
                raise UserError(f"{KEY}: {path.name} holds weights only (no model_config); save "
                                f"the whole model with model.save()")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw), []
        meta_file = path / "keras_metadata.pb"
        if not meta_file.is_file():
            raise UserError(f"{KEY}: {path.name} is not a Keras SavedModel (no keras_metadata.pb)")
        from keras.protobuf import saved_metadata_pb2

        meta = saved_metadata_pb2.SavedMetadata()
        meta.ParseFromString(meta_file.read_bytes())
        # metrics are saved too (as Mean, MeanMetricWrapper, ...); only layers are rebuilt
        nodes = [json.loads(n.metadata) for n in meta.nodes
                 if n.metadata and n.identifier != "_tf_keras_metric"]
        root = next((n for n in meta.nodes if n.node_path == "root"), None)
        if root is None:
            raise UserError(f"{KEY}: {path.name}/keras_metadata.pb has no root model")
        top = json.loads(root.metadata)
        return {"class_name": top.get("class_name"), "config": top.get("config") or {}}, nodes
    except UserError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as ex:
        raise UserError(f"{KEY}: cannot read {path.name}: {' '.join(str(ex).split())[:200]}") \
            from None
    except Exception as ex:  # protobuf's DecodeError and h5py's errors have no common base
        raise UserError(f"{KEY}: cannot read {path.name}: {type(ex).__name__}: "
                        f"{' '.join(str(ex).split())[:200]}") from None


def stored_layers(config: dict, path: Path) -> tuple[list[tuple[str, str, dict]], str]:
    """``(class_name, layer name, stored entry)`` of every layer of a stored top-level model (the
    entry holds ``config`` and, in the zip format, ``module``), and the name of its output layer."""
    cls = config.get("class_name")
    if cls not in MODEL_CLASSES:
        raise UserError(f"{KEY}: {path.name} stores a {cls!r}, not a Keras Functional or "
                        f"Sequential model")
    module = config.get("module")
    if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
        raise UserError(f"{KEY}: {path.name}: the model refers to code in module '{module}', "
                        f"which spiketune does not import")
    body = config.get("config") or {}
    out = []
    for entry in body.get("layers") or []:
        lcfg = entry.get("config") or {}
        name = str(entry.get("name") or lcfg.get("name") or "?")
        out.append((str(entry.get("class_name")), name, entry))
    if not out:
        raise UserError(f"{KEY}: {path.name} stores a model without layers")
    outputs = body.get("output_layers") or []  # Functional: [[name, node, tensor], ...]
    if outputs and isinstance(outputs[0], list):
        return out, str(outputs[0][0])
    return out, out[-1][1]  # Sequential: the last layer


def foreign_module(obj) -> str | None:
    """The first module outside Keras that a stored object (or anything nested in it) names.

    The zip format stores ``{"module": ..., "class_name": ...}`` for layers, initialisers,
    regularisers and functions, and Keras imports that module to rebuild the object: an
    initialiser naming ``os`` would be looked up and called.
    """
    if isinstance(obj, dict):
        module = obj.get("module")
        if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
            return module
        children = obj.values()
    elif isinstance(obj, list):
        children = obj
    else:
        return None
    for child in children:
        found = foreign_module(child)
        if found:
            return found
    return None


def _registered_name(cls_name: str) -> str:
    """The Keras class a stored class name resolves to without custom objects, or ''."""
    import tensorflow as tf

    found = getattr(tf.keras.layers, cls_name, None)
    return cls_name if isinstance(found, type) and issubclass(found, tf.keras.layers.Layer) else ""


def convertible_classes() -> set[str]:
    """Names of the Keras layer classes NengoDL's Converter turns into native Nengo objects."""
    from nengo_dl.converter import Converter

    return {c.__name__ for c in Converter.converters if isinstance(c, type)}


def check_layers(layers: list[tuple[str, str, dict]], output: str, path: Path,
                 classification: bool, extra_classes: list[tuple[str, str]] = ()) -> None:
    """Refuse code-carrying, custom, unconvertible and unsupported-activation layers.

    Parameters
    ----------
    layers : list of (class_name, name, stored entry)
        The stored top-level layers, input first (:func:`stored_layers`).
    output : str
        Name of the output layer.
    path : pathlib.Path
        The model file (named in errors).
    classification : bool
        Whether a ``softmax`` output is acceptable (it is dropped: logits keep the arg-max).
    extra_classes : list of (class_name, name)
        Further stored objects to screen for code (every layer node of a SavedModel).
    """
    where = f"{KEY}: {path.name}:"
    entries = {n: e for _, n, e in layers}
    for cls, name in [(c, n) for c, n, _ in layers] + list(extra_classes):
        if cls in CODE_LAYERS:
            raise UserError(f"{where} layer '{name}' is a {cls} layer, whose Python code would "
                            f"run on loading; spiketune refuses it (rebuild the model with "
                            f"built-in layers)")
        module = foreign_module(entries.get(name))
        if module:
            raise UserError(f"{where} layer '{name}' refers to code in module '{module}', which "
                            f"spiketune does not import; use built-in Keras layers and settings")
        if not _registered_name(cls) and cls not in MODEL_CLASSES:
            raise UserError(f"{where} layer '{name}' has the custom class {cls!r}, whose code "
                            f"spiketune does not run; use built-in Keras layers")
    convertible = convertible_classes() | IDENTITY_LAYERS
    for cls, name, entry in layers:
        lcfg = entry.get("config") or {}
        if cls in MODEL_CLASSES:
            raise UserError(f"{where} layer '{name}' is a nested model; save a model whose "
                            f"layers are all at the top level")
        if cls not in convertible:
            raise UserError(f"{where} layer '{name}' ({cls}) cannot be converted by NengoDL "
                            f"(its Converter has no {cls} converter)")
        if cls == "LeakyReLU":
            raise UserError(f"{where} layer '{name}' (LeakyReLU) is not a relu, so it would not "
                            f"become the configured neurons; use activation='relu'")
        act = lcfg.get("activation", "linear")
        if act is None:
            act = "linear"
        if not isinstance(act, str):
            raise UserError(f"{where} layer '{name}' has a custom activation, whose code "
                            f"spiketune does not run; use 'relu' or 'linear'")
        if act == "softmax" and name == output:
            if not classification:
                raise UserError(f"{where} the output layer '{name}' has a softmax, but the task "
                                f"is regression; the output must be linear")
            continue
        if act not in HIDDEN_ACTIVATIONS:
            raise UserError(f"{where} layer '{name}' uses activation '{act}'; spiketune converts "
                            f"relu (to the configured neuron type) and linear layers only")


def inspect(path: Path, classification: bool) -> None:
    """Read the stored config of ``path`` and refuse it if loading or converting it is unsafe or
    impossible (see :func:`check_layers`). Deserialises nothing."""
    config, nodes = stored_config(path)
    layers, output = stored_layers(config, path)
    extra = [(str(n.get("class_name")), str(n.get("name", "?"))) for n in nodes]
    check_layers(layers, output, path, classification, extra)


# --------------------------------------------------------------------------------------- loading
def _register_identity_converters() -> None:
    """Convert dropout and noise layers as pass-throughs (they are the identity at inference)."""
    import tensorflow as tf
    from nengo_dl.converter import Converter, LayerConverter

    class ConvertIdentity(LayerConverter):
        """A layer that is the identity at inference: its input object is its output."""

        def convert(self, node_id):
            return self.get_input_obj(node_id)

    for cls_name in IDENTITY_LAYERS:
        cls = getattr(tf.keras.layers, cls_name, None)
        if cls is not None and cls not in Converter.converters:
            Converter.converters[cls] = ConvertIdentity


def expected_input(data) -> tuple[int, ...]:
    """The input shape a model for ``data`` takes: one sample, or one time step of a sequence."""
    return tuple(data.input_shape[1:] if data.sequence else data.input_shape)


def check_shapes(model, data, path: Path) -> None:
    """Refuse a model whose input does not take ``data``'s samples or whose output size is wrong.

    A flat input of the same size as an image sample is accepted (the data is fed flattened in
    C order, which is what ``Flatten`` does).
    """
    import numpy as np

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


def _load(path: Path):
    """Keras's own loader, after :func:`inspect` passed; its errors become one-line UserErrors."""
    import tensorflow as tf

    try:
        return tf.keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as ex:  # Keras raises ValueError, TypeError, OSError, ... on a bad file
        text = " ".join(str(ex).split())[:200] or type(ex).__name__
        raise UserError(f"{KEY}: Keras cannot load {path.name}: {text}") from None


def _strip(model) -> list[str]:
    """Remove what only Keras training uses, and the output softmax; return what was changed."""
    import tensorflow as tf

    changed = []
    for layer in model.layers:
        for attr in TRAINING_ONLY:
            if getattr(layer, attr, None) is not None:
                setattr(layer, attr, None)
                changed.append(f"{layer.name}.{attr}")
    out = model.get_layer(model.output_names[0])
    if getattr(out, "activation", None) is tf.keras.activations.softmax:
        out.activation = tf.keras.activations.linear  # logits: same arg-max, from_logits loss
        changed.append(f"{out.name}.activation softmax -> linear")
    return changed


def check_conversion(model, path: Path, seed: int = 0) -> None:
    """Convert ``model`` once with ReLU neurons; a layer NengoDL refuses becomes a UserError."""
    import nengo

    from .conversion import convert

    try:
        convert(model, nengo.RectifiedLinear(), None, synapse=None, seed=seed)
    except (TypeError, ValueError) as ex:
        text = " ".join(str(ex).split())
        cut = text.find("; set allow_fallback")
        raise UserError(f"{KEY}: {path.name}: NengoDL cannot convert it: "
                        f"{text[:cut] if cut > 0 else text[:300]}") from None


def load_model(model_cfg, data):
    """Load, check and prepare the model ``model.path`` names.

    Parameters
    ----------
    model_cfg : framework.config.KerasFileModel
        ``path`` (file or SavedModel folder); ``train`` is read by the training stage.
    data : framework.datasets.Data
        The input shape and output size the model must fit.

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
    import warnings

    import tensorflow as tf

    path = resolve(model_cfg)
    inspect(path, data.classification)
    _register_identity_converters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no training configuration found" and the like
        model = _load(path)
    if isinstance(model, tf.keras.Sequential):
        # NengoDL converts a Sequential into a new Functional model whose input tensors are not
        # the Sequential's; wrapping the same layers as Functional here keeps one set of tensors
        model = tf.keras.Model(model.inputs, model.outputs, name=model.name)
    check_shapes(model, data, path)
    _strip(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # swap_activations keys the model does not use
        check_conversion(model, path)
    return model
