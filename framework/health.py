"""The run's verdict: checks that say, each in one line, what in a run's numbers would mislead a
scientist and what to do about it.

A run that finishes is not a run whose numbers mean what they seem. After the analyses, each
check here reads the run's metrics (and a few facts about its data and config) and either stays
quiet or returns a :class:`Finding`: its name (the tag ``spiketune.health.<check>``) and one line.
The verdict is ``ok`` when none fired, else ``warn``; it is tagged ``spiketune.health``, printed
with the summary and written into the run's MLflow description.

Checks (limits in :class:`HealthConfig`, the ``health`` node):

* ``held_out``: a loaded model scored on spiketune's own split, which may hold its training trials;
* ``saturated`` / ``silent``: a layer with more than a stated fraction of such neurons;
* ``spiking_gap``: the spiking network below the rate network or the loaded model by a margin;
* ``chance``: a score at chance (the majority class; 80° of angle error; R² ≤ 0);
* ``fine_tune_worse``: training ended below the loaded model's own score;
* ``rate_resolution``: fewer spikes per neuron in the read-out window than a rate can be read from;
* ``override_ignored`` and ``params_scale``: said by the stages that found them.

Pure Python on plain values: no TensorFlow, no MLflow, so each check is tested on numbers alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from framework.schema import bounded

#: the score each task reports, and whether lower is better (the order :func:`score_key` tries)
SCORES = {"accuracy": False, "angle_error_deg": True, "mse": True}


@dataclass
class HealthConfig:
    """The ``health`` node: the limits the verdict's checks apply."""

    saturated_max: float = bounded(0.10, ge=0.0, le=1.0)  # per layer, fraction of neurons
    silent_max: float = bounded(0.25, ge=0.0, le=1.0)  # per layer, fraction of neurons
    # spiking below the rate network or the loaded model by more than this (accuracy, fraction)
    accuracy_margin: float = bounded(0.05, ge=0.0, le=1.0)
    # angle error or mse: more than this factor of the reference (dimensionless, 0.5 = 50%)
    relative_margin: float = bounded(0.5, ge=0.0)
    angle_margin_deg: float = bounded(3.0, ge=0.0)  # and at least this many degrees more
    # fine-tuning: training may end at most this far below the loaded model (accuracy, fraction)
    fine_tune_margin: float = bounded(0.02, ge=0.0, le=1.0)
    # spikes a neuron fires on average in the read-out window, below which rates are unresolved
    min_spikes: float = bounded(2.0, ge=0.0)
    chance_angle_deg: float = bounded(80.0, gt=0.0, le=180.0)  # random directions give 90°


class Finding(NamedTuple):
    """One check that fired: its name (tag ``spiketune.health.<check>``) and its line."""

    check: str
    message: str


@dataclass
class Facts:
    """What the checks read besides the metrics.

    Attributes
    ----------
    loaded : bool
        The network's weights came from a user's file (``model.path`` or ``model.params``).
    trained : bool
        spiketune trained (fine-tuned) the network in this run.
    held_out : bool
        The test samples are held out from the model's own training: the user's split, or a
        model spiketune trained on its own split.
    spiking : bool
        The neurons spike (rates are counted from spikes in the read-out window).
    readout_s : float
        The read-out window, seconds (``simulation.readout_steps`` × ``dt``).
    dt : float
        The simulation step, seconds.
    n_steps, readout_steps : int
        ``simulation.n_steps`` and the read-out steps as resolved.
    chance_accuracy : float or None
        Classification: the majority class's fraction of the test samples.
    target_var : float or None
        Regression: the test targets' variance (mse at R² = 0).
    said : list of Finding
        Findings the stages made themselves (``override_ignored``, ``params_scale``).
    """

    loaded: bool = False
    trained: bool = False
    held_out: bool = True
    spiking: bool = True
    readout_s: float = 0.0
    dt: float = 0.001
    n_steps: int = 0
    readout_steps: int = 0
    chance_accuracy: float | None = None
    target_var: float | None = None
    split_source: str = ""  # how the test samples were chosen, for the held_out line
    split_keys: str = ""  # the keys that give the model's own split, where the dataset has none
    # the key that sets the firing rates: simulation.scale_firing_rates, or with data-based
    # normalisation conversion.mean_rate_hz / conversion.max_rate_hz
    rate_key: str = "simulation.scale_firing_rates"
    said: list[Finding] = field(default_factory=list)


