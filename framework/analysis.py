"""Analysis plugins: the base class, what a plugin receives, what it returns, and discovery.

A plugin is a subclass of :class:`Analysis` with a unique ``name`` and a dataclass ``Config`` (its
node ``analyses.<name>`` in the config). It is found without being listed anywhere: every module in
the ``plugins`` package is imported, and external packages register through the entry-point group
``spiketune.analyses``. Plugin modules must not import TensorFlow at import time: discovery runs
while configs are validated, before TensorFlow is loaded.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from framework.config import bounded
from framework.errors import UserError
from framework.registry import Registry

#: what plugins import from here besides the classes below (one face, framework.analysis)
__all__ = ["Analysis", "Context", "Layer", "Result", "UserError", "angle_diff", "bounded",
           "observed_x", "peak_rates", "sample_groups"]


def angle_diff(a, b) -> np.ndarray:
    """a − b wrapped to [−180, 180) degrees."""
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0

ANALYSES: Registry[type[Analysis]] = Registry("analysis")
ENTRY_POINT_GROUP = "spiketune.analyses"


@dataclass
class NoConfig:
    """The config of an analysis without options."""


@dataclass
class Layer:
    """One analysed layer of the converted network, as it was built and simulated.

    Attributes
    ----------
    name : str
        The Keras layer name (or ``ensemble``).
    neuron_type : nengo.neurons.NeuronType
        The neuron type as built, including the amplitude set by ``scale_firing_rates``.
    threshold : float
        J_th, the current at which the type starts to fire.
    index : ndarray of int, shape (n,)
        Indices of the analysed neurons within the layer.
    gain, bias : ndarray, shape (n,)
        Effective gain (J per unit x) and bias current (J), so that J = gain·x + bias, where x is
        the layer's weighted input without its bias.
    rates : ndarray, shape (n_samples, n) or None
        Mean spiking rate (Hz) of each analysed neuron on each test sample, over the simulation.
    spikes : ndarray, shape (n_raster, n_steps, n) or None
        Spike counts per step of a few test samples, for rasters.
    x : ndarray, shape (n_samples, n) or None
        Each neuron's input x on each test sample, averaged over the simulation, in the neuron's
        own x units (J = gain·x + bias): observed from the input current J in the spiking
        network, so x = (J − bias)/gain. For a converted layer x is its weighted input W·h.
    binned_rates, binned_x : ndarray, shape (n_samples, n_bins, n) or None
        Sequences: rate (Hz) and x per time bin of the input sequence; None for static inputs.
    """

    name: str
    neuron_type: Any
    threshold: float
    index: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    rates: np.ndarray | None = None
    spikes: np.ndarray | None = None
    x: np.ndarray | None = None
    binned_rates: np.ndarray | None = None
    binned_x: np.ndarray | None = None

    @property
    def x_intercept(self) -> np.ndarray:
        return x_intercepts(self.gain, self.bias, self.threshold)

    @property
    def x_observed(self) -> np.ndarray | None:
        """The observed distribution of each neuron's x, shape (m, n): one value per sample, or
        per sample and time bin for sequences (the input changes from bin to bin); None when the
        run did not observe x."""
        if self.binned_x is not None:
            return self.binned_x.reshape(-1, self.binned_x.shape[-1])
        return self.x


def x_intercepts(gain, bias, threshold) -> np.ndarray:
    """x at which J = gain·x + bias reaches J_th: (threshold − bias) / gain (inf where gain = 0)."""
    gain = np.asarray(gain, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gain != 0, (threshold - np.asarray(bias, dtype=float)) / gain, np.inf)


@dataclass
class Context:
    """Everything an analysis may read: data, layers as built and simulated, and settings.

    Attributes
    ----------
    cfg : framework.config.Config
        The validated config.
    data : framework.data.base.Data
        The dataset (test split used for the simulation).
    layers : list of Layer
        The analysed layers.
    dt : float
        Simulation step, s.
    n_steps : int
        Steps simulated per test sample.
    sample : ndarray of int
        Indices into the test split of the simulated samples (all, or ``simulation.max_samples``).
    simulate_constant : callable or None
        ``simulate_constant(neuron_type, gain, bias, x, n_steps) -> rates`` (Hz) simulates spiking
        neurons on constant inputs ``x``; used by response curves.
    bin_s : float
        Sequences: simulated time per time bin of the input, s (0 for static inputs).
    """

    cfg: Any
    data: Any
    layers: list[Layer]
    dt: float
    n_steps: int
    sample: np.ndarray
    seed: int = 0
    simulate_constant: Callable | None = None
    extras: dict = field(default_factory=dict)
    bin_s: float = 0.0


@dataclass
class Result:
    """What an analysis returns.

    Attributes
    ----------
    metrics : dict
        ``name -> float``, logged as MLflow metrics.
    neurons : pandas.DataFrame or None
        Per-neuron columns keyed by ``layer`` and ``neuron``; merged into ``neurons.csv``.
    tables : dict
        ``filename.csv -> DataFrame`` artifacts.
    figures : dict
        ``name -> callable returning a matplotlib Figure``; drawn only when plots are on.
    remarks : list of str
        Lines the run prints (a warning about what the analysis found, say).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    neurons: Any = None
    tables: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Callable[[], Any]] = field(default_factory=dict)
    remarks: list[str] = field(default_factory=list)


