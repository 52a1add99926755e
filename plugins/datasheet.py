"""``datasheet``: one row and one figure per named neuron, everything spiketune knows about it.

``analyses.datasheet.neurons=[hidden0:3,hidden0:17]`` (``layer:neuron``, the ``neuron`` column's
index) gives, per neuron, a row of ``datasheet.csv`` (gain, bias, J_th, x-intercept and its
quantile among the inputs the neuron saw, analytic and observed rates) and ``plots/datasheet_
<layer>_<neuron>.png``: the numbers, the response curve over the neuron's observed inputs
(analytic, from the type's ``rates``) with the samples it saw, the membrane voltage on one sample
(the ``voltage`` analysis's trace, for LIF-family types), and the tuning curve where the data has
directions (per-direction mean rates and their least-squares cosine, as Georgopoulos et al.).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, UserError, bounded, observed_x
from plugins.response import analytic_rates
from plugins.voltage import is_lif, step_voltage

#: ``layer:neuron``
SPEC = re.compile(r"^(?P<layer>[^:]+):(?P<neuron>\d+)$")


@dataclass
class DatasheetConfig:
    """Options of the ``datasheet`` analysis (``analyses.datasheet``)."""

    neurons: list[str] = field(default_factory=list)  # ``layer:neuron`` of each sheet
    sample: int = bounded(0, ge=0)  # simulated test sample of the voltage trace (position)
    duration: float = bounded(0.1, gt=0.0)  # voltage trace, s

    def __post_init__(self) -> None:
        """Refuse a neuron not written ``layer:neuron``."""
        for i, spec in enumerate(self.neurons):
            if not SPEC.match(str(spec)):
                raise UserError(f"analyses.datasheet.neurons[{i}]: expected layer:neuron "
                                f"(e.g. hidden0:3), got '{spec}'")


@dataclass
class Sheet:
    """One neuron's sheet: its layer, its position in the layer's arrays and its row."""

    layer: Layer
    pos: int
    row: dict[str, Any]
    trace: tuple[np.ndarray, np.ndarray] | None  # (voltage in J units, spikes) or None


def find(ctx: Context, spec: str, i: int) -> tuple[Layer, int]:
    """The layer and position of ``layer:neuron``."""
    m = SPEC.match(spec)
    assert m is not None  # checked by the config
    for layer in ctx.layers:
        if layer.name == m["layer"]:
            hits = np.flatnonzero(layer.index == int(m["neuron"]))
            if len(hits):
                return layer, int(hits[0])
            raise UserError(f"analyses.datasheet.neurons[{i}]: neuron {m['neuron']} is not "
                            f"among the analysed neurons of '{layer.name}' "
                            f"(see analyses.max_neurons)")
    raise UserError(f"analyses.datasheet.neurons[{i}]: no analysed layer '{m['layer']}'; "
                    f"layers: {', '.join(layer.name for layer in ctx.layers)}")


def row(ctx: Context, layer: Layer, pos: int) -> dict[str, Any]:
    """The neuron's numbers: parameters as built, analytic and observed rates (Hz)."""
    ana = float(analytic_rates(layer, np.array([pos]), np.ones(1))[0, 0])
    seen = observed_x(layer)
    rates = layer.rates[:, pos] if layer.rates is not None else np.full(1, np.nan)
    return {"layer": layer.name, "neuron": int(layer.index[pos]),
            "neuron_type": type(layer.neuron_type).__name__, "gain": float(layer.gain[pos]),
            "bias": float(layer.bias[pos]), "threshold": float(layer.threshold),
            "x_intercept": float(layer.x_intercept[pos]),
            "x_intercept_quantile": float(seen["x_intercept_quantile"][pos]),
            "max_rate_hz": ana, "observed_max_rate_hz": float(np.max(rates)),
            "mean_rate_hz": float(np.mean(rates))}


def trace(ctx: Context, layer: Layer, pos: int, cfg: DatasheetConfig
          ) -> tuple[np.ndarray, np.ndarray] | None:
    """The voltage (J units) and spikes on sample ``cfg.sample``, as the voltage analysis
    draws them; None for a type without an LIF membrane or without an observed x."""
    if not is_lif(layer.neuron_type) or layer.x is None or cfg.sample >= len(layer.x):
        return None
    current = layer.gain[pos] * layer.x[cfg.sample, pos] + layer.bias[pos]
    volts, spikes = step_voltage(layer.neuron_type, np.array([current]),
                                 max(1, int(round(cfg.duration / ctx.dt))), ctx.dt)
    return volts[:, 0] * layer.threshold, spikes[:, 0]


class Datasheet(Analysis):
    """A sheet per named neuron: ``datasheet.csv`` and ``plots/datasheet_<layer>_<neuron>.png``."""

    name = "datasheet"
    Config = DatasheetConfig
    default = False  # name the neurons to get their sheets

    def run(self, ctx: Context, cfg: DatasheetConfig) -> Result:
        """One sheet per ``cfg.neurons``."""
        import pandas as pd

        sheets = []
        for i, spec in enumerate(cfg.neurons):
            layer, pos = find(ctx, str(spec), i)
            sheets.append(Sheet(layer, pos, row(ctx, layer, pos), trace(ctx, layer, pos, cfg)))
        if not sheets:
            return Result(remarks=["no neurons named: set analyses.datasheet.neurons=[layer:n]"])
        figures: dict[str, Callable[[], Any]] = {
            f"datasheet_{s.layer.name}_{s.row['neuron']}": functools.partial(plot, ctx, s)
            for s in sheets}
        return Result(tables={"datasheet.csv": pd.DataFrame([s.row for s in sheets])},
                      figures=figures)


