"""The tuning analysis's figures: tuning curves, preferred directions, decoded directions and the
PD's drift over a sequence. matplotlib is imported inside each function: figures are drawn only
when plots are on."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from framework.analysis import angle_diff
from plugins.tuning.decode import Decoded
from plugins.tuning.directional import axial_rayleigh
from plugins.tuning.fit import mean_ci, rayleigh_test, rectified_cosine, von_mises
from plugins.tuning.tables import LayerTuning

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


def strongest(results: list[LayerTuning], n: int) -> list[tuple[LayerTuning, int]]:
    """The ``n`` deepest directional neurons (then the deepest of the rest; pinned and
    near-silent last), taken from the layers in turn so that every layer is shown; returned
    grouped by layer. Never by F: a neuron without trial-to-trial spread has a huge F for a
    tiny depth."""
    ranked = []
    for lt in results:
        c = lt.cls
        rank = np.where(c.directional, 0, np.where(c.counted, 1, 2))
        ranked.append([(lt, int(i)) for i in np.lexsort((-lt.fit.depth, rank))])
    picked: list[tuple[LayerTuning, int]] = []
    while len(picked) < n and any(ranked):
        for queue in ranked:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    order = {id(lt): i for i, lt in enumerate(results)}
    return sorted(picked, key=lambda p: (order[id(p[0])], p[1]))


def tuning_grid(results: list[LayerTuning], n: int, alpha: float, ci: float = 0.95,
                inputs: Any = None) -> Figure:
    """Tuning curves like Georgopoulos et al. (1982) fig. 4, beside what drives them.

    Each neuron: the mean rate per direction with its t-interval at ``ci``, the fitted cosine
    (clipped to what the neuron can fire), the rectified cosine or von Mises curve (dashed) where
    AICc prefers it, the preferred direction with its bootstrap interval (shaded only where the
    interval is valid), and its input x's per-direction means (grey, right axis): a rate curve
    that is x's curve through a nonlinearity is inherited. ``inputs``: (directions, means (k, C),
    R², directional) of the network's input channels, drawn in the first panel."""
    import matplotlib.pyplot as plt

    picked: list[Any] = strongest(results, n)
    if inputs is not None:
        picked = [None, *picked]
    cols = min(4, int(np.ceil(np.sqrt(len(picked)))))  # 8 neurons and the inputs: 3 × 3
    rows = -(-len(picked) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols + 0.6, 2.15 * rows + 1.3),
                             squeeze=False)
    theta = np.linspace(0.0, 360.0, 181)
    for ax, item in zip(axes.ravel(), picked):
        if item is None:
            input_panel(ax, inputs)
            continue
        neuron_panel(ax, item[0], item[1], theta, ci)
    for ax in axes.ravel()[len(picked):]:
        ax.set_visible(False)
    for c in range(cols):  # an x label under every column: its lowest visible panel
        lowest = max(r for r in range(rows) if r * cols + c < len(picked))
        axes[lowest, c].set_xlabel("direction (°)", fontsize=8)
    for r in range(rows):
        axes[r, 0].set_ylabel("rate (Hz)", fontsize=8)
    if inputs is not None:  # the first panel holds the inputs, not rates
        axes[0, 0].set_ylabel("channel, scaled to [0, 1]", fontsize=8)
    fig.suptitle("Tuning curves: each neuron's mean rate per movement direction", fontsize=9,
                 y=1 - 0.08 / fig.get_size_inches()[1], va="top")
    key(fig, ci, alpha)
    margins(fig, top_in=1.05, bottom_in=0.5, left_in=0.7, right_in=0.45)
    fig.subplots_adjust(hspace=0.55, wspace=0.5)
    return fig


def key(fig: Figure, ci: float, alpha: float) -> None:
    """The grid's colour key, under its title: one entry per kind of artist the panels drew
    (labelled by :func:`neuron_panel` and :func:`shape_curve`), so it names only what is drawn."""
    found: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            found.setdefault(label, handle)
    words = {"mean": f"mean ± {ci:.0%} CI", "cosine": "cosine fit",
             "von_mises": "von Mises (AICc prefers it)",
             "rectified": "rectified cosine (AICc prefers it)",
             "x": "the neuron's input x (right axis)",
             "pd": f"PD, directional (ANOVA p < {alpha:g})", "pd_flat": "PD, not directional",
             "pd_ci": f"PD's {ci:.0%} bootstrap CI"}
    shown = [k for k in words if k in found]
    if shown:
        fig.legend([found[k] for k in shown], [words[k] for k in shown], loc="upper center",
                   bbox_to_anchor=(0.5, 1 - 0.3 / fig.get_size_inches()[1]), fontsize=7,
                   ncol=min(4, len(shown)), frameon=False)


