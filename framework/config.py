"""Structured configs: one dataclass per config-group option, registered in Hydra's ConfigStore.

Every field is typed and carries its unit in a comment; numeric bounds live in the field's metadata
(``bounded``) and are checked by :func:`validate`, which names the dotted key of the first bad
value.
Nothing here imports TensorFlow, so a bad config is refused in well under a second.
"""
from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from omegaconf import MISSING, OmegaConf

from framework.errors import UserError


def bounded(default: Any = MISSING, *, ge=None, gt=None, le=None, lt=None, factory=None):
    """A dataclass field with inclusive (ge/le) or exclusive (gt/lt) numeric bounds."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class Task(str, enum.Enum):
    classification = "classification"
    regression = "regression"


class Scaling(str, enum.Enum):
    """How the inputs are scaled before the network sees them (statistics of the training split)."""

    auto = "auto"  # none for a loaded model (trained on raw inputs), else the dataset's own choice
    none = "none"  # the data as they are
    standardize = "standardize"  # zero mean, unit SD per feature (channel, for sequences/images)
    minmax = "minmax"  # [0, 1] per feature from the training split's minimum and maximum


class Layout(str, enum.Enum):
    """What the axes of a file's feature array are (after the samples axis)."""

    auto = "auto"  # from the loaded model's input where there is one, else by rank: 1 features,
    #               2 a sequence (time, channels), 3 an image (height, width, channels)
    features = "features"  # (samples, features...) fed at once
    sequence = "sequence"  # (samples, time, channels...) fed one time step per step
    image = "image"  # (samples, height, width[, channels]) fed at once


class Readout(str, enum.Enum):
    """How the spiking network's output is read over time."""

    last = "last"  # the last step only
    mean = "mean"  # the mean of the last ``readout_steps`` steps


# ----------------------------------------------------------------------------------------- dataset
@dataclass
class DatasetConfig:
    #: what ``scaling=auto`` means when spiketune builds and trains the network itself
    own_scaling: ClassVar[Scaling] = Scaling.standardize

    name: str = MISSING
    task: Task = Task.regression
    test_fraction: float = bounded(0.25, gt=0.0, lt=1.0)  # fraction of samples held out for testing
    scaling: Scaling = Scaling.auto  # input scaling, from the training split; logged as resolved


class EMG(str, enum.Enum):
    """How the reach dataset's EMG-like channels are made (docs/reach.md)."""

    ideal = "ideal"  # exact cosines plus independent Gaussian noise (can go negative)
    # rectified (≥ 0) mixtures of von Mises-tuned muscle synergies, some bimodal, with
    # signal-dependent noise shared through the synergies
    realistic = "realistic"


@dataclass
class ReachDataset(DatasetConfig):
    """Synthetic center-out reaching (Georgopoulos et al. 1982) with EMG-like channels: ideal
    cosines, or realistic synergy mixtures (``emg``). Channel values are arbitrary EMG units
    (a.u.), of the order of 1 at a channel's preferred direction."""

    #: the realistic-only fields; set while emg=ideal (or ``noise`` while realistic) is refused
    realistic_fields: ClassVar[tuple[str, ...]] = (
        "n_synergies", "kappa_low", "kappa_high", "bimodal_fraction", "synergy_noise",
        "signal_noise", "noise_floor")

    name: str = "reach"
    n_directions: int = bounded(8, ge=2)  # target directions, evenly spaced over 360°
    trials_per_direction: int = bounded(150, ge=2)  # trials per direction
    n_channels: int = bounded(8, ge=1)  # EMG-like channels
    emg: EMG = EMG.ideal  # channel model: ideal cosines or realistic synergy mixtures (see EMG)
    # emg=ideal: trial noise SD, in units of a channel's modulation depth (a.u. per a.u.)
    noise: float = bounded(0.3, ge=0.0)
    sequence: bool = False  # True: trials × time × channels with a movement envelope
    n_timesteps: int = bounded(20, ge=2)  # time bins per trial when ``sequence`` is True
    # --- emg=realistic only (docs/reach.md) ---
    n_synergies: int = bounded(5, ge=1)  # muscle synergies mixed into the channels
    # von Mises concentration κ of each synergy's tuning, drawn uniformly from [low, high];
    # dimensionless: 0 untuned, ≈ 0.5 cosine-like, 4 a lobe about 70° wide at half height
    kappa_low: float = bounded(0.5, ge=0.0)
    kappa_high: float = bounded(4.0, ge=0.0)
    # fraction of synergies (rounded to a count) with a second lobe opposite the first, of
    # 0.5-1 times its height: bimodal tuning, as of an antagonist that also brakes
    bimodal_fraction: float = bounded(0.2, ge=0.0, le=1.0)
    # trial-to-trial SD of each synergy's gain per unit gain (coefficient of variation,
    # dimensionless); shared by every channel the synergy drives, so their noise correlates
    synergy_noise: float = bounded(0.1, ge=0.0)
    # each channel's own noise SD per unit of its mean (coefficient of variation, dimensionless):
    # signal-dependent, SD grows with the activity
    signal_noise: float = bounded(0.1, ge=0.0)
    # recording noise SD before rectification, a.u.: the floor of a silent channel
    noise_floor: float = bounded(0.02, ge=0.0)


