"""``thresholds``: where each neuron starts to fire (x-intercept) and how fast it can fire.

A neuron's input current is J = gain·x + bias; it fires once J exceeds J_th (``threshold``: 1 for
Nengo's LIF family, 0 for rectified-linear types, ``neuron.threshold`` for ``threshold_lif``). Its
x-intercept, (J_th − bias)/gain, is the input at which it starts to fire, and ``max_rate_hz`` its
analytic rate at x = 1. Both come from the gains and biases as built and trained (the
``neurons.csv`` columns, read from ``sim.data``), so for a converted layer
gain = ``simulation.scale_firing_rates`` and bias = scale × the trained Keras bias:
x-intercept = J_th/scale − Keras bias.

x = 1 means little for a converted layer, whose x is its weighted input W·h in whatever units the
previous layer's rates give it. So every threshold is also placed in the neuron's *observed*
inputs (``neurons.csv``: ``x_observed_min``/``x_observed_max`` and ``x_intercept_quantile``, the
fraction of observed inputs below the x-intercept: 0 fires on every input, 1 never fires), and the
figure shows the analytic rate at each neuron's highest observed input (not at x = 1, which a
converted layer's inputs may never reach) beside the observed ``peak_rate_hz``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import (
    Analysis,
    Context,
    Layer,
    Result,
    bounded,
    observed_x,
    peak_rates,
    sample_groups,
)


@dataclass
class ThresholdsConfig:
    """Options of the ``thresholds`` analysis (``analyses.thresholds``)."""
    bins: int = bounded(30, ge=1)  # histogram bins


def max_rates_hz(layer: Layer) -> np.ndarray:
    """Analytic rate at x = 1 of each neuron of ``layer``, Hz (amplitude divided out)."""
    nt = layer.neuron_type
    amp = float(getattr(nt, "amplitude", 1.0))
    return np.asarray(nt.rates(np.ones(1), layer.gain, layer.bias), float).ravel() / amp


def analytic_top(layer: Layer) -> tuple[np.ndarray, str]:
    """Each neuron's analytic rate (Hz) at the highest input x it was observed to receive, and
    that place in words; at x = 1 (``max_rate_hz``) when x was not observed. A converted
    layer's x may only span ±0.3, where the rate at x = 1 is far above anything it fired."""
    obs = layer.x_observed
    if obs is None or not len(obs):
        return max_rates_hz(layer), "x = 1"
    nt = layer.neuron_type
    amp = float(getattr(nt, "amplitude", 1.0))
    top = np.nanmax(obs, axis=0)
    rates = [np.asarray(nt.rates(top[j:j + 1], layer.gain[j:j + 1], layer.bias[j:j + 1]),
                        float).ravel()[0] / amp for j in range(len(top))]
    return np.asarray(rates), "its highest observed x"


class Thresholds(Analysis):
    """x-intercepts and maximum rates of the analysed neurons, per layer.

    Metrics: ``threshold/x_intercept_median`` over every analysed neuron with a finite
    x-intercept (gain 0 gives none) and per layer ``threshold/<layer>/x_intercept_median``,
    ``threshold/<layer>/max_rate_hz_median`` (Hz) and ``threshold/<layer>/active_at_zero_fraction``
    (neurons whose x-intercept is below 0, i.e. that fire at x = 0 on their bias alone); where x
    was observed, ``threshold/<layer>/x_intercept_quantile_median`` and the pooled
    ``threshold/x_intercept_quantile_median`` (fraction of observed inputs below the threshold).
    Figure ``thresholds``: per layer, x-intercepts against the observed inputs, their quantiles,
    and the analytic rate at the highest observed x (x = 1 when x was not observed) beside the
    observed peak rate.
    """

    name = "thresholds"
    Config = ThresholdsConfig

    def run(self, ctx: Context, cfg: ThresholdsConfig) -> Result:
        """x-intercepts, analytic maximum rates and threshold quantiles of every layer."""
        metrics: dict[str, float] = {}
        finite_all, quantiles = [], []
        for layer in ctx.layers:
            xi = layer.x_intercept
            finite = xi[np.isfinite(xi)]
            finite_all.append(finite)
            if len(finite):
                metrics[f"threshold/{layer.name}/x_intercept_median"] = float(np.median(finite))
            metrics[f"threshold/{layer.name}/max_rate_hz_median"] = float(
                np.median(max_rates_hz(layer)))
            metrics[f"threshold/{layer.name}/active_at_zero_fraction"] = float(np.mean(xi < 0))
            q = observed_x(layer)["x_intercept_quantile"]
            if np.isfinite(q).any():
                quantiles.append(q[np.isfinite(q)])
                metrics[f"threshold/{layer.name}/x_intercept_quantile_median"] = float(
                    np.median(quantiles[-1]))
        finite = np.concatenate(finite_all) if finite_all else np.zeros(0)
        if len(finite):
            metrics["threshold/x_intercept_median"] = float(np.median(finite))
        if quantiles:
            metrics["threshold/x_intercept_quantile_median"] = float(
                np.median(np.concatenate(quantiles)))
        figures = {}
        if ctx.layers:
            groups = sample_groups(ctx)
            figures["thresholds"] = lambda: histograms(ctx.layers, cfg.bins, groups)
        return Result(metrics=metrics, figures=figures)


