"""The run: config → dataset → model → conversion/training → simulation → analyses → tracking.

``run(cfg)`` is the single entry point, used by the CLI (one call per Hydra job) and by Python code.
Every stage announces itself; any failure ends the MLflow run FAILED with a one-line ``error`` tag,
and a signal ends it KILLED (a burst of them too: the ending is shielded), so no run is ever left
looking finished. A process that cannot end its run (SIGKILL, the OOM killer) leaves it to the
next start, which ends the runs of owners that are gone (``tracking.end_orphans``).
"""
from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framework import analysis as analysis_mod
from framework.analysis import angle_diff
from framework.config import Layout, to_flat_params, validate
from framework.errors import UserError, check_interrupt, interruption
from framework.lifecycle import shielded
from framework.progress import Console, table
from framework.registry import Registry

#: metrics shown in the end-of-run summary, in this order, when the run has them
SUMMARY_KEYS = ["keras/accuracy", "rate/accuracy", "spiking/accuracy", "keras/mse", "rate/mse",
                "spiking/mse", "keras/angle_error_deg", "rate/angle_error_deg",
                "spiking/angle_error_deg", "firing/mean_rate_hz",
                "firing/max_rate_hz", "firing/silent_fraction", "threshold/x_intercept_median",
                "firing/saturated_fraction", "tuning/modulated_fraction",
                "tuning/tuned_fraction", "tuning/median_r2", "tuning/pv_angle_error_deg",
                "tuning/ole_angle_error_deg",
                "time/total_s"]


#: the fraction of regularised neurons a range should end with; below it the run says so
REG_TARGET = 0.95


@dataclass
class RunResult:
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    artifact_uri: str = ""
    objective: float | None = None  # the ``objective`` metric (OVER_BUDGET… when over ``budget``)


#: the objective of a run over its budget, at the budget's edge: worse than any run within it (for
#: objectives of ordinary size), and worse the further over, so a search can follow the way back
OVER_BUDGET = 1e6


def objective_value(obj, metrics: dict[str, float],
                    maximize: bool = False) -> tuple[float | None, str]:
    """The run's ``objective``, and the ``budget`` it broke (``"metric value > max"``, or "").

    A run over budget scores ``OVER_BUDGET × (1 + excess / max)`` (negated when the search
    maximises): a flat +inf would tell a search (Optuna's TPE) nothing when every trial breaks the
    budget, and it would report one of them as "best". A metric the run did not log is a user
    error that names it (and lists those it did of the same family).

    Parameters
    ----------
    obj : framework.config.Config
    metrics : dict
        The run's metrics, in their units.
    maximize : bool
        The search's direction (``hydra.sweeper.direction``).
    """
    if not obj.objective:
        return None, ""
    budget = obj.budget.metric
    for name, key in (("objective", obj.objective), ("budget.metric", budget)):
        if key and key not in metrics:
            near = sorted(k for k in metrics if k.split("/")[0] == key.split("/")[0])
            hint = f"; it logged {', '.join(near)}" if near else ""
            raise UserError(f"{name}: the run logged no metric {key!r}{hint}")
    if budget and obj.budget.max is not None and not metrics[budget] <= obj.budget.max:
        used, limit = float(metrics[budget]), float(obj.budget.max)
        excess = (used - limit) / max(abs(limit), 1e-12) if np.isfinite(used) else 1e6
        value = OVER_BUDGET * (1.0 + min(excess, 1e6))
        return (-value if maximize else value), f"{budget} {used:.4g} > {limit:g}"
    return float(metrics[obj.objective]), ""


