"""The tuning analysis's statistics (issue 13): bootstrap intervals of PD and depth, the lack-of-fit
test, rectified-cosine and von Mises fits compared by AICc, the Rayleigh test, tuning over time,
and the input and pre-activation controls. Synthetic neurons whose truth is known; none of the
cases below is one the code was tuned on."""
from __future__ import annotations

import numpy as np
import pytest

from framework.analysis import Context, Layer, angle_diff
from framework.data.base import Data
from plugins.tuning import (
    MODELS,
    Tuning,
    TuningConfig,
    aicc,
    bootstrap_cosine,
    circular_interval,
    direction_tests,
    drift_test,
    fit_cosine,
    fit_shapes,
    input_features,
    rayleigh_test,
    rectified_cosine,
    tuning_over_time,
    von_mises,
)

DIRS8 = np.arange(8) * 45.0


def poisson_neurons(curve, n_per_dir: int, duration_s: float = 1.0, seed: int = 0,
                    directions=DIRS8):
    """Rates (trials × neurons, Hz): Poisson spike counts over ``duration_s`` of the mean rates
    ``curve(direction_deg[:, None])`` (Hz), divided by the duration."""
    rng = np.random.default_rng(seed)
    dirs = np.repeat(directions, n_per_dir)
    lam = curve(dirs[:, None])
    return rng.poisson(lam * duration_s) / duration_s, dirs


def inside(angle_deg, low_deg, width_deg) -> np.ndarray:
    """Whether each angle lies in the counter-clockwise interval [low, low + width]."""
    return np.mod(np.asarray(angle_deg) - low_deg, 360.0) <= width_deg


# ------------------------------------------------------------------------- bootstrap intervals
def test_bootstrap_intervals_cover_the_true_pd_and_depth_at_about_their_level():
    rng = np.random.default_rng(101)
    n = 400
    pd_true = rng.uniform(0, 360, n)
    depth = rng.uniform(8, 25, n)
    rates, dirs = poisson_neurons(
        lambda t: 35 + depth * np.cos(np.deg2rad(t - pd_true)), n_per_dir=25, duration_s=0.5,
        seed=102)
    fit = fit_cosine(rates, dirs)
    for ci, (lo, hi) in ((0.95, (0.90, 0.99)), (0.8, (0.72, 0.88))):
        boot = bootstrap_cosine(rates, dirs, n_boot=400, ci=ci, seed=103, fit=fit)
        pd_cover = inside(pd_true, boot.pd_low_deg, boot.pd_width_deg).mean()
        depth_cover = ((boot.depth_low_hz <= depth) & (depth <= boot.depth_high_hz)).mean()
        assert lo <= pd_cover <= hi, (ci, pd_cover)
        assert lo <= depth_cover <= hi, (ci, depth_cover)
        assert np.all((boot.pd_low_deg >= 0) & (boot.pd_low_deg < 360))
        assert np.all((boot.pd_high_deg >= 0) & (boot.pd_high_deg < 360))
    # the width follows the noise: the PD's SE is about SD(mean) / depth radians; with Poisson
    # SD √(35/0.5) Hz over 25 trials and 8 directions, 2·1.96·SE is ~ 2·1.96·(8.4/√100)/depth
    expected = np.rad2deg(2 * 1.96 * np.sqrt(70.0 / 25) / np.sqrt(8 / 2) / depth)
    boot = bootstrap_cosine(rates, dirs, n_boot=400, ci=0.95, seed=103, fit=fit)
    ratio = boot.pd_width_deg / expected
    assert 0.8 < np.median(ratio) < 1.2, np.median(ratio)


def test_bootstrap_pd_interval_wraps_through_zero_and_is_reproducible():
    depth = np.array([6.0, 6.0, 20.0])  # shallow: intervals ±10° or so, through 0° at PD 0°
    rates, dirs = poisson_neurons(
        lambda t: 30 + depth * np.cos(np.deg2rad(t - np.array([0.0, 2.0, 180.0]))),
        n_per_dir=20, seed=5)
    a = bootstrap_cosine(rates, dirs, n_boot=300, seed=[7, 0, 0])
    b = bootstrap_cosine(rates, dirs, n_boot=300, seed=[7, 0, 0])
    c = bootstrap_cosine(rates, dirs, n_boot=300, seed=[7, 1, 0])
    np.testing.assert_array_equal(a.pd_width_deg, b.pd_width_deg)
    assert not np.array_equal(a.pd_width_deg, c.pd_width_deg)
    assert (a.pd_low_deg[:2] > 300).all() and (a.pd_high_deg[:2] < 60).all()  # through 0°
    assert (a.pd_width_deg[:2] < 60).all() and a.pd_width_deg[2] < 15
    np.testing.assert_allclose(np.mod(a.pd_high_deg - a.pd_low_deg, 360), a.pd_width_deg)
    assert 120 < a.pd_low_deg[2] < 180 < a.pd_high_deg[2] < 240
    off = bootstrap_cosine(rates, dirs, n_boot=0)
    assert off.n_boot == 0 and np.isnan(off.pd_width_deg).all() and np.isnan(off.depth_low_hz).all()


