"""Trained weights, reused across runs whose training is identical (the training cache).

A sweep over simulation settings (``simulation.n_steps``, ``simulation.synapse``) trains the same
network for every job; with the cache it is trained once. The key is the sha256 of exactly what
determines the trained weights:

* the ``dataset``, ``model`` and ``neuron`` nodes, ``seed``, and ``training`` without ``cache``;
* ``simulation.scale_firing_rates`` and ``conversion.layer_scales`` (as resolved): training runs
  through the scaled neurons;
* ``simulation.readout_steps``, ``readout`` and ``n_steps``, only for sequence data, whose loss is
  on the mean of the time bins the read-out covers;
* the bytes of a ``model.params`` file (NengoDL parameters the network starts from);
* the data's digest (so an edited data file is a new key), and for ``keras_file`` models the bytes
  of the file or of every file in the SavedModel folder;
* the source of the modules that build and train the network, and the TensorFlow/NengoDL versions,
  so a code change never reuses stale weights.

Entries live in ``outputs/cache/<key>/`` (``params.npz`` as ``sim.save_params`` writes it, and
``trained.json`` with the loss per epoch and the regulariser statistics); ``SPIKETUNE_CACHE_DIR``
moves them. An entry is trained into a temporary folder and renamed into place, so a reader sees a
whole entry or none, and an exclusive ``fcntl`` lock per key makes parallel jobs with the same key
wait for the first one instead of all training. ``training.cache=false`` bypasses the cache.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

FORMAT = 1  # bump when the entry layout changes
#: modules whose code decides the trained weights (found by import, so a move cannot drop one)
SOURCES = ("framework.training", "framework.conversion", "framework.regularizers",
           "framework.models", "framework.neurons", "framework.native", "framework.keras_io.screen",
           "framework.keras_io.load", "framework.compat", "framework.compat.linear_filter")
#: libraries whose version decides the trained weights
LIBRARIES = ("tensorflow", "tf_keras", "keras", "nengo_dl", "nengo", "numpy")
ENTRY_FILES = ("params.npz", "trained.json")


def cache_root() -> Path:
    """``$SPIKETUNE_CACHE_DIR`` or ``<repo>/outputs/cache``."""
    from .tracking import OUTPUTS

    return Path(os.environ.get("SPIKETUNE_CACHE_DIR") or OUTPUTS / "cache")


def _plain(node):
    """A config node (DictConfig or dataclass) as plain JSON-able data, enums as their values."""
    import dataclasses
    import enum

    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if dataclasses.is_dataclass(node):
        return {f.name: _plain(getattr(node, f.name)) for f in dataclasses.fields(node)}
    if isinstance(node, enum.Enum):
        return node.value
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    return node


def training_config(cfg, sequence: bool) -> dict:
    """The part of the config that determines training (see the module docstring)."""
    training = _plain(cfg.training)
    training.pop("cache", None)
    out = {"dataset": _plain(cfg.dataset), "model": _plain(cfg.model),
           "neuron": _plain(cfg.neuron), "training": training, "seed": int(cfg.seed),
           "scale_firing_rates": float(cfg.simulation.scale_firing_rates),
           "layer_scales": {k: float(v) for k, v in sorted(cfg.conversion.layer_scales.items())}}
    if sequence:  # the loss pools the time bins the read-out covers (training.readout_bins)
        out["readout_steps"] = int(cfg.simulation.readout_steps)
        out["readout"] = _plain(cfg.simulation.readout)
        out["n_steps"] = int(cfg.simulation.n_steps)
    return out


def _hash_path(h, path: Path) -> None:
    """Feed a file's bytes, or every file of a folder (relative names and bytes, sorted), to
    ``h``."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)