def tuning(ctx: Context, layer: Layer, pos: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-direction mean rates (degrees, Hz) where the data has directions."""
    data = ctx.data
    if data is None or not data.has_directions or layer.rates is None:
        return None
    deg = np.asarray(data.dir_test, float)[ctx.sample]
    keep = np.isfinite(deg)
    dirs = np.unique(deg[keep])
    return dirs, np.array([layer.rates[keep & (deg == d), pos].mean() for d in dirs])


def plot(ctx: Context, sheet: Sheet) -> Figure:
    """The sheet: numbers, response curve, voltage trace and tuning curve."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.6, 6.8))
    numbers(axes[0, 0], sheet.row)
    response(axes[0, 1], ctx, sheet)
    voltage(axes[1, 0], ctx, sheet)
    tuned(axes[1, 1], ctx, sheet)
    fig.suptitle(f"{sheet.row['layer']}:{sheet.row['neuron']} ({sheet.row['neuron_type']})",
                 fontsize=11)
    fig.tight_layout()
    return fig


def numbers(ax: Any, r: dict[str, Any]) -> None:
    """The row as a small table."""
    ax.axis("off")
    lines = [("gain (J per unit x)", r["gain"]), ("bias (J)", r["bias"]),
             ("J_th (threshold)", r["threshold"]), ("x-intercept", r["x_intercept"]),
             ("inputs below it", r["x_intercept_quantile"]),
             ("max rate at x = 1 (Hz)", r["max_rate_hz"]),
             ("observed max rate (Hz)", r["observed_max_rate_hz"]),
             ("mean rate (Hz)", r["mean_rate_hz"])]
    for k, (label, value) in enumerate(lines):
        ax.text(0.02, 0.92 - 0.115 * k, label, fontsize=9, transform=ax.transAxes)
        ax.text(0.98, 0.92 - 0.115 * k, f"{value:.4g}", fontsize=9, ha="right",
                transform=ax.transAxes)


def response(ax: Any, ctx: Context, s: Sheet) -> None:
    """Analytic rate over the observed inputs, the samples' rates, the x-intercept."""
    obs = s.layer.x_observed
    lo, hi = (-1.0, 1.0) if obs is None else (float(obs[:, s.pos].min()),
                                               float(obs[:, s.pos].max()))
    lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)
    x = np.linspace(lo, hi, 101)
    ax.plot(x, analytic_rates(s.layer, np.array([s.pos]), x)[:, 0], color="tab:blue",
            label="analytic")
    if s.layer.x is not None and s.layer.rates is not None:
        ax.plot(s.layer.x[:, s.pos], s.layer.rates[:, s.pos], ".", color="0.3", ms=3,
                label="samples (spiking)")
    xi = s.row["x_intercept"]
    if np.isfinite(xi) and lo <= xi <= hi:
        ax.axvline(xi, color="tab:red", ls="--", lw=0.9, label=f"x-intercept {xi:.3g}")
    ax.set_xlabel(ctx.x_label, fontsize=8)
    ax.set_ylabel("rate (Hz)")
    ax.set_title("response over its observed inputs", fontsize=9)
    ax.legend(fontsize=7)


def voltage(ax: Any, ctx: Context, s: Sheet) -> None:
    """The membrane voltage with the threshold line, or why there is none."""
    if s.trace is None:
        ax.text(0.5, 0.5, "no LIF membrane voltage (or x not observed)", ha="center",
                va="center", transform=ax.transAxes, color="0.4")
        ax.axis("off")
        return
    v, spikes = s.trace
    th = s.row["threshold"]
    t = np.arange(1, len(v) + 1) * ctx.dt
    ax.plot(t, np.minimum(v, th), color="tab:blue", lw=1.0)
    ax.axhline(th, color="tab:red", ls="--", lw=0.9, label=f"J_th = {th:g}")
    ax.vlines(t[spikes], th, 1.35 * th, color="black", lw=0.8, label=f"{int(spikes.sum())} spikes")
    ax.set_ylim(min(0.0, float(v.min())), 1.6 * th)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("V (J units)")
    ax.set_title("membrane voltage on one sample", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def tuned(ax: Any, ctx: Context, s: Sheet) -> None:
    """Per-direction mean rates and their cosine fit, or the rates' histogram."""
    found = tuning(ctx, s.layer, s.pos)
    if found is None:
        rates = s.layer.rates[:, s.pos] if s.layer.rates is not None else np.zeros(0)
        ax.hist(rates, bins=20, color="0.5")
        ax.set_xlabel("rate on a sample (Hz)")
        ax.set_title("rates over the samples (no directions)", fontsize=9)
        return
    dirs, means = found
    rad = np.radians(dirs)
    coef = np.linalg.lstsq(np.stack([np.ones_like(rad), np.cos(rad), np.sin(rad)], 1), means,
                           rcond=None)[0]
    grid = np.linspace(0, 2 * np.pi, 181)
    ax.plot(dirs, means, "o", color="tab:blue", label="mean rate per direction")
    ax.plot(np.degrees(grid), coef[0] + coef[1] * np.cos(grid) + coef[2] * np.sin(grid),
            color="0.3", lw=1.0, label="cosine fit")
    ax.set_xlabel("direction (deg)")
    ax.set_ylabel("rate (Hz)")
    ax.set_title("tuning curve", fontsize=9)
    ax.legend(fontsize=7)