def test_circular_interval_of_known_samples():
    samples = np.array([350.0, 355.0, 0.0, 5.0, 10.0, 15.0, 20.0])[:, None]
    low, high, width = circular_interval(samples, np.array([5.0]), ci=1.0 - 1e-12)
    assert low[0] == pytest.approx(350.0) and high[0] == pytest.approx(20.0)
    assert width[0] == pytest.approx(30.0)
    few_undefined = np.concatenate([np.full((97, 1), 5.0), np.full((3, 1), np.nan)])
    assert circular_interval(few_undefined, np.array([5.0]), 0.9)[2][0] == 0.0
    many = np.concatenate([np.full((80, 1), 5.0), np.full((20, 1), np.nan)])
    assert circular_interval(many, np.array([5.0]), 0.9)[2][0] == 360.0


def test_bootstrap_of_constant_silent_and_nearly_silent_neurons():
    dirs = np.repeat(DIRS8, 6)
    rates = np.zeros((len(dirs), 4))
    rates[:, 1] = 40.0
    rates[7, 2] = 10.0  # one spike in one trial: a third of the resamples leave it out
    rates[:, 3] = 20 + 10 * np.cos(np.deg2rad(dirs - 30)) + np.random.default_rng(0).random(48)
    boot = bootstrap_cosine(rates, dirs, n_boot=200)
    assert np.isnan(boot.pd_low_deg[:2]).all() and np.isnan(boot.pd_width_deg[:2]).all()
    assert boot.depth_low_hz[:2].tolist() == [0.0, 0.0]
    assert boot.depth_high_hz[:2].tolist() == [0.0, 0.0]
    # the PD of a resample without the spike is undefined, not 0°: the interval is the circle
    assert boot.pd_width_deg[2] == 360.0
    assert boot.pd_width_deg[3] < 10


def test_bootstrap_in_chunks_equals_one_pass():
    rates, dirs = poisson_neurons(
        lambda t: 20 + 10 * np.cos(np.deg2rad(t - np.arange(30) * 12.0)), n_per_dir=7, seed=8)
    whole = bootstrap_cosine(rates, dirs, n_boot=100, seed=1)
    chunked = bootstrap_cosine(rates, dirs, n_boot=100, seed=1, max_elements=100 * 8 * 4)
    np.testing.assert_allclose(chunked.pd_low_deg, whole.pd_low_deg)
    np.testing.assert_allclose(chunked.depth_high_hz, whole.depth_high_hz)


# ------------------------------------------------------------------------------- lack of fit
def test_lack_of_fit_rejects_a_von_mises_neuron_and_keeps_cosines_at_about_alpha():
    sharp, dirs = poisson_neurons(
        lambda t: 4 + 45 * np.exp(3.0 * (np.cos(np.deg2rad(t - 70.0)) - 1)), n_per_dir=25,
        seed=11)
    fit = fit_cosine(sharp, dirs)
    assert fit.lof_p_value[0] < 1e-6
    assert direction_tests(sharp, dirs)[0][0] < 1e-6  # directional, but not a cosine

    rng = np.random.default_rng(12)
    n = 3000
    dirs = np.repeat(DIRS8, 12)
    theta = np.deg2rad(dirs)[:, None]
    rates = 30 + 15 * np.cos(theta - rng.uniform(0, 2 * np.pi, n)) \
        + 6 * rng.standard_normal((len(dirs), n))
    fit = fit_cosine(rates, dirs)
    for alpha in (0.05, 0.01):
        rate = fit.cosine_rejected(alpha).mean()
        assert abs(rate - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / n), (alpha, rate)
    assert abs(np.mean(fit.lof_p_value < 0.5) - 0.5) < 0.03  # uniform under the null


