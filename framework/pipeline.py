"""The run: config → dataset → model → conversion/training → simulation → analyses → tracking.

``run(cfg)`` is the single entry point, used by the CLI (one call per Hydra job) and by Python code.
Every stage announces itself; any failure ends the MLflow run FAILED with a one-line ``error`` tag,
and a signal ends it KILLED, so no run is ever left looking finished.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import analysis as analysis_mod
from .config import to_flat_params, validate
from .errors import UserError, check_interrupt, interruption
from .progress import Console, table

#: metrics shown in the end-of-run summary, in this order, when the run has them
SUMMARY_KEYS = ["rate/accuracy", "spiking/accuracy", "rate/mse", "spiking/mse",
                "rate/angle_error_deg", "spiking/angle_error_deg", "firing/mean_rate_hz",
                "firing/max_rate_hz", "firing/silent_fraction", "threshold/x_intercept_median",
                "tuning/tuned_fraction", "tuning/median_r2", "tuning/pv_angle_error_deg",
                "tuning/ole_angle_error_deg",
                "time/total_s"]


@dataclass
class RunResult:
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    artifact_uri: str = ""


def task_metrics(prefix: str, outputs: np.ndarray, data, idx: np.ndarray) -> dict[str, float]:
    """Accuracy (classification) or MSE (regression), and the reach angle error where it applies."""
    y = data.y_test[idx]
    if data.classification:
        m = {f"{prefix}/accuracy": float(np.mean(np.argmax(outputs, axis=-1) == y))}
        if data.has_directions and data.name == "reach":
            k = data.n_outputs
            err = angle_diff(np.argmax(outputs, axis=-1) * 360.0 / k, data.dir_test[idx])
            m[f"{prefix}/angle_error_deg"] = float(np.mean(np.abs(err)))
        return m
    y = y.reshape(len(y), -1)
    m = {f"{prefix}/mse": float(np.mean((outputs - y) ** 2))}
    if data.has_directions and y.shape[1] == 2:
        pred = np.rad2deg(np.arctan2(outputs[:, 1], outputs[:, 0]))
        err = angle_diff(pred, data.dir_test[idx])
        m[f"{prefix}/angle_error_deg"] = float(np.mean(np.abs(err)))
    return m


def angle_diff(a, b) -> np.ndarray:
    """a − b wrapped to [−180, 180) degrees."""
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


def run_name(cfg) -> str:
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
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
    from .tracking import Tracker, resolve_uri

    t0 = time.perf_counter()
    console = console or Console()
    obj = validate(cfg)
    analysis_mod.check_names(obj.analysis)
    console.stage("tracking", resolve_uri(obj.tracking.uri))
    tracker = Tracker(resolve_uri(obj.tracking.uri), obj.tracking.experiment, run_name(obj),
                      tags=tags)
    scratch = Path(__import__("tempfile").mkdtemp(prefix="spiketune-run-"))
    try:
        from omegaconf import OmegaConf

        tracker.params(to_flat_params(cfg))
        tracker.artifact_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        metrics = _run_stages(obj, tracker, console, scratch)
        metrics["time/total_s"] = time.perf_counter() - t0
        tracker.metrics({"time/total_s": metrics["time/total_s"]})
        tracker.end("FINISHED")
        _summary(console, tracker, metrics)
        return RunResult(tracker.run_id, "FINISHED", metrics, artifact_uri=tracker.artifact_uri)
    except BaseException as ex:
        why = interruption(ex)
        if why:
            tracker.end("KILLED", why)
            raise KeyboardInterrupt(why) from None
        msg = str(ex) if isinstance(ex, UserError) else f"internal error: {type(ex).__name__}: {ex}"
        tracker.end("FAILED", msg.splitlines()[0] if msg else type(ex).__name__)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_stages(cfg, tracker, console: Console, scratch: Path) -> dict[str, float]:
    from . import datasets

    metrics: dict[str, float] = {}
    if cfg.model.name == "ensemble":
        from .ensemble import run_ensemble

        console.stage("model", "native Nengo ensemble")
        ctx, metrics = run_ensemble(cfg, console)
    else:
        console.stage("data", cfg.dataset.name)
        data = datasets.load(cfg.dataset, cfg.seed)
        for key, value in data.notes.items():
            metrics[f"data/{key}"] = value
        names = analysis_mod.select(cfg.analysis, data)
        tracker.dataset(data)
        ctx = _network(cfg, data, tracker, console, scratch, metrics)
        ctx.extras["analyses"] = names
    t = time.perf_counter()
    names = ctx.extras.get("analyses") or analysis_mod.select(cfg.analysis, ctx.data)
    metrics.update(_analyses(cfg, ctx, names, tracker, console, scratch))
    metrics["time/analysis_s"] = time.perf_counter() - t
    tracker.metrics(metrics)
    return metrics


def _network(cfg, data, tracker, console, scratch, metrics) -> analysis_mod.Context:
    """Build, train, convert and simulate a Keras network; returns what the analyses read."""
    console.stage("model", f"{cfg.model.name}, importing TensorFlow")
    from . import quiet

    quiet.tensorflow()
    from . import models, neurons
    from .simulation import evaluate_rates, simulate
    from .training import train

    model = models.build(cfg.model, data, cfg.seed)
    for note in getattr(model, "spiketune_notes", []):
        console.say(note)
    n_params = int(model.count_params())
    tracker.tag("model_params", n_params)
    if cfg.model.name == "keras_file":  # which file, exactly: its absolute path and sha256
        from .keras_io import file_tags

        for key, value in file_tags(cfg.model).items():
            tracker.tag(key, value)
    summary: list[str] = []
    model.summary(print_fn=summary.append)
    tracker.artifact_text("\n".join(summary), "model_summary.txt")
    neuron_type = neurons.build(cfg.neuron)
    # a misspelt analyses.layers is refused now, not after training and simulation
    check_layer_names(cfg, [layer.name for layer in models.hidden_layers(model)])
    check_interrupt()

    t = time.perf_counter()
    if getattr(cfg.model, "train", True):
        console.stage("train",
                      f"{cfg.training.epochs} epochs, {cfg.neuron.name} rate approximation")
    else:
        console.stage("train", "skipped (model.train=false): the saved weights as they are")
    from .cache import trained

    result, cached = trained(cfg, model, data, neuron_type, scratch, console, train)
    tracker.tag("training_cache", "hit" if cached else "miss")
    metrics["time/train_s"] = time.perf_counter() - t
    if result.loss:
        tracker.series("train/loss", result.loss)
    metrics.update(result.regularizers)

    t = time.perf_counter()
    console.stage("simulate", f"{cfg.simulation.n_steps} steps, synapse {cfg.simulation.synapse}, "
                  f"scale {cfg.simulation.scale_firing_rates:g}")
    rate_out = evaluate_rates(model, result.params, data, cfg, neuron_type)
    metrics.update(task_metrics("rate", rate_out, data, np.arange(len(data.x_test))))
    sim = simulate(model, result.params, data, cfg, neuron_type, console)
    metrics.update(task_metrics("spiking", sim.outputs, data, sim.sample))
    metrics["time/simulate_s"] = time.perf_counter() - t
    ctx = analysis_mod.Context(cfg=cfg, data=data, layers=[], dt=cfg.simulation.dt,
                               n_steps=sim.n_steps, sample=sim.sample, seed=cfg.seed)
    ctx.layers = select_layers(cfg, sim.layers)
    ctx.extras["outputs"] = sim.outputs
    return ctx


def check_layer_names(cfg, names: list[str]) -> list[str]:
    """The layers ``analyses.layers`` names (all ``names`` when empty); refuses unknown ones."""
    wanted = list(cfg.analyses.layers) or list(names)
    for i, name in enumerate(wanted):
        if name not in names:
            raise UserError(f"analyses.layers[{i}]: no layer '{name}'; layers with neurons: "
                            f"{', '.join(names)}")
    return wanted


def select_layers(cfg, built) -> list[analysis_mod.Layer]:
    """The analysed layers and neurons: ``analyses.layers`` (all by default) and a seeded sample
    of at most ``analyses.max_neurons`` per layer."""
    from . import neurons

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
        out.append(analysis_mod.Layer(
            name=b.name, neuron_type=b.neuron_type, threshold=neurons.threshold(b.neuron_type),
            index=idx, gain=b.gain[idx], bias=b.bias[idx],
            rates=None if b.rates is None else b.rates[:, idx],
            spikes=None if b.spikes is None else b.spikes[..., idx]))
    return out


def _analyses(cfg, ctx, names, tracker, console, scratch) -> dict[str, float]:
    """Run the chosen analyses; write neurons.csv, their tables and (lazily drawn) plots."""
    metrics: dict[str, float] = {}
    frame = analysis_mod.neuron_table(ctx.layers)
    figures = {}
    for name in names:
        console.stage("analyse", name)
        plugin = analysis_mod.ANALYSES.get(name, "analysis")()
        res = plugin.run(ctx, getattr(cfg.analyses, name))
        metrics.update(res.metrics)
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


def _summary(console: Console, tracker, metrics: dict[str, float]) -> None:
    rows = [(k, f"{metrics[k]:.4g}") for k in SUMMARY_KEYS if k in metrics]
    console.say(table(rows, "summary"))
    console.say(f"run {tracker.run_id} FINISHED in {tracker.uri}")
    console.say(f"open the UI: spiketune-ui   (or: mlflow ui --backend-store-uri {tracker.uri})")