@dataclass
class DigitsDataset(DatasetConfig):
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes; no download)."""

    own_scaling: ClassVar[Scaling] = Scaling.none  # pixels are already ink fractions in [0, 1]

    name: str = "digits"
    task: Task = Task.classification


@dataclass
class FileDataset(DatasetConfig):
    """A user's recording: ``.csv`` (columns) or ``.npz`` (arrays)."""

    name: str = "file"
    path: str = ""  # the .csv or .npz file; relative paths are from the launch directory
    # csv columns or one npz array; None: all but target and direction
    features: list[str] | None = None
    target: str = "target"  # csv column or npz array holding the labels or regression targets
    direction: str | None = None  # csv column or npz array of movement directions, degrees
    # a direction value that marks trials without one (a rest class), like NaN; e.g. -1
    no_direction: float | None = None
    drop_nan: bool = False  # drop rows with NaN (their count is logged) instead of refusing them
    layout: Layout = Layout.auto  # what the feature array's axes are (see Layout)


# ------------------------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    #: the network kind that runs this model (framework.pipeline.NETWORKS)
    kind: ClassVar[str] = "keras"
    #: a model the user trained elsewhere and saved: its own score is reported, its inputs kept
    loaded: ClassVar[bool] = False
    #: whether the network runs on ``dataset`` (the ensemble makes its own ramp of inputs)
    reads_data: ClassVar[bool] = True

    name: str = MISSING


@dataclass
class DenseModel(ModelConfig):
    """Fully connected network: hidden layers with the neuron non-linearity, a linear output."""

    name: str = "dense"
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # neurons per hidden layer
    params: str = ""  # NengoDL parameters (sim.save_params .npz) to start from; empty: none


@dataclass
class ConvModel(ModelConfig):
    """Small convolutional network for images (digits)."""

    name: str = "conv"
    filters: list[int] = field(default_factory=lambda: [16, 32])  # channels per 3×3 conv layer
    kernel_size: int = bounded(3, ge=1)  # conv kernel side, pixels
    dense: int = bounded(64, ge=1)  # neurons in the dense layer after the convolutions
    params: str = ""  # NengoDL parameters (sim.save_params .npz) to start from; empty: none


@dataclass
class EnsembleModel(ModelConfig):
    """A native Nengo ensemble driven by a ramp of inputs; no training."""

    kind: ClassVar[str] = "ensemble"
    reads_data: ClassVar[bool] = False

    name: str = "ensemble"
    n_neurons: int = bounded(1, ge=1)  # neurons in the ensemble
    dimensions: int = bounded(1, ge=1)  # represented dimensions
    gain: list[float] | None = None  # explicit per-neuron gains (J per unit x); with ``bias``
    bias: list[float] | None = None  # explicit per-neuron bias currents (J)
    intercept_low: float = bounded(-1.0, ge=-1.0, le=1.0)  # x-intercept distribution, lower end
    intercept_high: float = bounded(0.9, ge=-1.0, le=1.0)  # x-intercept distribution, upper end
    max_rate_low: float = bounded(200.0, gt=0.0)  # max-rate distribution at x = 1, lower end, Hz
    max_rate_high: float = bounded(400.0, gt=0.0)  # max-rate distribution at x = 1, upper end, Hz
    input_low: float = -1.0  # ramp input start, x units
    input_high: float = 1.0  # ramp input end, x units
    n_inputs: int = bounded(41, ge=2)  # input values on the ramp