def _histogram(ax: Any, values: np.ndarray, edges: int | np.ndarray) -> None:
    """x-intercepts as a histogram; a few distinct values as bars centred on each value (a bin's
    edge would put a lone neuron's bar beside its x-intercept, not on it)."""
    distinct, counts = np.unique(values, return_counts=True)
    if 0 < len(distinct) <= 3 and not isinstance(edges, int):
        width = float(edges[1] - edges[0])
        ax.bar(distinct, counts, width=width, color="tab:purple", alpha=0.85, zorder=2)
    else:
        ax.hist(values, bins=edges, color="tab:purple", alpha=0.85, zorder=2)


def histograms(layers: list[Layer], bins: int, groups: np.ndarray | None = None) -> Figure:
    """Per layer (one row each): x-intercepts over the observed inputs, x-intercept quantiles, and
    the analytic rate at the highest observed x (:func:`analytic_top`) beside the observed peak
    rate."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(layers), 3, figsize=(11.0, 0.7 + 2.6 * len(layers)),
                             squeeze=False)
    for (ax_x, ax_q, ax_r), layer in zip(axes, layers):
        xi = layer.x_intercept
        finite = xi[np.isfinite(xi)]
        obs = layer.x_observed
        edges: int | np.ndarray = bins
        if obs is not None:  # where the neurons' inputs actually were: 5-95% and full range
            lo, q05, q95, hi = np.nanpercentile(obs, [0, 5, 95, 100])
            # edged, so their legend patches show on the white legend too
            ax_x.axvspan(lo, hi, facecolor="0.9", edgecolor="0.55", zorder=0,
                         label="observed x")
            ax_x.axvspan(q05, q95, facecolor="0.78", edgecolor="0.55", zorder=0,
                         label="observed x, 5-95%")
            # bins on the scale of the inputs: x-intercepts that agree to 1e-4 are one bar
            span = np.concatenate([[lo, hi], finite])
            edges = np.linspace(span.min(), span.max(), bins + 1)
        _histogram(ax_x, finite, edges)
        if len(finite):
            ax_x.axvline(np.median(finite), color="k", lw=1, ls="--", zorder=3)
        if obs is not None:
            ax_x.set_ylim(top=ax_x.get_ylim()[1] * 1.4)  # headroom: the legend above the bars
            ax_x.legend(fontsize=7, loc="upper right", frameon=False)
        ax_x.set_title(f"{layer.name}: J_th = {layer.threshold:g}, median x-intercept "
                       f"{np.median(finite) if len(finite) else np.nan:.3g}", fontsize=9)
        ax_x.set_xlabel("x-intercept (J_th − bias) / gain, x units")
        ax_x.set_ylabel("neurons")
        q = observed_x(layer)["x_intercept_quantile"]
        if np.isfinite(q).any():
            ax_q.hist(q[np.isfinite(q)], bins=np.linspace(0, 1, 21), color="tab:green",
                      alpha=0.85)
            ax_q.set_title(f"share of inputs below threshold, median "
                           f"{np.nanmedian(q):.2f}", fontsize=9)
        else:
            ax_q.text(0.5, 0.5, "x not observed", ha="center", va="center",
                      transform=ax_q.transAxes, color="0.4")
        ax_q.set_xlim(0, 1)
        ax_q.set_xlabel("x-intercept quantile (0: always fires, 1: never)")
        rates, where = analytic_top(layer)
        peak = peak_rates(layer.rates, groups) if layer.rates is not None else rates[:0]
        both = np.concatenate([rates, peak])
        both = both[np.isfinite(both)]
        edges = np.linspace(both.min(), both.max() + 1e-9, bins + 1) if len(both) else bins
        ax_r.hist(rates, bins=edges, color="tab:orange", alpha=0.7,
                  label=f"analytic at {where}, median {np.median(rates):.0f} Hz")
        if len(peak):
            ax_r.hist(peak, bins=edges, color="tab:blue", alpha=0.6,
                      label=f"observed peak, median {np.median(peak):.0f} Hz")
        ax_r.set_ylim(top=ax_r.get_ylim()[1] * 1.4)  # headroom: the legend sits above the bars
        ax_r.legend(fontsize=7, frameon=False, loc="upper center")
        ax_r.set_title(f"{layer.name}: rates", fontsize=9)
        ax_r.set_xlabel("rate (Hz)")
        for ax in (ax_q, ax_r):
            ax.set_ylabel("neurons")
        for ax in (ax_x, ax_r):  # converted layers spread over ~1e-3: plain tick labels
            ax.ticklabel_format(axis="x", useOffset=False)
    fig.suptitle("Where neurons start to fire, in their own inputs, and how fast they fire",
                 fontsize=10)
    fig.tight_layout()
    return fig
