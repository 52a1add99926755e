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

Entries live in ``outputs/cache/<key>/``: ``params.npz`` as ``sim.save_params`` writes it,
``trained.json`` with the loss per epoch and the regulariser statistics, and ``manifest.json``,
written last, with the key and the size and sha256 of the other two; ``SPIKETUNE_CACHE_DIR`` moves
them. An entry is trained into a temporary folder and renamed into place, so a reader sees a whole
entry or none, and an exclusive lock (:class:`filelock.FileLock`) per key makes parallel jobs with
the same key wait for the first one instead of all training. ``training.cache=false`` bypasses the
cache.

Every read checks the entry against its manifest, as DVC checks its cache: a truncated or edited
file, a file or folder copied in from another key, or a missing or unreadable manifest is reported
in one line, the entry is removed and the weights are trained again (``spiketune.training_cache``
is then ``rebuilt``); a damaged entry is never served. Temporary folders left by a killed write
(their writer's process on this host is gone, or, written on another host, they are older than
:data:`STALE_S`) are deleted when the cache is next used.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from omegaconf import OmegaConf

from framework.daemons import alive  # zombie-aware; /proc where there is one
from framework.paths import cache_root, existing_path
from framework.training import Trained

# bump when the entry layout changes so that an old entry could be misread (the manifest needed
# no bump: an entry without one is reported and rebuilt, so old entries are replaced, not orphaned)
FORMAT = 1
#: modules whose code decides the trained weights (found by import, so a move cannot drop one)
SOURCES = ("framework.training", "framework.conversion", "framework.regularizers",
           "framework.batches", "framework.models", "framework.neurons", "framework.native",
           "framework.networks.keras", "framework.keras_io.screen",
           "framework.keras_io.load", "framework.compat", "framework.compat.linear_filter")
#: libraries whose version decides the trained weights
LIBRARIES = ("tensorflow", "tf_keras", "keras", "nengo_dl", "nengo", "numpy")
ENTRY_FILES = ("params.npz", "trained.json")
#: written last into an entry: its key, and the size and sha256 of each of :data:`ENTRY_FILES`
MANIFEST = "manifest.json"
#: age (s) past which another host's temporary folder is a killed write's leftover (its pid cannot
#: be checked here); a write only copies the weights and two small files, so seconds are normal
STALE_S = 15 * 60
_HOST = socket.gethostname()
#: a temporary folder (a write, or a damaged entry moved aside to be deleted):
#: ``.tmp-<key[:16]>-<random>-<pid>@<host>``; the pid tells a dead writer on this host
_TMP = re.compile(r"^\.tmp-[0-9a-f]{16}-[a-z0-9_]+-(?P<pid>\d+)@(?P<host>.+)$")
#: the temporary folders of the releases before the manifest (no pid: cleaned by age only)
_OLD_TMP = re.compile(r"^\.[0-9a-f]{16}-[a-z0-9_]{8}$")


def plain(node: Any) -> Any:
    """A config node (DictConfig or dataclass) as plain JSON-able data, enums as their values."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if dataclasses.is_dataclass(node):
        return {f.name: plain(getattr(node, f.name)) for f in dataclasses.fields(node)}
    if isinstance(node, enum.Enum):
        return node.value
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    return node


@dataclass
class TrainingKey:
    """Exactly what determines trained weights (see the module docstring).

    Attributes
    ----------
    nodes : dict
        The config nodes that decide training, as plain data (dataclasses, enums and OmegaConf
        nodes are turned into JSON-able values by :func:`plain`).
    data_digest : str
        :attr:`framework.data.base.Data.digest`.
    files : dict
        Config key -> a file (or folder) whose bytes the network starts from (``model.path``,
        ``model.params``).
    """

    nodes: dict[str, Any]
    data_digest: str
    files: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        """The sha256 (hex) of the nodes, the data, the files' bytes and the code."""
        h = hashlib.sha256()
        h.update(f"spiketune-cache-{FORMAT}".encode())
        h.update(json.dumps(plain(self.nodes), sort_keys=True).encode())
        h.update(str(self.data_digest).encode())
        for key, value in self.files.items():
            _hash_path(h, existing_path(value, key))
        h.update(_code_digest().encode())
        return h.hexdigest()


def _hash_path(h: hashlib._Hash, path: Path) -> None:
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