def test_lack_of_fit_is_the_pure_error_f_test_with_unequal_counts():
    from scipy import stats

    rng = np.random.default_rng(13)
    counts = np.array([4, 7, 2, 9, 5, 3, 6, 8])
    dirs = np.repeat(DIRS8, counts)
    theta = np.deg2rad(dirs)
    rates = 10 + 8 * np.maximum(np.cos(theta - 2.0), 0)[:, None] \
        + rng.standard_normal((len(dirs), 3))
    fit = fit_cosine(rates, dirs)
    x = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    n, k = len(dirs), 8
    for i in range(3):
        y = rates[:, i]
        ss_res = np.sum((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2)
        ss_pe = sum(np.sum((y[dirs == d] - y[dirs == d].mean()) ** 2) for d in DIRS8)
        f = ((ss_res - ss_pe) / (k - 3)) / (ss_pe / (n - k))
        assert fit.lof_f_stat[i] == pytest.approx(f, rel=1e-8)
        assert fit.lof_p_value[i] == pytest.approx(stats.f.sf(f, k - 3, n - k), rel=1e-7)
        assert fit.within_ss[i] == pytest.approx(ss_pe, rel=1e-10)


def test_lack_of_fit_needs_four_directions_and_replicates():
    rng = np.random.default_rng(14)
    three = np.repeat([0.0, 120.0, 240.0], 10)
    assert np.isnan(fit_cosine(rng.random((30, 2)), three).lof_p_value).all()
    once = np.arange(8) * 45.0  # one trial per direction: no pure error
    fit = fit_cosine(rng.random((8, 2)), once)
    assert np.isnan(fit.lof_p_value).all()
    assert not fit.cosine_rejected(0.99).any()  # untestable: not rejected


# --------------------------------------------------------------- rectified cosine, von Mises
def test_von_mises_matches_amirikian_and_georgopoulos_form_and_its_cosine_limit():
    theta = np.linspace(0, 360, 73)
    b, a, kappa, pd = 3.0, 40.0, 2.5, 110.0
    amirikian = b + a * np.exp(kappa * (np.cos(np.deg2rad(theta - pd)) - 1))
    trough = b + a * np.exp(-2 * kappa)
    np.testing.assert_allclose(von_mises(theta, trough, a * (1 - np.exp(-2 * kappa)), kappa, pd),
                               amirikian, rtol=1e-12)
    cos = 5 + 10 * (1 + np.cos(np.deg2rad(theta - pd))) / 2
    np.testing.assert_allclose(von_mises(theta, 5, 10, 0.0, pd), cos, rtol=1e-12)
    np.testing.assert_allclose(von_mises(theta, 5, 10, 1e-6, pd), cos, rtol=1e-5)
    np.testing.assert_allclose(von_mises(theta, 5, 10, 2e-5, pd),
                               von_mises(theta, 5, 10, 5e-6, pd), rtol=1e-4)  # no seam at 1e-5
    assert rectified_cosine(theta, -10, 40, pd).min() == 0.0


def test_aicc_prefers_von_mises_for_sharp_neurons_and_cosine_for_cosines():
    rng = np.random.default_rng(15)
    n = 120
    pds = rng.uniform(0, 360, n)
    sharp, dirs = poisson_neurons(
        lambda t: 5 + 40 * np.exp(3.0 * (np.cos(np.deg2rad(t - pds)) - 1)), n_per_dir=20, seed=16)
    s = fit_shapes(fit_cosine(sharp, dirs))
    assert np.mean(s.best_model == "von_mises") > 0.9
    assert 2.5 < np.median(s.vm_kappa) < 3.5
    assert np.median(np.abs(angle_diff(s.vm_pd_deg, pds))) < 3.0
    assert np.median(s.vm_r2) > 0.97
    cos, dirs = poisson_neurons(lambda t: 30 + 20 * np.cos(np.deg2rad(t - pds)), n_per_dir=20,
                                seed=17)
    s = fit_shapes(fit_cosine(cos, dirs))
    assert np.mean(np.isin(s.best_model, ["cosine", "rectified_cosine"])) > 0.8
    rect, dirs = poisson_neurons(lambda t: np.maximum(0, -12 + 45 * np.cos(np.deg2rad(t - pds))),
                                 n_per_dir=20, seed=18)
    s = fit_shapes(fit_cosine(rect, dirs))
    assert np.mean(s.best_model == "rectified_cosine") > 0.8
    assert np.median(np.abs(s.rcos_depth_hz - 45)) < 3 and np.median(np.abs(s.rcos_baseline_hz
                                                                              + 12)) < 3
    assert np.median(s.rcos_r2) > 0.98


def test_shape_fits_reach_the_least_squares_optimum_of_a_dense_grid():
    """Against brute force: every (PD, κ) on a 1° × 0.02 grid with (b, a ≥ 0) of Amirikian and
    Georgopoulos's form solved exactly, and every (PD, rectification level) for the rectified
    cosine; the fits must be at least as good."""
    rng = np.random.default_rng(19)
    pds = rng.uniform(0, 360, 6)
    kappas = np.array([0.3, 1.0, 2.0, 4.0, 0.0, 8.0])
    counts = np.array([6, 9, 5, 8, 7, 10, 4, 6])  # unequal: the trial weights matter
    dirs = np.repeat(DIRS8, counts)
    lam = 3 + 30 * np.exp(kappas * (np.cos(np.deg2rad(dirs[:, None] - pds)) - 1))
    rates = rng.poisson(lam) + 0.0
    fit = fit_cosine(rates, dirs)
    s = fit_shapes(fit)
    c = counts.astype(float)
    pd_grid = np.deg2rad(np.arange(0, 360, 1.0))
    kappa_grid = np.arange(0, 10, 0.02)
    theta = np.deg2rad(DIRS8)
    for i in range(6):
        m = fit.mean[:, i]
        # weighted simple regression of m on g for every (κ, PD) at once; a < 0 is not allowed
        g = np.exp(kappa_grid[:, None, None]
                   * (np.cos(theta[None, None] - pd_grid[None, :, None]) - 1))  # (κ, PD, k)
        w = c / c.sum()
        g_bar, m_bar = g @ w, m @ w
        cov = (g - g_bar[..., None]) @ (w * (m - m_bar))
        var = ((g - g_bar[..., None]) ** 2) @ w
        a = np.where(var > 1e-15, cov / np.maximum(var, 1e-15), 0.0)
        a = np.maximum(a, 0.0)
        resid = m - (m_bar - a * g_bar)[..., None] - a[..., None] * g
        best = ((resid ** 2) @ c).min()
        ours = s.ss[2, i] - fit.within_ss[i]
        assert ours <= best * (1 + 1e-6) + 1e-9, (i, ours, best)
        cut = np.linspace(-1, 0.99, 200)
        h = np.maximum(0, np.cos(theta[None, None] - pd_grid[:, None, None]) - cut[None, :, None])
        hh = np.einsum("k,pjk->pj", c, h * h)
        d = np.maximum(np.einsum("k,pjk->pj", c, h * m) / np.where(hh > 0, hh, np.inf), 0)
        grid_rc = np.einsum("k,pjk->pj", c, (m - d[..., None] * h) ** 2).min()
        grid_rc = min(grid_rc, s.ss[0, i] - fit.within_ss[i])  # no rectification: the cosine
        assert s.ss[1, i] - fit.within_ss[i] <= grid_rc * (1 + 1e-6) + 1e-9, i


def test_shape_fits_of_silent_neurons_and_too_few_trials():
    dirs = np.repeat(DIRS8, 4)
    rates = np.zeros((len(dirs), 2))
    rates[:, 1] = 30 + 10 * np.cos(np.deg2rad(dirs)) + np.random.default_rng(0).random(len(dirs))
    s = fit_shapes(fit_cosine(rates, dirs))
    assert s.best_model[0] == "none" and s.best_model[1] in MODELS
    for name in ("rcos_r2", "vm_pd_deg", "vm_kappa", "vm_r2", "rcos_depth_hz"):
        assert np.isnan(getattr(s, name)[0]), name
    assert np.isfinite(s.vm_r2[1])
    few = np.arange(6) * 60.0  # 6 trials: AICc of 5 parameters is undefined
    s = fit_shapes(fit_cosine(30 + 10 * np.cos(np.deg2rad(few))[:, None] + np.arange(6)[:, None]
                              * 0.1, few))
    assert s.best_model.tolist() == ["none"]


def test_aicc_formula():
    assert aicc(np.array([50.0]), 20, 3)[0] == pytest.approx(
        20 * np.log(2.5) + 8 + 2 * 4 * 5 / 15)
    assert np.isnan(aicc(np.array([1.0]), 6, 4)).all()


def test_shape_fits_of_256_neurons_are_fast(capsys, monkeypatch):
    """Fast because the grid starts are good: the least-squares refinements converge in a few
    evaluations each (counted, so the check is the same on any machine and load; the time is
    reported with pytest -s, not asserted)."""
    import time

    import plugins.tuning.fit as fit_module

    rng = np.random.default_rng(20)
    pds = rng.uniform(0, 360, 256)
    kappa = rng.uniform(0, 4, 256)
    rates, dirs = poisson_neurons(
        lambda t: 5 + 30 * np.exp(kappa * (np.cos(np.deg2rad(t - pds)) - 1)), n_per_dir=37,
        seed=21)
    fit = fit_cosine(rates, dirs)
    calls = {"rectified_cosine": 0, "von_mises": 0}

    def counted(model, residuals):
        def count(*args):
            calls[model] += 1
            return residuals(*args)
        return count

    for model, attr in (("rectified_cosine", "_rcos_residuals"), ("von_mises", "_vm_residuals")):
        monkeypatch.setattr(fit_module, attr, counted(model, getattr(fit_module, attr)))
    t0 = time.perf_counter()
    shapes = fit_shapes(fit)
    elapsed = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nrectified cosine + von Mises fits of 256 neurons: {elapsed * 1000:.0f} ms, "
              f"{calls} residual evaluations")
    assert (shapes.best_model != "none").all()  # every neuron was fitted
    # measured 748 (2.9 per neuron, the final SS included); without good starts each fit runs
    # towards its max_nfev of 200
    assert calls["rectified_cosine"] <= 4 * 256
    # measured 85: one evaluation of all 256 per step of the vectorised fit (at most 50), plus
    # least_squares' own for the 6 neurons it left on a bound; fitted one by one it was 1,656
    assert calls["von_mises"] <= 256



