"""``tuning``: cosine tuning curves, preferred directions and population decoding of direction.

After Georgopoulos et al. (1982): each analysed neuron's spiking rate is averaged per movement
direction over the test trials, and those means are fitted by least squares with

    r(θ) = b0 + b1·cos θ + b2·sin θ = b0 + depth·cos(θ − PD),

so ``baseline_hz`` = b0, ``depth_hz`` = √(b1² + b2²), ``pd_deg`` = atan2(b2, b1) in [0, 360) and
``r2`` is the fit's coefficient of determination on the means. Whether the modulation is real is an
F-test on single trials of the cosine model against a constant rate (``p_value``); ``tuned`` is
``p_value < alpha``. Every fit is vectorised over neurons: one least-squares solve for all of them.

The direction of each test trial is then decoded twice, each time by a decoder fitted on the
*other* trials (``folds``-fold cross-validation, stratified by direction), so the errors are
errors on trials the decoder did not see:

- population vector: each neuron tuned in the training folds votes along its training-fold PD
  with weight (r − b0)/depth;
- optimal linear estimator (Salinas & Abbott 1994), empirical: the ridge-regularised linear
  read-out of (cos θ, sin θ) fitted to the measured training rates of every neuron. It needs no
  cosine model and undoes the population vector's bias towards where preferred directions
  cluster.

The functions below work on plain arrays, so they can be used (and tested) outside a run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.analysis import Analysis, Context, Result, UserError, angle_diff, bounded

#: directions closer than this are one direction (degrees); absorbs float noise in user data
DIRECTION_DECIMALS = 6


@dataclass
class TuningConfig:
    alpha: float = bounded(0.05, gt=0.0, lt=1.0)  # F-test significance level: tuned = p < alpha
    grid_neurons: int = bounded(16, ge=1)  # neurons in the tuning-curve grid (most strongly tuned)
    folds: int = bounded(5, ge=2)  # cross-validation folds of the decoders, stratified by direction


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

    def tuned(self, alpha: float = 0.05) -> np.ndarray:
        """Boolean mask of neurons whose modulation is significant at ``alpha``."""
        return self.p_value < alpha

    def curve(self, theta_deg: np.ndarray, neuron: int) -> np.ndarray:
        """The fitted cosine of one neuron at ``theta_deg`` (degrees), Hz."""
        t = np.deg2rad(theta_deg)
        return self.baseline[neuron] + self.b1[neuron] * np.cos(t) + self.b2[neuron] * np.sin(t)


def group_directions(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct directions (degrees in [0, 360)) and each trial's index into them."""
    d = np.round(np.mod(np.asarray(directions, dtype=float), 360.0), DIRECTION_DECIMALS)
    d[d >= 360.0] = 0.0  # 359.9999999 rounds up to 360
    return np.unique(d, return_inverse=True)


def _design(theta_deg: np.ndarray) -> np.ndarray:
    t = np.deg2rad(theta_deg)
    return np.stack([np.ones_like(t), np.cos(t), np.sin(t)], axis=1)


