"""The contract every analysis plugin keeps, as a suite of tests to inherit (after Hydra's
``LauncherTestSuite``).

A test module applies it to the analyses it names::

    @pytest.mark.parametrize("name", shipped_analyses())
    class TestShippedPlugins(PluginContract):
        pass

Each test takes the analysis ``name`` and checks, for that plugin:

- importing its module imports neither TensorFlow nor matplotlib (plugins are imported while a
  config is validated, before TensorFlow; figures are drawn only when plots are on);
- its ``Config`` is a dataclass whose every option has a default, whose int and float options
  carry bounds, and whose bounds ``validate`` enforces (an inclusive bound itself is accepted);
- run on a small synthetic :class:`~framework.analysis.Context` (layers built by hand with Nengo
  neuron types, known rates, directions for tuning, classes for classification), it returns a
  :class:`~framework.analysis.Result` whose ``neurons`` frame, if any, has one row per analysed
  neuron keyed by ``layer`` and ``neuron`` (the neuron's index in its layer), whose metrics are
  floats under metric-shaped names and whose tables are CSV files; the same run twice gives the
  same numbers (everything random is seeded from ``ctx.seed``);
- it writes no table, figure or ``neurons.csv`` column that another shipped plugin writes.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import subprocess
import sys
import typing

import numpy as np
import pytest

from framework.analysis import ANALYSES, Context, Layer, Result
from framework.config import validate
from framework.data.base import Data
from framework.errors import UserError
from framework.plugin_host import BASE_COLUMNS, Claims, discover, plugin_modules

from . import REPO, compose

#: a metric key as runs log them: slash-separated words (``tuning/h0/median_r2``)
METRIC_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
#: directions of the synthetic reaching task, degrees, and trials per direction
DIRECTIONS = np.arange(8) * 45.0
TRIALS = 6
#: preferred directions (degrees) of the synthetic layers' neurons
PDS = {"h0": np.array([0.0, 60.0, 135.0, 200.0, 290.0]), "h1": np.array([30.0, 180.0, 250.0])}
#: gain scale per layer (J per unit x): a ReLU's rate is J itself, so it needs a larger one
GAIN = {"h0": 1.0, "h1": 20.0}
#: the analysed neurons' indices in their layers (not 0..n-1, so positions and indices differ)
INDEX = {"h0": np.array([1, 3, 4, 8, 9]), "h1": np.array([0, 2, 5])}


def shipped_analyses() -> list[str]:
    """Names of the analyses shipped in ``plugins/`` (entry-point plugins left out)."""
    discover()
    shipped = set(plugin_modules())
    return [name for name in ANALYSES.names()
            if ANALYSES.get(name, "analysis").__module__ in shipped]


def analytic_constant(neuron_type: typing.Any, gain: typing.Any, bias: typing.Any,
                      x: typing.Any, n_steps: int, dt: float = 0.001,
                      seed: int = 0) -> np.ndarray:
    """A stand-in for ``simulate_constant``: the type's analytic rates (Hz), shape (m, n), for x
    of shape (m,) or one column per neuron (m, n). Spiking neurons would differ by < 1 spike."""
    gain = np.asarray(gain, float).ravel()
    bias = np.asarray(bias, float).ravel()
    x = np.asarray(x, float)
    amp = float(getattr(neuron_type, "amplitude", 1.0))
    if x.ndim == 1:
        return np.asarray(neuron_type.rates(x, gain, bias), float) / amp
    return np.stack([np.asarray(neuron_type.rates(x[:, j], gain[j:j + 1], bias[j:j + 1]),
                                float).ravel() for j in range(len(gain))], axis=1) / amp


def _layer(name: str, neuron_type: typing.Any, threshold: float, theta: np.ndarray,
           rng: np.random.Generator, n_steps: int) -> Layer:
    """A layer of cosine-tuned neurons: x = cos(θ − PD) drives J = gain·x + bias; the rate is the
    type's analytic rate (Hz) plus a little seeded noise, clipped at 0."""
    pds = PDS[name]
    n = len(pds)
    gain = np.linspace(1.5, 2.5, n) * GAIN[name]
    bias = np.full(n, threshold)  # fires for x > 0
    x = np.cos(theta[:, None] - np.deg2rad(pds)[None, :])
    amp = float(getattr(neuron_type, "amplitude", 1.0))
    clean = np.stack([np.asarray(neuron_type.rates(x[:, j], gain[j:j + 1], bias[j:j + 1]),
                                 float).ravel() for j in range(n)], axis=1) / amp
    rates = np.maximum(clean + rng.normal(0.0, 1.0, clean.shape), 0.0)
    spikes = (rng.random((1, n_steps, n)) < rates[:1, None, :] * 0.001).astype(np.float32)
    return Layer(name=name, neuron_type=neuron_type, threshold=threshold, index=INDEX[name],
                 gain=gain, bias=bias, rates=rates, spikes=spikes, x=x)


