"""The Pareto front of a multi-objective search, on plain numbers.

A point is on the front when no other point is at least as good in every objective and better in
one. Each objective is minimised or maximised on its own (the task's accuracy is maximised, its
error, the firing rate and the steps minimised). Points with equal values do not dominate each
other, so ties are on the front together; a point with a missing value (NaN) is never on it and
dominates nothing.

Examples
--------
>>> import numpy as np
>>> points = np.array([[0.9, 50.0], [0.8, 20.0], [0.7, 60.0], [0.9, 50.0]])  # accuracy, Hz
>>> on_front(points, maximize=[True, False]).tolist()
[True, True, False, True]
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def on_front(values: ArrayLike, maximize: Sequence[bool]) -> NDArray[np.bool_]:
    """Which points are on the Pareto front (not dominated by any other point).

    Parameters
    ----------
    values : array_like, shape (n_points, n_objectives)
        Each point's objectives, in their own units (accuracy as a fraction, rate in Hz, steps).
    maximize : sequence of bool, length n_objectives
        Per objective: True if a higher value is better.

    Returns
    -------
    numpy.ndarray of bool, shape (n_points,)
        True for the points on the front. Points with any NaN are False.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(maximize):
        raise ValueError(f"values must be (n_points, {len(maximize)}); got shape {v.shape}")
    loss = np.where(np.asarray(maximize, dtype=bool), -v, v)  # every objective minimised
    valid = ~np.isnan(loss).any(axis=1)
    front: NDArray[np.bool_] = valid.copy()
    for i in np.flatnonzero(valid):
        others = loss[valid]
        dominates_i = (others <= loss[i]).all(axis=1) & (others < loss[i]).any(axis=1)
        front[i] = not dominates_i.any()
    return front


def front_order(x: ArrayLike, y: ArrayLike) -> NDArray[np.intp]:
    """The order in which to connect front points in a figure: by ``x``, then ``y``.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        The plotted coordinates (cost, score).

    Returns
    -------
    numpy.ndarray of int
        Indices into ``x`` sorting the points along the x axis.
    """
    order: NDArray[np.intp] = np.lexsort((np.asarray(y, dtype=float),
                                          np.asarray(x, dtype=float)))
    return order