def fit_cosine(rates: np.ndarray, directions: np.ndarray) -> CosineFit:
    """Fit cosine tuning to every neuron at once.

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
    array is formed. F = ((SS_const − SS_cos) / 2) / (SS_cos / (n − 3)).
    """
    from scipy import stats

    r = np.asarray(rates, dtype=float)
    if r.ndim != 2 or len(r) != len(directions):
        raise ValueError(f"rates must be (n_trials, N) with n_trials = {len(directions)}, "
                         f"got shape {r.shape}")
    if not np.all(np.isfinite(directions)):
        raise ValueError("directions must be finite numbers of degrees")
    dirs, inv = group_directions(directions)
    k, n = len(dirs), len(r)
    if k < 3:
        raise ValueError(f"a cosine fit needs trials in at least 3 distinct directions, got {k}")
    if n < 4:
        raise ValueError(f"the single-trial F-test needs at least 4 trials, got {n}")
    counts = np.bincount(inv, minlength=k)
    onehot = np.zeros((k, n))
    onehot[inv, np.arange(n)] = 1.0
    mean = (onehot @ r) / counts[:, None]
    within_dir = onehot @ (r - mean[inv]) ** 2  # (k, N) sum of squares about each direction's mean
    sd = np.sqrt(within_dir / np.maximum(counts - 1, 1)[:, None])

    x = _design(dirs)
    coef = np.linalg.lstsq(x, mean, rcond=None)[0]  # (3, N), all neurons in one solve
    grand = mean.mean(axis=0)
    ss_tot_m = ((mean - grand) ** 2).sum(axis=0)
    ss_res_m = ((mean - x @ coef) ** 2).sum(axis=0)
    scale = 1.0 + np.abs(grand)  # "constant" is relative to the rate's size (float32 rates)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot_m > k * (1e-9 * scale) ** 2, 1.0 - ss_res_m / ss_tot_m, np.nan)

    # single trials: the count-weighted fit, and sums of squares from means and W
    xc = x * counts[:, None]
    coef_t = np.linalg.solve(x.T @ xc, xc.T @ mean)
    w = within_dir.sum(axis=0)
    trial_grand = (counts @ mean) / n
    ss_tot = w + counts @ (mean - trial_grand) ** 2
    ss_res = np.maximum(w + counts @ (mean - x @ coef_t) ** 2, 0.0)
    ss_res = np.minimum(ss_res, ss_tot)  # rounding must not make the cosine worse than a constant
    df_res = n - 3
    constant = ss_tot <= n * (1e-9 * (1.0 + np.abs(trial_grand))) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        f_stat = ((ss_tot - ss_res) / 2.0) / (ss_res / df_res)
    f_stat = np.where(constant, np.nan, f_stat)  # 0/0; a noiseless cosine keeps F = inf, p = 0
    p_value = np.where(constant, 1.0, stats.f.sf(np.where(constant, 0.0, f_stat), 2, df_res))

    b0, b1, b2 = coef
    flat = np.isnan(r2)  # constant means: no modulation, so b1 = b2 = 0 exactly (PD 0°, depth 0)
    b1, b2 = np.where(flat, 0.0, b1), np.where(flat, 0.0, b2)
    pd_deg = np.mod(np.rad2deg(np.arctan2(b2, b1)), 360.0)
    pd_deg[pd_deg >= 360.0] = 0.0  # −1e-15 mod 360 is 360.0 in floating point
    return CosineFit(directions=dirs, n_trials=counts, mean=mean, sd=sd, baseline=b0, b1=b1,
                     b2=b2, depth=np.hypot(b1, b2), pd_deg=pd_deg, r2=r2, f_stat=f_stat,
                     p_value=p_value, resid_var=ss_res / df_res)


def population_vector(rates: np.ndarray, fit: CosineFit, mask: np.ndarray) -> np.ndarray:
    """Direction decoded by the population vector of the neurons in ``mask``.

    Parameters
    ----------
    rates : ndarray, shape (n_trials, N)
        Rates, Hz, of the neurons ``fit`` describes.
    fit : CosineFit
    mask : ndarray of bool, shape (N,)
        The voting neurons (the tuned ones).

    Returns
    -------
    ndarray, shape (n_trials,)
        Decoded direction per trial, degrees in [0, 360); NaN when no neuron votes.
    """
    mask = mask & (fit.depth > 0)
    if not mask.any():
        return np.full(len(rates), np.nan)
    weight = (np.asarray(rates, float)[:, mask] - fit.baseline[mask]) / fit.depth[mask]
    pd = np.deg2rad(fit.pd_deg[mask])
    vec = weight @ np.stack([np.cos(pd), np.sin(pd)], axis=1)
    return np.mod(np.rad2deg(np.arctan2(vec[:, 1], vec[:, 0])), 360.0)