class Analysis:
    """Base class of analysis plugins.

    Subclasses set ``name`` and, if they take options, ``Config`` (a dataclass). They implement
    :meth:`run`, and :meth:`applies` when they need something of the data (directions, say).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    #: run by ``analysis=[auto]`` when :meth:`applies` is true
    default: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            ANALYSES.register(cls.name)(cls)

    @classmethod
    def applies(cls, data) -> str | None:
        """None if the analysis can run on ``data``, else the reason it cannot."""
        return None

    def run(self, ctx: Context, cfg) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError


_discovered = False


def discover() -> None:
    """Import every module of the ``plugins`` package and every entry point (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    try:
        import plugins
    except ImportError:
        plugins = None  # type: ignore[assignment]  # an installed wheel without the folder
    if plugins is not None:
        for mod in pkgutil.iter_modules(plugins.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"plugins.{mod.name}")
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def plugin_configs() -> dict[str, type]:
    """``name -> Config dataclass`` of every discovered analysis."""
    discover()
    return {name: cls.Config for name, cls in ANALYSES.items()}


def select(names: list[str], data) -> list[str]:
    """The analyses to run: ``auto`` expands to every default analysis that applies to ``data``.

    An analysis named explicitly that cannot use the data is refused with its reason.
    """
    discover()
    chosen: list[str] = []
    for i, name in enumerate(names):
        if name == "auto":
            chosen += [n for n, cls in ANALYSES.items()
                       if cls.default and cls.applies(data) is None and n not in chosen]
            continue
        cls = ANALYSES.get(name, f"analysis[{i}]")
        why = cls.applies(data)
        if why:
            raise UserError(f"analysis[{i}]: '{name}' cannot run on dataset '{data.name}': {why}")
        if name not in chosen:
            chosen.append(name)
    if "firing" in ANALYSES and "firing" not in chosen:
        chosen.insert(0, "firing")
    return chosen


def check_names(names: list[str]) -> None:
    """Refuse unknown analysis names before anything heavy is imported."""
    discover()
    for i, name in enumerate(names):
        if name != "auto":
            ANALYSES.get(name, f"analysis[{i}]")


def sample_groups(ctx: Context) -> np.ndarray | None:
    """Each simulated sample's condition: its direction (degrees, NaN for none) where the data
    has directions, its class for classification, else None (also without data)."""
    data = ctx.data
    if data is None:
        return None
    if data.has_directions:
        return np.round(np.asarray(data.dir_test, dtype=float)[ctx.sample], 6)
    if data.classification:
        return np.asarray(data.y_test, dtype=float)[ctx.sample]
    return None


def peak_rates(rates: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Each neuron's observed peak rate (Hz): the highest mean over the samples of one condition
    (direction or class; samples without one left out), else the highest single-sample rate."""
    if groups is None:
        return rates.max(axis=0)
    keep = np.isfinite(groups)
    means = [rates[keep & (groups == g)].mean(axis=0) for g in np.unique(groups[keep])]
    return np.max(means, axis=0) if means else rates.max(axis=0)


def observed_x(layer: Layer) -> dict[str, np.ndarray]:
    """Each neuron's observed input range and where its threshold falls in it.

    Returns
    -------
    dict of ndarray, shape (n,)
        ``x_observed_min``, ``x_observed_max``: the lowest and highest x the neuron received (one
        value per sample, or per sample and time bin for sequences), x units;
        ``x_intercept_quantile``: the fraction of those inputs below the x-intercept, i.e. how
        often the neuron is driven below J_th (for a positive gain: silent). NaN when x was not
        observed.
    """
    obs = layer.x_observed
    if obs is None or not len(obs):
        missing = np.full(len(layer.index), np.nan)
        return {"x_observed_min": missing, "x_observed_max": missing,
                "x_intercept_quantile": missing}
    with np.errstate(invalid="ignore"):
        below = (obs < layer.x_intercept[None, :]).mean(axis=0)
    return {"x_observed_min": obs.min(axis=0), "x_observed_max": obs.max(axis=0),
            "x_intercept_quantile": np.where(np.isfinite(layer.x_intercept), below, np.nan)}


def neuron_table(layers: list[Layer], groups: np.ndarray | None = None):
    """The columns of ``neurons.csv`` every run has, read from what was built and measured.

    ``max_rate_hz`` is the type's analytic rate at x = 1, in Hz (amplitude divided out);
    ``peak_rate_hz`` the observed one (:func:`peak_rates` over ``groups``, the samples' conditions);
    the observed range of x and the x-intercept's quantile in it (:func:`observed_x`).
    """
    import pandas as pd

    frames = []
    for layer in layers:
        nt = layer.neuron_type
        amp = float(getattr(nt, "amplitude", 1.0))
        max_rate = np.asarray(nt.rates(np.ones(1), layer.gain, layer.bias), float).ravel() / amp
        missing = np.full(len(layer.index), np.nan)
        frames.append(pd.DataFrame({
            "layer": layer.name, "neuron": layer.index, "neuron_type": type(nt).__name__,
            "gain": layer.gain, "bias": layer.bias, "threshold": layer.threshold,
            "x_intercept": layer.x_intercept, "max_rate_hz": max_rate,
            "mean_rate_hz": layer.rates.mean(axis=0) if layer.rates is not None else missing,
            "peak_rate_hz": (peak_rates(layer.rates, groups) if layer.rates is not None
                             else missing), **observed_x(layer)}))
    cols = ["layer", "neuron", "neuron_type", "gain", "bias", "threshold", "x_intercept",
            "max_rate_hz", "mean_rate_hz", "peak_rate_hz", "x_observed_min", "x_observed_max",
            "x_intercept_quantile"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def check_layer_names(cfg, names: list[str]) -> list[str]:
    """The layers ``analyses.layers`` names (all ``names`` when empty); refuses unknown ones."""
    wanted = list(cfg.analyses.layers) or list(names)
    for i, name in enumerate(wanted):
        if name not in names:
            raise UserError(f"analyses.layers[{i}]: no layer '{name}'; layers with neurons: "
                            f"{', '.join(names)}")
    return wanted


def select_layers(cfg, built) -> list[Layer]:
    """The analysed layers and neurons: ``analyses.layers`` (all by default) and a seeded sample
    of at most ``analyses.max_neurons`` per layer."""
    from framework import neurons

    names = [b.name for b in built]
    wanted = check_layer_names(cfg, names)
    rng = np.random.default_rng(cfg.seed)
    out = []
    for b in built:
        if b.name not in wanted:
            continue
        n = len(b.gain)
        idx = np.arange(n)
        if cfg.analyses.max_neurons and cfg.analyses.max_neurons < n:
            idx = np.sort(rng.choice(n, cfg.analyses.max_neurons, replace=False))
        out.append(Layer(
            name=b.name, neuron_type=b.neuron_type, threshold=neurons.threshold(b.neuron_type),
            index=idx, gain=b.gain[idx], bias=b.bias[idx],
            rates=None if b.rates is None else b.rates[:, idx],
            spikes=None if b.spikes is None else b.spikes[..., idx],
            **{k: None if getattr(b, k, None) is None else getattr(b, k)[..., idx]
               for k in ("x", "binned_rates", "binned_x")}))
    return out