@pytest.mark.parametrize("kappa_high, n_per_dir", [(4.0, 37), (40.0, 10), (2.0, 3)])
def test_vectorised_von_mises_fit_is_as_good_as_least_squares_per_neuron(kappa_high, n_per_dir):
    """The by-hand check: scipy's least_squares on each neuron from the same start. Broad, sharp
    (one direction carries the peak) and few-trial neurons: the vectorised fit's SS is never
    above least_squares' (beyond rounding), and AICc picks the same model."""
    import plugins.tuning.fit as fit_module

    rng = np.random.default_rng(31)
    pds, kappa = rng.uniform(0, 360, 120), rng.uniform(0, kappa_high, 120)
    rates, dirs = poisson_neurons(
        lambda t: 2 + 30 * np.exp(kappa * (np.cos(np.deg2rad(t - pds)) - 1)),
        n_per_dir=n_per_dir, seed=32)
    fit = fit_cosine(rates, dirs)
    shapes = fit_shapes(fit)
    mean, c = fit.mean, fit.n_trials.astype(float)
    theta, sw = np.deg2rad(fit.directions), np.sqrt(c)
    x = fit_module._design(fit.directions)
    b = np.linalg.solve(x.T @ (x * c[:, None]), (x * c[:, None]).T @ mean)
    starts = fit_module._vm_starts(mean, c, theta, np.arctan2(b[2], b[1]),
                                   fit_module._KAPPA_GRID[-1])
    by_hand = np.array([np.sum(fit_module._vm_residuals(
        fit_module._fit_vm_one(mean[:, i], sw, theta, starts[:, i], fit_module.KAPPA_MAX)[:, None],
        mean[:, i:i + 1], sw, theta) ** 2) for i in range(mean.shape[1]) if np.isfinite(
        fit.r2[i])])
    ok = np.isfinite(fit.r2)
    mine = shapes.ss[2, ok] - fit.within_ss[ok]
    assert np.all(mine <= by_hand * (1 + 1e-9) + 1e-9)
    # the same minimum where both are interior and well determined: most neurons
    assert np.mean(np.isclose(mine, by_hand, rtol=1e-6)) > 0.9


