"""``response``: rate against input for single neurons, analytic and measured with spikes.

For each analysed layer, up to ``max_neurons`` neurons (spread over the layer's range of
x-intercepts) get two response curves over x in [``x_low``, ``x_high``]:

- analytic: the neuron type's ``rates(x, gain, bias)`` with the neuron's gain and bias as built,
  amplitude divided out (Hz), as ``nengo.utils.ensemble.response_curves`` computes them;
- measured: the same neuron type, gain and bias simulated with ``nengo.Simulator`` on each
  constant x for ``duration`` s (one ensemble with a copy of every neuron per x, one simulation;
  :func:`framework.ensemble.simulate_constant`), rate = spike count / duration.

The two agree within ``tolerance_hz`` + ``tolerance_rel`` × analytic rate (2 Hz + 1% by default):
with a 1 s window a spike count is off by less than one spike (< 1 Hz), and Nengo's LIF places
spikes within the step, so its spiking rate matches its rate equation at up to 1/tau_ref.
Rate types (``lif_rate``, ``relu``) agree exactly. ``response/max_abs_error_hz`` is the largest
disagreement and ``response/within_tolerance_fraction`` the share of points inside the tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, UserError, bounded


@dataclass
class ResponseConfig:
    x_low: float = -1.0  # lowest input, x units
    x_high: float = 1.0  # highest input, x units
    n_x: int = bounded(41, ge=2)  # input values, evenly spaced
    max_neurons: int = bounded(20, ge=1)  # neurons per layer, spread over the x-intercepts
    duration: float = bounded(1.0, gt=0.0)  # simulated time per input value, s
    tolerance_hz: float = bounded(2.0, ge=0.0)  # accepted |measured − analytic|, Hz ...
    tolerance_rel: float = bounded(0.01, ge=0.0)  # ... plus this fraction of the analytic rate

    def __post_init__(self):
        if not self.x_low < self.x_high:
            raise UserError(f"analyses.response.x_low: must be below analyses.response.x_high, "
                            f"got {self.x_low} >= {self.x_high}")


def pick(layer: Layer, k: int) -> np.ndarray:
    """Positions (into ``layer``'s arrays) of ``k`` neurons evenly spread over the sorted
    x-intercepts, so the curves show the layer's range of thresholds."""
    n = len(layer.gain)
    if n <= k:
        return np.arange(n)
    order = np.argsort(layer.x_intercept, kind="stable")  # inf (gain 0) last
    return np.sort(order[np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))])


def analytic_rates(layer: Layer, pos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``rates(x, gain, bias)`` / amplitude of the neurons at ``pos``, Hz: (len(x), len(pos))."""
    nt = layer.neuron_type
    amp = float(getattr(nt, "amplitude", 1.0))
    return np.asarray(nt.rates(x, layer.gain[pos], layer.bias[pos]), float) / amp


class Response(Analysis):
    """Response curves per neuron, analytic and measured; ``response_curves.csv`` and a plot.

    Metrics: ``response/max_abs_error_hz``, ``response/within_tolerance_fraction`` and per layer
    ``response/<layer>/max_abs_error_hz``.
    """

    name = "response"
    Config = ResponseConfig

    def run(self, ctx: Context, cfg: ResponseConfig) -> Result:
        import pandas as pd

        from framework.ensemble import simulate_constant

        measure = ctx.simulate_constant or simulate_constant
        x = np.linspace(cfg.x_low, cfg.x_high, cfg.n_x)
        n_steps = max(1, int(round(cfg.duration / ctx.dt)))
        metrics: dict[str, float] = {}
        frames, curves, errors, inside = [], [], [], []
        for layer in ctx.layers:
            pos = pick(layer, cfg.max_neurons)
            ana = analytic_rates(layer, pos, x)
            sim = measure(layer.neuron_type, layer.gain[pos], layer.bias[pos], x, n_steps,
                          dt=ctx.dt, seed=ctx.seed)
            err = np.abs(sim - ana)
            errors.append(err.ravel())
            inside.append((err <= cfg.tolerance_hz + cfg.tolerance_rel * ana).ravel())
            metrics[f"response/{layer.name}/max_abs_error_hz"] = float(err.max())
            frames.append(pd.DataFrame({
                "layer": layer.name, "neuron": np.tile(layer.index[pos], len(x)),
                "x": np.repeat(x, len(pos)), "rate_hz": ana.ravel(), "sim_rate_hz": sim.ravel()}))
            curves.append((layer, pos, ana, sim))
        if not frames:
            return Result()
        metrics["response/max_abs_error_hz"] = float(np.concatenate(errors).max())
        metrics["response/within_tolerance_fraction"] = float(np.concatenate(inside).mean())
        table = pd.concat(frames, ignore_index=True)
        native = getattr(getattr(ctx.cfg, "model", None), "name", "") == "ensemble"
        xlabel = ("x (input along the preferred direction)" if native
                  else "x (the layer's weighted input, without its bias)")
        return Result(metrics=metrics, tables={"response_curves.csv": table},
                      figures={"response_curves": lambda: plot(x, curves, xlabel)})


def plot(x: np.ndarray, curves, xlabel: str = "x"):
    """One panel per layer: analytic curves (lines), measured rates (dots), x-intercepts (ticks)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(max(6.4, 4.4 * len(curves)), 3.6),
                             squeeze=False)
    for ax, (layer, pos, ana, sim) in zip(axes[0], curves):
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(pos)))
        xi = layer.x_intercept[pos]
        for j, c in enumerate(colors):
            ax.plot(x, ana[:, j], color=c, lw=1.2)
            ax.plot(x, sim[:, j], "o", color=c, ms=2.2, alpha=0.8)
            if np.isfinite(xi[j]) and x[0] <= xi[j] <= x[-1]:
                ax.plot([xi[j]], [0], marker="|", ms=12, mew=1.5, color=c)
        ax.set_title(f"{layer.name} ({type(layer.neuron_type).__name__}, J_th = "
                     f"{layer.threshold:g}): {len(pos)} neurons", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_xlim(x[0], x[-1])
    axes[0][0].set_ylabel("rate (Hz)")
    fig.suptitle("Response curves: analytic (lines), simulated spikes (dots), "
                 "x-intercepts (ticks)", fontsize=10)
    fig.tight_layout()
    return fig
