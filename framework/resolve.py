"""The values a config leaves to the data (``auto`` and unset), resolved in place, one line each;
and the config as resolved, for the run's params and ``config.yaml``."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict, read_write

from framework.config import Config, to_flat_params
from framework.conversion import Normalize
from framework.data import base as datasets
from framework.data.base import Data, Scaling
from framework.keras_io import screen
from framework.networks.base import Nodes
from framework.simulation import Readout


def resolve_defaults(obj: Config, data: Data | None) -> list[str]:
    """Fill in the config values that follow the data (``auto``/None), in place; one line each.

    * ``dataset.scaling=auto``: ``none`` for a loaded model (it was trained on the raw inputs),
      else the dataset's own choice (``standardize``; ``none`` for digits, already in [0, 1]).
    * ``conversion.normalize=auto``: ``percentile`` for a loaded model (its weights were not
      trained for the neurons; per-layer scales from its activations), else ``none`` (spiketune
      trains the network as converted, through the neurons' rates).
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
    conv = obj.conversion
    if conv.normalize == Normalize.auto:
        # NengoDL parameters belong to the conversion they were trained in (its biases are scaled)
        params = bool(obj.model.start_params())
        conv.normalize = (Normalize.percentile if obj.model.loaded and not params
                          else Normalize.none)
        if params:
            said.append("conversion.normalize=auto -> none (model.params were trained at "
                        f"simulation.scale_firing_rates={obj.simulation.scale_firing_rates:g}; "
                        f"set it to theirs)")
        elif obj.model.loaded:
            said.append("conversion.normalize=auto -> percentile (a model trained elsewhere: each "
                        "layer's firing rates scaled from its activations on the training data)")
    sim = obj.simulation
    if sim.readout_steps is None:
        sequence = bool(data is not None and data.sequence)
        sim.readout_steps = sim.n_steps if sequence else max(1, sim.n_steps // 5)
        if sim.readout == Readout.mean:
            what = "the whole trial" if sequence else "the last fifth"
            said.append(f"simulation.readout_steps -> {sim.readout_steps} ({what} of "
                        f"simulation.n_steps={sim.n_steps})")
    return said


def prepare_data(obj: Config) -> tuple[Data, dict[str, Any], list[str]]:
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
    said += resolve_defaults(obj, data)
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
        resolved.conversion.normalize = obj.conversion.normalize.value
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
