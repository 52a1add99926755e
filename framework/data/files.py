"""A user's recording as a :class:`~framework.data.base.Data`: ``load_file(cfg, seed)``.

Two formats (``dataset.path``):

* ``.csv`` — one row per sample. ``dataset.features`` names the feature columns (default: every
  column except ``dataset.target`` and ``dataset.direction``).
* ``.npz`` — named arrays. ``dataset.features`` is a one-element list naming the feature array
  (default: ``x`` if present, else the only array that is neither target nor direction). It is
  (samples, features), a sequence (samples, time, channels) or images (samples, height, width,
  channels); ``dataset.layout`` says which where the rank does not (a loaded model's input does,
  :func:`fit_layout`).

Every problem the user can fix raises :class:`~framework.errors.UserError` with one line naming the
config key and the file; nothing is dropped silently (``dataset.drop_nan`` drops non-finite rows and
records how many in ``Data.notes["dropped_nan_rows"]``).
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import enum
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from framework.data.base import DATASETS, Data, DatasetConfig, split
from framework.errors import UserError
from framework.limits import check_archive, check_npz_members
from framework.paths import existing_path
from framework.schema import option

SUFFIXES = (".csv", ".npz")


class Layout(str, enum.Enum):
    """What the axes of a file's feature array are (after the samples axis)."""

    auto = "auto"  # from the loaded model's input where there is one, else by rank: 1 features,
    #               2 a sequence (time, channels), 3 an image (height, width, channels)
    features = "features"  # (samples, features...) fed at once
    sequence = "sequence"  # (samples, time, channels...) fed one time step per step
    image = "image"  # (samples, height, width[, channels]) fed at once


@option(DATASETS)
@dataclass
class FileDataset(DatasetConfig):
    """A user's recording: ``.csv`` (columns) or ``.npz`` (arrays)."""

    path_fields: ClassVar[tuple[str, ...]] = ("path", "test_path")

    name: str = "file"
    path: str = ""  # the .csv or .npz file; relative paths are from the launch directory
    # csv columns or one npz array; None: all but target and direction
    features: list[str] | None = None
    target: str = "target"  # csv column or npz array holding the labels or regression targets
    direction: str | None = None  # csv column or npz array of movement directions, degrees
    # a direction value that marks trials without one (a rest class), like NaN; e.g. -1
    no_direction: float | None = None
    drop_nan: bool = False  # drop rows with NaN (their count is logged) instead of refusing them
    layout: Layout = Layout.auto  # what the feature array's axes are (see Layout)
    # csv column or npz array naming each sample "train" or "test": given, exactly those test
    # samples are scored, tuned and decoded (dataset.test_fraction is then unused)
    split: str | None = None
    # a second file, laid out like dataset.path, holding the test samples (dataset.path: training)
    test_path: str = ""

    def load(self, seed: int) -> Data:
        return load_file(self, seed)

    def fit_to_model(self, data: Data, input_shape: Callable[[], tuple[int | None, ...] | None]
                     ) -> tuple[Data, list[str]]:
        """``layout=auto``: the layout the loaded model's input says (:func:`fit_layout`)."""
        return fit_layout(data, input_shape()) if self.layout == Layout.auto else (data, [])


class Field(NamedTuple):
    """One array read from the file, with what an error about it should say."""

    key: str  # the config key that chose it, e.g. ``dataset.target``
    what: str  # e.g. "column 'dir' of reach.csv"
    values: np.ndarray  # float64, one row per sample


def _one_line(ex: BaseException) -> str:
    """A library exception's message squeezed onto one line."""
    return " ".join(str(ex).split()) or type(ex).__name__


def _names(names: Iterable[object]) -> str:
    """Available columns/arrays for an error message, shortened when there are many."""
    text = [str(n) for n in names]
    if not text:
        return "none"
    more = f", ... ({len(text) - 20} more)" if len(text) > 20 else ""
    return ", ".join(text[:20]) + more


