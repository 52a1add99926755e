"""Stage 1, data: ``load(cfg, seed) -> Data`` for the dataset named in ``cfg.dataset.name``."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from framework.errors import UserError
from framework.registry import Registry

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
    """Center-out reaching after Georgopoulos et al. (1982), with EMG-like channels.

    Channel values are arbitrary EMG units (a.u.), of the order of 1 at a channel's preferred
    direction. ``cfg.emg`` picks how they are made (docs/reach.md):

    ``ideal``
        Each channel c is cosine-tuned to the movement direction θ: b_c + m_c·cos(θ − φ_c) plus
        Gaussian noise of SD ``noise``·m_c, with a random preferred direction φ_c, baseline b_c
        and depth m_c. Every network neuron's input is then a cosine of θ too.
    ``realistic``
        See :func:`_realistic_emg`: rectified (≥ 0) mixtures of von Mises-tuned
        muscle synergies, some bimodal, with signal-dependent noise that the synergies share.

    In sequence form the activity is shaped over time by a bell-like movement envelope. Targets
    are (cos θ, sin θ) or the direction index.

    Parameters
    ----------
    cfg : framework.config.ReachDataset
    seed : int
        Seeds the channels' tuning, the noise and the train/test split.

    Raises
    ------
    UserError
        A field of the other mode set away from its default (it would do nothing), or
        ``kappa_low`` above ``kappa_high``.
    """
    _check_mode_fields(cfg)
    rng = np.random.default_rng(seed)
    k = cfg.n_directions
    directions = np.repeat(np.arange(k) * 360.0 / k, cfg.trials_per_direction)
    theta = np.deg2rad(directions)
    t = (np.arange(cfg.n_timesteps) + 0.5) / cfg.n_timesteps
    envelope = np.sin(np.pi * t) ** 2  # movement onset to offset
    remarks: list[str] = []
    notes: dict[str, float] = {}
    if cfg.emg.value == "realistic":
        x, info = _realistic_emg(cfg, theta, envelope if cfg.sequence else None, rng)
        notes["channel_cosine_r2_median"] = info["r2_median"]
        remarks.append(
            f"dataset.emg=realistic: {cfg.n_synergies} synergies, kappa "
            f"{', '.join(f'{v:.1f}' for v in info['kappa'])}, {info['n_bimodal']} bimodal; "
            f"cosine R² of the channels' direction means: median {info['r2_median']:.2f} "
            f"(ideal channels: 1)")
    else:
        # the ideal channels, drawn exactly as before the realistic mode existed (cached runs
        # and tests hold their digest): keep these draws and their order as they are
        pd = rng.uniform(0, 2 * np.pi, cfg.n_channels)
        base = rng.uniform(1.0, 2.0, cfg.n_channels)
        depth = rng.uniform(0.5, 1.0, cfg.n_channels)
        tuned = base + depth * np.cos(theta[:, None] - pd[None, :])  # (trials, channels)
        if cfg.sequence:
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
    mode = "" if cfg.emg.value == "ideal" else f", {cfg.emg.value} EMG"
    return Data(name="reach", task=cfg.task.value, x_train=x_train, y_train=y[train],
                x_test=x_test, y_test=y[test], n_outputs=n_out, dir_train=directions[train],
                dir_test=directions[test], source=f"synthetic reach (seed {seed}{mode})",
                sequence=bool(cfg.sequence), notes=notes, remarks=remarks)


def _check_mode_fields(cfg) -> None:
    """Refuse a field that the chosen ``emg`` mode would ignore, like an unset regulariser's."""
    default = type(cfg)()
    if cfg.emg.value == "ideal":
        changed = [f for f in cfg.realistic_fields if getattr(cfg, f) != getattr(default, f)]
        if changed:
            raise UserError(f"dataset.{changed[0]}: set, but it belongs to the realistic EMG "
                            f"(add dataset.emg=realistic)")
        return
    if cfg.noise != default.noise:
        raise UserError("dataset.noise: set, but it is the ideal EMG's noise; the realistic "
                        "EMG's are dataset.signal_noise, dataset.synergy_noise and "
                        "dataset.noise_floor")
    if cfg.kappa_low > cfg.kappa_high:
        raise UserError(f"dataset.kappa_low: must be <= dataset.kappa_high, got "
                        f"{cfg.kappa_low} > {cfg.kappa_high}")


