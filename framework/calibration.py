"""Stage 4b, calibration: correct the converted network's biases on training samples.

A spiking neuron run for a finite time does not deliver its rate network's mean output: the first
spike comes late (the voltage starts below threshold), the synapse filters the onset, and each
layer's error is passed on to the next. Li et al. 2021 ("A free lunch from ANN: towards efficient,
accurate spiking neural networks calibration", ICML; their "light" calibration) correct this by
shifting each layer's bias by the difference between the ANN's mean activation and the SNN's mean
output on calibration data, one layer after the other so that each correction sees the corrected
layers before it. Here the reference is the rate network (the neurons' rate versions, which is the
Keras model itself for a ReLU network converted to spiking ReLU) and the shift is per neuron.

On the same training samples, :func:`fit_readout` chooses the read-out window
(``simulation.readout=fitted``): the mean of the last k steps that scores best there.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from framework.batches import as_steps, pad_to, readout_bins
from framework.conversion import Conversion, neuron_layers
from framework.data.base import Data
from framework.errors import check_interrupt
from framework.simulation import Readout, SimulationConfig, held, seeded_subset, x_window


def calibration_inputs(data: Data, samples: int, seed: int) -> np.ndarray:
    """A seeded subset of ``samples`` training inputs (all when there are fewer), with a time
    axis: (n, 1, features) for static data, (n, bins, channels) for sequences."""
    idx = seeded_subset(len(data.x_train), samples, seed)
    return as_steps(data.x_train[idx], data.sequence)


def layer_means(model: Any, params: Path, x: np.ndarray, s: SimulationConfig, conv: Conversion,
                rate: bool) -> dict[str, np.ndarray]:
    """Each converted layer's mean output per neuron (activation units: the neuron's output
    times its amplitude, which the Converter set to 1/scale) over the samples ``x`` and time.

    ``rate``: the rate network, one step per input (time) bin, no synapses, over every step; else
    the spiking network, each bin held for ``ceil(n_steps / bins)`` steps, with
    ``simulation.synapse``, over the steps the read-out reads (``simulation.readout``): the onset
    before them is not what the output is read from, and correcting the whole trial's mean would
    push the read-out window too high.
    """
    import nengo

    converter = conv.convert(model, synapse=None if rate else s.synapse, rate=rate)
    inp = converter.inputs[model.inputs[0]]
    layers = neuron_layers(converter, model)
    with converter.net:
        probes = {name: nengo.Probe(neurons) for name, neurons in layers.items()}
    steps = x if rate else held(x, s.n_steps)
    window = steps.shape[1] if rate else read_steps(s, steps.shape[1], x.shape[1])
    sums = {name: np.zeros(neurons.size_out) for name, neurons in layers.items()}
    for res in _batches(conv, converter, model, params, steps, s.minibatch_size, rate, inp):
        for name, probe in probes.items():
            sums[name] += res[probe][:, -window:].mean(axis=1).sum(axis=0)
    return {name: total / len(x) for name, total in sums.items()}


def _batches(conv: Conversion, converter: Any, model: Any, params: Path, steps: np.ndarray,
             minibatch_size: int, rate: bool, inp: Any) -> Iterator[dict[Any, np.ndarray]]:
    """Simulate ``steps`` (n, steps, features) through ``converter``'s network a minibatch at a
    time; each batch's probe data, without the padding of the last one."""
    n = len(steps)
    mb = min(minibatch_size, n)
    xp = pad_to(steps, mb)
    with conv.simulator(converter, model, params, mb, rate=rate) as sim:
        for b in range(len(xp) // mb):
            check_interrupt()
            hi = min((b + 1) * mb, n) - b * mb
            res = sim.predict_on_batch({inp: xp[b * mb:(b + 1) * mb]})
            yield {probe: value[:hi] for probe, value in res.items()}


def outputs(model: Any, params: Path, x: np.ndarray, s: SimulationConfig, conv: Conversion,
            rate: bool) -> np.ndarray:
    """The network's output over time, (n, steps, outputs), for the samples ``x`` (n, 1,
    features): the rate network's one step (no synapses), or the spiking network's
    ``simulation.n_steps`` steps with each input held, ``simulation.synapse`` and ``conv``'s
    calibration shifts (as the run simulates it)."""
    converter = conv.convert(model, synapse=None if rate else s.synapse, rate=rate)
    inp = converter.inputs[model.inputs[0]]
    out_p = converter.outputs[model.outputs[0]]
    steps = x if rate else held(x, s.n_steps)
    return np.concatenate([res[out_p] for res in _batches(
        conv, converter, model, params, steps, s.minibatch_size, rate, inp)])


def read_steps(s: SimulationConfig, steps: int, bins: int) -> int:
    """How many of a trial's last ``steps`` the calibration reads: one (``last``),
    ``readout_steps`` (``mean``; a sequence's read-out covers whole bins of ``steps / bins``
    steps), or the last fifth (``fitted``, whose window is chosen after the calibration)."""
    if s.readout == Readout.last:
        return 1
    if bins > 1:
        return readout_bins(bins, s) * (steps // bins)
    return min(x_window(s, steps), steps)


def calibrate(model: Any, params: Path, data: Data, s: SimulationConfig, conv: Conversion,
              samples: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Li et al. 2021's light (bias) calibration, layer by layer.

    For each converted layer in order: simulate the spiking network (with the shifts found so far)
    on ``samples`` training inputs, and shift each neuron's input by the rate network's mean output
    minus the spiking network's. A ReLU-family neuron's output moves one for one with its input
    (in activation units), so the shift removes the mean error; a LIF neuron's moves by its rate
    curve's slope, so the shift corrects most of it.

    Parameters
    ----------
    model : keras.Model
    params : pathlib.Path
        The trained parameters (``sim.save_params``).
    data : framework.data.base.Data
        Its training split supplies the calibration inputs.
    s : SimulationConfig
        Steps, synapse and minibatch of the spiking simulation.
    conv : Conversion
        Neuron type, scales and seed (its own ``calibration`` is ignored).
    samples : int
        Training samples simulated (``conversion.calibration_samples``).

    Returns
    -------
    shifts : dict
        Layer name -> per-neuron input shift, activation units (:attr:`Conversion.calibration`).
    metrics : dict
        ``conversion/<layer>/calibration_error``: the mean absolute error of the layer's mean
        output before its shift, activation units (the shift's mean size).
    """
    x = calibration_inputs(data, samples, conv.seed)
    target = layer_means(model, params, x, s, dataclasses.replace(conv, calibration={}),
                         rate=True)
    shifts: dict[str, np.ndarray] = {}
    metrics: dict[str, float] = {}
    for name in target:  # the converted layers in the network's order
        got = layer_means(model, params, x, s, dataclasses.replace(conv, calibration=dict(shifts)),
                          rate=False)
        shifts[name] = target[name] - got[name]
        metrics[f"conversion/{name}/calibration_error"] = float(np.abs(shifts[name]).mean())
    return shifts, metrics


def fit_readout(model: Any, params: Path, data: Data, s: SimulationConfig, conv: Conversion,
                samples: int) -> tuple[int, dict[str, float]]:
    """``simulation.readout=fitted``: the read-out window, the mean of the last k of
    ``simulation.n_steps`` steps, that scores best on training samples.

    The spiking network (with ``conv``'s calibration shifts) is simulated once on ``samples``
    training inputs, and every k from 1 to n_steps is scored from the same outputs: the task's
    score on the training targets (accuracy for classes, else the MSE), ties broken by the
    closeness (MSE) of the read-out to the rate network's outputs, then by the shorter window. A
    long window averages more spikes but reaches back into the onset, before the synapses have
    let the output settle; a short one reads settled output but few spikes. Which matters more
    depends on the rates and the steps, so it is measured here, on samples the run's scores are
    not computed on (docs/frontier.md).

    Parameters
    ----------
    model : keras.Model
    params : pathlib.Path
        The trained parameters (``sim.save_params``).
    data : framework.data.base.Data
        Static inputs; its training split supplies the samples and their targets.
    s : SimulationConfig
        Steps, synapse and minibatch of the spiking simulation.
    conv : Conversion
        Neuron type, scales, seed and calibration shifts.
    samples : int
        Training samples simulated (``conversion.calibration_samples``).

    Returns
    -------
    k : int
        The window, steps.
    metrics : dict
        ``conversion/readout_steps`` (k, steps) and the training samples' score at k:
        ``conversion/readout_train_accuracy`` (fraction) or ``conversion/readout_train_mse``
        (the targets' units squared).
    """
    idx = seeded_subset(len(data.x_train), samples, conv.seed)  # the inputs and their targets
    x = as_steps(data.x_train[idx], data.sequence)
    rate = outputs(model, params, x, s, conv, rate=True)[:, -1]
    spiking = outputs(model, params, x, s, conv, rate=False)
    k, score = choose_window(spiking, rate, data.y_train[idx], data.classification)
    name = "accuracy" if data.classification else "mse"
    return k, {"conversion/readout_steps": float(k), f"conversion/readout_train_{name}": score}


def choose_window(spiking: np.ndarray, rate: np.ndarray, y: np.ndarray, classification: bool
                  ) -> tuple[int, float]:
    """The window k (steps) whose read-out, the mean of the last k steps of ``spiking``, scores
    best on targets ``y``; ties go to the read-out closest (MSE) to ``rate``, then to the
    shortest window.

    Parameters
    ----------
    spiking : ndarray, shape (n, steps, outputs)
        The spiking network's output at every step.
    rate : ndarray, shape (n, outputs)
        The rate network's output on the same samples.
    y : ndarray
        Class labels (n,) or targets (n, outputs).
    classification : bool
        Score by accuracy (argmax), else by MSE.

    Returns
    -------
    (int, float)
        k, and the score at k (accuracy, or MSE in the targets' units squared).
    """
    # the mean of the last k steps for every k at once: cumulative sums from the end
    means = np.cumsum(spiking[:, ::-1], axis=1) / np.arange(1, spiking.shape[1] + 1)[:, None]
    if classification:
        loss = -np.mean(means.argmax(axis=-1) == np.asarray(y).reshape(-1, 1), axis=0)
    else:
        loss = np.mean((means - np.asarray(y).reshape(len(y), 1, -1)) ** 2, axis=(0, 2))
    gap = np.mean((means - rate[:, None]) ** 2, axis=(0, 2))
    best = int(np.lexsort((np.arange(len(loss)), gap, loss))[0])  # loss, then gap, then k
    return best + 1, float(-loss[best] if classification else loss[best])