def _numeric(a: np.ndarray, key: str, what: str) -> np.ndarray:
    """``a`` as float64, or a UserError naming ``what`` if it holds something other than numbers."""
    if a.dtype.kind in "biuf":
        return a.astype(np.float64)
    if a.dtype.kind == "O":  # a csv column pandas could not parse as numbers
        for i, v in enumerate(a.ravel()):
            try:
                float(v)
            except (TypeError, ValueError):  # line 1 is the header, so data row i is on line i + 2
                raise UserError(f"{key}: {what} is not numeric (line {i + 2}: "
                                f"{str(v)[:30]!r})") from None
        return a.astype(np.float64)
    raise UserError(f"{key}: {what} is not numeric (dtype {a.dtype})")


#: the largest magnitude a float32 holds: the network computes in float32, so a larger value
#: would become inf there (and, say, a firing rate of 0) without a word
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: the longest header line read to check column names, bytes
MAX_HEADER = 64 * 2**20


def _check_float32(a: np.ndarray, key: str, what: str, csv_lines: bool) -> None:
    """Refuse a finite value beyond float32's range, naming where it is: the csv line (line 1
    is the header) or the array index."""
    beyond = np.isfinite(a) & (np.abs(a) > FLOAT32_MAX)
    if beyond.any():
        where = tuple(int(i) for i in np.argwhere(beyond)[0])
        at = f"line {where[0] + 2}" if csv_lines else f"index {where if a.ndim > 1 else where[0]}"
        raise UserError(f"{key}: {what} holds {a[where]:g} at {at}, beyond the float32 range "
                        f"(±{FLOAT32_MAX:.3g}) the network computes in; rescale it")


