"""Screening of a saved Keras model as data, before any Keras code reads it (no TensorFlow needed).

Keras 2 runs a ``Lambda`` layer's marshalled Python (and a ``TFOpLambda``'s named TensorFlow
function) while it rebuilds a model from ``.h5`` or a SavedModel; ``safe_mode`` only guards the zip
``.keras`` format. So the file is inspected *before* Keras reads it:

* zip ``.keras`` (Keras 3, and Keras 2's ``save_format="keras_v3"``): the archive's ``config.json``;
* HDF5 (``.h5``, and the ``.keras`` files Keras 2.12 wrote by default): the ``model_config``
  attribute, read with h5py;
* SavedModel folder (Keras 2 only): every node of ``keras_metadata.pb`` (a folder without one is
  not a Keras model and is refused).

Every layer must be a built-in Keras layer that NengoDL's Converter converts natively (or a
dropout/noise layer, the identity at inference), naming no module outside Keras (the zip format
imports the modules its config names); hidden activations must be ``relu`` (swapped for the
configured neuron type) or linear; a ``softmax`` on the output of a classifier is removed (the
arg-max, hence the accuracy, is unchanged; training and read-out use logits). Each refusal is one
line naming ``model.path``, the layer and why. :func:`keras_major` tells which Keras wrote the file,
which decides the loader (:mod:`framework.keras_io.load`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from framework.errors import UserError
from framework.keras_io.sequence import per_step_shape
from framework.limits import check_archive
from framework.paths import existing_path

KEY = "model.path"
#: a stored (JSON) config entry
Stored = dict[str, Any]
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
#: what to build instead of a layer NengoDL's Converter cannot convert
INSTEAD = {
    "LSTM": "feed the sequence one time step per simulation step through Dense layers "
            "(spiketune's sequence data) or use a nengo LMU",
    "GRU": "feed the sequence one time step per simulation step through Dense layers",
    "SimpleRNN": "feed the sequence one time step per simulation step through Dense layers",
    "LayerNormalization": "BatchNormalization, which folds into the weights",
    "Embedding": "a one-hot input and a Dense layer",
    "MultiHeadAttention": "Dense and Conv layers",
    "Softmax": "a linear output layer (spiketune reads classes by arg-max)",
    "PReLU": "activation='relu'",
    "ELU": "activation='relu'",
    "LeakyReLU": "activation='relu'",
}
#: the layers spiketune's conversion handles, named in refusals
SUPPORTED = ("Dense, Conv1D/2D/3D, pooling, BatchNormalization, Flatten, Reshape, Add, "
             "Concatenate, ReLU, Dropout")


def resolve(model_cfg: Any) -> Path:
    """The model file or SavedModel folder ``model.path`` names (relative: from the launch dir)."""
    path = existing_path(model_cfg.path, KEY)
    if path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{KEY}: {path.name} is not a saved Keras model (.keras, .h5 or a "
                        f"SavedModel folder)")
    if path.is_file() and zipfile.is_zipfile(path):  # a .keras file: refuse a zip bomb unread
        check_archive(path, KEY)
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


def file_tags(model_cfg: Any) -> dict[str, str]:
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


def _malformed(path: Path, what: str) -> UserError:
    return UserError(f"{KEY}: {path.name} stores a malformed model config ({what}), not a "
                     f"Keras model's")


def _checked(config: Any, path: Path) -> Stored:
    """``config`` if it has a Keras model config's shape (an object whose ``config`` is an
    object whose ``layers`` are objects); the rest is read through :func:`_reads_as_data`."""
    if not isinstance(config, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(config), "a number")
        raise _malformed(path, f"{kind} where an object belongs")
    body = config.get("config") or {}
    layers = body.get("layers") or [] if isinstance(body, dict) else None
    if not isinstance(layers, list) or not all(
            isinstance(e, dict) and isinstance(e.get("config") or {}, dict) for e in layers):
        raise _malformed(path, "its 'config' or 'layers' are not objects")
    return config


F = TypeVar("F", bound=Callable[..., Any])


def _reads_as_data(fn: F) -> F:
    """A stored config is data from elsewhere: any field of an unexpected type (a number where a
    list belongs) is one line naming the file, never a traceback."""
    @functools.wraps(fn)
    def read(path: Path, *args: Any) -> Any:
        try:
            return fn(path, *args)
        except (AttributeError, TypeError, IndexError, KeyError) as ex:
            raise _malformed(path, " ".join(str(ex).split())[:120]) from None
    return cast(F, read)


def stored_config(path: Path) -> tuple[Stored, list[Stored]]:
    """The model's stored config, and (SavedModel only) the metadata of every saved layer.

    Reads the file as data only: nothing it contains is deserialised into Keras objects.
    """
    fmt = stored_format(path)
    try:
        if fmt == "keras_v3":
            with zipfile.ZipFile(path) as z:
                if "config.json" not in z.namelist():
                    raise UserError(f"{KEY}: {path.name} has no config.json (not a Keras model)")
                return _checked(json.loads(z.read("config.json")), path), []
        if fmt == "h5":
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
            if raw is None:
                raise UserError(f"{KEY}: {path.name} holds weights only (no model_config); save "
                                f"the whole model with model.save()")
            return _checked(json.loads(raw.decode() if isinstance(raw, bytes) else raw), path), []
        meta_file = path / "keras_metadata.pb"
        if not meta_file.is_file():
            raise UserError(f"{KEY}: {path.name} is not a Keras SavedModel (no keras_metadata.pb)")
        from tf_keras.protobuf import saved_metadata_pb2

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


def stored_layers(config: Stored, path: Path) -> tuple[list[tuple[str, str, Stored]], str]:
    """``(class_name, layer name, stored entry)`` of every layer of a stored top-level model (the
    entry holds ``config`` and, in the zip format, ``module``), and the name of its output layer."""
    cls = config.get("class_name")
    if cls not in MODEL_CLASSES:
        raise UserError(f"{KEY}: {path.name} stores a {cls!r}, not a Keras Functional or "
                        f"Sequential model")
    module = config.get("module")
    if isinstance(module, str) and not is_keras_module(module):
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
    # Functional: [[name, node, tensor], ...], or Keras 3's [name, node, tensor] for one output
    outputs = body.get("output_layers") or []
    if outputs and isinstance(outputs[0], list):
        return out, str(outputs[0][0])
    if outputs and isinstance(outputs[0], str):
        return out, outputs[0]
    return out, out[-1][1]  # Sequential: the last layer


@_reads_as_data
def stored_input_shape(path: Path) -> tuple[int | None, ...] | None:
    """The input shape (without the batch axis) the stored model's input layer declares, read as
    data (no TensorFlow); None when the file does not say."""
    config, _ = stored_config(path)
    layers, _ = stored_layers(config, path)
    # a whole-trial model that pools over time takes one time step (keras_io/sequence.py)
    return per_step_shape([cls for cls, _, _ in layers], _declared_shape(config, layers))


def _declared_shape(config: Stored, layers: list[tuple[str, str, Stored]]
                    ) -> tuple[int | None, ...] | None:
    """The input shape the stored model declares, without the batch axis."""
    body = config.get("config") or {}
    for cls, _, entry in layers:
        if cls == "InputLayer":
            lcfg = entry.get("config") or {}
            shape = lcfg.get("batch_shape") or lcfg.get("batch_input_shape")
            return tuple(shape[1:]) if shape else None
    shape = body.get("build_input_shape")  # a Sequential without an InputLayer entry
    if isinstance(shape, list) and shape:
        return tuple(shape[1:])
    first = (layers[0][2].get("config") or {}) if layers else {}
    shape = first.get("batch_input_shape")
    return tuple(shape[1:]) if shape else None


def is_keras_module(module: str) -> bool:
    """Whether a stored ``module`` is Keras's own (Keras 3's ``keras.*`` or tf-keras's)."""
    return module.split(".")[0] in ("keras", "tf_keras")


