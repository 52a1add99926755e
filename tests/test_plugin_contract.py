"""Every shipped analysis keeps the plugin contract (tests/helpers/plugin_contract.py), and the
plugin host's own rules: a plugin that fails to import is a warning naming it, two plugins writing
the same table, figure or column are an error naming both, and running the analyses writes
neurons.csv, the tables and the figures ready for upload."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers.plugin_contract import (
    INDEX,
    PDS,
    PluginContract,
    context_for,
    reach_context,
    result,
    shipped_analyses,
)

from framework import plugin_host
from framework.analysis import Result, angle_diff
from framework.errors import UserError
from framework.plugin_host import BASE_COLUMNS, Claims, PluginWarning, run_analyses
from framework.progress import Console


def test_every_shipped_plugin_is_found():
    assert set(shipped_analyses()) == {"classes", "firing", "pca", "response", "sparsity",
                                       "thresholds", "tuning", "voltage", "datasheet"}


@pytest.mark.parametrize("name", shipped_analyses())
class TestShippedPlugins(PluginContract):
    """The whole contract, for each analysis in plugins/ (tuning is a package)."""


# ------------------------------------------------------------------- known answers on the contexts
def test_firing_means_are_the_layers_mean_rates():
    ctx, res = context_for("firing"), result("firing")
    for layer in ctx.layers:
        assert res.metrics[f"firing/{layer.name}/mean_rate_hz"] == pytest.approx(
            layer.rates.mean())
        rows = res.neurons[res.neurons.layer == layer.name]
        np.testing.assert_array_equal(rows.neuron, INDEX[layer.name])
        np.testing.assert_allclose(rows.mean_rate_hz, layer.rates.mean(axis=0))


def test_tuning_finds_the_preferred_directions_the_layers_were_built_with():
    frame = result("tuning").neurons
    for name, pds in PDS.items():
        rows = frame[frame.layer == name]
        np.testing.assert_array_equal(rows.neuron, INDEX[name])
        # noise SD 1 Hz over 48 trials against depths of 14-62 Hz: the PD's standard error is
        # under 1°, and the rectified curves (symmetric about their PD) add no bias beyond it
        assert np.abs(angle_diff(rows.pd_deg.to_numpy(float), pds)).max() < 3.0


def test_response_against_the_analytic_stand_in_has_no_error():
    m = result("response").metrics
    assert m["response/max_abs_error_hz"] == 0.0
    assert m["response/within_tolerance_fraction"] == 1.0


def test_classes_reads_the_outputs_from_the_context():
    m = result("classes").metrics
    assert [m[f"classes/class{c}_accuracy"] for c in range(3)] == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------- clashes and discovery
@pytest.mark.parametrize("kind, clash", [
    ("table", Result(tables={"rates.csv": pd.DataFrame({"a": [1]})})),
    ("figure", Result(figures={"rates": lambda: None})),
    ("neurons.csv column", Result(neurons=pd.DataFrame({"layer": ["h"], "neuron": [0],
                                                         "busy": [True]}))),
])
def test_two_plugins_writing_one_output_is_an_error_naming_both(kind, clash):
    claims = Claims()
    claims.add("first", clash)
    claims.add("first", clash)  # a plugin may repeat itself (one claim per plugin)
    with pytest.raises(UserError, match=f"plugins 'first' and 'second' both write the {kind}"):
        claims.add("second", clash)


def test_columns_every_run_has_are_not_claimed():
    base = Result(neurons=pd.DataFrame({c: [0] for c in BASE_COLUMNS}))
    claims = Claims()
    claims.add("firing", base)
    claims.add("other", base)  # left out of the merge, so no clash
    assert claims.owners == {}


def test_a_plugin_that_fails_to_import_is_a_warning_naming_it(tmp_path, monkeypatch):
    (tmp_path / "broken_probe_plugin.py").write_text("raise RuntimeError('half-written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugin_host, "plugin_modules", lambda: ["broken_probe_plugin"])
    with pytest.warns(PluginWarning, match=r"'broken_probe_plugin' was not loaded: "
                                           r"RuntimeError: half-written"):
        plugin_host.discover.__wrapped__()  # discovery itself, not its once-per-process cache
    assert "firing" in plugin_host.plugin_configs()  # the others are still there


# ------------------------------------------------------------------------------- running them
def test_run_analyses_writes_neurons_tables_and_plots(tmp_path):
    from plugins.firing import FiringConfig
    from plugins.pca import PCAConfig

    ctx = reach_context()
    options = SimpleNamespace(firing=FiringConfig(), pca=PCAConfig())
    metrics, upload = run_analyses(ctx, ["firing", "pca"], options, True, tmp_path,
                                   Console(quiet=True))
    assert upload == tmp_path / "upload"
    neurons = pd.read_csv(upload / "neurons.csv")
    assert list(neurons.columns) == BASE_COLUMNS + ["saturated"]
    assert list(zip(neurons.layer, neurons.neuron)) == [
        (layer.name, i) for layer in ctx.layers for i in layer.index]
    np.testing.assert_allclose(neurons.mean_rate_hz,
                               np.concatenate([la.rates.mean(axis=0) for la in ctx.layers]))
    assert metrics["firing/mean_rate_hz"] == pytest.approx(neurons.mean_rate_hz.mean())
    assert metrics["pca/input_n90"] == 2.0  # cos θ and sin θ: two equal components
    assert sorted(p.name for p in upload.iterdir()) == ["neurons.csv", "pca_variance.csv", "plots"]
    assert sorted(p.name for p in (upload / "plots").iterdir()) == [
        "firing_rates.png", "pca.png", "raster.png"]


def test_run_analyses_without_plots_draws_nothing(tmp_path):
    from plugins.thresholds import ThresholdsConfig

    metrics, upload = run_analyses(reach_context(), ["thresholds"],
                                   SimpleNamespace(thresholds=ThresholdsConfig()), False,
                                   tmp_path, Console(quiet=True))
    assert not (upload / "plots").exists()
    # h0: bias = J_th, so every x-intercept is 0; h1 likewise
    assert metrics["threshold/x_intercept_median"] == 0.0