def _von_mises(d: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """exp(κ·(cos d − 1)): a von Mises bump of height 1 at d = 0 (d in radians, κ ≥ 0)."""
    return np.exp(kappa * (np.cos(d) - 1.0))


def _realistic_emg(cfg, theta: np.ndarray, envelope: np.ndarray | None,
                   rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """EMG envelopes made of muscle synergies: ``emg=realistic`` (docs/reach.md).

    Synergy s is tuned to θ as a_s(θ) = A_s·[V(θ − ψ_s; κ_s) + β_s·V(θ − ψ_s − π; κ_s)], V the
    von Mises bump of :func:`_von_mises`, A_s ∈ [0.5, 1] a.u., κ_s ∈ [``kappa_low``,
    ``kappa_high``], and β_s ∈ [0.5, 1] for ``round(bimodal_fraction · n_synergies)`` synergies
    (bimodal; else 0). The preferred directions ψ_s are spread evenly with jitter (a quarter of
    the spacing either way) from a random start, so the synergies cover the workspace as a
    motor repertoire does, without a fixed grid. On each trial each synergy's activation is
    scaled by a log-normal gain of mean 1 and CV ``synergy_noise``. Channel c mixes the
    synergies by non-negative weights W_c· (a Dirichlet(0.5) draw, so most channels follow one
    or two synergies, times a channel gain in [0.5, 1.5]) over a tonic level τ_c ∈ [0.05, 0.2]
    a.u.; in sequence form the envelope e(t) multiplies the synergy drive (not the tonic level):

        μ_c = τ_c + e(t)·Σ_s W_cs·g_s·a_s(θ)
        x_c = |μ_c·(1 + ``signal_noise``·ε) + ``noise_floor``·ε'|

    with ε, ε' standard normal per trial (and time bin). The full-wave rectification is the EMG
    envelope's: x ≥ 0, and its SD grows with μ (≈ √((signal_noise·μ)² + noise_floor²)).

    Returns
    -------
    ndarray
        (trials, channels), or (trials, n_timesteps, channels) with ``envelope``; a.u.
    dict
        ``kappa`` (per synergy), ``n_bimodal``, ``r2_median``: the median over channels of the
        cosine fit's R² on the noise-free per-direction means (static form; 1 for ideal
        channels).
    """
    n_syn, n_ch = cfg.n_synergies, cfg.n_channels
    spacing = 2 * np.pi / n_syn
    psi = rng.uniform(0, 2 * np.pi) + spacing * (np.arange(n_syn)
                                                + rng.uniform(-0.25, 0.25, n_syn))
    kappa = rng.uniform(cfg.kappa_low, cfg.kappa_high, n_syn)
    height = rng.uniform(0.5, 1.0, n_syn)
    n_bimodal = int(round(cfg.bimodal_fraction * n_syn))
    second = np.zeros(n_syn)
    second[rng.permutation(n_syn)[:n_bimodal]] = rng.uniform(0.5, 1.0, n_bimodal)
    weights = rng.dirichlet(np.full(n_syn, 0.5), n_ch) * rng.uniform(0.5, 1.5, n_ch)[:, None]
    tonic = rng.uniform(0.05, 0.2, n_ch)

    def activation(th: np.ndarray) -> np.ndarray:  # (n, synergies), a.u.
        d = th[:, None] - psi[None, :]
        return height * (_von_mises(d, kappa) + second * _von_mises(d - np.pi, kappa))

    act = activation(theta)
    # log-normal: positive, mean exactly 1 and CV exactly synergy_noise
    s2 = np.log1p(cfg.synergy_noise ** 2)
    gain = np.exp(np.sqrt(s2) * rng.standard_normal(act.shape) - s2 / 2)
    drive = (gain * act) @ weights.T  # (trials, channels)
    if envelope is not None:
        mu = tonic + envelope[None, :, None] * drive[:, None, :]
    else:
        mu = tonic + drive
    x = np.abs(mu * (1.0 + cfg.signal_noise * rng.standard_normal(mu.shape))
               + cfg.noise_floor * rng.standard_normal(mu.shape))
    k = cfg.n_directions
    grid = np.arange(k) * 2 * np.pi / k
    means = tonic + activation(grid) @ weights.T  # (directions, channels), noise-free
    return x, {"kappa": kappa, "n_bimodal": n_bimodal, "r2_median": float(np.median(
        _cosine_r2(means, grid)))}


def _cosine_r2(means: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """R² of the least-squares fit b0 + b1·cos θ + b2·sin θ to each column of ``means``.

    Parameters
    ----------
    means : ndarray, shape (k, n)
        Per-direction means of n channels (any unit).
    theta : ndarray, shape (k,)
        The directions, radians.

    Returns
    -------
    ndarray, shape (n,)
        R² per column; NaN for a constant column.
    """
    design = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    coef, *_ = np.linalg.lstsq(design, means, rcond=None)
    ss_res = ((means - design @ coef) ** 2).sum(axis=0)
    ss_tot = ((means - means.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


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
    """A user's ``.csv`` or ``.npz`` recording (see :mod:`framework.data.files`)."""
    from framework.data.files import load_file

    return load_file(cfg, seed)
