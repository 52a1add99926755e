"""What a run says when it ends: the summary table and UI links on the terminal, the run's name,
and its description in MLflow (``mlflow.note.content``)."""
from __future__ import annotations

import contextlib
from typing import Any

from framework.paths import default_uri
from framework.progress import Console, table
from framework.tracking.links import UI_DEFAULT, markdown_table, ui_base
from framework.tracking.store import Tracker

#: metrics shown in the end-of-run summary, in this order, when the run has them
SUMMARY_KEYS = ["keras/accuracy", "rate/accuracy", "spiking/accuracy", "keras/mse", "rate/mse",
                "spiking/mse", "keras/angle_error_deg", "rate/angle_error_deg",
                "spiking/angle_error_deg", "firing/mean_rate_hz",
                "firing/max_rate_hz", "firing/silent_fraction", "threshold/x_intercept_median",
                "firing/saturated_fraction", "tuning/directional_fraction",
                "tuning/cosine_fraction", "tuning/median_r2", "tuning/pv_angle_error_deg",
                "tuning/ole_angle_error_deg",
                "time/total_s"]


def run_name(cfg: Any, tags: dict[str, Any] | None = None) -> str:
    """``tracking.run_name``; else a sweep job's name, what the job changed (``lif n_steps=50``,
    :func:`framework.app.sweeps.job_label`, in ``tags``); else ``<dataset>-<model>-<neuron>``."""
    if cfg.tracking.run_name:
        return str(cfg.tracking.run_name)
    if tags and tags.get("mlflow.runName"):
        return str(tags["mlflow.runName"])
    return f"{cfg.dataset.name}-{cfg.model.name}-{cfg.neuron.name}"


def summary(console: Console, tracker: Tracker, metrics: dict[str, float], ui: str = "") -> None:
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


def describe(obj: Any, tracker: Tracker, metrics: dict[str, float],
             error: str | None = None) -> str:
    """The run's description (``mlflow.note.content``, Markdown): what ran, on what, and its
    headline metrics (the summary's first :data:`DESCRIBE_KEYS`), or the error it ended with."""
    what = [f"dataset `{obj.dataset.name}`", f"model `{obj.model.name}`",
            f"neuron `{obj.neuron.name}`"]
    if obj.model.reads_data:  # a converted network: trained (or not), simulated for n steps
        trains = obj.model.trains()
        what += [f"{obj.training.epochs} epochs" if trains else "not trained (model.train=false)",
                 f"{obj.simulation.n_steps} steps of {obj.simulation.dt * 1e3:g} ms",
                 "synapse " + ("none" if obj.simulation.synapse is None
                               else f"{obj.simulation.synapse * 1e3:g} ms")]
    overrides = tracker.tags.get("spiketune.overrides")
    if overrides is None:
        with contextlib.suppress(Exception):  # outside Hydra (a Python caller) there are none
            from hydra.core.hydra_config import HydraConfig  # only inside a Hydra job

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
