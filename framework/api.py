"""The Python API: analyse a trained NengoDL network spiketune did not build, from your own script.

Two functions, for the forum's user with "a trained nengo_dl model":

- :func:`range_callback` keeps the gains and biases of the ensembles you name inside a range
  during your own ``sim.fit(..., callbacks=[...])`` (projected after every batch, like
  ``training.biases``);
- :func:`analyse` reads your simulator's trained parameters (gains and biases from
  ``sim.data[ens]``), simulates your inputs with probes on the neurons you name (a second
  simulator of the same network with the same seed and the same trained weights, so the rates
  are the ones your own probes give), runs the same analysis plugins as the CLI (``thresholds``,
  ``firing``, ``response``, ``tuning``, ``voltage``, any plugin) and records an MLflow run with
  the same artifacts (``neurons.csv``, the plugins' tables, ``plots/``).

Example
-------
>>> import framework.api as st                                             # doctest: +SKIP
>>> cb = st.range_callback(sim, [ens], gains=(0, 0.5), biases=(0, 0.5))   # doctest: +SKIP
>>> sim.fit({inp: x}, {p_out: y}, epochs=10, callbacks=[cb])               # doctest: +SKIP
>>> out = st.analyse(sim, {inp: x_test}, [ens], n_steps=200,
...                  metrics=cb.ranges.stats)                              # doctest: +SKIP
>>> out.tables["neurons.csv"][["gain", "bias", "x_intercept", "mean_rate_hz"]]  # doctest: +SKIP
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nengo
import numpy as np

from framework import health, report
from framework.analysis import X_LABEL, Context
from framework.batches import pad_to
from framework.data.base import Data
from framework.errors import UserError
from framework.neurons import is_spiking
from framework.plugin_host import plugin_configs, run_analyses, select, select_layers
from framework.progress import Console
from framework.regularizers import EnsembleRanges
from framework.simulation import N_RASTER, BuiltLayer
from framework.tracking.store import Tracker, resolve_uri

__all__ = ["Analysed", "analyse", "range_callback"]

#: what x is when every analysed ensemble is native (decoded input along the encoder)
NATIVE_X = "x (input along the preferred direction, J = gain·x + bias)"


@dataclass
class Analysed:
    """What :func:`analyse` returns.

    Attributes
    ----------
    run_id : str
        The MLflow run.
    tables : dict of pandas.DataFrame
        ``neurons.csv`` and every table the analyses wrote, by file name.
    figures : dict of pathlib.Path
        ``name -> PNG`` (empty with ``plots=False``).
    metrics : dict of float
        Everything logged as metrics.
    folder : pathlib.Path
        A local folder holding the tables and ``plots/`` (kept after the call).
    """

    run_id: str
    tables: dict[str, Any]
    figures: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    folder: Path = Path()


def _targets(ensembles: Sequence[Any] | Mapping[str, Any], what: str) -> dict[str, Any]:
    """``name -> nengo.Ensemble`` of what the user named (ensembles, or a converted layer's
    ``Neurons``; a mapping gives the names, else each ensemble's label or ``ensemble<i>``)."""
    items = list(ensembles.items()) if isinstance(ensembles, Mapping) else [
        (None, obj) for obj in ensembles]
    if not items:
        raise UserError(f"{what}: name at least one ensemble")
    out: dict[str, Any] = {}
    for i, (name, obj) in enumerate(items):
        ens = obj.ensemble if isinstance(obj, nengo.ensemble.Neurons) else obj
        if not isinstance(ens, nengo.Ensemble):
            raise UserError(f"{what}[{i}]: expected a nengo.Ensemble or its .neurons, got "
                            f"{type(obj).__name__}")
        key = str(name or ens.label or f"ensemble{i}")
        out[key if key not in out else f"{key}_{i}"] = ens
    return out


def range_callback(sim: Any, ensembles: Sequence[Any] | Mapping[str, Any],
                   gains: tuple[float, float] | None = None,
                   biases: tuple[float, float] | None = None) -> Any:
    """A Keras callback keeping the named ensembles' gains and biases in range during ``sim.fit``.

    After every training batch each neuron whose gain left ``gains`` gets its scaled encoder
    (NengoDL trains ``gain × encoder / radius``) rescaled onto the nearest bound, its direction
    kept; each bias outside ``biases`` is clipped onto it. The fractions of neurons inside are
    recorded before (now) and after training in ``callback.ranges.stats``
    (``reg/gains/<name>/in_range_before``, ..., as the CLI logs ``training.biases``).

    Parameters
    ----------
    sim : nengo_dl.Simulator
        Your simulator (open), before ``sim.fit``.
    ensembles : list or dict
        ``nengo.Ensemble`` objects (or a converted layer's ``Neurons``, e.g.
        ``converter.layers[layer]``); a dict names them.
    gains : (float, float), optional
        Accepted gains, J per unit x (the ``gain`` column of ``neurons.csv``). Refused for a
        converted layer, whose gain is its firing-rate scale and does not train.
    biases : (float, float), optional
        Accepted bias currents, J.

    Returns
    -------
    tf.keras.callbacks.Callback
        Pass it to ``sim.fit(..., callbacks=[cb])``; ``cb.ranges.stats`` holds the fractions.

    Raises
    ------
    UserError
        A range whose low is not below its high, or a quantity NengoDL does not train.
    """
    if gains is None and biases is None:
        raise UserError("range_callback: give gains=(low, high), biases=(low, high) or both")
    ranges = EnsembleRanges(sim, _targets(ensembles, "range_callback ensembles"),
                            gains=None if gains is None else (float(gains[0]), float(gains[1])),
                            biases=None if biases is None else (float(biases[0]),
                                                                float(biases[1])))
    ranges.bind()
    ranges.record("before")
    return ranges.callback()


def _steps(inputs: Mapping[Any, Any], n_steps: int | None) -> tuple[dict[Any, np.ndarray], int]:
    """Every input as (n_samples, n_steps, d): a (n, d) array held for ``n_steps`` steps."""
    out: dict[Any, np.ndarray] = {}
    n = None
    for node, value in inputs.items():
        a = np.asarray(value, dtype=np.float32)
        if a.ndim == 2:
            if n_steps is None:
                raise UserError(f"n_steps: needed to hold the (n, d) input of {node} over time")
            a = np.repeat(a[:, None, :], n_steps, axis=1)
        if a.ndim != 3 or (n is not None and a.shape[0] != n):
            raise UserError(f"inputs[{node}]: expected (n_samples, d) or (n_samples, steps, d) "
                            f"with the same n_samples as the other inputs, got {a.shape}")
        n = a.shape[0]
        out[node] = a
    if not out:
        raise UserError("inputs: give at least one {input node: array}")
    lengths = {a.shape[1] for a in out.values()}
    if len(lengths) != 1:
        raise UserError(f"inputs: every input needs the same number of steps, got {lengths}")
    return out, lengths.pop()


def _transfer(sim: Any, new: Any, targets: dict[str, Any]) -> None:
    """Give ``new`` the trained weights of ``sim`` and check the gains and biases arrived
    exactly (an internal error otherwise: the analysis would describe another network)."""
    new.keras_model.set_weights(sim.keras_model.get_weights())
    for name, ens in targets.items():
        a, b = sim.data[ens], new.data[ens]
        if not (np.array_equal(a.gain, b.gain) and np.array_equal(a.bias, b.bias)):
            raise RuntimeError(f"the trained parameters of '{name}' did not transfer exactly")


def _simulate(sim: Any, targets: dict[str, Any], inputs: dict[Any, np.ndarray]
              ) -> list[BuiltLayer]:
    """Each named ensemble as built and simulated on ``inputs``: gain and bias from
    ``sim.data``, rates (Hz), each neuron's mean x = (J − bias)/gain, a few spike trains.

    The probes are added to a second simulator of the same network (same seeds, dt, minibatch
    size and trained weights); they are taken out of the network again afterwards.
    """
    import nengo_dl

    if sim.closed:
        raise UserError("sim: the simulator is closed; call analyse inside its with-block")
    net = sim.model.toplevel
    # an unseeded network draws new object seeds (initial voltages) at every build: the twin
    # takes the ones the user's simulator was built with, and gives them back afterwards
    unseeded = [obj for obj in net.all_objects
                if getattr(obj, "seed", 0) is None and obj in sim.model.seeds]
    with net:
        probes = {name: (nengo.Probe(ens.neurons), nengo.Probe(ens.neurons, "input"))
                  for name, ens in targets.items()}
    try:
        for obj in unseeded:
            obj.seed = sim.model.seeds[obj]
        n = len(next(iter(inputs.values())))
        data = {node: pad_to(a, sim.minibatch_size) for node, a in inputs.items()}
        with nengo_dl.Simulator(net, dt=sim.dt, seed=sim.seed, minibatch_size=sim.minibatch_size,
                                progress_bar=False) as new:
            _transfer(sim, new, targets)
            res = new.predict(data, verbose=0)
            return [_layer(name, sim.data[ens], ens.neuron_type, np.asarray(res[p_out])[:n],
                           np.asarray(res[p_in])[:n], sim.dt)
                    for (name, ens), (p_out, p_in) in zip(targets.items(), probes.values(),
                                                          strict=True)]
    finally:
        for obj in unseeded:
            obj.seed = None
        for pair in probes.values():
            for p in pair:
                net.probes.remove(p)


def _layer(name: str, built: Any, neuron_type: Any, out: np.ndarray, current: np.ndarray,
           dt: float) -> BuiltLayer:
    """One analysed layer from its probed output (n, steps, neurons) and input current J."""
    amp = float(getattr(neuron_type, "amplitude", 1.0))
    gain = np.asarray(built.gain, float)
    bias = np.asarray(built.bias, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(gain != 0, (current.mean(axis=1) - bias) / gain, np.nan)
    spikes = (out[:N_RASTER] * (dt / amp)).astype(np.float32) if getattr(
        neuron_type, "spiking", False) else None
    return BuiltLayer(name=name, neuron_type=neuron_type, gain=gain, bias=bias,
                      rates=out.mean(axis=1) / amp, spikes=spikes, x=x)


def _data(inputs: dict[Any, np.ndarray], labels: Any, directions: Any) -> Data:
    """The inputs as a :class:`Data` the plugins read: x the first input's mean over time, the
    class ``labels`` (classification) or zeros as targets, ``directions`` in degrees."""
    x = next(iter(inputs.values())).mean(axis=1)
    n = len(x)
    for key, value in (("labels", labels), ("directions", directions)):
        if value is not None and len(value) != n:
            raise UserError(f"{key}: needs one value per sample ({n}), got {len(value)}")
    y = np.asarray(labels) if labels is not None else np.zeros((n, 1), np.float32)
    return Data(name="api", task="classification" if labels is not None else "regression",
                x_train=x, y_train=y, x_test=x, y_test=y,
                n_outputs=int(len(np.unique(y))) if labels is not None else 1,
                dir_test=None if directions is None else np.asarray(directions, float) % 360,
                dir_train=None if directions is None else np.asarray(directions, float) % 360,
                source="framework.api.analyse inputs")


def _options(options: Mapping[str, Mapping[str, Any]] | None) -> SimpleNamespace:
    """Every plugin's Config, with the fields ``options[name]`` sets."""
    configs = plugin_configs()
    given = dict(options or {})
    for name in given:
        if name not in configs:
            raise UserError(f"options['{name}']: no such analysis; known: {', '.join(configs)}")
    out = SimpleNamespace()
    for name, cls in configs.items():
        try:
            setattr(out, name, cls(**dict(given.get(name, {}))))
        except TypeError as ex:
            raise UserError(f"options['{name}']: {ex}") from None
    return out


def _params(targets: dict[str, Any], n: int, n_steps: int, sim: Any, names: list[str],
            options: SimpleNamespace) -> dict[str, str]:
    """The run's params: what was analysed and how, and every analysis option (dotted)."""
    flat = {"api.ensembles": ",".join(targets), "api.n_samples": str(n),
            "simulation.n_steps": str(n_steps), "simulation.dt": str(sim.dt),
            "seed": str(sim.seed), "analysis": ",".join(names)}
    for name in names:
        cfg = getattr(options, name)
        for f in fields(cfg):
            flat[f"analyses.{name}.{f.name}"] = str(getattr(cfg, f.name))
    return flat


def _check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """The user's tags, refused where they use a reserved prefix."""
    for key in tags or {}:
        if str(key).startswith(("spiketune.", "mlflow.")):
            raise UserError(f"tags['{key}']: the spiketune. and mlflow. prefixes are reserved")
    return {str(k): str(v) for k, v in (tags or {}).items()}


def analyse(sim: Any, inputs: Mapping[Any, Any], ensembles: Sequence[Any] | Mapping[str, Any],
            *, n_steps: int | None = None, directions: Any = None, labels: Any = None,
            analyses: Sequence[str] = ("auto",),
            options: Mapping[str, Mapping[str, Any]] | None = None, max_neurons: int = 0,
            experiment: str = "spiketune", run_name: str | None = None,
            tags: Mapping[str, Any] | None = None, tracking_uri: str = "", plots: bool = True,
            metrics: Mapping[str, float] | None = None, quiet: bool = False) -> Analysed:
    """Analyse the named ensembles of a trained NengoDL simulator and record an MLflow run.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        Your simulator (open), with its trained parameters: the gains and biases are
        ``sim.data[ens].gain`` and ``.bias`` exactly.
    inputs : dict
        ``{input node: array}``, each (n_samples, d) (held for ``n_steps``) or
        (n_samples, steps, d); the test inputs the neurons' rates are measured on.
    ensembles : list or dict
        ``nengo.Ensemble`` objects or a converted layer's ``Neurons``; a dict names them (the
        ``layer`` column), else their labels do.
    n_steps : int, optional
        Steps (of ``sim.dt`` s) each (n, d) input is held.
    directions : array_like, optional
        Each sample's movement direction, degrees: enables ``tuning``.
    labels : array_like, optional
        Each sample's class: makes the task classification (enables ``classes``).
    analyses : list of str
        Analysis plugins (as ``analysis=[...]``); ``auto``: every default one that applies.
    options : dict, optional
        ``{plugin: {option: value}}``, as ``analyses.<plugin>.<option>`` on the command line.
    max_neurons : int
        A seeded sample of at most this many neurons per ensemble; 0: all.
    experiment, run_name, tags, tracking_uri
        The MLflow experiment, run name, tags and store ("" is spiketune's default store).
    plots : bool
        Draw the figures into ``plots/``.
    metrics : dict, optional
        More metrics to log with the run (``range_callback(...).ranges.stats``).
    quiet : bool
        Print no stage lines.

    Returns
    -------
    Analysed
        The run id, tables (pandas), figure paths and metrics.
    """
    t0 = time.perf_counter()
    targets = _targets(ensembles, "ensembles")
    steps, n_steps = _steps(inputs, n_steps)
    data = _data(steps, labels, directions)
    plugin_opts = _options(options)
    names = select(list(analyses), data)
    console = Console(quiet=quiet)
    tracker = Tracker(resolve_uri(tracking_uri), experiment,
                      run_name or f"api-{'-'.join(targets)}", tags=_check_tags(tags))
    try:
        tracker.params(_params(targets, len(data.x_test), n_steps, sim, names, plugin_opts))
        console.stage("simulate", f"{', '.join(targets)}: {len(data.x_test)} samples, "
                      f"{n_steps} steps")
        return _analyse(sim, targets, steps, data, names, plugin_opts, tracker, console,
                        max_neurons, plots, dict(metrics or {}), t0)
    except BaseException as ex:
        msg = str(ex) if isinstance(ex, UserError) else f"internal error: {type(ex).__name__}: {ex}"
        tracker.end("FAILED", (msg.splitlines() or [type(ex).__name__])[0])
        raise


def _analyse(sim: Any, targets: dict[str, Any], steps: dict[Any, np.ndarray], data: Data,
             names: list[str], plugin_opts: SimpleNamespace, tracker: Tracker, console: Console,
             max_neurons: int, plots: bool, metrics: dict[str, float], t0: float) -> Analysed:
    """Simulate, run the analyses, log everything and end the run FINISHED."""
    import pandas as pd

    built = _simulate(sim, targets, steps)
    n_steps = next(iter(steps.values())).shape[1]
    native = all(not _converted(sim, ens) for ens in targets.values())
    ctx = Context(data=data, layers=select_layers(built, [], max_neurons, sim.seed or 0),
                  dt=float(sim.dt), n_steps=n_steps, sample=np.arange(len(data.x_test)),
                  seed=int(sim.seed or 0), x_label=NATIVE_X if native else X_LABEL)
    scratch = Path(tempfile.mkdtemp(prefix="spiketune-api-"))
    found, upload = run_analyses(ctx, names, plugin_opts, plots, scratch, console)
    metrics.update(found)
    metrics["time/total_s"] = time.perf_counter() - t0
    tracker.metrics(metrics)
    tracker.artifact_dir(upload)
    # the same verdict as a CLI run's; the rates are read over each input's whole hold
    facts = health.Facts(spiking=any(is_spiking(layer.neuron_type) for layer in ctx.layers),
                         readout_s=n_steps * float(sim.dt), dt=float(sim.dt), n_steps=n_steps,
                         readout_steps=n_steps)
    checks = health.findings(metrics, facts, health.HealthConfig())
    report.verdict(tracker, checks)
    tracker.end("FINISHED")
    for line in report.verdict_lines(checks):
        console.say(line)
    console.say(f"run {tracker.run_id} FINISHED in {tracker.uri}")
    tables = {p.name: pd.read_csv(p) for p in sorted(upload.glob("*.csv"))}
    figures = {p.stem: p for p in sorted((upload / "plots").glob("*.png"))}
    keep = Path(shutil.move(str(upload), tempfile.mkdtemp(prefix="spiketune-api-run-")))
    shutil.rmtree(scratch, ignore_errors=True)
    return Analysed(tracker.run_id, tables,
                    {k: keep / "plots" / p.name for k, p in figures.items()}, metrics, keep)


def _converted(sim: Any, ens: Any) -> bool:
    """Whether ``ens`` is driven through its neurons only (a converted layer: its encoders are
    not used, so x is its weighted input)."""
    return sim.model.sig[ens].get("encoders") not in sim.tensor_graph.signals
