"""``sparsity``: a small, complete example of an analysis plugin (read this to write your own).

What it measures
----------------
Treves & Rolls (1991) sparseness of a set of rates r_1..r_N is a = (Σ r_i / N)² / (Σ r_i² / N):
1/N when one neuron carries all the activity, 1 when all fire equally. Vinje & Gallant (2000)
rescale it to S = (1 − a) / (1 − 1/N), from 0 (dense) to 1 (sparse).

- population sparseness: across a layer's neurons, on one test sample (then averaged over samples);
- lifetime sparseness: across the test samples, for one neuron.

How it is built (the parts every plugin has)
---------------------------------------------
1. A dataclass ``Config``. Its fields become the config node ``analyses.sparsity``, so
   ``spiketune analysis=[sparsity] analyses.sparsity.normalise=false`` works, and are validated
   (types, and bounds given with ``framework.analysis.bounded``) before TensorFlow is imported.
   Give every field a default, a type and a comment with its unit.
2. A subclass of :class:`framework.analysis.Analysis` with a unique ``name``. Defining the class
   registers it: a module in ``plugins/`` is imported automatically, nothing lists it.
3. ``default = False``: ``analysis=[auto]`` (the default) skips it; name it to run it. Leave
   ``default`` True for analyses every run should have.
4. ``applies(data)`` (optional): return a reason string when the data cannot be analysed (see
   ``plugins/tuning.py``, which needs movement directions); ``None`` means it can.
5. ``run(ctx, cfg)`` reads the :class:`~framework.analysis.Context` (``ctx.layers[i].rates`` is
   (n_samples, n) in Hz) and returns a :class:`~framework.analysis.Result`:
   ``metrics`` (name → float, logged to MLflow), ``neurons`` (a DataFrame keyed by ``layer`` and
   ``neuron``, merged into ``neurons.csv``), ``tables`` (file name → DataFrame, CSV artifacts) and
   ``figures`` (name → function returning a matplotlib Figure; called only when
   ``tracking.plots`` is on, so a plot costs nothing in sweeps that turn plots off).
6. Heavy imports (pandas, matplotlib) go inside functions: plugins are imported while the config
   is checked, and that must stay fast.

docs/plugins.md walks through writing, configuring, testing and registering a plugin.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Result, bounded


@dataclass
class SparsityConfig:
    """Options of the ``sparsity`` analysis (``analyses.sparsity``)."""
    normalise: bool = True  # rescale to Vinje & Gallant's S in [0, 1]; False: Treves–Rolls a itself
    # a neuron is counted active on a sample above this rate, Hz
    active_above_hz: float = bounded(1.0, ge=0.0)


def treves_rolls(rates: np.ndarray, axis: int, normalise: bool = True) -> np.ndarray:
    """Treves–Rolls sparseness along ``axis`` of non-negative rates (Hz).

    Parameters
    ----------
    rates : ndarray
        Rates, Hz (the unit cancels).
    axis : int
        The axis the sparseness is taken across: neurons for population sparseness, samples for
        lifetime sparseness.
    normalise : bool
        Return S = (1 − a) / (1 − 1/N) in [0, 1] (1 = sparse) instead of a in [1/N, 1] (1 = dense).

    Returns
    -------
    ndarray
        One value per remaining index; NaN where every rate is 0 (sparseness is undefined).
    """
    r = np.asarray(rates, dtype=float)
    n = r.shape[axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        a: np.ndarray = r.mean(axis=axis) ** 2 / (r ** 2).mean(axis=axis)
        if not normalise:
            return a
        return (1.0 - a) / (1.0 - 1.0 / n) if n > 1 else np.full_like(a, np.nan)


class Sparsity(Analysis):
    """Population and lifetime sparseness of each analysed layer (Treves–Rolls).

    Metrics ``sparsity/<layer>/population`` (mean over samples), ``sparsity/<layer>/lifetime``
    (median over neurons) and ``sparsity/<layer>/active_fraction`` (neurons above
    ``active_above_hz``, mean over samples). Column ``lifetime_sparseness`` in ``neurons.csv``.
    """

    name = "sparsity"
    Config = SparsityConfig
    default = False  # an example: run it with analysis=[firing,sparsity]

    def run(self, ctx: Context, cfg: SparsityConfig) -> Result:
        """Population and lifetime sparseness of every layer with rates."""
        import pandas as pd

        metrics, frames = {}, []
        layers = [layer for layer in ctx.layers if layer.rates is not None]
        per_layer = {}
        for layer in layers:
            assert layer.rates is not None  # the filter above; mypy does not narrow through it
            population = treves_rolls(layer.rates, axis=1, normalise=cfg.normalise)  # per sample
            lifetime = treves_rolls(layer.rates, axis=0, normalise=cfg.normalise)  # per neuron
            per_layer[layer.name] = population
            key = f"sparsity/{layer.name}"
            metrics[f"{key}/population"] = float(np.nanmean(population)) if np.isfinite(
                population).any() else float("nan")
            metrics[f"{key}/lifetime"] = float(np.nanmedian(lifetime)) if np.isfinite(
                lifetime).any() else float("nan")
            metrics[f"{key}/active_fraction"] = float((layer.rates > cfg.active_above_hz).mean())
            frames.append(pd.DataFrame({"layer": layer.name, "neuron": layer.index,
                                        "lifetime_sparseness": lifetime}))
        label = "S (0 dense, 1 sparse)" if cfg.normalise else "Treves–Rolls a (1 dense)"
        return Result(metrics=metrics,
                      neurons=pd.concat(frames, ignore_index=True) if frames else None,
                      figures={"sparsity": lambda: histograms(per_layer, label)} if frames else {})


def histograms(per_layer: dict[str, np.ndarray], label: str) -> Figure:
    """Histogram of population sparseness over test samples, one panel per layer."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_layer), figsize=(3.6 * len(per_layer), 3.0),
                             squeeze=False)
    for ax, (name, values) in zip(axes[0], per_layer.items()):
        ax.hist(values[np.isfinite(values)], bins=20, range=(0, 1), color="tab:green", alpha=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(label, fontsize=8)
    axes[0, 0].set_ylabel("test samples")
    fig.suptitle("Population sparseness per test sample", fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.2, top=0.82, wspace=0.3)
    return fig
