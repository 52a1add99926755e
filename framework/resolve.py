"""The values a config leaves to the data (``auto`` and unset), resolved in place, one line each;
and the config as resolved, for the run's params and ``config.yaml``."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict, read_write

from framework.config import Config, to_flat_params
from framework.conversion import Normalize
from framework.data import base as datasets
from framework.data.base import Data, Scaling
from framework.errors import UserError
from framework.health import Finding
from framework.keras_io import screen
from framework.networks.base import Nodes
from framework.neurons import NEURONS, LIFNeuron
from framework.schema import named_keys
from framework.simulation import Readout, SimulationConfig
from framework.training import LEARNING_RATE

#: Adam's step for fine-tuning a loaded model (``training.learning_rate`` unset), measured
#: (benchmarks/fine_tune.py, benchmarks/README.md): on the seed-000 EMG model, 20 epochs, spiking
#: accuracy at 0.01 / 0.003 / 0.001 was 0.943 / 0.929 / 0.900 at scale 100 and 0.843 (no epoch
#: beat the loaded weights) / 0.900 / 0.871 under percentile normalisation; the forum's own run
#: fell to chance at 0.01. 0.003 is the best of both.
FINE_TUNE_LEARNING_RATE = 0.003


def given(key: str, value: Any, default: Any) -> bool:
    """Whether the user set ``key`` (dotted): on the command line, or to a value other than its
    schema default (a preset, a config file)."""
    return key in named_keys() or value != default


def _normalize(obj: Config, found: list[Finding]) -> list[str]:
    """``conversion.normalize`` as resolved, never overruling a value the user set; one line."""
    conv, scale = obj.conversion, obj.simulation.scale_firing_rates
    params = obj.model.start_params()
    scale_given = given("simulation.scale_firing_rates", scale, SimulationConfig.scale_firing_rates)
    if params:  # NengoDL parameters belong to the scale they were trained at (biases scaled)
        if conv.normalize.data_based:
            raise UserError(f"conversion.normalize: {conv.normalize.value} would rescale "
                            "model.params, whose "
                            "biases were trained at one scale; use conversion.normalize=none "
                            "(or auto)")
        conv.normalize = Normalize.none
        return [_params_scale(obj, params, scale_given, found)]
    if conv.normalize == Normalize.auto and conv.layer_scales:  # scales given by hand
        conv.normalize = Normalize.none
    if conv.normalize != Normalize.auto:
        if scale_given and (conv.normalize.data_based or conv.layer_scales):
            # both chosen (a search over both): run as asked, and say which one was not used
            how = (f"conversion.normalize={conv.normalize.value}" if conv.normalize.data_based
                   else "conversion.layer_scales")
            found.append(Finding("override_ignored", f"simulation.scale_firing_rates={scale:g} "
                                 f"was given but not used: {how} set each layer's scale "
                                 "instead"))
        return []
    if obj.model.loaded and not scale_given:
        # measured best at <= 100 Hz and <= 100 steps (benchmarks/frontier.py, docs/frontier.md)
        conv.normalize = Normalize.mean_rate
        return [f"conversion.normalize=auto -> mean_rate (a model trained elsewhere: each "
                f"layer scaled so its mean rate on the training inputs is "
                f"{conv.mean_rate_hz:g} Hz)"]
    conv.normalize = Normalize.none
    if obj.model.loaded:
        return [f"conversion.normalize=auto -> none (simulation.scale_firing_rates={scale:g} "
                f"was given, so every layer runs at it)"]
    return []


def _params_scale(obj: Config, params: str, scale_given: bool, found: list[Finding]) -> str:
    """The scale ``model.params`` were trained at: read from the record spiketune writes next to
    them (``<name>.conversion.json``), else the one given, else stated as an assumption."""
    sim = obj.simulation
    record = params_record(params)
    if record is not None and not scale_given:
        sim.scale_firing_rates = float(record["scale_firing_rates"])
        obj.conversion.layer_scales = obj.conversion.layer_scales or {
            k: float(v) for k, v in record.get("layer_scales", {}).items()}
        return (f"simulation.scale_firing_rates -> {sim.scale_firing_rates:g} (model.params were "
                f"trained at it: {Path(params).stem}.conversion.json)")
    if record is not None and float(record["scale_firing_rates"]) != sim.scale_firing_rates:
        found.append(Finding("params_scale", f"model.params were trained at "
                             f"simulation.scale_firing_rates={record['scale_firing_rates']:g} "
                             f"(their .conversion.json) and run at {sim.scale_firing_rates:g}: "
                             "their biases belong to the other scale"))
    elif record is None and not scale_given:
        found.append(Finding("params_scale", "model.params carry no record of the scale they "
                             f"were trained at; assumed simulation.scale_firing_rates="
                             f"{sim.scale_firing_rates:g}: set it to theirs"))
    return (f"conversion.normalize=auto -> none (model.params run at "
            f"simulation.scale_firing_rates={sim.scale_firing_rates:g})")


def params_record(params: str) -> dict[str, Any] | None:
    """The conversion record spiketune saved beside a params file (``<stem>.conversion.json``:
    ``scale_firing_rates``, ``layer_scales``, ``neuron``), or None when there is none."""
    path = Path(params).with_suffix(".conversion.json")
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            record = json.loads(f.read(1 << 20))
        float(record["scale_firing_rates"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"model.params: {path.name} is not a conversion record "
                        f"(scale_firing_rates)") from None
    return dict(record)


def resolve_defaults(obj: Config, data: Data | None,
                     found: list[Finding] | None = None) -> list[str]:
    """Fill in the config values that follow the data (``auto``/None), in place; one line each.

    * ``dataset.scaling=auto``: ``none`` for a loaded model (it was trained on the raw inputs),
      else the dataset's own choice (``standardize``; ``none`` for digits, already in [0, 1]).
    * ``conversion.normalize=auto``: ``mean_rate`` for a loaded model (its weights were not
      trained for the neurons; per-layer scales from its activations), else ``none`` (spiketune
      trains the network as converted, through the neurons' rates).
    * ``simulation.readout=auto``: ``fitted`` for a loaded model of static inputs without a
      ``readout_steps`` (the window is chosen after training), else ``mean``.
    * ``simulation.readout_steps`` unset: the whole trial for sequences (each time bin is part of
      the movement), else the last fifth of ``simulation.n_steps`` (at least one step).
    """
    said = []
    if not obj.model.reads_data:  # the network makes its own inputs (the ensemble's ramp)
        obj.dataset.scaling = Scaling.none
    elif obj.dataset.scaling == Scaling.auto:
        obj.dataset.scaling = Scaling.none if obj.model.loaded else type(obj.dataset).own_scaling
        why = ("the loaded model was trained on the data as they are" if obj.model.loaded
               else f"dataset {obj.dataset.name}'s choice for a network spiketune trains")
        said.append(f"dataset.scaling=auto -> {obj.dataset.scaling.value} ({why})")
    said += _neuron(obj)
    said += _normalize(obj, found if found is not None else [])
    said += _learning_rate(obj)
    said += _bin_s(obj, data)
    said += _readout(obj, data)
    return said


def _readout(obj: Config, data: Data | None) -> list[str]:
    """``simulation.readout=auto``: ``fitted`` for a loaded model of static inputs whose window
    was not given (measured in docs/frontier.md), else ``mean``; ``fitted`` refused where there
    is nothing to fit; an unset ``readout_steps`` of ``mean`` filled in."""
    sim = obj.simulation
    sequence = bool(data is not None and data.sequence)
    said = []
    if sim.readout == Readout.auto:
        fitted = obj.model.loaded and not sequence and sim.readout_steps is None
        sim.readout = Readout.fitted if fitted else Readout.mean
        if fitted:
            said.append("simulation.readout=auto -> fitted (a model trained elsewhere: the "
                        "window of steps the read-out averages is the one that scores best on "
                        f"up to {obj.conversion.calibration_samples} training samples)")
    if sim.readout == Readout.fitted:
        if not obj.model.reads_data:
            raise UserError(f"simulation.readout=fitted: model {obj.model.name} makes its own "
                            "inputs and has no read-out to fit")
        if sequence:
            raise UserError("simulation.readout=fitted: static inputs only (a sequence model's "
                            "loss pools the bins its read-out covers); set "
                            "simulation.readout_steps instead")
        return said  # the window is chosen after training (framework.calibration.fit_readout)
    if sim.readout_steps is None:
        sim.readout_steps = sim.n_steps if sequence else max(1, sim.n_steps // 5)
        if sim.readout == Readout.mean:
            what = "the whole trial" if sequence else "the last fifth"
            said.append(f"simulation.readout_steps -> {sim.readout_steps} ({what} of "
                        f"simulation.n_steps={sim.n_steps})")
    return said


def _neuron(obj: Config) -> list[str]:
    """A loaded ReLU model left at the default neuron (LIF, not chosen) runs spiking ReLU, which
    keeps its score without training (LIF loses 10-60 points: README, "Your own model"); a
    neuron the user chose stays, and so does any LIF setting they gave."""
    if not obj.model.loaded or type(obj.neuron) is not LIFNeuron or obj.neuron != LIFNeuron():
        return []
    if any(key.split(".")[0] == "neuron" for key in named_keys()):
        return []
    obj.neuron = NEURONS.get("spiking_relu", "neuron")()
    return ["neuron -> spiking_relu (a loaded ReLU model keeps its score as spiking ReLU without "
            "training; neuron=lif chooses LIF)"]


def _bin_s(obj: Config, data: Data | None) -> list[str]:
    """``dataset.bin_s`` given: ``simulation.n_steps`` is the recording's own time, bins ×
    bin_s / dt (a number on the command line that differs is refused, naming both)."""
    bin_s, sim = getattr(obj.dataset, "bin_s", None), obj.simulation
    if bin_s is None or data is None:
        return []
    if not data.sequence:
        raise UserError("dataset.bin_s: set for data that are not a sequence (no time axis); "
                        "leave it unset")
    hold = round(bin_s / sim.dt)
    if hold < 1 or abs(hold * sim.dt - bin_s) > 1e-6 * bin_s:
        raise UserError(f"dataset.bin_s: {bin_s:g} s is not a whole number of simulation.dt "
                        f"({sim.dt:g} s) steps")
    bins = int(data.x_test.shape[1])
    n_steps = bins * hold
    if "simulation.n_steps" in named_keys() and sim.n_steps != n_steps:
        raise UserError(f"simulation.n_steps: {sim.n_steps} given, but dataset.bin_s={bin_s:g} "
                        f"s × {bins} bins is {n_steps} steps of {sim.dt:g} s; give one of them")
    sim.n_steps = n_steps
    return [f"simulation.n_steps -> {n_steps} (dataset.bin_s={bin_s:g} s × {bins} bins: the "
            f"recording's own {bins * bin_s:g} s)"]


def _learning_rate(obj: Config) -> list[str]:
    """``training.learning_rate`` unset: smaller for fine-tuning a loaded model; one line then."""
    training = getattr(obj, "training", None)
    if training is None or training.learning_rate is not None:
        return []
    fine_tune = bool(obj.model.loaded or obj.model.start_params())
    training.learning_rate = FINE_TUNE_LEARNING_RATE if fine_tune else LEARNING_RATE
    if fine_tune and obj.model.trains():
        return [f"training.learning_rate -> {training.learning_rate:g} (fine-tuning a loaded "
                f"model: {LEARNING_RATE:g} tends to undo what it learnt)"]
    return []


def prepare_data(obj: Config, found: list[Finding] | None = None
                 ) -> tuple[Data, dict[str, Any], list[str]]:
    """Load ``obj.dataset``, resolve the values that follow it, and scale it as resolved.

    Returns
    -------
    (Data, dict, list of str)
        The scaled data, what scaling applied (``scaling.json``), and one line per resolved value.
    """
    data = datasets.load(obj.dataset, obj.seed)
    said = list(data.remarks)
    if obj.model.loaded:
        model = obj.model
        data, lines = obj.dataset.fit_to_model(
            data, lambda: screen.stored_input_shape(screen.resolve(model)))
        said += lines
    if (obj.model.loaded or obj.model.start_params()) and not data.split_given:
        said.append(f"dataset.split: not given, so the test samples are spiketune's own "
                    f"{obj.dataset.test_fraction:g} of the data and may include the model's own "
                    f"training trials; name the model's split ("
                    + ("dataset.split or dataset.test_path" if hasattr(obj.dataset, "split")
                       else "dataset=file with dataset.split") + ") to score it on held-out "
                    "trials")
    said += resolve_defaults(obj, data, found)
    data, scaling = datasets.scale(data, obj.dataset.scaling.value)
    return data, scaling, said


def resolved(cfg: Any, obj: Config, layer_scales: bool = False) -> Any:
    """A copy of ``cfg`` with the values resolved from the data (the caller's config is left as
    it was given); with ``layer_scales``, also ``conversion.layer_scales`` as normalisation set
    them."""
    resolved = copy.deepcopy(cfg)
    with read_write(resolved), open_dict(resolved):
        resolved.dataset.scaling = obj.dataset.scaling.value
        resolved.simulation.readout_steps = obj.simulation.readout_steps
        # a fitted window, once chosen, is replayed as the mean over it (what the run read)
        fitted = (obj.simulation.readout == Readout.fitted
                  and obj.simulation.readout_steps is not None)
        resolved.simulation.readout = "mean" if fitted else obj.simulation.readout.value
        resolved.conversion.normalize = obj.conversion.normalize.value
        resolved.simulation.scale_firing_rates = obj.simulation.scale_firing_rates
        resolved.simulation.n_steps = obj.simulation.n_steps
        resolved.training.learning_rate = obj.training.learning_rate
        if resolved.neuron.name != obj.neuron.name:  # the loaded model's default (_neuron)
            resolved.neuron = OmegaConf.structured(obj.neuron)
        if layer_scales:
            resolved.conversion.layer_scales = dict(obj.conversion.layer_scales)
    return resolved


def record_config(cfg: Any, obj: Config, tracker: Any) -> None:
    """Log the config as resolved: params (every leaf, dotted) and ``config.yaml``."""
    config = resolved(cfg, obj)
    tracker.params(to_flat_params(config))
    tracker.artifact_text(OmegaConf.to_yaml(config, resolve=True), "config.yaml")


def network_nodes(obj: Config) -> Nodes:
    """The nodes a network kind reads (:class:`framework.networks.base.Nodes`), from the
    validated root."""
    cache = Path(obj.paths.cache).expanduser() if obj.paths.cache else None
    return Nodes(obj.dataset, obj.model, obj.neuron, obj.training, obj.simulation,
                 obj.conversion, list(obj.analyses.layers), obj.analyses.max_neurons, cache,
                 obj.seed)
