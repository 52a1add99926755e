"""Statistics of the tuning analysis: cosine fits and their F-tests, bootstrap intervals, the
Rayleigh test, rectified-cosine and von Mises fits, tuning over time.

After Georgopoulos et al. (1982): each neuron's rate is averaged per movement direction and the
means are fitted by least squares with r(θ) = b0 + b1·cos θ + b2·sin θ = b0 + depth·cos(θ − PD).
Every fit is vectorised over neurons (one least-squares solve for all of them) and works on plain
arrays: rates (n_trials, N) in Hz, directions (n_trials,) in degrees.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.analysis import angle_diff

#: directions closer than this are one direction (degrees); absorbs float noise in user data
DIRECTION_DECIMALS = 6
#: sectors continuous directions are pooled into (Georgopoulos et al. 1982 used 8 targets)
SECTORS = 8
#: the tuning-curve models, simplest first (AICc ties go to the earlier one); free parameters
MODELS = ("cosine", "rectified_cosine", "von_mises")
N_PARAMS = {"cosine": 3, "rectified_cosine": 3, "von_mises": 4}
#: upper bound of the von Mises concentration κ (dimensionless); 50: a peak 19° wide at half height
KAPPA_MAX = 50.0


@dataclass
class CosineFit:
    """Per-direction means and cosine fits of ``N`` neurons; arrays of shape (N,) unless noted.

    Attributes
    ----------
    directions : ndarray, shape (k,)
        The distinct directions, degrees in [0, 360), ascending.
    n_trials : ndarray of int, shape (k,)
        Trials per direction.
    mean, sd : ndarray, shape (k, N)
        Mean and sample SD (ddof 1; 0 with one trial) of each neuron's rate per direction, Hz.
    baseline, b1, b2 : ndarray
        Least-squares coefficients of b0 + b1·cos θ + b2·sin θ on the means, Hz.
    depth : ndarray
        √(b1² + b2²), Hz.
    pd_deg : ndarray
        atan2(b2, b1), degrees in [0, 360).
    r2 : ndarray
        Coefficient of determination of the fit on the means; NaN where the means are constant
        (silent or saturated neurons), whose b1 and b2 are then set to exactly 0.
    f_stat, p_value : ndarray
        Single-trial F-test of the cosine model against a constant rate, with (2, n − 3) degrees of
        freedom. Constant neurons get F = NaN and p = 1.
    resid_var : ndarray
        Single-trial residual variance about the cosine fit, SS_res / (n − 3), Hz².
    within_ss : ndarray
        Pure-error sum of squares: the trials' squared deviations from their direction's mean,
        summed over directions, Hz².
    lof_f_stat, lof_p_value : ndarray
        Lack-of-fit F-test of the cosine shape, (SS_lof / (k − 3)) / (SS_pe / (n − k)) with
        SS_pe = ``within_ss`` and SS_lof = SS_res − SS_pe; small p: the per-direction means
        depart from a cosine by more than the trial noise explains. NaN when it cannot be tested
        (k < 4 directions, or no direction with two trials). Without trial noise (SS_pe = 0) the
        means either are a cosine to rounding (F = NaN, p = 1; constant neurons too) or not
        (F = inf, p = 0).
    """

    directions: np.ndarray
    n_trials: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    baseline: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    depth: np.ndarray
    pd_deg: np.ndarray
    r2: np.ndarray
    f_stat: np.ndarray
    p_value: np.ndarray
    resid_var: np.ndarray
    within_ss: np.ndarray
    lof_f_stat: np.ndarray
    lof_p_value: np.ndarray

    def cosine_rejected(self, alpha: float = 0.05) -> np.ndarray:
        """Boolean mask of neurons whose cosine shape the lack-of-fit test rejects at ``alpha``
        (False where it cannot be tested)."""
        return self.lof_p_value < alpha  # NaN compares False

    @property
    def n(self) -> int:
        """Number of trials."""
        return int(self.n_trials.sum())

    @property
    def ss_res(self) -> np.ndarray:
        """Single-trial residual sum of squares about the cosine fit, Hz²."""
        return self.resid_var * (self.n - 3)

    def curve(self, theta_deg: np.ndarray, neuron: int) -> np.ndarray:
        """The fitted cosine of one neuron at ``theta_deg`` (degrees), Hz."""
        t = np.deg2rad(theta_deg)
        rate: np.ndarray = (self.baseline[neuron] + self.b1[neuron] * np.cos(t)
                            + self.b2[neuron] * np.sin(t))
        return rate


def group_directions(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct directions (degrees in [0, 360)) and each trial's index into them.

    Continuous directions (reaches to arbitrary targets: more distinct directions than half the
    trials) are pooled into :data:`SECTORS` sectors centred on 0°, 45°, ...: a one-way ANOVA and
    a per-direction mean need repeated trials, and with a trial per direction every neuron would
    read as untuned. The sector's centre stands for its trials' directions (the cosine's depth
    from sector means is then about 2.6% short for 8 sectors, its PD unbiased).
    """
    d = np.round(np.mod(np.asarray(directions, dtype=float), 360.0), DIRECTION_DECIMALS)
    d[d >= 360.0] = 0.0  # 359.9999999 rounds up to 360
    dirs, inv = np.unique(d, return_inverse=True)
    if len(dirs) <= len(d) / 2:
        return dirs, inv
    width = 360.0 / SECTORS
    sectors, inv = np.unique(np.round(d / width).astype(int) % SECTORS, return_inverse=True)
    return sectors * width, inv


def _design(theta_deg: np.ndarray) -> np.ndarray:
    """The cosine model's design matrix (1, cos θ, sin θ), shape (k, 3), of θ in degrees."""
    t = np.deg2rad(theta_deg)
    return np.stack([np.ones_like(t), np.cos(t), np.sin(t)], axis=1)


def _wrap360(deg: np.ndarray) -> np.ndarray:
    """Degrees to [0, 360) (−1e-15 mod 360 is 360.0 in floating point)."""
    out = np.mod(np.asarray(deg, dtype=float), 360.0)
    return np.where(out >= 360.0, 0.0, out)


