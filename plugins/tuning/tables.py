"""What the tuning analysis reports: per-layer results, its metrics, the ``neurons.csv`` columns and
the tables ``tuning_rates.csv``, ``tuning_controls.csv`` and ``tuning_time.csv``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from plugins.tuning.decode import mean_angle_error
from plugins.tuning.fit import (
    MODELS,
    CosineCI,
    CosineFit,
    ShapeFits,
    TimeTuning,
    pd_drift,
    rayleigh_test,
)


@dataclass
class LayerTuning:
    """A layer's fits, intervals, shape comparison and decodes, kept for the tables and plots."""

    name: str
    index: np.ndarray
    fit: CosineFit
    modulated: np.ndarray
    tuned: np.ndarray
    pv: np.ndarray
    ole: np.ndarray
    boot: CosineCI
    shapes: ShapeFits
    time: TimeTuning | None = None
    x_fit: CosineFit | None = None  # the cosine fit of the layer's input x (a control)


def _median(a: np.ndarray) -> float:
    """Median of the finite values (NaN if none)."""
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else float("nan")


def _fraction(mask: np.ndarray) -> float:
    """Fraction of True in ``mask`` (NaN when empty)."""
    return float(np.mean(mask)) if len(mask) else float("nan")


def population_metrics(prefix: str, parts: list[LayerTuning], pv: np.ndarray, ole: np.ndarray,
                       true: np.ndarray, alpha: float) -> dict[str, float]:
    """The metrics of the neurons of ``parts`` taken together, and of the decodes pv, ole."""
    def cat(get: Callable[[LayerTuning], np.ndarray]) -> np.ndarray:
        """One per-neuron array of every layer in ``parts``, concatenated."""
        return np.concatenate([get(lt) for lt in parts])

    modulated = cat(lambda lt: lt.modulated)
    best = cat(lambda lt: lt.shapes.best_model)[modulated]
    rayleigh_p, resultant = rayleigh_test(cat(lambda lt: lt.fit.pd_deg)[modulated])
    out = {f"{prefix}/tuned_fraction": _fraction(cat(lambda lt: lt.tuned)),
           f"{prefix}/modulated_fraction": _fraction(modulated),
           f"{prefix}/cosine_rejected_fraction":
               _fraction(cat(lambda lt: lt.fit.cosine_rejected(alpha))),
           f"{prefix}/median_r2": _median(cat(lambda lt: lt.fit.r2)),
           f"{prefix}/pv_angle_error_deg": mean_angle_error(pv, true),
           f"{prefix}/ole_angle_error_deg": mean_angle_error(ole, true),
           f"{prefix}/rayleigh_p": rayleigh_p,
           f"{prefix}/pd_resultant_length": resultant,
           f"{prefix}/median_pd_ci_width_deg":
               _median(cat(lambda lt: lt.boot.pd_width_deg)[modulated])}
    for model in MODELS:  # among the modulated neurons: the shape of a real modulation
        out[f"{prefix}/best_{model}_fraction"] = _fraction(best == model)
    drifts = [pd_drift(lt.time, lt.fit.pd_deg, lt.modulated) for lt in parts
              if lt.time is not None]
    if drifts:
        out[f"{prefix}/pd_drift_deg"] = _median(np.concatenate(drifts))
    return out


def control_metrics(prefix: str, fit: CosineFit, alpha: float) -> dict[str, float]:
    """Median R², tuned and modulated fractions of one control's cosine fits."""
    return {f"{prefix}/median_r2": _median(fit.r2),
            f"{prefix}/tuned_fraction": _fraction(fit.tuned(alpha)),
            f"{prefix}/modulated_fraction": _fraction(fit.modulated(alpha))}


def control_table(source: str, units: np.ndarray, fit: CosineFit, alpha: float) -> Any:
    """Rows of ``tuning_controls.csv`` for one source of cosine fits (``depth`` in the source's
    own units: x for inputs and pre-activations, Hz for rates)."""
    import pandas as pd

    return pd.DataFrame({"source": source, "unit": units, "pd_deg": fit.pd_deg,
                         "depth": fit.depth, "r2": fit.r2, "p_value": fit.p_value,
                         "lof_p_value": fit.lof_p_value, "modulated": fit.modulated(alpha),
                         "tuned": fit.tuned(alpha)})


def neuron_columns(lt: LayerTuning) -> Any:
    """The tuning columns of ``neurons.csv`` for one layer (the contract's first)."""
    import pandas as pd

    f, b, s = lt.fit, lt.boot, lt.shapes
    return pd.DataFrame({
        "layer": lt.name, "neuron": lt.index, "pd_deg": f.pd_deg, "baseline_hz": f.baseline,
        "depth_hz": f.depth, "r2": f.r2, "p_value": f.p_value, "tuned": lt.tuned,
        "modulated": lt.modulated, "lof_p_value": f.lof_p_value,
        "pd_ci_low_deg": b.pd_low_deg, "pd_ci_high_deg": b.pd_high_deg,
        "pd_ci_width_deg": b.pd_width_deg, "depth_ci_low_hz": b.depth_low_hz,
        "depth_ci_high_hz": b.depth_high_hz, "rcos_r2": s.rcos_r2, "vm_pd_deg": s.vm_pd_deg,
        "vm_kappa": s.vm_kappa, "vm_r2": s.vm_r2, "best_model": s.best_model,
        "rcos_baseline_hz": s.rcos_baseline_hz, "rcos_depth_hz": s.rcos_depth_hz,
        "rcos_pd_deg": s.rcos_pd_deg, "vm_trough_hz": s.vm_trough_hz,
        "vm_amplitude_hz": s.vm_amplitude_hz})


def rate_table(results: list[LayerTuning]) -> Any:
    """``tuning_rates.csv``: one row per neuron and direction."""
    import pandas as pd

    frames = []
    for lt in results:
        k, n = lt.fit.mean.shape
        frames.append(pd.DataFrame({
            "layer": lt.name, "neuron": np.repeat(lt.index, k),
            "direction_deg": np.tile(lt.fit.directions, n),
            "mean_rate_hz": lt.fit.mean.T.ravel(), "n_trials": np.tile(lt.fit.n_trials, n),
            "sd_rate_hz": lt.fit.sd.T.ravel()}))
    return pd.concat(frames, ignore_index=True)


def time_table(results: list[LayerTuning]) -> Any:
    """``tuning_time.csv``: one row per neuron and time bin, of the layers with bins."""
    import pandas as pd

    frames = []
    for lt in results:
        tt = lt.time
        if tt is None:
            continue
        n_bins, n = tt.pd_deg.shape
        frames.append(pd.DataFrame({
            "layer": lt.name, "neuron": np.repeat(lt.index, n_bins),
            "bin": np.tile(np.arange(n_bins), n), "t_s": np.tile(tt.t_s, n),
            "pd_deg": tt.pd_deg.T.ravel(), "pd_ci_low_deg": tt.pd_low_deg.T.ravel(),
            "pd_ci_high_deg": tt.pd_high_deg.T.ravel(), "depth_hz": tt.depth_hz.T.ravel(),
            "depth_ci_low_hz": tt.depth_low_hz.T.ravel(),
            "depth_ci_high_hz": tt.depth_high_hz.T.ravel(),
            "modulated": tt.modulated.T.ravel()}))
    return pd.concat(frames, ignore_index=True)
