"""Population decoding of movement direction, cross-validated: the population vector
(Georgopoulos et al. 1986) and the empirical optimal linear estimator (Salinas & Abbott 1994).

Each test trial is decoded by decoders fitted on the *other* trials (``folds``-fold
cross-validation, stratified by direction), so the errors are errors on trials the decoder did
not see.
"""
from __future__ import annotations

import numpy as np

from framework.analysis import angle_diff
from plugins.tuning.fit import CosineFit, fit_cosine, group_directions


def population_vector(rates: np.ndarray, fit: CosineFit, mask: np.ndarray) -> np.ndarray:
    """Direction decoded by the population vector of the neurons in ``mask``.

    Parameters
    ----------
    rates : ndarray, shape (n_trials, N)
        Rates, Hz, of the neurons ``fit`` describes.
    fit : CosineFit
    mask : ndarray of bool, shape (N,)
        The voting neurons (the modulated ones).

    Returns
    -------
    ndarray, shape (n_trials,)
        Decoded direction per trial, degrees in [0, 360); NaN when no neuron votes.
    """
    mask = mask & (fit.depth > 0)
    if not mask.any():
        return np.full(len(rates), np.nan)
    weight = (np.asarray(rates, float)[:, mask] - fit.baseline[mask]) / fit.depth[mask]
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


def decode_cross_validated(rates: np.ndarray, directions: np.ndarray, alpha: float, folds: int,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Population vector and OLE decodes of every trial, each from a model fitted without it.

    Trials are split into ``folds`` folds stratified by direction (fewer when a direction has
    fewer trials); for each fold the cosine fits (hence the population vector's preferred
    directions and which neurons are modulated, the voters) and the OLE are fitted on the other
    folds only.

    Returns
    -------
    (ndarray, ndarray), each shape (n_trials,)
        Decoded directions (degrees; NaN where no training neuron was modulated, for the PV).
    """
    from sklearn.model_selection import StratifiedKFold

    groups = group_directions(directions)[1]
    k = int(min(folds, np.bincount(groups).min()))
    pv = np.full(len(rates), np.nan)
    ole = np.full(len(rates), np.nan)
    if k < 2:  # a direction seen once: nothing can be held out
        return pv, ole
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(rates, groups):
        fit = fit_cosine(rates[train], directions[train])
        pv[test] = population_vector(rates[test], fit, fit.modulated(alpha))
        ole[test] = optimal_linear_estimator(rates[train], directions[train], rates[test])
    return pv, ole


def mean_angle_error(decoded: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute angle error, degrees (NaN if nothing was decoded)."""
    if np.all(np.isnan(decoded)):
        return float("nan")
    return float(np.mean(np.abs(angle_diff(decoded, true))))