def optimal_linear_estimator(r_train: np.ndarray, dir_train: np.ndarray,
                             r_test: np.ndarray) -> np.ndarray:
    """Direction decoded by the empirical optimal linear estimator (Salinas & Abbott 1994).

    The linear read-out û = W (r − r̄) + c of u = (cos θ, sin θ) that minimises the squared error
    on the *measured* training rates (every neuron, tuned or not), ridge-regularised with the
    penalty chosen by scikit-learn's efficient leave-one-out (``RidgeCV``) on standardised rates.
    Unlike the population vector it needs no cosine model: it weights neurons by how well they
    predict direction, and discounts redundant or untuned ones.

    Parameters
    ----------
    r_train : ndarray, shape (n_train, N)
        Training trials' rates, Hz.
    dir_train : ndarray, shape (n_train,)
        Their directions, degrees.
    r_test : ndarray, shape (n_test, N)
        Rates of the trials to decode.

    Returns
    -------
    ndarray, shape (n_test,)
        Decoded direction per trial, degrees in [0, 360).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = np.deg2rad(np.asarray(dir_train, dtype=float))
    u = np.stack([np.cos(t), np.sin(t)], axis=1)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
    est = model.fit(np.asarray(r_train, float), u).predict(np.asarray(r_test, float))
    return np.mod(np.rad2deg(np.arctan2(est[:, 1], est[:, 0])), 360.0)


def decode_cross_validated(rates: np.ndarray, directions: np.ndarray, alpha: float, folds: int,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Population vector and OLE decodes of every trial, each from a model fitted without it.

    Trials are split into ``folds`` folds stratified by direction (fewer when a direction has
    fewer trials); for each fold the cosine fits (hence the population vector's preferred
    directions and which neurons are tuned) and the OLE are fitted on the other folds only.

    Returns
    -------
    (ndarray, ndarray), each shape (n_trials,)
        Decoded directions (degrees; NaN where no training neuron was tuned, for the PV).
    """
    from sklearn.model_selection import StratifiedKFold

    groups = group_directions(directions)[1]
    k = int(min(folds, np.bincount(groups).min()))
    pv = np.full(len(rates), np.nan)
    ole = np.full(len(rates), np.nan)
    if k < 2:  # a direction seen once: nothing can be held out
        return pv, ole
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(rates, groups):
        fit = fit_cosine(rates[train], directions[train])
        pv[test] = population_vector(rates[test], fit, fit.tuned(alpha))
        ole[test] = optimal_linear_estimator(rates[train], directions[train], rates[test])
    return pv, ole


