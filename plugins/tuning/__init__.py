"""``tuning``: directional tuning as Georgopoulos et al. (1982) counted it, cosine tuning as an
effect size, preferred directions with intervals that say what they cover, and population
decoding of direction.

Each analysed neuron's spiking rate is averaged per movement direction over the test trials, and
those means are fitted by least squares with

    r(θ) = b0 + b1·cos θ + b2·sin θ = b0 + depth·cos(θ − PD),

so ``baseline_hz`` = b0, ``depth_hz`` = √(b1² + b2²), ``pd_deg`` = atan2(b2, b1) in [0, 360) and
``r2`` is the fit's coefficient of determination on the means. Then (docs/tuning.md):

- ``directional``: a one-way ANOVA of the single-trial rates across directions rejects at
  ``alpha`` (Kruskal–Wallis for near-deterministic counts; ``anova_p``), with a modulation of at
  least ``min_modulation_spikes`` spikes per trial; ``cosine_fit``: directional and R² ≥
  ``cosine_r2``. ``pinned`` (at 1/τ_ref or above a spike per step in every direction) and
  ``near_silent`` neurons are never directional and left out of the headline fractions, the
  Rayleigh tests and the population vector;
- the cosine's lack of fit as a diagnostic: its test (``lof_p_value``) and size (``lof_rms_hz``);
- stratified bootstrap intervals of each PD (flagged ``pd_ci_valid`` False where they do not
  hold) and BCa intervals of each depth;
- rectified-cosine (capped at 1/τ_ref) and von Mises fits compared with the cosine by AICc;
- unimodal and axial Rayleigh tests of the directional neurons' PDs;
- tuning per time bin of a sequence and a test of each PD's drift against a null;
- what the network adds: each neuron's input x fitted too, the PD shift rate − x with its
  interval, and per layer the fraction of directional neurons whose tuning the network created.

The direction of each test trial is decoded by decoders fitted on the *other* trials: the
population vector of the directional neurons (unit votes, and votes weighted by depth²/σ²) and
the optimal linear estimator of every neuron (Salinas & Abbott 1994).

The package's parts work on plain arrays, so they can be used (and tested) outside a run:
:mod:`plugins.tuning.fit` (cosine fits and intervals), :mod:`plugins.tuning.directional` (the
tests), :mod:`plugins.tuning.decode`, :mod:`plugins.tuning.tables` and
:mod:`plugins.tuning.plots`. This module is the plugin itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, UserError, bounded
from plugins.tuning import plots
from plugins.tuning.decode import (
    Decoded,
    Voters,
    decode_cross_validated,
    mean_angle_error,
    optimal_linear_estimator,
    population_vector,
)
from plugins.tuning.directional import (
    Directional,
    Limits,
    axial_rayleigh,
    classify,
    depth_interval_bca,
    drift_test,
    pd_shift_interval,
)
from plugins.tuning.fit import (
    DIRECTION_DECIMALS,
    KAPPA_MAX,
    MODELS,
    N_PARAMS,
    CosineCI,
    CosineFit,
    ShapeFits,
    TimeTuning,
    aicc,
    bootstrap_cosine,
    circular_interval,
    concat_fits,
    direction_tests,
    fit_cosine,
    fit_shapes,
    group_directions,
    input_features,
    mean_ci,
    rayleigh_test,
    rectified_cosine,
    tuning_over_time,
    von_mises,
)
from plugins.tuning.tables import (
    LayerTuning,
    control_metrics,
    control_table,
    neuron_columns,
    paper_line,
    population_metrics,
    rate_table,
    time_table,
)

__all__ = ["DIRECTION_DECIMALS", "KAPPA_MAX", "MODELS", "N_PARAMS", "CosineCI", "CosineFit",
           "Decoded", "Directional", "LayerTuning", "Limits", "ShapeFits", "TimeTuning",
           "Tuning", "TuningConfig", "aicc", "axial_rayleigh", "bootstrap_cosine",
           "circular_interval", "classify", "concat_fits", "control_table",
           "decode_cross_validated", "depth_interval_bca", "direction_tests", "drift_test",
           "fit_cosine", "fit_shapes", "group_directions", "input_features", "mean_angle_error",
           "mean_ci", "neuron_columns", "optimal_linear_estimator", "paper_line",
           "pd_shift_interval", "population_vector", "rate_table", "rayleigh_test",
           "rectified_cosine", "time_table", "tuning_over_time", "von_mises"]


#: the contract's metrics: logged even when undefined (NaN), so that they are always there
HEADLINE = ("tuning/directional_fraction", "tuning/cosine_fraction", "tuning/median_r2",
            "tuning/pv_angle_error_deg", "tuning/ole_angle_error_deg")


@dataclass
class TuningConfig:
    """Options of the ``tuning`` analysis (``analyses.tuning``)."""
    alpha: float = bounded(0.05, gt=0.0, lt=1.0)  # level of every test (ANOVA, lack of fit, drift)
    # least R² (fraction of the means' variance) of the cosine for cosine_fit
    cosine_r2: float = bounded(0.7, ge=0.0, le=1.0)
    # least (highest − lowest per-direction mean) of a directional neuron, spikes per trial
    min_modulation_spikes: float = bounded(1.0, ge=0.0)
    # near silent: the highest per-direction mean below this, spikes per trial
    silent_spikes: float = bounded(1.0, ge=0.0)
    # Benjamini–Hochberg FDR control of the ANOVAs over a layer's counted neurons (else each
    # neuron at alpha: about alpha of untuned neurons then still count as directional)
    fdr: bool = False
    # least PD shift from the neuron's input x to its rate that counts as created, degrees
    min_shift_deg: float = bounded(10.0, ge=0.0, le=180.0)
    grid_neurons: int = bounded(8, ge=1)  # neurons in the tuning-curve grid (deepest directional)
    folds: int = bounded(5, ge=2)  # cross-validation folds of the decoders, stratified by direction
    bootstrap: int = bounded(500, ge=0)  # resamples (count) for PD and depth CIs; 0: no CIs (NaN)
    ci: float = bounded(0.95, gt=0.0, lt=1.0)  # confidence level of every interval (fraction)
    drift_neurons: int = bounded(3, ge=1)  # neurons per layer (count) in the pd_drift figure


def _fit(values: np.ndarray, directions: np.ndarray) -> CosineFit:
    """:func:`fit_cosine`, its refusal of too few directions or trials as a UserError."""
    try:
        return fit_cosine(values, directions)
    except ValueError as ex:
        raise UserError(f"analysis tuning: {ex} (simulation.max_samples, "
                        f"dataset.n_directions)") from None


def limits_of(layer: Layer, ctx: Context, cfg: TuningConfig) -> Limits:
    """The trial duration, step, refractory period (0 for types without one) and floors."""
    tau_ref = float(getattr(layer.neuron_type, "tau_ref", 0.0) or 0.0)  # nengo types differ
    return Limits(duration_s=ctx.n_steps * ctx.dt, dt=ctx.dt, tau_ref=tau_ref,
                  min_modulation_spikes=cfg.min_modulation_spikes,
                  silent_spikes=cfg.silent_spikes)


def voters_of(limits: list[Limits], sizes: list[int], cfg: TuningConfig) -> Voters:
    """The population vector's voters on training trials: the directional neurons of each
    layer (columns in ``sizes`` order), classified with that layer's limits."""
    def voters(rates: np.ndarray, directions: np.ndarray, fit: CosineFit) -> np.ndarray:
        edges = np.cumsum([0, *sizes])
        masks = [classify(rates[:, a:b], directions, _take(fit, a, b), lim, cfg.alpha,
                          cfg.cosine_r2, cfg.fdr).directional
                 for a, b, lim in zip(edges[:-1], edges[1:], limits)]
        return np.concatenate(masks)
    return voters


