"""Which neurons are directionally tuned, as Georgopoulos et al. (1982) counted them, and which
cannot be judged at all (pinned at their ceiling, or near silent).

A neuron is *directional* when a one-way ANOVA of its single-trial rates across the directions
rejects equal means (Kruskal–Wallis where its spike counts hardly vary within a direction: the
rates are then discrete and near-deterministic, and the ANOVA's normal error model does not
hold), and its per-direction means differ by at least ``min_modulation_spikes`` spikes per
trial. It is *cosine* (``cosine_fit``) when directional and the cosine explains at least
``cosine_r2`` of its means' variance (R², an effect size, not a test that more trials make
stricter). Pinned and near-silent neurons are flagged and never directional.

Everything works on plain arrays: rates (n_trials, N) in Hz, directions (n_trials,) in degrees.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.analysis import angle_diff
from plugins.tuning.fit import (
    CosineFit,
    _design,
    _direction_means,
    circular_interval,
    direction_tests,
    fit_cosine,
    group_directions,
    rayleigh_test,
)

#: a neuron within this fraction of 1/τ_ref in every direction is pinned at its ceiling
PINNED_FRACTION = 0.9
#: pooled within-direction SD of the spike counts (spikes) below which the rates are treated as
#: near-deterministic: the Kruskal–Wallis test replaces the ANOVA, and the PD interval is flagged
DETERMINISTIC_SD_SPIKES = 0.5


@dataclass
class Limits:
    """What a neuron can fire and what counts as too little, for :func:`classify`.

    Attributes
    ----------
    duration_s : float
        Simulated time per trial, s: rates × duration = spikes per trial.
    dt : float
        Simulation step, s: a neuron above 1/dt fires more than once per step.
    tau_ref : float
        Refractory period, s (0: none, as for rectified-linear neurons).
    min_modulation_spikes : float
        Least (highest − lowest per-direction mean) for a directional neuron, spikes per trial.
    silent_spikes : float
        A neuron whose highest per-direction mean is below this is near silent, spikes per trial.
    """

    duration_s: float
    dt: float
    tau_ref: float = 0.0
    min_modulation_spikes: float = 1.0
    silent_spikes: float = 1.0

    @property
    def ceiling_hz(self) -> float:
        """1/τ_ref, Hz (inf without a refractory period)."""
        return 1.0 / self.tau_ref if self.tau_ref > 0 else float("inf")


@dataclass
class Directional:
    """Directional tuning of ``N`` neurons; arrays of shape (N,).

    Attributes
    ----------
    anova_p : ndarray
        p of the one-way ANOVA (or Kruskal–Wallis, see ``test``) across directions; 1 where the
        rate is constant.
    q_value : ndarray
        Benjamini–Hochberg adjusted ``anova_p`` over the neurons that are neither pinned nor near
        silent (NaN for those); equal to ``anova_p`` when FDR control is off.
    test : ndarray of str
        ``anova``, ``kruskal`` (near-deterministic counts) or ``none`` (constant rate).
    modulation_spikes : ndarray
        (Highest − lowest per-direction mean rate) × trial duration, spikes per trial.
    near_deterministic : ndarray of bool
        Pooled within-direction SD of the spike counts below ``DETERMINISTIC_SD_SPIKES``.
    pinned, near_silent : ndarray of bool
        See :func:`classify`.
    directional, cosine_fit : ndarray of bool
        The paper's count, and its cosine-shaped part.
    lof_rms_hz : ndarray
        Root-mean-square departure of the per-direction means from the fitted cosine, Hz: the
        size of the lack of fit whose significance ``lof_p_value`` gives.
    """

    anova_p: np.ndarray
    q_value: np.ndarray
    test: np.ndarray
    modulation_spikes: np.ndarray
    near_deterministic: np.ndarray
    pinned: np.ndarray
    near_silent: np.ndarray
    directional: np.ndarray
    cosine_fit: np.ndarray
    lof_rms_hz: np.ndarray

    @property
    def counted(self) -> np.ndarray:
        """Neurons the headline fractions count: neither pinned nor near silent."""
        counted: np.ndarray = ~(self.pinned | self.near_silent)
        return counted


def classify(rates: np.ndarray, directions: np.ndarray, fit: CosineFit, limits: Limits,
             alpha: float = 0.05, cosine_r2: float = 0.7, fdr: bool = False) -> Directional:
    """Directional and cosine tuning of every neuron, with pinned and near-silent ones set apart.

    Parameters
    ----------
    rates : ndarray, shape (n_trials, N)
        Single-trial rates, Hz.
    directions : ndarray, shape (n_trials,)
        Directions, degrees.
    fit : CosineFit
        ``fit_cosine(rates, directions)``.
    limits : Limits
        Trial duration, step, refractory period and the two spike-count floors.
    alpha : float
        Level of the test across directions.
    cosine_r2 : float
        Least R² of the cosine on the means for ``cosine_fit``.
    fdr : bool
        Control the false discovery rate over the counted neurons (Benjamini–Hochberg,
        ``scipy.stats.false_discovery_control``) instead of testing each at ``alpha``.

    Returns
    -------
    Directional

    Notes
    -----
    ``pinned``: every per-direction mean within 10% of 1/τ_ref, or above one spike per step
    (1/dt): the neuron sits at its ceiling, and what little it varies (one spike more or less
    of 50) says nothing about direction. ``near_silent``: the highest per-direction mean below
    ``limits.silent_spikes`` spikes per trial. Both are never directional. Without FDR control
    about ``alpha`` of untuned counted neurons are still called directional: the expected
    false-positive floor is alpha × (untuned neurons).
    """
    from scipy import stats

    mean, t = fit.mean, limits.duration_s
    k, n = len(fit.directions), fit.n
    counts_sd = np.sqrt(fit.within_ss / max(n - k, 1)) * t  # pooled SD, spikes per trial
    near_det = counts_sd < DETERMINISTIC_SD_SPIKES
    p, test = direction_tests(rates, directions, kruskal=near_det)
    modulation = np.ptp(mean, axis=0) * t
    pinned = (np.all(mean >= PINNED_FRACTION * limits.ceiling_hz, axis=0)
              | np.all(mean > 1.0 / limits.dt, axis=0))
    near_silent = ~pinned & (mean.max(axis=0) * t < limits.silent_spikes)
    counted = ~(pinned | near_silent)
    q = np.full(p.shape, np.nan)
    if counted.any():
        q[counted] = stats.false_discovery_control(p[counted]) if fdr else p[counted]
    directional = counted & (q < alpha) & (modulation >= limits.min_modulation_spikes)
    cos = fit.baseline + np.outer(np.cos(np.deg2rad(fit.directions)), fit.b1) \
        + np.outer(np.sin(np.deg2rad(fit.directions)), fit.b2)
    lof_rms = np.sqrt(np.mean((mean - cos) ** 2, axis=0))
    return Directional(anova_p=p, q_value=q, test=test, modulation_spikes=modulation,
                       near_deterministic=near_det, pinned=pinned, near_silent=near_silent,
                       directional=directional,
                       cosine_fit=directional & (np.nan_to_num(fit.r2, nan=-1.0) >= cosine_r2),
                       lof_rms_hz=lof_rms)


def axial_rayleigh(angles_deg: np.ndarray) -> tuple[float, float]:
    """Rayleigh test of the doubled angles: clustering along an axis (PDs at φ and φ + 180°),
    which the unimodal test cannot see. Returns (p, R̄ of the doubled angles)."""
    return rayleigh_test(2.0 * np.asarray(angles_deg, dtype=float))


# ------------------------------------------------------------------------------ drift over time
@dataclass
class Drift:
    """The test of each neuron's PD drift over the time bins of a sequence; arrays (N,).

    Attributes
    ----------
    p_value : ndarray
        Bonferroni-corrected (× n_bins, capped at 1) smallest per-bin p of "this bin's PD is the
        whole trial's"; NaN for neurons not tested.
    drifts : ndarray of bool
        ``p_value`` < alpha.
    drift_deg : ndarray
        Largest |PD(bin) − PD(whole trial)| over the bins that reject at alpha / n_bins,
        degrees in [0, 180]; 0 when none does, NaN when not tested.
    """

    p_value: np.ndarray
    drifts: np.ndarray
    drift_deg: np.ndarray


def drift_test(binned_rates: np.ndarray, directions: np.ndarray, pd_deg: np.ndarray,
               tested: np.ndarray, alpha: float = 0.05) -> Drift:
    """Does each neuron's PD move over the sequence? Tested against a null, bin by bin.

    In each bin the single-trial cosine b0 + b1·cos θ + b2·sin θ is fitted by least squares, and
    its component perpendicular to the whole-trial PD φ, b⊥ = −b1·sin φ + b2·cos φ, is tested
    against 0 by its t statistic (n − 3 degrees of freedom, residual variance of that bin's
    fit): b⊥ = 0 is "the bin's PD interval contains φ". A neuron drifts when some bin rejects
    at alpha / n_bins (Bonferroni over the bins), so a stable neuron drifts with probability at
    most about alpha however many bins there are; a maximum of |ΔPD| over bins, the statistic
    this replaces, grows with the number of bins for any neuron.

    Parameters
    ----------
    binned_rates : ndarray, shape (n_trials, n_bins, N)
        Rates per bin, Hz.
    directions : ndarray, shape (n_trials,)
        Degrees.
    pd_deg : ndarray, shape (N,)
        Whole-trial PDs, degrees.
    tested : ndarray of bool, shape (N,)
        The neurons to test (the directional ones); the others get NaN.
    alpha : float
        Family-wise level per neuron.

    Returns
    -------
    Drift
    """
    from scipy import stats

    b = np.asarray(binned_rates, dtype=float)
    n_trials, n_bins, n = b.shape
    dirs, inv = group_directions(directions)
    counts, mean, within, _ = _direction_means(b.reshape(n_trials, -1), inv, len(dirs))
    x = _design(dirs)
    xtcx_inv = np.linalg.inv(x.T @ (x * counts[:, None]))
    coef = xtcx_inv @ (x * counts[:, None]).T @ mean  # (3, n_bins·N), single-trial fit
    ss_res = within.sum(axis=0) + counts @ (mean - x @ coef) ** 2
    s2 = ss_res / (n_trials - 3)
    phi = np.tile(np.deg2rad(np.asarray(pd_deg, float)), n_bins)
    u = np.stack([np.zeros_like(phi), -np.sin(phi), np.cos(phi)])  # (3, n_bins·N)
    perp = np.sum(u * coef, axis=0)
    se = np.sqrt(s2 * np.einsum("in,ij,jn->n", u, xtcx_inv, u))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_bin = 2.0 * stats.t.sf(np.abs(perp / se), n_trials - 3)
    p_bin = np.where(np.isfinite(p_bin), p_bin, 1.0).reshape(n_bins, n)  # constant bins: no PD
    reject = p_bin < alpha / n_bins
    bin_pd = np.rad2deg(np.arctan2(coef[2], coef[1])).reshape(n_bins, n)
    diff = np.abs(angle_diff(bin_pd, np.asarray(pd_deg, float)[None, :]))
    tested = np.asarray(tested, bool)
    p = np.where(tested, np.minimum(1.0, p_bin.min(axis=0) * n_bins), np.nan)
    worst = np.max(np.where(reject, diff, 0.0), axis=0)
    return Drift(p_value=p, drifts=tested & (p < alpha), drift_deg=np.where(tested, worst, np.nan))


# ------------------------------------------------------------------ intervals beyond the cosine's
def depth_interval_bca(rates: np.ndarray, directions: np.ndarray, n_boot: int, ci: float,
                       seed: Any, max_elements: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated (BCa) bootstrap interval of each neuron's cosine depth, Hz.

    ``scipy.stats.bootstrap`` with ``method="BCa"``: the directions are its samples, each
    resampled on its own (a stratified bootstrap), the statistic the depth of the cosine fitted
    to the per-direction means. BCa shifts the interval for the depth's upward bias, which is
    large when the depth is small against the trial noise (a length of noisy coefficients is
    never below 0): the percentile interval there rarely covers the truth. The bias is not
    removed at zero depth: an unmodulated neuron still gets an interval above 0.

    Returns
    -------
    low, high : ndarray, shape (N,)
        NaN with ``n_boot`` = 0 or a direction with a single trial; a neuron whose BCa cannot
        be formed (constant resamples) gets the percentile interval.
    """
    from scipy import stats

    r = np.asarray(rates, dtype=float)
    n_neurons = r.shape[1]
    low, high = np.full(n_neurons, np.nan), np.full(n_neurons, np.nan)
    dirs, inv = group_directions(directions)
    if n_boot <= 0 or np.bincount(inv).min() < 2:  # a direction seen once cannot be resampled
        return low, high
    pinv = np.linalg.pinv(_design(dirs))

    def depth(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        means = np.stack([s.mean(axis=axis) for s in samples], axis=-1)  # (..., k)
        coef = means @ pinv.T
        d: np.ndarray = np.hypot(coef[..., 1], coef[..., 2])
        return d

    rng = np.random.default_rng(seed)
    step = max(1, max_elements // (n_boot * len(r)))
    for a in range(0, n_neurons, step):
        cols = slice(a, min(a + step, n_neurons))
        data = tuple(r[inv == j, cols] for j in range(len(dirs)))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # degenerate (constant) neurons: NaN, handled below
            for method in ("BCa", "percentile"):
                res = stats.bootstrap(data, depth, n_resamples=n_boot, confidence_level=ci,
                                      method=method, vectorized=True, axis=0, random_state=rng)
                lo, hi = res.confidence_interval
                todo = np.isnan(low[cols])
                low[cols] = np.where(todo, lo, low[cols])
                high[cols] = np.where(todo, hi, high[cols])
    return low, high


def pd_shift_interval(rates: np.ndarray, x: np.ndarray, directions: np.ndarray, n_boot: int,
                      ci: float, seed: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each neuron's PD shift, PD(rate) − PD(x), and its paired stratified bootstrap interval.

    Rates and input x of a neuron are resampled with the same trials, so the interval is that of
    the difference. Returns (shift, low, high), degrees in [−180, 180); the interval runs from
    low to high through the shift and may pass ±180°. NaN intervals with ``n_boot`` = 0.
    """
    r, xx = np.asarray(rates, float), np.asarray(x, float)
    both = np.concatenate([r, xx], axis=1)
    fit = fit_cosine(both, directions)
    n = r.shape[1]
    shift = angle_diff(fit.pd_deg[:n], fit.pd_deg[n:])
    if n_boot <= 0:
        nan = np.full(n, np.nan)
        return shift, nan, nan.copy()
    rng = np.random.default_rng(seed)
    dirs, inv = group_directions(directions)
    pinv = np.linalg.pinv(_design(dirs))
    means = np.empty((n_boot, len(dirs), both.shape[1]))
    for j in range(len(dirs)):
        rows = both[inv == j]
        c = len(rows)
        means[:, j] = rng.multinomial(c, np.full(c, 1.0 / c), size=n_boot) @ rows / c
    coef = np.einsum("pk,bkm->bpm", pinv, means)
    pds = np.rad2deg(np.arctan2(coef[:, 2], coef[:, 1]))
    shifts = angle_diff(pds[:, :n], pds[:, n:])
    lo, hi, _ = circular_interval(shifts, shift, ci)
    return shift, angle_diff(lo, 0.0), angle_diff(hi, 0.0)
