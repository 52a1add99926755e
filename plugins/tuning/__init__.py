"""``tuning``: cosine tuning curves, preferred directions, how sure and how cosine they are, and
population decoding of direction.

After Georgopoulos et al. (1982): each analysed neuron's spiking rate is averaged per movement
direction over the test trials, and those means are fitted by least squares with

    r(θ) = b0 + b1·cos θ + b2·sin θ = b0 + depth·cos(θ − PD),

so ``baseline_hz`` = b0, ``depth_hz`` = √(b1² + b2²), ``pd_deg`` = atan2(b2, b1) in [0, 360) and
``r2`` is the fit's coefficient of determination on the means. Two single-trial F-tests ask two
different questions:

- is the rate modulated by direction at all (the cosine against a constant; ``p_value``,
  ``modulated`` = p < alpha)?
- is the modulation cosine-shaped (lack of fit against the pure error of the replicate trials per
  direction; ``lof_p_value``)?

``tuned`` is both: modulated, and the cosine shape not rejected. On top of that:

- stratified bootstrap confidence intervals of each neuron's PD (circular) and depth;
- rectified-cosine and von Mises fits (Amirikian & Georgopoulos 2000), compared with the cosine
  by AICc on single-trial residuals;
- a Rayleigh test of the population's preferred directions;
- tuning per time bin of a sequence (PD(t), depth(t) with their CIs) and the PD's drift;
- the same cosine tables for the network's inputs and each layer's input x (controls), so that
  what the network inherits can be told from what it creates.

The direction of each test trial is then decoded twice, each time by a decoder fitted on the
*other* trials (``folds``-fold cross-validation, stratified by direction):

- population vector: each neuron *modulated* in the training folds votes along its training-fold
  PD with weight (r − b0)/depth (whether its shape is a cosine does not matter for a vote);
- optimal linear estimator (Salinas & Abbott 1994), empirical: the ridge-regularised linear
  read-out of (cos θ, sin θ) fitted to the measured training rates of every neuron. It needs no
  cosine model and undoes the population vector's bias towards where preferred directions
  cluster.

The package's parts work on plain arrays, so they can be used (and tested) outside a run:
:mod:`plugins.tuning.fit` (the statistics), :mod:`plugins.tuning.decode` (the decoders),
:mod:`plugins.tuning.tables` (metrics, columns, tables) and :mod:`plugins.tuning.plots`. This
module is the plugin itself; the names below are re-exported for callers of the single module
this package used to be.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, UserError, bounded
from plugins.tuning import plots
from plugins.tuning.decode import (
    decode_cross_validated,
    mean_angle_error,
    optimal_linear_estimator,
    population_vector,
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
    fit_cosine,
    fit_shapes,
    group_directions,
    input_features,
    mean_ci,
    pd_drift,
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
    population_metrics,
    rate_table,
    time_table,
)

__all__ = ["DIRECTION_DECIMALS", "KAPPA_MAX", "MODELS", "N_PARAMS", "CosineCI", "CosineFit",
           "LayerTuning", "ShapeFits", "TimeTuning", "Tuning", "TuningConfig", "aicc",
           "bootstrap_cosine", "circular_interval", "concat_fits", "control_table",
           "decode_cross_validated", "fit_cosine", "fit_shapes", "group_directions",
           "input_features", "mean_angle_error", "mean_ci", "neuron_columns",
           "optimal_linear_estimator", "pd_drift", "population_vector", "rate_table",
           "rayleigh_test", "rectified_cosine", "time_table", "tuning_over_time", "von_mises"]


@dataclass
class TuningConfig:
    """Options of the ``tuning`` analysis (``analyses.tuning``)."""
    alpha: float = bounded(0.05, gt=0.0, lt=1.0)  # level of both F-tests (modulation, lack of fit)
    grid_neurons: int = bounded(16, ge=1)  # neurons in the tuning-curve grid (most strongly tuned)
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


def analyse_layer(layer: Layer, j: int, ctx: Context, keep: np.ndarray, true: np.ndarray,
                  cfg: TuningConfig) -> LayerTuning:
    """Fits, intervals, shape comparison, decodes and (sequences) tuning over time of the ``j``-th
    analysed layer, on the trials ``keep`` (those with a direction, ``true``, degrees)."""
    rates = np.asarray(layer.rates)[keep]
    fit = _fit(rates, true)
    # independent, reproducible resampling streams per layer and purpose
    boot = bootstrap_cosine(rates, true, cfg.bootstrap, cfg.ci, [ctx.seed, j, 0], fit)
    pv, ole = decode_cross_validated(rates, true, cfg.alpha, cfg.folds, ctx.seed)
    time = None if layer.binned_rates is None else tuning_over_time(
        np.asarray(layer.binned_rates)[keep], true, float(ctx.bin_s or 0.0), cfg.alpha,
        cfg.bootstrap, cfg.ci, [ctx.seed, j, 1])
    x_fit = None if layer.x is None else _fit(np.asarray(layer.x)[keep], true)
    return LayerTuning(layer.name, layer.index, fit, fit.modulated(cfg.alpha),
                       fit.tuned(cfg.alpha), pv, ole, boot, fit_shapes(fit), time, x_fit)


def pooled_decodes(layers: list[Layer], results: list[LayerTuning], keep: np.ndarray,
                   true: np.ndarray, cfg: TuningConfig,
                   seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(PV, OLE) decodes (degrees) of every analysed neuron of every layer as one population;
    None without layers."""
    if len(results) == 1:  # the population is that layer: same rates, folds and decodes
        return results[0].pv, results[0].ole
    if not results:
        return None
    pop = np.concatenate([np.asarray(layer.rates)[keep] for layer in layers], axis=1)
    return decode_cross_validated(pop, true, cfg.alpha, cfg.folds, seed)