def mean_angle_error(decoded: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute angle error, degrees (NaN if nothing was decoded)."""
    if np.all(np.isnan(decoded)):
        return float("nan")
    return float(np.mean(np.abs(angle_diff(decoded, true))))


@dataclass
class LayerTuning:
    """A layer's fit and decodes, kept for the plots."""

    name: str
    index: np.ndarray
    fit: CosineFit
    tuned: np.ndarray
    pv: np.ndarray
    ole: np.ndarray


class Tuning(Analysis):
    """Cosine tuning of every analysed neuron to the movement direction, and population decoding.

    Columns in ``neurons.csv``: ``pd_deg``, ``baseline_hz``, ``depth_hz``, ``r2``, ``p_value``,
    ``tuned``. Table ``tuning_rates.csv``: ``layer``, ``neuron``, ``direction_deg``,
    ``mean_rate_hz``, ``n_trials`` and ``sd_rate_hz`` (the spread the tuning-curve plot shows).
    Metrics ``tuning/tuned_fraction``, ``tuning/median_r2``, ``tuning/pv_angle_error_deg``,
    ``tuning/ole_angle_error_deg`` over all analysed layers together, and the same per layer as
    ``tuning/<layer>/...``; both angle errors are cross-validated (trials decoded by decoders
    fitted without them). The PV's is NaN when no neuron is tuned.
    """

    name = "tuning"
    Config = TuningConfig

    @classmethod
    def applies(cls, data) -> str | None:
        if not data.has_directions:
            return "the dataset has no movement directions (dataset.direction for dataset=file)"
        directions = np.asarray(data.dir_test, dtype=float)
        k = len(group_directions(directions[np.isfinite(directions)])[0])
        if k < 3:
            return f"a cosine fit needs at least 3 distinct directions in the test split, got {k}"
        return None

    def run(self, ctx: Context, cfg: TuningConfig) -> Result:
        import pandas as pd

        true = np.asarray(ctx.data.dir_test, dtype=float)[ctx.sample]
        # trials without a direction (a rest class, NaN) stay in the task but not in tuning
        keep = np.isfinite(true)
        true = true[keep]
        rates = {layer.name: layer.rates[keep] for layer in ctx.layers if layer.rates is not None}
        layers = [layer for layer in ctx.layers if layer.name in rates]
        results: list[LayerTuning] = []
        for layer in layers:
            try:
                fit = fit_cosine(rates[layer.name], true)
            except ValueError as ex:
                raise UserError(f"analysis tuning: {ex} (simulation.max_samples, "
                                f"dataset.n_directions)") from None
            tuned = fit.tuned(cfg.alpha)
            pv, ole = decode_cross_validated(rates[layer.name], true, cfg.alpha, cfg.folds,
                                             ctx.seed)
            results.append(LayerTuning(layer.name, layer.index, fit, tuned, pv, ole))
        metrics: dict[str, float] = {"tuning/trials_without_direction": float((~keep).sum())}
        for lt in results:
            metrics.update(_metrics(f"tuning/{lt.name}", lt.fit, lt.tuned, lt.pv, lt.ole, true))
        pooled = None
        if results:  # every analysed neuron of every layer as one population
            pop = np.concatenate([rates[layer.name] for layer in layers], axis=1)
            fit = concat_fits([lt.fit for lt in results])
            tuned = np.concatenate([lt.tuned for lt in results])
            pooled = decode_cross_validated(pop, true, cfg.alpha, cfg.folds, ctx.seed)
            metrics.update(_metrics("tuning", fit, tuned, *pooled, true))
        neurons = pd.concat([pd.DataFrame({
            "layer": lt.name, "neuron": lt.index, "pd_deg": lt.fit.pd_deg,
            "baseline_hz": lt.fit.baseline, "depth_hz": lt.fit.depth, "r2": lt.fit.r2,
            "p_value": lt.fit.p_value, "tuned": lt.tuned}) for lt in results]) if results else None
        tables = {"tuning_rates.csv": rate_table(results)} if results else {}
        figures = {}
        if results:
            figures = {"tuning_curves": lambda: tuning_grid(results, cfg.grid_neurons, cfg.alpha),
                       "preferred_directions": lambda: pd_polar(results),
                       "population_vector": lambda: decoding_scatter(results, true, pooled)}
        return Result(metrics=metrics, neurons=neurons, tables=tables, figures=figures)


def _metrics(prefix: str, fit: CosineFit, tuned: np.ndarray, pv: np.ndarray, ole: np.ndarray,
             true: np.ndarray) -> dict[str, float]:
    r2 = fit.r2[np.isfinite(fit.r2)]
    return {f"{prefix}/tuned_fraction": float(tuned.mean()) if len(tuned) else float("nan"),
            f"{prefix}/median_r2": float(np.median(r2)) if len(r2) else float("nan"),
            f"{prefix}/pv_angle_error_deg": mean_angle_error(pv, true),
            f"{prefix}/ole_angle_error_deg": mean_angle_error(ole, true)}


def concat_fits(fits: list[CosineFit]) -> CosineFit:
    """Fits of several layers (same trials) as one population."""
    per_neuron = ("baseline", "b1", "b2", "depth", "pd_deg", "r2", "f_stat", "p_value", "resid_var")
    first = fits[0]
    joined = {name: np.concatenate([getattr(f, name) for f in fits]) for name in per_neuron}
    return CosineFit(directions=first.directions, n_trials=first.n_trials,
                     mean=np.concatenate([f.mean for f in fits], axis=1),
                     sd=np.concatenate([f.sd for f in fits], axis=1), **joined)


def rate_table(results: list[LayerTuning]):
    """``tuning_rates.csv``: one row per neuron and direction."""
    import pandas as pd

    frames = []
    for lt in results:
        k, n = lt.fit.mean.shape
        frames.append(pd.DataFrame({
            "layer": lt.name, "neuron": np.repeat(lt.index, k),
            "direction_deg": np.tile(lt.fit.directions, n),
            "mean_rate_hz": lt.fit.mean.T.ravel(), "n_trials": np.tile(lt.fit.n_trials, n),
            "sd_rate_hz": lt.fit.sd.T.ravel()}))
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------ plots
def strongest(results: list[LayerTuning], n: int) -> list[tuple[LayerTuning, int]]:
    """The ``n`` most strongly tuned neurons (largest F, then depth), taken from the layers in
    turn so that every layer is shown; returned grouped by layer."""
    ranked = []
    for lt in results:
        f = np.nan_to_num(lt.fit.f_stat, nan=-1.0, posinf=np.finfo(float).max)
        ranked.append([(lt, int(i)) for i in np.lexsort((-lt.fit.depth, -f))])
    picked: list[tuple[LayerTuning, int]] = []
    while len(picked) < n and any(ranked):
        for queue in ranked:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    order = {id(lt): i for i, lt in enumerate(results)}
    return sorted(picked, key=lambda p: (order[id(p[0])], p[1]))


def tuning_grid(results: list[LayerTuning], n: int, alpha: float):
    """Tuning curves like Georgopoulos et al. (1982) fig. 4: mean ± SD rate per direction, the
    fitted cosine, and the preferred direction as a vertical line."""
    import matplotlib.pyplot as plt

    picked = strongest(results, n)
    cols = min(4, len(picked))
    rows = -(-len(picked) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols + 0.6, 2.15 * rows + 0.9),
                             squeeze=False)
    theta = np.linspace(0.0, 360.0, 181)
    for ax, (lt, i) in zip(axes.ravel(), picked):
        fit = lt.fit
        ax.errorbar(fit.directions, fit.mean[:, i], yerr=fit.sd[:, i], fmt="o", ms=3.5,
                    color="k", ecolor="0.45", elinewidth=1, capsize=2, zorder=3)
        ax.plot(theta, fit.curve(theta, i), color="tab:red", lw=1.4)
        colour = "tab:blue" if lt.tuned[i] else "0.6"
        ax.axvline(fit.pd_deg[i], color=colour, ls="--", lw=1.1)
        ax.set_xlim(-15, 375)  # room for the markers at 0° and 315°
        ax.set_xticks([0, 90, 180, 270, 360])
        ax.tick_params(labelsize=7)
        r2 = "–" if np.isnan(fit.r2[i]) else f"{fit.r2[i]:.2f}"
        ax.set_title(f"{lt.name} #{lt.index[i]}: PD {fit.pd_deg[i]:.0f}°, R² {r2}", fontsize=8)
        ax.set_ylim(bottom=0)
    for ax in axes.ravel()[len(picked):]:
        ax.set_visible(False)
    for c in range(cols):  # an x label under every column: its lowest visible panel
        lowest = max(r for r in range(rows) if r * cols + c < len(picked))
        axes[lowest, c].set_xlabel("direction (°)", fontsize=8)
    for r in range(rows):
        axes[r, 0].set_ylabel("rate (Hz)", fontsize=8)
    fig.suptitle(f"Cosine tuning: mean ± SD over trials, fit (red), preferred direction (dashed; "
                 f"blue if p < {alpha:g})", fontsize=9)
    margins(fig, top_in=0.65, bottom_in=0.5, left_in=0.7, right_in=0.15)
    fig.subplots_adjust(hspace=0.55, wspace=0.32)
    return fig