def fit_cosine(rates: np.ndarray, directions: np.ndarray) -> CosineFit:
    """Fit cosine tuning to every neuron at once, with the modulation and lack-of-fit F-tests.

    Parameters
    ----------
    rates : ndarray, shape (n_trials, N)
        Each neuron's rate on each trial, Hz.
    directions : ndarray, shape (n_trials,)
        The trial's movement direction, degrees.

    Returns
    -------
    CosineFit

    Raises
    ------
    ValueError
        With fewer than 3 distinct directions (a cosine has 3 coefficients), fewer than 4 trials,
        or a non-finite direction.

    Notes
    -----
    Everything comes from the per-direction means M (k × N), the trial counts c and the
    within-direction sum of squares W: the fit on the means is one ``lstsq`` of the k × 3 design X
    against all N columns. The single-trial least-squares fit solves the count-weighted normal
    equations XᵀCX β = XᵀCM (identical to the fit on means when directions have equal trial
    counts), and its residual sum of squares is W + Σ_k c_k (M_k − X_k β)², so no n × N fitted
    array is formed. F = ((SS_const − SS_cos) / 2) / (SS_cos / (n − 3)). The second term is the
    lack of fit, W the pure error (Draper & Smith, *Applied Regression Analysis*, §2.1).
    """
    raw_dtype = np.asarray(rates).dtype
    r = np.asarray(rates, dtype=float)
    dirs, inv = _grouped_trials(r, directions)
    k, n = len(dirs), len(r)
    counts, mean, within_dir, sd = _direction_means(r, inv, k)

    x = _design(dirs)
    coef = np.linalg.lstsq(x, mean, rcond=None)[0]  # (3, N), all neurons in one solve
    r2 = _r2_on_means(mean, x @ coef, k)

    # single trials: the count-weighted fit, and sums of squares from means and W
    xc = x * counts[:, None]
    coef_t = np.linalg.solve(x.T @ xc, xc.T @ mean)
    w = within_dir.sum(axis=0)
    trial_grand = (counts @ mean) / n
    ss_tot = w + counts @ (mean - trial_grand) ** 2
    ss_lof = counts @ (mean - x @ coef_t) ** 2
    ss_res = np.minimum(w + ss_lof, ss_tot)  # rounding must not make a cosine worse than a constant
    f_stat, p_value = _modulation_test(ss_tot, ss_res, trial_grand, n)
    lof_f, lof_p = _lack_of_fit(ss_lof, w, k, n, mean, trial_grand, raw_dtype)

    b0, b1, b2 = coef
    flat = np.isnan(r2)  # constant means: no modulation, so b1 = b2 = 0 exactly (PD 0°, depth 0)
    b1, b2 = np.where(flat, 0.0, b1), np.where(flat, 0.0, b2)
    pd_deg = _wrap360(np.rad2deg(np.arctan2(b2, b1)))
    return CosineFit(directions=dirs, n_trials=counts, mean=mean, sd=sd, baseline=b0, b1=b1,
                     b2=b2, depth=np.hypot(b1, b2), pd_deg=pd_deg, r2=r2, f_stat=f_stat,
                     p_value=p_value, resid_var=ss_res / (n - 3), within_ss=w, lof_f_stat=lof_f,
                     lof_p_value=lof_p)


