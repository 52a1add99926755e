"""What the tuning analysis reports: per-layer results, its metrics, the ``neurons.csv`` columns and
the tables ``tuning_rates.csv``, ``tuning_controls.csv`` and ``tuning_time.csv``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from plugins.tuning.decode import Decoded, mean_angle_error
from plugins.tuning.directional import Directional, Drift, axial_rayleigh
from plugins.tuning.fit import MODELS, CosineCI, CosineFit, ShapeFits, TimeTuning, rayleigh_test


@dataclass
class LayerTuning:
    """A layer's fits, tests, intervals, shape comparison and decodes, kept for tables and plots.

    ``shift`` is (PD(rate) − PD(x), its interval's low and high end), degrees, where the layer's
    input x is known; ``cosine_r2`` the R² floor of ``cosine_fit`` and ``min_shift_deg`` the
    least PD shift (degrees) that counts as created (for ``created``)."""

    name: str
    index: np.ndarray
    fit: CosineFit
    cls: Directional
    decoded: Decoded
    boot: CosineCI
    shapes: ShapeFits
    cosine_r2: float = 0.7
    min_shift_deg: float = 10.0
    ceiling_hz: float = float("inf")
    time: TimeTuning | None = None
    drift: Drift | None = None
    x_fit: CosineFit | None = None
    shift: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def pd_ci_valid(self) -> np.ndarray:
        """Where the PD interval means what it says: directional neurons whose best model is
        the cosine (a sharp or rectified curve's cosine PD is biased, and more trials narrow the
        interval around the bias), neither pinned nor near-deterministic (a resampling of
        identical trials cannot vary)."""
        c = self.cls
        valid: np.ndarray = (c.directional & ~c.pinned & ~c.near_deterministic
                             & ~np.isin(self.shapes.best_model, ["rectified_cosine", "von_mises"]))
        return valid

    @property
    def created(self) -> np.ndarray | None:
        """Directional neurons whose tuning the network changed: the PD shift's interval
        excludes 0 and the shift is at least ``min_shift_deg`` (a monotone nonlinearity of a
        cosine x leaves the PD where it was, but with 8 directions the cosine PD of the rectified
        curve moves by a few degrees), or the input x is a cosine (R² ≥ ``cosine_r2``) and the
        rate is not; None without x."""
        if self.shift is None or self.x_fit is None:
            return None
        shift, lo, hi = self.shift
        holds_zero = np.mod(-lo, 360.0) <= np.mod(hi - lo, 360.0)  # NaN ends compare False
        shifted = np.isfinite(lo) & ~holds_zero & (np.abs(shift) >= self.min_shift_deg)
        x_cos = np.nan_to_num(self.x_fit.r2, nan=-1.0) >= self.cosine_r2
        shape = x_cos & (np.nan_to_num(self.fit.r2, nan=-1.0) < self.cosine_r2)
        created: np.ndarray = self.cls.directional & (shifted | shape)
        return created


def _median(a: np.ndarray) -> float:
    """Median of the finite values (NaN if none)."""
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else float("nan")


def _fraction(mask: np.ndarray, of: np.ndarray | None = None) -> float:
    """Fraction of True in ``mask`` among ``of`` (all by default); NaN when there are none."""
    mask = np.asarray(mask, bool)
    if of is not None:
        mask = mask[np.asarray(of, bool)]
    return float(np.mean(mask)) if len(mask) else float("nan")


def paper_line(parts: list[LayerTuning]) -> str:
    """The headline in Georgopoulos et al.'s form: "k of N directional, m% of them cosine", with
    the pinned and near-silent neurons left out of N said and listed."""
    cls = [lt.cls for lt in parts]
    directional = sum(int(c.directional.sum()) for c in cls)
    counted = sum(int(c.counted.sum()) for c in cls)
    cosine = sum(int(c.cosine_fit.sum()) for c in cls)
    share = f"{100.0 * cosine / directional:.0f}%" if directional else "–"
    line = f"{directional} of {counted} directional, {share} of them cosine"
    for flag in ("pinned", "near_silent"):
        listed = [f"{lt.name}#{i}" for lt in parts for i in lt.index[getattr(lt.cls, flag)]]
        if listed:
            more = f", … ({len(listed)})" if len(listed) > 12 else ""
            line += f"; {flag.replace('_', '-')} (left out): {', '.join(listed[:12])}{more}"
    return line


def population_metrics(prefix: str, parts: list[LayerTuning], decoded: Decoded,
                       true: np.ndarray, alpha: float) -> dict[str, float]:
    """The metrics of the neurons of ``parts`` taken together, and of the decodes."""
    def cat(get: Callable[[LayerTuning], np.ndarray]) -> np.ndarray:
        """One per-neuron array of every layer in ``parts``, concatenated."""
        return np.concatenate([get(lt) for lt in parts])

    directional = cat(lambda lt: lt.cls.directional)
    pds = cat(lambda lt: lt.fit.pd_deg)[directional]
    rayleigh_p, resultant = rayleigh_test(pds)
    axial_p, axial_r = axial_rayleigh(pds)
    out = {f"{prefix}/directional_fraction":
               _fraction(directional, cat(lambda lt: lt.cls.counted)),
           f"{prefix}/cosine_fraction": _fraction(cat(lambda lt: lt.cls.cosine_fit), directional),
           f"{prefix}/pinned_fraction": _fraction(cat(lambda lt: lt.cls.pinned)),
           f"{prefix}/near_silent_fraction": _fraction(cat(lambda lt: lt.cls.near_silent)),
           f"{prefix}/median_r2": _median(cat(lambda lt: lt.fit.r2)[directional]),
           f"{prefix}/cosine_rejected_fraction":
               _fraction(cat(lambda lt: lt.fit.cosine_rejected(alpha)), directional),
           f"{prefix}/median_lof_rms_hz": _median(cat(lambda lt: lt.cls.lof_rms_hz)[directional]),
           f"{prefix}/pv_angle_error_deg": mean_angle_error(decoded.pv, true),
           f"{prefix}/pv_weighted_angle_error_deg": mean_angle_error(decoded.pv_weighted, true),
           f"{prefix}/ole_angle_error_deg": mean_angle_error(decoded.ole, true),
           f"{prefix}/rayleigh_p": rayleigh_p,
           f"{prefix}/pd_resultant_length": resultant,
           f"{prefix}/axial_rayleigh_p": axial_p,
           f"{prefix}/axial_resultant_length": axial_r,
           f"{prefix}/median_pd_ci_width_deg":
               _median(cat(lambda lt: lt.boot.pd_width_deg)[cat(lambda lt: lt.pd_ci_valid)])}
    best = cat(lambda lt: lt.shapes.best_model)[directional]
    for model in MODELS:  # among the directional neurons: the shape of a real modulation
        out[f"{prefix}/best_{model}_fraction"] = _fraction(best == model)
    drifts = [lt.drift for lt in parts if lt.drift is not None]
    if drifts:
        tested = np.concatenate([np.isfinite(d.p_value) for d in drifts])
        out[f"{prefix}/pd_drift_fraction"] = _fraction(
            np.concatenate([d.drifts for d in drifts]), tested)
        out[f"{prefix}/pd_drift_deg"] = _median(np.concatenate([d.drift_deg for d in drifts]))
    created = [(lt.created, lt.cls.directional) for lt in parts if lt.created is not None]
    if created:
        out[f"{prefix}/created_fraction"] = _fraction(
            np.concatenate([c for c, _ in created]), np.concatenate([d for _, d in created]))
    return out


def control_metrics(prefix: str, fit: CosineFit, anova_p: np.ndarray, alpha: float,
                    cosine_r2: float) -> dict[str, float]:
    """Median R², directional and cosine fractions of one control (inputs or x)."""
    directional = anova_p < alpha
    cosine = directional & (np.nan_to_num(fit.r2, nan=-1.0) >= cosine_r2)
    return {f"{prefix}/median_r2": _median(fit.r2[directional]),
            f"{prefix}/directional_fraction": _fraction(directional),
            f"{prefix}/cosine_fraction": _fraction(cosine, directional)}


def control_table(source: str, units: np.ndarray, fit: CosineFit, anova_p: np.ndarray,
                  directional: np.ndarray, cosine_r2: float) -> Any:
    """Rows of ``tuning_controls.csv`` for one source of cosine fits (``depth`` in the source's
    own units: x for inputs and pre-activations, Hz for rates); ``directional``: anova_p < alpha
    for inputs and x, the layer's own classification for rates."""
    import pandas as pd

    return pd.DataFrame({"source": source, "unit": units, "pd_deg": fit.pd_deg,
                         "depth": fit.depth, "r2": fit.r2, "anova_p": anova_p,
                         "lof_p_value": fit.lof_p_value, "directional": directional,
                         "cosine_fit": directional & (np.nan_to_num(fit.r2, nan=-1.0)
                                                      >= cosine_r2)})


def neuron_columns(lt: LayerTuning) -> Any:
    """The tuning columns of ``neurons.csv`` for one layer (the contract's first)."""
    import pandas as pd

    f, c, b, s = lt.fit, lt.cls, lt.boot, lt.shapes
    cols: dict[str, Any] = {
        "layer": lt.name, "neuron": lt.index, "pd_deg": f.pd_deg, "baseline_hz": f.baseline,
        "depth_hz": f.depth, "r2": f.r2, "anova_p": c.anova_p, "directional": c.directional,
        "cosine_fit": c.cosine_fit, "pinned": c.pinned, "near_silent": c.near_silent,
        "anova_test": c.test, "anova_q": c.q_value, "modulation_spikes": c.modulation_spikes,
        "near_deterministic": c.near_deterministic, "lof_p_value": f.lof_p_value,
        "lof_rms_hz": c.lof_rms_hz, "pd_ci_valid": lt.pd_ci_valid,
        "pd_ci_low_deg": b.pd_low_deg, "pd_ci_high_deg": b.pd_high_deg,
        "pd_ci_width_deg": b.pd_width_deg, "depth_ci_low_hz": b.depth_low_hz,
        "depth_ci_high_hz": b.depth_high_hz, "rcos_r2": s.rcos_r2, "vm_pd_deg": s.vm_pd_deg,
        "vm_kappa": s.vm_kappa, "vm_r2": s.vm_r2, "best_model": s.best_model,
        "rcos_baseline_hz": s.rcos_baseline_hz, "rcos_depth_hz": s.rcos_depth_hz,
        "rcos_pd_deg": s.rcos_pd_deg, "vm_trough_hz": s.vm_trough_hz,
        "vm_amplitude_hz": s.vm_amplitude_hz}
    if lt.x_fit is not None and lt.shift is not None:
        cols.update({"x_pd_deg": lt.x_fit.pd_deg, "x_r2": lt.x_fit.r2,
                     "pd_shift_deg": lt.shift[0], "pd_shift_low_deg": lt.shift[1],
                     "pd_shift_high_deg": lt.shift[2], "created": lt.created})
    if lt.drift is not None:
        cols.update({"pd_drift_p": lt.drift.p_value, "pd_drift": lt.drift.drifts,
                     "pd_drift_deg": lt.drift.drift_deg})
    return pd.DataFrame(cols)


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
            "anova_p": tt.anova_p.T.ravel(),
            "directional": tt.directional.T.ravel()}))
    return pd.concat(frames, ignore_index=True)
