"""The verdict's checks (framework/health.py) on numbers alone: each fires where its line says and
stays quiet a hair inside its limit. No TensorFlow, no store."""
from __future__ import annotations

import pytest

from framework import health
from framework.health import Facts, HealthConfig, findings, worse_by

CFG = HealthConfig()


def checks(metrics, facts=None):
    return [f.check for f in findings(metrics, facts or Facts(), CFG)]


def test_a_quiet_run_is_ok():
    metrics = {"rate/accuracy": 0.9, "spiking/accuracy": 0.88, "firing/mean_rate_hz": 60.0,
               "firing/hidden0/saturated_fraction": 0.1, "firing/hidden0/silent_fraction": 0.25}
    facts = Facts(readout_s=0.04, dt=0.001, n_steps=200, readout_steps=40, chance_accuracy=0.5)
    assert findings(metrics, facts, CFG) == []
    assert health.verdict([]) == "ok"


@pytest.mark.parametrize(("layer_value", "fires"), [(0.10, False), (0.11, True)])
def test_saturated_and_silent_are_per_layer_above_their_limits(layer_value, fires):
    metrics = {"firing/hidden0/saturated_fraction": 0.0, "firing/hidden1/saturated_fraction":
               layer_value, "firing/saturated_fraction": 0.05}  # the pooled value is not a layer
    found = findings(metrics, Facts(), CFG)
    assert [f.check for f in found] == (["saturated"] if fires else [])
    if fires:
        assert "hidden1 11%" in found[0].message and "hidden0" not in found[0].message
    assert checks({"firing/h/silent_fraction": 0.26}) == ["silent"]


def test_spiking_gap_against_the_rate_network_and_the_loaded_model():
    assert checks({"rate/accuracy": 0.90, "spiking/accuracy": 0.86}) == []
    assert checks({"rate/accuracy": 0.90, "spiking/accuracy": 0.84}) == ["spiking_gap"]
    # the forum's biological rates: rate network fine, spikes collapse against the Keras model
    assert checks({"keras/accuracy": 0.889, "rate/accuracy": 0.88,
                   "spiking/accuracy": 0.42}) == ["spiking_gap"]
    # angle error: 50% more and at least 3 degrees
    assert checks({"rate/angle_error_deg": 3.2, "spiking/angle_error_deg": 6.1}) == []
    assert checks({"rate/angle_error_deg": 3.2, "spiking/angle_error_deg": 22.1}) == ["spiking_gap"]


def test_chance_is_the_majority_class_random_directions_or_no_variance_explained():
    facts = Facts(chance_accuracy=1 / 9)
    assert "chance" in checks({"rate/accuracy": 0.111, "spiking/accuracy": 0.111}, facts)
    assert "chance" not in checks({"rate/accuracy": 0.6, "spiking/accuracy": 0.6}, facts)
    assert "chance" in checks({"spiking/angle_error_deg": 85.0})
    assert "chance" in checks({"spiking/mse": 1.2}, Facts(target_var=1.0))


def test_fine_tune_worse_only_when_spiketune_trained_a_loaded_model():
    metrics = {"keras/accuracy": 0.889, "rate/accuracy": 0.25, "spiking/accuracy": 0.25}
    trained = Facts(loaded=True, trained=True)
    assert "fine_tune_worse" in checks(metrics, trained)
    assert "fine_tune_worse" not in checks(metrics, Facts(loaded=True, trained=False))
    kept = {"keras/accuracy": 0.889, "rate/accuracy": 0.875, "spiking/accuracy": 0.87}
    assert "fine_tune_worse" not in checks(kept, trained)


def test_rate_resolution_names_the_steps_that_would_resolve_the_rates():
    # 11 Hz in a 20 ms window: 0.22 spikes; 2 spikes need 182 read-out steps, the last fifth of 910
    facts = Facts(readout_s=0.02, dt=0.001, n_steps=100, readout_steps=20)
    found = findings({"firing/mean_rate_hz": 11.0}, facts, CFG)
    assert [f.check for f in found] == ["rate_resolution"]
    assert "simulation.n_steps=910" in found[0].message
    assert checks({"firing/mean_rate_hz": 11.0}, Facts(spiking=False, readout_s=0.02)) == []
    assert checks({"firing/mean_rate_hz": 100.0}, facts) == []  # exactly 2 spikes: resolved


def test_held_out_fires_for_a_loaded_model_on_spiketunes_own_split_only():
    said = findings({}, Facts(loaded=True, held_out=False, split_source="a 0.25 split"), CFG)
    assert [f.check for f in said] == ["held_out"] and "dataset.split" in said[0].message
    assert checks({}, Facts(loaded=True, held_out=True)) == []
    assert checks({}, Facts(loaded=False, held_out=False)) == []


def test_margins_at_their_edges_and_non_finite_scores():
    assert not worse_by("accuracy", 0.85, 0.90, CFG)  # exactly the margin: not worse
    assert worse_by("accuracy", 0.8499, 0.90, CFG)
    assert worse_by("mse", float("nan"), 0.1, CFG)
    assert not worse_by("mse", 0.1, float("nan"), CFG)


def test_layer_advice_names_the_key_that_sets_this_runs_rates():
    """Under mean_rate normalisation simulation.scale_firing_rates is not used, and a loaded model
    that spiketune does not train has no training.rates to turn on: the advice says what is."""
    metrics = {"firing/dense/silent_fraction": 0.36, "rate/accuracy": 0.96,
               "spiking/accuracy": 0.80}
    own = findings(metrics, Facts(), CFG)
    assert "raise simulation.scale_firing_rates" in own[-1].message
    assert "keep rates in range with training.rates.enabled=true" in own[-1].message
    loaded = Facts(loaded=True, trained=False, rate_key="conversion.mean_rate_hz")
    found = {f.check: f.message for f in findings(metrics, loaded, CFG)}
    assert "scale_firing_rates" not in found["silent"] + found["spiking_gap"]
    assert "raise conversion.mean_rate_hz" in found["silent"]
    assert "model.train=true training.rates.enabled=true" in found["silent"]
    assert "silent in the loaded model itself" in found["silent"]
    assert "raise simulation.n_steps or conversion.mean_rate_hz" in found["spiking_gap"]