def _check_header(path: Path) -> None:
    """Refuse a csv whose header names a column twice: pandas would rename the second
    ``target.1`` and, as a feature, hand the network its own answer."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader([f.readline(MAX_HEADER)]), [])
    twice = [name for name, n in collections.Counter(header).items() if n > 1]
    if twice:
        raise UserError(f"dataset.path: {path.name} names the column {twice[0]!r} more than once "
                        f"in its header; give each column its own name")


def _read_csv(path: Path, cfg: FileDataset) -> tuple[dict[str, Field], list[str]]:
    """The features, target and (optional) direction columns of a csv, and the feature names."""
    import pandas as pd

    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.strip():
        raise UserError(f"dataset.path: {path.name} is empty")
    if b"\x00" in head:  # binary files otherwise "parse" into garbage columns
        raise UserError(f"dataset.path: {path.name} is not a text csv (binary content)")
    _check_header(path)
    try:  # index_col=False: a line with extra fields is an error naming it, never an index
        df = pd.read_csv(path, index_col=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as ex:
        raise UserError(f"dataset.path: cannot read {path.name} as csv: {_one_line(ex)}") from None
    if len(df) == 0:
        raise UserError(f"dataset.path: {path.name} has a header but no data rows")
    df.columns = columns = [str(c) for c in df.columns]

    def field(key: str, name: str) -> Field:
        if name not in columns:
            raise UserError(f"{key}: no column {name!r} in {path.name} "
                            f"(columns: {_names(columns)})")
        what = f"column {name!r} of {path.name}"
        values = _numeric(df[name].to_numpy(), key, what)
        _check_float32(values, key, what, csv_lines=True)
        return Field(key, what, values)

    features = _csv_features(columns, cfg, path)
    x = np.stack([field("dataset.features", c).values for c in features], axis=1)
    out = {"features": Field("dataset.features", f"feature columns of {path.name}", x),
           "target": field("dataset.target", cfg.target)}
    if cfg.direction is not None:
        out["direction"] = field("dataset.direction", cfg.direction)
    if cfg.split is not None:
        out["split"] = _csv_split(df, cfg.split, path)
    return out, features


def _csv_features(columns: list[str], cfg: FileDataset, path: Path) -> list[str]:
    """The feature columns: ``dataset.features``, else every column but target, direction and
    split; never one of those (the network would be handed its own answer)."""
    own = (cfg.target, cfg.direction, cfg.split)
    features = ([str(c) for c in cfg.features] if cfg.features is not None
                else [c for c in columns if c not in own])
    if not features:
        raise UserError(f"dataset.features: no feature columns in {path.name} "
                        f"(columns: {_names(columns)})")
    leaked = [c for c in features if c in own]
    if leaked:
        raise UserError(f"dataset.features: {leaked[0]!r} is also the target, direction or "
                        f"split column")
    return features


def _csv_split(df: Any, name: str, path: Path) -> Field:
    """Column ``name`` (``dataset.split``) as test flags."""
    if name not in df.columns:
        raise UserError(f"dataset.split: no column {name!r} in {path.name} "
                        f"(columns: {_names(df.columns)})")
    what = f"column {name!r} of {path.name}"
    return Field("dataset.split", what, _split_flags(df[name].to_numpy(), what))


def _split_flags(a: np.ndarray, what: str) -> np.ndarray:
    """``dataset.split`` values as 1.0 (test) and 0.0 (train), refusing anything but the words
    ``train`` and ``test`` (any case), naming the first other value and its row."""
    words = np.char.lower(np.char.strip(a.astype(str))) if a.dtype.kind in "OUS" else None
    if words is None:
        raise UserError(f"dataset.split: {what} must name each sample 'train' or 'test' "
                        f"(it holds {a.dtype} values)")
    bad = ~np.isin(words, ("train", "test"))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"dataset.split: {what} holds {str(a[i])[:30]!r} at sample {i}; each "
                        f"sample must be 'train' or 'test'")
    flags: np.ndarray = (words == "test").astype(np.float64)
    return flags


def _check_npz_magic(path: Path) -> None:
    """Refuse a file that is not a zip archive before numpy reads it.

    Checked first: numpy blames anything unrecognised on pickling, which misleads.
    """
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic:
        raise UserError(f"dataset.path: {path.name} is empty")
    if magic == b"\x93NUMPY":
        raise UserError(f"dataset.path: {path.name} holds a single .npy array, not named arrays "
                        f"(save it with numpy.savez)")
    if not magic.startswith(b"PK"):
        raise UserError(f"dataset.path: {path.name} is not an npz archive (not a zip file)")


def _npz_feature(names: list[str], cfg: FileDataset, path: Path) -> str:
    """The name of the feature array: ``dataset.features`` (one name), else ``x``, else the only
    array that is neither target nor direction."""
    if cfg.features is None:
        rest = [n for n in names if n not in (cfg.target, cfg.direction, cfg.split)]
        if "x" not in names and len(rest) != 1:
            raise UserError(f"dataset.features: {path.name} has no array 'x' and {len(rest)} "
                            f"other arrays ({_names(rest)}); name one")
        return "x" if "x" in names else rest[0]
    if len(cfg.features) != 1:
        raise UserError(f"dataset.features: name exactly one array of {path.name}, got "
                        f"{len(cfg.features)}")
    return str(cfg.features[0])


def _npz_field(archive: Any, names: list[str], key: str, name: str, path: Path) -> Field:
    """Array ``name`` of the open archive as a float64 :class:`Field` chosen by config ``key``."""
    if name not in names:
        raise UserError(f"{key}: no array {name!r} in {path.name} "
                        f"(arrays: {_names(names)})")
    try:  # members are read lazily, so a damaged archive may only fail here
        a = archive[name]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as ex:
        raise UserError(f"dataset.path: cannot read array {name!r} from {path.name}: "
                        f"{_one_line(ex)}") from None
    what = f"array {name!r} of {path.name}"
    if not isinstance(a, np.ndarray):  # numpy hands a member that is no .npy over as raw bytes
        raise UserError(f"{key}: {name!r} in {path.name} is not a numpy array (a raw or pickled "
                        f"member, left unread)")
    if a.ndim == 0:
        raise UserError(f"{key}: {what} is a single value, not one per sample")
    values = _numeric(a, key, what)
    _check_float32(values, key, what, csv_lines=False)
    return Field(key, what, values)


def _read_npz(path: Path, cfg: FileDataset) -> tuple[dict[str, Field], None]:
    """The features, target and (optional) direction arrays of an npz archive."""
    _check_npz_magic(path)
    check_archive(path, "dataset.path")  # before numpy inflates a member (zip bombs)
    check_npz_members(path, "dataset.path")  # the shapes the arrays' headers declare
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as ex:
        raise UserError(f"dataset.path: cannot read {path.name} as npz: {_one_line(ex)}") from None
    with archive:
        names = list(archive.files)
        wanted = {"features": ("dataset.features", _npz_feature(names, cfg, path)),
                  "target": ("dataset.target", cfg.target)}
        if cfg.direction is not None:
            wanted["direction"] = ("dataset.direction", cfg.direction)
        out = {role: _npz_field(archive, names, key, name, path)
               for role, (key, name) in wanted.items()}
        if cfg.split is not None:
            if cfg.split not in names:
                raise UserError(f"dataset.split: no array {cfg.split!r} in {path.name} "
                                f"(arrays: {_names(names)})")
            what = f"array {cfg.split!r} of {path.name}"
            out["split"] = Field("dataset.split", what, _split_flags(archive[cfg.split], what))
    return out, None


def fit_layout(data: Data, shape: tuple[int | None, ...] | None) -> tuple[Data, list[str]]:
    """``data`` laid out as a loaded model's input ``shape`` (no batch axis) says, and a line.

    A sample of that shape is fed at once; a sample whose trailing axes have it is a sequence fed
    one step per step; a sample of the same size in another shape (images saved without their
    channel axis) is reshaped. Anything else is left for the model's shape check to refuse.
    """
    if shape is None or any(d is None for d in shape):
        return data, []
    dims: tuple[int, ...] = tuple(d for d in shape if d is not None)  # all of them, now
    sample = tuple(data.x_train.shape[1:])
    if sample == dims:
        sequence, what = False, "image" if len(dims) > 1 else "features"
    elif sample[1:] == dims:
        sequence, what = True, "sequence"
    elif int(np.prod(sample)) == int(np.prod(dims)) and len(sample) != len(dims):
        n_tr, n_te = len(data.x_train), len(data.x_test)
        data = dataclasses.replace(data, x_train=data.x_train.reshape(n_tr, *dims),
                                   x_test=data.x_test.reshape(n_te, *dims))
        sequence, what = False, f"{'image' if len(dims) > 1 else 'features'}, reshaped"
    else:
        return data, []
    if sequence == data.sequence and "reshaped" not in what:
        return data, []  # what the rank said already: nothing to report
    line = (f"dataset.layout=auto -> {what} (the model takes {dims}, the file's samples "
            f"are {sample})")
    return dataclasses.replace(data, sequence=sequence), [line]


def _rows_text(n: int) -> str:
    return f"{int(n)} row" + ("" if n == 1 else "s")


def _nonfinite_rows(a: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows (samples) holding any NaN or inf."""
    finite: np.ndarray = np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return ~finite


