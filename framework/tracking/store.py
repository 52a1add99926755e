"""Stage 7, tracking: one MLflow run per job, through ``MlflowClient`` (no global active run).

The default store is an absolute ``sqlite:///<repo>/outputs/mlflow.db`` with artifacts in
``<repo>/outputs/mlartifacts/<experiment>``, so it is the same store from any working directory and
in multirun (``SPIKETUNE_OUTPUTS`` moves the whole outputs folder: store, artifacts, cache, Hydra
logs; the test suite points it at a temporary folder). sqlite writers from several processes can
collide when a row is created at the same moment (an experiment, a dataset); those calls are
retried. Opening a store, which may create or migrate its schema, takes a lock instead: a schema
migrated twice at once is broken for good.

Runs carry MLflow's standard tags (``mlflow.source.name``, ``mlflow.source.type``,
``mlflow.source.git.commit``, ``mlflow.user``, at the end ``mlflow.note.content``) and spiketune's
own under ``spiketune.*``; :func:`ui_links` builds the deep links into MLflow 3.17's UI that every
run and sweep prints.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from framework import lifecycle
from framework.errors import UserError, check_interrupt
from framework.paths import default_uri, launch_dir
from framework.redact import redact
from framework.tracking.links import ui_links
from framework.tracking.tags import base_tags

T = TypeVar("T")

MAX_PARAMS_PER_CALL = 100  # MLflow's limit on params in one log_batch
#: tracking-store schemes MLflow can open (``mysql+pymysql`` counts as ``mysql``)
STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks",
                 "databricks-uc", "uc")
#: per-layer and per-neuron-group detail (``firing/hidden0/mean_rate_hz``) is logged under this
#: prefix, which sorts after every headline metric in MLflow's column lists and metric views
#: (``z_detail/firing/hidden0/mean_rate_hz``); the contract's headline names stay as they are
DETAIL = "z_detail/"


def logged_name(key: str) -> str:
    """The name metric ``key`` is logged under in MLflow: :data:`DETAIL` + ``key`` for detail
    (three or more path parts, e.g. ``tuning/hidden0/median_r2``, but not a regulariser's pooled
    ``reg/<range>/<stat>``), else ``key`` itself."""
    parts = key.count("/")
    pooled = key.startswith("reg/") and parts == 2
    return f"{DETAIL}{key}" if parts >= 2 and not pooled and not key.startswith(DETAIL) else key


def resolve_uri(uri: str) -> str:
    """The tracking URI to use: the configured one, or the absolute default store.

    A relative sqlite path is made absolute from the launch directory, so Hydra's changing of the
    working directory and multirun jobs all reach the same file.
    """
    if not uri:
        return default_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        query = uri.partition("?")[2]
        return f"sqlite:///{(launch_dir() / sqlite_file(uri)).resolve()}" + (
            f"?{query}" if query else "")
    return uri


def sqlite_file(uri: str) -> Path:
    """The database file of an ``sqlite:///`` URI, without the URI's query: ``?mode=ro`` (or a
    ``?password=``) is not part of the file's name, nor of its lock's."""
    return Path(uri[len("sqlite:///"):].partition("?")[0])


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a sqlite store, else the server's
    choice."""
    if uri.startswith("sqlite:///"):
        return (sqlite_file(uri).parent / "mlartifacts").as_uri()
    return None


def _transient(ex: Exception) -> bool:
    text = str(ex)
    return any(s in text for s in ("database is locked", "UNIQUE constraint failed",
                                   "already exists", "IntegrityError"))


#: what a store says when it went away mid-run: a server stopped or unreachable, an sqlite file
#: deleted, its disk full or read-only
_GONE = ("Max retries exceeded", "Connection refused", "Failed to establish",
         "Read timed out", "RemoteDisconnected", "disk I/O error", "database or disk is full",
         "unable to open database file", "no such table", "readonly database",
         "No space left on device")


def _gone(ex: Exception) -> UserError | None:
    """The one line for a store that went away (:data:`_GONE`), or None."""
    text = " ".join(str(ex).split())
    found = next((s for s in _GONE if s in text), None)
    if found is None:
        return None
    return UserError(f"tracking.uri: the store stopped working during the run ({found})")


