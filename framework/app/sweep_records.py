"""What a sweep records and reads back, and how its launching process ends it.

The sweep folder's bookkeeping (``.spiketune/parent.json`` and one ``job-*.json`` per job), each
job's tags and run name, the parent run's counts, and :func:`guard`, which the CLI puts around the
Hydra app. The Hydra callback that writes the records is
:class:`framework.app.sweeps.SweepCallback`; this module imports no Hydra at its top, so that the
CLI's ``--help`` does not.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from framework import conversion, lifecycle
from framework.errors import EXIT_USER, UserError, interruption
from framework.redact import redact
from framework.report import SHORT_KEYS
from framework.schema import override_key
from framework.tracking.store import open_store, retry

STATE_DIR = ".spiketune"  # inside the sweep dir: the parent run's id and one record per job
PARENT_FILE = "parent.json"
LOCK_FILE = "sweep.lock"  # held by the sweep running in the folder
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
class Active:
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

    active: Active | None = None  # the sweep running now
    outcome: Outcome | None = None  # how the last one ended
    lock: FileLock | None = None  # held on the running sweep's folder


current = _State()


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


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): readers in other processes never see half a file.
    Passwords are masked: the records hold the store's URI and each job's overrides."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(redact(json.dumps(obj, indent=1)))
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
    """A job's run name: the values it was swept to, under short keys (``scale=20 lif``), so that
    siblings' names differ in their first words.

    Parameters
    ----------
    overrides : list of str
        The job's overrides (``hydra.overrides.task``).
    swept_keys : list of str
        The keys the sweep varies (:func:`swept`): only these name the job, in the order the
        sweep gave them, so the overrides every job shares do not. Empty: all of the job's
        overrides.
    groups : set of str
        Config groups (``hydra.runtime.choices``): a group's choice is named by its value alone.
    """
    # Hydra is imported where a sweep is parsed, not with this module: `spiketune --help` (whose
    # CLI imports this module) imports no Hydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - Hydra parsed these already; a name is never worth a failure
        return ""
    items = [(ov.key_or_group, ov) for ov in parsed]
    chosen = sorted((kv for kv in items if kv[0] in swept_keys),
                    key=lambda kv: swept_keys.index(kv[0])) or items
    # a search samples every key in every trial: a setting the job's conversion did not use (a
    # scale under data-based normalisation) names nothing
    idle = conversion.unused({key: str(ov.input_line).split("=", 1)[-1] for key, ov in chosen})
    chosen = [kv for kv in chosen if kv[0] not in idle] or chosen
    short = short_names([k for k, _ in chosen])
    words = []
    for key, ov in chosen:
        name = SHORT_KEYS.get(short[key], short[key])
        if ov.is_delete():
            words.append(f"~{name}")
            continue
        value = _shorter_value(str(ov.input_line).split("=", 1)[1] if "=" in str(ov.input_line)
                               else "")
        words.append(value if key in groups else f"{name}={value}")
    return " ".join(words)


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep will run: the product of its choice and range sweeps, or a search
    sweeper's ``n_trials``; None when the sweep cannot be counted before it runs (``glob``)."""
    # Hydra is imported where a sweep is parsed, not with this module: `spiketune --help` (whose
    # CLI imports this module) imports no Hydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

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
    return f"sweep {what}{jobs_suffix(n_jobs)}"


def jobs_suffix(n_jobs: int | None) -> str:
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
    keys = {override_key(o) for o in given}
    params = config.hydra.sweeper.get("params") or {}
    return given + [f"{k}={v}" for k, v in params.items() if k not in keys]


def swept(config: DictConfig) -> dict[str, str]:
    """``key -> values`` of the overrides that sweep (``simulation.n_steps -> 30,60,120``)."""
    # Hydra is imported where a sweep is parsed, not with this module: `spiketune --help` (whose
    # CLI imports this module) imports no Hydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = {}
    for ov in OverridesParser.create().parse_overrides(sweep_overrides(config)):
        if ov.is_sweep_override():
            out[ov.get_key_element().lstrip("+~")] = str(ov.input_line).split("=", 1)[1]
    return out


def say(text: str) -> None:
    print(f"[sweep] {redact(text)}", file=sys.stderr, flush=True)


def user_exit(message: str) -> NoReturn:
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


def tally(client: Client, state: Active, end_running: str, why: str) -> Outcome:
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


def log_counts(client: Client, run_id: str, outcome: Outcome) -> None:
    from mlflow.entities import Metric  # MLflow is heavy: only once a sweep has ended

    now = int(time.time() * 1000)
    retry(client.log_batch, run_id, metrics=[
        Metric("sweep/jobs", outcome.jobs, now, 0),
        Metric("sweep/finished", outcome.finished, now, 0),
        Metric("sweep/failed", outcome.failed, now, 0)])


def hold(sweep_dir: Path) -> None:
    """Take the sweep folder's lock, or refuse the sweep (exit 2): another one is running in it."""
    try:
        (sweep_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        user_exit(f"hydra.sweep.dir: cannot use {sweep_dir}: {ex.strerror or ex}")
    lock = FileLock(str(sweep_dir / STATE_DIR / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        user_exit(f"hydra.sweep.dir: {sweep_dir} is in use by a sweep running now; give each "
                   f"sweep its own folder, or leave hydra.sweep.dir unset (each sweep then gets "
                   f"one of its own)")
    except (OSError, NotImplementedError) as ex:  # a filesystem without locks: go on unguarded
        say(f"sweep dir {sweep_dir}: cannot be locked ({ex}); two sweeps given it at once "
             f"would mix their records")
        return
    current.lock = lock


def release() -> None:
    """Free the sweep folder for the next sweep."""
    lock, current.lock = current.lock, None
    if lock is not None:
        with contextlib.suppress(Exception):
            lock.release()


# ----------------------------------------------------------------------- the launching process
def abort(status: str, why: str) -> None:
    """End the active sweep's parent ``status`` (KILLED or FAILED), and its RUNNING children too."""
    state, current.active = current.active, None
    if state is None:
        release()
        return
    with lifecycle.shielded():  # the second signal of a burst must not cut the ending short
        try:
            client = open_store(state.uri)
            outcome = tally(client, state, status, why)
            log_counts(client, state.parent_run_id, outcome)
            retry(client.set_tag, state.parent_run_id, "error", why)
            retry(client.set_terminated, state.parent_run_id, status)
            say(f"parent run {state.parent_run_id} {status}: {why}")
        except BaseException as ex:  # noqa: BLE001 - never mask the original error
            say(f"could not end parent run {state.parent_run_id}: {type(ex).__name__}: {ex}")
        finally:
            release()


def last_outcome() -> Outcome | None:
    """The outcome of the sweep that just ended in this process, if any."""
    return current.outcome


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
    current.outcome = None
    with lifecycle.burst_proof():
        try:
            yield
        except BaseException as ex:
            _end_interrupted(ex)
            raise
        finally:
            # a sweep left active here means the app returned without on_multirun_end
            abort("FAILED", "the sweep ended before all jobs reported")
    outcome = current.outcome
    if outcome is not None and outcome.failed:
        raise UserError(f"{outcome.failed} of {outcome.jobs} sweep jobs failed; their errors are "
                        f"on their runs: spiketune-compare --parent {outcome.parent_run_id}")
