"""The plugin host: finds the analysis plugins, picks the ones a run uses and runs them.

Discovery imports every module and package of the ``plugins`` package and every entry point of
the group ``spiketune.analyses`` (once per process); defining an
:class:`~framework.analysis.Analysis` subclass registers it. A plugin that fails to import is a
:class:`PluginWarning` naming it, not a crash: the other analyses still run. Running the chosen
analyses writes ``neurons.csv`` (the columns every run has, from :func:`neuron_table`, and the
plugins' own), their tables and figures; two plugins writing the same table, figure or column is
a :class:`~framework.errors.UserError` naming both.
"""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import shutil
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from framework import neurons
from framework.analysis import (
    ANALYSES,
    Context,
    Layer,
    Result,
    UserError,
    observed_x,
    peak_rates,
    sample_groups,
)
from framework.errors import check_interrupt
from framework.progress import Console
from framework.simulation import BuiltLayer

#: the entry-point group external packages register their analyses under
ENTRY_POINT_GROUP = "spiketune.analyses"
#: the package whose modules (and subpackages) are the shipped analyses
PLUGIN_PACKAGE = "plugins"
#: the columns of ``neurons.csv`` every run has, in this order (:func:`neuron_table`)
BASE_COLUMNS = ["layer", "neuron", "neuron_type", "gain", "bias", "threshold", "x_intercept",
                "max_rate_hz", "mean_rate_hz", "peak_rate_hz", "x_observed_min",
                "x_observed_max", "x_intercept_quantile"]
#: the key columns a plugin's ``neurons`` frame is merged on
KEYS = ("layer", "neuron")


class PluginWarning(UserWarning):
    """An analysis plugin could not be loaded; the run goes on without it."""


def _load(what: str, load: Callable[[], object]) -> None:
    """Run ``load``; any failure becomes a :class:`PluginWarning` naming ``what``."""
    try:
        load()
    except Exception as ex:  # a plugin's own bug must not stop the framework
        check_interrupt()  # a signal that surfaced as an ImportError is the user's stop, not a bug
        warnings.warn(f"analysis plugin {what} was not loaded: {type(ex).__name__}: {ex}",
                      PluginWarning, stacklevel=3)


def plugin_modules() -> list[str]:
    """Dotted names of the shipped plugin modules and packages (``_private`` ones left out)."""
    try:
        package = importlib.import_module(PLUGIN_PACKAGE)
    except ImportError:  # an installed wheel without the folder
        return []
    return [f"{PLUGIN_PACKAGE}.{mod.name}" for mod in pkgutil.iter_modules(package.__path__)
            if not mod.name.startswith("_")]


@functools.cache
def discover() -> None:
    """Import every shipped plugin module and every entry point, once per process."""
    for name in plugin_modules():
        _load(f"'{name}'", functools.partial(importlib.import_module, name))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load(f"'{ep.name}' (entry point {ep.value})", ep.load)


def plugin_configs() -> dict[str, type]:
    """``name -> Config dataclass`` of every discovered analysis."""
    discover()
    return {name: ANALYSES.get(name, "analysis").Config for name in ANALYSES.names()}


def check_names(names: list[str]) -> None:
    """Refuse unknown analysis names before anything heavy is imported."""
    discover()
    for i, name in enumerate(names):
        if name != "auto":
            ANALYSES.get(name, f"analysis[{i}]")


def _defaults_for(data: Any) -> list[str]:
    """The default analyses (``default`` true) that apply to ``data``, by name."""
    out = []
    for name in ANALYSES.names():
        cls = ANALYSES.get(name, "analysis")
        if cls.default and cls.applies(data) is None:
            out.append(name)
    return out


def select(names: list[str], data: Any) -> list[str]:
    """The analyses to run: ``auto`` expands to every default analysis that applies to ``data``.

    An analysis named explicitly that cannot use the data is refused with its reason; ``firing``
    always runs (first, unless named later).
    """
    discover()
    chosen: list[str] = []
    for i, name in enumerate(names):
        if name == "auto":
            chosen += [n for n in _defaults_for(data) if n not in chosen]
            continue
        why = ANALYSES.get(name, f"analysis[{i}]").applies(data)
        if why:
            raise UserError(f"analysis[{i}]: '{name}' cannot run on dataset '{data.name}': {why}")
        if name not in chosen:
            chosen.append(name)
    if "firing" in ANALYSES and "firing" not in chosen:
        chosen.insert(0, "firing")
    return chosen


