"""The run: config → data → network (build, train, convert, simulate) → analyses → tracking.

``run(cfg)`` is the single entry point (the CLI calls it once per Hydra job). Every stage announces
itself; a failure ends the MLflow run FAILED with a one-line ``error`` tag, a signal (or a burst of
them) KILLED; a run SIGKILL cut short is ended by the next start (``tracking.end_orphans``). A run
that finishes carries its verdict (framework/health.py): ``spiketune.health`` ok or warn."""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework import health, limits, plugin_host, report
from framework.config import Config, validate
from framework.data.base import split_csv
from framework.errors import UserError, interruption
from framework.lifecycle import shielded
from framework.networks import network_for
from framework.objective import score
from framework.progress import Console
from framework.resolve import network_nodes, prepare_data, record_config, resolve_defaults, resolved
from framework.tracking.links import ui_base
from framework.tracking.model import check_register, log_run_model
from framework.tracking.store import Tracker, resolve_uri


@dataclass
class RunResult:
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    artifact_uri: str = ""
    objective: float | None = None  # the ``objective`` metric (over budget: see objective.py)


def run(cfg: Any, console: Console | None = None, tags: dict[str, Any] | None = None) -> RunResult:
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
    t0 = time.perf_counter()
    console = console or Console()
    obj = validate(cfg)
    plugin_host.check_names(obj.analysis)
    limits.configure(obj.limits.memory_gb)
    uri = resolve_uri(obj.tracking.uri)
    console.stage("tracking", uri)
    ui = ui_base(obj.tracking.ui_url, uri)  # a bad one: before the run
    check_register(obj.tracking.register)
    tags = dict(tags or {})
    for tag in obj.tags:  # the user's own labels, as given: name or name:value
        tag_name, _, tag_value = str(tag).partition(":")
        tags[tag_name.strip()] = tag_value.strip() or "true"
    tracker = Tracker(uri, obj.tracking.experiment, report.run_name(obj, tags, uri), tags=tags,
                      system_metrics=obj.tracking.system_metrics)
    scratch = Path(tempfile.mkdtemp(prefix="spiketune-run-"))
    try:
        metrics, found = _stages(cfg, obj, tracker, console, scratch)
        metrics["time/total_s"] = time.perf_counter() - t0
        tracker.metrics({"time/total_s": metrics["time/total_s"]})
        value = score(obj, metrics, tracker, console)
        report.finish(cfg, obj, tracker, metrics, found, scratch)
        tracker.end("FINISHED")
        report.summary(console, tracker, metrics, ui, found)
        return RunResult(tracker.run_id, "FINISHED", metrics, artifact_uri=tracker.artifact_uri,
                         objective=value)
    except BaseException as ex:
        _end_failed(ex, cfg, obj, tracker, console, ui)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stages(cfg: Any, obj: Config, tracker: Tracker, console: Console,
            scratch: Path) -> tuple[dict[str, float], list[health.Finding]]:
    """Data, network, analyses and model logging, in order; the run's metrics and verdict."""
    metrics: dict[str, float] = {}
    data, names, checks = None, None, list[health.Finding]()
    try:
        if obj.model.reads_data:
            console.stage("data", obj.dataset.name)
            data, scaling, said = prepare_data(obj, checks)
        else:
            said = resolve_defaults(obj, None, checks)
    except BaseException:
        record_config(cfg, obj, tracker)  # as composed: nothing followed the data
        raise
    for line in said:
        console.say(line)
    record_config(cfg, obj, tracker)
    if data is not None:
        names = plugin_host.select(obj.analysis, data)  # a named one that cannot run: now
        tracker.artifact_text(json.dumps(scaling, indent=1), "scaling.json")
        metrics.update({f"data/{key}": value for key, value in data.notes.items()})
        tracker.dataset(data)
        tracker.artifact_text(split_csv(data), "split.csv")
    built = network_for(obj.model)(network_nodes(obj), data, tracker, console, scratch)
    metrics.update(built.metrics)
    t = time.perf_counter()
    names = names or plugin_host.select(obj.analysis, built.context.data)
    found, upload = plugin_host.run_analyses(built.context, names, obj.analyses,
                                             obj.tracking.plots, scratch, console, later=True)
    tracker.artifact_dir(upload)
    metrics.update(found)
    metrics["time/analysis_s"] = time.perf_counter() - t
    tracker.metrics(metrics)
    checks = health.findings(metrics, report.facts(obj, data, checks + built.findings), obj.health)
    if built.trained is not None and obj.tracking.log_model:
        config_yaml = resolved(cfg, obj, layer_scales=True)
        metrics.update(log_run_model(tracker, built.trained, config_yaml, obj.tracking.register,
                                     console))
    return metrics, checks


def _end_failed(ex: BaseException, cfg: Any, obj: Config, tracker: Tracker, console: Console,
                ui: str) -> None:
    """End the run KILLED (a signal) or FAILED (with its one-line error); a burst's later
    signals are recorded, not raised into the ending (lifecycle.shielded)."""
    with shielded():
        why = interruption(ex)
        if why:
            tracker.end("KILLED", why)
        else:
            msg = (str(ex) if isinstance(ex, UserError)
                   else f"internal error: {type(ex).__name__}: {ex}")
            first = msg.splitlines()[0] if msg else type(ex).__name__
            with contextlib.suppress(Exception):  # the record never hides the error
                report.failed(cfg, obj, tracker, first, console, ui)
            tracker.end("FAILED", first)
    if why:
        raise KeyboardInterrupt(why) from None
