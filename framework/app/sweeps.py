"""Multiruns as one parent MLflow run with a child run per job (a Hydra callback).

``spiketune -m ...`` runs :class:`SweepCallback` (wired in ``conf/config.yaml`` as
``hydra.callbacks.sweep``):

* ``on_multirun_start`` (launching process, before any job): opens the store, creates the experiment
  and a parent run named after the sweep, and writes ``<sweep dir>/.spiketune/parent.json``.
  Creating the store and experiment here, once, is what keeps parallel jobs from racing to create
  them.
* every job, in whatever process or machine the launcher runs it, reads that file
  (:func:`job_tags`) and tags its run ``mlflow.parentRunId``; ``on_job_start``/``on_job_end`` leave
  a record per job beside it, so a job that died before reaching MLflow is still counted.
* ``on_multirun_end`` (launching process): counts the children by their parent tag, logs
  ``sweep/jobs``, ``sweep/finished``, ``sweep/failed`` on the parent, optionally logs the
  ``spiketune-compare`` table and plots to it, and ends it FINISHED (FAILED if every job failed).

The CLI wraps the Hydra app in :func:`guard` (:mod:`framework.app.sweep_records`, which holds the
records and imports no Hydra at its top): after a sweep with failed jobs it exits 2; an interrupted
sweep ends the parent and any still-RUNNING child KILLED.

Sweeps cannot collide. The default ``hydra.sweep.dir`` ends in the launching process's own id
(``<time>-<launch id>``), so any number of sweeps started at once, even in the same second, each get
a folder and bookkeeping of their own. A folder given explicitly (``hydra.sweep.dir=...``) to two
sweeps running at once is refused to the second, with one line and exit 2, before it writes
anything: a lock in ``.spiketune/`` is held by the first until it ends (the kernel's lock, so a
killed sweep frees it). Refused rather than shared, because the jobs' own folders (``0/``, ``1/``:
Hydra's configs and logs) and ``compare/`` would be mixed even if the bookkeeping were kept apart;
the same folder reused *after* a sweep ended is fine, as before.

In another process than the launcher (joblib, submitit, Ray on this host) each job starts a
watchdog (:func:`framework.lifecycle.watch_launcher`): if the launcher dies (SIGKILL), the worker
ends its run KILLED and exits; the parent, whose owner is gone, is ended KILLED by the next
spiketune start (:func:`framework.tracking.store.end_orphans`).
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any, cast

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from framework import lifecycle, paths
from framework.app import startup
from framework.app.compare import compare
from framework.app.conclusions import Section, check_objectives, directions, frontier, seed_spread
from framework.app.sweep_records import (  # noqa: F401 - served here too, as before
    LOCK_FILE,
    PARENT_FILE,
    STATE_DIR,
    Active,
    Client,
    Outcome,
    abort,
    children,
    count_jobs,
    current,
    guard,
    hold,
    job_label,
    job_records,
    job_tags,
    jobs_suffix,
    last_outcome,
    log_counts,
    parent_label,
    read_state,
    release,
    say,
    short_names,
    sweep_dir_of,
    sweep_overrides,
    swept,
    tally,
    user_exit,
    write_json,
)
from framework.errors import UserError
from framework.redact import redact
from framework.report import sweep_report
from framework.tracking.links import REPORT, ui_base, ui_links
from framework.tracking.model import check_register
from framework.tracking.store import end_orphans, experiment_id, open_store, resolve_uri, retry
from framework.tracking.tags import base_tags

#: config keys a sweep may not vary: the parent lives in one store and one experiment
UNSWEEPABLE = ("tracking", "tracking.uri", "tracking.experiment")


def _open_experiment(config: DictConfig) -> tuple[str, str, Client, str]:
    """``(uri, ui, client, experiment id)`` of the sweep's store; a bad store, experiment or
    ``tracking.register`` exits 2 with one line."""
    try:
        uri = resolve_uri(config.tracking.uri)
        ui = ui_base(str(config.tracking.get("ui_url") or ""), uri)
        check_register(str(config.tracking.get("register") or ""))
        client = open_store(uri)
        exp_id = retry(experiment_id, client, config.tracking.experiment, uri)
    except UserError as ex:
        user_exit(str(ex))
    return uri, ui, client, str(exp_id)


def _parent_tags(config: DictConfig, sweep_dir: Path) -> dict[str, str]:
    """The parent run's tags: the standard ones, its role, folder, overrides and launcher."""
    tags = {**base_tags(job=False),
            "spiketune.sweep": "parent", "spiketune.sweep_dir": str(sweep_dir),
            "spiketune.overrides": " ".join(sweep_overrides(config)),
            "spiketune.launcher": str((config.hydra.runtime.get("choices") or {})
                                      .get("hydra/launcher", "basic"))}
    return {k: redact(str(v)) for k, v in tags.items()}


