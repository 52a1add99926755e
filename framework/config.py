"""The root config: ``Config``, :func:`validate`, and the ConfigStore filled from the registries.

Each config-group option is one schema class in the module that builds it (``dataset`` options in
:mod:`framework.data`, ``model`` in :mod:`framework.models` and :mod:`framework.networks`,
``neuron`` in :mod:`framework.neurons`, ``analyses.<name>`` in each plugin), registered once;
:func:`register` stores every registered schema in Hydra's ConfigStore. Every field is typed and
carries its unit in a comment; numeric bounds live in the field's metadata (``bounded``) and are
checked by :func:`validate`, which names the dotted key of the first bad value. Nothing here imports
TensorFlow, so a bad config is refused in well under a second.
"""
from __future__ import annotations

import dataclasses
import functools
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import MISSING, DictConfig, OmegaConf

from framework import plugin_host
from framework.conversion import ConversionConfig
from framework.data import DATASETS
from framework.errors import UserError
from framework.health import HealthConfig
from framework.models import MODELS
from framework.networks import ensemble  # noqa: F401 - imported in order to register model=ensemble
from framework.neurons import NEURONS
from framework.paths import OUTPUTS
from framework.registry import Registry
from framework.schema import bounded, command_line
from framework.simulation import SimulationConfig
from framework.training import TrainingConfig


# ---------------------------------------------------------------------------------------- tracking
@dataclass
class TrackingConfig:
    uri: str = ""  # MLflow tracking URI; empty: paths.store (sqlite:///<outputs>/mlflow.db)
    experiment: str = "spiketune"  # MLflow experiment name
    run_name: str = ""  # MLflow run name; empty: derived from the overrides
    plots: bool = True  # draw and log plots (False: numbers only, faster sweeps)
    # base URL of the MLflow UI in the printed links; empty: $SPIKETUNE_UI_URL, else the server of
    # an http(s) tracking.uri, else spiketune-ui's own http://127.0.0.1:5000
    ui_url: str = ""
    # log the trained rate network as an MLflow model (pyfunc, artifact path `model`)
    log_model: bool = True
    # register that model in the model registry under this name (a new version per run); empty: no
    register: str = ""
    # log system/* metrics (CPU, memory, disk, network; needs psutil), one sample every
    # $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL s (MLflow's default 10 s)
    system_metrics: bool = True


# ---------------------------------------------------------------------------------------- analyses
@dataclass
class AnalysesCommon:
    layers: list[str] = field(default_factory=list)  # hidden layers to analyse; empty: all
    max_neurons: int = bounded(0, ge=0)  # neurons analysed per layer (a seeded sample); 0: all


@dataclass
class PathsConfig:
    """Folders a run writes to and reads from (conf/paths/); relative ones are taken from the
    launch directory."""

    outputs: str = MISSING  # Hydra's run and sweep folders (path)
    data: str = ""  # base of relative dataset.path, model.path, model.params (path); "": launch dir
    store: str = MISSING  # MLflow tracking URI used when tracking.uri is empty
    cache: str = MISSING  # training cache folder (path)


@dataclass
class LimitsConfig:
    """What a run may plan to use, checked before the work (framework/limits.py)."""

    # memory a simulation or an unpacked archive may take, GB; None: 3/4 of physical memory
    memory_gb: float | None = bounded(None, gt=0.0)


@dataclass
class BudgetConfig:
    """A limit a search must respect: a run whose ``metric`` ends above ``max`` scores +inf as
    ``objective``, so a minimising search moves away from it."""

    metric: str = ""  # e.g. firing/mean_rate_hz or time/simulate_s; empty: no budget
    max: float | None = None  # the highest accepted value, in the metric's units (Hz, s, ...)


