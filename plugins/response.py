"""``response``: rate against input for single neurons, analytic and measured with spikes.

For each analysed layer, up to ``max_neurons`` neurons (spread over the layer's range of
x-intercepts) get two response curves over x in [``x_low``, ``x_high``], by default each over
the range of x that neuron received in the run (``x_observed_min`` … ``x_observed_max`` of
``neurons.csv``; for a converted layer x is its weighted input W·h, so each neuron's curve covers
its own inputs):

- analytic: the neuron type's ``rates(x, gain, bias)`` with the neuron's gain and bias as built,
  amplitude divided out (Hz), as ``nengo.utils.ensemble.response_curves`` computes them;
- measured: the same neuron type, gain and bias simulated with ``nengo.Simulator`` on each
  constant x for ``duration`` s (one ensemble with a copy of every neuron per x, one simulation;
  ``ctx.simulate_constant``), rate = spike count / duration.

The two agree within ``tolerance_hz`` + ``tolerance_rel`` × analytic rate (2 Hz + 1% by default):
with a 1 s window a spike count is off by less than one spike (< 1 Hz), and Nengo's LIF places
spikes within the step, so its spiking rate matches its rate equation at up to 1/tau_ref.
Rate types (``lif_rate``, ``relu``) agree exactly. ``response/max_abs_error_hz`` is the largest
disagreement and ``response/within_tolerance_fraction`` the share of points inside the tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, UserError, bounded


@dataclass
class ResponseConfig:
    """Options of the ``response`` analysis (``analyses.response``)."""
    x_low: float | None = None  # lowest input, x units; None: each neuron's lowest observed x
    x_high: float | None = None  # highest input, x units; None: each neuron's highest observed x
    n_x: int = bounded(41, ge=2)  # input values, evenly spaced
    max_neurons: int = bounded(20, ge=1)  # neurons per layer, spread over the x-intercepts
    duration: float = bounded(1.0, gt=0.0)  # simulated time per input value, s
    tolerance_hz: float = bounded(2.0, ge=0.0)  # accepted |measured − analytic|, Hz ...
    tolerance_rel: float = bounded(0.01, ge=0.0)  # ... plus this fraction of the analytic rate

    def __post_init__(self) -> None:
        """Refuse an empty input range."""
        if self.x_low is not None and self.x_high is not None and not self.x_low < self.x_high:
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
    """``rates(x, gain, bias)`` / amplitude of the neurons at ``pos``, Hz: (len(x), len(pos)).

    ``x`` is one grid for all of them, shape (m,), or one column per neuron, shape (m, len(pos)).
    """
    nt = layer.neuron_type
    amp = float(getattr(nt, "amplitude", 1.0))
    if x.ndim == 1:
        return np.asarray(nt.rates(x, layer.gain[pos], layer.bias[pos]), float) / amp
    # each neuron on its own grid (rates() takes one x vector for all neurons)
    return np.stack([np.asarray(nt.rates(x[:, j], layer.gain[pos[j:j + 1]],
                                         layer.bias[pos[j:j + 1]]), float).ravel()
                     for j in range(len(pos))], axis=1) / amp


def grid(layer: Layer, pos: np.ndarray, cfg: ResponseConfig) -> np.ndarray:
    """The inputs of each picked neuron's curve, shape (n_x, len(pos)), x units: ``x_low`` …
    ``x_high`` where set, else the neuron's own observed extreme (−1 and 1 when x was not
    observed). A neuron that saw a single value gets ±0.5 around it."""
    obs = layer.x_observed
    lo = np.full(len(pos), -1.0 if cfg.x_low is None else cfg.x_low)
    hi = np.full(len(pos), 1.0 if cfg.x_high is None else cfg.x_high)
    if obs is not None:
        if cfg.x_low is None:
            lo = obs[:, pos].min(axis=0)
        if cfg.x_high is None:
            hi = obs[:, pos].max(axis=0)
    flat = ~(hi - lo > 1e-9 * (1.0 + np.abs(lo)))
    lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
    return np.linspace(lo, hi, cfg.n_x)


class Response(Analysis):
    """Response curves per neuron, analytic and measured; ``response_curves.csv`` and a plot.

    Metrics: ``response/max_abs_error_hz``, ``response/within_tolerance_fraction`` and per layer
    ``response/<layer>/max_abs_error_hz``.
    """

    name = "response"
    Config = ResponseConfig

    def run(self, ctx: Context, cfg: ResponseConfig) -> Result:
        """Analytic and measured (``ctx.simulate_constant``) curves of the picked neurons."""
        import pandas as pd

        n_steps = max(1, int(round(cfg.duration / ctx.dt)))
        metrics: dict[str, float] = {}
        frames, curves, errors, inside, remarks = [], [], [], [], []
        observed = cfg.x_low is None or cfg.x_high is None
        for layer in ctx.layers:
            pos = pick(layer, cfg.max_neurons)
            if observed and layer.x_observed is None:
                remarks.append(f"{layer.name}: x was not observed; curves over -1 … 1 "
                               f"(set analyses.response.x_low/x_high)")
            x = grid(layer, pos, cfg)
            ana = analytic_rates(layer, pos, x)
            sim = ctx.simulate_constant(layer.neuron_type, layer.gain[pos], layer.bias[pos], x,
                                        n_steps, dt=ctx.dt, seed=ctx.seed)
            err = np.abs(sim - ana)
            errors.append(err.ravel())
            inside.append((err <= cfg.tolerance_hz + cfg.tolerance_rel * ana).ravel())
            metrics[f"response/{layer.name}/max_abs_error_hz"] = float(err.max())
            frames.append(pd.DataFrame({
                "layer": layer.name, "neuron": np.tile(layer.index[pos], len(x)),
                "x": x.ravel(), "rate_hz": ana.ravel(), "sim_rate_hz": sim.ravel()}))
            curves.append((layer, pos, x, ana, sim))
        if not frames:
            return Result()
        metrics["response/max_abs_error_hz"] = float(np.concatenate(errors).max())
        metrics["response/within_tolerance_fraction"] = float(np.concatenate(inside).mean())
        table = pd.concat(frames, ignore_index=True)
        xlabel = ctx.x_label
        where = "each neuron's observed inputs" if observed else f"x {cfg.x_low:g} … {cfg.x_high:g}"
        return Result(metrics=metrics, tables={"response_curves.csv": table}, remarks=remarks,
                      figures={"response_curves": lambda: plot(curves, xlabel, where)})


def quantiles(layer: Layer, pos: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Where each grid value lies in its neuron's observed inputs: the fraction of them below it,
    shape like ``x`` (None when x was not observed)."""
    obs = layer.x_observed
    if obs is None:
        return None
    return np.stack([np.searchsorted(np.sort(obs[:, p]), x[:, j]) / len(obs)
                     for j, p in enumerate(pos)], axis=1)


