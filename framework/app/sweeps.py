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

The CLI wraps the Hydra app in :func:`guard`: after a sweep with failed jobs it exits 2; an
interrupted sweep ends the parent and any still-RUNNING child KILLED.

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

import contextlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

from filelock import FileLock, Timeout
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from framework import lifecycle, paths
from framework.app import startup
from framework.app.compare import compare
from framework.errors import EXIT_USER, UserError, interruption
from framework.redact import redact
from framework.report import SUMMARY_KEYS
from framework.tracking.links import markdown_table, ui_base, ui_links
from framework.tracking.model import check_register
from framework.tracking.store import end_orphans, experiment_id, open_store, resolve_uri, retry
from framework.tracking.tags import base_tags

STATE_DIR = ".spiketune"  # inside the sweep dir: the parent run's id and one record per job
PARENT_FILE = "parent.json"
LOCK_FILE = "sweep.lock"  # held by the sweep running in the folder
#: config keys a sweep may not vary: the parent lives in one store and one experiment
UNSWEEPABLE = ("tracking", "tracking.uri", "tracking.experiment")
#: an ``mlflow.MlflowClient`` (MLflow is imported lazily, by the tracking layer)
Client = Any


@dataclass
class Outcome:
    """How a finished sweep went (read by :func:`guard` in the launching process)."""

    parent_run_id: str
    jobs: int
    finished: int
    failed: int


@dataclass
class _Active:
    """The sweep being run in this (launching) process."""

    uri: str
    experiment_id: str
    parent_run_id: str
    sweep_dir: Path
    ui: str = ""  # the MLflow UI's base URL for the printed links
    name: str = ""
    varies: str = ""  # the swept overrides, as given


@dataclass
class _State:
    """This launching process's sweep bookkeeping: one sweep runs at a time per process."""

    active: _Active | None = None  # the sweep running now
    outcome: Outcome | None = None  # how the last one ended
    lock: FileLock | None = None  # held on the running sweep's folder


_state = _State()


# ------------------------------------------------------------------------------------- sweep dir
def sweep_dir_of(hydra_cfg: DictConfig) -> Path:
    """The absolute sweep directory of a multirun, from the ``hydra`` node of any of its configs.

    ``${now:...}`` and ``${spiketune_launch_id:}`` in the path are cached on the launching config
    and copied into every job's config by Hydra (pickled with it for launchers whose jobs run in
    other processes), so all jobs see the same directory as the callback.
    """
    path = Path(str(hydra_cfg.sweep.dir))
    if not path.is_absolute():
        cwd = hydra_cfg.runtime.get("cwd") if "runtime" in hydra_cfg else None
        path = Path(cwd or os.getcwd()) / path
    return path


def read_state(sweep_dir: Path) -> dict[str, Any] | None:
    """The parent run written by :meth:`SweepCallback.on_multirun_start`, or None; its
    ``launcher`` holds the launching process's owner tags."""
    try:
        return cast(dict[str, Any], json.loads((sweep_dir / STATE_DIR / PARENT_FILE).read_text()))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): readers in other processes never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def job_tags(hc: DictConfig) -> dict[str, str]:
    """Tags of a sweep job's run: its parent run, its number, its overrides and its name.

    Parameters
    ----------
    hc : omegaconf.DictConfig
        ``HydraConfig.get()`` inside the job.

    Returns
    -------
    dict
        ``spiketune.sweep`` (child), ``spiketune.job``, ``spiketune.overrides``, and
        ``mlflow.runName``: what this job changed (:func:`job_label`, ``lif n_steps=50``);
        with the sweep callback, ``mlflow.parentRunId`` and ``spiketune.sweep_name``.
    """
    overrides = [str(o) for o in hc.overrides.task]
    tags = {"spiketune.sweep": "child", "spiketune.job": str(hc.job.num),
            "spiketune.overrides": " ".join(overrides)}
    state = read_state(sweep_dir_of(hc))
    if state:  # absent when the user removed the callback (~hydra.callbacks.sweep)
        tags["mlflow.parentRunId"] = state["parent_run_id"]
        tags["spiketune.sweep_name"] = state["name"]
    groups = set((hc.runtime.get("choices") or {}).keys()) if "runtime" in hc else set()
    label = job_label(overrides, list((state or {}).get("swept") or []), groups)
    if label:
        tags["mlflow.runName"] = label
    return tags


