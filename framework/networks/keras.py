"""The Keras network kind: build (or load), normalise, train as converted, evaluate as rates and
as spikes, and hand the analyses what was built and measured.

Every stage takes its own nodes: :func:`framework.training.train` the ``training`` node and the
:class:`~framework.conversion.Conversion`, :func:`framework.simulation.simulate` the
``simulation`` node; the training cache is keyed by exactly the nodes that decide the weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import nengo
import numpy as np

from framework import (
    cache,
    calibration,
    conversion,
    cost,
    health,
    models,
    quiet,
    simulation,
    training,
)
from framework.analysis import Context
from framework.batches import readout_bins
from framework.conversion import Calibrate, Conversion, Normalize
from framework.data.base import Data
from framework.errors import UserError, check_interrupt
from framework.keras_io import file_tags
from framework.models import KerasModelConfig
from framework.networks.base import Built, Nodes, Recorder, TrainedNetwork, register
from framework.plugin_host import check_layer_names, select_layers
from framework.progress import Console
from framework.simulation import Readout, check_budget, task_metrics
from framework.training import Trained

#: the fraction of regularised neurons a range should end with; below it the run says so
REG_TARGET = 0.95

def tag(recorder: Recorder, key: str, value: Any) -> None:
    """Tag ``spiketune.<key>`` (the older unprefixed duplicates were dropped: README, "Migration
    notes")."""
    recorder.tag(f"spiketune.{key}", value)


@register(KerasModelConfig)
def run_keras(nodes: Nodes, data: Data | None, recorder: Recorder, console: Console,
              scratch: Path) -> Built:
    """Build, train, convert and simulate a Keras network; returns what the analyses read.

    The stages (``training.train``, ``simulation.evaluate_rates``, ``simulation.simulate``) are
    looked up on their modules at call time, so a test or a profiler can watch one."""
    if data is None:
        raise UserError("dataset: a Keras network needs data")
    metrics: dict[str, float] = {}
    console.stage("model", f"{nodes.model.name}, importing TensorFlow")
    quiet.tensorflow()
    model = _build(nodes, data, recorder, console, metrics)
    conv = _normalise(nodes, model, data, recorder, console, metrics)
    check_interrupt()
    t = time.perf_counter()
    result = _train(nodes, model, data, conv, recorder, console, scratch)
    metrics["time/train_s"] = time.perf_counter() - t
    metrics.update(result.regularizers)
    for line in _range_lines(nodes, metrics):
        console.say(line)
    conv = _calibrate(nodes, model, result.params, data, conv, console, metrics)
    _fit_readout(nodes, model, result.params, data, conv, console, metrics)
    t = time.perf_counter()
    ctx, rate_out = _simulate(nodes, model, result.params, data, conv, console, metrics,
                              recorder)
    metrics["time/simulate_s"] = time.perf_counter() - t
    bins = readout_bins(data.x_test.shape[1], nodes.simulation) if data.sequence else None
    return Built(ctx, metrics, TrainedNetwork(model, result.params, data, rate_out, bins,
                                              calibration=conv.calibration))


def _build(nodes: Nodes, data: Data, recorder: Recorder, console: Console,
           metrics: dict[str, float]) -> Any:
    """The Keras model, its tags and summary; a loaded model's own score; refusals that would
    otherwise come after training (unknown ``analyses.layers``, a simulation that cannot fit)."""
    model = models.build(nodes.model, data, nodes.seed)
    for note in getattr(model, "spiketune_notes", []):
        console.say(note)
    tag(recorder, "model_params", int(model.count_params()))
    if nodes.model.loaded:  # which file, exactly: its absolute path and sha256; its own score
        for key, value in file_tags(nodes.model).items():
            tag(recorder, key, value)
        metrics.update(task_metrics("keras", keras_outputs(model, data, nodes.simulation), data,
                                    np.arange(len(data.x_test))))
    summary: list[str] = []
    model.summary(print_fn=summary.append)
    recorder.artifact_text("\n".join(summary), "model_summary.txt")
    check_layer_names(nodes.layers, [layer.name for layer in conversion.hidden_layers(model)])
    check_budget(model, data, nodes.simulation, nodes.seed)
    return model


def _normalise(nodes: Nodes, model: Any, data: Data, recorder: Recorder, console: Console,
               metrics: dict[str, float]) -> Conversion:
    """The conversion settings; ``conversion.normalize=percentile`` fills
    ``conversion.layer_scales`` from the training data (unless given), logs them as params and
    the activations they came from as metrics."""
    conv = nodes.conversion
    neuron_type = nodes.neuron.build()
    if conv.normalize.data_based and not conv.layer_scales:
        found = conversion.normalise(model, data.x_train, data.sequence, neuron_type, conv)
        conv.layer_scales = {name: scale for name, (scale, _) in found.items()}
        recorder.params({f"conversion.layer_scales.{name}": f"{scale:.6g}"
                         for name, scale in conv.layer_scales.items()})
        what = "activation_p" if conv.normalize == Normalize.percentile else "activation_mean"
        for name, (scale, a) in found.items():
            metrics[f"conversion/{name}/{what}"] = a
            metrics[f"conversion/{name}/scale"] = scale
        rule = (f"the {conv.percentile:g}th-percentile activation of each layer fires at "
                f"{conv.max_rate_hz:g} Hz" if conv.normalize == Normalize.percentile else
                f"each layer's mean rate on the training inputs is {conv.mean_rate_hz:g} Hz")
        console.say(f"conversion.normalize={conv.normalize.value}: {rule}: "
                    + ", ".join(f"{name} scale {scale:.3g}"
                                for name, scale in conv.layer_scales.items()))
    return Conversion(neuron_type, float(nodes.simulation.scale_firing_rates),
                      dict(conv.layer_scales), nodes.seed, initial_voltage=conv.initial_voltage)


def _calibrate(nodes: Nodes, model: Any, params: Path, data: Data, conv: Conversion,
               console: Console, metrics: dict[str, float]) -> Conversion:
    """``conversion.calibrate=bias``: the conversion with each neuron's input shifted so that its
    mean spiking output on training samples matches the rate network's (framework/calibration.py);
    the shifts' mean size per layer as metrics, ``time/calibrate_s``."""
    if nodes.conversion.calibrate != Calibrate.bias:
        return conv
    n = min(nodes.conversion.calibration_samples, len(data.x_train))
    console.stage("calibrate", f"biases, layer by layer, on {n} training samples")
    t = time.perf_counter()
    shifts, found = calibration.calibrate(model, params, data, nodes.simulation, conv, n)
    metrics.update(found)
    metrics["time/calibrate_s"] = time.perf_counter() - t
    console.say("conversion.calibrate=bias: mean error of each layer's mean output corrected: "
                + ", ".join(f"{name} {found[f'conversion/{name}/calibration_error']:.3g}"
                            for name in shifts))
    return dataclasses.replace(conv, calibration=shifts)


def _fit_readout(nodes: Nodes, model: Any, params: Path, data: Data, conv: Conversion,
                 console: Console, metrics: dict[str, float]) -> None:
    """``simulation.readout=fitted``: choose the window on training samples
    (:func:`framework.calibration.fit_readout`) and set ``simulation.readout_steps`` to it."""
    s = nodes.simulation
    if s.readout != Readout.fitted:
        return
    n = min(nodes.conversion.calibration_samples, len(data.x_train))
    console.stage("read-out", f"the window of {s.n_steps} steps that scores best on {n} "
                  f"training samples")
    t = time.perf_counter()
    s.readout_steps, found = calibration.fit_readout(model, params, data, s, conv, n)
    metrics.update(found)
    metrics["time/fit_readout_s"] = time.perf_counter() - t
    score = "accuracy" if data.classification else "mse"
    console.say(f"simulation.readout=fitted: the mean of the last {s.readout_steps} of "
                f"{s.n_steps} steps (training samples' {score} "
                f"{found[f'conversion/readout_train_{score}']:.3g})")


def training_key(nodes: Nodes, data: Data) -> cache.TrainingKey:
    """What decides the trained weights (:class:`framework.cache.TrainingKey`): the data's
    digest, the ``dataset``, ``model``, ``neuron`` and ``training`` nodes (without ``cache``),
    the seed, the firing-rate scales as resolved, for sequences the read-out the loss pools, and
    the bytes of the model file and the start parameters."""
    training = cache.plain(nodes.training)
    training.pop("cache", None)
    s = nodes.simulation
    what: dict[str, Any] = {
        "dataset": nodes.dataset, "model": nodes.model, "neuron": nodes.neuron,
        "training": training, "seed": nodes.seed,
        "scale_firing_rates": float(s.scale_firing_rates),
        "layer_scales": {k: float(v) for k, v in sorted(nodes.conversion.layer_scales.items())}}
    if data.sequence:  # the loss pools the time bins the read-out covers (batches.readout_bins)
        what.update(readout_steps=int(s.readout_steps or 0), readout=s.readout,
                    n_steps=int(s.n_steps))
    files = {}
    if nodes.model.loaded:
        files["model.path"] = nodes.model.path
    if nodes.model.params:  # NengoDL parameters loaded onto the network
        files["model.params"] = nodes.model.params
    return cache.TrainingKey(what, data.digest, files)


#: seconds between writes of the live training loss: a write per epoch (a sqlite transaction
#: each) was 0.25 s of the default run's 3.5 s training; a long training still shows its curve
#: growing in the UI
LOSS_FLUSH_S = 2.0


class LiveLoss:
    """``train/loss`` per epoch (``on_epoch`` of :func:`framework.training.train`), written to
    the run in batches at most every :data:`LOSS_FLUSH_S`, each epoch with its own timestamp;
    :meth:`flush` writes the rest."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.points: list[tuple[int, float, int]] = []  # (epoch, loss, ms since the Unix epoch)
        self.last = time.monotonic()

    def __call__(self, epoch: int, loss: float) -> None:
        self.points.append((epoch, loss, int(time.time() * 1000)))
        if time.monotonic() - self.last >= LOSS_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.points:
            steps, values, stamps = (list(col) for col in zip(*self.points))
            self.recorder.series("train/loss", values, steps, stamps)
            self.points = []
        self.last = time.monotonic()


def _train(nodes: Nodes, model: Any, data: Data, conv: Conversion, recorder: Recorder,
           console: Console, scratch: Path) -> Trained:
    """Train (or take the cached weights), logging the loss live or replayed, and the cache tags."""
    fit = nodes.model.trains()
    if fit:
        console.stage("train", f"{nodes.training.epochs} epochs, {nodes.neuron.name} rate "
                      f"approximation")
    else:
        console.stage("train", "skipped (model.train=false): the saved weights as they are")

    live = LiveLoss(recorder)
    loaded = bool(nodes.model.loaded or nodes.model.params)

    def run() -> Trained:
        return training.train(model, data, nodes.training, nodes.simulation, conv,
                              start=nodes.model.params, fit=fit, out_dir=scratch / "trained",
                              console=console, on_epoch=live, keep_best=loaded)

    # nothing to cache when nothing trains: the saved weights are converted as they are
    what = training_key(nodes, data) if nodes.training.cache and fit else None
    try:
        result, status = cache.trained(what, nodes.cache, console, run)
    except BaseException:
        with contextlib.suppress(Exception):  # what stopped training is the error to tell
            live.flush()  # a diverged run shows its loss up to the blow-up
        raise
    live.flush()
    tag(recorder, "training_cache", status)  # hit, miss, rebuilt, or off
    if result.cache_key:
        recorder.tag("spiketune.training_cache_key", result.cache_key)
    if result.loss and status == "hit":  # nothing trained here: the cached curve, logged now
        recorder.series("train/loss", result.loss)
        recorder.tag("spiketune.train_loss", f"replayed: {len(result.loss)} epochs from the "
                     f"training cache entry {result.cache_key[:12]}, logged at once")
    elif result.loss:
        recorder.tag("spiketune.train_loss", f"live: {len(result.loss)} epochs, each logged as "
                     f"it ended")
    best = result.regularizers.get("train/best_epoch")
    if best is not None:
        kept = "the loaded weights" if best < 0 else f"epoch {int(best) + 1}"
        stats = result.regularizers
        console.say(f"fine-tuning kept {kept}: validation loss {stats['train/val_loss_best']:.4g}"
                    f" on held-back training samples (the loaded weights: "
                    f"{stats['train/val_loss_start']:.4g})")
    return result


def _range_lines(nodes: Nodes, metrics: dict[str, float]) -> list[str]:
    """One line per range regulariser that ended below :data:`REG_TARGET` inside its range."""
    lines = []
    for rng in nodes.training.ranges():
        inside = metrics.get(f"reg/{rng.key}/in_range_after")
        if inside is not None and inside < REG_TARGET:
            lines.append(f"training.{rng.key}: only {inside:.0%} of the regularised neurons end "
                         f"inside the range (from {metrics[f'reg/{rng.key}/in_range_before']:.0%})"
                         f"; {_range_advice(rng)}")
    return lines


def _range_advice(rng: Any) -> str:
    """What moves more neurons into ``rng``: a penalised range's weight, else more epochs (a
    projected range has no weight: it is kept after every batch)."""
    if rng.penalised:
        return f"raise training.{rng.key}.weight or training.epochs"
    return "raise training.epochs (the projection keeps each batch's values in range)"


def _simulate(nodes: Nodes, model: Any, params: Path, data: Data, conv: Conversion,
              console: Console, metrics: dict[str, float], recorder: Recorder
              ) -> tuple[Context, np.ndarray]:
    """The rate network's and the spiking network's scores and what they cost (``cost/*``,
    ``cost.csv``); the Context of what was simulated, and the rate network's outputs."""
    s = nodes.simulation
    scale = "per layer" if conv.layer_scales else f"{s.scale_firing_rates:g}"
    console.stage("simulate", f"{s.n_steps} steps, synapse {s.synapse}, scale {scale}")
    keras_active: dict[str, np.ndarray] = {}  # filled by the same rate pass (cost/keras_*)
    rate_out = simulation.evaluate_rates(model, params, data, s, conv, activity=keras_active)
    metrics.update(task_metrics("rate", rate_out, data, np.arange(len(data.x_test))))
    if nodes.model.loaded and type(conv.neuron_type) is not nengo.RectifiedLinear:
        line = swap_line(nodes.neuron.name, conv.neuron_type, metrics, nodes.model.trains())
        if line:
            console.say(line)
    sim = simulation.simulate(model, params, data, s, conv, console)
    metrics.update(task_metrics("spiking", sim.outputs, data, sim.sample))
    metrics.update(run_cost(model, data, sim, s.dt, keras_active, recorder))
    layers = select_layers(sim.layers, nodes.layers, nodes.max_neurons, nodes.seed)
    ctx = Context(data=data, layers=layers, dt=s.dt, n_steps=sim.n_steps, sample=sim.sample,
                  seed=nodes.seed, bin_s=sim.bin_steps * s.dt, outputs=sim.outputs)
    return ctx, rate_out


def run_cost(model: Any, data: Data, sim: simulation.Simulated, dt: float,
             keras_active: dict[str, np.ndarray], recorder: Recorder) -> dict[str, float]:
    """What the run costs (:mod:`framework.cost`, docs/cost.md): ``cost.csv`` is logged, the
    ``cost/*`` metrics returned. The Keras model's parameters are its weights as stored."""
    run = cost.Run(steps=sim.n_steps, dt=dt,
                   keras_passes=int(data.x_test.shape[1]) if data.sequence else 1,
                   param_bytes=int(sum(np.prod(w.shape) * w.dtype.size for w in model.weights)))
    srcs = cost.sources(sim.layers, sim.synapses, sim.node_active, sim.n_steps * dt,
                        keras_active)
    order = [cost.INPUT] + [layer.name for layer in model.layers]  # cost.csv in the model's order
    srcs.sort(key=lambda src: order.index(src.name) if src.name in order else len(order))
    metrics, table = cost.measure(srcs, run)
    recorder.artifact_text(table, "cost.csv")
    return metrics


def keras_outputs(model: Any, data: Data, sim_cfg: Any) -> np.ndarray:
    """Keras's own prediction (n_test, k) on exactly the inputs the network gets; a sequence model
    (one time step per call) is read over the same time bins as the rate network."""
    x = data.x_test
    if not data.sequence:
        return np.asarray(model.predict(x, verbose=0, batch_size=256))
    n, bins = x.shape[0], x.shape[1]
    y = np.asarray(model.predict(x.reshape(n * bins, *x.shape[2:]), verbose=0, batch_size=1024))
    y = y.reshape(n, bins, -1)
    return np.asarray(y[:, -readout_bins(bins, sim_cfg):].mean(axis=1))


def swap_line(neuron: str, neuron_type: Any, metrics: dict[str, float],
              trained: bool = False) -> str:
    """One line when the loaded ReLU model, now running other neurons (``neuron``, built as
    ``neuron_type``), scores below its own Keras score by more than the verdict's margin; what
    that costs and what to do. Empty when the swap costs nothing."""
    key = next(k for k in ("accuracy", "mse", "angle_error_deg") if f"rate/{k}" in metrics)
    if f"keras/{key}" not in metrics or not health.worse_by(
            key, metrics[f"rate/{key}"], metrics[f"keras/{key}"], health.HealthConfig(),
            margin=0.01 if key == "accuracy" else 0.05):
        return ""
    spiking_relu = type(neuron_type) is nengo.SpikingRectifiedLinear
    advice = ("neuron=relu keeps the model's own" if spiking_relu else
              "a ReLU network converted to this type rarely keeps its score: neuron=spiking_relu"
              + ("" if trained else ", or model.train=true to train it as converted"))
    return (f"model.path: the loaded model's ReLU became neuron={neuron}: rate/{key} "
            f"{metrics[f'rate/{key}']:.4g} against its own keras/{key} "
            f"{metrics[f'keras/{key}']:.4g} ({advice})")