def _marker_remark(direction: np.ndarray) -> list[str]:
    """A line when a direction looks like a "no direction" marker (a lone negative value on
    trials whose other directions all lie in [0, 360)): it is taken as an angle unless
    ``dataset.no_direction`` names it."""
    d = direction[np.isfinite(direction)]
    negative = np.unique(d[d < 0])
    if len(negative) == 1 and (d >= 0).any() and (d[d >= 0] < 360).all():
        v = float(negative[0])
        return [f"dataset.direction: {v:g} on {int((d == v).sum())} trials is taken as the angle "
                f"{v % 360:g} deg; if it marks trials without a direction, set "
                f"dataset.no_direction={v:g}"]
    return []


def _resolve(value: str, key: str) -> Path:
    """The absolute path of ``key`` (``dataset.path``, ``dataset.test_path``): an existing
    ``.csv`` or ``.npz`` file."""
    path = existing_path(value, key, SUFFIXES).resolve()
    if path.is_dir():
        raise UserError(f"{key}: {path} is a directory, not a .csv or .npz file")
    return path


def _read(path: Path, cfg: FileDataset) -> tuple[dict[str, Field], list[str] | None]:
    """The file's fields by role (``features``, ``target``, ``direction``) and, for a csv, the
    feature column names."""
    reader: Callable[[Path, FileDataset], tuple[dict[str, Field], list[str] | None]]
    reader = _read_csv if path.suffix.lower() == ".csv" else _read_npz
    try:
        return reader(path, cfg)
    except OSError as ex:  # permissions, a vanished or unreadable file: the user can fix these
        raise UserError(f"dataset.path: cannot read {path.name}: "
                        f"{ex.strerror or _one_line(ex)}") from None