# ------------------------------------------------------------------------------------ run names
def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its last component, or by as many trailing components as tell it apart
    from the other ``keys`` (``simulation.n_steps`` -> ``n_steps``)."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if sum(1 for k in keys if k == tail or k.endswith("." + tail)) <= 1:
                break
        out[key] = tail
    return out


def _shorter_value(value: str) -> str:
    """A long float (a search sweeper's draw, 137.29384710293) to 6 significant digits; anything
    else as given. The exact value is the run's param."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.6g}" if len(value) > 8 and "." in value else value


def job_label(overrides: list[str], swept_keys: list[str], groups: set[str]) -> str:
    """A job's run name: what it changed, shortened (``lif n_steps=50``).

    Parameters
    ----------
    overrides : list of str
        The job's overrides (``hydra.overrides.task``).
    swept_keys : list of str
        The keys the sweep varies (:func:`swept`): only these name the job, in this order, so the
        overrides every job shares do not. Empty: all of the job's overrides.
    groups : set of str
        Config groups (``hydra.runtime.choices``): a group's choice is named by its value alone.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - Hydra parsed these already; a name is never worth a failure
        return ""
    items = [(ov.key_or_group, ov) for ov in parsed]
    if swept_keys:
        chosen = sorted((kv for kv in items if kv[0] in swept_keys),
                        key=lambda kv: swept_keys.index(kv[0]))
        items = chosen or items
    short = short_names([k for k, _ in items])
    words = []
    for key, ov in items:
        if ov.is_delete():
            words.append(f"~{short[key]}")
            continue
        value = _shorter_value(str(ov.input_line).split("=", 1)[1] if "=" in str(ov.input_line)
                               else "")
        words.append(value if key in groups else f"{short[key]}={value}")
    return " ".join(words)


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep will run: the product of its choice and range sweeps, or a search
    sweeper's ``n_trials``; None when the sweep cannot be counted before it runs (``glob``)."""
    trials = config.hydra.sweeper.get("n_trials")
    if trials is not None:
        return int(trials)
    total = 1
    for ov in OverridesParser.create().parse_overrides(sweep_overrides(config)):
        if ov.is_sweep_override():
            try:
                total *= len(list(ov.sweep_string_iterator()))
            except Exception:  # noqa: BLE001 - glob()/interval(): only the sweeper knows
                return None
    return total


def parent_label(config: DictConfig, n_jobs: int | None) -> str:
    """The parent run's name: what the sweep varies, ``sweep neuron×n_steps (4 jobs)``; with an
    experiment preset ``sweep conversion_sweep: scale_firing_rates×synapse (9 jobs)``; exactly
    ``tracking.run_name`` when that is set."""
    given = config.tracking.get("run_name")
    if given:
        return str(given)
    choices = config.hydra.runtime.get("choices") or {}
    keys = list(swept(config))
    short = short_names(keys)
    varies = "×".join(k if k in choices else short[k] for k in keys)
    preset = choices.get("experiment")
    what = f"{preset}: {varies}" if preset and varies else (preset or varies or "one job")
    return f"sweep {what}{_jobs_suffix(n_jobs)}"


def _jobs_suffix(n_jobs: int | None) -> str:
    """`` (4 jobs)``, `` (1 job)``; empty when the count is unknown."""
    return "" if n_jobs is None else f" ({n_jobs} job{'s' if n_jobs != 1 else ''})"


