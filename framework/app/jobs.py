"""One Hydra job: run the pipeline and turn its outcome into output and an exit code.

Each job prints one line on stdout, for scripts (``run_id=… status=… store=… artifacts=…``), or
with ``spiketune --json`` one JSON object per line that adds the metrics and objective; the
human-readable progress and summary go to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from framework.errors import EXIT_USER, UserError
from framework.progress import Console
from framework.redact import redact, redact_files


class JobResult(dict):
    """What a job returns: ``status``, ``run_id``, ``metrics`` (read by the sweep callback), and
    as ``float()`` the run's ``objective`` (read by a search sweeper such as Optuna's)."""

    def __float__(self) -> float:
        if self.get("objective") is None:
            raise TypeError(f"job {self.get('status', '')}: no objective "
                            f"({self.get('error') or 'set objective=<metric>'})")
        return float(self["objective"])


#: set by ``spiketune --json`` (an environment variable, so launcher workers see it too)
JSON_ENV = "SPIKETUNE_JSON"


def stdout_line(result, uri: str) -> str:
    """The job's line for scripts: plain ``key=value`` pairs, or JSON under ``--json``."""
    uri = redact(uri)
    art = result.artifact_uri
    folder = art[len("file://"):] if art.startswith("file://") else art
    if os.environ.get(JSON_ENV) == "1":
        metrics = {k: (v if v == v and abs(v) != float("inf") else None)  # JSON has no NaN/inf
                   for k, v in result.metrics.items()}
        objective = result.objective
        if objective is not None and (objective != objective or abs(objective) == float("inf")):
            objective = str(objective)
        return json.dumps({"run_id": result.run_id, "status": result.status, "store": uri,
                           "artifacts": folder, "objective": objective, "metrics": metrics})
    return f"run_id={result.run_id} status={result.status} store={uri} artifacts={folder}"


def run_job(cfg):
    """The Hydra task function (single run or one job of a multirun).

    A single run exits 2 on a user error. In a multirun a failed job is already FAILED in MLflow
    with its error; the sweep goes on and the sweep callback reports the count.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from framework.pipeline import run

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    # Hydra saved the job's config and overrides (and the sweep's multirun.yaml) before the job
    # started: a password given in tracking.uri on the command line would sit there in plain text
    if hc.output_subdir:
        redact_files(Path(hc.runtime.output_dir) / str(hc.output_subdir))
    if multirun:
        redact_files(Path(str(hc.sweep.dir)), "multirun.yaml")
    tags = {}
    console = Console()
    if multirun:
        from framework.app.sweeps import job_tags

        tags = job_tags(hc)
        console = Console(prefix=f"[job {hc.job.num}] ")
    try:
        result = run(cfg, console=console, tags=tags)
    except UserError as ex:
        if not multirun:
            print(f"spiketune: {redact(str(ex))}", file=sys.stderr)
            sys.exit(EXIT_USER)
        console.say(f"FAILED: {ex}")
        return JobResult(status="FAILED", error=str(ex))
    except Exception as ex:  # noqa: BLE001 - a multirun job's crash must not stop the sweep
        if not multirun:
            raise
        console.say(f"FAILED: internal error: {type(ex).__name__}: {ex}")
        return JobResult(status="FAILED", error=f"{type(ex).__name__}: {ex}")
    from framework.tracking.store import resolve_uri

    print(stdout_line(result, resolve_uri(str(cfg.tracking.uri))), flush=True)
    return JobResult(status=result.status, run_id=result.run_id, metrics=result.metrics,
                     objective=result.objective)