def _log_sweep_config(client: Client, run_id: str, config: DictConfig,
                      varied: dict[str, str]) -> None:
    """The swept values as ``sweep.<key>`` params and the sweep's config (without ``hydra``) as
    ``sweep_config.yaml``, both redacted."""
    from mlflow.entities import Param  # MLflow is heavy: only once a sweep starts

    params = [Param(f"sweep.{k}", redact(str(v))[:6000]) for k, v in sorted(varied.items())]
    for i in range(0, len(params), 100):
        retry(client.log_batch, run_id, params=params[i:i + 100])
    container = cast(dict[str, Any], OmegaConf.to_container(config, resolve=False))
    retry(client.log_text, run_id, redact(OmegaConf.to_yaml(
        {k: v for k, v in container.items() if k != "hydra"})), "sweep_config.yaml")


class SweepCallback(Callback):
    """Hydra callback: one parent MLflow run per multirun, children counted at its end.

    Parameters
    ----------
    compare : bool
        At the end, run ``spiketune-compare`` on the sweep's children and log its table and plots
        (the accuracy/firing-rate trade-off among them) to the parent run under ``compare/``.
    """

    def __init__(self, compare: bool = True) -> None:
        self.compare = compare

    # The instance is pickled into launcher workers (joblib, submitit): it holds only plain data.
    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled in a launcher's worker: the start-up runs before Hydra resolves the job's
        # config there (its hydra.sweep.dir uses ${spiketune_outputs:})
        startup.start()
        self.__dict__.update(state)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        current.outcome = None
        varied = swept(config)
        for key in UNSWEEPABLE:
            if key in varied:
                user_exit(f"{key}: a sweep logs to one store and experiment; run one sweep per "
                           f"value instead of sweeping it")
        problem = check_objectives([str(k) for k in config.get("objectives") or []],
                                   config.hydra.sweeper.get("direction"))
        if problem:
            user_exit(problem)
        sweep_dir = sweep_dir_of(config.hydra)
        uri, ui, client, exp_id = _open_experiment(config)
        hold(sweep_dir)
        end_orphans(client, exp_id)
        name = parent_label(config, count_jobs(config))
        tags = _parent_tags(config, sweep_dir)
        for stale in (sweep_dir / STATE_DIR).glob("job-*.json"):  # a reused hydra.sweep.dir
            stale.unlink(missing_ok=True)
        pid = retry(client.create_run, exp_id, run_name=name, tags=tags).info.run_id
        _log_sweep_config(client, pid, config, varied)
        # the jobs name their runs by their values of the swept keys (job_tags), read from here
        write_json(sweep_dir / STATE_DIR / PARENT_FILE,
                    {"parent_run_id": pid, "name": name, "uri": uri,
                     "experiment": config.tracking.experiment, "experiment_id": exp_id,
                     "swept": list(varied), "ui": ui,
                     "launcher": lifecycle.owner_tags()})
        current.active = Active(uri, exp_id, pid, sweep_dir, ui, name,
                                " ".join(f"{k}={v}" for k, v in varied.items()))
        say(f"{name}: parent run {pid} in {uri}")
        say(f"sweep dir {sweep_dir}")
        say(f"watch it in the MLflow UI (spiketune-ui): {ui_links(ui, exp_id, '', pid)['sweep']}")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self._multirun(config):
            return
        state = read_state(sweep_dir_of(config.hydra)) or {}
        launcher = lifecycle.owner_of(state.get("launcher") or {})
        if launcher is not None:  # a worker of this host stops when its launcher dies
            lifecycle.watch_launcher(launcher)
        write_json(self._record(config), {
            "num": int(config.hydra.job.num), "status": "RUNNING",
            "overrides": list(config.hydra.overrides.task), "host": socket.gethostname(),
            "pid": os.getpid()})

    def on_job_end(self, config: DictConfig, job_return: JobReturn | None = None,
                   **kwargs: Any) -> None:
        if not self._multirun(config):
            return
        path = self._record(config)
        record = (json.loads(path.read_text()) if path.exists()
                  else {"num": int(config.hydra.job.num)})
        if job_return is not None and job_return.status == JobStatus.COMPLETED:
            value = job_return.return_value if isinstance(job_return.return_value, dict) else {}
            record.update(status=value.get("status", "FINISHED"), run_id=value.get("run_id"),
                          error=value.get("error"))
        else:
            err = getattr(job_return, "_return_value", None)
            record.update(status="FAILED", error=f"{type(err).__name__}: {err}" if err else None)
        write_json(path, record)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        state = current.active
        if state is None:
            return
        client = open_store(state.uri)
        outcome = tally(client, state, "FAILED", "the job ended without closing its run")
        log_counts(client, state.parent_run_id, outcome)
        if self.compare and outcome.finished:
            self._compare(client, state)
        sections = _conclude(client, state, config) if outcome.finished else []
        status = "FAILED" if outcome.jobs and not outcome.finished else "FINISHED"
        with lifecycle.shielded():  # a signal now would leave the parent RUNNING
            if outcome.failed:
                retry(client.set_tag, state.parent_run_id, "error",
                      f"{outcome.failed} of {outcome.jobs} jobs failed")
            self._finish_record(client, state, outcome, sections)
            retry(client.set_terminated, state.parent_run_id, status)
            current.active, current.outcome = None, outcome
            release()
        say(f"{outcome.jobs} jobs: {outcome.finished} finished, {outcome.failed} failed; "
             f"parent run {state.parent_run_id} {status}")
        _say_links(state)

    @staticmethod
    def _finish_record(client: Client, state: Active, outcome: Outcome,
                       sections: list[Section]) -> None:
        """The parent's name with the real job count (when the sweep could not be counted before
        it ran, or ran a different number), and its description: what was swept, how the jobs
        went, what the sweep concludes (``sections``), their headline metrics."""
        runs = sorted(children(client, state.experiment_id, state.parent_run_id),
                      key=lambda r: int(r.data.tags.get("spiketune.job", "0") or 0))
        name = re.sub(r" \(\d+ jobs?\)$", "", state.name)
        if name.startswith("sweep "):  # a tracking.run_name is kept exactly as given
            name = f"{name}{jobs_suffix(outcome.jobs)}"
            if name != state.name:
                retry(client.update_run, state.parent_run_id, name=name)
        head = f"{outcome.jobs} jobs, {outcome.finished} finished, {outcome.failed} failed."
        text, page = sweep_report(name, head, state.varies, runs, state.ui,
                                  state.sweep_dir / "compare" / "plots",
                                  [(s.markdown, *s.html) for s in sections])
        retry(client.set_tag, state.parent_run_id, "mlflow.note.content", redact(text))
        retry(client.log_text, state.parent_run_id, redact(page), REPORT)

    @staticmethod
    def _compare(client: Client, state: Active) -> None:
        """Log the comparison (table CSV, trade-off and per-parameter plots) to the parent."""
        out = state.sweep_dir / "compare"
        try:
            result = compare(state.uri, parent=state.parent_run_id, out=out, stream=sys.stderr)
        except Exception as ex:  # noqa: BLE001 - a plot must never fail the sweep
            say(f"compare skipped: {type(ex).__name__}: {ex}")
            return
        retry(client.log_artifacts, state.parent_run_id, str(result.out), "compare")
        say(f"compare: {result.out} (logged to the parent run under compare/)")

    @staticmethod
    def _multirun(config: DictConfig) -> bool:
        return bool(config.hydra.get("mode") == RunMode.MULTIRUN)

    @staticmethod
    def _record(config: DictConfig) -> Path:
        return sweep_dir_of(config.hydra) / STATE_DIR / f"job-{int(config.hydra.job.num):05d}.json"