def _shape_features(features: Field, layout: str) -> tuple[np.ndarray, bool]:
    """The feature array checked against ``dataset.layout`` (an image's channel axis added when
    it has none), and whether it is a sequence fed one time step per step."""
    x, what = features.values, features.what
    if len(x) == 0:
        raise UserError(f"dataset.features: {what} has no samples")
    if x.ndim not in (2, 3, 4):
        raise UserError(f"dataset.features: {what} has shape {x.shape}; need "
                        f"(samples, features), (samples, time, channels) or (samples, height, "
                        f"width, channels)")
    if 0 in x.shape[1:]:  # no features, no time bins or an empty image: nothing to learn from
        raise UserError(f"dataset.features: {what} has shape {x.shape}; every "
                        f"axis after the samples needs at least 1 entry")
    if layout == "sequence" and x.ndim < 3:
        raise UserError(f"dataset.layout: sequence needs (samples, time, channels); "
                        f"{what} has shape {x.shape}")
    if layout == "image" and x.ndim == 3:  # (samples, height, width): one channel
        x = x[..., None]
    return x, layout == "sequence" or (layout == "auto" and x.ndim == 3)


def _check_rows(fields: dict[str, Field], n: int) -> None:
    """Refuse a field whose row count is not the ``n`` samples of the features; a (samples, 1)
    target or direction becomes a vector (in place), and a direction must then be one."""
    for role, f in fields.items():
        if len(f.values) != n:
            raise UserError(f"{f.key}: {f.what} has {_rows_text(len(f.values))} but the features "
                            f"have {n}")
        if role != "features" and f.values.ndim == 2 and f.values.shape[1] == 1:
            fields[role] = f._replace(values=f.values[:, 0])
    if "direction" in fields and fields["direction"].values.ndim != 1:
        f = fields["direction"]
        raise UserError(f"{f.key}: {f.what} has shape {f.values.shape}; need one angle per sample")


def _mark_no_direction(fields: dict[str, Field], no_direction: float | None) -> None:
    """Directions (degrees) with trials without one as NaN (in place).

    A trial without a direction (a rest class) is NaN, or the marker ``dataset.no_direction``
    says; it stays in the task and is left out of tuning. inf is never a direction.
    """
    if "direction" not in fields:
        return
    f = fields["direction"]
    d = f.values.astype(np.float64)
    if no_direction is not None:
        d[d == no_direction] = np.nan
    if np.isinf(d).any():
        raise UserError(f"{f.key}: {f.what} holds inf on {_rows_text(np.isinf(d).sum())}; "
                        f"mark trials without a direction as NaN")
    fields["direction"] = f._replace(values=d)