def reach_context() -> Context:
    """A reaching task (regression, 8 directions × 6 trials; inputs cos θ, sin θ) with a LIF
    layer ``h0`` (amplitude 0.01, as the converter builds it) and a ReLU layer ``h1``."""
    import nengo

    dirs = np.repeat(DIRECTIONS, TRIALS)
    theta = np.deg2rad(dirs)
    xy = np.stack([np.cos(theta), np.sin(theta)], axis=1).astype(np.float32)
    data = Data(name="reach", task="regression", x_train=xy, y_train=xy, x_test=xy, y_test=xy,
                n_outputs=2, dir_train=dirs, dir_test=dirs)
    rng = np.random.default_rng(0)
    layers = [_layer("h0", nengo.LIF(tau_ref=0.002, amplitude=0.01), 1.0, theta, rng, 20),
              _layer("h1", nengo.RectifiedLinear(), 0.0, theta, rng, 20)]
    return Context(data=data, layers=layers, dt=0.001, n_steps=20, sample=np.arange(len(dirs)),
                   seed=3, simulate_constant=analytic_constant, outputs=xy)


def classes_context() -> Context:
    """A classification task (3 classes × 8 samples, 4 features) with one LIF layer ``h0`` whose
    neuron j prefers the direction-like angle 120°·class (the same known rates as above)."""
    import nengo

    labels = np.repeat(np.arange(3), 8)
    theta = np.deg2rad(labels * 120.0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(len(labels), 4)).astype(np.float32)
    data = Data(name="digits", task="classification", x_train=x, y_train=labels, x_test=x,
                y_test=labels, n_outputs=3)
    layers = [_layer("h0", nengo.LIF(tau_ref=0.002, amplitude=0.01), 1.0, theta, rng, 20)]
    return Context(data=data, layers=layers, dt=0.001, n_steps=20, sample=np.arange(len(labels)),
                   seed=3, simulate_constant=analytic_constant, outputs=np.eye(3)[labels])


@functools.cache
def contexts() -> tuple[Context, ...]:
    """The synthetic contexts, built once per session (plugins must not change them)."""
    return reach_context(), classes_context()


def context_for(name: str) -> Context:
    """The first synthetic context the analysis ``name`` applies to."""
    cls = ANALYSES.get(name, "analysis")
    for ctx in contexts():
        if cls.applies(ctx.data) is None:
            return ctx
    raise AssertionError(f"analysis '{name}' applies to none of the synthetic contexts: "
                         f"{[cls.applies(ctx.data) for ctx in contexts()]}")


@functools.cache
def result(name: str) -> Result:
    """The analysis ``name`` run with its default options on :func:`context_for` (once)."""
    discover()
    cls = ANALYSES.get(name, "analysis")
    return cls().run(context_for(name), cls.Config())


