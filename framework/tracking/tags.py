"""The tags every run carries at creation: MLflow's standard source tags, the git commit, the
version, and the process that owns the run (:mod:`framework.lifecycle`)."""
from __future__ import annotations

import functools
import getpass
import os
import subprocess
import sys
from pathlib import Path

from framework import __version__, lifecycle
from framework.paths import REPO


def git_commit() -> str:
    """The repository's HEAD commit (40 hex digits), or ``unknown`` outside a git checkout."""
    return _git()[0]


@functools.lru_cache(maxsize=1)
def _git() -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the checkout this process's code came from, asked once per process:
    the code a process runs is the code it imported, whatever the tree holds later."""
    def ask(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                 timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = (ask("rev-parse", "HEAD") or "").strip() or "unknown"
    status = ask("status", "--porcelain", "--untracked-files=no") if commit != "unknown" else None
    return commit, (bool(status.strip()) if status is not None else None)


def source_tags(job: bool) -> dict[str, str]:
    """MLflow's standard source tags for a run of this process.

    Parameters
    ----------
    job : bool
        The run is one job of a sweep (``mlflow.source.type`` JOB); else LOCAL.

    Returns
    -------
    dict
        ``mlflow.source.name`` (``spiketune`` from the CLI or a sweep, else the script, as MLflow
        itself would name it), ``mlflow.source.type``, ``mlflow.user``, and when the code is in a
        git checkout ``mlflow.source.git.commit`` and ``spiketune.git_dirty`` (uncommitted changes
        to tracked files: the commit alone does not say what ran).
    """
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    cli = Path(argv0).name in ("spiketune", "spiketune-ui") or \
        argv0.endswith(os.path.join("framework", "__main__.py"))
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (some containers)
        user = "unknown"
    tags = {"mlflow.source.name": "spiketune" if cli or job else (argv0 or "python"),
            "mlflow.source.type": "JOB" if job else "LOCAL", "mlflow.user": user}
    commit, dirty = _git()
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    if dirty is not None:
        tags["spiketune.git_dirty"] = str(dirty).lower()
    return tags


def base_tags(job: bool) -> dict[str, str]:
    """Every run's tags at creation: the source tags (``mlflow.source.git.commit``),
    ``spiketune.version``, and the process that owns the run, bookkeeping under one prefix
    (``spiketune.bookkeeping.owner.host``, ``.pid``, ``.start`` as ISO 8601 UTC:
    :func:`end_orphans` reads them). The older duplicates ``git_commit`` and
    ``spiketune_version`` were dropped (README, "Migration notes")."""
    return {"spiketune.version": __version__, **source_tags(job), **lifecycle.owner_tags()}