def _sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(entry: Path, key: str) -> str:
    """What is wrong with the cache entry ``entry`` for ``key``: ``""`` when it may be served.

    Parameters
    ----------
    entry : pathlib.Path
        An existing entry folder, ``<cache root>/<key>``.
    key : str
        The key the entry is to serve; its manifest must name it, so that a folder copied in under
        another key is foreign.

    Returns
    -------
    str
        ``""``, or one phrase naming the file and the fault, e.g. ``"params.npz sha256 mismatch
        (damaged or foreign)"`` or ``"params.npz is 812 B, manifest.json says 1650 B (truncated or
        foreign)"``.
    """
    manifest, problem = _manifest(entry, key)
    if manifest is None:
        return problem
    for name in ENTRY_FILES:
        problem = _check_file(entry, name, manifest["files"].get(name))
        if problem:
            return problem
    return ""


#: the most an entry's JSON files (manifest, trained.json) may hold, bytes; they hold a few kB
MAX_JSON = 1 << 20


def _read_json(path: Path) -> Any:
    """An entry's small JSON file, read only when it is a regular file within :data:`MAX_JSON`:
    a manifest replaced by a link to /dev/zero (or a pipe) is not read at all, rather than
    read until memory runs out. Raises ValueError for such a file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a pipe would block an ordinary open
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_JSON:
            raise ValueError(f"{path.name} is not a regular file of at most {MAX_JSON} B")
        return json.loads(f.read(MAX_JSON + 1))


def _manifest(entry: Path, key: str) -> tuple[dict[str, Any] | None, str]:
    """``(manifest, "")`` when ``entry``'s manifest is readable, well formed and names ``key``;
    else ``(None, what is wrong)``."""
    try:
        manifest = _read_json(entry / MANIFEST)
    except FileNotFoundError:
        return None, f"{MANIFEST} missing (an entry from before manifests, or damaged)"
    except (OSError, ValueError) as ex:
        return None, f"{MANIFEST} unreadable ({type(ex).__name__})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None, f"{MANIFEST} malformed"
    if manifest.get("key") != key:
        return None, f"{MANIFEST} is for key {str(manifest.get('key'))[:12]} (foreign entry)"
    return manifest, ""


def _check_file(entry: Path, name: str, want: Any) -> str:
    """What is wrong with file ``name`` of ``entry`` against its manifest record ``want``
    (``{"size": bytes, "sha256": hex}``): ``""`` when it matches."""
    if not isinstance(want, dict):
        return f"{MANIFEST} does not list {name}"
    try:
        size = (entry / name).stat().st_size
        # the size first: a truncated file is told without reading it
        if size != want.get("size"):
            return (f"{name} is {size} B, {MANIFEST} says {want.get('size')} B "
                    f"(truncated or foreign)")
        if _sha256(entry / name) != want.get("sha256"):
            return f"{name} sha256 mismatch (damaged or foreign)"
    except FileNotFoundError:
        return f"{name} missing"
    except OSError as ex:
        return f"{name} unreadable ({ex.strerror or type(ex).__name__})"
    return ""


def _load(entry: Path, key: str) -> tuple[Trained | None, str]:
    """``(Trained, "")`` for an entry that verifies, ``(None, "")`` when there is no entry, and
    ``(None, what is wrong)`` for a damaged or foreign one."""
    if not entry.exists():
        return None, ""
    problem = verify(entry, key)
    if problem:
        return None, problem
    try:  # the bytes are the ones written; only a writer's bug could make them unparseable
        meta = _read_json(entry / "trained.json")
        return Trained(params=entry / "params", loss=[float(v) for v in meta["loss"]],
                       regularizers={k: float(v) for k, v in meta["regularizers"].items()}), ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as ex:
        return None, f"trained.json unreadable ({type(ex).__name__})"


def _tmp_dir(root: Path, key: str) -> Path:
    """A new temporary folder in ``root`` named for :func:`clean_leftovers` (key, pid, host)."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", suffix=f"-{os.getpid()}@{_HOST}",
                                 dir=root))


def _discard(entry: Path, key: str) -> None:
    """Delete an entry: renamed aside first, so a lock-free reader sees it whole or not at all
    (and a deletion cut short leaves a temporary folder, which :func:`clean_leftovers` removes)."""
    aside = _tmp_dir(entry.parent, key)
    os.rename(entry, aside / "entry")
    shutil.rmtree(aside, ignore_errors=True)