def bad_and_edge(op: str, bound: float, kind: type) -> tuple[float, float | None]:
    """A value just outside a bound, and the bound itself when it is inclusive (else None)."""
    step = 1 if kind is int else 0.5
    return {"ge": (bound - step, bound), "gt": (bound, None), "le": (bound + step, bound),
            "lt": (bound, None)}[op]


class PluginContract:
    """Tests every analysis plugin passes; a subclass parametrises ``name`` (see the module)."""

    def test_importing_it_loads_no_tensorflow_or_matplotlib(self, name: str) -> None:
        module = ANALYSES.get(name, "analysis").__module__
        code = (f"import sys, {module}; heavy = sorted({{'tensorflow', 'matplotlib'}} & "
                f"set(sys.modules)); assert not heavy, heavy")
        proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]

    def test_config_is_a_dataclass_with_bounded_numeric_options(self, name: str) -> None:
        config = ANALYSES.get(name, "analysis").Config
        assert dataclasses.is_dataclass(config)
        config()  # every option has a default
        hints = typing.get_type_hints(config)
        for f in dataclasses.fields(config):
            if hints[f.name] in (int, float):
                assert {"ge", "gt", "le", "lt"} & set(f.metadata), (
                    f"analyses.{name}.{f.name}: a numeric option without bounds (bounded())")

    def test_bounds_are_validated(self, name: str) -> None:
        config = ANALYSES.get(name, "analysis").Config
        hints = typing.get_type_hints(config)
        for f in dataclasses.fields(config):
            for op, bound in f.metadata.items():
                bad, edge = bad_and_edge(op, bound, hints[f.name])
                key = f"analyses.{name}.{f.name}"
                with pytest.raises(UserError, match=re.escape(f"{key}: must be")):
                    validate(compose([f"{key}={bad}"]))
                if edge is not None:
                    options = getattr(validate(compose([f"{key}={edge}"])).analyses, name)
                    assert getattr(options, f.name) == edge

    def test_result_is_keyed_by_layer_and_neuron(self, name: str) -> None:
        res, ctx = result(name), context_for(name)
        assert isinstance(res, Result)
        if res.neurons is None:
            return
        frame = res.neurons
        assert {"layer", "neuron"} <= set(frame.columns)
        got = sorted(zip(frame["layer"], frame["neuron"].astype(int)))
        want = sorted((layer.name, int(i)) for layer in ctx.layers for i in layer.index)
        assert got == want  # one row per analysed neuron, its index in the layer

    def test_metrics_tables_and_figures_are_well_formed(self, name: str) -> None:
        import pandas as pd

        res = result(name)
        for key, value in res.metrics.items():
            assert METRIC_KEY.match(key), key
            assert isinstance(value, float), (key, type(value))
        for fname, table in res.tables.items():
            assert fname.endswith(".csv") and fname != "neurons.csv", fname
            assert isinstance(table, pd.DataFrame) and len(table), fname
        for fig_name, draw in res.figures.items():
            assert re.fullmatch(r"[A-Za-z0-9_]+", fig_name) and callable(draw), fig_name

    def test_the_same_context_gives_the_same_numbers(self, name: str) -> None:
        cls = ANALYSES.get(name, "analysis")
        again = cls().run(context_for(name), cls.Config())
        first = result(name)
        assert again.metrics.keys() == first.metrics.keys()
        np.testing.assert_array_equal(np.array(list(again.metrics.values())),
                                      np.array(list(first.metrics.values())))

    def test_it_clashes_with_no_other_shipped_plugin(self, name: str) -> None:
        claims = Claims()
        for other in shipped_analyses():
            if other != name:
                claims.add(other, result(other))
        claims.add(name, result(name))  # a UserError naming both plugins on a clash
        if result(name).neurons is not None:
            # columns every run has are the framework's: a plugin's copy is left out of the merge
            own = set(result(name).neurons.columns) - set(BASE_COLUMNS)
            assert own, "a neurons frame that adds no column"
