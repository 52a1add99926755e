"""Multiruns as one parent MLflow run with a child run per job (Hydra callbacks)."""
from __future__ import annotations


def job_tags(hc) -> dict[str, str]:
    """Tags of a sweep job's run: its number and overrides."""
    return {"spiketune.sweep": "child", "spiketune.job": str(hc.job.num),
            "spiketune.overrides": " ".join(hc.overrides.task)}