def score_key(metrics: dict[str, float]) -> str | None:
    """The task's score name (one of :data:`SCORES`) the run logged, spiking or rate."""
    for name in SCORES:
        if f"spiking/{name}" in metrics or f"rate/{name}" in metrics:
            return name
    return None


def worse_by(name: str, value: float, reference: float, cfg: HealthConfig,
             margin: float | None = None) -> bool:
    """Whether score ``name`` at ``value`` is worse than ``reference`` by more than its margin:
    accuracy by ``margin`` (default ``accuracy_margin``) absolute; angle error and mse by
    ``relative_margin`` of the reference (angle error also by ``angle_margin_deg``)."""
    if not (math.isfinite(value) and math.isfinite(reference)):
        return math.isfinite(reference) and not math.isfinite(value)
    if name == "accuracy":
        return value < reference - (cfg.accuracy_margin if margin is None else margin)
    slack = reference * (cfg.relative_margin if margin is None else margin)
    if name == "angle_error_deg":
        slack = max(slack, cfg.angle_margin_deg)
    return value > reference + slack


def _fmt(name: str, value: float) -> str:
    return f"{value:.1f}°" if name == "angle_error_deg" else f"{value:.3g}"


def held_out(facts: Facts) -> list[Finding]:
    if not facts.loaded or facts.held_out:
        return []
    how = (facts.split_keys or "dataset.split (a train/test column or array) or "
           "dataset.test_path")
    return [Finding("held_out", f"scores are on {facts.split_source or 'spiketune’s own split'}, "
                    f"which may hold the loaded model's own training trials: give the model's "
                    f"split as {how}")]


def layer_fractions(metrics: dict[str, float], what: str, limit: float) -> list[tuple[str, float]]:
    """``(layer, fraction)`` of each layer whose ``firing/<layer>/<what>_fraction`` exceeds
    ``limit``."""
    out = []
    for key, value in sorted(metrics.items()):
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "firing" and parts[2] == f"{what}_fraction":
            if value > limit:
                out.append((parts[1], value))
    return out


#: per-layer checks: what the layer's neurons do, and what to do about it
LAYER_CHECKS = {
    "saturated": ("fire near 1/tau_ref, where rates plateau and tuning curves flatten: lower "
                  "{rate}, or keep rates in range with {train}"),
    "silent": ("never fire on the test samples and carry nothing: raise {rate}, or keep rates "
               "in range with {train}"),
}


def layer_check(check: str, metrics: dict[str, float], limit: float,
                facts: Facts | None = None) -> list[Finding]:
    """``saturated`` or ``silent``: the layers with more than ``limit`` of such neurons; the
    advice names the key that sets this run's rates, and how a loaded model gets trained."""
    over = layer_fractions(metrics, check, limit)
    if not over:
        return []
    facts = facts or Facts()
    train = ("training.rates.enabled=true" if facts.trained or not facts.loaded else
             "model.train=true training.rates.enabled=true")
    advice = LAYER_CHECKS[check].format(rate=facts.rate_key, train=train)
    if check == "silent" and facts.loaded:  # a ReLU unit never active in the model stays so
        advice += " (a unit silent in the loaded model itself stays silent at any rate)"
    layers = ", ".join(f"{name} {frac:.0%}" for name, frac in over)
    return [Finding(check, f"{check} neurons over {limit:.0%}: {layers} {advice}")]


