"""Neuron types: one schema class per ``neuron`` option, registered by name, that builds its Nengo
type; and each type's J_th.

Only types with TensorFlow builders in nengo-dl's ``TF_NEURON_IMPL`` run natively; a type outside
it silently falls back to a slow Python path with no gradient. ``threshold_lif`` therefore ships
its own builders (:func:`framework.native.tf_builders`), registered before any simulator is
built.
"""
from __future__ import annotations

from dataclasses import dataclass

import nengo
import numpy as np

from framework.native import ThresholdLIF
from framework.registry import Registry
from framework.schema import MISSING, bounded, option


@dataclass
class NeuronConfig:
    """The ``neuron`` node every option shares."""

    name: str = MISSING
    amplitude: float = bounded(1.0, gt=0.0)  # output per spike·s⁻¹ (scaled by 1/scale_firing_rates)

    def build(self) -> nengo.neurons.NeuronType:
        """The Nengo neuron type this node describes."""
        raise NotImplementedError


#: the ``neuron`` options, by name
NEURONS: Registry[type[NeuronConfig]] = Registry("neuron type")


@option(NEURONS)
@dataclass
class ReluNeuron(NeuronConfig):
    name: str = "relu"

    def build(self) -> nengo.neurons.NeuronType:
        return nengo.RectifiedLinear(amplitude=self.amplitude)


@option(NEURONS)
@dataclass
class SpikingReluNeuron(NeuronConfig):
    name: str = "spiking_relu"

    def build(self) -> nengo.neurons.NeuronType:
        return nengo.SpikingRectifiedLinear(amplitude=self.amplitude)


@option(NEURONS)
@dataclass
class LIFNeuron(NeuronConfig):
    name: str = "lif"
    tau_rc: float = bounded(0.02, gt=0.0)  # membrane time constant, s
    tau_ref: float = bounded(0.002, ge=0.0)  # absolute refractory period, s

    def build(self) -> nengo.neurons.NeuronType:
        return nengo.LIF(tau_rc=self.tau_rc, tau_ref=self.tau_ref, amplitude=self.amplitude)


@option(NEURONS)
@dataclass
class LIFRateNeuron(LIFNeuron):
    name: str = "lif_rate"

    def build(self) -> nengo.neurons.NeuronType:
        return nengo.LIFRate(tau_rc=self.tau_rc, tau_ref=self.tau_ref, amplitude=self.amplitude)


@option(NEURONS)
@dataclass
class ThresholdLIFNeuron(LIFNeuron):
    name: str = "threshold_lif"
    threshold: float = bounded(1.0, gt=0.0)  # J_th, the input current at which firing starts

    def build(self) -> nengo.neurons.NeuronType:
        return ThresholdLIF(tau_rc=self.tau_rc, tau_ref=self.tau_ref, amplitude=self.amplitude,
                            threshold=self.threshold)


def build(cfg: NeuronConfig) -> nengo.neurons.NeuronType:
    """The Nengo neuron type the ``neuron`` config node describes."""
    return cfg.build()


def threshold(neuron_type: nengo.neurons.NeuronType) -> float:
    """J_th: the input current at which ``neuron_type`` starts to fire.

    1 for Nengo's LIF family (their rate is zero for J <= 1), 0 for the rectified-linear family,
    and the type's own ``threshold`` where it has one.
    """
    if hasattr(neuron_type, "threshold"):
        return float(neuron_type.threshold)
    if isinstance(neuron_type, (nengo.LIF, nengo.LIFRate)):
        return 1.0
    return 0.0


def is_spiking(neuron_type: nengo.neurons.NeuronType) -> bool:
    """Whether the type emits spikes (rather than rates)."""
    return bool(getattr(neuron_type, "spiking", False))


def x_intercepts(gain: np.ndarray, bias: np.ndarray, j_th: float) -> np.ndarray:
    """x at which J = gain·x + bias reaches J_th: (J_th − bias) / gain (inf where gain = 0)."""
    gain = np.asarray(gain, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gain != 0, (j_th - np.asarray(bias, dtype=float)) / gain, np.inf)
