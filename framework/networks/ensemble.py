"""``model=ensemble``: a native Nengo ensemble driven by a ramp of inputs, no training.

The ensemble is the smallest network in which thresholds can be looked at directly: each neuron
receives J = gain·x + bias, with x stepped through ``model.input_low … model.input_high``
(``model.n_inputs`` values, each held for ``simulation.n_steps`` steps of ``simulation.dt``). The
ramp drives the neurons directly (a connection to ``ens.neurons``, to which Nengo applies each
neuron's gain), so x is the input along each neuron's preferred direction, as in
``nengo.utils.ensemble.response_curves``, and a neuron starts to fire where x crosses its
x-intercept (J_th − bias)/gain. ``simulation.scale_firing_rates`` and ``simulation.synapse``
belong to converted networks and are not used here.

:func:`framework.simulation.simulate_constant` is the measurement behind response curves.
"""
from __future__ import annotations

import time

import numpy as np

from framework.errors import UserError, check_interrupt
from framework.simulation import simulate_constant


def ramp_data(ramp: np.ndarray):
    """The ramp as a :class:`framework.data.base.Data`: each input value is one test sample."""
    from framework.data.base import Data

    x = ramp.reshape(-1, 1).astype(np.float32)
    return Data(name="ramp", task="regression", x_train=x, y_train=x, x_test=x, y_test=x,
                n_outputs=1, source=f"ramp {ramp[0]:g}..{ramp[-1]:g} ({len(ramp)} values)")


def build_network(cfg, neuron_type):
    """The ensemble, its ramp input and a probe on its neurons.

    Returns
    -------
    (nengo.Network, nengo.Ensemble, nengo.Probe, ndarray)
        The network, the ensemble, the probe of its neurons' output and the ramp values.
    """
    import nengo

    m, s = cfg.model, cfg.simulation
    ramp = np.linspace(m.input_low, m.input_high, m.n_inputs)
    with nengo.Network(seed=cfg.seed, label="ensemble") as net:
        if m.gain is not None:
            dist = dict(gain=np.asarray(m.gain, float), bias=np.asarray(m.bias, float))
        else:  # the type's gain_bias turns intercepts and max rates into gains and biases
            dist = dict(intercepts=nengo.dists.Uniform(m.intercept_low, m.intercept_high),
                        max_rates=nengo.dists.Uniform(m.max_rate_low, m.max_rate_high))
        ens = nengo.Ensemble(m.n_neurons, m.dimensions, neuron_type=neuron_type, label="ensemble",
                             **dist)
        stim = nengo.Node(nengo.processes.PresentInput(ramp[:, None], s.n_steps * s.dt),
                          label="ramp")
        # straight into the neurons: Nengo multiplies by each neuron's gain, so J = gain·x + bias
        nengo.Connection(stim, ens.neurons, transform=np.ones((m.n_neurons, 1)), synapse=None)
        probe = nengo.Probe(ens.neurons, synapse=None)
    return net, ens, probe, ramp


def run_ensemble(cfg, console):
    """Build and simulate the ensemble; return what the analyses read.

    Parameters
    ----------
    cfg : framework.config.Config
        Uses ``model`` (an :class:`framework.config.EnsembleModel`), ``neuron``,
        ``simulation.n_steps``/``dt`` and ``seed``.
    console : framework.progress.Console

    Returns
    -------
    (framework.analysis.Context, dict)
        The context has one layer, ``ensemble``, with the gains and biases as built, ``rates``
        (n_inputs, n) in Hz (each input's hold) and, for spiking types, ``spikes`` of shape
        (1, n_inputs · n_steps, n): the whole ramp as one spike train. ``data.x_test`` is the
        ramp. The metrics are ``time/simulate_s``.
    """
    import nengo

    from framework import neurons
    from framework.analysis import Context, select_layers
    from framework.simulation import BuiltLayer

    t0 = time.perf_counter()
    m, s = cfg.model, cfg.simulation
    neuron_type = neurons.build(cfg.neuron)
    net, ens, probe, ramp = build_network(cfg, neuron_type)
    console.stage("simulate", f"{m.n_neurons} {cfg.neuron.name} neurons, {m.n_inputs} inputs "
                  f"{m.input_low:g}..{m.input_high:g}, {s.n_steps} steps each")
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = nengo.Simulator(net, dt=s.dt, progress_bar=False, seed=cfg.seed)
    except nengo.exceptions.BuildError as ex:
        key = "model.gain" if m.gain is not None else "model.intercept_high"
        raise UserError(f"{key}: Nengo cannot build the ensemble: "
                        f"{' '.join(str(ex).split())}") from None
    bar = console.bar("simulate", m.n_inputs)
    with sim:
        for i in range(m.n_inputs):
            check_interrupt()
            sim.run_steps(s.n_steps)
            bar.update(i + 1)
        out = sim.data[probe]  # (n_inputs · n_steps, n): output per step
        gain = np.asarray(sim.data[ens].gain, float)
        bias = np.asarray(sim.data[ens].bias, float)
    amp = float(getattr(neuron_type, "amplitude", 1.0))
    per_input = out.reshape(m.n_inputs, s.n_steps, m.n_neurons)
    rates = per_input.mean(axis=1) / amp  # mean output ÷ amplitude = Hz
    spikes = None
    if neurons.is_spiking(neuron_type):
        spikes = (out * (s.dt / amp)).astype(np.float32)[None]  # spikes per step
    # the ramp drives every neuron straight into J = gain·x + bias: x is the ramp itself
    observed = np.repeat(ramp[:, None], m.n_neurons, axis=1)
    built = [BuiltLayer(name="ensemble", neuron_type=neuron_type, gain=gain, bias=bias,
                        rates=rates, spikes=spikes, x=observed)]
    ctx = Context(cfg=cfg, data=ramp_data(ramp), layers=select_layers(cfg, built), dt=s.dt,
                  n_steps=s.n_steps, sample=np.arange(m.n_inputs), seed=cfg.seed,
                  simulate_constant=simulate_constant)
    ctx.extras["ramp"] = ramp
    return ctx, {"time/simulate_s": time.perf_counter() - t0}
