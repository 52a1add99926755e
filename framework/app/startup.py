"""The one start-up of a spiketune process: what must exist before Hydra composes or resolves a
config.

Nothing is registered as a side effect of an import: the CLI calls :func:`start` before it
validates or launches anything, and a launcher's worker (joblib, submitit, Ray) calls it when it
unpickles the task function or the sweep callback, before Hydra resolves the job's config there
(its ``hydra.sweep.dir`` still holds ``${spiketune_outputs:}`` and ``${spiketune_launch_id:}``).
"""
from __future__ import annotations

from framework import config, lifecycle


def start() -> None:
    """Register the OmegaConf resolvers spiketune's configs use; idempotent.

    ``${spiketune_outputs:}`` is the default of ``paths.outputs`` (:mod:`framework.config`),
    ``${spiketune_launch_id:}`` names the run and sweep folders (:mod:`framework.lifecycle`).
    """
    config.register_resolvers()
    lifecycle.register_resolvers()
