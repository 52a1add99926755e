"""One Hydra job: run the pipeline and turn its outcome into output and an exit code.

Each job prints one line on stdout, for scripts (``run_id=… status=… store=… artifacts=…``), or
with ``spiketune --json`` one JSON object per line that adds the metrics and objective; the
human-readable progress and summary go to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig

from framework import pipeline
from framework.app import startup, sweep_records
from framework.errors import EXIT_USER, UserError
from framework.objective import objective_values
from framework.progress import Console
from framework.redact import redact, redact_files
from framework.tracking.store import resolve_uri


class JobResult(dict[str, Any]):
    """What a job returns: ``status``, ``run_id``, ``metrics`` (read by the sweep callback), and
    as ``float()`` the run's ``objective`` (read by a search sweeper such as Optuna's)."""

    def __float__(self) -> float:
        if self.get("objective") is None:
            raise TypeError(f"job {self.get('status', '')}: no objective "
                            f"({self.get('error') or 'set objective=<metric>'})")
        return float(self["objective"])


class SearchResult(JobResult):
    """A multi-objective search's job (``objectives``): iterated, its objectives' values, which
    is how Optuna's sweeper reads several (``[float(v) for v in return_value]``); a dict to the
    sweep callback as any job."""

    # the sweeper's protocol, not a dict's keys
    def __iter__(self) -> Iterator[float]:  # type: ignore[override]
        return iter(self["objectives"])


#: set by ``spiketune --json`` (an environment variable, so launcher workers see it too)
JSON_ENV = "SPIKETUNE_JSON"


def stdout_line(result: pipeline.RunResult, uri: str) -> str:
    """The job's line for scripts: plain ``key=value`` pairs, or JSON under ``--json``."""
    uri = redact(uri)
    art = result.artifact_uri
    folder = art[len("file://"):] if art.startswith("file://") else art
    if os.environ.get(JSON_ENV) == "1":
        metrics = {k: (v if _finite(v) else None)  # JSON has no NaN/inf
                   for k, v in result.metrics.items()}
        objective: float | str | None = result.objective
        if result.objective is not None and not _finite(result.objective):
            objective = str(result.objective)
        return json.dumps({"run_id": result.run_id, "status": result.status, "store": uri,
                           "artifacts": folder, "objective": objective, "metrics": metrics})
    return f"run_id={result.run_id} status={result.status} store={uri} artifacts={folder}"


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _redact_saved(hc: DictConfig, multirun: bool) -> None:
    """Mask credentials in what Hydra saved before the job started (the job's config and
    overrides, the sweep's ``multirun.yaml``): a password given in ``tracking.uri`` on the command
    line would sit there in plain text."""
    if hc.output_subdir:
        redact_files(Path(hc.runtime.output_dir) / str(hc.output_subdir))
    if multirun:
        redact_files(Path(str(hc.sweep.dir)), "multirun.yaml")


def run_job(cfg: DictConfig) -> JobResult:
    """The Hydra task function (single run or one job of a multirun).

    A single run exits 2 on a user error. In a multirun a failed job is already FAILED in MLflow
    with its error; the sweep goes on and the sweep callback reports the count.
    """
    # Hydra internals, imported in the job: the CLI imports this module, and its --help no Hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    startup.start()  # idempotent; in a launcher's worker the unpickled task has run it already
    hc = cast(DictConfig, HydraConfig.get())  # typed as its schema, a DictConfig at run time
    multirun = hc.mode == RunMode.MULTIRUN
    _redact_saved(hc, multirun)
    tags: dict[str, str] = {}
    console = Console()
    if multirun:
        tags = sweep_records.job_tags(hc)
        console = Console(prefix=f"[job {hc.job.num}] ")
    try:
        result = pipeline.run(cfg, console=console, tags=tags)  # looked up now: tests replace it
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
    print(stdout_line(result, resolve_uri(str(cfg.tracking.uri))), flush=True)
    if cfg.get("objectives"):  # the run checked they are there (objective.score)
        return SearchResult(status=result.status, run_id=result.run_id, metrics=result.metrics,
                            objectives=list(objective_values(cfg, result.metrics)))
    return JobResult(status=result.status, run_id=result.run_id, metrics=result.metrics,
                     objective=result.objective)