def _code_digest() -> str:
    """sha256 of the source of :data:`SOURCES` and the versions of :data:`LIBRARIES`.

    Raises
    ------
    RuntimeError
        When a module's source cannot be found or read: a key without it could serve stale weights.
    """
    import importlib.metadata
    import importlib.util

    h = hashlib.sha256()
    for name in SOURCES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"training cache: cannot find the source of {name}")
        try:
            h.update(name.encode() + Path(spec.origin).read_bytes())
        except OSError as ex:
            raise RuntimeError(f"training cache: cannot read {spec.origin}: {ex}") from None
    for dist in LIBRARIES:
        try:  # the installed distribution's version; nothing is imported here
            version = importlib.metadata.version(dist.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{dist}={version}".encode())
    return h.hexdigest()


def cache_key(cfg, data) -> str:
    """The sha256 (hex) identifying the trained weights of ``cfg`` on ``data``.

    Parameters
    ----------
    cfg : framework.config.Config or omegaconf.DictConfig
    data : framework.datasets.Data
        Supplies ``digest`` and ``sequence``.
    """
    h = hashlib.sha256()
    h.update(f"spiketune-cache-{FORMAT}".encode())
    h.update(json.dumps(training_config(cfg, bool(data.sequence)), sort_keys=True).encode())
    h.update(str(data.digest).encode())
    from .errors import existing_path

    if cfg.model.loaded:
        _hash_path(h, existing_path(cfg.model.path, "model.path"))
    if getattr(cfg.model, "params", ""):  # NengoDL parameters loaded onto the network
        _hash_path(h, existing_path(cfg.model.params, "model.params"))
    h.update(_code_digest().encode())
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on ``path`` (created if missing), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _load(entry: Path):
    """The cached Trained of a complete entry, or None if it is missing or unreadable."""
    from .training import Trained

    try:
        meta = json.loads((entry / "trained.json").read_text())
        if not (entry / "params.npz").is_file():
            return None
        return Trained(params=entry / "params", loss=[float(v) for v in meta["loss"]],
                       regularizers={k: float(v) for k, v in meta["regularizers"].items()})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(result, entry: Path, key: str, cfg, data) -> None:
    """Move a fresh training result into ``entry`` atomically (temp folder + rename)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=entry.parent))
    try:
        shutil.copy2(f"{result.params}.npz", tmp / "params.npz")
        (tmp / "trained.json").write_text(json.dumps({
            "loss": result.loss, "regularizers": result.regularizers, "key": key,
            "config": training_config(cfg, bool(data.sequence)), "data_digest": data.digest},
            indent=1, default=str))
        if entry.exists():  # an unreadable leftover (the lock makes this the only writer)
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def trained(cfg, model, data, neuron_type, scratch: Path, console, train, on_epoch=None):
    """``(Trained, cached)``: the cached weights for this training config, or train and cache.

    Parameters
    ----------
    cfg : framework.config.Config
    model : keras.Model
        The built (untrained) network.
    data : framework.datasets.Data
    neuron_type : nengo.neurons.NeuronType
    scratch : pathlib.Path
        The run's temporary folder (training writes there first).
    console : framework.progress.Console
    train : callable
        :func:`framework.training.train`.
    on_epoch : callable, optional
        Handed to ``train`` (``on_epoch(epoch, loss)`` as each epoch ends); a cache hit trains
        nothing, so it is never called then: the caller replays ``Trained.loss``.

    Returns
    -------
    (Trained, bool)
        The trained parameters (inside the cache entry when cached), with ``cache_key`` set when
        the cache is on, and whether they came from the cache (``spiketune.training_cache`` tag
        hit/miss).
    """
    # a train without live logging (a stand-in) is called as before
    live = {"on_epoch": on_epoch} if on_epoch is not None else {}
    if not cfg.training.cache:
        return train(model, data, cfg, neuron_type, scratch / "trained", console, **live), False
    key = cache_key(cfg, data)
    root = cache_root()
    entry = root / key
    hit = _load(entry)  # a complete entry needs no lock: it only ever appears by rename
    if hit is not None:
        console.say(f"          cache    hit {key[:12]} ({entry})")
        hit.cache_key = key
        return hit, True
    with _locked(root / f"{key}.lock"):
        hit = _load(entry)  # another job may have trained it while we waited
        if hit is not None:
            console.say(f"          cache    hit {key[:12]} (trained by a parallel job)")
            hit.cache_key = key
            return hit, True
        console.say(f"          cache    miss {key[:12]}: training")
        result = train(model, data, cfg, neuron_type, scratch / "trained", console, **live)
        _store(result, entry, key, cfg, data)
    stored = _load(entry)
    out = stored if stored is not None else result
    out.cache_key = key
    return out, False