def margins(fig, top_in: float, bottom_in: float, left_in: float, right_in: float) -> None:
    """Fixed figure margins in inches (tight_layout would re-measure on every draw)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left_in / w, right=1 - right_in / w, bottom=bottom_in / h,
                        top=1 - top_in / h)


def pd_polar(results: list[LayerTuning], bins: int = 24):
    """Polar histogram of the preferred directions of each layer's tuned neurons."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(results)
    fig = plt.figure(figsize=(3.4 * n + 0.4, 3.9))
    edges = np.linspace(0.0, 2 * np.pi, bins + 1)
    for j, lt in enumerate(results):
        ax = fig.add_subplot(1, n, j + 1, projection="polar")
        pds = np.deg2rad(lt.fit.pd_deg[lt.tuned])
        counts, _ = np.histogram(pds, bins=edges)
        ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color="tab:blue",
               edgecolor="white", alpha=0.85)
        ax.set_title(f"{lt.name}: {int(lt.tuned.sum())} of {len(lt.tuned)} tuned", fontsize=9,
                     pad=14)
        ax.tick_params(labelsize=7)
        if counts.max() == 0:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no tuned neurons", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9, color="0.4",
                    bbox=dict(facecolor="white", edgecolor="none"))
        else:  # integer neuron counts, without a 0 crowding the centre
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.set_ylim(0, counts.max() * 1.05)
            ax.set_yticks([t for t in ax.get_yticks() if 0 < t <= counts.max()])
    fig.suptitle("Preferred directions of tuned neurons (neurons per 15° bin)", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.94, bottom=0.06, top=0.78, wspace=0.45)
    return fig


