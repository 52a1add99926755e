"""Population decoding of movement direction, cross-validated: the population vector
(Georgopoulos et al. 1986) and the empirical optimal linear estimator (Salinas & Abbott 1994).

Each test trial is decoded by decoders fitted on the *other* trials (``folds``-fold
cross-validation, stratified by direction), so the errors are errors on trials the decoder did
not see.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from framework.analysis import angle_diff
from plugins.tuning.fit import CosineFit, fit_cosine, group_directions


def population_vector(rates: np.ndarray, fit: CosineFit, mask: np.ndarray,
                      weighted: bool = False) -> np.ndarray:
    """Direction decoded by the population vector of the neurons in ``mask``.

    Each neuron votes along its PD with weight (r − b0)/depth (Georgopoulos et al. 1986);
    ``weighted`` multiplies each vote by depth²/σ² (σ² the single-trial residual variance about
    its cosine, ``fit.resid_var``), so that reliable, deeply modulated neurons count for more
    than noisy shallow ones: the vote becomes (r − b0)·depth/σ².

    Parameters
    ----------
    rates : ndarray, shape (n_trials, N)
        Rates, Hz, of the neurons ``fit`` describes.
    fit : CosineFit
    mask : ndarray of bool, shape (N,)
        The voting neurons (the directional ones).
    weighted : bool
        Weight the votes by depth²/σ².

    Returns
    -------
    ndarray, shape (n_trials,)
        Decoded direction per trial, degrees in [0, 360); NaN when no neuron votes.
    """
    mask = mask & (fit.depth > 0)
    if not mask.any():
        return np.full(len(rates), np.nan)
    weight = (np.asarray(rates, float)[:, mask] - fit.baseline[mask]) / fit.depth[mask]
    if weighted:  # a noiseless neuron (σ² = 0) gets the largest finite weight of the others
        with np.errstate(divide="ignore"):
            snr = fit.depth[mask] ** 2 / fit.resid_var[mask]
        finite = snr[np.isfinite(snr)]
        weight = weight * np.where(np.isfinite(snr), snr, finite.max() if len(finite) else 1.0)
    pd = np.deg2rad(fit.pd_deg[mask])
    vec = weight @ np.stack([np.cos(pd), np.sin(pd)], axis=1)
    decoded: np.ndarray = np.mod(np.rad2deg(np.arctan2(vec[:, 1], vec[:, 0])), 360.0)
    return decoded


def optimal_linear_estimator(r_train: np.ndarray, dir_train: np.ndarray,
                             r_test: np.ndarray) -> np.ndarray:
    """Direction decoded by the empirical optimal linear estimator (Salinas & Abbott 1994).

    The linear read-out û = W (r − r̄) + c of u = (cos θ, sin θ) that minimises the squared error
    on the *measured* training rates (every neuron, tuned or not), ridge-regularised with the
    penalty chosen by scikit-learn's efficient leave-one-out (``RidgeCV``) on standardised rates.
    Unlike the population vector it needs no cosine model: it weights neurons by how well they
    predict direction, and discounts redundant or untuned ones.

    Parameters
    ----------
    r_train : ndarray, shape (n_train, N)
        Training trials' rates, Hz.
    dir_train : ndarray, shape (n_train,)
        Their directions, degrees.
    r_test : ndarray, shape (n_test, N)
        Rates of the trials to decode.

    Returns
    -------
    ndarray, shape (n_test,)
        Decoded direction per trial, degrees in [0, 360).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = np.deg2rad(np.asarray(dir_train, dtype=float))
    u = np.stack([np.cos(t), np.sin(t)], axis=1)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
    est = model.fit(np.asarray(r_train, float), u).predict(np.asarray(r_test, float))
    decoded: np.ndarray = np.mod(np.rad2deg(np.arctan2(est[:, 1], est[:, 0])), 360.0)
    return decoded


@dataclass
class Decoded:
    """Cross-validated decodes of every trial, degrees in [0, 360); NaN where a population
    vector had no voter.

    Attributes
    ----------
    pv, pv_weighted, ole : ndarray, shape (n_trials,)
        Population vector (unit votes), the same with votes weighted by depth²/σ², and the
        optimal linear estimator.
    """

    pv: np.ndarray
    pv_weighted: np.ndarray
    ole: np.ndarray


#: picks the voters of a population vector from training trials: (rates, directions, fit) → mask
Voters = Callable[[np.ndarray, np.ndarray, CosineFit], np.ndarray]


def decode_cross_validated(rates: np.ndarray, directions: np.ndarray, voters: Voters,
                           folds: int, seed: int) -> Decoded:
    """Population vector and OLE decodes of every trial, each from a model fitted without it.

    Trials are split into ``folds`` folds stratified by direction (fewer when a direction has
    fewer trials); for each fold the cosine fits (hence the population vector's preferred
    directions, and its voters, ``voters(rates, directions, fit)`` of the training trials) and
    the OLE are fitted on the other folds only.
    """
    from sklearn.model_selection import StratifiedKFold

    groups = group_directions(directions)[1]
    k = int(min(folds, np.bincount(groups).min()))
    out = Decoded(*(np.full(len(rates), np.nan) for _ in range(3)))
    if k < 2:  # a direction seen once: nothing can be held out
        return out
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(rates, groups):
        fit = fit_cosine(rates[train], directions[train])
        mask = voters(rates[train], directions[train], fit)
        out.pv[test] = population_vector(rates[test], fit, mask)
        out.pv_weighted[test] = population_vector(rates[test], fit, mask, weighted=True)
        out.ole[test] = optimal_linear_estimator(rates[train], directions[train], rates[test])
    return out


def mean_angle_error(decoded: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute angle error, degrees (NaN if nothing was decoded)."""
    if np.all(np.isnan(decoded)):
        return float("nan")
    return float(np.mean(np.abs(angle_diff(decoded, true))))
