"""``thresholds``: where each neuron starts to fire (x-intercept) and how fast it can fire.

A neuron's input current is J = gain·x + bias; it fires once J exceeds J_th (``threshold``: 1 for
Nengo's LIF family, 0 for rectified-linear types, ``neuron.threshold`` for ``threshold_lif``). Its
x-intercept, (J_th − bias)/gain, is the input at which it starts to fire, and ``max_rate_hz`` its
analytic rate at x = 1. Both come from the gains and biases as built and trained (the
``neurons.csv`` columns, read from ``sim.data``), so for a converted layer
gain = ``simulation.scale_firing_rates`` and bias = scale × the trained Keras bias:
x-intercept = J_th/scale − Keras bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, bounded


@dataclass
class ThresholdsConfig:
    bins: int = bounded(30, ge=1)  # histogram bins


def max_rates_hz(layer: Layer) -> np.ndarray:
    """Analytic rate at x = 1 of each neuron of ``layer``, Hz (amplitude divided out)."""
    nt = layer.neuron_type
    amp = float(getattr(nt, "amplitude", 1.0))
    return np.asarray(nt.rates(np.ones(1), layer.gain, layer.bias), float).ravel() / amp


class Thresholds(Analysis):
    """x-intercepts and maximum rates of the analysed neurons, per layer.

    Metrics: ``threshold/x_intercept_median`` over every analysed neuron with a finite
    x-intercept (gain 0 gives none) and per layer ``threshold/<layer>/x_intercept_median``,
    ``threshold/<layer>/max_rate_hz_median`` (Hz) and ``threshold/<layer>/active_at_zero_fraction``
    (neurons whose x-intercept is below 0, i.e. that fire at x = 0 on their bias alone).
    Figure ``thresholds``: per layer, histograms of x-intercepts and of max rates.
    """

    name = "thresholds"
    Config = ThresholdsConfig

    def run(self, ctx: Context, cfg: ThresholdsConfig) -> Result:
        metrics: dict[str, float] = {}
        finite_all = []
        for layer in ctx.layers:
            xi = layer.x_intercept
            finite = xi[np.isfinite(xi)]
            finite_all.append(finite)
            if len(finite):
                metrics[f"threshold/{layer.name}/x_intercept_median"] = float(np.median(finite))
            metrics[f"threshold/{layer.name}/max_rate_hz_median"] = float(
                np.median(max_rates_hz(layer)))
            metrics[f"threshold/{layer.name}/active_at_zero_fraction"] = float(np.mean(xi < 0))
        finite = np.concatenate(finite_all) if finite_all else np.zeros(0)
        if len(finite):
            metrics["threshold/x_intercept_median"] = float(np.median(finite))
        figures = {}
        if ctx.layers:
            figures["thresholds"] = lambda: histograms(ctx.layers, cfg.bins)
        return Result(metrics=metrics, figures=figures)


def histograms(layers: list[Layer], bins: int):
    """Per layer (one row each): x-intercept histogram and max-rate histogram."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(layers), 2, figsize=(7.6, 0.6 + 2.5 * len(layers)),
                             squeeze=False)
    for (ax_x, ax_r), layer in zip(axes, layers):
        xi = layer.x_intercept
        finite = xi[np.isfinite(xi)]
        ax_x.hist(finite, bins=bins, color="tab:purple", alpha=0.85)
        if len(finite):
            ax_x.axvline(np.median(finite), color="k", lw=1, ls="--")
        ax_x.set_title(f"{layer.name}: J_th = {layer.threshold:g}, median x-intercept "
                       f"{np.median(finite) if len(finite) else np.nan:.3g}", fontsize=9)
        ax_x.set_xlabel("x-intercept (J_th − bias) / gain")
        ax_x.set_ylabel("neurons")
        rates = max_rates_hz(layer)
        ax_r.hist(rates, bins=bins, color="tab:orange", alpha=0.85)
        ax_r.set_title(f"{layer.name}: rate at x = 1, median {np.median(rates):.1f} Hz",
                       fontsize=9)
        ax_r.set_xlabel("max rate (Hz)")
        for ax in (ax_x, ax_r):  # converted layers spread over ~1e-3: plain tick labels
            ax.ticklabel_format(axis="x", useOffset=False)
    fig.suptitle("Where neurons start to fire, and how fast they can", fontsize=10)
    fig.tight_layout()
    return fig
