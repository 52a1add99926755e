"""The pure numbers behind the frontier and the seed spread (framework/pareto.py,
framework/spread.py), on values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from framework.pareto import front_order, on_front
from framework.spread import Interval, circular_spread, t_interval


@pytest.mark.parametrize("points, maximize, expected", [
    # error, Hz (both minimised): (2, 30) beats (3, 40); (1, 80) and (5, 10) trade off
    ([[2, 30], [3, 40], [1, 80], [5, 10]], [False, False], [True, False, True, True]),
    # accuracy maximised, Hz minimised: (0.9, 50) and (0.8, 20) trade; (0.7, 60) is beaten by both
    ([[0.9, 50], [0.8, 20], [0.7, 60]], [True, False], [True, True, False]),
    # ties: two identical points do not dominate each other, both stay on the front
    ([[0.9, 50], [0.9, 50], [0.9, 51]], [True, False], [True, True, False]),
    # equal in one objective, better in the other: dominated
    ([[0.9, 50, 100], [0.9, 50, 50]], [True, False, False], [False, True]),
    # a missing value is never on the front and dominates nothing
    ([[float("nan"), 1], [0.5, 40]], [True, False], [False, True]),
    ([[0.5, 40]], [True, False], [True]),
])
def test_front_by_hand(points, maximize, expected):
    assert on_front(points, maximize).tolist() == expected


def test_front_refuses_a_shape_that_does_not_match_the_directions():
    with pytest.raises(ValueError, match=r"values must be \(n_points, 3\)"):
        on_front([[1, 2]], [True, False, False])


def test_front_order_follows_the_cost_axis():
    assert front_order([30, 10, 20, 10], [1, 2, 3, 1]).tolist() == [3, 1, 2, 0]


def test_t_interval_by_hand():
    """[10, 12, 14, 16, 18]: mean 14, sd √10 = 3.1623; t(0.975, 4) = 2.7764;
    half width 2.7764 · 3.1623 / √5 = 3.9264."""
    iv = t_interval([10, 12, 14, 16, 18])
    assert (iv.n, iv.mean) == (5, 14.0)
    assert iv.sd == pytest.approx(math.sqrt(10))
    assert (iv.low, iv.high) == pytest.approx((14 - 3.9264, 14 + 3.9264), abs=1e-4)
    assert iv.text() == "14 [10.07, 17.93]"


def test_t_interval_leaves_out_nan_and_says_nothing_from_one_value():
    assert t_interval([1.0, float("nan"), 3.0]).n == 2
    # n = 2: t(0.975, 1) = 12.706, sd = √2, half = 12.706 · √2 / √2
    assert t_interval([1.0, 3.0]).high == pytest.approx(2 + 12.706, abs=1e-3)
    one = t_interval([4.0])
    assert one.n == 1 and one.mean == 4.0 and math.isnan(one.low) and one.text() == "4"
    assert t_interval([]) .n == 0 and t_interval([]).text() == ""
    assert isinstance(one, Interval)


def test_circular_spread_across_zero():
    """350° and 10°: mean 0°, R̄ = cos 10° = 0.98481, sd = √(−2 ln R̄) = 0.17496 rad = 10.02°."""
    mean, sd = circular_spread([350.0, 10.0])
    assert min(mean, 360 - mean) == pytest.approx(0.0, abs=1e-9)
    assert sd == pytest.approx(10.025, abs=1e-3)
    assert circular_spread([90.0, 90.0, float("nan")]) == pytest.approx((90.0, 0.0), abs=1e-6)
    assert all(np.isnan(circular_spread([])))


def _run(run_id, status="FINISHED", metrics=None, params=None):
    from types import SimpleNamespace

    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, run_name=run_id, status=status),
                           data=SimpleNamespace(metrics=metrics or {}, params=params or {}))


def test_pareto_frame_reads_the_score_as_logged_and_leaves_out_failed_trials():
    """`score` becomes the logged spiking/accuracy, maximised; n_steps comes from the params;
    the failed trial is not a row; (0.9, 50 Hz, 100) and (0.8, 20 Hz, 100) trade off, (0.7, 60 Hz,
    100) is beaten, (0.7, 60 Hz, 20) is on the front by its steps."""
    from framework.app.conclusions import pareto_frame

    runs = [_run("a", metrics={"spiking/accuracy": 0.9, "firing/mean_rate_hz": 50},
                 params={"simulation.n_steps": "100", "simulation.synapse": "0.01"}),
            _run("b", metrics={"spiking/accuracy": 0.8, "firing/mean_rate_hz": 20},
                 params={"simulation.n_steps": "100", "simulation.synapse": "None"}),
            _run("c", metrics={"spiking/accuracy": 0.7, "firing/mean_rate_hz": 60},
                 params={"simulation.n_steps": "100", "simulation.synapse": "0.01"}),
            _run("d", metrics={"spiking/accuracy": 0.7, "firing/mean_rate_hz": 60},
                 params={"simulation.n_steps": "20", "simulation.synapse": "0.01"}),
            _run("e", status="FAILED", metrics={"spiking/accuracy": 1.0}),
            ]
    frame, columns, maximize = pareto_frame(
        runs, ["score", "firing/mean_rate_hz", "simulation.n_steps"], ["minimize"] * 3,
        ["simulation.synapse", "simulation.n_steps"])
    assert columns == ["spiking/accuracy", "firing/mean_rate_hz", "simulation.n_steps"]
    assert maximize == [True, False, False]
    assert frame["run_id"].tolist() == ["a", "b", "c", "d"]
    assert frame["simulation.n_steps"].tolist() == [100, 100, 100, 20]
    assert frame["on_front"].tolist() == [True, True, False, True]


@pytest.mark.parametrize("objectives, direction, problem", [
    ([], None, None),  # no search sweeper: nothing reads them
    (["score", "firing/mean_rate_hz"], None, None),
    (["score", "firing/mean_rate_hz"], ["minimize", "minimize"], None),
    (["firing/mean_rate_hz", "spiking/accuracy"], ["minimize", "maximize"], None),
    ([], "minimize", None),  # the single-objective search (conversion_search)
    (["score"], ["maximize"], "`score` is the task's score as a loss"),
    (["score", "simulation.n_steps"], ["minimize"], "1 direction(s) for 2 objectives"),
    ([], ["minimize", "minimize"], "2 directions but no objectives"),
])
def test_objectives_and_directions_fit_together(objectives, direction, problem):
    from framework.app.conclusions import check_objectives

    found = check_objectives(objectives, direction)
    assert (found is None) if problem is None else (problem in found)


def test_a_trials_label_leaves_out_the_settings_its_conversion_did_not_use():
    """Optuna samples every key of the search space in every trial; a scale under mean_rate
    normalisation or a percentile target under none did nothing, so the label does not name it."""
    import pandas as pd

    from framework.app.conclusions import setting_text

    keys = ["simulation.scale_firing_rates", "simulation.n_steps", "conversion.normalize",
            "conversion.max_rate_hz", "conversion.mean_rate_hz", "conversion.calibrate"]
    row = pd.Series({"simulation.scale_firing_rates": "64.66", "simulation.n_steps": "136",
                     "conversion.normalize": "mean_rate", "conversion.max_rate_hz": "96.7",
                     "conversion.mean_rate_hz": "107.2", "conversion.calibrate": "bias"})
    assert (setting_text(row, keys, abbreviate=True)
            == "steps=136 norm=mean_rate mean_hz=107 cal=bias")
    row["conversion.normalize"] = "Normalize.none"
    assert setting_text(row, keys) == ("scale_firing_rates=64.7 n_steps=136 normalize=none "
                                       "calibrate=bias")