def keras_major(path: Path) -> int:
    """The major version of the Keras that wrote ``path`` (2 or 3), from the file's own record.

    Zip files record it in ``metadata.json``, HDF5 files in the ``keras_version`` attribute;
    SavedModel folders are Keras 2 (Keras 3 cannot save a reloadable one).
    """
    fmt = stored_format(path)
    version = ""
    try:
        if fmt == "keras_v3":
            with zipfile.ZipFile(path) as z:
                if "metadata.json" in z.namelist():
                    version = str(json.loads(z.read("metadata.json")).get("keras_version", ""))
        elif fmt == "h5":
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("keras_version", "")
            version = raw.decode() if isinstance(raw, bytes) else str(raw)
    except (OSError, ValueError, zipfile.BadZipFile) as ex:
        raise UserError(f"{KEY}: cannot read {path.name}: {' '.join(str(ex).split())[:200]}") \
            from None
    head = version.split(".")[0]
    return int(head) if head.isdigit() and int(head) >= 3 else 2


def foreign_module(obj: Any) -> str | None:
    """The first module outside Keras that a stored object (or anything nested in it) names.

    The zip format stores ``{"module": ..., "class_name": ...}`` for layers, initialisers,
    regularisers and functions, and Keras imports that module to rebuild the object: an
    initialiser naming ``os`` would be looked up and called.
    """
    if isinstance(obj, dict):
        module = obj.get("module")
        if isinstance(module, str) and not is_keras_module(module):
            return module
        children: Iterable[Any] = obj.values()
    elif isinstance(obj, list):
        children = obj
    else:
        return None
    for child in children:
        found = foreign_module(child)
        if found:
            return found
    return None