def decoding_scatter(results: list[LayerTuning], true: np.ndarray, pooled=None):
    """Decoded against true direction, population vector and OLE, per layer and (``pooled``: the
    (pv, ole) decodes of all layers together) for the whole population. Decoded values are drawn
    as true + error, so a decode just past 0°/360° stays next to the diagonal."""
    import matplotlib.pyplot as plt

    rows = [(lt.name, lt.pv, lt.ole) for lt in results]
    if pooled is not None and len(results) > 1:
        rows.append(("all layers", *pooled))
    height = 2.9 * len(rows) + 0.6
    fig, axes = plt.subplots(len(rows), 2, figsize=(7.2, height), squeeze=False)
    jitter = np.random.default_rng(0).uniform(-6, 6, len(true))  # spreads the 8 columns of dots
    for r, (name, pv, ole) in enumerate(rows):
        for c, (label, dec) in enumerate((("population vector", pv), ("OLE", ole))):
            ax = axes[r, c]
            ax.plot([-30, 390], [-30, 390], color="0.6", lw=1, zorder=1)
            if np.all(np.isnan(dec)):
                ax.text(0.5, 0.5, "no tuned neurons", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9)
            else:
                err = angle_diff(dec, true)
                ax.scatter(true + jitter, true + err, s=6, alpha=0.5, color="tab:blue", zorder=2)
                label = f"{label}: |error| {np.mean(np.abs(err)):.1f}°"
            ax.set_title(f"{name}, {label}", fontsize=8)
            ax.set_xlim(-30, 390)
            ax.set_ylim(-60, 420)
            ax.set_xticks([0, 90, 180, 270, 360])
            ax.set_yticks([0, 90, 180, 270, 360])
            ax.tick_params(labelsize=7)
            ax.set_xlabel("true direction (°)", fontsize=8)
            if c == 0:
                ax.set_ylabel("decoded direction (°)", fontsize=8)
    fig.suptitle("Direction decoded per test trial, cross-validated (each fold by decoders fitted "
                 "on the others; PV: tuned neurons, OLE: all)", fontsize=10)
    margins(fig, top_in=0.75, bottom_in=0.5, left_in=0.8, right_in=0.2)
    fig.subplots_adjust(hspace=0.5, wspace=0.28)
    return fig