def spiking_gap(metrics: dict[str, float], cfg: HealthConfig,
                rate_key: str = "simulation.scale_firing_rates") -> list[Finding]:
    name = score_key(metrics)
    spiking = metrics.get(f"spiking/{name}")
    if name is None or spiking is None:
        return []
    for ref in ("rate", "keras"):
        reference = metrics.get(f"{ref}/{name}")
        if reference is not None and worse_by(name, spiking, reference, cfg):
            what = "rate network" if ref == "rate" else "loaded model"
            return [Finding("spiking_gap", f"spiking/{name} {_fmt(name, spiking)} is well below "
                            f"the {what}'s {ref}/{name} {_fmt(name, reference)}: the spikes do "
                            f"not carry the rates; raise simulation.n_steps or {rate_key}, or "
                            "train as converted (model.train=true)")]
    return []


def chance(metrics: dict[str, float], facts: Facts, cfg: HealthConfig) -> list[Finding]:
    name = score_key(metrics)
    for kind in ("spiking", "rate"):
        value = metrics.get(f"{kind}/{name}")
        if value is None:
            continue
        at_chance = {"accuracy": facts.chance_accuracy is not None
                     and value <= facts.chance_accuracy + 0.01,
                     "angle_error_deg": value >= cfg.chance_angle_deg,
                     "mse": facts.target_var is not None and value >= facts.target_var}
        if at_chance.get(str(name)) or not math.isfinite(value):
            level = {"accuracy": f"the majority class's {facts.chance_accuracy or 0:.3g}",
                     "angle_error_deg": "random directions' 90°",
                     "mse": f"the targets' variance {facts.target_var or 0:.3g}"}[str(name)]
            return [Finding("chance", f"{kind}/{name} {_fmt(str(name), value)} is at chance "
                            f"({level}): the network has not learnt the task")]
    return []


def fine_tune_worse(metrics: dict[str, float], facts: Facts, cfg: HealthConfig) -> list[Finding]:
    name = score_key(metrics)
    own, trained = metrics.get(f"keras/{name}"), metrics.get(f"rate/{name}")
    if not (facts.loaded and facts.trained) or own is None or trained is None or name is None:
        return []
    if not worse_by(name, trained, own, cfg, margin=cfg.fine_tune_margin
                    if name == "accuracy" else 0.1):
        return []
    return [Finding("fine_tune_worse", f"fine-tuning ended at rate/{name} "
                    f"{_fmt(name, trained)}, below the loaded model's own keras/{name} "
                    f"{_fmt(name, own)}: lower training.learning_rate, or run the model as "
                    "it is (model.train=false)")]


def rate_resolution(metrics: dict[str, float], facts: Facts, cfg: HealthConfig) -> list[Finding]:
    rate = metrics.get("firing/mean_rate_hz")
    if not facts.spiking or rate is None or facts.readout_s <= 0 or rate <= 0:
        return []
    spikes = rate * facts.readout_s
    if spikes >= cfg.min_spikes:
        return []
    need = math.ceil(cfg.min_spikes / (rate * facts.dt))  # read-out steps
    n_steps = max(facts.n_steps, math.ceil(need * facts.n_steps / max(facts.readout_steps, 1)))
    return [Finding("rate_resolution", f"neurons fire {spikes:.2g} spikes on average in the "
                    f"{facts.readout_s * 1e3:g} ms read-out window (mean {rate:.3g} Hz), too few "
                    f"to read a rate from (< {cfg.min_spikes:g}): simulation.n_steps={n_steps} "
                    f"would give {cfg.min_spikes:g}")]


def findings(metrics: dict[str, float], facts: Facts, cfg: HealthConfig) -> list[Finding]:
    """Every check that fires on this run, in the order a reader should act on them."""
    found = held_out(facts) + list(facts.said)
    found += chance(metrics, facts, cfg)
    found += fine_tune_worse(metrics, facts, cfg)
    found += spiking_gap(metrics, cfg, facts.rate_key)
    found += rate_resolution(metrics, facts, cfg)
    found += layer_check("saturated", metrics, cfg.saturated_max, facts)
    found += layer_check("silent", metrics, cfg.silent_max, facts)
    return found


def verdict(found: list[Finding]) -> str:
    """``ok`` when no check fired, else ``warn``."""
    return "warn" if found else "ok"