@dataclass
class Config:
    # one integer that makes a run reproducible; numpy, TF and Nengo take seeds in [0, 2**32)
    seed: int = bounded(0, ge=0, lt=2**32)
    dataset: Any = MISSING
    model: Any = MISSING
    neuron: Any = MISSING
    training: TrainingConfig = field(default_factory=TrainingConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    conversion: ConversionConfig = field(default_factory=ConversionConfig)
    # analysis plugin names; auto: every shipped one that applies
    analysis: list[str] = field(default_factory=lambda: ["auto"])
    analyses: Any = MISSING  # one node per analysis plugin (built from the plugins' own configs)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # labels logged as MLflow tags: "name" (tag name = "true") or "name:value"
    tags: list[str] = field(default_factory=list)
    # the metric a sweep's job returns, for a search sweeper (e.g. spiking/angle_error_deg);
    # empty: jobs return their status and metrics only
    objective: str = ""
    budget: BudgetConfig = field(default_factory=lambda: BudgetConfig())
    # a multi-objective search's objectives, one per entry of hydra.sweeper.direction, in order:
    # `score` (the task's spiking score as a loss to minimise: angle error in degrees or MSE as
    # logged, accuracy negated), a metric name (in its unit: firing/mean_rate_hz in Hz,
    # cost/synops_per_sample in operations) or a numeric config key (simulation.n_steps, steps);
    # empty: a single objective (`objective`) or none
    objectives: list[str] = field(default_factory=list)
    limits: LimitsConfig = field(default_factory=lambda: LimitsConfig())
    # the limits of the run's verdict checks (framework/health.py)
    health: HealthConfig = field(default_factory=HealthConfig)


#: the config groups whose options are schema classes, each group's registry (one registration
#: per option: the registry is the list of options)
GROUPS: dict[str, Registry[Any]] = {"dataset": DATASETS, "model": MODELS, "neuron": NEURONS}


@functools.cache
def analyses_schema() -> type:
    """A dataclass with the common selection fields and one field per discovered analysis plugin.

    Built once per process, and importable as ``framework.config.AnalysesConfig`` (the module's
    ``__getattr__``), so a job's config pickles it by reference: a launcher's worker (submitit,
    Ray) rebuilds it from the plugins it finds instead of unpickling a copy of the class, which
    cloudpickle 2 does without its dataclass fields ("analyses.layers: no such key").
    """
    fields = [(name, cfg_type, field(default_factory=cfg_type))
              for name, cfg_type in sorted(plugin_host.plugin_configs().items())]
    cls = dataclasses.make_dataclass("AnalysesConfig", fields, bases=(AnalysesCommon,))
    cls.__module__ = __name__
    return cls


def __getattr__(name: str) -> type:
    if name == "AnalysesConfig":
        return analyses_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_resolvers() -> None:
    """``${spiketune_outputs:}`` (``$SPIKETUNE_OUTPUTS`` or <repo>/outputs), the default of
    ``paths.outputs``; idempotent. Called by the app's start-up
    (:func:`framework.app.startup.start`) and by :func:`validate`, never at import."""
    if not OmegaConf.has_resolver("spiketune_outputs"):
        OmegaConf.register_new_resolver("spiketune_outputs", lambda: str(OUTPUTS))

@functools.cache
def register() -> None:
    """Store every schema in Hydra's ConfigStore (once per process)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="spiketune_schema", node=Config)
    for group, options in GROUPS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node, package=group)
    cs.store(group="schema/analyses", name="default", node=analyses_schema(), package="analyses")


# -------------------------------------------------------------------------------------- validation
def _check_bounds(obj: Any, prefix: str) -> None:
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value):
            _check_bounds(value, key)
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:  # OmegaConf lets [[1, 2]] into a list[int]
            if isinstance(value, list) and isinstance(v, (list, dict)):
                raise UserError(f"{key}: a list of single values, got {value}")
            if v is None or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if v != v or v in (float("inf"), float("-inf")):
                raise UserError(f"{key}: must be a finite number, got {v}")
            for op, bound in f.metadata.items():
                ok = {"ge": v >= bound, "gt": v > bound, "le": v <= bound, "lt": v < bound}[op]
                if not ok:
                    sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
                    raise UserError(f"{key}: must be {sign} {bound}, got {v}")


def _check_keys(node: Any, obj: Any, prefix: str) -> None:
    """Refuse keys the schema does not have (``+model._target_=...`` adds one through open_dict)."""
    if not isinstance(node, DictConfig) or not dataclasses.is_dataclass(obj):
        return
    names = {f.name for f in dataclasses.fields(obj)}
    for key in node.keys():
        full = f"{prefix}.{key!s}" if prefix else str(key)
        if key not in names:
            raise UserError(f"{full}: no such key")
        _check_keys(node._get_node(key), getattr(obj, key), full)


#: a metric key as runs log them: slash-separated words (``spiking/angle_error_deg``)
_METRIC_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


#: what MLflow's stores hold (mlflow.utils.validation; the SQL schema's column widths), in
#: characters: a longer name fails in the store after the run has started, or on another backend
MAX_EXPERIMENT_NAME = 256
MAX_RUN_NAME = 250
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 8000


def _check_names(obj: Config) -> None:
    """Names the store keeps, within its limits before anything runs."""
    for key, value, limit in (("tracking.experiment", obj.tracking.experiment, MAX_EXPERIMENT_NAME),
                              ("tracking.run_name", obj.tracking.run_name, MAX_RUN_NAME)):
        if len(value) > limit:
            raise UserError(f"{key}: {len(value)} characters; an MLflow store keeps at most "
                            f"{limit}")
    for i, tag in enumerate(obj.tags):
        name, _, value = str(tag).partition(":")
        if len(name) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise UserError(f"tags[{i}]: a tag name keeps at most {MAX_TAG_KEY} characters and a "
                            f"value {MAX_TAG_VALUE}; got {len(name)} and {len(value)}")


def _check_search(obj: Config) -> None:
    """``tags``, ``objective`` and ``budget``: well-formed before anything runs (whether the run
    logs those metrics is known only at its end, where a missing one is refused too)."""
    for i, tag in enumerate(obj.tags):
        name = str(tag).split(":", 1)[0]
        if not name or not re.fullmatch(r"[A-Za-z0-9_.\-/ ]+", name):
            raise UserError(f"tags[{i}]: {tag!r} is not a tag; use name or name:value (letters, "
                            f"digits, _ . - / and spaces)")
        if name.lower().startswith(("spiketune.", "mlflow.")):  # the tool's own: owner, sweep
            raise UserError(f"tags[{i}]: {name}: User tags cannot use the `spiketune.` or "
                            f"`mlflow.` prefixes")
    if obj.objective and not _METRIC_KEY.match(obj.objective):
        raise UserError(f"objective: {obj.objective!r} is not a metric name (e.g. "
                        f"spiking/angle_error_deg)")
    if obj.budget.metric and not _METRIC_KEY.match(obj.budget.metric):
        raise UserError(f"budget.metric: {obj.budget.metric!r} is not a metric name (e.g. "
                        f"firing/mean_rate_hz)")
    if obj.budget.metric and not obj.objective:
        raise UserError("budget.metric: a budget limits an objective; set objective=<metric> too")
    if bool(obj.budget.metric) != (obj.budget.max is not None):
        raise UserError("budget.metric, budget.max: give both or neither")
    _check_objectives(obj)


#: the pseudo-metric of ``objectives`` that stands for the task's spiking score, as a loss
SCORE_OBJECTIVE = "score"


def _check_objectives(obj: Config) -> None:
    """``objectives``: each the task ``score``, a metric name or a numeric config key; alone (not
    with ``objective`` or a ``budget``, whose cost is one of them)."""
    if not obj.objectives:
        return
    if obj.objective or obj.budget.metric:
        raise UserError("objectives: a multi-objective search has no single `objective` or "
                        "`budget` (its cost is one of the objectives); drop objective, budget.*")
    if len(set(obj.objectives)) != len(obj.objectives):
        raise UserError(f"objectives: {list(obj.objectives)} names one twice")
    for i, key in enumerate(obj.objectives):
        if key == SCORE_OBJECTIVE or ("/" in key and _METRIC_KEY.match(key)):
            continue
        try:
            value = operator.attrgetter(key)(obj) if _METRIC_KEY.match(key) else None
        except AttributeError:
            value = None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"objectives[{i}]: {key!r} is neither `score`, a metric name "
                            f"(firing/mean_rate_hz) nor a numeric config key (simulation.n_steps)")


def _resolve_data_paths(obj: Config) -> None:
    """Take relative ``dataset.path``, ``model.path`` and ``model.params`` from ``paths.data``
    (itself relative to the launch directory) when it is set; absolute paths stay as written."""
    base = obj.paths.data
    if not base:
        return
    for node in (obj.dataset, obj.model):
        for key in type(node).path_fields:
            value = getattr(node, key)
            if value and not Path(value).expanduser().is_absolute():
                setattr(node, key, str(Path(base).expanduser() / value))


def validate(cfg: Any) -> Config:
    """Check a composed config and return it as typed dataclasses.

    Raises
    ------
    UserError
        Naming the dotted key of the first out-of-range or inconsistent value.
    """
    register_resolvers()  # a job's config unpickled in a launcher's worker still interpolates them
    try:
        obj = cast(Config, OmegaConf.to_object(cfg))
    except Exception as ex:  # OmegaConf's own type and missing-value errors
        raise UserError(omegaconf_message(ex)) from None
    _check_keys(cfg, obj, "")
    _check_bounds(obj, "")
    for group in ("dataset", "model", "neuron"):
        _check_bounds(getattr(obj, group), group)
    _check_bounds(obj.analyses, "analyses")
    _check_search(obj)
    obj.model.check()
    _resolve_data_paths(obj)
    if not obj.tracking.experiment.strip():
        raise UserError("tracking.experiment: needs a name (MLflow refuses an empty one)")
    _check_names(obj)
    obj.simulation.check()
    given = {o.lstrip("+~") for o in command_line()}
    for rng in obj.training.ranges():  # a range switched off by name: a preset's bounds rest
        rng.check(switched_off=f"training.{rng.key}.enabled=false" in given)
    return obj


def omegaconf_message(ex: BaseException) -> str:
    """One line from an OmegaConf/Hydra error: the full key and what is wrong with it."""
    cause = ex
    while cause.__cause__ is not None and not hasattr(cause, "full_key"):
        cause = cause.__cause__
    key = getattr(cause, "full_key", None)
    msg = getattr(cause, "msg", None) or str(cause)
    msg = " ".join(line.strip() for line in str(msg).splitlines() if line.strip()
                   and not line.strip().startswith(("full_key:", "object_type=",
                                                    "reference_type=")))
    if "Missing mandatory value" in msg and key:
        return f"{key}: a value is required"
    if "not in struct" in msg or "not in" in msg and "Key '" in msg:
        return f"{key}: no such key" if key else msg
    return f"{key}: {msg}" if key else msg


def to_flat_params(cfg: Any) -> dict[str, str]:
    """Every leaf of the resolved config as ``dotted.key -> str`` (MLflow params)."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            flat[prefix] = str(node)

    walk(container, "")
    return flat