def input_panel(ax: Any, inputs: Any) -> None:
    """The network's input channels per direction, each scaled to [0, 1]: the tuning the
    network is given (solid: cosine, R² ≥ 0.7; dashed: directional, not cosine; dotted: not
    directional)."""
    directions, means, r2, directional = inputs
    lo, hi = means.min(axis=0), means.max(axis=0)
    scaled = (means - lo) / np.where(hi > lo, hi - lo, 1.0)
    for c in range(means.shape[1]):
        style = ":" if not directional[c] else ("-" if np.nan_to_num(r2[c]) >= 0.7 else "--")
        ax.plot(np.append(directions, 360.0), np.append(scaled[:, c], scaled[0, c]), ls=style,
                lw=1.0, marker=".", ms=3)
    ax.set_title(f"inputs ({means.shape[1]} channels, scaled)\nsolid cosine, dashed other, "
                 f"dotted flat", fontsize=7)
    ax.set_xlim(-15, 375)
    ax.set_xticks([0, 90, 180, 270, 360])
    ax.tick_params(labelsize=7)


def neuron_panel(ax: Any, lt: LayerTuning, i: int, theta: np.ndarray, ci: float) -> None:
    """One neuron's tuning curve (see :func:`tuning_grid`)."""
    fit, boot = lt.fit, lt.boot
    half = np.nan_to_num(mean_ci(fit, ci)[:, i])  # one trial: no bar
    ax.errorbar(fit.directions, fit.mean[:, i], yerr=half, fmt="o", ms=3.5,
                color="k", ecolor="0.45", elinewidth=1, capsize=2, zorder=3, label="mean")
    # no curve drawn above what the neuron type can fire
    ax.plot(theta, np.minimum(fit.curve(theta, i), lt.ceiling_hz), color="tab:red", lw=1.4,
            label="cosine")
    shape_curve(ax, lt, i, theta)
    directional = bool(lt.cls.directional[i])
    colour = "tab:blue" if directional else "0.6"
    ax.axvline(fit.pd_deg[i], color=colour, ls=":", lw=1.3,
               label="pd" if directional else "pd_flat")
    lo, hi = boot.pd_low_deg[i], boot.pd_high_deg[i]
    valid = bool(lt.pd_ci_valid[i]) and np.isfinite(lo)
    if valid:
        spans = [(lo, hi)] if lo <= hi else [(lo, 360.0), (0.0, hi)]  # wraps through 0°
        for a, b in spans:
            ax.axvspan(a, b, color=colour, alpha=0.15, lw=0, label="pd_ci")
    if lt.x_fit is not None:  # its own input, on its own axis from 0 (a flat x looks flat)
        x_mean = lt.x_fit.mean[:, i]
        twin = ax.twinx()
        twin.plot(fit.directions, x_mean, color="0.5", ls="-", lw=0.9, marker="x", ms=3,
                  zorder=1, label="x")
        twin.set_ylim(min(0.0, 1.3 * x_mean.min()), max(0.0, 1.3 * x_mean.max()) or 1.0)
        twin.tick_params(labelsize=6, colors="0.45")
    ax.set_xlim(-15, 375)  # room for the markers at 0° and 315°
    ax.set_xticks([0, 90, 180, 270, 360])
    ax.tick_params(labelsize=7)
    r2 = "–" if np.isnan(fit.r2[i]) else f"{fit.r2[i]:.2f}"
    pm = f" ± {boot.pd_width_deg[i] / 2:.0f}°" if valid else " (CI n/a)"
    flag = next((name for name, m in (("pinned", lt.cls.pinned),
                                      ("near silent", lt.cls.near_silent)) if m[i]), "")
    ax.set_title(f"{lt.name} #{lt.index[i]}: PD {fit.pd_deg[i]:.0f}°{pm}, R² {r2}"
                 f"{' ' + flag if flag else ''}", fontsize=7.5)
    # the data set the scale: a sharp von Mises fit through one point may peak far above it
    ax.set_ylim(0, max(1.3 * float(np.max(fit.mean[:, i] + half)), 1.0))


