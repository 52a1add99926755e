"""A sweep job's ``objective`` (what a search sweeper optimises) and its ``budget``, or a
multi-objective search's ``objectives`` (``experiment=frontier``).

Scored inside the run, before it ends, so ``search/objective`` (``search/objective_<i>``) and
``spiketune.over_budget`` are part of the run as it is logged.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from framework import health
from framework.config import SCORE_OBJECTIVE
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
        _require(name, key, metrics)
    if budget and obj.budget.max is not None and not metrics[budget] <= obj.budget.max:
        used, limit = float(metrics[budget]), float(obj.budget.max)
        excess = (used - limit) / max(abs(limit), 1e-12) if np.isfinite(used) else 1e6
        value = OVER_BUDGET * (1.0 + min(excess, 1e6))
        return (-value if maximize else value), f"{budget} {used:.4g} > {limit:g}"
    return float(metrics[obj.objective]), ""


def _require(name: str, key: str, metrics: dict[str, float]) -> None:
    """A metric the run did not log is a user error naming ``name`` and the metrics it did log of
    the same family."""
    if key and key not in metrics:
        near = sorted(k for k in metrics if k.split("/")[0] == key.split("/")[0])
        hint = f"; it logged {', '.join(near)}" if near else ""
        raise UserError(f"{name}: the run logged no metric {key!r}{hint}")


def score_metric(metrics: dict[str, float]) -> tuple[str, bool]:
    """The task's spiking score the run logged (``spiking/accuracy``, ``spiking/angle_error_deg``
    or ``spiking/mse``) and whether higher is better (:data:`framework.health.SCORES`)."""
    name = health.score_key(metrics)
    if name is None or f"spiking/{name}" not in metrics:
        raise UserError("objectives: score: the run logged no spiking score (spiking/accuracy, "
                        "spiking/angle_error_deg or spiking/mse)")
    return f"spiking/{name}", not health.SCORES[name]


def objective_values(obj: Any, metrics: dict[str, float]) -> tuple[float, ...]:
    """A multi-objective search's values for this run, in the order of ``objectives``.

    ``score`` is the task's spiking score as a loss (angle error or MSE as logged, accuracy
    negated), so it is always minimised; a metric is its logged value (in its unit); a config key
    (``simulation.n_steps``) the run's value. Empty for a run without ``objectives``.

    Parameters
    ----------
    obj : framework.config.Config or omegaconf.DictConfig
        The run's config (a key's value is read by attribute).
    metrics : dict
        The run's metrics, in their units.
    """
    values = []
    for i, key in enumerate(obj.objectives):
        if key == SCORE_OBJECTIVE:
            metric, higher = score_metric(metrics)
            values.append(-float(metrics[metric]) if higher else float(metrics[metric]))
        elif "/" in key:
            _require(f"objectives[{i}]", key, metrics)
            values.append(float(metrics[key]))
        else:
            values.append(float(operator.attrgetter(key)(obj)))
    return tuple(values)


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
    ``budget`` is tagged (``spiketune.over_budget``) and said. A multi-objective run logs its
    ``objectives`` as ``search/objective_<i>`` and returns None (the job returns them,
    :func:`objective_values`)."""
    if obj.objectives:
        values = objective_values(obj, metrics)
        tracker.metrics({f"search/objective_{i}": v for i, v in enumerate(values)})
        return None
    value, broken = objective_value(obj, metrics, search_maximizes())
    if value is not None:
        tracker.metrics({"search/objective": value})
        if broken:
            tracker.tag("spiketune.over_budget", broken)
            console.say(f"budget: {broken}: objective {obj.objective} counts as {value:.4g} "
                        f"(over budget)")
    return value