# ------------------------------------------------------------------------------------ Rayleigh
def test_rayleigh_test_on_clustered_and_uniform_directions():
    rng = np.random.default_rng(22)
    clustered = np.rad2deg(rng.vonmises(np.deg2rad(45), 2.0, 40))
    p, r_bar = rayleigh_test(clustered)
    assert p < 1e-4
    assert r_bar == pytest.approx(0.698, abs=0.12)  # I1(2)/I0(2)
    ps = np.array([rayleigh_test(rng.uniform(0, 360, 30))[0] for _ in range(2000)])
    for level in (0.05, 0.2, 0.5):
        assert abs(np.mean(ps < level) - level) < 4 * np.sqrt(level * (1 - level) / 2000), level
    assert rayleigh_test(np.array([0.0, 90.0, 180.0, 270.0]))[1] == pytest.approx(0, abs=1e-12)
    p, r_bar = rayleigh_test(np.array([np.nan, 10.0, 10.0]))
    assert r_bar == pytest.approx(1.0) and 0 < p < 1
    assert np.isnan(rayleigh_test(np.array([]))[0])


# ---------------------------------------------------------------------------- tuning over time
def rotating_population(n_neurons=40, n_bins=8, n_per_dir=20, bin_s=0.25, step_deg=15.0,
                        seed=23):
    """Binned rates (trials, bins, neurons) of cosine neurons whose PD turns by ``step_deg`` per
    bin; Poisson counts per bin."""
    rng = np.random.default_rng(seed)
    pd0 = rng.uniform(0, 360, n_neurons)
    dirs = np.repeat(DIRS8, n_per_dir)
    pd_t = pd0[None, :] + step_deg * np.arange(n_bins)[:, None]  # (bins, neurons)
    lam = 40 + 25 * np.cos(np.deg2rad(dirs[:, None, None] - pd_t[None]))
    return rng.poisson(lam * bin_s) / bin_s, dirs, pd_t


