"""Neuron types by name: ``build(cfg) -> nengo.neurons.NeuronType`` and each type's J_th.

Only types with TensorFlow builders in nengo-dl's ``TF_NEURON_IMPL`` run natively; a type outside
it silently falls back to a slow Python path with no gradient. ``threshold_lif`` therefore ships
its own builders (:mod:`framework.native`), registered before any simulator is built.
"""
from __future__ import annotations

from framework.registry import Registry

NEURONS: Registry = Registry("neuron type")


@NEURONS.register("relu")
def relu(cfg):
    import nengo

    return nengo.RectifiedLinear(amplitude=cfg.amplitude)


@NEURONS.register("spiking_relu")
def spiking_relu(cfg):
    import nengo

    return nengo.SpikingRectifiedLinear(amplitude=cfg.amplitude)


@NEURONS.register("lif")
def lif(cfg):
    import nengo

    return nengo.LIF(tau_rc=cfg.tau_rc, tau_ref=cfg.tau_ref, amplitude=cfg.amplitude)


@NEURONS.register("lif_rate")
def lif_rate(cfg):
    import nengo

    return nengo.LIFRate(tau_rc=cfg.tau_rc, tau_ref=cfg.tau_ref, amplitude=cfg.amplitude)


@NEURONS.register("threshold_lif")
def threshold_lif(cfg):
    from framework.native import ThresholdLIF

    return ThresholdLIF(tau_rc=cfg.tau_rc, tau_ref=cfg.tau_ref, amplitude=cfg.amplitude,
                        threshold=cfg.threshold)


def build(cfg):
    """The Nengo neuron type the ``neuron`` config node describes."""
    return NEURONS.get(cfg.name, "neuron")(cfg)


def threshold(neuron_type) -> float:
    """J_th: the input current at which ``neuron_type`` starts to fire.

    1 for Nengo's LIF family (their rate is zero for J <= 1), 0 for the rectified-linear family,
    and the type's own ``threshold`` where it has one.
    """
    import nengo

    if hasattr(neuron_type, "threshold"):
        return float(neuron_type.threshold)
    if isinstance(neuron_type, (nengo.LIF, nengo.LIFRate)):
        return 1.0
    return 0.0


def is_spiking(neuron_type) -> bool:
    return bool(getattr(neuron_type, "spiking", False))
