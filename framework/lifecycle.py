"""How a spiketune process starts and ends, so that no run it owns is left RUNNING.

* **Who owns a run.** :func:`owner_tags` names this process (host, pid, start time) on every run it
  creates; :func:`gone` tells, on this host, whether such an owner has ended (or its pid now
  belongs to another process: the start time differs). ``tracking.end_orphans`` uses it at every
  start to end the runs a SIGKILLed, OOM-killed or powered-off process left RUNNING.
* **Signals in bursts.** A signal raises KeyboardInterrupt, and the run's ending (tags, status)
  follows. A second signal must not interrupt that ending: :func:`burst_proof` (around the CLI's
  app) lets signals that follow the one that stopped the run within :data:`GRACE_S` be recorded
  only, and :func:`shielded` (around each ending) defers every signal while it lasts. Once the
  runs are ended and the process only exits (:func:`exiting`), a late signal of the burst is
  ignored, even during the interpreter's teardown (which would otherwise die of it, exit -15
  instead of 130), and one that comes later still exits at once. A store call is never
  interrupted half-way (:func:`held`, in ``tracking.retry``): a KeyboardInterrupt inside an
  SQLAlchemy transaction leaves its connection holding sqlite's write lock for as long as the
  exception lives, and the ending's own writes then wait on it ("database is locked").
* **A launcher's workers stop when it dies.** :func:`watch_launcher` starts, in a sweep job that
  runs in another process than the sweep's launcher, a thread that ends this process's open runs
  KILLED and exits once the launcher is gone. A watchdog rather than Linux's
  ``PR_SET_PDEATHSIG``: that signal fires when the *thread* that forked the worker ends (loky forks
  from its manager thread), cannot see past an intermediate process (Ray's raylet), does not
  exist on macOS, and kills without ending the run; the watchdog follows the launcher itself,
  pid-reuse-proof, and ends the runs first.
* **One folder per launch.** ``${spiketune_launch_id:}`` (in ``hydra.run.dir`` and
  ``hydra.sweep.dir``) is a short random id of the launching process, so sweeps or runs started in
  the same second get folders of their own.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from framework.errors import EXIT_INTERRUPTED

#: signals that follow the one that stopped a run within this many seconds are recorded, not
#: raised again (a burst, or a terminal's SIGINT plus a supervisor's SIGTERM)
GRACE_S = 1.0
#: a pid whose process started more than this many seconds away from the recorded start is another
#: process (pid reuse); the slack covers the boot-time rounding of process start times
START_SLACK_S = 2.0
#: how often a worker looks for its launcher, seconds
WATCH_EVERY_S = 0.5
#: the tags naming a run's owner: bookkeeping, under one prefix that says so (the start time
#: in ISO 8601, UTC, to the millisecond)
BOOKKEEPING = "spiketune.bookkeeping."
HOST_TAG, PID_TAG = f"{BOOKKEEPING}owner.host", f"{BOOKKEEPING}owner.pid"
START_TAG = f"{BOOKKEEPING}owner.start"


# ------------------------------------------------------------------------------------ the owner
@dataclass(frozen=True)
class Owner:
    """A process: its host name, pid and start time (seconds since the epoch)."""

    host: str
    pid: int
    start: float

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def process_start(pid: int) -> float | None:
    """When process ``pid`` of this host started (s since the epoch), or None when there is no
    such process or it is a zombie (it has ended; only its exit status is left).

    Raises
    ------
    psutil.AccessDenied
        The process exists but may not be inspected (another user's, on some systems).
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None


@functools.lru_cache(maxsize=1)
def _me(pid: int) -> Owner:
    return Owner(socket.gethostname(), pid, process_start(pid) or time.time())


def me() -> Owner:
    """This process (asked once per pid: a forked child is a new owner)."""
    return _me(os.getpid())


def owner_tags(owner: Owner | None = None) -> dict[str, str]:
    """``spiketune.bookkeeping.owner.host``, ``.pid`` and ``.start`` (ISO 8601, UTC:
    ``2026-12-06T15:58:09.270+00:00``) of ``owner`` (default: this process)."""
    owner = owner or me()
    start = datetime.datetime.fromtimestamp(owner.start, datetime.UTC)
    return {HOST_TAG: owner.host, PID_TAG: str(owner.pid),
            START_TAG: start.isoformat(timespec="milliseconds")}


def owner_of(tags: dict[str, str]) -> Owner | None:
    """The owner named by a run's tags; None for a run without them (older versions)."""
    try:
        start = datetime.datetime.fromisoformat(tags[START_TAG]).timestamp()
        return Owner(tags[HOST_TAG], int(tags[PID_TAG]), start)
    except (KeyError, ValueError):
        return None


def gone(owner: Owner) -> bool:
    """Whether ``owner``, a process of this host, has ended (or its pid is now another
    process's)."""
    import psutil

    if owner.host != me().host:
        raise ValueError(f"{owner.describe()} is not on this host")
    try:
        started = process_start(owner.pid)
    except psutil.AccessDenied:  # alive, and not ours to judge: never end a run that may live
        return False
    return started is None or abs(started - owner.start) > START_SLACK_S


# ------------------------------------------------------------------------------- the launch id
@functools.lru_cache(maxsize=1)
def launch_id() -> str:
    """6 random hex digits naming this launching process's run or sweep folder."""
    return secrets.token_hex(3)


def register_resolvers() -> None:
    """``${spiketune_launch_id:}``: :func:`launch_id`, cached on the config it is resolved in.

    Hydra copies a launching config's resolver cache into each job's config, also when the job
    runs in another process (joblib, submitit, Ray pickle the config with its cache): every job of
    a sweep resolves the id its launcher drew. Idempotent; called by the app's start-up
    (:func:`framework.app.startup.start`), never at import.
    """
    if not OmegaConf.has_resolver("spiketune_launch_id"):
        OmegaConf.register_new_resolver("spiketune_launch_id", launch_id, use_cache=True)



# ------------------------------------------------------------------------------------- signals
_last_raised = [float("-inf")]  # when a signal last raised KeyboardInterrupt (monotonic s)
_shields = [0]  # how many shielded() blocks are open
_exiting = [False]  # the runs are ended: the process stops on a signal (exiting())
_held = [0]  # signals a shield kept from raising (counted: held() raises them afterwards)


class _Deferring:
    """A signal handler around ``inner`` that only records a signal (``inner`` records it, the
    KeyboardInterrupt it raises is dropped) inside :func:`shielded` or within :data:`GRACE_S` of
    the last one it let raise."""

    def __init__(self, inner: Callable[[int, Any], Any]) -> None:
        self.inner = inner

    def __call__(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if _exiting[0]:  # nothing is left to end: a burst's tail is ignored, a new signal exits
            if now - _last_raised[0] >= GRACE_S:
                os._exit(EXIT_INTERRUPTED)
            return
        if _shields[0] or now - _last_raised[0] < GRACE_S:
            if now - _last_raised[0] >= GRACE_S:  # not a burst's tail: it would have raised
                _held[0] += 1
            with contextlib.suppress(KeyboardInterrupt):
                self.inner(signum, frame)
            return
        _last_raised[0] = now
        self.inner(signum, frame)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _wrap_handlers() -> dict[int, Any]:
    """Put :class:`_Deferring` around this process's Python SIGINT/SIGTERM handlers; returns the
    ones replaced (empty outside the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    replaced: dict[int, Any] = {}
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler) and not isinstance(handler, _Deferring):
            replaced[sig] = handler
            signal.signal(sig, _Deferring(handler))
    return replaced


def _restore(replaced: dict[int, Any]) -> None:
    for sig, handler in replaced.items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def burst_proof() -> Iterator[None]:
    """For the block (the CLI's Hydra app): a signal arriving within :data:`GRACE_S` of the one
    that raised is recorded only, so it cannot land in the ending the first one started."""
    replaced = _wrap_handlers()
    try:
        yield
    finally:
        if not _exiting[0]:
            _restore(replaced)


def exiting() -> None:
    """The process stops because of a signal, and its runs are ended: from now on a signal within
    :data:`GRACE_S` of the last one is ignored and a later one exits at once (130); from the
    interpreter's exit on (``atexit``), when Python can no longer run a handler, they are
    ignored."""
    _exiting[0] = True
    _wrap_handlers()
    atexit.register(_ignore_signals)


def _ignore_signals() -> None:
    # Python resets its handlers to SIG_DFL when it finalizes; SIG_IGN survives that
    if threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer SIGINT and SIGTERM for the block (a run's or sweep's ending): they are recorded
    (``errors.interruption`` names them, the next stage boundary stops on them), not raised."""
    _shields[0] += 1
    replaced = _wrap_handlers()
    try:
        yield
    finally:
        _shields[0] -= 1
        _restore(replaced)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (one store call) and raise the
    KeyboardInterrupt right after it, unless an ending's :func:`shielded` is around it."""
    before = _held[0]
    with shielded():
        yield
    if _held[0] > before and not _shields[0] and not _exiting[0]:
        _last_raised[0] = time.monotonic()
        raise KeyboardInterrupt


# ------------------------------------------------------------------------------ the watchdog
_open: dict[str, Any] = {}  # run id -> the Tracker of each run this process has open
_watched: list[Owner] = []


def opened(tracker: Any) -> None:
    """Note a run this process created (``tracking.Tracker``), for the watchdog to end."""
    _open[tracker.run_id] = tracker


def closed(tracker: Any) -> None:
    """The run has ended."""
    _open.pop(tracker.run_id, None)


def watch_launcher(launcher: Owner) -> bool:
    """In a sweep's worker: once ``launcher`` is gone, end this process's open runs KILLED and
    exit (130). Only for a launcher of this host other than this process; started once per
    process. Returns whether a watchdog is running."""
    mine = me()
    if launcher.host != mine.host or launcher.pid == mine.pid:
        return False
    if _watched:
        return _watched[0] == launcher
    _watched.append(launcher)
    threading.Thread(target=_watch, args=(launcher,), name="spiketune-launcher-watchdog",
                     daemon=True).start()
    return True


def _watch(launcher: Owner) -> None:
    while not gone(launcher):
        time.sleep(WATCH_EVERY_S)
    why = f"the sweep's launcher, {launcher.describe()}, is gone"
    trackers = list(_open.values())
    for tracker in trackers:
        try:
            tracker.end("KILLED", why)
        except Exception as ex:  # noqa: BLE001 - the next start ends it (owner gone)
            print(f"[sweep] could not end run {tracker.run_id}: {type(ex).__name__}: {ex}",
                  file=sys.stderr, flush=True)
    print(f"[sweep] {why}: {len(trackers)} run(s) ended KILLED; worker {os.getpid()} exits",
          file=sys.stderr, flush=True)
    os._exit(EXIT_INTERRUPTED)  # the main thread may be deep in TensorFlow: do not wait for it