# ----------------------------------------------------------------------------- layers and neurons
def check_layer_names(wanted: list[str], names: list[str]) -> list[str]:
    """The layers to analyse: ``wanted`` (``analyses.layers``; all ``names`` when empty).

    Raises
    ------
    UserError
        Naming ``analyses.layers[i]`` for a layer that is not among ``names``.
    """
    chosen = list(wanted) or list(names)
    for i, name in enumerate(chosen):
        if name not in names:
            raise UserError(f"analyses.layers[{i}]: no layer '{name}'; layers with neurons: "
                            f"{', '.join(names)}")
    return chosen


def _columns(array: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    """The neurons ``idx`` of an array whose last axis is the layer's neurons."""
    return None if array is None else array[..., idx]


def select_layers(built: list[BuiltLayer], layers: list[str], max_neurons: int,
                  seed: int) -> list[Layer]:
    """The analysed layers and neurons, as analyses see them.

    Parameters
    ----------
    built : list of framework.simulation.BuiltLayer
        Every layer with neurons, as built and simulated.
    layers : list of str
        ``analyses.layers``: the layers to analyse; empty: all.
    max_neurons : int
        ``analyses.max_neurons``: a seeded sample of at most this many neurons per layer; 0: all.
    seed : int
        Seeds the sample (one generator, drawn from layer by layer in ``built`` order).

    Returns
    -------
    list of Layer
        With J_th from the neuron type and every per-neuron array cut to the sampled neurons.
    """
    wanted = check_layer_names(layers, [b.name for b in built])
    rng = np.random.default_rng(seed)
    out = []
    for b in built:
        if b.name not in wanted:
            continue
        n = len(b.gain)
        idx = np.arange(n)
        if max_neurons and max_neurons < n:
            idx = np.sort(rng.choice(n, max_neurons, replace=False))
        out.append(Layer(
            name=b.name, neuron_type=b.neuron_type, threshold=neurons.threshold(b.neuron_type),
            index=idx, gain=b.gain[idx], bias=b.bias[idx], rates=_columns(b.rates, idx),
            spikes=_columns(b.spikes, idx), x=_columns(b.x, idx),
            binned_rates=_columns(b.binned_rates, idx), binned_x=_columns(b.binned_x, idx)))
    return out


def neuron_table(layers: list[Layer], groups: np.ndarray | None = None) -> Any:
    """The columns of ``neurons.csv`` every run has, read from what was built and measured.

    ``max_rate_hz`` is the type's analytic rate at x = 1, in Hz (amplitude divided out);
    ``peak_rate_hz`` the observed one (:func:`~framework.analysis.peak_rates` over ``groups``,
    the samples' conditions); the observed range of x and the x-intercept's quantile in it
    (:func:`~framework.analysis.observed_x`).

    Returns
    -------
    pandas.DataFrame
        One row per analysed neuron, columns :data:`BASE_COLUMNS`.
    """
    import pandas as pd

    frames = []
    for layer in layers:
        nt = layer.neuron_type
        amp = float(getattr(nt, "amplitude", 1.0))
        max_rate = np.asarray(nt.rates(np.ones(1), layer.gain, layer.bias), float).ravel() / amp
        missing = np.full(len(layer.index), np.nan)
        frames.append(pd.DataFrame({
            "layer": layer.name, "neuron": layer.index, "neuron_type": type(nt).__name__,
            "gain": layer.gain, "bias": layer.bias, "threshold": layer.threshold,
            "x_intercept": layer.x_intercept, "max_rate_hz": max_rate,
            "mean_rate_hz": layer.rates.mean(axis=0) if layer.rates is not None else missing,
            "peak_rate_hz": (peak_rates(layer.rates, groups) if layer.rates is not None
                             else missing), **observed_x(layer)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BASE_COLUMNS)


# ----------------------------------------------------------------------------------- running them
class Claims:
    """Who writes what: the table files, figure names and ``neurons.csv`` columns of each plugin.

    Columns every run has (:data:`BASE_COLUMNS`) are not claimed: a plugin's copy of one is left
    out of the merge (the framework's own value stays), as it always was.
    """

    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], str] = {}

    def add(self, plugin: str, result: Result) -> None:
        """Claim ``result``'s outputs for ``plugin``.

        Raises
        ------
        UserError
            When another plugin already wrote one of them, naming both.
        """
        columns = [] if result.neurons is None else [
            str(c) for c in result.neurons.columns if c not in BASE_COLUMNS]
        self._claim(plugin, "table", result.tables)
        self._claim(plugin, "figure", result.figures)
        self._claim(plugin, "neurons.csv column", columns)

    def _claim(self, plugin: str, kind: str, names: Iterable[str]) -> None:
        """Claim each of ``names`` (outputs of one ``kind``) for ``plugin``."""
        for name in names:
            owner = self.owners.setdefault((kind, name), plugin)
            if owner != plugin:
                raise UserError(f"analysis: plugins '{owner}' and '{plugin}' both write the "
                                f"{kind} '{name}'; rename it in one of them")


def merge_neurons(frame: Any, result: Result) -> Any:
    """``frame`` (``neurons.csv`` so far) with ``result``'s per-neuron columns merged in on layer
    and neuron; columns ``frame`` already has are kept from ``frame``."""
    if result.neurons is None or not len(result.neurons):
        return frame
    shared = [c for c in result.neurons.columns if c in frame.columns and c not in KEYS]
    return frame.merge(result.neurons.drop(columns=shared), on=list(KEYS), how="left")


def draw(figures: dict[str, Callable[[], Any]], folder: Path) -> None:
    """Draw every figure into ``folder/<name>.png`` (matplotlib's Agg backend, 110 dpi)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    for name, make in figures.items():
        fig = make()
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)


#: draw a run's figures in a forked worker while the model is logged (:class:`Drawing`); off:
#: measured on a shared 2-core VM (benchmarks/README.md), the worker made the default run slower
#: (8.1 s against 7.0 s at load 1.4-2.2; 13.7 against 11.6 s at load ~4): a cold worker spent
#: 2.0-2.2 s of CPU on what takes 1.3 s in the run's process. Worth turning on only where a core
#: is idle; the figure test keeps it off to inspect each figure as it is saved
BACKGROUND = False
#: seconds a background drawer may take before its figures are drawn in the run's own process
DRAW_TIMEOUT_S = 120.0


class Drawing:
    """Figures being drawn into ``folder`` by a forked worker started when the analyses have
    run: drawing overlaps the model's logging and the run's record (a worker shares the run's
    memory, so nothing is pickled; one worker per analysis cost 0.6-0.8 s more CPU in cold
    starts than it saved on a 2-core machine).
    :meth:`wait` joins them and draws in-process whatever a worker did not (a figure that
    raised then raises here, as it would have)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pending: list[tuple[Any, dict[str, Callable[[], Any]]]] = []

    def start(self, figures: dict[str, Callable[[], Any]]) -> None:
        """Start drawing ``figures`` (in-process at once when forking is not available)."""
        if not figures:
            return
        self.folder.mkdir(exist_ok=True)
        if not BACKGROUND or not hasattr(os, "fork"):
            draw(figures, self.folder)
            return
        import multiprocessing

        import matplotlib

        # imported here, once: every worker inherits it (each importing pyplot itself cost 0.4 s
        # of CPU per worker)
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401

        worker = multiprocessing.get_context("fork").Process(
            target=_draw_worker, args=(figures, self.folder), daemon=True)
        worker.start()
        self.pending.append((worker, figures))

    def wait(self) -> Path:
        """Every figure drawn (``folder``); workers that failed or hung are made up for here."""
        pending, self.pending = self.pending, []
        for worker, figures in pending:
            worker.join(DRAW_TIMEOUT_S)
            if worker.is_alive():
                worker.kill()
                worker.join()
            missing = {name: make for name, make in figures.items()
                       if not (self.folder / f"{name}.png").is_file()}
            if missing:
                draw(missing, self.folder)
        return self.folder

    def stop(self) -> None:
        """End the workers without waiting (a run that failed or was interrupted)."""
        for worker, _ in self.pending:
            if worker.is_alive():
                worker.kill()
            worker.join()
        self.pending = []


def _draw_worker(figures: dict[str, Callable[[], Any]], folder: Path) -> None:
    """A forked worker: the run's signal handlers are not its own (a Ctrl-C ends it), and a
    figure that raises is left to :meth:`Drawing.wait`, which draws it in the run's process."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    for name, make in figures.items():
        try:
            draw({name: make}, folder)
        except Exception:  # noqa: BLE001 - redrawn (and raised) in the run's process
            continue


#: the figures of each run's scratch folder being drawn (:func:`drawing`)
_DRAWINGS: dict[Path, Drawing] = {}


def drawing(out_dir: Path) -> Drawing | None:
    """The figures :func:`run_analyses` is drawing for the run whose scratch folder is
    ``out_dir`` (with ``later``), forgotten once asked for; None when there are none."""
    return _DRAWINGS.pop(out_dir, None)


def stop_drawings() -> None:
    """End every background drawing of this process (its run failed, or another starts)."""
    while _DRAWINGS:
        _DRAWINGS.popitem()[1].stop()


def run_analyses(ctx: Context, names: list[str], options: Any, plots: bool, out_dir: Path,
                 console: Console, later: bool = False) -> tuple[dict[str, float], Path]:
    """Run the chosen analyses and write what they produce, ready for upload.

    Parameters
    ----------
    ctx : Context
        What the analyses read.
    names : list of str
        The analyses to run, in order (:func:`select`).
    options : AnalysesConfig
        The validated ``analyses`` node: ``getattr(options, name)`` is each plugin's Config.
    plots : bool
        Draw the figures (``tracking.plots``).
    out_dir : pathlib.Path
        The run's scratch folder: tables and ``neurons.csv`` are written here, then every CSV in
        it is copied to ``out_dir/upload`` and the figures drawn into ``out_dir/upload/plots``.
    console : framework.progress.Console
        Stage lines and the plugins' remarks.
    later : bool
        Draw the figures in the background into ``out_dir/plots`` (not part of the upload
        folder) while the run goes on; :func:`drawing` ``(out_dir).wait()`` hands them over.
        Else they are drawn into ``out_dir/upload/plots`` before this returns.

    Returns
    -------
    (dict, pathlib.Path)
        The metrics of every analysis, and the folder to upload as the run's artifacts.

    Raises
    ------
    UserError
        When two plugins write the same table, figure or ``neurons.csv`` column.
    """
    metrics: dict[str, float] = {}
    frame = neuron_table(ctx.layers, sample_groups(ctx))
    figures: dict[str, Callable[[], Any]] = {}
    claims = Claims()
    drawer = Drawing(out_dir / "plots") if plots and later else None
    if drawer is not None:
        stop_drawings()  # one run at a time in a process: a run that ended without its figures
        _DRAWINGS[out_dir] = drawer
    for name in names:
        console.stage("analyse", name)
        res = ANALYSES.get(name, "analysis")().run(ctx, getattr(options, name))
        claims.add(name, res)
        metrics.update(res.metrics)
        for line in res.remarks:
            console.say(f"{name}: {line}")
        frame = merge_neurons(frame, res)
        for fname, table in res.tables.items():
            table.to_csv(out_dir / fname, index=False)
        figures.update(res.figures)
    if drawer is not None:  # one worker for them all: each one forked costs a cold start
        drawer.start(figures)
    frame.to_csv(out_dir / "neurons.csv", index=False)
    upload = out_dir / "upload"
    upload.mkdir()
    # neurons.csv first, then every other table in the folder, by name
    others = sorted(p.name for p in out_dir.glob("*.csv") if p.name != "neurons.csv")
    for fname in ["neurons.csv", *others]:
        shutil.copy(out_dir / fname, upload / fname)
    if plots and figures:
        console.stage("plots", f"{len(figures)} figures" + (", drawn in the background"
                                                            if drawer is not None else ""))
        if drawer is None:
            draw(figures, upload / "plots")
    return metrics, upload