def search_maximizes() -> bool:
    """Whether this job's sweeper maximises its objective (``hydra.sweeper.direction``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        direction = HydraConfig.get().sweeper.get("direction", "minimize")
    except (ImportError, ValueError, AttributeError):  # not a Hydra job, or no such sweeper key
        return False
    return str(getattr(direction, "name", direction)).lower() == "maximize"


def task_metrics(prefix: str, outputs: np.ndarray, data, idx: np.ndarray) -> dict[str, float]:
    """Accuracy (classification) or MSE (regression), and the reach angle error where it applies."""
    y = data.y_test[idx]
    if data.classification:
        m = {f"{prefix}/accuracy": float(np.mean(np.argmax(outputs, axis=-1) == y))}
        if data.has_directions and data.name == "reach":
            k = data.n_outputs
            err = angle_diff(np.argmax(outputs, axis=-1) * 360.0 / k, data.dir_test[idx])
            m[f"{prefix}/angle_error_deg"] = float(np.nanmean(np.abs(err)))
        return m
    y = y.reshape(len(y), -1)
    m = {f"{prefix}/mse": float(np.mean((outputs - y) ** 2))}
    if data.has_directions and y.shape[1] == 2:
        pred = np.rad2deg(np.arctan2(outputs[:, 1], outputs[:, 0]))
        err = angle_diff(pred, data.dir_test[idx])  # NaN where a trial has no direction
        if np.isfinite(err).any():
            m[f"{prefix}/angle_error_deg"] = float(np.nanmean(np.abs(err)))
    return m


def run_name(cfg, tags: dict | None = None) -> str:
    """``tracking.run_name``; else a sweep job's name, what the job changed (``lif n_steps=50``,
    :func:`framework.app.sweeps.job_label`, in ``tags``); else ``<dataset>-<model>-<neuron>``."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    if tags and tags.get("mlflow.runName"):
        return str(tags["mlflow.runName"])
    return f"{cfg.dataset.name}-{cfg.model.name}-{cfg.neuron.name}"


def run(cfg, console: Console | None = None, tags: dict | None = None) -> RunResult:
    """Run one experiment and record it in MLflow.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        A composed config (validated here again, so Python callers get the same checks).
    console : Console, optional
        Where progress goes (default: stderr).
    tags : dict, optional
        Extra run tags (a sweep's parent run id, the job's overrides).

    Returns
    -------
    RunResult
        The run id, final status and metrics. A user error is re-raised after the run is marked
        FAILED (the CLI turns it into exit code 2).
    """
    from framework.tracking.model import check_register
    from framework.tracking.store import Tracker, resolve_uri, ui_base

    t0 = time.perf_counter()
    console = console or Console()
    obj = validate(cfg)
    analysis_mod.check_names(obj.analysis)
    from framework import limits

    limits.configure(obj.limits.memory_gb)
    console.stage("tracking", resolve_uri(obj.tracking.uri))
    ui = ui_base(obj.tracking.ui_url, resolve_uri(obj.tracking.uri))  # a bad one: before the run
    check_register(obj.tracking.register)
    tags = dict(tags or {})
    for tag in obj.tags:  # the user's own labels, as given: name or name:value
        tag_name, _, tag_value = str(tag).partition(":")
        tags[tag_name.strip()] = tag_value.strip() or "true"
    tracker = Tracker(resolve_uri(obj.tracking.uri), obj.tracking.experiment,
                      run_name(obj, tags), tags=tags, system_metrics=obj.tracking.system_metrics)
    scratch = Path(__import__("tempfile").mkdtemp(prefix="spiketune-run-"))
    try:
        metrics = _run_stages(cfg, obj, tracker, console, scratch)
        metrics["time/total_s"] = time.perf_counter() - t0
        tracker.metrics({"time/total_s": metrics["time/total_s"]})
        value, broken = objective_value(obj, metrics, search_maximizes())
        if value is not None:
            tracker.metrics({"search/objective": value})
            if broken:
                tracker.tag("spiketune.over_budget", broken)
                console.say(f"budget: {broken}: objective {obj.objective} counts as {value:.4g} "
                            f"(over budget)")
        tracker.describe(describe(obj, tracker, metrics))
        tracker.end("FINISHED")
        _summary(console, tracker, metrics, ui)
        return RunResult(tracker.run_id, "FINISHED", metrics, artifact_uri=tracker.artifact_uri,
                         objective=value)
    except BaseException as ex:
        # a burst's later signals are recorded, not raised into the ending (lifecycle.shielded)
        with shielded():
            why = interruption(ex)
            if why:
                tracker.end("KILLED", why)
            else:
                msg = (str(ex) if isinstance(ex, UserError)
                       else f"internal error: {type(ex).__name__}: {ex}")
                first = msg.splitlines()[0] if msg else type(ex).__name__
                with contextlib.suppress(Exception):  # the description never hides the error
                    tracker.describe(describe(obj, tracker, {}, error=first))
                tracker.end("FAILED", first)
        if why:
            raise KeyboardInterrupt(why) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


