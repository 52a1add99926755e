"""``voltage``: the membrane voltage of a few neurons over time, with the spiking threshold drawn.

The forum's "spiking threshold on the y-axis": for each analysed layer of LIF-family neurons
(``lif``, ``threshold_lif``), a few neurons are driven by the input current they received on one
chosen test sample, J = gain·x + bias (x: the neuron's mean input on that sample, as observed in
the spiking network), held constant, and stepped with the neuron type's own Nengo step
(``neuron_type.step``, what ``nengo.Simulator`` runs for every neuron) from ``initial_voltage``.

Voltage is in the units of J (membrane resistance 1: a constant current J holds the membrane at
V = J when it does not spike), so the threshold line is J_th: Nengo's LIF integrates a voltage
normalised to spike at 1 (J_th = 1); ``threshold_lif`` integrates ``J / J_th`` and spikes when
that normalised voltage passes 1 (``framework.native.ThresholdLIF``), i.e. when V = J_th · v
passes J_th. The trace therefore shows V = J_th · v, and the line at J_th is where the spikes
happen. Nengo resets the voltage to 0 inside the step that spikes; the trace keeps, at that step,
the voltage the step reached before its reset (the same Nengo step run on a copy of the state
scaled by a power of two, exact in floating point, that cannot reach 1), so a spike is drawn at
the first step whose voltage reaches the line.

``voltage.csv``: ``layer``, ``neuron``, ``t_s``, ``voltage`` and ``threshold`` (J units),
``spike`` (0/1), ``current`` (J). Metrics ``voltage/threshold`` (J_th),
``voltage/max_subthreshold`` (the highest voltage of a step without a spike: below J_th when the
line is drawn where the spikes happen) and ``voltage/<layer>/mean_rate_hz`` of the traced neurons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

import numpy as np

from framework.analysis import Analysis, Context, Layer, Result, UserError, bounded

#: the state an LIF-family step takes (nengo.LIF and threshold_lif); other types are refused
LIF_STATE = frozenset({"voltage", "refractory_time"})
#: scale of the shadow state: a power of two, so scaling by it is exact in floating point, and
#: small enough that the shadow's normalised voltage never reaches Nengo's spike at 1
SHADOW = 2.0 ** -40
#: currents up to this many times J_th take several steps to reach the line: preferred when chosen
CLOSE = 4.0


@dataclass
class VoltageConfig:
    """Options of the ``voltage`` analysis (``analyses.voltage``)."""

    sample: int = bounded(0, ge=0)  # which simulated test sample drives the neurons (position)
    n_neurons: int = bounded(4, ge=1)  # neurons traced per layer when ``neurons`` is empty
    # neuron indices within each layer (the ``neuron`` column); empty: chosen from the firing ones
    neurons: list[int] = field(default_factory=list)
    duration: float = bounded(0.1, gt=0.0)  # simulated time, s
    initial_voltage: float = bounded(0.0, ge=0.0, lt=1.0)  # V at t = 0, fraction of J_th


@dataclass
class Trace:
    """One layer's traced neurons: positions into its arrays, currents, voltage, spikes."""

    layer: Layer
    pos: np.ndarray  # (k,) positions into the layer's arrays
    current: np.ndarray  # (k,) J
    voltage: np.ndarray  # (n_steps, k) J units
    spikes: np.ndarray  # (n_steps, k) bool


def is_lif(neuron_type: Any) -> bool:
    """Whether ``neuron_type`` is a spiking type with exactly an LIF membrane's state."""
    state = getattr(neuron_type, "state", None)
    return bool(getattr(neuron_type, "spiking", False)) and set(state or ()) == LIF_STATE