def _nonfinite_columns(f: Field, columns: list[str], path: Path) -> str:
    """The csv feature columns holding NaN/inf, each with its count, for an error message."""
    counts = (~np.isfinite(f.values)).sum(axis=0)
    return (", ".join(f"column {c!r} ({k})" for c, k in zip(columns, counts) if k)
            + f" of {path.name}")


def _bad_rows(fields: dict[str, Field], n: int, drop_nan: bool, columns: list[str] | None,
              path: Path) -> np.ndarray:
    """Boolean mask of the ``n`` rows holding NaN/inf (directions aside: NaN there means "no
    direction"); any such row is refused, naming where, unless ``dataset.drop_nan`` asks to drop
    them."""
    bad = np.zeros(n, dtype=bool)
    for role, f in fields.items():
        if role in ("direction", "split"):
            continue
        rows = _nonfinite_rows(f.values)
        if rows.any() and not drop_nan:
            what = f.what
            if role == "features" and columns is not None:  # name the csv columns at fault
                what = _nonfinite_columns(f, columns, path)
            raise UserError(f"{f.key}: NaN/inf values in {what}: {_rows_text(rows.sum())} "
                            f"(set dataset.drop_nan=true to drop them)")
        bad |= rows
    return bad


def _class_labels(y: np.ndarray, target: str, notes: dict[str, float]
                  ) -> tuple[np.ndarray, int, np.ndarray]:
    """Classification: labels 0..K-1 (int64), K, and the labels to stratify the split by; the
    class count (and the file's own labels when they are not 0..K-1) go into ``notes``."""
    if y.ndim != 1:
        raise UserError(f"dataset.target: {target} has shape {y.shape}; classification needs "
                        f"one label per sample")
    fractional = y != np.round(y)
    if fractional.any():
        raise UserError(f"dataset.target: {target} holds non-integer labels (e.g. "
                        f"{y[fractional][0]:g}); use dataset.task=regression for continuous "
                        f"targets")
    classes, labels = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise UserError(f"dataset.target: {target} has a single class ({classes[0]:g}); "
                        f"classification needs at least two")
    notes["n_classes"] = float(len(classes))
    if not np.array_equal(classes, np.arange(len(classes))):  # keep the original labels
        notes.update({f"label_{k}": float(c) for k, c in enumerate(classes)})
    return labels.astype(np.int64), len(classes), labels


def _regression_targets(y: np.ndarray, target: str) -> tuple[np.ndarray, int]:
    """Regression: targets as float32 (samples, outputs), and the number of outputs."""
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise UserError(f"dataset.target: {target} has shape {y.shape}; regression needs "
                        f"(samples,) or (samples, outputs)")
    return y.astype(np.float32), y.shape[1]


def _wrap_degrees(direction: np.ndarray) -> np.ndarray:
    """Directions wrapped to [0, 360) degrees (NaN stays NaN)."""
    direction = np.mod(direction, 360.0)
    direction[direction >= 360.0] = 0.0  # mod of a tiny negative angle rounds up to 360
    return direction