def _take(fit: CosineFit, a: int, b: int) -> CosineFit:
    """The fits of neurons a..b-1 (the columns of one layer in a pooled fit)."""
    if a == 0 and b == len(fit.depth):
        return fit
    per_neuron = {name: getattr(fit, name)[a:b] for name in (
        "baseline", "b1", "b2", "depth", "pd_deg", "r2", "f_stat", "p_value", "resid_var",
        "within_ss", "lof_f_stat", "lof_p_value")}
    return CosineFit(directions=fit.directions, n_trials=fit.n_trials, mean=fit.mean[:, a:b],
                     sd=fit.sd[:, a:b], **per_neuron)


def _intervals(rates: np.ndarray, true: np.ndarray, fit: CosineFit, cfg: TuningConfig,
               seed: list[int]) -> CosineCI:
    """Percentile PD intervals and BCa depth intervals (constant neurons: depth [0, 0])."""
    boot = bootstrap_cosine(rates, true, cfg.bootstrap, cfg.ci, [*seed, 0], fit)
    low, high = depth_interval_bca(rates, true, cfg.bootstrap, cfg.ci, [*seed, 2])
    flat = np.isnan(fit.r2)
    boot.depth_low_hz = np.where(flat & (cfg.bootstrap > 0), 0.0, low)
    boot.depth_high_hz = np.where(flat & (cfg.bootstrap > 0), 0.0, high)
    return boot