def step_voltage(neuron_type: Any, current: np.ndarray, n_steps: int, dt: float,
                 v0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Step an LIF-family type's own Nengo ``step`` on constant currents.

    Parameters
    ----------
    neuron_type : nengo.LIF or framework.native.ThresholdLIF
        The type as built.
    current : ndarray, shape (k,)
        Constant input current J of each neuron.
    n_steps : int
        Steps to simulate.
    dt : float
        Step, s.
    v0 : float
        Initial normalised voltage (0: at rest; 1 is the spike).

    Returns
    -------
    voltage : ndarray, shape (n_steps, k)
        Normalised voltage after each step; at a step that spiked, the value the step reached
        before Nengo's reset (> 1).
    spikes : ndarray of bool, shape (n_steps, k)
        Whether the neuron spiked in each step.
    """
    J = np.asarray(current, dtype=np.float64)
    k = len(J)
    state = {"voltage": np.full(k, float(v0)), "refractory_time": np.zeros(k)}
    out, scratch = np.zeros(k), np.zeros(k)
    volts, spikes = np.empty((n_steps, k)), np.zeros((n_steps, k), bool)
    for i in range(n_steps):
        shadow = {"voltage": state["voltage"] * SHADOW, "refractory_time": state["refractory_time"]
                  .copy()}
        neuron_type.step(dt, J * SHADOW, scratch, **shadow)  # same update, never spikes
        neuron_type.step(dt, J, out, **state)
        spikes[i] = out > 0
        volts[i] = np.where(spikes[i], shadow["voltage"] / SHADOW, state["voltage"])
    return volts, spikes


def choose(layer: Layer, current: np.ndarray, cfg: VoltageConfig) -> np.ndarray:
    """Positions of the traced neurons: ``cfg.neurons`` where given, else ``n_neurons`` spread
    over the currents of those above J_th (different frequencies; those within ``CLOSE`` × J_th
    where there are enough, so the voltage is seen rising to the line rather than jumping over it
    in one step), topped up with the silent neurons nearest to J_th (a voltage that rises and
    stays below the line)."""
    if cfg.neurons:
        where = {int(v): p for p, v in enumerate(layer.index)}
        missing = [n for n in cfg.neurons if n not in where]
        if missing:
            raise UserError(f"analyses.voltage.neurons: {missing} not among the analysed neurons "
                            f"of layer '{layer.name}' (see analyses.max_neurons)")
        return np.array([where[n] for n in cfg.neurons])
    k = min(cfg.n_neurons, len(current))
    order = np.argsort(current, kind="stable")
    th = layer.threshold
    firing = order[current[order] > th]
    close = firing[current[firing] <= CLOSE * th]
    pool = close if len(close) >= k else firing[:k]
    picked = pool[np.unique(np.round(np.linspace(0, len(pool) - 1, k)).astype(int))] \
        if len(pool) else pool
    silent = order[current[order] <= th][::-1][:k - len(picked)]
    return np.sort(np.concatenate([picked, silent]).astype(int))


def layer_currents(layer: Layer, sample: int) -> tuple[np.ndarray, str | None]:
    """J = gain·x + bias of every analysed neuron on simulated sample ``sample`` (x at 1 with a
    remark when the run did not observe x)."""
    if layer.x is None:
        return layer.gain + layer.bias, f"{layer.name}: x was not observed; traced at x = 1"
    if sample >= len(layer.x):
        raise UserError(f"analyses.voltage.sample: {sample} is past the {len(layer.x)} "
                        f"simulated test samples")
    return layer.gain * layer.x[sample] + layer.bias, None


class Voltage(Analysis):
    """Membrane voltage over time of a few neurons per layer, the threshold J_th as a line.

    ``voltage.csv`` and ``plots/voltage.png``; metrics ``voltage/threshold``,
    ``voltage/max_subthreshold`` and ``voltage/<layer>/mean_rate_hz``.
    """

    name = "voltage"
    Config = VoltageConfig
    default = False  # a close-up of a few neurons; name it to run it

    def run(self, ctx: Context, cfg: VoltageConfig) -> Result:
        """Trace the chosen neurons of every layer on sample ``cfg.sample``."""
        import pandas as pd

        n_steps = max(1, int(round(cfg.duration / ctx.dt)))
        traces: list[Trace] = []
        remarks: list[str] = []
        metrics: dict[str, float] = {}
        lif = [layer for layer in ctx.layers if is_lif(layer.neuron_type)]
        if ctx.layers and not lif:
            names = sorted({type(layer.neuron_type).__name__ for layer in ctx.layers})
            raise UserError(f"analysis voltage: neuron type {', '.join(names)} has no LIF "
                            f"membrane voltage; use neuron=lif or neuron=threshold_lif")
        remarks += [f"{layer.name}: skipped, {type(layer.neuron_type).__name__} has no LIF "
                    f"membrane voltage" for layer in ctx.layers if not is_lif(layer.neuron_type)]
        for layer in lif:
            current, remark = layer_currents(layer, cfg.sample)
            remarks += [remark] if remark else []
            pos = choose(layer, current, cfg)
            volts, spikes = step_voltage(layer.neuron_type, current[pos], n_steps, ctx.dt,
                                         cfg.initial_voltage)
            # the type integrates J / J_th normalised to spike at 1: J_th · v is in J's units
            traces.append(Trace(layer, pos, current[pos], volts * layer.threshold, spikes))
            metrics[f"voltage/{layer.name}/mean_rate_hz"] = float(
                spikes.sum(axis=0).mean() / (n_steps * ctx.dt))
        if not traces:
            return Result()
        table = pd.concat([frame(tr, ctx.dt) for tr in traces], ignore_index=True)
        below = table.loc[table["spike"] == 0, "voltage"]
        metrics["voltage/threshold"] = float(traces[0].layer.threshold)
        metrics["voltage/max_subthreshold"] = float(below.max()) if len(below) else float("nan")
        return Result(metrics=metrics, tables={"voltage.csv": table}, remarks=remarks,
                      figures={"voltage": lambda: plot(traces, ctx.dt, cfg.sample)})


def frame(tr: Trace, dt: float) -> Any:
    """``voltage.csv`` rows of one layer's traces: one per neuron and step."""
    import pandas as pd

    n_steps, k = tr.voltage.shape
    return pd.DataFrame({
        "layer": tr.layer.name, "neuron": np.tile(tr.layer.index[tr.pos], n_steps),
        "t_s": np.repeat(np.arange(1, n_steps + 1) * dt, k),  # Nengo's time after each step
        "voltage": tr.voltage.ravel(), "threshold": float(tr.layer.threshold),
        "spike": tr.spikes.ravel().astype(int), "current": np.tile(tr.current, n_steps)})


def plot(traces: list[Trace], dt: float, sample: int) -> Figure:
    """A panel per traced neuron (rows) and layer (columns): voltage (line), J_th (dashed line),
    the input current J (dotted line) and spikes (ticks above the threshold)."""
    import matplotlib.pyplot as plt

    rows = max(len(tr.pos) for tr in traces)
    fig, axes = plt.subplots(rows, len(traces), figsize=(6.8 * len(traces), 0.8 + 1.7 * rows),
                             squeeze=False, sharex=True)
    for c, tr in enumerate(traces):
        t = np.arange(1, len(tr.voltage) + 1) * dt
        th = float(tr.layer.threshold)
        for r in range(rows):
            ax = axes[r, c]
            if r >= len(tr.pos):
                ax.axis("off")
                continue
            panel(ax, t, tr, r, th)
        axes[-1, c].set_xlabel("time (s)")
    fig.suptitle(f"Membrane voltage on test sample {sample}:\nspikes where it reaches the "
                 f"threshold J_th (dashed)", fontsize=10)
    fig.tight_layout()
    return fig


def panel(ax: Any, t: np.ndarray, tr: Trace, r: int, th: float) -> None:
    """One neuron's voltage, threshold line, input current and spikes on ``ax``, the voltage axis
    scaled to the threshold (a current far above it is written, not drawn)."""
    v, s, j = tr.voltage[:, r], tr.spikes[:, r], float(tr.current[r])
    p = tr.pos[r]
    top = 1.1 * j if th < j <= CLOSE * th else 1.6 * th  # J drawn when it is near the line
    ax.plot(t, np.minimum(v, th), color="tab:blue", lw=1.1, label="voltage V")
    ax.axhline(th, color="tab:red", ls="--", lw=1.0, label=f"threshold J_th = {th:g}")
    label = f"input J = gain·x + bias = {j:.3g}"
    if j <= top:
        ax.axhline(j, color="0.45", ls=":", lw=1.0, label=label)
    else:
        ax.plot([], [], color="0.45", ls=":", label=label + " (above the axis)")
    ax.vlines(t[s], th, 1.35 * th, color="black", lw=0.8, label=f"spikes ({int(s.sum())})")
    ax.set_ylim(min(0.0, float(v.min())), top)
    ax.set_ylabel("V (J units)", fontsize=8)
    ax.set_title(f"{tr.layer.name}:{int(tr.layer.index[p])}  gain {tr.layer.gain[p]:.3g}, "
                 f"bias {tr.layer.bias[p]:.3g}, {type(tr.layer.neuron_type).__name__}", fontsize=8)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