#: network kinds (``ModelConfig.kind``): each turns its config and data into the Context the
#: analyses read, and fills in the metrics it measures
NETWORKS: Registry = Registry("network kind")


def resolve_defaults(obj, data) -> list[str]:
    """Fill in the config values that follow the data (``auto``/None), in place; one line each.

    * ``dataset.scaling=auto``: ``none`` for a loaded model (it was trained on the raw inputs),
      else the dataset's own choice (``standardize``; ``none`` for digits, already in [0, 1]).
    * ``conversion.normalize=auto``: ``percentile`` for a loaded model (its weights were not
      trained for the neurons; per-layer scales from its activations), else ``none`` (spiketune
      trains the network as converted, through the neurons' rates).
    * ``simulation.readout_steps`` unset: the whole trial for sequences (each time bin is part of
      the movement), else the last fifth of ``simulation.n_steps`` (at least one step).
    """
    from framework.config import Normalize, Readout, Scaling

    said = []
    if not obj.model.reads_data:  # the network makes its own inputs (the ensemble's ramp)
        obj.dataset.scaling = Scaling.none
    elif obj.dataset.scaling == Scaling.auto:
        obj.dataset.scaling = Scaling.none if obj.model.loaded else type(obj.dataset).own_scaling
        why = ("the loaded model was trained on the data as they are" if obj.model.loaded
               else f"dataset {obj.dataset.name}'s choice for a network spiketune trains")
        said.append(f"dataset.scaling=auto -> {obj.dataset.scaling.value} ({why})")
    conv = obj.conversion
    if conv.normalize == Normalize.auto:
        # NengoDL parameters belong to the conversion they were trained in (its biases are scaled)
        params = bool(getattr(obj.model, "params", ""))
        conv.normalize = (Normalize.percentile if obj.model.loaded and not params
                          else Normalize.none)
        if params:
            said.append("conversion.normalize=auto -> none (model.params were trained at "
                        f"simulation.scale_firing_rates={obj.simulation.scale_firing_rates:g}; "
                        f"set it to theirs)")
        elif obj.model.loaded:
            said.append("conversion.normalize=auto -> percentile (a model trained elsewhere: each "
                        "layer's firing rates scaled from its activations on the training data)")
    sim = obj.simulation
    if sim.readout_steps is None:
        sequence = bool(data is not None and data.sequence)
        sim.readout_steps = sim.n_steps if sequence else max(1, sim.n_steps // 5)
        if sim.readout == Readout.mean:
            what = "the whole trial" if sequence else "the last fifth"
            said.append(f"simulation.readout_steps -> {sim.readout_steps} ({what} of "
                        f"simulation.n_steps={sim.n_steps})")
    return said


def prepare_data(obj):
    """Load ``obj.dataset``, resolve the values that follow it, and scale it as resolved.

    Returns
    -------
    (Data, dict, list of str)
        The scaled data, what scaling applied (``scaling.json``), and one line per resolved value.
    """
    from framework.data import base as datasets

    data = datasets.load(obj.dataset, obj.seed)
    said = list(data.remarks)
    if obj.model.loaded and getattr(obj.dataset, "layout", None) == Layout.auto:
        from framework.data.files import fit_layout
        from framework.keras_io.screen import resolve, stored_input_shape

        data, lines = fit_layout(data, stored_input_shape(resolve(obj.model)))
        said += lines
    said += resolve_defaults(obj, data)
    data, scaling = datasets.scale(data, obj.dataset.scaling.value)
    return data, scaling, said


def _resolved(cfg, obj, layer_scales: bool = False):
    """A copy of ``cfg`` with the values resolved from the data (the caller's config is left as
    it was given); with ``layer_scales``, also ``conversion.layer_scales`` as normalisation set
    them."""
    import copy

    from omegaconf import open_dict, read_write

    resolved = copy.deepcopy(cfg)
    with read_write(resolved), open_dict(resolved):
        resolved.dataset.scaling = obj.dataset.scaling.value
        resolved.simulation.readout_steps = obj.simulation.readout_steps
        resolved.conversion.normalize = obj.conversion.normalize.value
        if layer_scales:
            resolved.conversion.layer_scales = dict(obj.conversion.layer_scales)
    return resolved


def _record_config(cfg, obj, tracker) -> None:
    """Log the config as resolved: params (every leaf, dotted) and ``config.yaml``."""
    from omegaconf import OmegaConf

    resolved = _resolved(cfg, obj)
    tracker.params(to_flat_params(resolved))
    tracker.artifact_text(OmegaConf.to_yaml(resolved, resolve=True), "config.yaml")


def _log_model(cfg, obj, net, tracker, console, metrics: dict[str, float]) -> None:
    """Log the trained rate network as the run's MLflow model (:mod:`framework.tracking.model`),
    after every metric, so the logged model carries them; ``time/model_s`` is what it cost."""
    from omegaconf import OmegaConf

    from framework.redact import redact
    from framework.tracking.model import log_network

    register = obj.tracking.register
    console.stage("mlflow", "logging the rate network as an MLflow model"
                  + (f", registering it as '{register}'" if register else ""))
    try:
        info = log_network(tracker, net, redact(OmegaConf.to_yaml(_resolved(cfg, obj, True),
                                                                  resolve=True)), register)
    except Exception as ex:  # noqa: BLE001 - the run's science stands without its model
        why = f"{type(ex).__name__}: {' '.join(str(ex).split())[:300]}"
        if register:  # asked for by name: a run without it has not done what it was asked
            raise RuntimeError(f"tracking.register: the model could not be logged ({why})") \
                from ex
        tracker.tag("spiketune.model", f"not logged: {why}")
        console.say(f"model: not logged ({why}); the run goes on without it")
        return
    metrics["time/model_s"] = info["seconds"]
    tracker.metrics({"time/model_s": info["seconds"]})
    tracker.tag("spiketune.model", info["uri"])
    tracker.tag("spiketune.model_id", info["model_id"])
    if register:
        tracker.tag("spiketune.registered_model", f"{register}/{info['version']}")
    console.say(f"          model    {info['uri']} ({info['seconds']:.1f} s)"
                + (f", registered as {register} version {info['version']}" if register else ""))


def _run_stages(cfg, obj, tracker, console: Console, scratch: Path) -> dict[str, float]:
    import json

    metrics: dict[str, float] = {}
    data, names = None, None
    if obj.model.reads_data:
        console.stage("data", obj.dataset.name)
        try:
            data, scaling, said = prepare_data(obj)
        except BaseException:
            _record_config(cfg, obj, tracker)  # as composed: nothing followed the data
            raise
    else:
        said = resolve_defaults(obj, None)
    for line in said:
        console.say(line)
    _record_config(cfg, obj, tracker)
    if data is not None:
        names = analysis_mod.select(obj.analysis, data)  # a named one that cannot run: now
        tracker.artifact_text(json.dumps(scaling, indent=1), "scaling.json")
        for key, value in data.notes.items():
            metrics[f"data/{key}"] = value
        tracker.dataset(data)
    ctx = NETWORKS.get(obj.model.kind, "network kind")(obj, data, tracker, console, scratch,
                                                       metrics)
    t = time.perf_counter()
    names = names or analysis_mod.select(obj.analysis, ctx.data)
    metrics.update(_analyses(obj, ctx, names, tracker, console, scratch))
    metrics["time/analysis_s"] = time.perf_counter() - t
    tracker.metrics(metrics)
    if ctx.extras.get("network") is not None and obj.tracking.log_model:
        _log_model(cfg, obj, ctx.extras["network"], tracker, console, metrics)
    return metrics


@NETWORKS.register("ensemble")
def _ensemble(cfg, data, tracker, console, scratch, metrics) -> analysis_mod.Context:
    """A native Nengo ensemble on a ramp of inputs (:mod:`framework.networks.ensemble`)."""
    from framework.networks.ensemble import run_ensemble

    console.stage("model", "native Nengo ensemble")
    ctx, measured = run_ensemble(cfg, console)
    metrics.update(measured)
    return ctx


@NETWORKS.register("keras")
def _network(cfg, data, tracker, console, scratch, metrics) -> analysis_mod.Context:
    """Build, train, convert and simulate a Keras network; returns what the analyses read."""
    console.stage("model", f"{cfg.model.name}, importing TensorFlow")
    from framework import quiet

    quiet.tensorflow()
    from framework import models, neurons
    from framework.simulation import evaluate_rates, simulate
    from framework.training import train

    model = models.build(cfg.model, data, cfg.seed)
    for note in getattr(model, "spiketune_notes", []):
        console.say(note)
    n_params = int(model.count_params())
    _tag(tracker, "model_params", n_params)
    if cfg.model.loaded:  # which file, exactly: its absolute path and sha256; its own score
        from framework.keras_io import file_tags

        for key, value in file_tags(cfg.model).items():
            _tag(tracker, key, value)
        metrics.update(task_metrics("keras", keras_outputs(model, data, cfg.simulation), data,
                                    np.arange(len(data.x_test))))
    summary: list[str] = []
    model.summary(print_fn=summary.append)
    tracker.artifact_text("\n".join(summary), "model_summary.txt")
    neuron_type = neurons.build(cfg.neuron)
    # a misspelt analyses.layers is refused now, not after training and simulation
    analysis_mod.check_layer_names(cfg, [layer.name for layer in models.hidden_layers(model)])
    from framework.simulation import check_budget

    check_budget(model, data, cfg)  # a simulation that cannot fit: refused before training
    _normalise(cfg, model, data, neuron_type, tracker, console, metrics)
    check_interrupt()

    t = time.perf_counter()
    if getattr(cfg.model, "train", True):
        console.stage("train",
                      f"{cfg.training.epochs} epochs, {cfg.neuron.name} rate approximation")
    else:
        console.stage("train", "skipped (model.train=false): the saved weights as they are")
    from framework.cache import trained

    def epoch_loss(epoch: int, loss: float) -> None:  # as each epoch ends: its own timestamp
        tracker.metrics({"train/loss": loss}, step=epoch)

    result, status = trained(cfg, model, data, neuron_type, scratch, console, train,
                             on_epoch=epoch_loss)
    cached = status == "hit"
    # hit, miss or rebuilt; the old name never said "off" (it said "miss"), the new one does
    _tag(tracker, "training_cache", "miss" if status == "off" else status)
    tracker.tag("spiketune.training_cache", status)
    if result.cache_key:
        tracker.tag("spiketune.training_cache_key", result.cache_key)
    metrics["time/train_s"] = time.perf_counter() - t
    if result.loss and cached:  # nothing trained here: the cached curve, logged now
        tracker.series("train/loss", result.loss)
        tracker.tag("spiketune.train_loss", f"replayed: {len(result.loss)} epochs from the "
                    f"training cache entry {result.cache_key[:12]}, logged at once")
    elif result.loss:
        tracker.tag("spiketune.train_loss", f"live: {len(result.loss)} epochs, each logged as "
                    f"it ended")
    metrics.update(result.regularizers)
    for kind in ("x_intercepts", "rates", "biases"):
        inside = metrics.get(f"reg/{kind}/in_range_after")
        if inside is not None and inside < REG_TARGET:
            console.say(f"training.{kind}: only {inside:.0%} of the regularised neurons end inside "
                        f"the range (from {metrics[f'reg/{kind}/in_range_before']:.0%}); raise "
                        f"training.{kind}.weight or training.epochs")

    t = time.perf_counter()
    scale = ("per layer" if cfg.conversion.layer_scales
             else f"{cfg.simulation.scale_firing_rates:g}")
    console.stage("simulate", f"{cfg.simulation.n_steps} steps, synapse {cfg.simulation.synapse}, "
                  f"scale {scale}")
    rate_out = evaluate_rates(model, result.params, data, cfg, neuron_type)
    metrics.update(task_metrics("rate", rate_out, data, np.arange(len(data.x_test))))
    if cfg.model.loaded and cfg.neuron.name != "relu":
        console.say(swap_line(cfg, metrics))
    sim = simulate(model, result.params, data, cfg, neuron_type, console)
    metrics.update(task_metrics("spiking", sim.outputs, data, sim.sample))
    metrics["time/simulate_s"] = time.perf_counter() - t
    ctx = analysis_mod.Context(cfg=cfg, data=data, layers=[], dt=cfg.simulation.dt,
                               n_steps=sim.n_steps, sample=sim.sample, seed=cfg.seed,
                               bin_s=sim.bin_steps * cfg.simulation.dt)
    ctx.layers = analysis_mod.select_layers(cfg, sim.layers)
    ctx.extras["outputs"] = sim.outputs
    from framework.tracking.model import TrainedNetwork
    from framework.training import readout_bins

    # logged as the run's MLflow model once every metric is in (_log_model)
    ctx.extras["network"] = TrainedNetwork(
        model, result.params, data, rate_out,
        readout_bins(data.x_test.shape[1], cfg.simulation) if data.sequence else None)
    return ctx


#: the run's own tags that predate the ``spiketune.*`` namespace: written under both names until
#: the old ones are dropped (README, "Migration notes")
OLD_TAGS = ("model_params", "training_cache", "model_file", "model_sha256")


def _tag(tracker, key: str, value) -> None:
    """Tag ``spiketune.<key>``, and ``<key>`` too while it is one of :data:`OLD_TAGS`."""
    tracker.tag(f"spiketune.{key}", value)
    if key in OLD_TAGS:
        tracker.tag(key, value)


def _normalise(cfg, model, data, neuron_type, tracker, console, metrics) -> None:
    """``conversion.normalize=percentile``: fill ``conversion.layer_scales`` from the training
    data (unless given), log them as params, the activations they came from as metrics."""
    from framework.config import Normalize
    from framework.conversion import normalise

    conv = cfg.conversion
    if conv.normalize != Normalize.percentile or conv.layer_scales:
        return
    found = normalise(model, data.x_train, data.sequence, neuron_type, conv)
    conv.layer_scales = {name: scale for name, (scale, _) in found.items()}
    tracker.params({f"conversion.layer_scales.{name}": f"{scale:.6g}"
                    for name, scale in conv.layer_scales.items()})
    for name, (scale, a_p) in found.items():
        metrics[f"conversion/{name}/activation_p"] = a_p
        metrics[f"conversion/{name}/scale"] = scale
    console.say(f"conversion.normalize=percentile: the {conv.percentile:g}th-percentile activation "
                f"of each layer fires at {conv.max_rate_hz:g} Hz: " +
                ", ".join(f"{name} scale {scale:.3g}" for name, scale in conv.layer_scales.items()))


def keras_outputs(model, data, sim_cfg) -> np.ndarray:
    """Keras's own prediction (n_test, k) on exactly the inputs the network gets; a sequence model
    (one time step per call) is read over the same time bins as the rate network."""
    from framework.training import readout_bins

    x = data.x_test
    if not data.sequence:
        return np.asarray(model.predict(x, verbose=0, batch_size=256))
    n, bins = x.shape[0], x.shape[1]
    y = np.asarray(model.predict(x.reshape(n * bins, *x.shape[2:]), verbose=0, batch_size=1024))
    y = y.reshape(n, bins, -1)
    return y[:, -readout_bins(bins, sim_cfg):].mean(axis=1)


def swap_line(cfg, metrics: dict[str, float]) -> str:
    """One line: the loaded ReLU model now runs other neurons, and what that costs."""
    key = next(k for k in ("accuracy", "mse", "angle_error_deg") if f"rate/{k}" in metrics)
    advice = ("neuron=relu keeps the model's own" if cfg.neuron.name == "spiking_relu" else
              "a ReLU network converted to this type without training rarely keeps its score: "
              "neuron=spiking_relu, or model.train=true to train it as converted")
    return (f"model.path: the loaded model's ReLU became neuron={cfg.neuron.name}: rate/{key} "
            f"{metrics[f'rate/{key}']:.4g} against its own keras/{key} "
            f"{metrics[f'keras/{key}']:.4g} ({advice})")


def _analyses(cfg, ctx, names, tracker, console, scratch) -> dict[str, float]:
    """Run the chosen analyses; write neurons.csv, their tables and (lazily drawn) plots."""
    metrics: dict[str, float] = {}
    frame = analysis_mod.neuron_table(ctx.layers, analysis_mod.sample_groups(ctx))
    figures = {}
    for name in names:
        console.stage("analyse", name)
        plugin = analysis_mod.ANALYSES.get(name, "analysis")()
        res = plugin.run(ctx, getattr(cfg.analyses, name))
        metrics.update(res.metrics)
        for line in res.remarks:
            console.say(f"{name}: {line}")
        if res.neurons is not None and len(res.neurons):
            shared = [c for c in res.neurons.columns
                      if c in frame.columns and c not in ("layer", "neuron")]
            extra = res.neurons.drop(columns=shared)
            frame = frame.merge(extra, on=["layer", "neuron"], how="left")
        for fname, tab in res.tables.items():
            tab.to_csv(scratch / fname, index=False)
        figures.update(res.figures)
    frame.to_csv(scratch / "neurons.csv", index=False)
    files = [scratch / "neurons.csv"] + [scratch / f for f in _tables(scratch)]
    upload = scratch / "upload"
    upload.mkdir()
    for f in files:
        shutil.copy(f, upload / f.name)
    if cfg.tracking.plots and figures:
        console.stage("plots", f"{len(figures)} figures")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        (upload / "plots").mkdir()
        for fig_name, draw in figures.items():
            fig = draw()
            fig.savefig(upload / "plots" / f"{fig_name}.png", dpi=110)
            plt.close(fig)
    tracker.artifact_dir(upload)
    return metrics


def _tables(scratch: Path) -> list[str]:
    return sorted(p.name for p in scratch.glob("*.csv") if p.name != "neurons.csv")


def _summary(console: Console, tracker, metrics: dict[str, float], ui: str = "") -> None:
    from framework.paths import default_uri
    from framework.tracking.store import UI_DEFAULT, ui_base

    regs = sorted(k for k in metrics if k.startswith("reg/") and k.count("/") == 2)
    rows = [(k, f"{metrics[k]:.4g}") for k in SUMMARY_KEYS + regs if k in metrics]
    console.say(table(rows, "summary"))
    console.say(f"run {tracker.run_id} FINISHED in {tracker.uri}")
    ui = ui or ui_base("", tracker.uri)
    if tracker.uri.startswith(("http://", "https://")):
        serve = "the tracking server"
    else:
        serve = "spiketune-ui" + ("" if tracker.uri == default_uri() else f" --uri {tracker.uri}")
        if ui != UI_DEFAULT:
            serve = f"{serve} (or your own server at {ui})"
    links = tracker.links(ui)
    console.say(f"MLflow UI, served by {serve}:")
    console.say(f"  run         {links['run']}")
    if "sweep" in links:
        console.say(f"  sweep runs  {links['sweep']}")
    console.say(f"  all runs    {links['runs']}")


#: headline metrics of a run's description, at most this many
DESCRIBE_KEYS = 6


def describe(obj, tracker, metrics: dict[str, float], error: str | None = None) -> str:
    """The run's description (``mlflow.note.content``, Markdown): what ran, on what, and its
    headline metrics (the summary's first :data:`DESCRIBE_KEYS`), or the error it ended with."""
    from framework.tracking.store import markdown_table

    what = [f"dataset `{obj.dataset.name}`", f"model `{obj.model.name}`",
            f"neuron `{obj.neuron.name}`"]
    if obj.model.kind == "keras":
        trains = getattr(obj.model, "train", True)
        what += [f"{obj.training.epochs} epochs" if trains else "not trained (model.train=false)",
                 f"{obj.simulation.n_steps} steps of {obj.simulation.dt * 1e3:g} ms",
                 "synapse " + ("none" if obj.simulation.synapse is None
                               else f"{obj.simulation.synapse * 1e3:g} ms")]
    overrides = tracker.tags.get("spiketune.overrides")
    if overrides is None:
        with contextlib.suppress(Exception):  # outside Hydra (a Python caller) there are none
            from hydra.core.hydra_config import HydraConfig

            overrides = " ".join(HydraConfig.get().overrides.task)
    text = f"**{tracker.run_name}**: " + ", ".join(what) + "."
    if overrides is not None:
        text += "\n\n`" + f"spiketune {overrides}".strip() + "`"
    if error:
        return text + f"\n\n**FAILED**: {error}"
    rows = [[k, f"{metrics[k]:.4g}"] for k in SUMMARY_KEYS if k in metrics
            and k != "time/total_s"][:DESCRIBE_KEYS]
    if "time/total_s" in metrics:
        rows.append(["time/total_s", f"{metrics['time/total_s']:.1f}"])
    return text + "\n\n" + markdown_table(["metric", "value"], rows)
