"""``firing``: each neuron's mean spiking rate on the evaluation set, a histogram and a raster, and
which neurons saturate.

A neuron is *saturated* when on some test sample it fires at ``saturation`` × 1/τ_ref or more
(the LIF family cannot fire faster than once per refractory period, so its rate curve flattens
there) or, for spiking types, more than once per simulation step (a spiking ReLU then emits several
spikes in one step). Saturated neurons carry no graded information: their tuning curves are
plateaus, so the run says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, bounded, sample_groups


@dataclass
class FiringConfig:
    """Options of the ``firing`` analysis (``analyses.firing``)."""
    # a neuron firing below this rate on every sample is silent, Hz
    silent_below_hz: float = bounded(0.1, ge=0.0)
    raster_neurons: int = bounded(50, ge=0)  # neurons per layer shown in the raster plot
    # fraction of 1/tau_ref at which a neuron counts as saturated (dimensionless)
    saturation: float = bounded(0.9, gt=0.0, le=1.0)


def saturated(layer: Layer, dt: float, fraction: float = 0.9) -> np.ndarray:
    """Neurons of ``layer`` that fire at ``fraction``/τ_ref or more on some sample, or (spiking
    types) more than once per step of ``dt`` s; boolean, shape (n,)."""
    assert layer.rates is not None
    top = layer.rates.max(axis=0)  # Hz, the fastest sample
    out = np.zeros(top.shape, bool)
    tau_ref = float(getattr(layer.neuron_type, "tau_ref", 0.0) or 0.0)
    if tau_ref > 0:
        out |= top >= fraction / tau_ref
    if getattr(layer.neuron_type, "spiking", False):
        out |= top * dt > 1.0
    return out


def saturation_line(layers: list[Layer], flags: list[np.ndarray], fraction: float) -> str:
    """One line naming the layers with saturated neurons and what to change."""
    parts = []
    for layer, flag in zip(layers, flags):
        if flag.any():
            tau_ref = float(getattr(layer.neuron_type, "tau_ref", 0.0) or 0.0)
            limit = f"{fraction:g}/τ_ref = {fraction / tau_ref:.0f} Hz" if tau_ref else "1/dt"
            parts.append(f"{layer.name} {int(flag.sum())} of {len(flag)} (≥ {limit})")
    return ("saturated neurons: " + ", ".join(parts) + "; their rates plateau, so tuning curves "
            "flatten: lower simulation.scale_firing_rates (or conversion.max_rate_hz)")


class Firing(Analysis):
    """Per-neuron mean rate (Hz) over the simulated test samples, per layer.

    Metrics: ``firing/mean_rate_hz`` (mean over neurons and samples), ``firing/max_rate_hz`` (the
    highest neuron mean), ``firing/silent_fraction`` (neurons below ``silent_below_hz`` on every
    sample), ``firing/saturated_fraction`` (:func:`saturated`), and the same per layer as
    ``firing/<layer>/...``. Column ``saturated`` in ``neurons.csv``; a line when any neuron is.
    """

    name = "firing"
    Config = FiringConfig

    def run(self, ctx: Context, cfg: FiringConfig) -> Result:
        """Mean, silent and saturated neurons of every layer with rates."""
        import pandas as pd

        metrics, frames = {}, []
        layers = [layer for layer in ctx.layers if layer.rates is not None]
        all_means, all_silent, all_sat = [], [], []
        for layer in layers:
            assert layer.rates is not None  # the filter above; mypy does not narrow through it
            mean = layer.rates.mean(axis=0)
            silent = np.all(layer.rates < cfg.silent_below_hz, axis=0)
            sat = saturated(layer, ctx.dt, cfg.saturation)
            all_means.append(mean)
            all_silent.append(silent)
            all_sat.append(sat)
            metrics[f"firing/{layer.name}/mean_rate_hz"] = float(mean.mean())
            metrics[f"firing/{layer.name}/max_rate_hz"] = float(mean.max())
            metrics[f"firing/{layer.name}/silent_fraction"] = float(silent.mean())
            metrics[f"firing/{layer.name}/saturated_fraction"] = float(sat.mean())
            frames.append(pd.DataFrame({"layer": layer.name, "neuron": layer.index,
                                        "mean_rate_hz": mean, "saturated": sat}))
        remarks = []
        if all_means:
            means = np.concatenate(all_means)
            metrics["firing/mean_rate_hz"] = float(means.mean())
            metrics["firing/max_rate_hz"] = float(means.max())
            metrics["firing/silent_fraction"] = float(np.concatenate(all_silent).mean())
            metrics["firing/saturated_fraction"] = float(np.concatenate(all_sat).mean())
            if np.concatenate(all_sat).any():
                remarks.append(saturation_line(layers, all_sat, cfg.saturation))
        figures = {}
        if layers:
            figures["firing_rates"] = lambda: rate_histograms(layers)
            if any(layer.spikes is not None for layer in layers):
                figures["raster"] = lambda: raster(ctx, layers, cfg.raster_neurons)
        return Result(metrics=metrics, neurons=pd.concat(frames) if frames else None,
                      figures=figures, remarks=remarks)


def rate_histograms(layers: list[Layer]) -> Figure:
    """Histogram of the neurons' mean rates (Hz), one panel per layer (layers with rates)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        assert layer.rates is not None  # the caller passes layers with rates only
        mean = layer.rates.mean(axis=0)
        ax.hist(mean, bins=30, color="tab:blue", alpha=0.8)
        ax.set_title(f"{layer.name}: mean {mean.mean():.1f} Hz, max {mean.max():.0f} Hz",
                     fontsize=9)
        ax.set_xlabel("mean firing rate (Hz)")
    axes[0][0].set_ylabel("neurons")
    fig.suptitle("Firing rates on the test set", fontsize=10)
    fig.tight_layout()
    return fig


def raster(ctx: Context, layers: list[Layer], max_neurons: int) -> Figure:
    """Spike raster of the first test sample, per layer (at most ``max_neurons`` neurons each)."""
    import matplotlib.pyplot as plt

    layers = [layer for layer in layers if layer.spikes is not None]
    fig, axes = plt.subplots(len(layers), 1, figsize=(7.0, 1.2 + 1.6 * len(layers)),
                             squeeze=False, sharex=True)
    for ax, layer in zip(axes[:, 0], layers):
        assert layer.spikes is not None  # the filter above; mypy does not narrow through it
        spikes = layer.spikes[0][:, :max_neurons]  # (steps, neurons), spikes per step
        t, n = np.nonzero(spikes > 0)
        ax.scatter(t * ctx.dt * 1000.0, n, s=14, marker="|", linewidths=0.8, color="k")
        ax.set_ylabel(f"{layer.name}\nneuron", fontsize=8)
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    axes[-1, 0].set_xlabel("time (ms)")
    groups = sample_groups(ctx)  # the trial's condition, so the raster says what it shows
    what = ("" if groups is None or not np.isfinite(groups[0]) else
            f": movement direction {groups[0]:g}°" if ctx.data is not None
            and ctx.data.has_directions else f": class {groups[0]:g}")
    fig.suptitle(f"Spike raster, first test sample{what}", fontsize=10)
    fig.tight_layout()
    return fig