def plot(curves: list[Any], xlabel: str = "x", where: str = "") -> Figure:
    """Per layer (a column each): analytic curves (lines), measured rates (dots) and x-intercepts
    (ticks) against x; below, the same curves against the share of the neuron's observed inputs
    below x, where neurons with equal gains still differ by where their inputs lie."""
    import matplotlib.pyplot as plt

    rows = 2 if any(quantiles(layer, pos, x) is not None for layer, pos, x, _, _ in curves) else 1
    fig, axes = plt.subplots(rows, len(curves), figsize=(max(6.4, 4.4 * len(curves)),
                                                         0.8 + 3.0 * rows), squeeze=False)
    for c, (layer, pos, x, ana, sim) in enumerate(curves):
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(pos)))
        xi = layer.x_intercept[pos]
        q = quantiles(layer, pos, x)
        ax = axes[0, c]
        for j, colour in enumerate(colors):
            ax.plot(x[:, j], ana[:, j], color=colour, lw=1.2)
            ax.plot(x[:, j], sim[:, j], "o", color=colour, ms=2.2, alpha=0.8)
            if np.isfinite(xi[j]) and x[0, j] <= xi[j] <= x[-1, j]:
                ax.plot([xi[j]], [0], marker="|", ms=12, mew=1.5, color=colour)
            if q is not None and rows == 2:
                axes[1, c].plot(q[:, j], ana[:, j], color=colour, lw=1.2)
        ax.set_title(f"{layer.name} ({type(layer.neuron_type).__name__}, J_th = "
                     f"{layer.threshold:g}): {len(pos)} neurons", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_xlim(x.min(), x.max())
        if rows == 2:
            axes[1, c].set_xlim(0, 1)
            axes[1, c].set_xlabel("share of the neuron's observed inputs below x", fontsize=8)
            if q is None:
                axes[1, c].text(0.5, 0.5, "x not observed", ha="center", va="center",
                                transform=axes[1, c].transAxes, color="0.4")
    for r in range(rows):
        axes[r, 0].set_ylabel("rate (Hz)")
    fig.suptitle("Response curves: analytic (lines), simulated spikes (dots), x-intercepts (ticks)"
                 + (f"\nover {where}" if where else ""), fontsize=10)  # a line each: on the canvas
    fig.tight_layout()
    return fig
