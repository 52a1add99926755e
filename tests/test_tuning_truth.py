"""The tuning statistics on synthetic Poisson neurons whose truth is known (issue 22): PD interval
coverage, the directional test's false-positive rate, pinned neurons, the drift test's
false-positive rate, FDR control and the axial Rayleigh test. Pure numpy neurons, seeded, fed to
the fit functions directly; the population sizes make each bound several binomial SDs wide."""
from __future__ import annotations

import numpy as np
import pytest

from plugins.tuning import (
    Limits,
    axial_rayleigh,
    bootstrap_cosine,
    classify,
    depth_interval_bca,
    drift_test,
    fit_cosine,
    rayleigh_test,
)

DIRS8 = np.arange(8) * 45.0
ALPHA = 0.05


def poisson(lam_hz: np.ndarray, dirs: np.ndarray, duration_s: float, seed: int) -> np.ndarray:
    """Rates (Hz) of Poisson spike counts over ``duration_s`` at the mean rates ``lam_hz``
    (trials × neurons, or broadcastable to it)."""
    rng = np.random.default_rng(seed)
    lam = np.broadcast_to(lam_hz, np.broadcast_shapes(np.shape(lam_hz), (len(dirs), 1)))
    return rng.poisson(lam * duration_s) / duration_s


def binomial_sd(p: float, n: int) -> float:
    """SD of a fraction of n independent trials with probability p."""
    return float(np.sqrt(p * (1 - p) / n))


def cosine_lam(dirs: np.ndarray, pds: np.ndarray, baseline: float = 20.0,
               depth: float = 10.0) -> np.ndarray:
    """Mean rates (trials × neurons, Hz) of cosine neurons with preferred directions ``pds``."""
    return baseline + depth * np.cos(np.deg2rad(dirs[:, None] - pds[None, :]))


def test_pd_interval_covers_the_true_pd_of_cosine_poisson_neurons_at_its_level():
    """2000 cosine neurons (20 ± 10 Hz, 1 s trials, 8 directions × 40): the 95% percentile
    bootstrap of the PD covers the truth 95 ± 2% of the time (binomial SD 0.49 points)."""
    n = 2000
    pds = np.random.default_rng(1).uniform(0, 360, n)
    dirs = np.repeat(DIRS8, 40)
    rates = poisson(cosine_lam(dirs, pds), dirs, 1.0, seed=2)
    boot = bootstrap_cosine(rates, dirs, n_boot=500, ci=0.95, seed=3)
    covered = np.mod(pds - boot.pd_low_deg, 360.0) <= boot.pd_width_deg
    assert abs(covered.mean() - 0.95) <= 0.02, covered.mean()


def test_bca_depth_interval_covers_the_true_depth_at_its_level():
    """Same neurons, depth 10 Hz: the BCa interval's coverage is within 3 points of 95%."""
    n = 600
    pds = np.random.default_rng(4).uniform(0, 360, n)
    dirs = np.repeat(DIRS8, 40)
    rates = poisson(cosine_lam(dirs, pds), dirs, 1.0, seed=5)
    low, high = depth_interval_bca(rates, dirs, n_boot=400, ci=0.95, seed=6)
    covered = (low <= 10.0) & (10.0 <= high)
    assert abs(covered.mean() - 0.95) <= 0.03, covered.mean()


def test_directional_false_positive_rate_on_untuned_poisson_neurons_is_alpha():
    """8000 flat Poisson neurons at 20 Hz: called directional at most alpha + 1 point of the
    time (binomial SD at alpha: 0.24 points); with FDR control hardly ever."""
    n = 8000
    dirs = np.repeat(DIRS8, 40)
    rates = poisson(np.full((1, n), 20.0), dirs, 1.0, seed=7)
    fit = fit_cosine(rates, dirs)
    limits = Limits(duration_s=1.0, dt=0.001, tau_ref=0.002)
    cls = classify(rates, dirs, fit, limits, alpha=ALPHA)
    assert (cls.test == "anova").all()  # counts of 20 ± 4.5 spikes: not near-deterministic
    assert cls.directional.mean() <= ALPHA + 0.01, cls.directional.mean()
    assert cls.directional.mean() >= ALPHA - 4 * binomial_sd(ALPHA, n)  # the test is not dead
    fdr = classify(rates, dirs, fit, limits, alpha=ALPHA, fdr=True)
    assert fdr.directional.sum() <= 2  # all nulls: BH controls the family-wise rate


def test_tuned_poisson_neurons_are_found_and_cosines_told_from_axial_ones():
    """400 cosine and 400 axial (cos 2θ) neurons, 1 s trials of 20 ± 10 Hz: all directional;
    the cosines have R² ≥ 0.7, the axial ones not (a cosine cannot fit two lobes)."""
    n = 400
    rng = np.random.default_rng(8)
    dirs = np.repeat(DIRS8, 40)
    pds = rng.uniform(0, 360, n)
    axial = 20 + 10 * np.cos(2 * np.deg2rad(dirs[:, None] - pds[None, :]))
    rates = poisson(np.concatenate([cosine_lam(dirs, pds), axial], axis=1), dirs, 1.0, seed=9)
    fit = fit_cosine(rates, dirs)
    cls = classify(rates, dirs, fit, Limits(duration_s=1.0, dt=0.001, tau_ref=0.002))
    assert cls.directional.all()
    assert cls.cosine_fit[:n].mean() >= 0.99 and cls.cosine_fit[n:].mean() <= 0.01
    assert np.median(cls.lof_rms_hz[n:]) > 5.0 > np.median(cls.lof_rms_hz[:n])  # ≈ 7 Hz vs ≈ 0.7


