"""Stage 1, data: the ``Data`` container, train/test splits, input scaling, and the ``dataset``
schema every option (reach, digits, file: one module each) subclasses and registers."""
from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from framework.errors import UserError
from framework.registry import Registry
from framework.schema import MISSING, bounded

#: the ``dataset`` options, by name: each a :class:`DatasetConfig` subclass
DATASETS: Registry[type[DatasetConfig]] = Registry("dataset")


class Task(str, enum.Enum):
    classification = "classification"
    regression = "regression"


class Scaling(str, enum.Enum):
    """How the inputs are scaled before the network sees them (statistics of the training split)."""

    auto = "auto"  # none for a loaded model (trained on raw inputs), else the dataset's own choice
    none = "none"  # the data as they are
    standardize = "standardize"  # zero mean, unit SD per feature (channel, for sequences/images)
    minmax = "minmax"  # [0, 1] per feature from the training split's minimum and maximum


@dataclass
class Data:
    """A train/test split ready for NengoDL.

    Attributes
    ----------
    x_train, x_test : ndarray, shape (n, features) or (n, time, channels) or (n, h, w, c)
        Inputs as the dataset holds them; :func:`scale` applies ``dataset.scaling``.
    y_train, y_test : ndarray
        Regression targets, shape (n, outputs), or integer class labels, shape (n,).
    dir_train, dir_test : ndarray of float, shape (n,), or None
        Movement direction of each sample, degrees in [0, 360), when the data carries one; NaN
        for a trial without a direction (a rest class), which tuning analyses leave out.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_outputs: int
    dir_train: np.ndarray | None = None
    dir_test: np.ndarray | None = None
    source: str = ""
    sequence: bool = False
    notes: dict[str, float] = field(default_factory=dict)
    remarks: list[str] = field(default_factory=list)  # lines the run prints about the data
    scaling: str = "none"  # the input scaling applied (:func:`scale`): none, standardize, minmax
    #: classification whose classes are directions: the direction (degrees) each class stands
    #: for, so a predicted class has an angle error; None otherwise
    class_deg: np.ndarray | None = None
    #: the samples' own indices (rows of the user's file, else of the generated set) in the
    #: training and test splits, as used; ``split.csv``
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    #: whether the test samples are the user's own held-out ones (``dataset.split`` or
    #: ``dataset.test_path``) rather than spiketune's split of the file
    split_given: bool = False

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    @property
    def has_directions(self) -> bool:
        return self.dir_test is not None

    @property
    def digest(self) -> str:
        """A short hash of every array, so two runs on different data can never be confused."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(str(a.shape).encode())
        return h.hexdigest()[:16]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def angle_diff(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a − b wrapped to [−180, 180) degrees."""
    diff: np.ndarray = (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0
    return diff


def load(dataset_cfg: DatasetConfig, seed: int) -> Data:
    """Load the dataset the ``dataset`` node describes (``seed``: the run's seed, for splits and
    synthetic data)."""
    return dataset_cfg.load(seed)


def split(n: int, test_fraction: float, rng: np.random.Generator,
          stratify: np.ndarray | None = None,
          key: str = "dataset.test_fraction") -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train/test indices; stratified by ``stratify`` labels when given."""
    if stratify is None:
        order = rng.permutation(n)
        n_test = int(round(n * test_fraction))
        if n_test < 1 or n - n_test < 1:
            raise UserError(f"{key}: {n} samples are too few to split with test_fraction "
                            f"{test_fraction}")
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    train, test = [], []
    for label in np.unique(stratify):
        idx = rng.permutation(np.flatnonzero(stratify == label))
        n_test = int(round(len(idx) * test_fraction))
        if n_test < 1 or len(idx) - n_test < 1:
            raise UserError(f"{key}: class {label} has {len(idx)} samples, too few to split with "
                            f"test_fraction {test_fraction}")
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def split_csv(data: Data) -> str:
    """``split.csv``: each sample's own index (row of the user's file, else of the generated set)
    and ``train`` or ``test``, as the run used them; rows a run dropped (``dataset.drop_nan``)
    are absent."""
    n_train, n_test = len(data.x_train), len(data.x_test)
    train = data.train_index if data.train_index is not None else np.arange(n_train)
    test = data.test_index if data.test_index is not None else np.arange(n_train,
                                                                         n_train + n_test)
    rows = sorted([(int(i), "train") for i in train] + [(int(i), "test") for i in test])
    return "index,split\n" + "".join(f"{i},{what}\n" for i, what in rows)


def scale(data: Data, method: str) -> tuple[Data, dict[str, Any]]:
    """``data`` with its inputs scaled by ``method`` (``dataset.scaling``, resolved), and what was
    applied.

    ``standardize``: zero mean and unit SD; ``minmax``: [0, 1]; both per feature (per channel for
    sequences and images: statistics pool every axis but the last), from the training split only,
    applied alike to the test split. ``none`` leaves the values as they are (as float32).

    Returns
    -------
    Data
        A copy with scaled ``x_train`` and ``x_test``.
    dict
        ``method``, and for the scaling methods ``offset`` and ``scale`` per feature (x' =
        (x − offset) / scale), for the run's ``scaling.json``.
    """
    axes = tuple(range(data.x_train.ndim - 1))
    x_train = data.x_train.astype(np.float64)
    if method == "none":
        offset, spread = np.zeros(1), np.ones(1)
    elif method == "standardize":
        offset = x_train.mean(axis=axes)
        spread = x_train.std(axis=axes)
    elif method == "minmax":
        offset = x_train.min(axis=axes)
        spread = x_train.max(axis=axes) - offset
    else:
        raise UserError(f"dataset.scaling: no method {method!r}; choose none, standardize or "
                        f"minmax")
    spread = np.where(spread == 0, 1.0, spread)  # a constant feature stays at 0
    out = dataclasses.replace(
        data, scaling=method, x_train=((x_train - offset) / spread).astype(np.float32),
        x_test=((data.x_test.astype(np.float64) - offset) / spread).astype(np.float32))
    stats: dict[str, Any] = {"method": method}
    if method != "none":
        stats.update(offset=offset.ravel().tolist(), scale=spread.ravel().tolist())
    return out, stats


@dataclass
class DatasetConfig:
    """The ``dataset`` node every option shares; each option subclasses it and loads itself."""

    #: what ``scaling=auto`` means when spiketune builds and trains the network itself
    own_scaling: ClassVar[Scaling] = Scaling.standardize
    #: fields holding a user's path, taken from ``paths.data`` when relative
    path_fields: ClassVar[tuple[str, ...]] = ()

    name: str = MISSING
    task: Task = Task.regression
    test_fraction: float = bounded(0.25, gt=0.0, lt=1.0)  # fraction of samples held out for testing
    scaling: Scaling = Scaling.auto  # input scaling, from the training split; logged as resolved
    # sequences: seconds of recording per time bin; the simulation then runs the recording's own
    # time (simulation.n_steps = bins × bin_s / dt) and every time axis is in its seconds
    bin_s: float | None = bounded(None, gt=0.0)

    def load(self, seed: int) -> Data:
        """The dataset, split into train and test (``seed`` seeds the split and synthetic data)."""
        raise NotImplementedError

    def fit_to_model(self, data: Data, input_shape: Callable[[], tuple[int | None, ...] | None]
                     ) -> tuple[Data, list[str]]:
        """``data`` laid out for a loaded model, and what was done; ``input_shape()`` reads the
        shape the model's input declares (without the batch axis; None when the file does not
        say), only where a layout is to be chosen.

        Only a user's file can be read in more than one layout; every other dataset is as built.
        """
        return data, []