def job_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per job that started: ``num``, ``status`` (RUNNING until it ended), ``run_id``."""
    out = []
    for path in sorted((sweep_dir / STATE_DIR).glob("job-*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


# ------------------------------------------------------------------------------- sweep overrides
def sweep_overrides(config: DictConfig) -> list[str]:
    """The sweep's overrides as given: the command line's, then ``hydra.sweeper.params``."""
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    given = [str(o) for o in cast(list[Any], task)]
    keys = {o.split("=", 1)[0].lstrip("+~") for o in given}
    params = config.hydra.sweeper.get("params") or {}
    return given + [f"{k}={v}" for k, v in params.items() if k not in keys]


def swept(config: DictConfig) -> dict[str, str]:
    """``key -> values`` of the overrides that sweep (``simulation.n_steps -> 30,60,120``)."""
    out = {}
    for ov in OverridesParser.create().parse_overrides(sweep_overrides(config)):
        if ov.is_sweep_override():
            out[ov.get_key_element().lstrip("+~")] = str(ov.input_line).split("=", 1)[1]
    return out


def _say(text: str) -> None:
    print(f"[sweep] {redact(text)}", file=sys.stderr, flush=True)


def _user_exit(message: str) -> NoReturn:
    # Hydra turns exceptions raised in callbacks into a traceback and exit 1; a user error is
    # one line and exit 2, like everywhere else.
    print(f"spiketune: {redact(message)}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER)


# ------------------------------------------------------------------------------------- MLflow
def children(client: Client, experiment_id: str, parent_run_id: str) -> list[Any]:
    """Every child run of ``parent_run_id`` (any status), by the ``mlflow.parentRunId`` tag."""
    found: list[Any] = []
    token = None
    while True:
        page = retry(client.search_runs, [experiment_id],
                     filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                     max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _count(client: Client, state: _Active, end_running: str, why: str) -> Outcome:
    """Count the jobs; any child still RUNNING is ended ``end_running`` with ``why`` as error."""
    runs = children(client, state.experiment_id, state.parent_run_id)
    for run in runs:
        if run.info.status == "RUNNING":
            retry(client.set_tag, run.info.run_id, "error", why)
            retry(client.set_terminated, run.info.run_id, end_running)
    statuses = [end_running if r.info.status == "RUNNING" else r.info.status for r in runs]
    finished = statuses.count("FINISHED")
    # A job that failed before its run existed has a record but no run: count it too.
    jobs = max(len(job_records(state.sweep_dir)), len(runs))
    return Outcome(state.parent_run_id, jobs, finished, jobs - finished)


def _log_counts(client: Client, run_id: str, outcome: Outcome) -> None:
    from mlflow.entities import Metric  # MLflow is heavy: only once a sweep has ended

    now = int(time.time() * 1000)
    retry(client.log_batch, run_id, metrics=[
        Metric("sweep/jobs", outcome.jobs, now, 0),
        Metric("sweep/finished", outcome.finished, now, 0),
        Metric("sweep/failed", outcome.failed, now, 0)])


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
        _user_exit(str(ex))
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
        _state.outcome = None
        varied = swept(config)
        for key in UNSWEEPABLE:
            if key in varied:
                _user_exit(f"{key}: a sweep logs to one store and experiment; run one sweep per "
                           f"value instead of sweeping it")
        sweep_dir = sweep_dir_of(config.hydra)
        uri, ui, client, exp_id = _open_experiment(config)
        _hold(sweep_dir)
        end_orphans(client, exp_id)
        name = parent_label(config, count_jobs(config))
        tags = _parent_tags(config, sweep_dir)
        for stale in (sweep_dir / STATE_DIR).glob("job-*.json"):  # a reused hydra.sweep.dir
            stale.unlink(missing_ok=True)
        pid = retry(client.create_run, exp_id, run_name=name, tags=tags).info.run_id
        _log_sweep_config(client, pid, config, varied)
        # the jobs name their runs by their values of the swept keys (job_tags), read from here
        _write_json(sweep_dir / STATE_DIR / PARENT_FILE,
                    {"parent_run_id": pid, "name": name, "uri": uri,
                     "experiment": config.tracking.experiment, "experiment_id": exp_id,
                     "swept": list(varied), "ui": ui,
                     "launcher": lifecycle.owner_tags()})
        _state.active = _Active(uri, exp_id, pid, sweep_dir, ui, name,
                                " ".join(f"{k}={v}" for k, v in varied.items()))
        _say(f"{name}: parent run {pid} in {uri}")
        _say(f"sweep dir {sweep_dir}")
        _say(f"watch it in the MLflow UI (spiketune-ui): {ui_links(ui, exp_id, '', pid)['sweep']}")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self._multirun(config):
            return
        state = read_state(sweep_dir_of(config.hydra)) or {}
        launcher = lifecycle.owner_of(state.get("launcher") or {})
        if launcher is not None:  # a worker of this host stops when its launcher dies
            lifecycle.watch_launcher(launcher)
        _write_json(self._record(config), {
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
        _write_json(path, record)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        state = _state.active
        if state is None:
            return
        client = open_store(state.uri)
        outcome = _count(client, state, "FAILED", "the job ended without closing its run")
        _log_counts(client, state.parent_run_id, outcome)
        if self.compare and outcome.finished:
            self._compare(client, state)
        status = "FAILED" if outcome.jobs and not outcome.finished else "FINISHED"
        with lifecycle.shielded():  # a signal now would leave the parent RUNNING
            if outcome.failed:
                retry(client.set_tag, state.parent_run_id, "error",
                      f"{outcome.failed} of {outcome.jobs} jobs failed")
            self._finish_record(client, state, outcome)
            retry(client.set_terminated, state.parent_run_id, status)
            _state.active, _state.outcome = None, outcome
            _release()
        _say(f"{outcome.jobs} jobs: {outcome.finished} finished, {outcome.failed} failed; "
             f"parent run {state.parent_run_id} {status}")
        _say_links(state)

    @staticmethod
    def _finish_record(client: Client, state: _Active, outcome: Outcome) -> None:
        """The parent's name with the real job count (when the sweep could not be counted before
        it ran, or ran a different number), and its description: what was swept, how the jobs
        went, their headline metrics."""
        runs = sorted(children(client, state.experiment_id, state.parent_run_id),
                      key=lambda r: int(r.data.tags.get("spiketune.job", "0") or 0))
        name = re.sub(r" \(\d+ jobs?\)$", "", state.name)
        if name.startswith("sweep "):  # a tracking.run_name is kept exactly as given
            name = f"{name}{_jobs_suffix(outcome.jobs)}"
            if name != state.name:
                retry(client.update_run, state.parent_run_id, name=name)
        keys = [k for k in SUMMARY_KEYS if k != "time/total_s"
                and any(k in r.data.metrics for r in runs)][:3]
        rows = [[r.info.run_name or r.info.run_id[:8], r.info.status,
                 *(f"{r.data.metrics[k]:.4g}" if k in r.data.metrics else "" for k in keys)]
                for r in runs]
        text = (f"**{name}**: {outcome.jobs} jobs, {outcome.finished} finished, "
                f"{outcome.failed} failed.\n\nSwept: `{state.varies or 'nothing'}`\n\n"
                + markdown_table(["run", "status", *keys], rows))
        retry(client.set_tag, state.parent_run_id, "mlflow.note.content", redact(text))

    @staticmethod
    def _compare(client: Client, state: _Active) -> None:
        """Log the comparison (table CSV, trade-off and per-parameter plots) to the parent."""
        out = state.sweep_dir / "compare"
        try:
            result = compare(state.uri, parent=state.parent_run_id, out=out, stream=sys.stderr)
        except Exception as ex:  # noqa: BLE001 - a plot must never fail the sweep
            _say(f"compare skipped: {type(ex).__name__}: {ex}")
            return
        retry(client.log_artifacts, state.parent_run_id, str(result.out), "compare")
        _say(f"compare: {result.out} (logged to the parent run under compare/)")

    @staticmethod
    def _multirun(config: DictConfig) -> bool:
        return bool(config.hydra.get("mode") == RunMode.MULTIRUN)

    @staticmethod
    def _record(config: DictConfig) -> Path:
        return sweep_dir_of(config.hydra) / STATE_DIR / f"job-{int(config.hydra.job.num):05d}.json"


def _say_links(state: _Active) -> None:
    """How to compare the sweep's runs, and where the MLflow UI shows them."""
    _say(f"compare them: spiketune-compare --parent {state.parent_run_id}"
         + (f" --uri {state.uri}" if state.uri != paths.default_uri() else ""))
    links = ui_links(state.ui, state.experiment_id, state.parent_run_id, state.parent_run_id)
    _say(f"MLflow UI (spiketune-ui serves {state.ui}):")
    _say(f"  sweep runs  {links['sweep']}")
    _say(f"  parent run  {links['run']}")
    _say(f"  all runs    {links['runs']}")