def shape_curve(ax: Any, lt: LayerTuning, i: int, theta: np.ndarray) -> None:
    """The von Mises or rectified cosine (capped at 1/τ_ref) of neuron ``i``, dashed, where AICc
    prefers it to the cosine."""
    sh = lt.shapes
    if sh.best_model[i] == "von_mises":
        ax.plot(theta, np.minimum(von_mises(theta, sh.vm_trough_hz[i], sh.vm_amplitude_hz[i],
                                            sh.vm_kappa[i], sh.vm_pd_deg[i]), lt.ceiling_hz),
                color="tab:green", ls="--", lw=1.4, label="von_mises")
    elif sh.best_model[i] == "rectified_cosine":
        ax.plot(theta, rectified_cosine(theta, sh.rcos_baseline_hz[i], sh.rcos_depth_hz[i],
                                        sh.rcos_pd_deg[i], lt.ceiling_hz),
                color="tab:purple", ls="--", lw=1.4, label="rectified")


def margins(fig: Figure, top_in: float, bottom_in: float, left_in: float, right_in: float) -> None:
    """Fixed figure margins in inches (tight_layout would re-measure on every draw)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left_in / w, right=1 - right_in / w, bottom=bottom_in / h,
                        top=1 - top_in / h)


def pd_polar(results: list[LayerTuning], bins: int = 24) -> Figure:
    """Polar histogram of the preferred directions of each layer's directional neurons, with the
    unimodal and axial (doubled-angle) Rayleigh tests of their uniformity."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(results)
    fig = plt.figure(figsize=(3.4 * n + 0.4, 4.2))
    edges = np.linspace(0.0, 2 * np.pi, bins + 1)
    for j, lt in enumerate(results):
        ax = fig.add_subplot(1, n, j + 1, projection="polar")
        chosen = lt.fit.pd_deg[lt.cls.directional]
        pds = np.deg2rad(chosen)
        p, resultant = rayleigh_test(chosen)
        p_ax = axial_rayleigh(chosen)[0]
        counts, _ = np.histogram(pds, bins=edges)
        ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color="tab:blue",
               edgecolor="white", alpha=0.85)
        stats = "" if np.isnan(p) else (f"\nRayleigh p {p:.2g}, R̄ {resultant:.2f}; "
                                         f"axial p {p_ax:.2g}")
        ax.set_title(f"{lt.name}: {int(lt.cls.directional.sum())} of "
                     f"{int(lt.cls.counted.sum())} directional"
                     f"{stats}", fontsize=9, pad=14)
        ax.tick_params(labelsize=7)
        if counts.max() == 0:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no directional neurons", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9, color="0.4",
                    bbox=dict(facecolor="white", edgecolor="none"))
        else:  # integer neuron counts, without a 0 crowding the centre
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.set_ylim(0, counts.max() * 1.05)
            ax.set_yticks([t for t in ax.get_yticks() if 0 < t <= counts.max()])
    fig.suptitle("Preferred directions of directional neurons\n(neurons per 15° bin)", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.94, bottom=0.06, top=0.72, wspace=0.45)
    return fig


def decoding_scatter(results: list[LayerTuning], true: np.ndarray,
                     pooled: Decoded | None = None) -> Figure:
    """Decoded against true direction, population vector and OLE, per layer and (``pooled``: the
    decodes of all layers together) for the whole population. Decoded values are drawn
    as true + error, so a decode just past 0°/360° stays next to the diagonal."""
    import matplotlib.pyplot as plt

    rows = [(lt.name, lt.decoded.pv, lt.decoded.ole) for lt in results]
    if pooled is not None and len(results) > 1:
        rows.append(("all layers", pooled.pv, pooled.ole))
    height = 2.9 * len(rows) + 0.6
    fig, axes = plt.subplots(len(rows), 2, figsize=(7.2, height), squeeze=False)
    jitter = np.random.default_rng(0).uniform(-6, 6, len(true))  # spreads the 8 columns of dots
    for r, (name, pv, ole) in enumerate(rows):
        for c, (label, dec) in enumerate((("population vector", pv), ("OLE", ole))):
            ax = axes[r, c]
            ax.plot([-30, 390], [-30, 390], color="0.6", lw=1, zorder=1)
            if np.all(np.isnan(dec)):
                ax.text(0.5, 0.5, "no directional neurons", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9)
            else:
                err = angle_diff(dec, true)
                ax.scatter(true + jitter, true + err, s=6, alpha=0.5, color="tab:blue", zorder=2)
                label = f"{label}: |error| {np.mean(np.abs(err)):.1f}°"
            ax.set_title(f"{name}, {label}", fontsize=8)
            ax.set_xlim(-30, 390)
            ax.set_ylim(-60, 420)
            ax.set_xticks([0, 90, 180, 270, 360])
            ax.set_yticks([0, 90, 180, 270, 360])
            ax.tick_params(labelsize=7)
            ax.set_xlabel("true direction (°)", fontsize=8)
            if c == 0:
                ax.set_ylabel("decoded direction (°)", fontsize=8)
    fig.suptitle("Direction decoded per test trial, cross-validated\n(each fold by decoders fitted "
                 "on the others; PV: directional neurons, OLE: all)", fontsize=10)
    margins(fig, top_in=0.75, bottom_in=0.5, left_in=0.8, right_in=0.2)
    fig.subplots_adjust(hspace=0.5, wspace=0.28)
    return fig


