"""``dataset=reach``: synthetic center-out reaching (Georgopoulos et al. 1982) with EMG-like
channels, ideal cosines or realistic synergy mixtures (docs/reach.md)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from framework.data.base import DATASETS, Data, DatasetConfig, split
from framework.errors import UserError
from framework.schema import bounded, option


class EMG(str, enum.Enum):
    """How the reach dataset's EMG-like channels are made (docs/reach.md)."""

    # cosine, axial (cos 2θ, two opposite lobes) and untuned channels plus independent Gaussian
    # noise: the default, so that not every neuron's input is a cosine by construction
    mixed = "mixed"
    ideal = "ideal"  # exact cosines plus independent Gaussian noise (can go negative)
    # rectified (≥ 0) mixtures of von Mises-tuned muscle synergies, some bimodal, with
    # signal-dependent noise shared through the synergies
    realistic = "realistic"


@option(DATASETS)
@dataclass
class ReachDataset(DatasetConfig):
    """Synthetic center-out reaching (Georgopoulos et al. 1982) with EMG-like channels: a mix of
    cosine, axial and untuned channels, ideal cosines, or realistic synergy mixtures (``emg``).
    Channel values are arbitrary EMG units (a.u.), of the order of 1 at a channel's preferred
    direction."""

    #: the realistic-only fields; set while emg is mixed or ideal (or ``noise`` while realistic)
    #: is refused
    realistic_fields: ClassVar[tuple[str, ...]] = (
        "n_synergies", "kappa_low", "kappa_high", "bimodal_fraction", "synergy_noise",
        "signal_noise", "noise_floor")
    #: the mixed-only fields
    mixed_fields: ClassVar[tuple[str, ...]] = ("axial_fraction", "flat_fraction")

    name: str = "reach"
    n_directions: int = bounded(8, ge=2)  # target directions, evenly spaced over 360°
    trials_per_direction: int = bounded(150, ge=2)  # trials per direction
    n_channels: int = bounded(8, ge=1)  # EMG-like channels
    emg: EMG = EMG.mixed  # channel model: mixed, ideal cosines or realistic synergies (see EMG)
    # emg=mixed or ideal: trial noise SD, in units of a channel's modulation depth (a.u. per a.u.)
    noise: float = bounded(0.3, ge=0.0)
    # --- emg=mixed only: fractions of the channels (rounded to counts; the rest are cosines) ---
    axial_fraction: float = bounded(0.25, ge=0.0, le=1.0)  # b + m·cos 2(θ − φ): two lobes
    flat_fraction: float = bounded(0.25, ge=0.0, le=1.0)  # b only: untuned, noise alone
    sequence: bool = False  # True: trials × time × channels with a movement envelope
    n_timesteps: int = bounded(20, ge=2)  # time bins per trial when ``sequence`` is True
    # --- emg=realistic only (docs/reach.md) ---
    n_synergies: int = bounded(5, ge=1)  # muscle synergies mixed into the channels
    # von Mises concentration κ of each synergy's tuning, drawn uniformly from [low, high];
    # dimensionless: 0 untuned, ≈ 0.5 cosine-like, 4 a lobe about 70° wide at half height
    kappa_low: float = bounded(0.5, ge=0.0)
    kappa_high: float = bounded(4.0, ge=0.0)
    # fraction of synergies (rounded to a count) with a second lobe opposite the first, of
    # 0.5-1 times its height: bimodal tuning, as of an antagonist that also brakes
    bimodal_fraction: float = bounded(0.2, ge=0.0, le=1.0)
    # trial-to-trial SD of each synergy's gain per unit gain (coefficient of variation,
    # dimensionless); shared by every channel the synergy drives, so their noise correlates
    synergy_noise: float = bounded(0.1, ge=0.0)
    # each channel's own noise SD per unit of its mean (coefficient of variation, dimensionless):
    # signal-dependent, SD grows with the activity
    signal_noise: float = bounded(0.1, ge=0.0)
    # recording noise SD before rectification, a.u.: the floor of a silent channel
    noise_floor: float = bounded(0.02, ge=0.0)

    def load(self, seed: int) -> Data:
        return reach(self, seed)


