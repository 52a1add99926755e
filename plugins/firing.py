"""``firing``: each neuron's mean spiking rate on the evaluation set, a histogram and a raster."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.analysis import Analysis, Context, Result


@dataclass
class FiringConfig:
    silent_below_hz: float = 0.1  # a neuron firing below this rate on every sample is silent, Hz
    raster_neurons: int = 50  # neurons per layer shown in the raster plot


class Firing(Analysis):
    """Per-neuron mean rate (Hz) over the simulated test samples, per layer.

    Metrics: ``firing/mean_rate_hz`` (mean over neurons and samples), ``firing/max_rate_hz`` (the
    highest neuron mean), ``firing/silent_fraction`` (neurons below ``silent_below_hz`` on every
    sample), and the same per layer as ``firing/<layer>/...``.
    """

    name = "firing"
    Config = FiringConfig

    def run(self, ctx: Context, cfg: FiringConfig) -> Result:
        import pandas as pd

        metrics, frames = {}, []
        layers = [layer for layer in ctx.layers if layer.rates is not None]
        all_means, all_silent = [], []
        for layer in layers:
            assert layer.rates is not None  # the filter above; mypy does not narrow through it
            mean = layer.rates.mean(axis=0)
            silent = np.all(layer.rates < cfg.silent_below_hz, axis=0)
            all_means.append(mean)
            all_silent.append(silent)
            metrics[f"firing/{layer.name}/mean_rate_hz"] = float(mean.mean())
            metrics[f"firing/{layer.name}/max_rate_hz"] = float(mean.max())
            metrics[f"firing/{layer.name}/silent_fraction"] = float(silent.mean())
            frames.append(pd.DataFrame({"layer": layer.name, "neuron": layer.index,
                                        "mean_rate_hz": mean}))
        if all_means:
            means = np.concatenate(all_means)
            metrics["firing/mean_rate_hz"] = float(means.mean())
            metrics["firing/max_rate_hz"] = float(means.max())
            metrics["firing/silent_fraction"] = float(np.concatenate(all_silent).mean())
        figures = {}
        if layers:
            figures["firing_rates"] = lambda: rate_histograms(layers)
            if any(layer.spikes is not None for layer in layers):
                figures["raster"] = lambda: raster(ctx, layers, cfg.raster_neurons)
        return Result(metrics=metrics, neurons=pd.concat(frames) if frames else None,
                      figures=figures)


def rate_histograms(layers):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        mean = layer.rates.mean(axis=0)
        ax.hist(mean, bins=30, color="tab:blue", alpha=0.8)
        ax.set_title(f"{layer.name}: mean {mean.mean():.1f} Hz, max {mean.max():.0f} Hz",
                     fontsize=9)
        ax.set_xlabel("mean firing rate (Hz)")
    axes[0][0].set_ylabel("neurons")
    fig.suptitle("Firing rates on the test set", fontsize=10)
    fig.tight_layout()
    return fig


def raster(ctx: Context, layers, max_neurons: int):
    """Spike raster of the first test sample, per layer (at most ``max_neurons`` neurons each)."""
    import matplotlib.pyplot as plt

    layers = [layer for layer in layers if layer.spikes is not None]
    fig, axes = plt.subplots(len(layers), 1, figsize=(7.0, 1.2 + 1.6 * len(layers)),
                             squeeze=False, sharex=True)
    for ax, layer in zip(axes[:, 0], layers):
        spikes = layer.spikes[0][:, :max_neurons]  # (steps, neurons), spikes per step
        t, n = np.nonzero(spikes > 0)
        ax.scatter(t * ctx.dt * 1000.0, n, s=14, marker="|", linewidths=0.8, color="k")
        ax.set_ylabel(f"{layer.name}\nneuron", fontsize=8)
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    axes[-1, 0].set_xlabel("time (ms)")
    fig.suptitle("Spike raster, first test sample", fontsize=10)
    fig.tight_layout()
    return fig