def controls(ctx: Context, keep: np.ndarray, true: np.ndarray, results: list[LayerTuning],
             alpha: float, metrics: dict[str, float]) -> list[Any]:
    """The cosine tables of the inputs, each layer's x and its rates (adds their metrics)."""
    frames = []
    x_test = np.asarray(ctx.data.x_test)
    # images: a pixel's "tuning" says nothing about what the network computes from it
    features = None if x_test.ndim >= 4 else input_features(x_test[ctx.sample][keep])
    if features is not None:
        fit = _fit(features, true)
        frames.append(control_table("input", np.arange(features.shape[1]), fit, alpha))
        metrics.update(control_metrics("tuning/control/input", fit, alpha))
    for lt in results:
        if lt.x_fit is not None:
            frames.append(control_table(f"{lt.name} x", lt.index, lt.x_fit, alpha))
            metrics.update(control_metrics(f"tuning/control/{lt.name}_x", lt.x_fit, alpha))
        frames.append(control_table(f"{lt.name} rate", lt.index, lt.fit, alpha))
    return frames


class Tuning(Analysis):
    """Cosine tuning of every analysed neuron to the movement direction, and population decoding.

    Columns in ``neurons.csv``: ``pd_deg``, ``baseline_hz``, ``depth_hz``, ``r2``, ``p_value``,
    ``tuned`` (modulated and the cosine shape not rejected), then ``modulated``, ``lof_p_value``,
    the bootstrap intervals ``pd_ci_low_deg``, ``pd_ci_high_deg``, ``pd_ci_width_deg``,
    ``depth_ci_low_hz``, ``depth_ci_high_hz``, and the shape fits ``rcos_r2``, ``vm_pd_deg``,
    ``vm_kappa``, ``vm_r2``, ``best_model``, ``rcos_baseline_hz``, ``rcos_depth_hz``,
    ``rcos_pd_deg``, ``vm_trough_hz``, ``vm_amplitude_hz``.

    Tables: ``tuning_rates.csv`` (``layer``, ``neuron``, ``direction_deg``, ``mean_rate_hz``,
    ``n_trials``, ``sd_rate_hz``), ``tuning_controls.csv`` (the cosine fits of the inputs, each
    layer's input x where the framework provides it, and the layer's rates) and, for sequences,
    ``tuning_time.csv`` (per time bin).

    Metrics, over all analysed layers together as ``tuning/...`` and per layer as
    ``tuning/<layer>/...``: ``tuned_fraction``, ``modulated_fraction``,
    ``cosine_rejected_fraction``, ``median_r2``, ``pv_angle_error_deg``, ``ole_angle_error_deg``
    (both cross-validated; the PV's is NaN when no neuron is modulated), ``rayleigh_p``,
    ``pd_resultant_length``, ``median_pd_ci_width_deg``, ``best_<model>_fraction`` and, for
    sequences, ``pd_drift_deg``; the controls' ``tuning/control/input/...`` and
    ``tuning/control/<layer>_x/...`` (``median_r2``, ``tuned_fraction``, ``modulated_fraction``).
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
            metrics.update(population_metrics(f"tuning/{lt.name}", [lt], lt.pv, lt.ole, true,
                                              cfg.alpha))
        pooled = pooled_decodes(layers, results, keep, true, cfg, ctx.seed)
        if pooled is not None:
            metrics.update(population_metrics("tuning", results, *pooled, true, cfg.alpha))
        frames = controls(ctx, keep, true, results, cfg.alpha, metrics)
        neurons = pd.concat([neuron_columns(lt) for lt in results]) if results else None
        tables = {"tuning_controls.csv": pd.concat(frames, ignore_index=True)} if frames else {}
        figures: dict[str, Any] = {}
        if results:
            tables["tuning_rates.csv"] = rate_table(results)
            figures = {"tuning_curves": lambda: plots.tuning_grid(results, cfg.grid_neurons,
                                                                  cfg.alpha, cfg.ci),
                       "preferred_directions": lambda: plots.pd_polar(results),
                       "population_vector": lambda: plots.decoding_scatter(results, true, pooled)}
        if any(lt.time is not None for lt in results):
            tables["tuning_time.csv"] = time_table(results)
            figures["pd_drift"] = lambda: plots.drift_figure(results, cfg.drift_neurons, cfg.ci)
        return Result(metrics=metrics, neurons=neurons, tables=tables, figures=figures)