def direction_tests(rates: np.ndarray, directions: np.ndarray,
                    kruskal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """p of the one-way ANOVA across directions (``scipy.stats.f_oneway``), and of Kruskal–Wallis
    (``scipy.stats.kruskal``) for the neurons in ``kruskal``; p = 1 where a rate is constant.

    Returns
    -------
    p : ndarray, shape (N,)
    test : ndarray of str, shape (N,)
        ``anova``, ``kruskal`` or ``none`` (constant: no test).
    """
    from scipy import stats

    r = np.asarray(rates, dtype=float)
    inv = group_directions(directions)[1]
    groups = [r[inv == k] for k in range(inv.max() + 1)]
    kw = np.zeros(r.shape[1], bool) if kruskal is None else np.asarray(kruskal, bool)
    p = np.ones(r.shape[1])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # constant columns: SciPy warns and returns NaN
        if (~kw).any():
            p[~kw] = stats.f_oneway(*[g[:, ~kw] for g in groups], axis=0).pvalue
        if kw.any():
            p[kw] = stats.kruskal(*[g[:, kw] for g in groups], axis=0).pvalue
    constant = np.ptp(r, axis=0) <= 1e-9 * (1.0 + np.abs(r).max(axis=0, initial=0.0))
    p = np.where(np.isnan(p) | constant, 1.0, p)
    test = np.where(constant, "none", np.where(kw, "kruskal", "anova")).astype(object)
    return p, test


def _grouped_trials(r: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct directions and each trial's index into them, after checking that a cosine
    and its F-test can be fitted (see :func:`fit_cosine`, Raises)."""
    if r.ndim != 2 or len(r) != len(directions):
        raise ValueError(f"rates must be (n_trials, N) with n_trials = {len(directions)}, "
                         f"got shape {r.shape}")
    if not np.all(np.isfinite(directions)):
        raise ValueError("directions must be finite numbers of degrees")
    dirs, inv = group_directions(directions)
    if len(dirs) < 3:
        raise ValueError(f"a cosine fit needs trials in at least 3 distinct directions, got "
                         f"{len(dirs)}")
    if len(r) < 4:
        raise ValueError(f"the single-trial F-test needs at least 4 trials, got {len(r)}")
    return dirs, inv


def _direction_means(r: np.ndarray, inv: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trials per direction (k,), and per direction and neuron (k, N) the mean rate (Hz), the
    sum of squares about it (Hz²) and the sample SD (ddof 1; 0 with one trial; Hz)."""
    n = len(r)
    counts = np.bincount(inv, minlength=k)
    onehot = np.zeros((k, n))
    onehot[inv, np.arange(n)] = 1.0
    mean = (onehot @ r) / counts[:, None]
    within_dir = onehot @ (r - mean[inv]) ** 2  # (k, N) sum of squares about each direction's mean
    sd = np.sqrt(within_dir / np.maximum(counts - 1, 1)[:, None])
    return counts, mean, within_dir, sd


def _r2_on_means(mean: np.ndarray, fitted: np.ndarray, k: int) -> np.ndarray:
    """R² of the fit ``fitted`` (k, N) on the per-direction means; NaN where the means are
    constant up to rounding (relative to the rate's size: float32 rates)."""
    grand = mean.mean(axis=0)
    ss_tot_m = ((mean - grand) ** 2).sum(axis=0)
    ss_res_m = ((mean - fitted) ** 2).sum(axis=0)
    scale = 1.0 + np.abs(grand)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2: np.ndarray = np.where(ss_tot_m > k * (1e-9 * scale) ** 2, 1.0 - ss_res_m / ss_tot_m,
                                  np.nan)
    return r2


def _modulation_test(ss_tot: np.ndarray, ss_res: np.ndarray, trial_grand: np.ndarray,
                     n: int) -> tuple[np.ndarray, np.ndarray]:
    """F and p of the cosine against a constant rate on single trials, (2, n − 3) degrees of
    freedom; F = NaN and p = 1 for neurons whose rate is constant."""
    from scipy import stats

    df_res = n - 3
    constant = ss_tot <= n * (1e-9 * (1.0 + np.abs(trial_grand))) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        f_stat = ((ss_tot - ss_res) / 2.0) / (ss_res / df_res)
    f_stat = np.where(constant, np.nan, f_stat)  # 0/0; a noiseless cosine keeps F = inf, p = 0
    p_value = np.where(constant, 1.0, stats.f.sf(np.where(constant, 0.0, f_stat), 2, df_res))
    return f_stat, p_value


def _lack_of_fit(ss_lof: np.ndarray, ss_pe: np.ndarray, k: int, n: int, mean: np.ndarray,
                 trial_grand: np.ndarray, dtype: np.dtype[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The pure-error lack-of-fit F and p (see :class:`CosineFit`); NaN where untestable."""
    from scipy import stats

    df_lof, df_pe = k - 3, n - k
    if df_lof < 1 or df_pe < 1:
        nan = np.full(ss_lof.shape, np.nan)
        return nan, nan.copy()
    # without trial noise, a lack of fit at the rates' own rounding (float32 input) is no lack
    eps = np.finfo(dtype).eps if np.issubdtype(dtype, np.floating) else np.finfo(float).eps
    no_noise = ss_pe <= n * (1e-9 * (1.0 + np.abs(trial_grand))) ** 2
    exact = ss_lof <= n * (8 * eps * (1.0 + np.abs(mean).max(axis=0))) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss_lof / df_lof) / (ss_pe / df_pe)
    f = np.where(no_noise, np.where(exact, np.nan, np.inf), f)
    p = np.where(no_noise & exact, 1.0, stats.f.sf(np.where(np.isnan(f), 0.0, f), df_lof, df_pe))
    return f, p


# -------------------------------------------------------------------------- bootstrap intervals
@dataclass
class CosineCI:
    """Bootstrap confidence intervals of ``N`` neurons' cosine fits; arrays of shape (N,).

    Attributes
    ----------
    ci : float
        Confidence level (fraction).
    n_boot : int
        Resamples; 0 when the intervals were not computed (every array NaN).
    pd_low_deg, pd_high_deg : ndarray
        Ends of the PD interval, degrees in [0, 360); the interval runs counter-clockwise from
        ``pd_low_deg`` to ``pd_high_deg``, so it wraps through 0° when low > high.
    pd_width_deg : ndarray
        Its width, degrees in [0, 360]; 360: the PD is undetermined.
    depth_low_hz, depth_high_hz : ndarray
        Percentile interval of the depth, Hz.
    """

    ci: float
    n_boot: int
    pd_low_deg: np.ndarray
    pd_high_deg: np.ndarray
    pd_width_deg: np.ndarray
    depth_low_hz: np.ndarray
    depth_high_hz: np.ndarray


def circular_interval(samples_deg: np.ndarray, center_deg: np.ndarray,
                      ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval of angles about a point estimate, by their wrapped differences.

    Parameters
    ----------
    samples_deg : ndarray, shape (B, N)
        Resampled angles, degrees. NaN is an undefined angle (a resample without modulation):
        it counts as the farthest possible, half of them at −180° and half at +180°, so that
        with many of them the interval grows to the whole circle rather than shrinking.
    center_deg : ndarray, shape (N,)
        The point estimates, degrees.
    ci : float
        Confidence level, in (0, 1).

    Returns
    -------
    low, high, width : ndarray, shape (N,)
        ``low`` and ``high`` in [0, 360) (the interval runs counter-clockwise from low to high),
        ``width`` = high − low unwrapped, degrees in [0, 360].
    """
    diff = angle_diff(samples_deg, center_deg)  # [−180, 180): no jump at 0°/360°
    undefined = np.isnan(diff)
    if undefined.any():
        side = np.where(np.arange(len(diff)) % 2 == 0, -180.0, 180.0)[:, None]
        diff = np.where(undefined, side, diff)
    q_lo, q_hi = np.quantile(diff, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0], axis=0)
    return _wrap360(center_deg + q_lo), _wrap360(center_deg + q_hi), q_hi - q_lo


def bootstrap_cosine(rates: np.ndarray, directions: np.ndarray, n_boot: int = 500,
                     ci: float = 0.95, seed: Any = 0, fit: CosineFit | None = None,
                     max_elements: int = 4_000_000) -> CosineCI:
    """Stratified bootstrap confidence intervals of every neuron's preferred direction and depth.

    Each resample draws, within every direction, as many trials as it has, with replacement (the
    same trials for all neurons), and refits the cosine to the resampled per-direction means. The
    PD interval is the percentile interval of the resampled PDs' wrapped differences from the
    point estimate (:func:`circular_interval`; a resample whose means are constant has no PD and
    counts as the farthest); the depth interval the percentile interval of the resampled depths
    (like any percentile interval of a length, it lies above 0 even for an unmodulated neuron;
    use ``p_value`` for whether there is modulation at all).

    Parameters
    ----------
    rates : ndarray, shape (n_trials, N)
        Rates, Hz.
    directions : ndarray, shape (n_trials,)
        Directions, degrees.
    n_boot : int
        Resamples; 0 returns NaN intervals.
    ci : float
        Confidence level, in (0, 1).
    seed : int, sequence of int or numpy.random.Generator
        Seeds the resampling.
    fit : CosineFit, optional
        ``fit_cosine(rates, directions)``, when already computed (the point estimates).
    max_elements : int
        Bound on the resampled means held at once (resamples × directions × neurons); neurons
        are processed in chunks under it.

    Returns
    -------
    CosineCI
        Neurons with constant means (NaN ``r2``) get a NaN PD interval and the depth interval
        [0, 0].

    Notes
    -----
    Vectorised: a resample is a (n_boot × c_k) matrix of multinomial trial weights per direction;
    one matrix product per direction gives the resampled means of all neurons, and one product
    with the design's pseudo-inverse their cosine coefficients. The fit on the means is the
    point estimate's own estimator, and a stratified resample keeps the trial counts.
    """
    r = np.asarray(rates, dtype=float)
    fit = fit_cosine(r, directions) if fit is None else fit
    n_neurons = r.shape[1]
    if n_boot <= 0:
        nan = np.full(n_neurons, np.nan)
        return CosineCI(ci, 0, nan, nan.copy(), nan.copy(), nan.copy(), nan.copy())
    rng = np.random.default_rng(seed)
    inv = group_directions(directions)[1]
    order = np.argsort(inv, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(fit.n_trials)])
    weights = [rng.multinomial(c, np.full(c, 1.0 / c), size=n_boot) / c for c in fit.n_trials]
    r_sorted = r[order]
    pinv = np.linalg.pinv(_design(fit.directions))  # (3, k)
    k = len(fit.directions)
    out = {name: np.empty(n_neurons) for name in ("pl", "ph", "pw", "dl", "dh")}
    step = max(1, max_elements // (n_boot * k))
    for a in range(0, n_neurons, step):
        cols = slice(a, min(a + step, n_neurons))
        means = np.stack([w @ r_sorted[bounds[j]:bounds[j + 1], cols]
                          for j, w in enumerate(weights)], axis=1)  # (B, k, m)
        coef = np.einsum("pk,bkm->bpm", pinv, means)
        pd_b = np.rad2deg(np.arctan2(coef[:, 2], coef[:, 1]))
        # a resample whose means are constant (a near-silent neuron's one spike left out) has no
        # PD: atan2(0, 0) = 0° would be a made-up direction
        scale = 1e-9 * (1.0 + np.abs(means).max(axis=1))
        pd_b[np.hypot(coef[:, 1], coef[:, 2]) <= scale] = np.nan
        out["pl"][cols], out["ph"][cols], out["pw"][cols] = circular_interval(
            pd_b, fit.pd_deg[cols], ci)
        out["dl"][cols], out["dh"][cols] = np.quantile(
            np.hypot(coef[:, 1], coef[:, 2]), [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0], axis=0)
    flat = np.isnan(fit.r2)  # no modulation at all: no direction to bound
    for name in ("pl", "ph", "pw"):
        out[name][flat] = np.nan
    out["dl"][flat] = out["dh"][flat] = 0.0
    return CosineCI(ci, int(n_boot), out["pl"], out["ph"], out["pw"], out["dl"], out["dh"])


def mean_ci(fit: CosineFit, ci: float = 0.95) -> np.ndarray:
    """Half-width of the t-interval of each per-direction mean, shape (k, N), Hz (NaN for a
    direction with one trial): t_{(1+ci)/2, c−1} · sd / √c."""
    from scipy import stats

    c = fit.n_trials.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(c > 1, stats.t.ppf((1.0 + ci) / 2.0, np.maximum(c - 1, 1)), np.nan)
    half: np.ndarray = t[:, None] * fit.sd / np.sqrt(c)[:, None]
    return half


def concat_fits(fits: list[CosineFit]) -> CosineFit:
    """Fits of several layers (same trials) as one population."""
    per_neuron = ("baseline", "b1", "b2", "depth", "pd_deg", "r2", "f_stat", "p_value",
                  "resid_var", "within_ss", "lof_f_stat", "lof_p_value")
    first = fits[0]
    joined = {name: np.concatenate([getattr(f, name) for f in fits]) for name in per_neuron}
    return CosineFit(directions=first.directions, n_trials=first.n_trials,
                     mean=np.concatenate([f.mean for f in fits], axis=1),
                     sd=np.concatenate([f.sd for f in fits], axis=1), **joined)


# ------------------------------------------------------------------------ population statistics
def rayleigh_test(angles_deg: np.ndarray) -> tuple[float, float]:
    """Rayleigh test of uniformity of a sample of angles against a unimodal alternative.

    Parameters
    ----------
    angles_deg : ndarray
        Angles, degrees; NaN entries are left out.

    Returns
    -------
    p : float
        p-value by Zar's approximation (Zar 1999, eq. 27.4),
        p ≈ exp(√(1 + 4n + 4(n² − R_n²)) − (1 + 2n)) with R_n = n·R̄, clipped to [0, 1]; small p:
        the angles cluster. NaN for an empty sample.
    resultant_length : float
        R̄, the mean resultant length in [0, 1] (``scipy.stats.directional_stats``): 0 for angles
        spread evenly, 1 for identical ones.

    Notes
    -----
    SciPy (1.17) has the mean resultant but no Rayleigh test, hence the formula.
    """
    from scipy.stats import directional_stats

    a = np.deg2rad(np.asarray(angles_deg, dtype=float).ravel())
    a = a[np.isfinite(a)]
    n = len(a)
    if n == 0:
        return float("nan"), float("nan")
    r_bar = float(directional_stats(np.stack([np.cos(a), np.sin(a)], axis=1),
                                    normalize=False).mean_resultant_length)
    r_n = n * r_bar
    p = np.exp(np.sqrt(1.0 + 4.0 * n + 4.0 * (n * n - r_n * r_n)) - (1.0 + 2.0 * n))
    return float(np.clip(p, 0.0, 1.0)), r_bar


# ------------------------------------------------------------------ rectified cosine, von Mises
def rectified_cosine(theta_deg: Any, baseline: Any, depth: Any, pd_deg: Any,
                     ceiling_hz: Any = np.inf) -> np.ndarray:
    """min(ceiling, max(0, b + d·cos(θ − PD))), Hz; the arguments (degrees, Hz) broadcast."""
    rate: np.ndarray = np.clip(
        baseline + depth * np.cos(np.deg2rad(np.subtract(theta_deg, pd_deg))), 0.0, ceiling_hz)
    return rate


def von_mises(theta_deg: Any, trough: Any, amplitude: Any, kappa: Any, pd_deg: Any) -> np.ndarray:
    """The von Mises tuning curve t + m·g_κ(θ − PD), Hz; the arguments broadcast.

    g_κ(φ) = (e^{κ(cos φ − 1)} − e^{−2κ}) / (1 − e^{−2κ}) runs from 0 (at φ = 180°) to 1 (at
    PD), so ``trough`` (Hz) is the rate opposite the PD and ``amplitude`` (Hz) the peak's height
    above it. This is Amirikian & Georgopoulos's (2000) b + a·exp(κ(cos(θ − PD) − 1)) with
    a = m / (1 − e^{−2κ}) and b = t − a·e^{−2κ}, written so that κ → 0 is defined: the cosine
    t + m·(1 + cos φ)/2.
    """
    rate: np.ndarray = trough + amplitude * _vm_shape(
        np.deg2rad(np.subtract(theta_deg, pd_deg)), kappa)[0]
    return rate


def _vm_shape(phi: Any, kappa: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """g_κ(φ) (see :func:`von_mises`) and its derivatives ∂g/∂κ, ∂g/∂φ."""
    phi = np.asarray(phi, float)
    if np.ndim(kappa) == 0:  # the fitting loop's case, without the masking below
        return _vm_shape_scalar(phi, float(kappa))
    phi, kappa = np.broadcast_arrays(phi, np.asarray(kappa, float))
    c, s = np.cos(phi), np.sin(phi)
    small = kappa < 1e-5  # first order in κ there; the exact form cancels catastrophically
    ks = np.where(small, 1.0, kappa)
    e, e2, den = np.exp(ks * (c - 1.0)), np.exp(-2.0 * ks), -np.expm1(-2.0 * ks)
    num = np.expm1(ks * (c - 1.0)) - np.expm1(-2.0 * ks)
    g = np.where(small, (1.0 + c) / 2.0 + kappa * (c * c - 1.0) / 4.0, num / den)
    dg_dk = np.where(small, (c * c - 1.0) / 4.0,
                     (((c - 1.0) * e + 2.0 * e2) * den - 2.0 * num * e2) / den ** 2)
    dg_dphi = np.where(small, -s / 2.0 - kappa * c * s / 2.0, -ks * s * e / den)
    return g, dg_dk, dg_dphi


def _vm_shape_scalar(phi: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_vm_shape` for one κ (the fitting loop's case), without the masking."""
    c, s = np.cos(phi), np.sin(phi)
    if kappa < 1e-5:
        return (1.0 + c) / 2.0 + kappa * (c * c - 1.0) / 4.0, (c * c - 1.0) / 4.0, \
            -s / 2.0 - kappa * c * s / 2.0
    em = np.expm1(kappa * (c - 1.0))
    e2m = np.expm1(-2.0 * kappa)
    e, e2, den = em + 1.0, e2m + 1.0, -e2m
    num = em - e2m
    return (num / den, (((c - 1.0) * e + 2.0 * e2) * den - 2.0 * num * e2) / den ** 2,
            -kappa * s * e / den)


@dataclass
class ShapeFits:
    """Rectified-cosine and von Mises fits of ``N`` neurons and the AICc comparison with the
    cosine; arrays of shape (N,) unless noted, NaN for neurons with constant means.

    Attributes
    ----------
    rcos_baseline_hz, rcos_depth_hz, rcos_pd_deg, rcos_r2 : ndarray
        b, d (Hz) and PD (degrees in [0, 360)) of max(0, b + d·cos(θ − PD)), and its R² on the
        per-direction means.
    vm_trough_hz, vm_amplitude_hz, vm_kappa, vm_pd_deg, vm_r2 : ndarray
        t, m (Hz), κ (in [0, ``KAPPA_MAX``]), PD (degrees) of :func:`von_mises`, and its R².
    ss : ndarray, shape (3, N)
        Single-trial residual sums of squares of the models in ``MODELS`` order, Hz².
    aicc : ndarray, shape (3, N)
        Their AICc (see :func:`aicc`).
    best_model : ndarray of str
        The model of least AICc (``MODELS``; ties within 1e-6 go to the simpler one), or
        ``"none"`` for constant neurons and when n ≤ 6 trials leave AICc undefined.
    """

    rcos_baseline_hz: np.ndarray
    rcos_depth_hz: np.ndarray
    rcos_pd_deg: np.ndarray
    rcos_r2: np.ndarray
    vm_trough_hz: np.ndarray
    vm_amplitude_hz: np.ndarray
    vm_kappa: np.ndarray
    vm_pd_deg: np.ndarray
    vm_r2: np.ndarray
    ss: np.ndarray
    aicc: np.ndarray
    best_model: np.ndarray


def aicc(ss: np.ndarray, n: int, n_params: int) -> np.ndarray:
    """Small-sample Akaike information criterion of a least-squares fit with Gaussian errors.

    AICc = n·ln(SS/n) + 2K + 2K(K + 1)/(n − K − 1), K = ``n_params`` + 1 (the error variance is
    estimated too). NaN when n ≤ K + 1.
    """
    kk = n_params + 1
    if n <= kk + 1:
        return np.full(np.shape(ss), np.nan)
    return n * np.log(np.asarray(ss, float) / n) + 2 * kk + 2 * kk * (kk + 1) / (n - kk - 1)


#: concentrations tried before refining the von Mises fit; 0 is the cosine itself
_KAPPA_GRID = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 18.0, 27.0, 40.0])
#: rectification levels c0 = −b/d tried for the rectified cosine's start
_CUT_GRID = np.linspace(-0.95, 0.9, 38)


def fit_shapes(fit: CosineFit, kappa_max: float = KAPPA_MAX,
               ceiling_hz: float = float("inf")) -> ShapeFits:
    """Fit a rectified cosine and a von Mises curve to every neuron and pick the best model.

    The rectified cosine is clipped at both ends, min(``ceiling_hz``, max(0, b + d·cos(θ − PD))):
    no fitted curve fires above what the neuron type can (1/τ_ref).

    Both are fitted by bounded least squares (d ≥ 0; m ≥ 0, 0 ≤ κ ≤ ``kappa_max``; the rectified
    cosine by ``scipy.optimize.least_squares`` per neuron, the von Mises curve by a vectorised
    Levenberg–Marquardt over all neurons, :func:`_fit_vm`) to the per-direction means weighted
    by trial counts, which minimises the
    single-trial residual SS_res = W + Σ_k c_k (M_k − f_k)² (W: ``fit.within_ss``). Starts are
    chosen for all neurons at once on grids: for the rectified cosine the count-weighted cosine
    fit and d·max(0, cos(θ − PD) − c0) over rectification levels c0; for the von Mises curve the
    best (t, m ≥ 0) of each κ in a grid (κ = 0 is the cosine) at the cosine's PD and at the
    direction of the highest mean. Models are compared by :func:`aicc` on SS_res with 3
    (cosine), 3 (rectified cosine) and 4 (von Mises) parameters.

    Parameters
    ----------
    fit : CosineFit
        From :func:`fit_cosine`.
    kappa_max : float
        Upper bound of κ.
    ceiling_hz : float
        The neuron type's highest rate, 1/τ_ref, Hz (inf: none).

    Returns
    -------
    ShapeFits
    """

    mean, c = fit.mean, fit.n_trials.astype(float)
    k, n_neurons = mean.shape
    theta = np.deg2rad(fit.directions)
    n = fit.n
    sw = np.sqrt(c)
    ok = np.isfinite(fit.r2)
    x = _design(fit.directions)
    xc = x * c[:, None]
    b0, b1, b2 = np.linalg.solve(x.T @ xc, xc.T @ mean)  # the single-trial (weighted) cosine
    depth0, pd0 = np.hypot(b1, b2), np.arctan2(b2, b1)
    rc0, rc_done = _rcos_starts(mean, c, theta, b0, depth0, pd0)
    rc_done &= b0 + depth0 < ceiling_hz  # the cosine under the ceiling everywhere
    vm0 = _vm_starts(mean, c, theta, pd0, min(kappa_max, _KAPPA_GRID[-1]))
    rc, vm = np.full((3, n_neurons), np.nan), np.full((4, n_neurons), np.nan)
    lof = np.full((3, n_neurons), np.nan)  # Σ c_k (M_k − f_k)² per model
    lof[0] = fit.ss_res - fit.within_ss
    for i in np.flatnonzero(ok):
        if rc_done[i]:  # the cosine, positive everywhere: a stationary point of the rectified one
            rc[:, i] = rc0[:, i]
        else:
            rc[:, i] = _fit_rcos(mean[:, i], sw, theta, rc0[:, i], ceiling_hz)
        lof[1, i] = np.sum(_rcos_residuals(rc[:, i], mean[:, i], sw, theta, ceiling_hz) ** 2)
    vm[:, ok], hard = _fit_vm(mean[:, ok], sw, theta, vm0[:, ok], kappa_max)
    for i in np.flatnonzero(ok)[hard]:  # one at a time, as scipy's least_squares does them
        vm[:, i] = _fit_vm_one(mean[:, i], sw, theta, vm0[:, i], kappa_max)
    lof[2, ok] = np.sum(_vm_residuals(vm[:, ok], mean[:, ok], sw, theta) ** 2, axis=0)

    lof[:, ~ok] = np.nan
    ss = fit.within_ss + np.maximum(lof, 0.0)
    floor = n * (1e-9 * (1.0 + np.abs(c @ mean / n))) ** 2  # rounding: exact fits tie
    crit, names = _best_model(ss, n, floor, ok)
    theta_deg = fit.directions[:, None]
    r2 = {"rc": _r2(mean, rectified_cosine(theta_deg, rc[0], rc[1], np.rad2deg(rc[2]),
                                         ceiling_hz)),
          "vm": _r2(mean, von_mises(theta_deg, vm[0], vm[1], vm[2], np.rad2deg(vm[3])))}
    return ShapeFits(rcos_baseline_hz=rc[0], rcos_depth_hz=rc[1],
                     rcos_pd_deg=_wrap360(np.rad2deg(rc[2])), rcos_r2=r2["rc"],
                     vm_trough_hz=vm[0], vm_amplitude_hz=vm[1], vm_kappa=vm[2],
                     vm_pd_deg=_wrap360(np.rad2deg(vm[3])), vm_r2=r2["vm"], ss=ss, aicc=crit,
                     best_model=names)


def _rcos_residuals(p: np.ndarray, m_i: np.ndarray, sw: np.ndarray, theta: np.ndarray,
                    ceiling: float = np.inf) -> np.ndarray:
    """Count-weighted residuals √c_k (f_k − M_k) of the rectified cosine p = (b, d, PD rad),
    clipped at ``ceiling`` (Hz)."""
    res: np.ndarray = sw * (np.clip(p[0] + p[1] * np.cos(theta - p[2]), 0.0, ceiling) - m_i)
    return res


def _vm_residuals(p: np.ndarray, mean: np.ndarray, sw: np.ndarray,
                  theta: np.ndarray) -> np.ndarray:
    """Count-weighted residuals (k, N) of the von Mises curves p = (t, m, κ, PD rad; 4 × N)."""
    res: np.ndarray = sw[:, None] * (p[0] + p[1] * _vm_shape(theta[:, None] - p[3], p[2])[0]
                                     - mean)
    return res


def _fit_rcos(m_i: np.ndarray, sw: np.ndarray, theta: np.ndarray, start: np.ndarray,
              ceiling: float = np.inf) -> np.ndarray:
    """Least-squares rectified cosine (b, d ≥ 0, PD rad) of one neuron's means ``m_i`` (Hz),
    clipped at ``ceiling`` (Hz)."""
    from scipy.optimize import least_squares

    def jac(p: np.ndarray, *_: object) -> np.ndarray:  # least_squares passes args too
        phi = theta - p[2]
        drive = p[0] + p[1] * np.cos(phi)
        on = ((drive > 0.0) & (drive < ceiling)) * sw
        return np.stack([on, on * np.cos(phi), on * p[1] * np.sin(phi)], axis=1)

    inf = np.inf
    sol = least_squares(_rcos_residuals, start, jac=jac, bounds=([-inf, 0, -inf], inf),
                        x_scale="jac", max_nfev=200, args=(m_i, sw, theta, ceiling))
    return np.asarray(sol.x)


def _vm_jacobian(p: np.ndarray, sw: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """∂(residuals)/∂(t, m, κ, PD) of :func:`_vm_residuals`, shape (k, N, 4)."""
    g, dk, dphi = _vm_shape(theta[:, None] - p[3], p[2])
    jacobian: np.ndarray = sw[:, None, None] * np.stack(
        [np.ones_like(g), g, p[1] * dk, -p[1] * dphi], axis=-1)
    return jacobian


def _fit_vm_one(m_i: np.ndarray, sw: np.ndarray, theta: np.ndarray, start: np.ndarray,
                kappa_max: float) -> np.ndarray:
    """Least-squares von Mises curve (t, m ≥ 0, 0 ≤ κ ≤ ``kappa_max``, PD rad) of one neuron,
    by ``scipy.optimize.least_squares`` (the neurons :func:`_fit_vm` leaves to it)."""
    from scipy.optimize import least_squares

    def residuals(p: np.ndarray) -> np.ndarray:
        return _vm_residuals(p[:, None], m_i[:, None], sw, theta)[:, 0]

    def jac(p: np.ndarray) -> np.ndarray:
        return _vm_jacobian(p[:, None], sw, theta)[:, 0]

    inf = np.inf
    sol = least_squares(residuals, start, jac=jac,
                        bounds=([-inf, 0, 0, -inf], [inf, inf, kappa_max, inf]),
                        x_scale="jac", max_nfev=200)
    return np.asarray(sol.x)


def _fit_vm(mean: np.ndarray, sw: np.ndarray, theta: np.ndarray, start: np.ndarray,
            kappa_max: float, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares von Mises curves (t, m ≥ 0, 0 ≤ κ ≤ ``kappa_max``, PD rad; 4 × N) of every
    neuron's means ``mean`` (k, N) at once.

    Levenberg–Marquardt with Marquardt's scaling (the damping on diag(JᵀJ), as
    ``least_squares``' ``x_scale="jac"``), each neuron with its own damping, steps projected into
    the bounds and taken only when they lower that neuron's SS; a neuron is done when a step
    lowers its SS by less than 1e-12 of it or no damping finds a lower one. One vectorised step
    for all neurons instead of a ``scipy.optimize.least_squares`` per neuron (3 ms each: 0.4 s of
    the default run, about 30 s for 10,000 neurons); where both reach an interior minimum they agree
    to 1e-10 of the SS.

    Returns
    -------
    (ndarray, ndarray)
        The fits (4 × N), and the neurons to refit with :func:`_fit_vm_one` from their start:
        not done after ``max_iter`` steps, or on a bound (m = 0, κ = 0 or κ = ``kappa_max``).
    """
    lo = np.array([-np.inf, 0.0, 0.0, -np.inf])[:, None]
    hi = np.array([np.inf, np.inf, kappa_max, np.inf])[:, None]
    p = np.clip(np.array(start, float), lo, hi)
    r = _vm_residuals(p, mean, sw, theta)
    ss = np.sum(r * r, axis=0)
    lam = np.full(p.shape[1], 1e-3)
    todo = np.isfinite(ss)
    for _ in range(max_iter):
        if not todo.any():
            break
        q, rq, mq = p[:, todo], r[:, todo], mean[:, todo]
        jac = _vm_jacobian(q, sw, theta)
        a = np.einsum("kni,knj->nij", jac, jac)
        grad = np.einsum("kni,kn->ni", jac, rq)
        diag = np.einsum("nii->ni", a)
        diag = np.maximum(diag, 1e-12 * (1.0 + diag.max(axis=1, keepdims=True)))
        damped = a + (lam[todo, None] * diag)[:, :, None] * np.eye(4)
        step = np.linalg.solve(damped, -grad[:, :, None])[:, :, 0].T
        new = np.clip(q + step, lo, hi)
        r_new = _vm_residuals(new, mq, sw, theta)
        ss_new = np.sum(r_new * r_new, axis=0)
        better = ss_new < ss[todo]
        idx = np.flatnonzero(todo)
        gain = ss[todo] - ss_new
        done = (better & (gain <= 1e-12 * ss[todo])) | (~better & (lam[todo] > 1e10))
        took = idx[better]
        p[:, took], r[:, took], ss[took] = new[:, better], r_new[:, better], ss_new[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3.0, 1e-12), lam[idx] * 4.0)
        todo[idx[done]] = False
    # not done, or ended on a bound (a sharp peak on one direction, a flat or near-flat neuron:
    # the valleys where local solvers part): left to least_squares, as they always were
    edge = (p[1] <= 0.0) | (p[2] <= 0.0) | (p[2] >= kappa_max)
    return p, todo | edge


def _best_model(ss: np.ndarray, n: int, floor: np.ndarray,
                ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AICc of each model (3, N) from its single-trial SS (3, N, Hz²), and the name of the best
    (``"none"`` for constant neurons, ``ok`` False, and where AICc is undefined)."""
    crit = np.stack([aicc(np.maximum(s, floor), n, N_PARAMS[name])
                     for s, name in zip(ss, MODELS)])
    best = np.zeros(ss.shape[1], dtype=int)
    for j in (1, 2):  # a later (never simpler) model must win by more than rounding
        best = np.where(crit[j] < np.take_along_axis(crit, best[None], 0)[0] - 1e-6, j, best)
    names = np.array(MODELS, dtype=object)[best]
    names[~ok | np.isnan(crit).any(axis=0)] = "none"  # NaN compares False above: say so here
    return crit, names


def _r2(mean: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """R² of curves (k, N) on the per-direction means, as ``CosineFit.r2`` is defined."""
    ss_tot = ((mean - mean.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2: np.ndarray = 1.0 - ((mean - curve) ** 2).sum(axis=0) / ss_tot
    return r2


def _rcos_starts(mean: np.ndarray, c: np.ndarray, theta: np.ndarray, b0: np.ndarray,
                 depth0: np.ndarray, pd0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts (b, d, PD rad; 3 × N) of the rectified cosine, and where the start is the cosine
    itself with every prediction positive (already a local optimum)."""
    cos = np.cos(theta[:, None] - pd0)  # (k, N)
    h = np.maximum(0.0, cos - _CUT_GRID[:, None, None])  # (J, k, N): d·h is rectified at c0
    hh = np.einsum("k,jkn->jn", c, h * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(hh > 0, np.einsum("k,jkn->jn", c, h * mean) / hh, 0.0)
    d = np.maximum(d, 0.0)
    ss_cut = np.einsum("k,jkn->jn", c, (mean - d[:, None] * h) ** 2)
    pred = b0 + depth0 * cos
    ss_cos = c @ (mean - np.maximum(pred, 0.0)) ** 2
    j = np.argmin(ss_cut, axis=0)
    d_best = np.take_along_axis(d, j[None], 0)[0]
    use_cos = ss_cos <= np.take_along_axis(ss_cut, j[None], 0)[0]
    start = np.stack([np.where(use_cos, b0, -_CUT_GRID[j] * d_best),
                      np.where(use_cos, depth0, d_best), pd0])
    return start, use_cos & (pred > 0).all(axis=0)


def _vm_starts(mean: np.ndarray, c: np.ndarray, theta: np.ndarray, pd0: np.ndarray,
               kappa_top: float) -> np.ndarray:
    """Starts (t, m, κ, PD rad; 4 × N) of the von Mises fit: the best (t, m ≥ 0) over a κ grid at
    two candidate PDs, all neurons at once."""
    kappas = _KAPPA_GRID[_KAPPA_GRID <= kappa_top]
    pds = np.stack([pd0, theta[np.argmax(mean, axis=0)]])  # (P, N)
    g = _vm_shape(theta[None, None, :, None] - pds[None, :, None, :],
                  kappas[:, None, None, None])[0]  # (J, P, k, N)
    n = c.sum()
    g_bar = np.einsum("k,jpkn->jpn", c, g) / n
    m_bar = c @ mean / n
    gc = g - g_bar[:, :, None]
    sxx = np.einsum("k,jpkn->jpn", c, gc * gc)
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = np.where(sxx > 0, np.einsum("k,jpkn->jpn", c, gc * (mean - m_bar)) / sxx, 0.0)
    amp = np.maximum(amp, 0.0)
    trough = m_bar - amp * g_bar
    ss = np.einsum("k,jpkn->jpn", c, (mean - trough[:, :, None] - amp[:, :, None] * g) ** 2)
    flat = ss.reshape(-1, ss.shape[-1])
    best = np.argmin(flat, axis=0)
    cols = np.arange(ss.shape[-1])
    j, p = np.unravel_index(best, ss.shape[:2])
    return np.stack([trough[j, p, cols], amp[j, p, cols], kappas[j], pds[p, cols]])


# ----------------------------------------------------------------------------- tuning over time
@dataclass
class TimeTuning:
    """Cosine tuning of ``N`` neurons in each of ``n_bins`` time bins; arrays (n_bins, N).

    Attributes
    ----------
    t_s : ndarray, shape (n_bins,)
        Bin centres, s (NaN when the bin width is unknown).
    pd_deg, depth_hz, p_value : ndarray
        Per-bin cosine fits (:func:`fit_cosine`): PD (degrees in [0, 360)), depth (Hz) and the
        modulation F-test's p.
    pd_low_deg, pd_high_deg, depth_low_hz, depth_high_hz : ndarray
        Their bootstrap intervals (:func:`bootstrap_cosine`; NaN with no resamples).
    anova_p : ndarray
        The one-way ANOVA across directions in that bin (:func:`direction_tests`).
    directional : ndarray of bool
        anova_p < alpha.
    """

    t_s: np.ndarray
    pd_deg: np.ndarray
    pd_low_deg: np.ndarray
    pd_high_deg: np.ndarray
    depth_hz: np.ndarray
    depth_low_hz: np.ndarray
    depth_high_hz: np.ndarray
    p_value: np.ndarray
    anova_p: np.ndarray
    directional: np.ndarray


def tuning_over_time(binned_rates: np.ndarray, directions: np.ndarray, bin_s: float,
                     alpha: float = 0.05, n_boot: int = 500, ci: float = 0.95,
                     seed: Any = 0) -> TimeTuning:
    """PD, depth and their bootstrap intervals of every neuron in every time bin.

    Parameters
    ----------
    binned_rates : ndarray, shape (n_trials, n_bins, N)
        Rate per time bin, Hz.
    directions : ndarray, shape (n_trials,)
        Directions, degrees.
    bin_s : float
        Bin width, s; 0 or less leaves ``t_s`` NaN.
    alpha, n_boot, ci, seed
        As for :func:`bootstrap_cosine`; alpha is the level of each bin's ANOVA.

    Returns
    -------
    TimeTuning

    Notes
    -----
    Every (bin, neuron) pair is one column of a single :func:`fit_cosine` and
    :func:`bootstrap_cosine` call, so all bins share each resample's trials (a paired bootstrap).
    """
    b = np.asarray(binned_rates, dtype=float)
    if b.ndim != 3 or len(b) != len(directions):
        raise ValueError(f"binned rates must be (n_trials, n_bins, N) with n_trials = "
                         f"{len(directions)}, got shape {b.shape}")
    n_trials, n_bins, n = b.shape
    flat = b.reshape(n_trials, n_bins * n)  # column bin·N + neuron
    fit = fit_cosine(flat, directions)
    boot = bootstrap_cosine(flat, directions, n_boot, ci, seed, fit=fit)
    anova_p = direction_tests(flat, directions)[0]
    t_s = (np.arange(n_bins) + 0.5) * bin_s if bin_s > 0 else np.full(n_bins, np.nan)

    def per_bin(a: np.ndarray) -> np.ndarray:
        """Columns bin·N + neuron back to (n_bins, N)."""
        return np.asarray(a).reshape(n_bins, n)

    return TimeTuning(t_s=t_s, pd_deg=per_bin(fit.pd_deg), pd_low_deg=per_bin(boot.pd_low_deg),
                      pd_high_deg=per_bin(boot.pd_high_deg), depth_hz=per_bin(fit.depth),
                      depth_low_hz=per_bin(boot.depth_low_hz),
                      depth_high_hz=per_bin(boot.depth_high_hz), p_value=per_bin(fit.p_value),
                      anova_p=per_bin(anova_p), directional=per_bin(anova_p < alpha))


# ------------------------------------------------------------------------------------- controls
def input_features(x: np.ndarray) -> np.ndarray | None:
    """The inputs as one value per feature and trial, (n, features): static inputs as they are,
    sequences (n, time, channels) averaged over time; None for images (4 or more axes)."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x.astype(float)
    if x.ndim == 3:
        mean: np.ndarray = x.mean(axis=1, dtype=float)
        return mean
    return None