def drift_figure(results: list[LayerTuning], n: int, ci: float = 0.95) -> Figure:
    """PD(t) and depth(t) with their bootstrap bands for the ``n`` deepest directional neurons
    of each layer with time bins. PD(t) is drawn unwrapped about the whole-trial PD, so a PD
    near 0°/360° does not jump, and left out in bins where the neuron is constant; hollow
    markers: bins where the neuron is not directional (ANOVA in that bin)."""
    import matplotlib.pyplot as plt

    rows = [(lt, lt.time) for lt in results if lt.time is not None]
    fig, axes = plt.subplots(len(rows), 2, figsize=(9.0, 2.8 * len(rows) + 0.9), squeeze=False,
                             sharex=True)  # a PD gap (silent bins) keeps the depth panel's axis
    for (lt, tt), (ax_pd, ax_depth) in zip(rows, axes):
        timed = bool(np.all(np.isfinite(tt.t_s)))
        x = tt.t_s if timed else np.arange(len(tt.t_s))
        for _, i in strongest([lt], n):
            whole = lt.fit.pd_deg[i]
            # a bin where the neuron is constant (silent) has no PD: a gap, not a point at 0°
            pd_t = np.where(tt.depth_hz[:, i] > 0, whole + angle_diff(tt.pd_deg[:, i], whole),
                            np.nan)
            band = (pd_t + angle_diff(tt.pd_low_deg[:, i], tt.pd_deg[:, i]),
                    pd_t + angle_diff(tt.pd_high_deg[:, i], tt.pd_deg[:, i]))
            colour = ax_pd.plot(x, pd_t, lw=1.2, label=f"#{lt.index[i]}")[0].get_color()
            ax_pd.axhline(whole, color=colour, ls=":", lw=0.9)
            ax_depth.plot(x, tt.depth_hz[:, i], lw=1.2, color=colour)
            mod = tt.directional[:, i]
            for ax, y, (lo, hi) in ((ax_pd, pd_t, band),
                                    (ax_depth, tt.depth_hz[:, i],
                                     (tt.depth_low_hz[:, i], tt.depth_high_hz[:, i]))):
                ax.fill_between(x, lo, hi, color=colour, alpha=0.18, lw=0)
                ax.scatter(x[mod], y[mod], s=12, color=colour, zorder=3)
                ax.scatter(x[~mod], y[~mod], s=12, facecolors="white", edgecolors=colour,
                           zorder=3)
        ax_pd.set_title(f"{lt.name}: preferred direction (dotted: whole trial)", fontsize=8)
        ax_depth.set_title(f"{lt.name}: depth", fontsize=8)
        ax_pd.set_ylabel("PD (°)", fontsize=8)
        ax_depth.set_ylabel("depth (Hz)", fontsize=8)
        ax_depth.set_ylim(bottom=0)
        ax_pd.legend(fontsize=7, loc="best")
        for ax in (ax_pd, ax_depth):
            ax.tick_params(labelsize=7, labelbottom=True)
            ax.set_xlabel("time (s, bin centre)" if timed else "time bin", fontsize=8)
    fig.suptitle(f"Tuning over the sequence: per-bin cosine fits with {ci:.0%} bootstrap bands "
                 f"(filled markers: directional in that bin)", fontsize=9)
    margins(fig, top_in=0.6, bottom_in=0.5, left_in=0.75, right_in=0.2)
    fig.subplots_adjust(hspace=0.6, wspace=0.3)
    return fig