@dataclass
class KerasFileModel(ModelConfig):
    """A user's saved Keras model (.keras, .h5 or a SavedModel folder), loaded in safe mode."""

    loaded: ClassVar[bool] = True

    name: str = "keras_file"
    path: str = ""  # model file or SavedModel folder; relative paths are from the launch directory
    train: bool = False  # True: train further in NengoDL; False: evaluate the weights as they are
    # NengoDL parameters (sim.save_params .npz) of this network converted at
    # simulation.scale_firing_rates, e.g. trained in NengoDL, loaded over the file's weights;
    # empty: the file's own weights
    params: str = ""


# ------------------------------------------------------------------------------------------ neuron
@dataclass
class NeuronConfig:
    name: str = MISSING
    amplitude: float = bounded(1.0, gt=0.0)  # output per spike·s⁻¹ (scaled by 1/scale_firing_rates)


@dataclass
class ReluNeuron(NeuronConfig):
    name: str = "relu"


@dataclass
class SpikingReluNeuron(NeuronConfig):
    name: str = "spiking_relu"


@dataclass
class LIFNeuron(NeuronConfig):
    name: str = "lif"
    tau_rc: float = bounded(0.02, gt=0.0)  # membrane time constant, s
    tau_ref: float = bounded(0.002, ge=0.0)  # absolute refractory period, s


@dataclass
class LIFRateNeuron(LIFNeuron):
    name: str = "lif_rate"


@dataclass
class ThresholdLIFNeuron(LIFNeuron):
    name: str = "threshold_lif"
    threshold: float = bounded(1.0, gt=0.0)  # J_th, the input current at which firing starts


# ---------------------------------------------------------------------------------------- training
@dataclass
class XInterceptRegularizer:
    """Keep neurons' x-intercepts inside [low, high]: a hinge penalty added to the loss, and the
    biases projected back into the range after every training batch."""

    enabled: bool = False
    layers: list[str] = field(default_factory=list)  # hidden layer names; empty: every hidden layer
    low: float = -0.5  # lowest accepted x-intercept, x units
    high: float = 0.5  # highest accepted x-intercept, x units
    weight: float = bounded(1.0, ge=0.0)  # loss weight


@dataclass
class RateRegularizer:
    """Keep neurons' mean firing rates inside [low_hz, high_hz] on the training data."""

    enabled: bool = False
    layers: list[str] = field(default_factory=list)  # hidden layer names; empty: every hidden layer
    low_hz: float = bounded(10.0, ge=0.0)  # lowest accepted mean rate, Hz
    high_hz: float = bounded(200.0, gt=0.0)  # highest accepted mean rate, Hz
    weight: float = bounded(1e-3, ge=0.0)  # loss weight, per Hz² of violation


@dataclass
class BiasRange:
    """Keep neurons' biases (the ``bias`` column of neurons.csv: J, as built) inside [low, high]:
    projected back after every training batch."""

    enabled: bool = False
    layers: list[str] = field(default_factory=list)  # hidden layer names; empty: every hidden layer
    low: float = 0.0  # lowest accepted bias, J (input-current units)
    high: float = 0.5  # highest accepted bias, J


@dataclass
class TrainingConfig:
    epochs: int = bounded(60, ge=0)  # passes over the training split; 0 keeps the initial weights
    batch_size: int = bounded(32, ge=1)  # samples per gradient step
    learning_rate: float = bounded(0.01, gt=0.0)  # Adam step size
    # a batch loss this many times the lowest so far counts as diverged
    divergence_factor: float = bounded(1e3, gt=1.0)
    cache: bool = True  # reuse trained weights for an identical training config
    x_intercepts: XInterceptRegularizer = field(default_factory=XInterceptRegularizer)
    rates: RateRegularizer = field(default_factory=RateRegularizer)
    biases: BiasRange = field(default_factory=BiasRange)


