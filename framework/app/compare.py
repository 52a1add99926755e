"""``spiketune-compare``: a table and plots of the runs of an experiment or a sweep, from MLflow.

    spiketune-compare --parent <sweep parent run id>
    spiketune-compare --experiment spiketune --filter "params.neuron.name = 'lif'"
    spiketune-compare --parent <id> --metrics spiking/accuracy,firing/mean_rate_hz --out cmp/

It prints one row per run (short run id, run name, status, the params that differ between the
runs, the chosen metrics), writes ``compare.csv`` (full run ids, the differing params, every
metric) and draws into ``<out>/plots/``:

* ``<param>.png`` for each numeric param that differs: the task's spiking metric (solid) and the
  rate network's (dashed), and the mean firing rate, one line per combination of the differing
  categorical params (e.g. neuron type; a param a run does not have is left out of its label).
  Where other numeric params vary too, the line is their mean and the band their min-max. With
  ``--metrics``, ``<metric>_vs_<param>.png`` for each chosen metric and param instead.
* ``tradeoff.png``: the spiking metric against the mean firing rate, coloured by
  ``simulation.n_steps``: the accuracy a spike budget buys.
* ``tuning_overlay.png``, ``response_overlay.png``: the tuning and response curves of the same
  neurons across runs, when the runs logged ``tuning_rates.csv`` / ``response_curves.csv``.

Runs that differ only in ``seed`` (``spiketune -m seed=range(5)``) are repeats: the printed table
is then each headline metric's mean and 95% Student t interval over the seeds, also written as
``spread.csv`` (``metric, n, mean, sd, ci_low, ci_high``); ``compare.csv`` keeps every run.

A param that is ``None`` in some runs and numeric in others (``simulation.synapse``: no filter) is
plotted at 0. Bad arguments exit 2 with one line.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import tempfile
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from framework import paths
from framework.errors import EXIT_INTERNAL, EXIT_USER, UserError
from framework.schema import override_key
from framework.spread import LEVEL, headline, t_interval
from framework.tracking.store import resolve_uri

if TYPE_CHECKING:  # pandas, matplotlib and MLflow are imported lazily, where they are used
    import pandas as pd
    from matplotlib.axes import Axes

#: an ``mlflow.MlflowClient``; ``Run`` an ``mlflow.entities.Run``
Client = Any
Run = Any

#: metrics shown by default, in this order, when any selected run has them
DEFAULT_METRICS = ["spiking/accuracy", "rate/accuracy", "spiking/mse", "rate/mse",
                   "spiking/angle_error_deg", "rate/angle_error_deg", "firing/mean_rate_hz"]
#: the spiking metric of the trade-off plot: the first of these the runs have
SPIKING_METRICS = ["spiking/accuracy", "spiking/angle_error_deg", "spiking/mse"]
RATE_METRIC = "firing/mean_rate_hz"
STEPS_PARAM = "simulation.n_steps"
MAX_OVERLAY_RUNS = 12  # runs drawn in the tuning/response overlays (legibility)
MAX_OVERLAY_NEURONS = 6  # neurons (panels) in each overlay
_NONE = {"None", "none", "null", ""}


@dataclass
class Comparison:
    """What :func:`compare` found and wrote.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per run: ``run_id``, ``run_name``, ``status``, the differing params, every metric.
    params : list of str
        The params that differ between the runs (dotted keys).
    numeric : list of str
        Those of ``params`` with numeric values (swept numbers).
    metrics : list of str
        The metrics shown in the table.
    out : pathlib.Path
        Where ``compare.csv`` and ``plots/`` were written.
    plots : list of pathlib.Path
    """

    frame: pd.DataFrame
    params: list[str]
    numeric: list[str]
    metrics: list[str]
    out: Path
    plots: list[Path] = field(default_factory=list)
    chosen_by_user: bool = False  # metrics from --metrics: each plotted against each param
    shown: list[str] = field(default_factory=list)  # params in the printed table; empty: all
    # seed repeats: each headline metric over the seeds (spread_table); None otherwise
    spread: pd.DataFrame | None = None

    def table(self) -> pd.DataFrame:
        """The printed table: short run id, run name, status, the params the runs set (or all
        differing ones), chosen metrics."""
        params = self.shown or self.params
        t = self.frame[["run_id", "run_name", "status", *params, *self.metrics]].copy()
        t["run_id"] = t["run_id"].str[:8]
        return t.rename(columns={"run_id": "run"})


# ------------------------------------------------------------------------------------ selection
def _client(uri: str) -> tuple[Client, str]:
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise UserError(f"--uri: no MLflow store at {path} (run spiketune first)")
    client = MlflowClient(tracking_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as ex:  # noqa: BLE001 - any failure to open is the URI's fault
        first = str(ex).strip().splitlines()[0][:200] if str(ex).strip() else ex
        raise UserError(f"--uri: cannot open MLflow store {uri}: {first}") from None
    return client, uri


def _parent_run(client: Client, run_id: str) -> Run:
    """The parent run ``run_id`` (a unique prefix of a sweep parent's id is enough)."""
    from mlflow.exceptions import MlflowException

    if len(run_id) == 32:
        try:
            return client.get_run(run_id)
        except MlflowException:
            raise UserError(f"--parent: no run {run_id} in this store") from None
    parents = [r for exp in client.search_experiments()
               for r in client.search_runs([exp.experiment_id],
                                           filter_string="tags.`spiketune.sweep` = 'parent'",
                                           max_results=5000)
               if r.info.run_id.startswith(run_id)]
    if len(parents) != 1:
        what = "no sweep parent run" if not parents else f"{len(parents)} sweep parent runs"
        raise UserError(f"--parent: {what} starts with '{run_id}'; give the full run id")
    return parents[0]


def select_runs(client: Client, experiment: str | None, parent: str | None,
                filter_string: str) -> list[Run]:
    """The runs to compare, oldest first: a sweep's children, or an experiment's runs (sweep
    parents left out), narrowed by an MLflow filter string."""
    from mlflow.exceptions import MlflowException

    if parent:
        prun = _parent_run(client, parent)
        exp_ids = [prun.info.experiment_id]
        clauses = [f"tags.`mlflow.parentRunId` = '{prun.info.run_id}'"]
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
            raise UserError(f"--experiment: no experiment '{experiment}' in this store "
                            f"(experiments: {names})")
        exp_ids, clauses = [exp.experiment_id], []
    if filter_string:
        clauses.append(filter_string)  # MLflow filters only know "and": no grouping needed
    runs: list[Run] = []
    token = None
    try:
        while True:
            page = client.search_runs(exp_ids, filter_string=" and ".join(clauses),
                                      max_results=1000, order_by=["attributes.start_time ASC"],
                                      page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
    except MlflowException as ex:
        raise UserError(f"--filter: {ex.message.splitlines()[0][:300]}") from None
    return [r for r in runs if r.data.tags.get("spiketune.sweep") != "parent"]


# --------------------------------------------------------------------------------------- table
def as_number(value: Any) -> float | None:
    """A param value as a float (None/null → None); raises ValueError if it is not numeric."""
    if value is None or str(value) in _NONE:
        return None
    if str(value) in ("True", "False", "true", "false"):
        raise ValueError(value)
    return float(value)


def differing(params: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    """``(differing, numeric)``: the param keys whose values differ between runs (a missing key
    counts as a value), and those of them whose values are all numbers or None."""
    keys = sorted(set().union(*params)) if params else []
    diff = [k for k in keys if len({p.get(k) for p in params}) > 1]
    numeric = []
    for k in diff:
        try:
            values = {as_number(p.get(k)) for p in params}
        except ValueError:
            continue
        if len(values - {None}) >= 2:
            numeric.append(k)
    return diff, numeric


def build_frame(runs: list[Run], metrics: list[str] | None = None
                ) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    """``(frame, params, numeric, metrics)`` for ``runs`` (see :class:`Comparison`)."""
    import pandas as pd

    params = [dict(r.data.params) for r in runs]
    diff, numeric = differing(params)
    all_metrics = sorted(set().union(*(r.data.metrics for r in runs)))
    if metrics:
        for m in metrics:
            if m not in all_metrics:
                raise UserError(f"--metrics: no selected run has metric '{m}'; they have: "
                                f"{', '.join(all_metrics) or 'none'}")
        chosen = list(metrics)
    else:
        chosen = [m for m in DEFAULT_METRICS if m in all_metrics]
    rows = []
    for run, p in zip(runs, params):
        row = {"run_id": run.info.run_id, "run_name": run.info.run_name or "",
               "status": run.info.status}
        for k in diff:
            v = p.get(k)
            row[k] = as_number(v) if k in numeric else v
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["run_id", "run_name", "status", *diff])
    metric_cols = chosen + [m for m in all_metrics if m not in chosen]
    values = pd.DataFrame([{m: r.data.metrics.get(m) for m in metric_cols} for r in runs],
                          columns=metric_cols, dtype=float)
    frame = pd.concat([frame, values], axis=1)
    return frame, diff, numeric, chosen


def set_by_overrides(runs: list[Run], diff: list[str]) -> list[str]:
    """Of the differing params, those the runs' overrides set (``spiketune.overrides``; a group
    choice ``neuron=relu`` is ``neuron.name``): the table shows what a sweep varied, not values
    that follow from it (``simulation.readout_steps``). Empty when no run has the tag."""
    keys: set[str] = set()
    for run in runs:
        for item in run.data.tags.get("spiketune.overrides", "").split():
            key = override_key(item)
            keys.add(key.replace("/", "."))
    return [p for p in diff if p in keys or (p.endswith(".name") and p[:-5] in keys)]


def format_table(table: pd.DataFrame) -> str:
    """The table as aligned text, numbers to 4 significant digits."""
    shown = table.copy()
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            shown[col] = shown[col].map(lambda v: "" if v != v else f"{v:.4g}")
    return str(shown.fillna("").to_string(index=False))


def spread_table(columns: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """``metric, n, mean, sd, ci_low, ci_high`` (Student t interval of the mean at
    :data:`framework.spread.LEVEL`) of each headline metric among ``columns`` (metric -> one
    value per repeat; NaN: a repeat without it), in :func:`framework.spread.headline`'s order."""
    import pandas as pd

    rows = []
    for key in headline(columns):
        iv = t_interval(columns[key])
        rows.append({"metric": key, "n": iv.n, "mean": iv.mean, "sd": iv.sd, "ci_low": iv.low,
                     "ci_high": iv.high})
    return pd.DataFrame(rows, columns=["metric", "n", "mean", "sd", "ci_low", "ci_high"])


def interval_text(row: Any) -> str:
    """``mean [ci_low, ci_high]`` of a :func:`spread_table` row, 4 significant digits; the mean
    alone when there is no interval (one value)."""
    if not (row["n"] >= 2 and math.isfinite(row["ci_low"])):
        return f"{row['mean']:.4g}"
    return f"{row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]"


def seed_repeats(comp: Comparison) -> bool:
    """Whether the compared runs are repeats of one setting over seeds: ``seed`` is the only
    param they set differently (or, without overrides, the only one that differs)."""
    return (comp.shown or comp.params) == ["seed"] and len(comp.frame) >= 2


def format_spread(table: pd.DataFrame) -> str:
    """The spread table as text: metric, n, mean and interval."""
    shown = table[["metric", "n"]].copy()
    shown[f"mean [{LEVEL:.0%} interval]"] = [interval_text(r) for _, r in table.iterrows()]
    return str(shown.to_string(index=False))


# ---------------------------------------------------------------------------------------- plots
#: axis labels with units for the metrics and params a comparison usually plots
LABELS = {
    "spiking/accuracy": "spiking accuracy (fraction correct)",
    "rate/accuracy": "rate-network accuracy (fraction correct)",
    "keras/accuracy": "Keras accuracy (fraction correct)",
    "spiking/mse": "spiking MSE (target units²)", "rate/mse": "rate-network MSE (target units²)",
    "spiking/angle_error_deg": "spiking angle error (°)",
    "rate/angle_error_deg": "rate-network angle error (°)",
    "firing/mean_rate_hz": "mean firing rate (Hz)", "firing/max_rate_hz": "highest mean rate (Hz)",
    "firing/silent_fraction": "silent neurons (fraction)",
    "tuning/directional_fraction": "directional neurons (fraction)",
    "tuning/cosine_fraction": "cosine-fitted of the directional (fraction)",
    "tuning/pv_angle_error_deg": "population-vector error (°)",
    "tuning/ole_angle_error_deg": "OLE decoding error (°)",
    "search/objective": "search objective",
    "cost/synops_per_sample": "synaptic operations per sample (accumulates)",
    "cost/activation_sparsity": "activation sparsity (fraction)",
    "simulation.n_steps": "simulation steps per sample", "simulation.dt": "time step (s)",
    "simulation.synapse": "synapse time constant (s)",
    "simulation.scale_firing_rates": "firing-rate scale (×)",
    "neuron.tau_rc": "membrane time constant τ_rc (s)",
    "neuron.tau_ref": "refractory period τ_ref (s)", "neuron.threshold": "firing threshold J_th",
    "training.epochs": "training epochs", "training.learning_rate": "learning rate",
    "conversion.max_rate_hz": "normalised rate (Hz)",
}
_UNITS = {"_hz": "Hz", "_deg": "°", "_s": "s"}


def label(key: str) -> str:
    """A metric's or param's axis label, with its unit: from :data:`LABELS`, else the key with
    the unit its suffix names (``_hz``, ``_deg``, ``_s``)."""
    if key in LABELS:
        return LABELS[key]
    for suffix, unit in _UNITS.items():
        if key.endswith(suffix):
            return f"{key[:-len(suffix)]} ({unit})"
    return key


def short(key: str) -> str:
    """A param's short label: its last component, or the group for ``<group>.name``."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-")


def curves(frame: pd.DataFrame, metric: str, param: str, by: list[str]
           ) -> dict[str, pd.DataFrame]:
    """The lines of one ``metric`` vs ``param`` plot: ``label -> DataFrame(x, mean, min, max, n)``.

    Runs without the metric are left out; None values of ``param`` are at x = 0. Each line is one
    combination of the ``by`` (categorical) params; runs sharing an x (differing in other numeric
    params) are averaged, their spread kept as min and max.
    """
    sub = frame[frame[metric].notna()].copy()
    sub["_x"] = sub[param].fillna(0.0).astype(float)
    groups = sub.groupby([sub[b].fillna("-").astype(str) for b in by], sort=True) if by else \
        [("all", sub)]
    out = {}
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        # a param the group does not have (relu has no tau_rc) says nothing: left out
        parts = [f"{short(b)}={k}" for b, k in zip(by, key) if k not in ("-", "nan", "None")]
        label = ", ".join(parts) if parts else "all"
        agg = g.groupby("_x")[metric].agg(["mean", "min", "max", "count"]).reset_index()
        out[label] = agg.rename(columns={"_x": "x", "count": "n"})
    return out


def _plot_metric(frame: pd.DataFrame, metric: str, param: str, by: list[str],
                 path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    _draw_lines(ax, frame, metric, param, by)
    ax.set_ylabel(label(metric))
    if by:
        ax.legend(fontsize=7)
    ax.set_title(f"{label(metric)} vs {short(param)}", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_lines(ax: Axes, frame: pd.DataFrame, metric: str, param: str, by: list[str],
                style: str = "-", colours: dict[str, Any] | None = None,
                suffix: str = "") -> dict[str, Any]:
    """One line per category of ``metric`` against ``param`` on ``ax`` (mean, min-max band);
    returns ``label -> colour`` so a second metric can reuse the colours. Where every run has an
    x of its own and other params vary too (a random search), the points are not joined: a line
    would join unrelated settings."""
    colours = dict(colours or {})
    joined = frame[param].duplicated().any() or len(frame) <= 2
    for name, c in curves(frame, metric, param, by).items():
        kw = {"color": colours[name]} if name in colours else {}
        text = f"{name}{suffix}" if name != "all" else (suffix.strip() or name)
        # the rate twin: open markers
        hollow: dict[str, Any] = {"mfc": "none"} if style != "-" else {}
        line, = ax.plot(c["x"], c["mean"], marker="o", ls=style if joined else "", ms=5,
                        label=text, **hollow, **kw)
        colours[name] = line.get_color()
        if (c["n"] > 1).any():
            ax.fill_between(c["x"], c["min"], c["max"], color=line.get_color(), alpha=0.12)
    none = frame[param].isna().any()
    ax.set_xlabel(label(param) + (" (none at 0)" if none else ""))
    values = frame[param].dropna()
    if len(values) and (values > 0).all() and values.max() / values.min() >= 20 and not none:
        ax.set_xscale("log")
    return colours


def _plot_param(frame: pd.DataFrame, param: str, task: str, rate_twin: str | None, by: list[str],
                path: Path) -> Path:
    """The default plot of one swept param: the task metric of the spiking network (solid) and
    of the rate network (dashed: the conversion's cost is the gap), and the mean firing rate."""
    import matplotlib.pyplot as plt

    panels = 2 if RATE_METRIC in frame and frame[RATE_METRIC].notna().any() else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.9), layout="constrained",
                             squeeze=False)
    colours = _draw_lines(axes[0, 0], frame, task, param, by,
                          suffix=" spiking" if rate_twin else "")
    if rate_twin and frame[rate_twin].notna().sum() >= 2:
        _draw_lines(axes[0, 0], frame, rate_twin, param, by, style="--", colours=colours,
                    suffix=" rate")
    axes[0, 0].set_ylabel(label(task).replace("spiking ", "") if rate_twin else label(task))
    axes[0, 0].legend(fontsize=7)
    if panels == 2:
        _draw_lines(axes[0, 1], frame, RATE_METRIC, param, by, colours=colours)
        axes[0, 1].set_ylabel(label(RATE_METRIC))
    fig.suptitle(f"{short(param)}: task error and firing rate", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_tradeoff(frame: pd.DataFrame, spiking: str, steps: pd.Series | None, by: list[str],
                   path: Path) -> Path:
    """Spiking metric vs mean firing rate, coloured by n_steps (a colour per value when there are
    few, a colour scale when many), one marker per categorical group."""
    import matplotlib.pyplot as plt

    sub = frame[frame[spiking].notna() & frame[RATE_METRIC].notna()]
    fig, ax = plt.subplots(figsize=(5.8, 4.2), layout="constrained")
    markers = "osD^v<>pPX*"
    keys = (sub[by].fillna("-").astype(str).apply(
        lambda r: ", ".join(f"{short(b)}={v}" for b, v in zip(by, r) if v not in ("-", "nan")),
        axis=1) if by else None)
    labels = sorted(set(keys)) if keys is not None else [None]
    few = steps is not None and steps.loc[sub.index].nunique() <= 6
    palette = {v: f"C{i}" for i, v in enumerate(sorted(steps.loc[sub.index].unique()))} \
        if few and steps is not None else {}
    sc = None
    for i, name in enumerate(labels):
        g = sub if name is None else sub[keys == name]
        colour: dict[str, Any]
        if few and steps is not None:
            colour = dict(c=[palette[v] for v in steps.loc[g.index]])
        elif steps is not None:
            colour = dict(c=steps.loc[g.index], cmap="viridis", vmin=steps.loc[sub.index].min(),
                          vmax=steps.loc[sub.index].max())
        else:
            colour = {}
        sc = ax.scatter(g[RATE_METRIC], g[spiking], marker=markers[i % 11], label=name,
                        edgecolors="k", linewidths=0.4, s=36, **colour)
        for _, row in g.iterrows():  # every point says its setting (the run's name)
            ax.annotate(str(row.get("run_name") or row["run_id"][:8])[:24],
                        (row[RATE_METRIC], row[spiking]), xytext=(4, 3),
                        textcoords="offset points", fontsize=6, color="0.25")
    if few:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], ls="", marker="o", color=c, label=f"{v:g}")
                   for v, c in palette.items()]
        # legends beside the axes, never over a point
        fig.legend(handles=handles, title=label(STEPS_PARAM), fontsize=7,
                   title_fontsize=7, loc="outside right upper")
    elif steps is not None and sc is not None:
        fig.colorbar(sc, ax=ax, label=label(STEPS_PARAM))
    if by:
        fig.legend(*ax.get_legend_handles_labels(), fontsize=7,
                   loc="outside right lower" if few else "outside right upper")
    ax.set_xlabel(label(RATE_METRIC))
    ax.set_ylabel(label(spiking))
    hue = f", colour: {short(STEPS_PARAM)}" if steps is not None else ""
    ax.set_title(f"What a spike budget buys{hue}", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _run_label(row: pd.Series, params: list[str]) -> str:
    """``<run name> name=value ...`` for the first three differing params a run has (relu has no
    tau_rc: it is left out, not shown as None); the run id's start where the run has no name.
    A sweep's child is named by its swept values, so its name leads."""
    shown = [p for p in params if as_label(row[p])][:3]
    parts = [f"{short(p)}={row[p]:g}" if isinstance(row[p], float) else f"{short(p)}={row[p]}"
             for p in shown]
    name = str(row.get("run_name") or "") or row["run_id"][:8]
    return f"{name} " + " ".join(p for p in parts if p not in name)


def as_label(value: Any) -> bool:
    """Whether a param value says something in a label (not missing, None or NaN)."""
    return value is not None and str(value) not in _NONE and not (
        isinstance(value, float) and value != value)


def _overlay(client: Client, frame: pd.DataFrame, params: list[str], name: str, x: str,
             ys: tuple[str, ...], tmp: Path, path: Path, xlabel: str) -> Path | None:
    """Curves of ``name`` (an artifact CSV) of the same neurons across runs, one panel each;
    None when fewer than two runs logged it or they share no neuron."""
    tables = _overlay_tables(client, frame, params, name, tmp)
    if len(tables) < 2:
        return None
    common = set.intersection(*(set(map(tuple, t[["layer", "neuron"]].drop_duplicates().values))
                                for _, t in tables))
    neurons = sorted(common, key=lambda ln: (str(ln[0]), int(ln[1])))[:MAX_OVERLAY_NEURONS]
    if not neurons:
        return None
    return _draw_overlay(tables, neurons, x, ys, path, xlabel)


def _overlay_tables(client: Client, frame: pd.DataFrame, params: list[str], name: str,
                    tmp: Path) -> list[tuple[str, pd.DataFrame]]:
    """``(run label, table)`` of the artifact ``name`` of up to :data:`MAX_OVERLAY_RUNS`
    finished runs that logged it."""
    import pandas as pd

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm per file
    tables: list[tuple[str, pd.DataFrame]] = []
    for _, row in frame[frame["status"] == "FINISHED"].iterrows():
        if len(tables) == MAX_OVERLAY_RUNS:
            break
        try:
            if name not in {a.path for a in client.list_artifacts(row["run_id"])}:
                continue
            local = client.download_artifacts(row["run_id"], name, str(tmp / row["run_id"]))
            tables.append((_run_label(row, params), pd.read_csv(local)))
        except Exception:  # noqa: BLE001 - an unreadable artifact only drops that run
            continue
    return tables


def _draw_overlay(tables: list[tuple[str, pd.DataFrame]], neurons: list[tuple[Any, Any]], x: str,
                  ys: tuple[str, ...], path: Path, xlabel: str) -> Path:
    """One panel per neuron (``(layer, neuron)``), one colour per run: ``ys[0]`` as a line, the
    others as dots."""
    import matplotlib.pyplot as plt

    cols = min(3, len(neurons))
    rows = -(-len(neurons) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False,
                             layout="constrained")
    for ax, (layer, neuron) in zip(axes.flat, neurons):
        for i, (label, t) in enumerate(tables):
            n = t[(t["layer"] == layer) & (t["neuron"] == neuron)].sort_values(x)
            color = f"C{i % 10}"
            ax.plot(n[x], n[ys[0]], color=color, label=label)
            for y in ys[1:]:
                if y in n and n[y].notna().any():
                    ax.plot(n[x], n[y], "o", color=color, markersize=2.5)
        ax.set_title(f"{layer} #{neuron}", fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel("rate (Hz)", fontsize=7)
        values = sorted({float(v) for _, t in tables for v in t[x].dropna()})
        if x == "direction_deg" and len(values) <= 16:  # the data's own directions
            ax.set_xticks(values)
            ax.tick_params(axis="x", labelsize=6)
    for ax in list(axes.flat)[len(neurons):]:
        ax.axis("off")
    # one legend for every panel, beside them: off the data
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="outside right upper")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(client: Client, comp: Comparison) -> list[Path]:
    """Every plot of the comparison, into ``comp.out / 'plots'``."""
    import matplotlib

    matplotlib.use("Agg")
    frame = comp.frame
    plots_dir = comp.out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    categorical = [p for p in comp.params if p not in comp.numeric and frame[p].nunique() <= 8
                   and not p.startswith("tracking.")]
    paths = []
    spiking = next((m for m in SPIKING_METRICS if m in frame and frame[m].notna().any()), None)
    if comp.chosen_by_user or spiking is None:  # the metrics asked for, each against each param
        for metric in comp.metrics:
            for param in comp.numeric:
                if frame[metric].notna().sum() >= 2:
                    by = [c for c in categorical if c != param]
                    paths.append(_plot_metric(
                        frame, metric, param, by,
                        plots_dir / f"{_slug(metric)}_vs_{_slug(param)}.png"))
    else:  # one figure per swept param: the task error (spiking and rate) and the firing rate
        twin = spiking.replace("spiking/", "rate/")
        swept = [p for p in comp.numeric if p in comp.shown] if comp.shown else comp.numeric
        for param in swept:
            if frame[spiking].notna().sum() >= 2:
                by = [c for c in categorical if c != param]
                paths.append(_plot_param(frame, param, spiking, twin if twin in frame else None,
                                         by, plots_dir / f"{_slug(param)}.png"))
    if spiking and RATE_METRIC in frame and frame[RATE_METRIC].notna().any():
        steps = frame[STEPS_PARAM] if STEPS_PARAM in comp.numeric else None
        paths.append(_plot_tradeoff(frame, spiking, steps, categorical, plots_dir / "tradeoff.png"))
    with tempfile.TemporaryDirectory(prefix="spiketune-compare-") as tmp:
        for name, x, ys, xlabel, fname in [
                ("tuning_rates.csv", "direction_deg", ("mean_rate_hz",), "direction (deg)",
                 "tuning_overlay.png"),
                ("response_curves.csv", "x", ("rate_hz", "sim_rate_hz"), "x",
                 "response_overlay.png")]:
            p = _overlay(client, frame, comp.params, name, x, ys, Path(tmp), plots_dir / fname,
                         xlabel)
            if p:
                paths.append(p)
    return paths


# ----------------------------------------------------------------------------------------- main
def default_out(experiment: str | None, parent: str | None, filter_string: str) -> Path:
    """``outputs/compare/<parent-xxxxxxxx | experiment>[-<filter hash>]``."""
    label = f"parent-{parent[:8]}" if parent else _slug(experiment or "spiketune")
    if filter_string:
        label += "-" + hashlib.sha1(filter_string.encode()).hexdigest()[:8]
    return paths.OUTPUTS / "compare" / label


def compare(uri: str = "", *, experiment: str | None = None, parent: str | None = None,
            filter_string: str = "", metrics: list[str] | None = None, out: Path | None = None,
            plots: bool = True, echo: bool = True, stream: IO[str] | None = None) -> Comparison:
    """Compare runs: print the table, write ``compare.csv`` and the plots.

    Parameters
    ----------
    uri : str
        MLflow tracking URI; empty: the project's default store.
    experiment : str, optional
        Experiment name (default ``spiketune``) whose runs are compared; ignored with ``parent``.
    parent : str, optional
        A sweep's parent run id (or a unique prefix): compare its children.
    filter_string : str
        An MLflow search filter (``params.neuron.name = 'lif' and metrics.spiking/mse < 1``).
    metrics : list of str, optional
        Metrics in the table and plots; default the task's accuracy or error, and firing rate.
    out : pathlib.Path, optional
        Output folder; default :func:`default_out`.
    """
    import matplotlib

    matplotlib.use("Agg")
    client, uri = _client(uri)
    runs = select_runs(client, experiment or "spiketune", parent, filter_string)
    if not runs:
        what = f"sweep {parent}" if parent else f"experiment '{experiment or 'spiketune'}'"
        raise UserError(f"no runs to compare in {what}" + (f" match --filter {filter_string!r}"
                                                           if filter_string else ""))
    frame, params, numeric, chosen = build_frame(runs, metrics)
    out = Path(out) if out is not None else default_out(experiment, parent, filter_string)
    out.mkdir(parents=True, exist_ok=True)
    comp = Comparison(frame=frame, params=params, numeric=numeric, metrics=chosen, out=out,
                      chosen_by_user=bool(metrics), shown=set_by_overrides(runs, params))
    frame.to_csv(out / "compare.csv", index=False)
    if seed_repeats(comp):
        done = frame[frame["status"] == "FINISHED"]
        comp.spread = spread_table({m: done[m].tolist() for m in frame.columns
                                    if m in done and "/" in m})
        comp.spread.to_csv(out / "spread.csv", index=False)
    if plots:
        comp.plots = draw(client, comp)
    if echo:
        _echo(comp, stream or sys.stdout)
    return comp


def _echo(comp: Comparison, stream: IO[str]) -> None:
    """The table (seed repeats: each metric's mean and interval over the seeds) and where the
    files went."""
    if comp.spread is not None:
        n = int((comp.frame["status"] == "FINISHED").sum())
        print(f"{len(comp.frame)} runs differ only in seed; over the {n} finished, each metric's "
              f"mean and {LEVEL:.0%} Student t interval (per run: compare.csv):", file=stream)
        print(format_spread(comp.spread), file=stream)
    else:
        print(format_table(comp.table()), file=stream)
    extra = " and spread.csv" if comp.spread is not None else ""
    print(f"\n{len(comp.frame)} runs; compare.csv{extra} and {len(comp.plots)} plots in "
          f"{comp.out}", file=stream)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, exit 2 (not usage first)
        raise UserError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="spiketune-compare", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--experiment", help="experiment whose runs to compare (default spiketune)")
    which.add_argument("--parent", help="a sweep's parent run id: compare its child runs")
    p.add_argument("--filter", default="", help="MLflow filter string, e.g. "
                   "\"params.`neuron.name` = 'lif'\"")
    p.add_argument("--uri", default="", help="MLflow tracking URI (default the project's store)")
    p.add_argument("--metrics", default="", help="comma-separated metric keys")
    p.add_argument("--out", default=None, help="output folder (default outputs/compare/<...>)")
    p.add_argument("--no-plots", action="store_true", help="table and CSV only")
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune-compare``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(argv)
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or None
        compare(args.uri, experiment=args.experiment, parent=args.parent,
                filter_string=args.filter, metrics=metrics,
                out=Path(args.out) if args.out else None, plots=not args.no_plots)
    except UserError as ex:
        print(f"spiketune-compare: {ex}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as ex:  # noqa: BLE001 - last line of defence: one line, exit 1
        print(f"spiketune-compare: internal error: {type(ex).__name__}: {ex}", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
