"""The plugin face: what an analysis plugin subclasses, receives, returns and may call.

A plugin is a subclass of :class:`Analysis` with a unique ``name`` and a dataclass ``Config`` (its
node ``analyses.<name>`` in the config; numeric bounds with :func:`bounded`). Defining the class
registers it in :data:`ANALYSES`; :mod:`framework.plugin_host` finds plugin modules, picks the
ones a run uses and runs them. A plugin imports this module and nothing else of the framework, and
must not import TensorFlow: plugins are imported while configs are validated, before TensorFlow.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from framework.data.base import angle_diff
from framework.errors import UserError
from framework.neurons import x_intercepts
from framework.registry import Registry
from framework.schema import bounded
from framework.simulation import simulate_constant

__all__ = ["ANALYSES", "Analysis", "Context", "Layer", "NoConfig", "Result", "UserError",
           "angle_diff", "bounded", "observed_x", "peak_rates", "sample_groups", "x_intercepts"]

#: every analysis plugin, by name; filled by :meth:`Analysis.__init_subclass__`
ANALYSES: Registry[type[Analysis]] = Registry("analysis")

#: what x means for a converted layer (a native ensemble passes its own, see ``Context.x_label``)
X_LABEL = "x (the layer's weighted input, without its bias)"


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
        """Each neuron's x-intercept, (J_th − bias)/gain, x units (inf where gain = 0)."""
        return x_intercepts(self.gain, self.bias, self.threshold)

    @property
    def x_observed(self) -> np.ndarray | None:
        """The observed distribution of each neuron's x, shape (m, n): one value per sample, or
        per sample and time bin for sequences (the input changes from bin to bin); None when the
        run did not observe x."""
        if self.binned_x is not None:
            return self.binned_x.reshape(-1, self.binned_x.shape[-1])
        return self.x


@dataclass
class Context:
    """Everything an analysis may read: data, layers as built and simulated, and settings.

    Attributes
    ----------
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
    seed : int
        The run's seed: anything random in an analysis draws from it.
    simulate_constant : callable
        ``simulate_constant(neuron_type, gain, bias, x, n_steps, dt=, seed=) -> rates`` (Hz,
        shape (m, n)) simulates spiking neurons on constant inputs ``x``; used by response
        curves (:func:`framework.simulation.simulate_constant` unless a test stands in for it).
    bin_s : float
        Sequences: simulated time per time bin of the input, s (0 for static inputs).
    outputs : ndarray, shape (len(sample), n_outputs) or None
        The spiking network's read-out on the simulated samples (None when there is none).
    x_label : str
        What x means for this network, for axis labels.
    """

    data: Any
    layers: list[Layer]
    dt: float
    n_steps: int
    sample: np.ndarray
    seed: int = 0
    simulate_constant: Callable[..., np.ndarray] = simulate_constant
    bin_s: float = 0.0
    outputs: np.ndarray | None = None
    x_label: str = X_LABEL


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register every subclass that sets a ``name`` in :data:`ANALYSES`."""
        super().__init_subclass__(**kwargs)
        if cls.name:
            ANALYSES.register(cls.name)(cls)

    @classmethod
    def applies(cls, data: Any) -> str | None:
        """None if the analysis can run on ``data``, else the reason it cannot."""
        return None

    def run(self, ctx: Context, cfg: Any) -> Result:  # pragma: no cover - abstract
        """Analyse ``ctx`` with this analysis's options ``cfg`` (an instance of ``Config``)."""
        raise NotImplementedError


def sample_groups(ctx: Context) -> np.ndarray | None:
    """Each simulated sample's condition: its direction (degrees, NaN for none) where the data
    has directions, its class for classification, else None (also without data)."""
    data = ctx.data
    if data is None:
        return None
    groups: np.ndarray | None = None
    if data.has_directions:
        groups = np.round(np.asarray(data.dir_test, dtype=float)[ctx.sample], 6)
    elif data.classification:
        groups = np.asarray(data.y_test, dtype=float)[ctx.sample]
    return groups


def peak_rates(rates: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Each neuron's observed peak rate (Hz): the highest mean over the samples of one condition
    (direction or class; samples without one left out), else the highest single-sample rate.

    Parameters
    ----------
    rates : ndarray, shape (n_samples, n)
        Rates, Hz.
    groups : ndarray, shape (n_samples,) or None
        Each sample's condition (:func:`sample_groups`); NaN for none.

    Returns
    -------
    ndarray, shape (n,)
        Peak rate per neuron, Hz.
    """
    if groups is None:
        return np.asarray(rates.max(axis=0))
    keep = np.isfinite(groups)
    means = [rates[keep & (groups == g)].mean(axis=0) for g in np.unique(groups[keep])]
    return np.asarray(np.max(means, axis=0) if means else rates.max(axis=0))


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