def clean_leftovers(root: Path, now: float | None = None) -> list[Path]:
    """Delete the temporary folders that killed writes left in the cache folder ``root``.

    A folder written on this host goes when its writer's process is gone (and stays while it
    runs, however slow the write); one written on another host, or from before pids were recorded,
    goes when it is older than :data:`STALE_S`.
    Only folders named as the cache names them are touched, so a ``SPIKETUNE_CACHE_DIR`` pointed at
    a shared folder loses nothing else.

    Parameters
    ----------
    root : pathlib.Path
        The cache folder (:func:`cache_root`); may not exist yet.
    now : float, optional
        The time (s since the epoch) ages are measured from; the current time by default.

    Returns
    -------
    list of pathlib.Path
        The folders deleted.
    """
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(".")]
    except FileNotFoundError:
        return []
    now = time.time() if now is None else now
    removed = []
    for path in candidates:
        ours = _TMP.match(path.name)
        if ours is None and _OLD_TMP.match(path.name) is None:
            continue
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:  # renamed into place or removed meanwhile
            continue
        if ours is not None and ours["host"] == _HOST:  # the pid tells: a live write may be slow
            stale = not alive(int(ours["pid"]))
        else:  # another host's writer (or no pid recorded): only its age tells
            stale = age > STALE_S
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _store(result: Trained, entry: Path, key: str, what: TrainingKey) -> None:
    """Move a fresh training result into ``entry`` atomically (temp folder + rename), the
    manifest written last so that it describes the files as they are on disk."""
    tmp = _tmp_dir(entry.parent, key)
    try:
        shutil.copy2(f"{result.params}.npz", tmp / "params.npz")
        (tmp / "trained.json").write_text(json.dumps({
            "loss": result.loss, "regularizers": result.regularizers, "key": key,
            "config": plain(what.nodes), "data_digest": what.data_digest},
            indent=1, default=str))
        files = {name: {"size": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                 for name in ENTRY_FILES}
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "key": key, "files": files},
                                               indent=1))
        if entry.exists():  # a damaged leftover (the lock makes this the only writer)
            _discard(entry, key)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def trained(what: TrainingKey | None, root: Path | None, console: Any,
            train: Callable[[], Trained]) -> tuple[Trained, str]:
    """``(Trained, status)``: the cached weights for this training key, or train and cache.

    Parameters
    ----------
    what : TrainingKey or None
        What determines the weights; None: the cache is off (``training.cache=false``).
    root : pathlib.Path or None
        The cache folder (``paths.cache``); None: :func:`framework.paths.cache_root`.
    console : framework.progress.Console
    train : callable
        Trains and returns the result (in the run's scratch folder; moved into the entry here);
        a cache hit trains nothing, so a live per-epoch logger is never called then: the caller
        replays ``Trained.loss``.

    Returns
    -------
    (Trained, str)
        The trained parameters (inside the cache entry), with ``cache_key`` set, and the
        ``spiketune.training_cache`` tag: ``"hit"`` (from the cache), ``"miss"`` (trained and
        cached) or ``"rebuilt"`` (the entry was damaged or foreign: reported, removed, trained and
        cached again) or ``"off"`` (no key: trained, not cached).
    """
    if what is None:
        return train(), "off"
    key = what.digest()
    root = root or cache_root()
    entry = root / key
    gone = clean_leftovers(root)
    if gone:
        console.say(f"          cache    removed {len(gone)} leftover temporary folder(s) of "
                    f"killed writes")
    hit, problem = _load(entry, key)  # a complete entry needs no lock: it only appears by rename
    if hit is not None:
        console.say(f"          cache    hit {key[:12]} ({entry})")
        hit.cache_key = key
        return hit, "hit"
    if problem:
        console.say(f"          cache    entry {key[:12]}: {problem}; rebuilding")
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):
        hit, again = _load(entry, key)  # another job may have (re)built it while we waited
        if hit is not None:
            console.say(f"          cache    hit {key[:12]} (trained by a parallel job)")
            hit.cache_key = key
            return hit, "hit"
        if again and not problem:  # damaged while we waited: still one line
            console.say(f"          cache    entry {key[:12]}: {again}; rebuilding")
        problem = problem or again
        if again:
            _discard(entry, key)
        if not problem:
            console.say(f"          cache    miss {key[:12]}: training")
        result = train()
        _store(result, entry, key, what)
    stored, _ = _load(entry, key)
    out = stored if stored is not None else result
    out.cache_key = key
    return out, "rebuilt" if problem else "miss"