def _hold(sweep_dir: Path) -> None:
    """Take the sweep folder's lock, or refuse the sweep (exit 2): another one is running in it."""
    try:
        (sweep_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        _user_exit(f"hydra.sweep.dir: cannot use {sweep_dir}: {ex.strerror or ex}")
    lock = FileLock(str(sweep_dir / STATE_DIR / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _user_exit(f"hydra.sweep.dir: {sweep_dir} is in use by a sweep running now; give each "
                   f"sweep its own folder, or leave hydra.sweep.dir unset (each sweep then gets "
                   f"one of its own)")
    except (OSError, NotImplementedError) as ex:  # a filesystem without locks: go on unguarded
        _say(f"sweep dir {sweep_dir}: cannot be locked ({ex}); two sweeps given it at once "
             f"would mix their records")
        return
    _state.lock = lock


def _release() -> None:
    """Free the sweep folder for the next sweep."""
    lock, _state.lock = _state.lock, None
    if lock is not None:
        with contextlib.suppress(Exception):
            lock.release()


# ----------------------------------------------------------------------- the launching process
def abort(status: str, why: str) -> None:
    """End the active sweep's parent ``status`` (KILLED or FAILED), and its RUNNING children too."""
    state, _state.active = _state.active, None
    if state is None:
        _release()
        return
    with lifecycle.shielded():  # the second signal of a burst must not cut the ending short
        try:
            client = open_store(state.uri)
            outcome = _count(client, state, status, why)
            _log_counts(client, state.parent_run_id, outcome)
            retry(client.set_tag, state.parent_run_id, "error", why)
            retry(client.set_terminated, state.parent_run_id, status)
            _say(f"parent run {state.parent_run_id} {status}: {why}")
        except BaseException as ex:  # noqa: BLE001 - never mask the original error
            _say(f"could not end parent run {state.parent_run_id}: {type(ex).__name__}: {ex}")
        finally:
            _release()


def last_outcome() -> Outcome | None:
    """The outcome of the sweep that just ended in this process, if any."""
    return _state.outcome


def _end_interrupted(ex: BaseException) -> None:
    """End the active sweep after the app raised ``ex``: KILLED on a signal (then the process
    only exits), FAILED on an error; a clean ``SystemExit`` ends nothing here."""
    why = interruption(ex)
    if why:
        abort("KILLED", why)
        if interruption():  # a real signal: nothing is left to end, the process exits
            lifecycle.exiting()
    elif not (isinstance(ex, SystemExit) and not ex.code):
        abort("FAILED", str(ex).splitlines()[0][:500] if str(ex) else type(ex).__name__)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Around the Hydra app in the CLI: an interrupted or crashed sweep ends its parent run
    KILLED or FAILED; a sweep in which any job failed raises UserError (exit 2) afterwards.

    Signals are burst-proof inside (:func:`framework.lifecycle.burst_proof`): those that follow
    the one that stopped a run by less than a second are recorded, not raised into its ending.
    """
    _state.outcome = None
    with lifecycle.burst_proof():
        try:
            yield
        except BaseException as ex:
            _end_interrupted(ex)
            raise
        finally:
            # a sweep left active here means the app returned without on_multirun_end
            abort("FAILED", "the sweep ended before all jobs reported")
    outcome = _state.outcome
    if outcome is not None and outcome.failed:
        raise UserError(f"{outcome.failed} of {outcome.jobs} sweep jobs failed; their errors are "
                        f"on their runs: spiketune-compare --parent {outcome.parent_run_id}")