def reach(cfg: ReachDataset, seed: int) -> Data:
    """Center-out reaching after Georgopoulos et al. (1982), with EMG-like channels.

    Channel values are arbitrary EMG units (a.u.), of the order of 1 at a channel's preferred
    direction. ``cfg.emg`` picks how they are made (docs/reach.md):

    ``mixed`` (the default)
        As ``ideal``, but ``round(axial_fraction · n_channels)`` channels are axial,
        b_c + m_c·cos 2(θ − φ_c) (two opposite lobes, no cosine component at all), and
        ``round(flat_fraction · n_channels)`` are untuned, b_c (noise only); the rest are
        cosines. A network neuron's input is then a mixture, not a cosine by construction.
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
    cfg : ReachDataset
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
        if cfg.emg.value == "mixed":
            tuned = _mix(cfg, theta, pd, base, depth, tuned, remarks)
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
                sequence=bool(cfg.sequence), notes=notes, remarks=remarks,
                class_deg=np.arange(k) * 360.0 / k if cfg.task.value == "classification" else None)


def _check_mode_fields(cfg: ReachDataset) -> None:
    """Refuse a field that the chosen ``emg`` mode would ignore, like an unset regulariser's."""
    default = type(cfg)()
    others = {"ideal": cfg.realistic_fields + cfg.mixed_fields,
              "mixed": cfg.realistic_fields, "realistic": cfg.mixed_fields}[cfg.emg.value]
    changed = [f for f in others if getattr(cfg, f) != getattr(default, f)]
    if changed:
        owner = "realistic" if changed[0] in cfg.realistic_fields else "mixed"
        raise UserError(f"dataset.{changed[0]}: set, but it belongs to the {owner} EMG "
                        f"(add dataset.emg={owner})")
    if cfg.emg.value == "mixed" and cfg.axial_fraction + cfg.flat_fraction > 1.0:
        raise UserError(f"dataset.flat_fraction: axial_fraction + flat_fraction must be <= 1, "
                        f"got {cfg.axial_fraction} + {cfg.flat_fraction}")
    if cfg.emg.value != "realistic":
        return
    if cfg.noise != default.noise:
        raise UserError("dataset.noise: set, but it is the ideal EMG's noise; the realistic "
                        "EMG's are dataset.signal_noise, dataset.synergy_noise and "
                        "dataset.noise_floor")
    if cfg.kappa_low > cfg.kappa_high:
        raise UserError(f"dataset.kappa_low: must be <= dataset.kappa_high, got "
                        f"{cfg.kappa_low} > {cfg.kappa_high}")


def _mix(cfg: ReachDataset, theta: np.ndarray, pd: np.ndarray, base: np.ndarray,
         depth: np.ndarray, tuned: np.ndarray, remarks: list[str]) -> np.ndarray:
    """``emg=mixed``: the ideal channels' noise-free means (trials, channels, a.u.) with the
    last ``round(flat_fraction · n)`` channels made flat (b_c) and the ``round(axial_fraction ·
    n)`` before them axial (b_c + m_c·cos 2(θ − φ_c)), from the same φ, b and m draws."""
    n = cfg.n_channels
    n_flat = int(round(cfg.flat_fraction * n))
    n_axial = min(int(round(cfg.axial_fraction * n)), n - n_flat)
    n_cos = n - n_axial - n_flat
    out = tuned.copy()
    axial = slice(n_cos, n_cos + n_axial)
    out[:, axial] = base[axial] + depth[axial] * np.cos(2 * (theta[:, None] - pd[None, axial]))
    out[:, n_cos + n_axial:] = base[n_cos + n_axial:]
    remarks.append(f"dataset.emg=mixed: {n_cos} cosine, {n_axial} axial (cos 2θ) and {n_flat} "
                   f"untuned channels")
    return out


def _von_mises(d: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """exp(κ·(cos d − 1)): a von Mises bump of height 1 at d = 0 (d in radians, κ ≥ 0)."""
    bump: np.ndarray = np.exp(kappa * (np.cos(d) - 1.0))
    return bump


def _realistic_emg(cfg: ReachDataset, theta: np.ndarray, envelope: np.ndarray | None,
                   rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
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
        act: np.ndarray = height * (_von_mises(d, kappa) + second * _von_mises(d - np.pi, kappa))
        return act

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
        r2: np.ndarray = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                                  np.nan)
    return r2
