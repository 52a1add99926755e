"""A metric's spread over repeats (seeds): mean and a Student t confidence interval, and the
circular spread of angles (a neuron's preferred direction over seeds).

With n repeats the 95% interval of the mean is mean ± t(0.975, n − 1) · sd / √n, sd the sample
standard deviation (ddof = 1). The t quantile, not the normal's 1.96, because sd is estimated from
the same few repeats: at n = 5, t = 2.776, so the interval is 42% wider than a normal one would
claim. It assumes repeats are independent and their mean roughly normal, which a handful of seeds
of the same configuration are close enough to; it says nothing about other configurations.

Examples
--------
>>> iv = t_interval([1.0, 2.0, 3.0])
>>> round(iv.mean, 3), round(iv.sd, 3), round(iv.low, 3), round(iv.high, 3)
(2.0, 1.0, -0.484, 4.484)
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: the confidence level of every interval reported over seeds
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A metric over repeats: ``n`` finite values, their ``mean``, sample ``sd`` (ddof 1) and
    the Student t interval of the mean ``[low, high]`` at :data:`LEVEL`, in the metric's units.
    ``sd``, ``low`` and ``high`` are NaN with fewer than two values."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    def text(self) -> str:
        """``2 [−0.484, 4.484]`` (4 significant digits), or the mean alone for one value."""
        if self.n < 2:
            return f"{self.mean:.4g}" if self.n else ""
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def t_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean and Student t confidence interval of the mean of ``values`` (NaNs left out).

    Parameters
    ----------
    values : iterable of float
        One value per repeat, in the metric's units.
    level : float
        Confidence level, a fraction (0.95: a 95% interval).

    Returns
    -------
    Interval
    """
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Interval(0, float("nan"), float("nan"), float("nan"), float("nan"))
    mean = float(v.mean())
    if n < 2:
        return Interval(1, mean, float("nan"), float("nan"), float("nan"))
    from scipy import stats  # SciPy's statistics load in ~0.3 s: only once an interval is asked

    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1) * sd / np.sqrt(n))
    return Interval(n, mean, sd, mean - half, mean + half)


def circular_spread(degrees: Iterable[float]) -> tuple[float, float]:
    """Circular mean and circular standard deviation of angles, degrees.

    The circular sd, √(−2 ln R̄) with R̄ the mean resultant length, is 0 for identical angles
    and grows without bound as they spread round the circle; for angles within a few tens of
    degrees it is close to their ordinary sd (``scipy.stats.circstd``).

    Parameters
    ----------
    degrees : iterable of float
        Angles in degrees (any range); NaNs left out.

    Returns
    -------
    (mean_deg, sd_deg) : tuple of float
        The mean in [0, 360) and the circular sd, degrees; NaN for no angles.
    """
    v = np.asarray([float(x) for x in degrees], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    from scipy import stats  # SciPy's statistics load in ~0.3 s: only once a spread is asked

    mean = float(stats.circmean(v, high=360.0, low=0.0)) % 360.0
    return mean, float(stats.circstd(v, high=360.0, low=0.0))


#: the metrics a seed sweep reports with their spread, when the runs logged them (the task's
#: score for the Keras model, the rate and the spiking network come first, from :data:`SCORES`)
HEADLINE = ["firing/mean_rate_hz", "tuning/directional_fraction", "tuning/cosine_fraction",
            "tuning/median_r2", "tuning/pv_angle_error_deg", "cost/synops_per_sample",
            "cost/activation_sparsity", "cost/energy_loihi_j"]
#: the task scores (``health.SCORES``'s names), per network
SCORES = [f"{kind}/{name}" for name in ("accuracy", "angle_error_deg", "mse")
          for kind in ("keras", "rate", "spiking")]


def headline(logged: Iterable[str]) -> list[str]:
    """Of the metrics ``logged``, the ones a seed sweep reports with their spread, in order: the
    task scores (Keras, rate, spiking), then :data:`HEADLINE` (the contract's cost metrics among
    them; the rest of ``cost/*`` is per-run detail).

    Examples
    --------
    >>> headline(["cost/synops_per_sample", "time/total_s", "spiking/mse", "rate/mse",
    ...           "cost/energy_cpu_j"])
    ['rate/mse', 'spiking/mse', 'cost/synops_per_sample']
    """
    have = set(logged)
    return [k for k in SCORES + HEADLINE if k in have]
