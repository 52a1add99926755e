"""Stage 1, data: ``load(cfg, seed) -> Data`` for the dataset named in ``cfg.dataset.name``."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .registry import Registry

DATASETS: Registry = Registry("dataset")


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


def load(dataset_cfg, seed: int) -> Data:
    """Load the dataset the config names.

    Parameters
    ----------
    dataset_cfg : framework.config.DatasetConfig
        The ``dataset`` node.
    seed : int
        The run's seed (splits and synthetic data).
    """
    return DATASETS.get(dataset_cfg.name, "dataset")(dataset_cfg, seed)


def split(n: int, test_fraction: float, rng: np.random.Generator, stratify=None,
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


def scale(data: Data, method: str) -> tuple[Data, dict]:
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
    import dataclasses

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
        data, x_train=((x_train - offset) / spread).astype(np.float32),
        x_test=((data.x_test.astype(np.float64) - offset) / spread).astype(np.float32))
    stats: dict = {"method": method}
    if method != "none":
        stats.update(offset=offset.ravel().tolist(), scale=spread.ravel().tolist())
    return out, stats


@DATASETS.register("reach")
def reach(cfg, seed: int) -> Data:
    """Center-out reaching after Georgopoulos et al. (1982).

    Each EMG-like channel c is cosine-tuned to the movement direction θ: its activity is
    b_c + m_c·cos(θ − φ_c) plus Gaussian noise of SD ``noise``·m_c, with a random preferred
    direction φ_c, baseline b_c and depth m_c. In sequence form that activity is shaped over time
    by a bell-like movement envelope. Targets are (cos θ, sin θ) or the direction index.
    """
    rng = np.random.default_rng(seed)
    k = cfg.n_directions
    directions = np.repeat(np.arange(k) * 360.0 / k, cfg.trials_per_direction)
    theta = np.deg2rad(directions)
    pd = rng.uniform(0, 2 * np.pi, cfg.n_channels)
    base = rng.uniform(1.0, 2.0, cfg.n_channels)
    depth = rng.uniform(0.5, 1.0, cfg.n_channels)
    tuned = base + depth * np.cos(theta[:, None] - pd[None, :])  # (trials, channels)
    if cfg.sequence:
        t = (np.arange(cfg.n_timesteps) + 0.5) / cfg.n_timesteps
        envelope = np.sin(np.pi * t) ** 2  # movement onset to offset
        x = envelope[None, :, None] * tuned[:, None, :]
        x = x + cfg.noise * depth * rng.standard_normal(x.shape)
    else:
        x = tuned + cfg.noise * depth * rng.standard_normal(tuned.shape)
    label = np.repeat(np.arange(k), cfg.trials_per_direction)
    train, test = split(len(label), cfg.test_fraction, rng, stratify=label)
    x_train, x_test = x[train].astype(np.float32), x[test].astype(np.float32)
    if cfg.task.value == "classification":
        y, n_out = label, k
    else:
        y, n_out = np.stack([np.cos(theta), np.sin(theta)], axis=1).astype(np.float32), 2
    return Data(name="reach", task=cfg.task.value, x_train=x_train, y_train=y[train],
                x_test=x_test, y_test=y[test], n_outputs=n_out, dir_train=directions[train],
                dir_test=directions[test], source=f"synthetic reach (seed {seed})",
                sequence=bool(cfg.sequence))


@DATASETS.register("digits")
def digits(cfg, seed: int) -> Data:
    """scikit-learn's bundled 8×8 digits as (8, 8, 1) images in [0, 1]; no download."""
    from sklearn.datasets import load_digits

    if cfg.task.value != "classification":
        raise UserError("dataset.task: digits is a classification dataset")
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train, test = split(len(y), cfg.test_fraction, rng, stratify=y)
    return Data(name="digits", task="classification", x_train=x[train], y_train=y[train],
                x_test=x[test], y_test=y[test], n_outputs=10,
                source="sklearn.datasets.load_digits")


@DATASETS.register("file")
def from_file(cfg, seed: int) -> Data:
    """A user's ``.csv`` or ``.npz`` recording (see :mod:`framework.userdata`)."""
    from .userdata import load_file

    return load_file(cfg, seed)
