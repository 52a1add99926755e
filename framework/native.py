"""LIF neurons with an adjustable firing threshold, native in both Nengo and NengoDL.

:class:`ThresholdLIFRate` and :class:`ThresholdLIF` fire once their input current J exceeds
``threshold`` (J_th, dimensionless like every Nengo current) instead of Nengo's fixed 1. The
membrane is normalised so that it still spikes at v = 1::

    tau_rc dv/dt = J / J_th - v,    r(J) = amplitude / (tau_ref + tau_rc log1p(J_th / (J - J_th)))

for J > J_th (else 0): the LIF of ``J / J_th``. With ``threshold == 1`` both types compute exactly
what ``nengo.LIFRate`` / ``nengo.LIF`` compute (the division by 1 is exact in floating point).

NengoDL only runs types listed in ``SimNeuronsBuilder.TF_NEURON_IMPL`` as TensorFlow ops; any other
type, subclasses of LIF included, falls back to a Python step with no gradient.
:func:`register_tf_builders` adds :class:`ThresholdLIFRateBuilder` / :class:`ThresholdLIFBuilder`
(subclasses of NengoDL's LIF builders that scale J by 1/J_th), so training with
:class:`ThresholdLIF` uses the LIF-rate approximation (or SoftLIF with ``lif_smoothing``) for its
gradient exactly as ``nengo.LIF`` does. The builders subclass TensorFlow-backed classes, so they
are created on first use: importing this module imports neither TensorFlow nor NengoDL.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import nengo
import numpy as np
import numpy.typing as npt
from nengo.params import NumberParam

__all__ = [
    "ThresholdLIFRate",
    "ThresholdLIF",
    "rate_version",
    "register_tf_builders",
    "tf_builders",
]

# Nengo ships no type hints, so its classes are ``Any`` to mypy: subclassing them is what these
# neuron types are (hence the ``misc`` ignores below), and their inherited attributes are untyped.


def _threshold_lif_rate(neuron_type: Any, J: np.ndarray, output: np.ndarray) -> None:
    """Write the threshold-LIF rate (Hz, times amplitude) of currents ``J`` into ``output``."""
    th = neuron_type.threshold
    # nengo.LIFRate.step is the J_th = 1 case; skipping the copy keeps threshold 1 bit-identical
    nengo.LIFRate.step(neuron_type, dt=1.0, J=J if th == 1 else J / th, output=output)


def _register_if_nengo_dl_loaded() -> None:
    # A type created after NengoDL is imported is registered at once, so a caller who forgot
    # register_tf_builders() cannot silently get the gradient-free Python fallback. Nothing is
    # imported here: when NengoDL is not loaded yet, the caller must register before building.
    if "nengo_dl.neuron_builders" in sys.modules:
        register_tf_builders()


class _Threshold:
    """What both threshold types share: the ``threshold`` parameter (J_th) and the tuning maths
    of the LIF of ``J / J_th``. Listed before the Nengo base class, whose methods it overrides."""

    threshold = NumberParam("threshold", low=0, low_open=True)
    #: J = gain·x + bias, from the Nengo base class (declared for the type checker only)
    current: Callable[[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike], np.ndarray]

    def gain_bias(self, max_rates: npt.ArrayLike, intercepts: npt.ArrayLike
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Gain (J per unit x) and bias (J) that give ``max_rates`` (Hz) at x = 1 and fire from
        x = ``intercepts``."""
        # LIF's gain/bias put J/J_th at 1 at the intercept and at the LIF current for max_rate at
        # x = 1; scaling both by J_th does the same for J itself.
        gain, bias = nengo.LIFRate.gain_bias(self, max_rates, intercepts)
        th = self.threshold
        return gain * th, bias * th

    def max_rates_intercepts(self, gain: npt.ArrayLike, bias: npt.ArrayLike
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`gain_bias`: rate (Hz) at x = 1 and x_intercept = (J_th − bias)/gain."""
        th = self.threshold
        gain = np.asarray(gain, dtype=float)
        bias = np.asarray(bias, dtype=float)
        max_rates, intercepts = nengo.LIFRate.max_rates_intercepts(self, gain / th, bias / th)
        return max_rates, intercepts

    def rates(self, x: npt.ArrayLike, gain: npt.ArrayLike, bias: npt.ArrayLike) -> np.ndarray:
        """Analytic rates (Hz, times amplitude) for inputs ``x`` with J = gain·x + bias."""
        J = self.current(x, gain, bias)
        out = np.zeros_like(J)
        _threshold_lif_rate(self, J, out)
        return out


class ThresholdLIFRate(_Threshold, nengo.LIFRate):  # type: ignore[misc]  # nengo has no types
    """Non-spiking LIF neuron that starts to fire at input current ``threshold``.

    Parameters
    ----------
    tau_rc : float
        Membrane RC time constant (s).
    tau_ref : float
        Absolute refractory period (s).
    amplitude : float
        Scaling factor on the output rate (dimensionless).
    threshold : float
        J_th (dimensionless current, > 0): the rate is
        ``amplitude / (tau_ref + tau_rc * log1p(J_th / (J - J_th)))`` Hz for J > J_th, else 0.
    initial_state : dict, optional
        As for :class:`nengo.LIFRate` (it has no state).

    Notes
    -----
    ``gain_bias`` and ``max_rates_intercepts`` ignore ``amplitude``, like Nengo's: ``max_rates``
    are the rates (Hz) of the amplitude-1 neuron.
    """

    def __init__(self, tau_rc: float = 0.02, tau_ref: float = 0.002, amplitude: float = 1,
                 threshold: float = 1.0, initial_state: dict[str, Any] | None = None) -> None:
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude,
                         initial_state=initial_state)
        self.threshold = threshold
        _register_if_nengo_dl_loaded()

    def step(self, dt: float, J: np.ndarray, output: np.ndarray) -> None:
        """Set ``output`` to the rate (Hz, times amplitude) for currents ``J``."""
        _threshold_lif_rate(self, J, output)

    def rate_type(self) -> ThresholdLIFRate:
        """The rate version of this type: itself."""
        return self


class ThresholdLIF(_Threshold, nengo.LIF):  # type: ignore[misc]  # nengo has no types
    """Spiking LIF neuron that starts to fire at input current ``threshold``.

    The membrane integrates ``tau_rc dv/dt = J / J_th - v`` and spikes at v = 1, so its rate for
    a constant J is that of :class:`ThresholdLIFRate`. Nengo (``nengo.Simulator``) and NengoDL
    (after :func:`register_tf_builders`) both simulate it natively.

    Parameters
    ----------
    tau_rc : float
        Membrane RC time constant (s).
    tau_ref : float
        Absolute refractory period (s).
    min_voltage : float
        Floor of the normalised membrane voltage (dimensionless, <= 0).
    amplitude : float
        Scaling factor on the output spikes (dimensionless).
    threshold : float
        J_th (dimensionless current, > 0), the current at which the neuron starts to fire.
    initial_state : dict, optional
        Initial ``voltage`` (normalised) and ``refractory_time`` (s), as for :class:`nengo.LIF`.
    """

    def __init__(self, tau_rc: float = 0.02, tau_ref: float = 0.002, min_voltage: float = 0,
                 amplitude: float = 1, threshold: float = 1.0,
                 initial_state: dict[str, Any] | None = None) -> None:
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, min_voltage=min_voltage,
                         amplitude=amplitude, initial_state=initial_state)
        self.threshold = threshold
        _register_if_nengo_dl_loaded()

    def step(self, dt: float, J: np.ndarray, output: np.ndarray, voltage: np.ndarray,
             refractory_time: np.ndarray) -> None:
        """Advance the normalised membrane by ``dt`` (s); ``output`` gets amplitude/dt per spike."""
        th = self.threshold
        super().step(dt, J if th == 1 else J / th, output, voltage, refractory_time)

    def rate_type(self) -> ThresholdLIFRate:
        """The non-spiking type with the same parameters."""
        return ThresholdLIFRate(tau_rc=self.tau_rc, tau_ref=self.tau_ref,
                                amplitude=self.amplitude, threshold=self.threshold)


def rate_version(neuron_type: nengo.neurons.NeuronType) -> nengo.neurons.NeuronType:
    """The non-spiking counterpart of ``neuron_type``, with the same parameters.

    ``ThresholdLIF`` -> ``ThresholdLIFRate``, ``nengo.LIF`` -> ``nengo.LIFRate``,
    ``nengo.AdaptiveLIF`` -> ``nengo.AdaptiveLIFRate``, ``nengo.SpikingRectifiedLinear`` ->
    ``nengo.RectifiedLinear`` (and NengoDL's ``SpikingLeakyReLU`` -> ``LeakyReLU``). Any other
    type, rate types and unknown subclasses included, is returned unchanged: exact type matches
    only, because a subclass may change the dynamics the rate type would drop.
    """
    t = type(neuron_type)
    if t is ThresholdLIF:
        return neuron_type.rate_type()
    if t is nengo.LIF:
        return nengo.LIFRate(tau_rc=neuron_type.tau_rc, tau_ref=neuron_type.tau_ref,
                             amplitude=neuron_type.amplitude)
    if t is nengo.AdaptiveLIF:
        return nengo.AdaptiveLIFRate(tau_n=neuron_type.tau_n, inc_n=neuron_type.inc_n,
                                     tau_rc=neuron_type.tau_rc, tau_ref=neuron_type.tau_ref,
                                     amplitude=neuron_type.amplitude)
    if t is nengo.SpikingRectifiedLinear:
        return nengo.RectifiedLinear(amplitude=neuron_type.amplitude)
    if t.__module__ == "nengo_dl.neurons" and t.__name__ == "SpikingLeakyReLU":
        from nengo_dl.neurons import LeakyReLU  # loaded already: the instance came from it

        return LeakyReLU(negative_slope=neuron_type.negative_slope,
                         amplitude=neuron_type.amplitude)
    return neuron_type


# ---------------------------------------------------------------------------------------------
# NengoDL builders (created lazily: they subclass TensorFlow-backed classes, so each factory
# imports its NengoDL base class when first called)

_TF_BUILDERS: dict[str, type] = {}


def _threshold_constant(builder: Any, signals: Any) -> Any:
    """The per-neuron J_th of a builder's operators as a TensorFlow constant, gathered like
    ``tau_rc``; None when all are 1, so J passes through as is."""
    if all(op.neurons.threshold == 1 for op in builder.ops):
        return None
    return signals.op_constant([op.neurons for op in builder.ops],
                               [op.J.shape[0] for op in builder.ops],
                               "threshold", signals.dtype)


def _rate_builder() -> type:
    """The NengoDL builder class of :class:`ThresholdLIFRate` (imports NengoDL)."""
    from nengo_dl.neuron_builders import LIFRateBuilder

    class ThresholdLIFRateBuilder(LIFRateBuilder):  # type: ignore[misc]  # nengo-dl has no types
        """Build a group of :class:`ThresholdLIFRate` operators: LIFRate of J / J_th."""

        def build_pre(self, signals: Any, config: Any) -> None:
            super().build_pre(signals, config)
            self.threshold = _threshold_constant(self, signals)

        def step(self, J: Any, dt: Any) -> Any:
            return super().step(J if self.threshold is None else J / self.threshold, dt)

    return ThresholdLIFRateBuilder


def _spiking_builder() -> type:
    """The NengoDL builder class of :class:`ThresholdLIF` (imports NengoDL)."""
    from nengo_dl.neuron_builders import LIFBuilder

    class ThresholdLIFBuilder(LIFBuilder):  # type: ignore[misc]  # nengo-dl has no types
        """Build a group of :class:`ThresholdLIF` operators: LIF of J / J_th.

        Spikes come from ``LIFBuilder.step``; training (``sim.fit``) uses
        ``LIFBuilder.training_step``, the LIFRate (or SoftLIFRate with ``lif_smoothing``)
        approximation, on the same scaled current, so the gradient is nengo.LIF's times 1/J_th.
        """

        def build_pre(self, signals: Any, config: Any) -> None:
            super().build_pre(signals, config)
            self.threshold = _threshold_constant(self, signals)

        def _scale(self, J: Any) -> Any:
            return J if self.threshold is None else J / self.threshold

        def step(self, J: Any, dt: Any, voltage: Any, refractory_time: Any) -> Any:
            return super().step(self._scale(J), dt, voltage, refractory_time)

        def training_step(self, J: Any, dt: Any, **state: Any) -> Any:
            # LIFBuilder.training_step calls LIFRateBuilder.step by class, so J is scaled once
            return super().training_step(self._scale(J), dt, **state)

    return ThresholdLIFBuilder


def tf_builders() -> dict[str, type]:
    """The NengoDL builder classes by name, created on first call (imports NengoDL).

    Returns
    -------
    dict
        ``{"ThresholdLIFRateBuilder": ..., "ThresholdLIFBuilder": ...}``; the same classes on
        every call, so registration is idempotent.
    """
    if _TF_BUILDERS:
        return _TF_BUILDERS
    for cls in (_rate_builder(), _spiking_builder()):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        _TF_BUILDERS[cls.__name__] = cls
    return _TF_BUILDERS


def register_tf_builders() -> None:
    """Add the native NengoDL builders for both types to ``SimNeuronsBuilder.TF_NEURON_IMPL``.

    Idempotent. Call before building a ``nengo_dl.Simulator`` (types created after NengoDL is
    imported also register themselves); imports NengoDL and TensorFlow.
    """
    from nengo_dl.neuron_builders import SimNeuronsBuilder

    builders = tf_builders()
    SimNeuronsBuilder.TF_NEURON_IMPL[ThresholdLIFRate] = builders["ThresholdLIFRateBuilder"]
    SimNeuronsBuilder.TF_NEURON_IMPL[ThresholdLIF] = builders["ThresholdLIFBuilder"]


def __getattr__(name: str) -> Any:
    # lazy module attributes for the builder classes (PEP 562)
    if name in ("ThresholdLIFRateBuilder", "ThresholdLIFBuilder"):
        return tf_builders()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