# -------------------------------------------------------------------------------------- simulation
@dataclass
class SimulationConfig:
    n_steps: int = bounded(100, ge=1)  # simulation steps per test sample
    # step, s: NengoDL computes in float32 (a step under 1 µs loses the time itself) and a step
    # over 100 ms is longer than any neuron's time constant
    dt: float = bounded(0.001, ge=1e-6, le=0.1)
    synapse: float | None = bounded(0.01, ge=0.0)  # lowpass time constant on every connection, s
    scale_firing_rates: float = bounded(100.0, gt=0.0)  # neuron input × this, output ÷ this
    minibatch_size: int = bounded(200, ge=1)  # samples simulated together
    readout: Readout = Readout.mean  # how the output is read over time
    # steps averaged by the ``mean`` read-out; None: the whole trial for sequences, else the last
    # fifth of n_steps (framework.pipeline.resolve_defaults)
    readout_steps: int | None = bounded(None, ge=1)
    max_samples: int = bounded(0, ge=0)  # test samples simulated; 0: all


# ------------------------------------------------------------------------------------- conversion
class Normalize(str, enum.Enum):
    """How each converted layer's firing-rate scale is chosen."""

    auto = "auto"  # percentile for a loaded model, none for a network trained here as converted
    none = "none"  # every layer at simulation.scale_firing_rates
    percentile = "percentile"  # data-based (Diehl 2015, Rueckauer 2017): per layer, see below


@dataclass
class ConversionConfig:
    """Data-based normalisation: each layer's ``percentile``-th positive ReLU activation on the
    training inputs is made to fire at ``max_rate_hz`` (its own ``scale_firing_rates``)."""

    normalize: Normalize = Normalize.auto
    percentile: float = bounded(99.9, gt=0.0, le=100.0)  # of a layer's positive activations, %
    # rate that activation is mapped to, Hz (benchmarks/conversion_gap.py: 400 keeps spiking ReLU
    # within 1 point of the Keras model on digits and reach in 100 steps; 100-200 lose 1-12)
    max_rate_hz: float = bounded(400.0, gt=0.0)
    # per-layer scale_firing_rates (layer name -> scale); filled by normalize=percentile, or by hand
    layer_scales: dict[str, float] = field(default_factory=dict)


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
    limits: LimitsConfig = field(default_factory=lambda: LimitsConfig())


GROUPS: dict[str, dict[str, type]] = {
    "dataset": {"reach": ReachDataset, "digits": DigitsDataset, "file": FileDataset},
    "model": {"dense": DenseModel, "conv": ConvModel, "ensemble": EnsembleModel,
              "keras_file": KerasFileModel},
    "neuron": {"relu": ReluNeuron, "spiking_relu": SpikingReluNeuron, "lif": LIFNeuron,
               "lif_rate": LIFRateNeuron, "threshold_lif": ThresholdLIFNeuron},
}


_analyses_schema: type | None = None


def analyses_schema() -> type:
    """A dataclass with the common selection fields and one field per discovered analysis plugin.

    Built once per process, and importable as ``framework.config.AnalysesConfig`` (the module's
    ``__getattr__``), so a job's config pickles it by reference: a launcher's worker (submitit,
    Ray) rebuilds it from the plugins it finds instead of unpickling a copy of the class, which
    cloudpickle 2 does without its dataclass fields ("analyses.layers: no such key").
    """
    global _analyses_schema
    if _analyses_schema is None:
        from framework.analysis import plugin_configs

        fields = [(name, cfg_type, field(default_factory=cfg_type))
                  for name, cfg_type in sorted(plugin_configs().items())]
        cls = dataclasses.make_dataclass("AnalysesConfig", fields, bases=(AnalysesCommon,))
        cls.__module__ = __name__
        _analyses_schema = cls
    return _analyses_schema


def __getattr__(name: str):
    if name == "AnalysesConfig":
        return analyses_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_resolvers() -> None:
    """``${spiketune_outputs:}`` (``$SPIKETUNE_OUTPUTS`` or <repo>/outputs), the default of
    ``paths.outputs``; idempotent. Run at import, so a launcher's worker that unpickles a job's
    config (which still holds the interpolation) can resolve it."""
    if not OmegaConf.has_resolver("spiketune_outputs"):
        from framework.paths import OUTPUTS

        OmegaConf.register_new_resolver("spiketune_outputs", lambda: str(OUTPUTS))


register_resolvers()