def _conclude(client: Client, state: Active, config: DictConfig) -> list[Section]:
    """What the sweep concludes, logged to the parent (artifacts and metrics): the Pareto front
    of a multi-objective search, the spread over seeds of a sweep of ``seed`` alone."""
    runs = children(client, state.experiment_id, state.parent_run_id)
    keys = list(swept(config))
    objectives = [str(k) for k in config.get("objectives") or []]
    out = state.sweep_dir / "conclusions"
    try:
        found = [frontier(runs, objectives, directions(config.hydra.sweeper.get("direction")),
                          keys, out) if len(objectives) >= 2 else None,
                 seed_spread(client, runs, out) if keys == ["seed"] else None]
    except Exception as ex:  # noqa: BLE001 - a summary must never fail the sweep
        say(f"conclusions skipped: {type(ex).__name__}: {ex}")
        return []
    sections = [s for s in found if s is not None]
    for section in sections:
        for path in section.files:
            retry(client.log_artifact, state.parent_run_id, str(path))
        _log_metrics(client, state.parent_run_id, section.metrics)
        say(f"logged to the parent: {', '.join(p.name for p in section.files)}")
    return sections


def _log_metrics(client: Client, run_id: str, metrics: dict[str, float]) -> None:
    """Log ``metrics`` to ``run_id`` (step 0), 100 at a time."""
    from mlflow.entities import Metric  # MLflow is heavy: only once a sweep has ended

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
    for i in range(0, len(batch), 100):
        retry(client.log_batch, run_id, metrics=batch[i:i + 100])


def _say_links(state: Active) -> None:
    """How to compare the sweep's runs, and where the MLflow UI shows them."""
    say(f"compare them: spiketune-compare --parent {state.parent_run_id}"
         + (f" --uri {state.uri}" if state.uri != paths.default_uri() else ""))
    links = ui_links(state.ui, state.experiment_id, state.parent_run_id, state.parent_run_id)
    say(f"MLflow UI (spiketune-ui serves {state.ui}):")
    say(f"  sweep runs  {links['sweep']}")
    say(f"  parent run  {links['run']}")
    say(f"  all runs    {links['runs']}")