def test_tuning_over_time_recovers_a_rotating_preferred_direction():
    binned, dirs, pd_t = rotating_population()
    tt = tuning_over_time(binned, dirs, bin_s=0.25, n_boot=300, seed=1)
    assert tt.pd_deg.shape == (8, 40)
    np.testing.assert_allclose(tt.t_s, (np.arange(8) + 0.5) * 0.25)
    err = angle_diff(tt.pd_deg, pd_t)
    assert np.median(np.abs(err)) < 4.0
    slope = np.polyfit(np.arange(8), np.unwrap(np.deg2rad(tt.pd_deg), axis=0), 1)[0]
    assert np.median(np.rad2deg(slope)) == pytest.approx(15.0, abs=1.0)
    width = np.mod(tt.pd_high_deg - tt.pd_low_deg, 360)
    assert 0.88 < inside(pd_t, tt.pd_low_deg, width).mean() < 0.99
    assert tt.directional.all()
    # against the whole trial (the mean over bins: PD at the middle of the turn, pd0 + 52.5°),
    # the PD is farthest off in the first and last bins, and every neuron's drift is found
    whole = fit_cosine(binned.mean(axis=1), dirs)
    mask = np.ones(40, bool)
    mask[:5] = False
    drift = drift_test(binned, dirs, whole.pd_deg, mask)
    assert drift.drifts[5:].all() and (drift.p_value[5:] < 1e-6).all()
    assert np.median(drift.drift_deg[5:]) == pytest.approx(52.5, abs=4.0)
    assert np.isnan(drift.drift_deg[:5]).all() and not drift.drifts[:5].any()


# -------------------------------------------------------------------------- plugin, in-process
def context(layers: dict[str, dict], dirs: np.ndarray, x_test: np.ndarray,
            bin_s: float | None = None) -> Context:
    """A Context over synthetic layers (``name -> {"rates": ..., "x": ..., "binned": ...}``)."""
    n = len(dirs)
    data = Data(name="reach", task="regression", x_train=x_test, y_train=np.zeros((n, 2)),
                x_test=x_test, y_test=np.zeros((n, 2)), n_outputs=2, dir_train=dirs,
                dir_test=dirs)
    built = []
    for name, parts in layers.items():
        r = parts["rates"]
        layer = Layer(name=name, neuron_type=None, threshold=1.0, index=np.arange(r.shape[1]),
                      gain=np.ones(r.shape[1]), bias=np.zeros(r.shape[1]), rates=r)
        # the attributes the framework is adding (Layer.x, Layer.binned_rates, Context.bin_s)
        if "x" in parts:
            layer.x = parts["x"]
        if "binned" in parts:
            layer.binned_rates = parts["binned"]
        built.append(layer)
    ctx = Context(data=data, layers=built, dt=0.001, n_steps=100, sample=np.arange(n))
    if bin_s is not None:
        ctx.bin_s = bin_s
    return ctx


