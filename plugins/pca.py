"""``pca``: how many dimensions the inputs and each layer's activity really use.

Principal component analysis of the test inputs (each sample flattened: features, or time ×
channels for sequences) and of each analysed layer's rates on the same simulated samples. The
explained-variance ratio of component i is s_i² / Σ s_j², from the singular values s of the
mean-centred (samples × units) matrix; ``n90`` is the fewest components whose ratios add up to at
least 90%. A layer that encodes a 2-D movement direction should need few components, whatever
its width.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Result, bounded

#: the fraction of variance the ``n90`` metrics ask for
VARIANCE_TARGET = 0.9


@dataclass
class PCAConfig:
    """Options of the ``pca`` analysis (``analyses.pca``)."""
    max_components: int = bounded(50, ge=1)  # components kept in pca_variance.csv and the plot


def explained_variance_ratio(x: np.ndarray) -> np.ndarray:
    """Explained-variance ratio of every principal component of ``x``.

    Parameters
    ----------
    x : ndarray, shape (n_samples, ...)
        One row per sample; trailing axes are flattened.

    Returns
    -------
    ndarray, shape (min(n_samples, n_units),)
        Fractions of the total variance, descending, summing to 1; empty when ``x`` has no
        variance (a silent or constant layer).
    """
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    scale = max(1.0, float(np.abs(x).max(initial=0.0)))
    x = x - x.mean(axis=0)
    # The squared singular values are the eigenvalues of the smaller Gram matrix: eigvalsh of a
    # 450 × 450 matrix takes 20 ms where numpy's SVD of the 450 × 1024 rates took 2-5 s (digits).
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    var = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    total = var.sum()
    if total <= (1e-12 * scale) ** 2 * x.size:  # only the rounding of a constant array varies
        return np.zeros(0)
    ratio: np.ndarray = var / total
    return ratio


def n_components(ratio: np.ndarray, target: float = VARIANCE_TARGET) -> int:
    """The fewest components explaining at least ``target`` of the variance (0 if none vary)."""
    if len(ratio) == 0:
        return 0
    # the tolerance keeps 0.9 reachable when the cumulative sum lands a rounding error short
    return min(int(np.searchsorted(np.cumsum(ratio), target - 1e-12)) + 1, len(ratio))


class PCA(Analysis):
    """Dimensionality of the inputs and of each layer's activity.

    Metrics ``pca/input_n90`` and ``pca/<layer>/n90`` (components for 90% of the variance). Table
    ``pca_variance.csv``: ``source`` (``input`` or the layer), ``component`` (from 1),
    ``explained_variance_ratio``, ``cumulative``. Plot: cumulative explained variance per source.
    """

    name = "pca"
    Config = PCAConfig

    @classmethod
    def applies(cls, data: Any) -> str | None:
        """Inputs with at least 2 features per sample."""
        units = int(np.prod(np.shape(data.x_test)[1:]))
        if units < 2:  # one input (the threshold example's ramp): nothing to reduce
            return f"the inputs have {units} feature per sample: there is nothing to reduce"
        return None

    def run(self, ctx: Context, cfg: PCAConfig) -> Result:
        """Explained variance of the simulated inputs and of each layer's rates."""
        import pandas as pd

        sources = {"input": np.asarray(ctx.data.x_test)[ctx.sample]}
        for layer in ctx.layers:
            if layer.rates is not None:
                sources[layer.name] = layer.rates
        ratios = {name: explained_variance_ratio(x) for name, x in sources.items()}
        metrics = {("pca/input_n90" if name == "input" else f"pca/{name}/n90"):
                   float(n_components(r)) for name, r in ratios.items()}
        frames = []
        for name, r in ratios.items():
            r = r[:cfg.max_components]
            frames.append(pd.DataFrame({"source": name, "component": np.arange(1, len(r) + 1),
                                        "explained_variance_ratio": r,
                                        "cumulative": np.cumsum(r)}))
        sizes = {name: int(np.prod(x.shape[1:])) for name, x in sources.items()}
        return Result(metrics=metrics,
                      tables={"pca_variance.csv": pd.concat(frames, ignore_index=True)},
                      figures={"pca": lambda: cumulative_plot(ratios, sizes, cfg.max_components)})


def cumulative_plot(ratios: dict[str, np.ndarray], sizes: dict[str, int],
                    max_components: int) -> Figure:
    """Cumulative explained variance against components, one line per source, 90% marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    longest = 1
    for name, r in ratios.items():
        if len(r) == 0:
            ax.plot([], [], label=f"{name} ({sizes[name]} units): no variance")
            continue
        r = r[:max_components]
        longest = max(longest, len(r))
        k = np.arange(1, len(r) + 1)
        style = dict(color="k", lw=2.2) if name == "input" else dict(lw=1.6)
        ax.plot(k, np.cumsum(r), marker="o", ms=3, label=f"{name} ({sizes[name]} units): "
                f"{n_components(ratios[name])} for 90%", **style)
    ax.axhline(VARIANCE_TARGET, color="0.5", ls="--", lw=1)
    # at the left, where the cumulative curves are still low, so no line runs through the label
    ax.text(0.6, VARIANCE_TARGET + 0.01, "90%", ha="left", va="bottom", fontsize=8, color="0.4")
    ax.set_xlim(0.5, longest + 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_title("Dimensionality of inputs and layer activity (test samples)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.91)
    return fig
