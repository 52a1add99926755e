"""A sweep job's ``objective`` (what a search sweeper optimises) and its ``budget``.

Scored inside the run, before it ends, so ``search/objective`` and ``spiketune.over_budget`` are
part of the run as it is logged.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from framework.errors import UserError

#: the objective of a run over its budget, at the budget's edge: worse than any run within it (for
#: objectives of ordinary size), and worse the further over, so a search can follow the way back
OVER_BUDGET = 1e6


def objective_value(obj: Any, metrics: dict[str, float],
                    maximize: bool = False) -> tuple[float | None, str]:
    """The run's ``objective``, and the ``budget`` it broke (``"metric value > max"``, or "").

    A run over budget scores ``OVER_BUDGET × (1 + excess / max)`` (negated when the search
    maximises): a flat +inf would tell a search (Optuna's TPE) nothing when every trial breaks the
    budget, and it would report one of them as "best". A metric the run did not log is a user
    error that names it (and lists those it did of the same family).

    Parameters
    ----------
    obj : framework.config.Config
    metrics : dict
        The run's metrics, in their units.
    maximize : bool
        The search's direction (``hydra.sweeper.direction``).
    """
    if not obj.objective:
        return None, ""
    budget = obj.budget.metric
    for name, key in (("objective", obj.objective), ("budget.metric", budget)):
        if key and key not in metrics:
            near = sorted(k for k in metrics if k.split("/")[0] == key.split("/")[0])
            hint = f"; it logged {', '.join(near)}" if near else ""
            raise UserError(f"{name}: the run logged no metric {key!r}{hint}")
    if budget and obj.budget.max is not None and not metrics[budget] <= obj.budget.max:
        used, limit = float(metrics[budget]), float(obj.budget.max)
        excess = (used - limit) / max(abs(limit), 1e-12) if np.isfinite(used) else 1e6
        value = OVER_BUDGET * (1.0 + min(excess, 1e6))
        return (-value if maximize else value), f"{budget} {used:.4g} > {limit:g}"
    return float(metrics[obj.objective]), ""


def search_maximizes() -> bool:
    """Whether this job's sweeper maximises its objective (``hydra.sweeper.direction``)."""
    try:
        from hydra.core.hydra_config import HydraConfig  # only inside a Hydra job

        direction = HydraConfig.get().sweeper.get("direction", "minimize")
    except (ImportError, ValueError, AttributeError):  # not a Hydra job, or no such sweeper key
        return False
    return str(getattr(direction, "name", direction)).lower() == "maximize"


def score(obj: Any, metrics: dict[str, float], tracker: Any, console: Any) -> float | None:
    """The job's ``objective`` for a search sweeper, logged as ``search/objective``; a broken
    ``budget`` is tagged (``spiketune.over_budget``) and said."""
    value, broken = objective_value(obj, metrics, search_maximizes())
    if value is not None:
        tracker.metrics({"search/objective": value})
        if broken:
            tracker.tag("spiketune.over_budget", broken)
            console.say(f"budget: {broken}: objective {obj.objective} counts as {value:.4g} "
                        f"(over budget)")
    return value