def test_controls_separate_what_the_network_inherits_from_what_it_creates():
    """Inputs and pre-activations x that are cosines (R² ≈ 1) feed rectified neurons. Cut at
    x = 0 (half-wave), the rate keeps x's PD and stays cosine-like: inherited. Cut at x = 0.85,
    the neuron fires in one or two directions only: the shape is the network's. Trials without
    a direction carry wild inputs and are left out."""
    rng = np.random.default_rng(24)
    dirs = np.concatenate([np.repeat(DIRS8, 15), np.full(10, np.nan)])
    n = len(dirs)
    theta = np.deg2rad(np.nan_to_num(dirs))[:, None]
    x_in = np.cos(theta - rng.uniform(0, 2 * np.pi, 6)) + 0.02 * rng.standard_normal((n, 6))
    x_in[np.isnan(dirs)] = 1e3 * rng.standard_normal((10, 6))
    x = np.cos(theta - rng.uniform(0, 2 * np.pi, 20)) + 0.02 * rng.standard_normal((n, 20))
    cut = np.where(np.arange(20) < 10, 0.0, 0.85)
    rates = 60 * np.maximum(x - cut, 0) / (1 - cut) + 2 * rng.standard_normal((n, 20))
    ctx = context({"dense": {"rates": rates, "x": x}}, dirs, x_in.astype(np.float32))
    res = Tuning().run(ctx, TuningConfig(bootstrap=200))
    m = res.metrics
    assert m["tuning/control/input/median_r2"] > 0.999
    assert m["tuning/control/input/cosine_fraction"] == 1.0
    assert m["tuning/control/dense_x/median_r2"] > 0.999
    assert m["tuning/control/dense_x/cosine_fraction"] == 1.0
    assert m["tuning/dense/directional_fraction"] == 1.0
    assert m["tuning/dense/cosine_rejected_fraction"] == 1.0  # many trials: no exact cosine
    nr = res.neurons
    # the cosine's R² as an effect size: half-wave rectified cosines stay cosine, sharp cuts not
    np.testing.assert_array_equal(nr["cosine_fit"], np.arange(20) < 10)
    np.testing.assert_array_equal(nr["created"], np.arange(20) >= 10)
    assert m["tuning/dense/created_fraction"] == 0.5
    # inherited: the rate's PD is x's within a few degrees
    assert np.abs(nr["pd_shift_deg"][:10]).max() < 5.0
    np.testing.assert_allclose(nr["x_r2"], m["tuning/control/dense_x/median_r2"], atol=1e-3)
    assert m["tuning/trials_without_direction"] == 10.0
    tab = res.tables["tuning_controls.csv"]
    assert list(tab.columns) == ["source", "unit", "pd_deg", "depth", "r2", "anova_p",
                                 "lof_p_value", "directional", "cosine_fit"]
    assert tab.groupby("source", sort=False).size().to_dict() == {
        "input": 6, "dense x": 20, "dense rate": 20}
    rate_rows = tab[tab.source == "dense rate"].reset_index(drop=True)
    np.testing.assert_allclose(rate_rows["r2"], res.neurons["r2"].to_numpy())
    # the input's cosine PDs are the x's of the same direction: depth in x units, about 1
    assert tab[tab.source == "input"]["depth"].between(0.95, 1.05).all()


def test_controls_average_sequences_and_skip_images():
    rng = np.random.default_rng(25)
    dirs = np.repeat(DIRS8, 10)
    theta = np.deg2rad(dirs)[:, None, None]
    envelope = np.sin(np.linspace(0, np.pi, 12))[None, :, None]
    seq = envelope * (1 + np.cos(theta - np.array([0.3, 2.0, 4.0]))) \
        + 0.05 * rng.standard_normal((80, 12, 3))
    assert input_features(seq).shape == (80, 3)
    assert input_features(np.zeros((80, 8, 8, 1))) is None
    rates = 30 + 10 * np.cos(theta[:, 0] - 1.0) + rng.standard_normal((80, 4))
    res = Tuning().run(context({"dense": {"rates": rates}}, dirs, seq), TuningConfig(bootstrap=0))
    assert res.metrics["tuning/control/input/median_r2"] > 0.99
    assert "tuning/control/dense_x/median_r2" not in res.metrics  # no Layer.x yet: no control
    res = Tuning().run(context({"dense": {"rates": rates}}, dirs, np.zeros((80, 8, 8, 1))),
                       TuningConfig(bootstrap=0))
    assert not any(k.startswith("tuning/control/input") for k in res.metrics)
    assert set(res.tables["tuning_controls.csv"]["source"]) == {"dense rate"}
    assert res.neurons["pd_ci_low_deg"].isna().all()  # bootstrap=0: no intervals, said as NaN