_registered = False


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="spiketune_schema", node=Config)
    for group, options in GROUPS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node, package=group)
    cs.store(group="schema/analyses", name="default", node=analyses_schema(), package="analyses")
    _registered = True


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
        for v in values:
            if v is None or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if v != v or v in (float("inf"), float("-inf")):
                raise UserError(f"{key}: must be a finite number, got {v}")
            for op, bound in f.metadata.items():
                ok = {"ge": v >= bound, "gt": v > bound, "le": v <= bound, "lt": v < bound}[op]
                if not ok:
                    sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
                    raise UserError(f"{key}: must be {sign} {bound}, got {v}")


def _check_keys(node, obj, prefix: str) -> None:
    """Refuse keys the schema does not have (``+model._target_=...`` adds one through open_dict)."""
    from omegaconf import DictConfig

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


def _resolve_data_paths(obj: Config) -> None:
    """Take relative ``dataset.path``, ``model.path`` and ``model.params`` from ``paths.data``
    (itself relative to the launch directory) when it is set; absolute paths stay as written."""
    base = obj.paths.data
    if not base:
        return
    for group, key in (("dataset", "path"), ("model", "path"), ("model", "params")):
        node = getattr(obj, group)
        value = getattr(node, key, None)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            setattr(node, key, str(Path(base).expanduser() / value))


def validate(cfg) -> Config:
    """Check a composed config and return it as typed dataclasses.

    Raises
    ------
    UserError
        Naming the dotted key of the first out-of-range or inconsistent value.
    """
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
    if isinstance(obj.model, DenseModel):
        if not obj.model.hidden:
            raise UserError("model.hidden: needs at least one hidden layer")
        for i, n in enumerate(obj.model.hidden):
            if n < 1:
                raise UserError(f"model.hidden[{i}]: a layer needs at least 1 neuron, got {n}")
    if isinstance(obj.model, ConvModel) and not obj.model.filters:
        raise UserError("model.filters: needs at least one convolutional layer")
    if isinstance(obj.model, EnsembleModel):
        m = obj.model
        if (m.gain is None) != (m.bias is None):
            raise UserError("model.gain, model.bias: give both or neither")
        for key in ("gain", "bias"):
            if getattr(m, key) is not None and len(getattr(m, key)) != m.n_neurons:
                raise UserError(f"model.{key}: needs {m.n_neurons} values (model.n_neurons), "
                                f"got {len(getattr(m, key))}")
        if m.intercept_low > m.intercept_high:
            raise UserError("model.intercept_low: must be <= model.intercept_high")
        if m.max_rate_low > m.max_rate_high:
            raise UserError("model.max_rate_low: must be <= model.max_rate_high")
    _resolve_data_paths(obj)
    if not obj.tracking.experiment.strip():
        raise UserError("tracking.experiment: needs a name (MLflow refuses an empty one)")
    _check_names(obj)
    sim = obj.simulation
    if (sim.readout == Readout.mean and sim.readout_steps is not None
            and sim.readout_steps > sim.n_steps):
        raise UserError(f"simulation.readout_steps: {sim.readout_steps} is more than "
                        f"simulation.n_steps ({sim.n_steps})")
    for reg_key, default in (("x_intercepts", XInterceptRegularizer()),
                             ("rates", RateRegularizer()), ("biases", BiasRange())):
        reg = getattr(obj.training, reg_key)
        lo, hi = (reg.low_hz, reg.high_hz) if reg_key == "rates" else (reg.low, reg.high)
        if lo >= hi:
            name = "low_hz" if reg_key == "rates" else "low"
            raise UserError(f"training.{reg_key}.{name}: must be below the upper bound, got "
                            f"{lo} >= {hi}")
        changed = [f.name for f in dataclasses.fields(reg)
                   if f.name != "enabled" and getattr(reg, f.name) != getattr(default, f.name)]
        if changed and not reg.enabled:  # a range that would silently do nothing
            raise UserError(f"training.{reg_key}.{changed[0]}: set, but training.{reg_key} is "
                            f"not enabled (add training.{reg_key}.enabled=true)")
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


def to_flat_params(cfg) -> dict[str, str]:
    """Every leaf of the resolved config as ``dotted.key -> str`` (MLflow params)."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    flat: dict[str, str] = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            flat[prefix] = str(node)

    walk(container, "")
    return flat