def load_file(cfg: FileDataset, seed: int) -> Data:
    """Load, check and split a user's ``.csv`` or ``.npz`` file (scaling comes after, only as
    ``dataset.scaling`` asks).

    Parameters
    ----------
    cfg : FileDataset
        The ``dataset`` node.
    seed : int
        Seeds the train/test split.

    Returns
    -------
    Data
        Features as the file holds them (float32); targets as labels 0..K-1
        (classification, stratified split) or float32 (samples, outputs) (regression); directions
        in degrees, [0, 360), when ``dataset.direction`` is set.
    """
    path = _resolve(cfg.path, "dataset.path")
    fields, columns = _read(path, cfg)
    # shapes: one row per sample everywhere; a (samples, 1) target or direction is a vector
    layout = getattr(cfg.layout, "value", cfg.layout)
    x, sequence = _shape_features(fields["features"], layout)
    _check_rows(fields, len(x))
    if cfg.test_path:
        x = _append_test_file(cfg, path, fields, x, layout)
    _mark_no_direction(fields, cfg.no_direction)
    bad = _bad_rows(fields, len(x), cfg.drop_nan, columns, path)
    notes: dict[str, float] = {}
    if cfg.drop_nan:
        notes["dropped_nan_rows"] = float(bad.sum())
        if bad.all():
            raise UserError(f"dataset.drop_nan: all {len(x)} rows of {path.name} hold NaN/inf")
    rows = np.flatnonzero(~bad)  # the samples' own indices: rows of the file(s)
    x, y = x[~bad], fields["target"].values[~bad]
    direction = fields["direction"].values[~bad] if "direction" in fields else None
    is_test = fields["split"].values[~bad] if "split" in fields else None

    target = fields["target"].what
    task = getattr(cfg.task, "value", cfg.task)  # a Task enum, or its string from a plain config
    stratify: np.ndarray | None = None
    if task == "classification":
        y, n_outputs, stratify = _class_labels(y, target, notes)
    else:
        y, n_outputs = _regression_targets(y, target)

    if is_test is None:
        train, test = split(len(y), cfg.test_fraction, np.random.default_rng(seed),
                            stratify=stratify)
    else:
        train, test = _given_split(is_test, "dataset.test_path" if cfg.test_path
                                   else "dataset.split")
    x_train, x_test = x[train].astype(np.float32), x[test].astype(np.float32)
    remarks: list[str] = []
    if direction is not None:
        notes["no_direction_trials"] = float(np.isnan(direction).sum())
        remarks = _marker_remark(direction)
        direction = _wrap_degrees(direction)
    return Data(name="file", task=task, x_train=x_train, y_train=y[train], x_test=x_test,
                y_test=y[test], n_outputs=n_outputs,
                dir_train=None if direction is None else direction[train],
                dir_test=None if direction is None else direction[test],
                source=str(path), sequence=sequence, notes=notes, remarks=remarks,
                train_index=rows[train], test_index=rows[test], split_given=is_test is not None)


def _given_split(is_test: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The user's own train and test indices (``is_test`` 1.0 for a test sample)."""
    test = np.flatnonzero(is_test > 0.5)
    train = np.flatnonzero(is_test <= 0.5)
    if len(test) == 0 or len(train) == 0:
        raise UserError(f"{key}: {len(train)} training and {len(test)} test samples; both "
                        f"need at least one")
    return train, test


def _append_test_file(cfg: FileDataset, path: Path, fields: dict[str, Field], x: np.ndarray,
                      layout: str) -> np.ndarray:
    """``dataset.test_path``'s samples appended to the training file's (``fields`` in place,
    with a ``split`` field marking them); the features of both."""
    if cfg.split is not None:
        raise UserError("dataset.test_path: give the test samples either as dataset.split or "
                        "as dataset.test_path, not both")
    test_path = _resolve(cfg.test_path, "dataset.test_path")
    if test_path == path:
        raise UserError(f"dataset.test_path: {test_path.name} is dataset.path itself")
    more, _ = _read(test_path, cfg)
    x_test, _ = _shape_features(more["features"], layout)
    _check_rows(more, len(x_test))
    if x_test.shape[1:] != x.shape[1:] or set(more) != set(fields):
        raise UserError(f"dataset.test_path: {test_path.name}'s samples are {x_test.shape[1:]}, "
                        f"{path.name}'s are {x.shape[1:]}; the two files need the same layout")
    for role, f in fields.items():
        fields[role] = f._replace(values=np.concatenate([f.values, more[role].values]))
    fields["split"] = Field("dataset.test_path", f"rows of {test_path.name}",
                            np.r_[np.zeros(len(x)), np.ones(len(x_test))])
    return np.concatenate([x, x_test])