def test_pinned_neurons_are_never_directional():
    """LIF-like neurons at 1/τ_ref = 500 Hz: 45-50 spikes per 0.1 s trial in every direction,
    varying with direction by 1-2.5 spikes and with no trial noise at all (the F of such a
    neuron is infinite), and rectified-linear neurons above a spike per step: all pinned, none
    directional, none counted."""
    dirs = np.repeat(DIRS8, 40)
    n = 200
    rng = np.random.default_rng(10)
    top = rng.uniform(475, 500, n)  # Hz; at least 450 Hz (45 spikes) below
    lam = top - rng.uniform(5, 12.5, n) * (1 + np.cos(np.deg2rad(dirs[:, None] - rng.uniform(
        0, 360, n))))
    rates = np.floor(lam * 0.1) / 0.1  # deterministic spike counts
    limits = Limits(duration_s=0.1, dt=0.001, tau_ref=0.002)
    cls = classify(rates, dirs, fit_cosine(rates, dirs), limits)
    assert cls.pinned.all() and not cls.directional.any() and not cls.counted.any()
    fast = 1300 + 200 * np.cos(np.deg2rad(dirs))[:, None] + np.zeros((1, 3))  # > 1/dt
    fast_cls = classify(fast, dirs, fit_cosine(fast, dirs), Limits(duration_s=0.1, dt=0.001))
    assert fast_cls.pinned.all() and not fast_cls.directional.any()
    # below the ceiling the same modulation makes directional neurons (where it is a spike)
    slow = rates - 300.0
    assert classify(slow, dirs, fit_cosine(slow, dirs), limits).directional.mean() > 0.5


def test_near_silent_neurons_are_flagged_and_never_directional():
    """Peak rates under a spike per trial (0.6 Hz over 1 s) are near silent, though the ANOVA
    finds their modulation for some of them."""
    dirs = np.repeat(DIRS8, 40)
    lam = 0.3 * (1 + np.cos(np.deg2rad(dirs)))[:, None] + np.zeros((1, 50))
    rates = poisson(lam, dirs, 1.0, seed=11)
    cls = classify(rates, dirs, fit_cosine(rates, dirs), Limits(duration_s=1.0, dt=0.001))
    assert cls.near_silent.all() and not cls.directional.any()
    assert (cls.anova_p < ALPHA).mean() > 0.5


def test_drift_test_false_positive_rate_on_stable_neurons_is_at_most_alpha():
    """2000 stable cosine Poisson neurons over 20 bins of 50 ms: the PD drifts (Bonferroni over
    bins) for at most alpha + 2 points of them (binomial SD 0.49 points), whatever the number
    of bins; the old maximum |ΔPD| over bins was 18-36° for such neurons."""
    n, n_bins, bin_s = 2000, 20, 0.05
    rng = np.random.default_rng(12)
    dirs = np.repeat(DIRS8, 30)
    pds = rng.uniform(0, 360, n)
    lam = cosine_lam(dirs, pds, baseline=30.0, depth=20.0)[:, None, :]  # (trials, 1, n)
    binned = rng.poisson(np.broadcast_to(lam, (len(dirs), n_bins, n)) * bin_s) / bin_s
    whole = fit_cosine(binned.mean(axis=1), dirs)
    drift = drift_test(binned, dirs, whole.pd_deg, np.ones(n, bool), ALPHA)
    assert drift.drifts.mean() <= ALPHA + 0.02, drift.drifts.mean()
    assert np.median(drift.drift_deg) == 0.0  # no bin of a typical stable neuron rejects


def test_axial_rayleigh_sees_pds_clustered_on_an_axis():
    """PDs at 30° and 210° (two opposite clusters): the unimodal test sees nothing, the axial
    (doubled-angle) test rejects; uniform PDs pass both."""
    rng = np.random.default_rng(13)
    pds = np.concatenate([rng.normal(30, 10, 50), rng.normal(210, 10, 50)])
    assert rayleigh_test(pds)[0] > 0.05
    p, r_bar = axial_rayleigh(pds)
    assert p < 1e-10 and r_bar > 0.8
    uniform = rng.uniform(0, 360, 100)
    assert axial_rayleigh(uniform)[0] > 0.01 and rayleigh_test(uniform)[0] > 0.01


@pytest.mark.parametrize("fdr", [False, True])
def test_fdr_keeps_the_false_discovery_proportion_near_alpha(fdr):
    """500 cosine and 4500 flat neurons: without control about alpha of the flat ones count
    (≈ 225, a third of the directional); with Benjamini–Hochberg the false share of the
    directional neurons is at most about alpha."""
    rng = np.random.default_rng(14)
    dirs = np.repeat(DIRS8, 20)
    lam = np.concatenate([cosine_lam(dirs, rng.uniform(0, 360, 500), depth=8.0),
                          np.full((len(dirs), 4500), 20.0)], axis=1)
    rates = poisson(lam, dirs, 1.0, seed=15)
    cls = classify(rates, dirs, fit_cosine(rates, dirs), Limits(duration_s=1.0, dt=0.001),
                   fdr=fdr)
    false_share = cls.directional[500:].sum() / cls.directional.sum()
    if fdr:
        assert false_share <= ALPHA + 0.02 and cls.directional[:500].mean() > 0.9
    else:
        assert false_share > 0.2