def retry(fn: Callable[..., T], *args: Any, attempts: int = 8, **kwargs: Any) -> T:
    """Call ``fn``, retrying collisions with other sqlite writers (with jitter). A signal waits
    for the call to end (``lifecycle.held``): one that stops a transaction half-way leaves its
    connection holding the store's write lock, and the run's ending then waits on it. A store
    that went away is one line (UserError), not MLflow's tracebacks."""
    for i in range(attempts):
        try:
            with lifecycle.held():
                return fn(*args, **kwargs)
        except Exception as ex:  # MlflowException wraps the sqlite errors
            if i == attempts - 1 or not _transient(ex):
                raise _gone(ex) or ex from None
            time.sleep(0.05 * (2 ** i) * (0.5 + random.random()))
    raise AssertionError("unreachable: the last attempt returns or raises")


#: MLflow's http retries, unless the user set them: a server that went away is told in seconds
#: (MLflow's defaults, 7 retries backing off by 2, wait minutes)
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def open_store(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``; a store that cannot be opened is a user error."""
    from mlflow.tracking import MlflowClient

    # creating a new store logs its schema migrations at INFO; the user asked for none of that
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow prints "View run ... at: <server URL>" for every run to a server: not on our stdout
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    scheme = _check_scheme(uri)
    if uri.startswith("sqlite:///"):
        _check_sqlite(sqlite_file(uri))
    elif scheme in ("http", "https"):
        for name, value in HTTP_RETRIES.items():
            os.environ.setdefault(name, value)
        _reachable(uri)
    try:
        with _store_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            retry(client.search_experiments, max_results=1)
    except UserError:
        raise
    except Exception as ex:  # a missing database driver, refused credentials, a server error
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise UserError(f"tracking.uri: cannot open MLflow store {uri}: {first[:200]}") from None
    return client


def _check_scheme(uri: str) -> str:
    """The URI's scheme, refused when MLflow cannot open it (folder stores unless allowed)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    allow_files = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("true", "1")
    if scheme in ("", "file") and not allow_files:  # MLflow 3 refuses them with a page of advice
        raise UserError(f"tracking.uri: {uri} is a folder store, which MLflow 3 refuses; use "
                        f"sqlite:///<path>/mlflow.db (or set MLFLOW_ALLOW_FILE_STORE=true)")
    if scheme.split("+")[0] not in STORE_SCHEMES + ("", "file"):
        raise UserError(f"tracking.uri: unsupported scheme '{scheme}' in {uri}; use "
                        f"sqlite:///<path>/mlflow.db or http(s)://<host>:<port>")
    return scheme


def _check_sqlite(path: Path) -> None:
    """An sqlite store's file: in a writable folder (created), an sqlite database if it exists,
    and intact (:func:`_check_intact`)."""
    for parent in path.parents:  # the nearest existing ancestor must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"tracking.uri: {parent} is a file, not a folder")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise UserError(f"tracking.uri: cannot create {path.parent}: {ex.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"tracking.uri: {path.parent} is not writable")
    if path.is_dir():
        raise UserError(f"tracking.uri: {path} is a folder, not an sqlite database file")
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise UserError(f"tracking.uri: {path} is not an sqlite database")
        _check_intact(path)


def _check_intact(path: Path) -> None:
    """Refuse an sqlite store with a damaged page before a run writes to it: SQLite only notices
    damage when a query reads the page, so a run could log half its results and then fail, or
    finish on a store that can no longer be read back. ``PRAGMA quick_check`` reads every page
    (milliseconds for a few MB, about a second per GB), read-only."""

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=30)) as db:
            found = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.OperationalError as ex:  # locked for longer than the timeout, unreadable
        if "locked" in str(ex):
            return  # a writer holds it: it is being used, so it opened; the run's open retries
        found = [str(ex)]
    except sqlite3.DatabaseError as ex:
        found = [str(ex)]
    if found != ["ok"]:
        lines = [ln for ln in found[0].strip().splitlines() if not ln.startswith("***")]
        first = (lines or ["?"])[0][:120]  # past the "*** in database main ***" header
        raise UserError(f"tracking.uri: {path} is damaged ({first}); restore a copy, or "
                        f"recover what is readable with: sqlite3 {path} .recover | sqlite3 "
                        f"{path.with_name('recovered.db')}")


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Let one process at a time open an sqlite store (an exclusive ``fcntl`` lock beside it).

    The first open creates the schema and every open may migrate it; two processes migrating at
    once (two runs started together on a new store) leave alembic's temporary tables behind and
    the store unreadable for good. The lock is the kernel's, so a killed process releases it.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    with open(f"{sqlite_file(uri)}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _reachable(uri: str, timeout: float = 5.0) -> None:
    """Refuse an http(s) store nobody answers at: MLflow would retry for minutes before failing."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UserError(f"tracking.uri: bad port in {uri}") from None
    host = parts.hostname or ""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as ex:
        why = ex.strerror or type(ex).__name__
        raise UserError(f"tracking.uri: cannot reach {host}:{port} ({why})") from None
    with sock:
        if parts.scheme == "https":
            _speaks_tls(sock, host, port)


def _speaks_tls(sock: Any, host: str, port: int) -> None:
    """Refuse an ``https://`` URI whose server speaks plain http: MLflow would retry the failing
    handshake for minutes. A certificate MLflow may still accept (its own settings for a private
    CA or an insecure server) is left to MLflow."""
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only: is it TLS?
    try:
        context.wrap_socket(sock, server_hostname=host).close()
    except (ssl.SSLError, OSError) as ex:
        raise UserError(f"tracking.uri: {host}:{port} does not answer https "
                        f"({getattr(ex, 'reason', None) or type(ex).__name__}); is it http://?") \
            from None


def artifact_folder(name: str) -> str:
    """The folder of experiment ``name`` under the store's ``mlartifacts``: the name itself when
    it is a plain file name, else a slug of it with a digest, so ``..``, ``/``, characters a URI
    would have to escape, or a name longer than a file name may be can never put artifacts
    outside the store or fail there."""
    import hashlib
    import re

    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}", name) and ".." not in name:
        return name
    slug = re.sub(r"[^A-Za-z0-9_\-]+", "_", name).strip("_")[:60] or "experiment"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


#: the experiment's description (``mlflow.note.content`` on the experiment, shown above its runs
#: and in the experiments list): what it holds and how to read it
EXPERIMENT_NOTE = (
    "spiketune runs, one per job (a sweep: a parent run with one child per job). **To read a "
    "run**: its name says what it was given (`georgopoulos`, `lr=1e6`; a sweep child its swept "
    "values first, `scale=20 lif`); the tag `spiketune.result` and the run's Description give "
    "its score, mean rate and verdict (`spiketune.health`, one `spiketune.health.<check>` per "
    "finding); Artifacts → `report.html` holds the verdict with remedies, the headline table, "
    "key figures and the config's difference from the defaults. Headline metrics (`spiking/`, "
    "`rate/`, `firing/`, `tuning/`, `cost/`, `time/`) come first; per-layer detail is under "
    f"`{DETAIL}`, the tool's bookkeeping tags under `spiketune.bookkeeping.`. Add columns with "
    "*Columns* (MLflow keeps the choice in this browser; it has no server-side default).")


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (once, even with racing processes) if missing,
    with :data:`EXPERIMENT_NOTE` as its description unless it has one."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise UserError(f"tracking.experiment: experiment '{name}' is deleted; restore it in "
                            f"the MLflow UI or choose another name")
        if "mlflow.note.content" not in exp.tags:  # a user's own description is kept
            retry(client.set_experiment_tag, exp.experiment_id, "mlflow.note.content",
                  EXPERIMENT_NOTE)
        return str(exp.experiment_id)
    root = artifact_root(uri)
    try:
        created = str(client.create_experiment(
            name, artifact_location=f"{root}/{artifact_folder(name)}" if root else None,
            tags={"mlflow.note.content": EXPERIMENT_NOTE}))
    except Exception as ex:
        if not _transient(ex):
            raise
        return str(retry(lambda: client.get_experiment_by_name(name).experiment_id))
    return created


def end_orphans(client: Any, experiment_id: str | None = None) -> int:
    """End KILLED the runs left RUNNING on this host by a process that is gone (SIGKILL, the OOM
    killer, a power cut: nothing could end them then), in every experiment of the store (the
    starting run's ``experiment_id`` is searched first); says so in one line.

    One search of the RUNNING runs owned on this host, at every run's and sweep's start. A run is
    its owner's (``spiketune.bookkeeping.owner.*`` tags); one whose pid is alive but started at
    another time belongs to a process that reused the pid. Runs of other hosts, and runs without
    owner tags (created before runs named their owner, or by versions that named them
    ``spiketune.owner.*``), are left alone: nothing here can tell if they live.

    Returns
    -------
    int
        How many runs were ended.
    """
    host = lifecycle.me().host
    ids = [str(e.experiment_id) for e in retry(client.search_experiments, max_results=1000)]
    ids = sorted(set(ids), key=lambda i: i != experiment_id)
    found = [run for i in range(0, len(ids), 100)
             for run in retry(client.search_runs, ids[i:i + 100], max_results=1000,
                              filter_string=f"attributes.status = 'RUNNING' and "
                                            f"tags.`{lifecycle.HOST_TAG}` = '{host}'")]
    ended = 0
    for run in found:
        owner = lifecycle.owner_of(run.data.tags)
        if owner is None or not lifecycle.gone(owner):
            continue
        retry(client.set_tag, run.info.run_id, "error",
              f"owner process {owner.pid} on {owner.host} is gone")
        retry(client.set_terminated, run.info.run_id, "KILLED")
        ended += 1
    if ended:
        print(f"[tracking] {ended} run{'s' if ended != 1 else ''} left RUNNING by processes on "
              f"{host} that are gone: ended KILLED", file=sys.stderr, flush=True)
    return ended


@contextlib.contextmanager
def use_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent functions (model logging, registration) on ``uri`` for the block; the
    process's global tracking URI is left as it was."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    # MLflow's context manager restores its global but unsets $MLFLOW_TRACKING_URI on the way out
    env = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env


class Tracker:
    """One MLflow run.

    Parameters
    ----------
    uri : str
        Resolved tracking URI.
    experiment : str
        Experiment name.
    run_name : str
        Run name shown in the UI.
    tags : dict
        Extra tags (sweep parent, cache state).
    system_metrics : bool
        Log MLflow's ``system/*`` metrics (CPU, memory, disk, network) from a background thread
        until :meth:`end`, where psutil is installed (else the tag ``spiketune.system_metrics``
        says why not).
    """

    def __init__(self, uri: str, experiment: str, run_name: str, tags: dict[str, Any] | None = None,
                 system_metrics: bool = False):
        self.uri = uri
        self.client = open_store(uri)
        self.experiment_id = retry(experiment_id, self.client, experiment, uri)
        end_orphans(self.client, self.experiment_id)
        base = base_tags(job=(tags or {}).get("spiketune.sweep") == "child")
        base.update(tags or {})
        if run_name:  # MLflow refuses a name that differs from the tag; the name given wins
            base["mlflow.runName"] = run_name
        run = retry(self.client.create_run, self.experiment_id, run_name=run_name or None,
                    tags={k: redact(str(v)) for k, v in base.items()})
        self.run_id = run.info.run_id
        self.run_name = run.info.run_name
        self.tags = {k: str(v) for k, v in base.items()}
        self.artifact_uri = run.info.artifact_uri
        self.logged: list[str] = []  # artifact paths, checked at a FINISHED end
        self.ended = False
        lifecycle.opened(self)  # a sweep worker's watchdog ends it if the launcher dies
        self._monitor = self._start_monitor() if system_metrics else None

    def _start_monitor(self) -> Any:
        """MLflow's own system-metrics thread on this run (its fluent flag only covers runs
        started with ``mlflow.start_run``)."""
        if importlib.util.find_spec("psutil") is None:
            self.tag("spiketune.system_metrics", "off: psutil is not installed")
            return None
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # it announces itself and the missing GPU libraries at INFO; nobody asked for that
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        monitor = SystemMetricsMonitor(self.run_id, tracking_uri=self.uri)
        monitor.start()
        return monitor

    def links(self, base: str) -> dict[str, str]:
        """:func:`ui_links` of this run (and of its sweep, for a child run)."""
        return ui_links(base, self.experiment_id, self.run_id,
                        self.tags.get("mlflow.parentRunId", ""))

    def describe(self, text: str) -> None:
        """The run's description (``mlflow.note.content``, Markdown in the UI)."""
        self.tag("mlflow.note.content", text)

    def params(self, flat: dict[str, str]) -> None:
        """Log ``flat`` params in batches of at most 100 (MLflow's limit per call)."""
        from mlflow.entities import Param

        items = [Param(k, redact(str(v))[:6000]) for k, v in sorted(flat.items())]
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            retry(self.client.log_batch, self.run_id, params=items[i:i + MAX_PARAMS_PER_CALL])

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        """Log ``values`` at ``step``; detail metrics under :data:`DETAIL` (:func:`logged_name`)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        # in the order of their logged names: MLflow's run page lists metrics as they came
        items = sorted((Metric(logged_name(k), float(v), now, step) for k, v in values.items()
                        if v is not None), key=lambda m: m.key)
        for i in range(0, len(items), 1000):
            retry(self.client.log_batch, self.run_id, metrics=items[i:i + 1000])

    def series(self, key: str, values: list[float], steps: list[int] | None = None,
               times_ms: list[int] | None = None) -> None:
        """A metric over ``steps`` (default 0, 1, ...: ``train/loss`` per epoch), stamped now or
        at ``times_ms`` (ms since the Unix epoch, one per value)."""
        from mlflow.entities import Metric

        steps = steps or list(range(len(values)))
        stamps = times_ms or [int(time.time() * 1000)] * len(values)
        items = [Metric(key, float(v), ms, step) for v, step, ms in zip(values, steps, stamps)]
        for i in range(0, len(items), 1000):
            retry(self.client.log_batch, self.run_id, metrics=items[i:i + 1000])

    def tag(self, key: str, value: Any) -> None:
        retry(self.client.set_tag, self.run_id, key, redact(str(value)))

    def artifact_dir(self, path: Path, artifact_path: str | None = None) -> None:
        retry(self.client.log_artifacts, self.run_id, str(path), artifact_path)
        self.logged += [str(Path(artifact_path or "") / f.relative_to(path))
                        for f in sorted(Path(path).rglob("*")) if f.is_file()]

    def artifact_text(self, text: str, name: str) -> None:
        retry(self.client.log_text, self.run_id, redact(text), name)
        self.logged.append(name)

    def check_artifacts(self) -> None:
        """Raise UserError when an artifact this run logged is gone from a local artifact folder
        (deleted or moved while the run went on): such a run is not FINISHED."""
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(self.artifact_uri or "")
        if parts.scheme not in ("", "file"):
            return  # a server's artifact store: it answered each upload
        folder = Path(unquote(parts.path))
        missing = [name for name in self.logged if not (folder / name).is_file()]
        if missing:
            raise UserError(f"tracking.uri: {len(missing)} of {len(self.logged)} artifacts of "
                            f"this run are gone from {folder} ({', '.join(missing[:3])}); it was "
                            f"deleted or moved during the run")

    def dataset(self, data: Any) -> None:
        """Log the dataset as an MLflow input: name, source, digest, shapes and its schema (the
        UI's dataset panel shows it): :func:`dataset_schema`."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        profile = json.dumps({"train": list(data.x_train.shape), "test": list(data.x_test.shape),
                              "task": data.task, "outputs": data.n_outputs})
        try:
            schema: str | None = dataset_schema(data)
        except (AttributeError, TypeError, ValueError):  # display only: never worth a failure
            schema = None
        ds = Dataset(name=data.name, digest=data.digest, source_type="local",
                     source=json.dumps({"uri": data.source}), schema=schema, profile=profile)
        retry(self.client.log_inputs, self.run_id,
              datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", "train+test")])])

    def end(self, status: str, error: str | None = None) -> None:
        """Set the final status (FINISHED, FAILED or KILLED), with the one-line ``error`` tag."""
        if self.ended:
            return
        if status == "FINISHED":
            # a signal a library swallowed is still recorded: the run stopped being a whole run
            check_interrupt()
            self.check_artifacts()  # raised: the caller ends the run FAILED with the message
        if self._monitor is not None:  # joins its thread: nothing is left running after the run
            monitor, self._monitor = self._monitor, None
            monitor.finish()
        if error:
            self.tag("error", error[:5000])
        retry(self.client.set_terminated, self.run_id, status)
        self.ended = True
        lifecycle.closed(self)


def dataset_schema(data: Any) -> str:
    """The dataset's schema as MLflow's dataset panel reads it: named columns for a table of
    features (``x0`` … one per input channel, float32 as the network gets them, then the
    target: ``label`` (int64) or ``y0`` …), else tensors (sequences, images) with their shapes."""
    import json

    import numpy as np
    from mlflow.data.schema import TensorDatasetSchema
    from mlflow.types import ColSpec, Schema, TensorSpec

    x, y = data.x_train, np.asarray(data.y_train)
    if x.ndim == 2:
        cols: list[ColSpec | TensorSpec] = [ColSpec("float", f"x{i}")
                                            for i in range(x.shape[1])]
        if y.ndim == 1:
            cols.append(ColSpec("long" if data.classification else "double", "label"
                                if data.classification else "y0"))
        else:
            cols += [ColSpec("float", f"y{i}") for i in range(y.shape[1])]
        return json.dumps({"mlflow_colspec": Schema(cols).to_dict()})
    features = Schema([TensorSpec(np.dtype(np.float32), (-1, *x.shape[1:]), "x")])
    targets = Schema([TensorSpec(np.dtype(y.dtype), (-1, *y.shape[1:]), "y")])
    return json.dumps(TensorDatasetSchema(features=features, targets=targets).to_dict())


def scratch_dir() -> Path:
    """A temporary folder for artifacts before they are logged."""
    return Path(tempfile.mkdtemp(prefix="spiketune-"))