def check_layers(layers: list[tuple[str, str, Stored]], output: str, path: Path,
                 classification: bool, known: set[str], convertible: set[str],
                 extra_classes: Sequence[tuple[str, str]] = ()) -> None:
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
    known : set of str
        Built-in Keras layer classes (anything else is custom code).
    convertible : set of str
        Layer classes NengoDL's Converter converts (dropout and noise layers are added here).
    extra_classes : list of (class_name, name)
        Further stored objects to screen for code (every layer node of a SavedModel).
    """
    where = f"{KEY}: {path.name}:"
    entries = {n: e for _, n, e in layers}
    for cls, name in [(c, n) for c, n, _ in layers] + list(extra_classes):
        _check_code(cls, name, entries.get(name), known, where)
    convertible = convertible | IDENTITY_LAYERS
    for cls, name, entry in layers:
        _check_class(cls, name, convertible, where)
        _check_activation(entry.get("config") or {}, name, name == output, classification, where)


def _check_code(cls: str, name: str, entry: Stored | None, known: set[str], where: str) -> None:
    """Refuse a stored layer (or object) that would run code on loading: a Lambda-like layer, a
    module outside Keras, a custom class."""
    if cls in CODE_LAYERS:
        raise UserError(f"{where} layer '{name}' is a {cls} layer, whose Python code would "
                        f"run on loading; spiketune refuses it (rebuild the model with "
                        f"built-in layers)")
    module = foreign_module(entry)
    if module:
        raise UserError(f"{where} layer '{name}' refers to code in module '{module}', which "
                        f"spiketune does not import; use built-in Keras layers and settings")
    if cls not in known and cls not in MODEL_CLASSES:
        raise UserError(f"{where} layer '{name}' has the custom class {cls!r}, whose code "
                        f"spiketune does not run; use built-in Keras layers")


def _check_class(cls: str, name: str, convertible: set[str], where: str) -> None:
    """Refuse a top-level layer the conversion cannot turn into what it computes."""
    if cls in MODEL_CLASSES:
        raise UserError(f"{where} layer '{name}' is a nested model; save a model whose "
                        f"layers are all at the top level")
    if cls == "LeakyReLU":
        raise UserError(f"{where} layer '{name}' (LeakyReLU) is not a relu, so it would not "
                        f"become the configured neurons; use activation='relu'")
    if cls.startswith(("MaxPooling", "GlobalMaxPooling")):
        raise UserError(f"{where} layer '{name}' ({cls}): NengoDL converts max pooling only "
                        f"by replacing it with average pooling, which changes what the "
                        f"network computes; use {cls.replace('Max', 'Average')} and retrain")
    if cls not in convertible:
        instead = INSTEAD.get(cls, f"one of {SUPPORTED}")
        raise UserError(f"{where} layer '{name}' ({cls}) cannot be converted by NengoDL "
                        f"(its Converter has no {cls} converter); use {instead}")


def _check_activation(lcfg: Stored, name: str, is_output: bool, classification: bool,
                      where: str) -> None:
    """Refuse an activation other than relu or linear (a classifier's output may be softmax)."""
    act = lcfg.get("activation", "linear")
    if act is None:
        act = "linear"
    if not isinstance(act, str):
        raise UserError(f"{where} layer '{name}' has a custom activation, whose code "
                        f"spiketune does not run; use 'relu' or 'linear'")
    if act == "softmax" and is_output:
        if not classification:
            raise UserError(f"{where} the output layer '{name}' has a softmax, but the task "
                            f"is regression; the output must be linear")
        return
    if act not in HIDDEN_ACTIVATIONS:
        raise UserError(f"{where} layer '{name}' uses activation '{act}'; spiketune converts "
                        f"relu (to the configured neuron type) and linear layers only")


@_reads_as_data
def inspect(path: Path, classification: bool, known: set[str], convertible: set[str]) -> None:
    """Read the stored config of ``path`` and refuse it if loading or converting it is unsafe or
    impossible (see :func:`check_layers`). Deserialises nothing."""
    config, nodes = stored_config(path)
    layers, output = stored_layers(config, path)
    extra = [(str(n.get("class_name")), str(n.get("name", "?"))) for n in nodes]
    check_layers(layers, output, path, classification, known, convertible, extra)