def test_plugin_logs_intervals_shapes_rayleigh_and_time(tmp_path):
    rng = np.random.default_rng(26)
    binned, dirs, pd_t = rotating_population(n_neurons=12, n_bins=6, n_per_dir=12, seed=27)
    sharp = rng.poisson(4 + 40 * np.exp(3 * (np.cos(np.deg2rad(dirs[:, None] - rng.uniform(
        60, 90, 10))) - 1))) + 0.0  # PDs clustered in [60°, 90°]: Rayleigh p small
    ctx = context({"early": {"rates": binned.mean(axis=1), "binned": binned},
                   "late": {"rates": sharp}}, dirs, np.zeros((len(dirs), 3), np.float32),
                  bin_s=0.1)
    res = Tuning().run(ctx, TuningConfig(bootstrap=200, grid_neurons=6))
    nr = res.neurons
    assert set(nr["best_model"]) <= set(MODELS) | {"none"}
    late = nr[nr.layer == "late"]
    assert (late["best_model"] == "von_mises").mean() >= 0.8
    assert late["vm_kappa"].between(1.5, 5).mean() >= 0.8
    np.testing.assert_array_equal(nr["directional"], (nr["anova_p"] < 0.05)
                                  & (nr["modulation_spikes"] >= 1.0))
    m = res.metrics
    assert m["tuning/late/rayleigh_p"] < 1e-3 and m["tuning/late/pd_resultant_length"] > 0.9
    assert m["tuning/early/rayleigh_p"] > 1e-3  # 12 PDs drawn uniformly
    mod = nr["directional"].to_numpy()
    for key in ("best_cosine_fraction", "best_rectified_cosine_fraction",
                "best_von_mises_fraction"):
        assert f"tuning/late/{key}" in m
        assert m[f"tuning/{key}"] == pytest.approx(
            np.mean(nr["best_model"].to_numpy()[mod] == key[5:-9]))
    assert m["tuning/cosine_rejected_fraction"] == pytest.approx(
        np.mean(nr["lof_p_value"].to_numpy()[mod] < 0.05))
    # time: only the layer with bins; 6 bins of 15°: the whole-trial PD sits 37.5° from the ends
    tt = res.tables["tuning_time.csv"]
    assert list(tt.columns) == ["layer", "neuron", "bin", "t_s", "pd_deg", "pd_ci_low_deg",
                                "pd_ci_high_deg", "depth_hz", "depth_ci_low_hz",
                                "depth_ci_high_hz", "anova_p", "directional"]
    assert set(tt["layer"]) == {"early"} and len(tt) == 12 * 6
    np.testing.assert_allclose(np.unique(tt["t_s"]), (np.arange(6) + 0.5) * 0.1)
    assert m["tuning/early/pd_drift_fraction"] >= 0.75  # 75° of turn, 12 trials per direction
    assert 20.0 <= m["tuning/early/pd_drift_deg"] <= 45.0  # the largest significant excursion
    assert m["tuning/pd_drift_deg"] == pytest.approx(m["tuning/early/pd_drift_deg"])
    assert "tuning/late/pd_drift_deg" not in m
    row = tt[(tt.neuron == 3) & (tt.bin == 2)].iloc[0]
    assert abs(angle_diff(row["pd_deg"], pd_t[2, 3])) < 15
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert set(res.figures) == {"tuning_curves", "preferred_directions", "population_vector",
                                "pd_drift"}
    for name, draw in res.figures.items():
        fig = draw()
        fig.savefig(tmp_path / f"{name}.png", dpi=60)
        plt.close(fig)
        assert (tmp_path / f"{name}.png").stat().st_size > 5000


def test_continuous_directions_are_pooled_into_sectors_and_tested():
    """Reaches to arbitrary targets (every trial its own direction): the ANOVA and the cosine
    fit need repeats, so directions pool into 8 sectors centred on 0°, 45°, ...; cosine Poisson
    neurons come out directional with their PDs, flat ones not. Discrete directions are kept."""
    from plugins.tuning.fit import direction_tests, group_directions

    rng = np.random.default_rng(4)
    theta = rng.uniform(0, 360, 400)
    centres, inv = group_directions(theta)
    np.testing.assert_array_equal(centres, np.arange(8) * 45.0)
    assert np.all(np.abs(angle_diff(theta, centres[inv])) <= 22.5 + 1e-9)
    pds = np.array([30.0, 200.0])
    tuned = rng.poisson(0.1 * (30 + 20 * np.cos(np.deg2rad(theta[:, None] - pds)))) / 0.1
    flat = rng.poisson(3.0, (400, 2)) / 0.1
    p, _ = direction_tests(np.hstack([tuned, flat]), theta)
    assert (p[:2] < 1e-6).all() and (p[2:] > 0.01).all()
    fit = fit_cosine(tuned, theta)
    assert np.abs(angle_diff(fit.pd_deg, pds)).max() < 10
    discrete = np.repeat([0.0, 90.0, 180.0, 270.0], 5)
    np.testing.assert_array_equal(group_directions(discrete)[0], [0.0, 90.0, 180.0, 270.0])
