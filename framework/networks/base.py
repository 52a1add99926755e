"""What every network kind shares: the config nodes it reads, what it hands back, its registry.

A network kind turns its config nodes and the data into the :class:`~framework.analysis.Context`
the analyses read (and the metrics it measured on the way). Each kind is registered for the
``model`` schema it runs (:func:`register`); :func:`network_for` finds it by the schema's type, so
no code asks a model for its name.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from framework.analysis import Context
from framework.conversion import ConversionConfig
from framework.data.base import Data
from framework.errors import UserError
from framework.health import Finding
from framework.neurons import NeuronConfig
from framework.progress import Console
from framework.simulation import SimulationConfig
from framework.training import TrainingConfig


class Recorder(Protocol):
    """What a network kind may record in its run (the tracker, seen from below it)."""

    def tag(self, key: str, value: Any) -> None: ...

    def params(self, flat: dict[str, str]) -> None: ...

    def metrics(self, values: dict[str, float], step: int = 0) -> None: ...

    def series(self, key: str, values: list[float], steps: list[int] | None = None,
               times_ms: list[int] | None = None) -> None: ...

    def artifact_text(self, text: str, name: str) -> None: ...


@dataclass
class Nodes:
    """The config nodes a network kind reads (never the root config).

    Attributes
    ----------
    dataset, model, neuron, training, simulation, conversion
        The validated nodes of those names.
    layers : list of str
        ``analyses.layers``: the hidden layers to analyse (empty: all).
    max_neurons : int
        ``analyses.max_neurons``: neurons analysed per layer (0: all).
    cache : pathlib.Path or None
        ``paths.cache``: the training cache folder (None: the default).
    seed : int
        The run's seed.
    """

    dataset: Any
    model: Any
    neuron: NeuronConfig
    training: TrainingConfig
    simulation: SimulationConfig
    conversion: ConversionConfig
    layers: list[str]
    max_neurons: int
    cache: Path | None
    seed: int


@dataclass
class TrainedNetwork:
    """What a Keras run leaves to be logged as the run's MLflow model.

    Attributes
    ----------
    model : keras.Model
        The network as built (before conversion).
    params : pathlib.Path
        The trained NengoDL parameters, without ``.npz`` (``Trained.params``).
    data : framework.data.base.Data
        The run's data, scaled as the network saw it.
    rate_out : ndarray, shape (n_test, outputs)
        What :func:`framework.simulation.evaluate_rates` returned on ``data.x_test``.
    readout_bins : int or None
        Sequences: how many last time bins the read-out pools
        (:func:`framework.batches.readout_bins`); None for static inputs.
    calibration : dict
        ``conversion.calibrate=bias``: layer name -> each neuron's input shift, in the layer's
        activation units (:attr:`framework.conversion.Conversion.calibration`); empty: none.
    """

    model: Any
    params: Path
    data: Any
    rate_out: np.ndarray
    readout_bins: int | None = None
    calibration: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Built:
    """What a network kind hands back: what the analyses read, what it measured, and the trained
    network to log as the run's model (None when there is none)."""

    context: Context
    metrics: dict[str, float] = field(default_factory=dict)
    trained: TrainedNetwork | None = None
    #: verdict findings the stages made themselves (``params_scale``), see framework/health.py
    findings: list[Finding] = field(default_factory=list)


#: a network kind: ``(nodes, data, recorder, console, scratch) -> Built``; data is None for a
#: kind that makes its own inputs
Network = Callable[[Nodes, Data | None, Recorder, Console, Path], Built]

_NETWORKS: dict[type, Network] = {}


def register(schema: type) -> Callable[[Network], Network]:
    """Decorator: run models whose schema is ``schema`` (or a subclass) with this kind."""
    def deco(fn: Network) -> Network:
        old = _NETWORKS.get(schema)
        if old is not None and old is not fn:
            raise ValueError(f"network kind for {schema.__name__} is registered twice ({old} and "
                             f"{fn})")
        _NETWORKS[schema] = fn
        return fn

    return deco


def network_for(model_cfg: Any) -> Network:
    """The network kind registered for the ``model`` node's schema (nearest in its MRO)."""
    for cls in type(model_cfg).__mro__:
        if cls in _NETWORKS:
            return _NETWORKS[cls]
    raise UserError(f"model: no network kind runs model '{getattr(model_cfg, 'name', '?')}'")
