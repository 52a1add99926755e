"""``classes``: how each layer's spiking rates depend on the class of the input (classification).

Each analysed neuron's rate is averaged over the simulated test samples of each class. A neuron is
*class-selective* when a one-way ANOVA of its single-sample rates across classes gives
p < ``alpha``; its ``preferred_class`` is the class with the highest mean rate. Per-class spiking
accuracy comes from the network's read-out on the same samples. Everything is vectorised over
neurons, and the functions work on plain arrays so they can be tested outside a run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Result, bounded


@dataclass
class ClassesConfig:
    """Options of the ``classes`` analysis (``analyses.classes``)."""
    alpha: float = bounded(0.05, gt=0.0, lt=1.0)  # ANOVA significance level: selective = p < alpha


@dataclass
class ClassRates:
    """Per-class rates of ``N`` neurons.

    Attributes
    ----------
    classes : ndarray of int, shape (k,)
        The classes present among the samples, ascending.
    n_samples : ndarray of int, shape (k,)
        Samples per class.
    mean : ndarray, shape (k, N)
        Mean rate of each neuron over each class's samples, Hz.
    f_stat, p_value : ndarray, shape (N,)
        One-way ANOVA across classes on single samples. Neurons whose rate is the same on every
        sample (silent or saturated) get F = NaN and p = 1.
    """

    classes: np.ndarray
    n_samples: np.ndarray
    mean: np.ndarray
    f_stat: np.ndarray
    p_value: np.ndarray

    @property
    def preferred(self) -> np.ndarray:
        """The class with the highest mean rate, per neuron."""
        best: np.ndarray = self.classes[np.argmax(self.mean, axis=0)]
        return best


def class_rates(rates: np.ndarray, labels: np.ndarray) -> ClassRates:
    """Per-class means and the one-way ANOVA of ``rates`` (n_samples, N) by ``labels`` (n_samples,).

    F = (SS_between / (k − 1)) / (SS_within / (n − k)); p is its upper tail under F(k − 1, n − k).
    """
    from scipy import stats

    rates = np.asarray(rates, dtype=float)
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    k, n = len(classes), len(labels)
    sums = np.zeros((k, rates.shape[1]))
    np.add.at(sums, inverse, rates)
    mean = sums / counts[:, None]
    grand = rates.mean(axis=0)
    ss_between = (counts[:, None] * (mean - grand) ** 2).sum(axis=0)
    ss_within = ((rates - mean[inverse]) ** 2).sum(axis=0)
    f_stat = np.full(rates.shape[1], np.nan)
    p_value = np.ones(rates.shape[1])
    if k > 1 and n > k:
        scale = np.maximum(np.abs(rates).max(axis=0), 1.0)
        varies = (ss_between + ss_within) > (1e-9 * scale) ** 2 * n  # not constant up to rounding
        with np.errstate(divide="ignore", invalid="ignore"):
            f = (ss_between / (k - 1)) / (ss_within / (n - k))
        f_stat = np.where(varies, f, np.nan)
        p_value = np.where(varies, stats.f.sf(np.where(varies, f, 0.0), k - 1, n - k), 1.0)
        p_value = np.where(varies & ~np.isfinite(f), 0.0, p_value)  # no within-class spread
    return ClassRates(classes=classes, n_samples=counts, mean=mean, f_stat=f_stat,
                      p_value=p_value)


class Classes(Analysis):
    """Per-class mean rates of every analysed neuron, class selectivity, per-class accuracy.

    Metrics: ``classes/selective_fraction`` (all analysed neurons) and per layer
    ``classes/<layer>/selective_fraction`` and ``classes/<layer>/class<c>_mean_rate_hz`` (the
    layer's mean rate on class c's samples); ``classes/class<c>_accuracy`` (spiking read-out).
    Columns in ``neurons.csv``: ``preferred_class``, ``class_p_value``, ``class_selective``.
    Table ``class_rates.csv``: ``layer``, ``neuron``, ``class``, ``mean_rate_hz``, ``n_samples``.
    """

    name = "classes"
    Config = ClassesConfig

    @classmethod
    def applies(cls, data: Any) -> str | None:
        """Classification data only."""
        if not data.classification:
            return "it needs a classification task (dataset.task=classification)"
        return None

    def run(self, ctx: Context, cfg: ClassesConfig) -> Result:
        """Per-class rates and selectivity of every layer with rates; per-class accuracy of
        ``ctx.outputs``."""
        import pandas as pd

        labels = np.asarray(ctx.data.y_test)[ctx.sample]
        metrics: dict[str, float] = {}
        frames, tables, fits = [], [], {}
        selective_all = []
        for layer in ctx.layers:
            if layer.rates is None:
                continue
            fit = class_rates(layer.rates, labels)
            fits[layer.name] = fit
            selective = fit.p_value < cfg.alpha
            selective_all.append(selective)
            metrics[f"classes/{layer.name}/selective_fraction"] = float(selective.mean())
            for c, row in zip(fit.classes, fit.mean):
                metrics[f"classes/{layer.name}/class{c}_mean_rate_hz"] = float(row.mean())
            frames.append(pd.DataFrame({"layer": layer.name, "neuron": layer.index,
                                        "preferred_class": fit.preferred,
                                        "class_p_value": fit.p_value,
                                        "class_selective": selective}))
            k, n = fit.mean.shape
            tables.append(pd.DataFrame({
                "layer": layer.name, "neuron": np.tile(layer.index, k),
                "class": np.repeat(fit.classes, n), "mean_rate_hz": fit.mean.ravel(),
                "n_samples": np.repeat(fit.n_samples, n)}))
        if selective_all:
            metrics["classes/selective_fraction"] = float(np.concatenate(selective_all).mean())
        outputs = ctx.outputs
        if outputs is not None and len(outputs) == len(labels):
            correct = np.argmax(outputs, axis=-1) == labels
            for c in np.unique(labels):
                metrics[f"classes/class{c}_accuracy"] = float(correct[labels == c].mean())
        figures = {"class_rates": lambda: heatmaps(fits)} if fits else {}
        return Result(metrics=metrics, neurons=pd.concat(frames) if frames else None,
                      tables={"class_rates.csv": pd.concat(tables)} if tables else {},
                      figures=figures)


def heatmaps(fits: dict[str, ClassRates]) -> Figure:
    """Mean rate per class (rows) of each layer's neurons (columns, sorted by preferred class)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(fits), 1, figsize=(7.5, 1.0 + 1.9 * len(fits)), squeeze=False)
    for ax, (name, fit) in zip(axes[:, 0], fits.items()):
        order = np.lexsort((-fit.mean.max(axis=0), np.argmax(fit.mean, axis=0)))
        img = ax.imshow(fit.mean[:, order], aspect="auto", interpolation="nearest", cmap="viridis")
        ax.set_yticks(range(len(fit.classes)), [str(c) for c in fit.classes], fontsize=7)
        ax.set_ylabel(f"{name}\nclass", fontsize=8)
        fig.colorbar(img, ax=ax, label="mean rate (Hz)")
    axes[-1, 0].set_xlabel("neuron (sorted by preferred class)")
    fig.suptitle("Mean spiking rate per class", fontsize=10)
    fig.tight_layout()
    return fig