def analyse_layer(layer: Layer, j: int, ctx: Context, keep: np.ndarray, true: np.ndarray,
                  cfg: TuningConfig) -> LayerTuning:
    """Fits, tests, intervals, shape comparison, decodes and (sequences) tuning over time of the
    ``j``-th analysed layer, on the trials ``keep`` (those with a direction, ``true``, degrees)."""
    rates = np.asarray(layer.rates)[keep]
    fit = _fit(rates, true)
    limits = limits_of(layer, ctx, cfg)
    cls = classify(rates, true, fit, limits, cfg.alpha, cfg.cosine_r2, cfg.fdr)
    # independent, reproducible resampling streams per layer and purpose
    boot = _intervals(rates, true, fit, cfg, [ctx.seed, j])
    decoded = decode_cross_validated(rates, true, voters_of([limits], [rates.shape[1]], cfg),
                                     cfg.folds, ctx.seed)
    lt = LayerTuning(layer.name, layer.index, fit, cls, decoded, boot,
                     fit_shapes(fit, ceiling_hz=limits.ceiling_hz), cfg.cosine_r2,
                     cfg.min_shift_deg, limits.ceiling_hz)
    if layer.binned_rates is not None:
        binned = np.asarray(layer.binned_rates)[keep]
        lt.time = tuning_over_time(binned, true, float(ctx.bin_s or 0.0), cfg.alpha,
                                   cfg.bootstrap, cfg.ci, [ctx.seed, j, 1])
        lt.drift = drift_test(binned, true, fit.pd_deg, cls.directional, cfg.alpha)
    if layer.x is not None:
        x = np.asarray(layer.x)[keep]
        lt.x_fit = _fit(x, true)
        lt.shift = pd_shift_interval(rates, x, true, cfg.bootstrap, cfg.ci, [ctx.seed, j, 3])
    return lt


def pooled_decodes(ctx: Context, layers: list[Layer], results: list[LayerTuning],
                   keep: np.ndarray, true: np.ndarray, cfg: TuningConfig) -> Decoded | None:
    """Decodes of every analysed neuron of every layer as one population; None without
    layers."""
    if len(results) == 1:  # the population is that layer: same rates, folds and decodes
        return results[0].decoded
    if not results:
        return None
    pop = np.concatenate([np.asarray(layer.rates)[keep] for layer in layers], axis=1)
    voters = voters_of([limits_of(layer, ctx, cfg) for layer in layers],
                       [len(lt.index) for lt in results], cfg)
    return decode_cross_validated(pop, true, voters, cfg.folds, ctx.seed)


def controls(ctx: Context, keep: np.ndarray, true: np.ndarray, results: list[LayerTuning],
             cfg: TuningConfig, metrics: dict[str, float]) -> tuple[list[Any], Any]:
    """The cosine tables of the inputs, each layer's x and its rates (adds their metrics), and
    the inputs' (directions, means, R², directional) for the figure (None for images)."""
    frames = []
    x_test = np.asarray(ctx.data.x_test)
    # images: a pixel's "tuning" says nothing about what the network computes from it
    features = None if x_test.ndim >= 4 else input_features(x_test[ctx.sample][keep])
    inputs = None
    if features is not None:
        fit = _fit(features, true)
        p = direction_tests(features, true)[0]
        frames.append(control_table("input", np.arange(features.shape[1]), fit, p,
                                    p < cfg.alpha, cfg.cosine_r2))
        metrics.update(control_metrics("tuning/control/input", fit, p, cfg.alpha,
                                       cfg.cosine_r2))
        inputs = (fit.directions, fit.mean, fit.r2, p < cfg.alpha)
    for lt, layer in zip(results, [la for la in ctx.layers if la.rates is not None]):
        if lt.x_fit is not None and layer.x is not None:
            p = direction_tests(np.asarray(layer.x)[keep], true)[0]
            frames.append(control_table(f"{lt.name} x", lt.index, lt.x_fit, p, p < cfg.alpha,
                                        cfg.cosine_r2))
            metrics.update(control_metrics(f"tuning/control/{lt.name}_x", lt.x_fit, p,
                                           cfg.alpha, cfg.cosine_r2))
        frames.append(control_table(f"{lt.name} rate", lt.index, lt.fit, lt.cls.anova_p,
                                    lt.cls.directional, cfg.cosine_r2))
    return frames, inputs


