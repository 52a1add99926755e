"""The neuron datasheet: one row of numbers and one figure per named neuron."""
from __future__ import annotations

import nengo
import numpy as np
import pytest

from framework.analysis import Context, Layer
from framework.data.base import Data
from framework.errors import UserError
from framework.native import ThresholdLIF
from plugins.datasheet import Datasheet, DatasheetConfig


def context() -> Context:
    """8 directions × 3 trials; neuron j's x is cos(θ − pd_j), J = gain·x + bias."""
    deg = np.repeat(np.arange(8) * 45.0, 3)
    pds = np.array([0.0, 90.0, 200.0])
    x = np.cos(np.radians(deg[:, None] - pds[None, :]))
    nt = ThresholdLIF(threshold=0.5)
    gain, bias = np.array([0.8, 0.5, 1.2]), np.array([0.1, 0.3, -0.2])
    rates = nt.rates(x, gain, bias)
    layer = Layer(name="hidden0", neuron_type=nt, threshold=0.5, index=np.array([2, 3, 7]),
                  gain=gain, bias=bias, rates=rates, x=x)
    feats = np.stack([np.cos(np.radians(deg)), np.sin(np.radians(deg))], 1).astype(np.float32)
    data = Data(name="reach", task="regression", x_train=feats, y_train=feats, x_test=feats,
                y_test=feats, n_outputs=2, dir_test=deg, dir_train=deg)
    return Context(data=data, layers=[layer], dt=0.001, n_steps=100, sample=np.arange(len(deg)))


def test_a_row_per_named_neuron_with_its_numbers():
    ctx = context()
    res = Datasheet().run(ctx, DatasheetConfig(neurons=["hidden0:3", "hidden0:7"]))
    table = res.tables["datasheet.csv"]
    assert table["neuron"].tolist() == [3, 7]
    first = table.iloc[0]
    assert (first["gain"], first["bias"], first["threshold"]) == (0.5, 0.3, 0.5)
    assert first["x_intercept"] == pytest.approx((0.5 - 0.3) / 0.5)
    assert first["max_rate_hz"] == pytest.approx(float(ThresholdLIF(threshold=0.5).rates(
        np.ones(1), np.array([0.5]), np.array([0.3]))[0, 0]))
    assert first["observed_max_rate_hz"] == pytest.approx(ctx.layers[0].rates[:, 1].max())
    # x = cos(θ − 90°) over 8 directions: below 0.4 for 5 of 8 (−1, −0.71 twice, 0 twice)
    assert first["x_intercept_quantile"] == pytest.approx(5 / 8)
    assert sorted(res.figures) == ["datasheet_hidden0_3", "datasheet_hidden0_7"]


def test_the_figure_draws_its_four_panels():
    res = Datasheet().run(context(), DatasheetConfig(neurons=["hidden0:2"]))
    fig = res.figures["datasheet_hidden0_2"]()
    assert len(fig.axes) == 4
    dashed = [ln for ln in fig.axes[2].get_lines() if ln.get_linestyle() == "--"]
    assert dashed and np.allclose(dashed[0].get_ydata(), 0.5)  # J_th on the voltage axis


@pytest.mark.parametrize("spec, match", [
    ("hidden0-3", r"analyses.datasheet.neurons\[0\]: expected layer:neuron"),
    ("hidden0:4", r"analyses.datasheet.neurons\[0\]: neuron 4 is not among"),
    ("hidden9:3", r"analyses.datasheet.neurons\[0\]: no analysed layer 'hidden9'"),
])
def test_a_bad_neuron_names_the_key(spec, match):
    with pytest.raises(UserError, match=match):
        Datasheet().run(context(), DatasheetConfig(neurons=[spec]))


def test_no_voltage_panel_for_a_relu():
    ctx = context()
    ctx.layers[0].neuron_type, ctx.layers[0].threshold = nengo.RectifiedLinear(), 0.0
    res = Datasheet().run(ctx, DatasheetConfig(neurons=["hidden0:2"]))
    assert res.tables["datasheet.csv"]["threshold"].tolist() == [0.0]
    assert len(res.figures["datasheet_hidden0_2"]().axes) == 4
