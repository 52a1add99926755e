"""One Hydra job: run the pipeline and turn its outcome into output and an exit code."""
from __future__ import annotations

import sys

from .errors import EXIT_USER, UserError
from .progress import Console


def run_job(cfg):
    """The Hydra task function (single run or one job of a multirun).

    A single run exits 2 on a user error. In a multirun a failed job is already FAILED in MLflow
    with its error; the sweep goes on and the sweep callback reports the count.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .pipeline import run

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    tags = {}
    console = Console()
    if multirun:
        from .sweeps import job_tags

        tags = job_tags(hc)
        console = Console(prefix=f"[job {hc.job.num}] ")
    try:
        result = run(cfg, console=console, tags=tags)
    except UserError as ex:
        if not multirun:
            print(f"spiketune: {ex}", file=sys.stderr)
            sys.exit(EXIT_USER)
        console.say(f"FAILED: {ex}")
        return {"status": "FAILED", "error": str(ex)}
    except Exception as ex:  # noqa: BLE001 - a multirun job's crash must not stop the sweep
        if not multirun:
            raise
        console.say(f"FAILED: internal error: {type(ex).__name__}: {ex}")
        return {"status": "FAILED", "error": f"{type(ex).__name__}: {ex}"}
    return {"status": result.status, "run_id": result.run_id, "metrics": result.metrics}