class Tuning(Analysis):
    """Directional and cosine tuning of every analysed neuron to the movement direction, and
    population decoding (docs/tuning.md).

    Columns in ``neurons.csv``: the contract's ``pd_deg``, ``baseline_hz``, ``depth_hz``, ``r2``,
    ``anova_p``, ``directional``, ``cosine_fit``, ``pinned``, ``near_silent``, then
    ``anova_test``, ``anova_q``, ``modulation_spikes``, ``near_deterministic``,
    ``lof_p_value``, ``lof_rms_hz``, ``pd_ci_valid``, the bootstrap intervals
    ``pd_ci_low_deg``, ``pd_ci_high_deg``, ``pd_ci_width_deg``, ``depth_ci_low_hz``,
    ``depth_ci_high_hz``, the shape fits (``rcos_*``, ``vm_*``, ``best_model``), where x is
    known ``x_pd_deg``, ``x_r2``, ``pd_shift_deg``, ``pd_shift_low_deg``,
    ``pd_shift_high_deg``, ``created``, and for sequences ``pd_drift_p``, ``pd_drift``,
    ``pd_drift_deg``.

    Tables: ``tuning_rates.csv``, ``tuning_controls.csv`` and, for sequences,
    ``tuning_time.csv``.

    Metrics, over all analysed layers together as ``tuning/...`` and per layer as
    ``tuning/<layer>/...``: ``directional_fraction`` (of the neurons neither pinned nor near
    silent), ``cosine_fraction`` (of the directional ones), ``pinned_fraction``,
    ``near_silent_fraction``, ``median_r2`` (directional neurons), ``cosine_rejected_fraction``,
    ``median_lof_rms_hz``, ``pv_angle_error_deg``, ``pv_weighted_angle_error_deg``,
    ``ole_angle_error_deg``, ``rayleigh_p``, ``pd_resultant_length``, ``axial_rayleigh_p``,
    ``axial_resultant_length``, ``median_pd_ci_width_deg``, ``best_<model>_fraction``,
    ``created_fraction`` (where x is known) and for sequences ``pd_drift_fraction`` and
    ``pd_drift_deg``; the controls' ``tuning/control/input/...`` and
    ``tuning/control/<layer>_x/...`` (``median_r2``, ``directional_fraction``,
    ``cosine_fraction``). The run prints the paper's line, "k of N directional, m% of them
    cosine", with the pinned and near-silent neurons listed.
    """

    name = "tuning"
    Config = TuningConfig

    @classmethod
    def applies(cls, data: Any) -> str | None:
        """Data with movement directions, at least 3 distinct ones in the test split."""
        if not data.has_directions:
            return "the dataset has no movement directions (dataset.direction for dataset=file)"
        directions = np.asarray(data.dir_test, dtype=float)
        k = len(group_directions(directions[np.isfinite(directions)])[0])
        if k < 3:
            return f"a cosine fit needs at least 3 distinct directions in the test split, got {k}"
        return None

    def run(self, ctx: Context, cfg: TuningConfig) -> Result:
        """Fit, test and decode every analysed layer; see the class docstring for the outputs."""
        import pandas as pd

        true = np.asarray(ctx.data.dir_test, dtype=float)[ctx.sample]
        # trials without a direction (a rest class, NaN) stay in the task but not in tuning
        keep = np.isfinite(true)
        true = true[keep]
        layers = [layer for layer in ctx.layers if layer.rates is not None]
        results = [analyse_layer(layer, j, ctx, keep, true, cfg) for j, layer in enumerate(layers)]
        metrics: dict[str, float] = {"tuning/trials_without_direction": float((~keep).sum())}
        for lt in results:
            metrics.update(population_metrics(f"tuning/{lt.name}", [lt], lt.decoded, true,
                                              cfg.alpha))
        pooled = pooled_decodes(ctx, layers, results, keep, true, cfg)
        if pooled is not None:
            metrics.update(population_metrics("tuning", results, pooled, true, cfg.alpha))
        frames, inputs = controls(ctx, keep, true, results, cfg, metrics)
        # a statistic over no neurons (no valid PD interval, say) is not logged: NaN is no value
        metrics = {k: v for k, v in metrics.items() if k in HEADLINE or not np.isnan(v)}
        neurons = pd.concat([neuron_columns(lt) for lt in results]) if results else None
        tables = {"tuning_controls.csv": pd.concat(frames, ignore_index=True)} if frames else {}
        if results:
            tables["tuning_rates.csv"] = rate_table(results)
        if any(lt.time is not None for lt in results):
            tables["tuning_time.csv"] = time_table(results)
        return Result(metrics=metrics, neurons=neurons, tables=tables,
                      figures=figures(results, inputs, true, pooled, cfg),
                      remarks=[paper_line(results)] if results else [])


def figures(results: list[LayerTuning], inputs: Any, true: np.ndarray, pooled: Decoded | None,
            cfg: TuningConfig) -> dict[str, Any]:
    """The figures, drawn lazily (only when plots are on)."""
    if not results:
        return {}
    out: dict[str, Any] = {
        "tuning_curves": lambda: plots.tuning_grid(results, cfg.grid_neurons, cfg.alpha, cfg.ci,
                                                   inputs),
        "preferred_directions": lambda: plots.pd_polar(results),
        "population_vector": lambda: plots.decoding_scatter(results, true, pooled)}
    if any(lt.time is not None for lt in results):
        out["pd_drift"] = lambda: plots.drift_figure(results, cfg.drift_neurons, cfg.ci)
    return out
