"""What a sweep concludes, logged to its parent run: the Pareto front of a multi-objective search
(``experiment=frontier``) and the spread over seeds of a sweep that varies only ``seed``.

Both are computed from the children's logged metrics and params (the numbers in
:mod:`framework.pareto` and :mod:`framework.spread`); the sweep callback
(:class:`framework.app.sweeps.SweepCallback`) logs what they return: artifacts, metrics, and a
section of the parent's description and ``report.html``.

* ``pareto.csv``: every finished trial, its swept settings, its objectives as logged (the task's
  score as its metric, e.g. ``spiking/accuracy``, maximised) and ``on_front``; ``pareto.png``:
  score against cost, the front connected; metrics ``pareto/trials``, ``pareto/front_size``.
* ``spread.csv``: ``metric, n, mean, sd, ci_low, ci_high`` (Student t 95% interval of the mean
  over seeds); metrics ``spread/<metric>/{mean,sd,ci_low,ci_high}``; where the seeds share weights
  (a loaded model), ``pd_spread.csv``: each neuron's preferred direction over seeds.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from framework import conversion, health, report_html
from framework.app.compare import as_number, interval_text, label, short, spread_table
from framework.config import SCORE_OBJECTIVE
from framework.pareto import front_order, on_front
from framework.spread import LEVEL, circular_spread
from framework.tracking.links import markdown_table

if TYPE_CHECKING:  # pandas and matplotlib are imported lazily, where they are used
    import pandas as pd

#: an ``mlflow.MlflowClient``; a ``Run`` an ``mlflow.entities.Run``
Client = Any
Run = Any


@dataclass
class Section:
    """A part of the parent's record: its description (Markdown), its ``report.html`` section
    (heading, HTML), the files to log as artifacts and the metrics to log."""

    markdown: str
    html: tuple[str, str]
    files: list[Path] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- checks
def directions(direction: Any) -> list[str]:
    """``hydra.sweeper.direction`` (one, or a list; strings or Optuna's enum) as a list of
    ``minimize``/``maximize``; empty when the sweeper has none."""
    if direction is None:
        return []
    given = list(direction) if not isinstance(direction, str) and hasattr(direction, "__iter__") \
        else [direction]
    return [str(getattr(d, "name", d)).lower() for d in given]


def check_objectives(objectives: Sequence[str], direction: Any) -> str | None:
    """Why ``objectives`` and the search's directions do not fit together (one line naming the
    key), or None. Without a search sweeper (no direction) anything goes: nothing reads them."""
    given = directions(direction)
    if not given:
        return None
    if not objectives:
        return (f"hydra.sweeper.direction: {len(given)} directions but no objectives; set "
                f"objectives=[...] with one metric per direction" if len(given) > 1 else None)
    if len(given) != len(objectives):
        return (f"hydra.sweeper.direction: {len(given)} direction(s) for {len(objectives)} "
                f"objectives {list(objectives)}; give one per objective, in order")
    for key, way in zip(objectives, given):
        if key == SCORE_OBJECTIVE and way != "minimize":
            return ("hydra.sweeper.direction: `score` is the task's score as a loss (accuracy "
                    "negated), always minimized; set its direction to minimize")
    return None


# ---------------------------------------------------------------------------------- frontier
def score_metric(runs: list[Run]) -> tuple[str, bool] | None:
    """The task's spiking score the runs logged and whether higher is better."""
    logged: dict[str, float] = {k: 0.0 for r in runs for k in r.data.metrics}
    name = health.score_key(logged)
    if name is None or f"spiking/{name}" not in logged:
        return None
    return f"spiking/{name}", not health.SCORES[name]


def _objective_column(runs: list[Run], key: str, way: str) -> tuple[str, bool, list[float]]:
    """``(column, maximise, values)`` of one objective over ``runs``, as logged."""
    nan = float("nan")
    if key == SCORE_OBJECTIVE:
        found = score_metric(runs)
        if found is None:
            return "score", False, [nan] * len(runs)
        metric, higher = found
        return metric, higher, [r.data.metrics.get(metric, nan) for r in runs]
    if "/" in key:
        return key, way == "maximize", [r.data.metrics.get(key, nan) for r in runs]
    values = [as_number(r.data.params.get(key)) for r in runs]
    return key, way == "maximize", [nan if v is None else v for v in values]


def pareto_frame(runs: list[Run], objectives: Sequence[str], ways: Sequence[str],
                 settings: Sequence[str]) -> tuple[pd.DataFrame, list[str], list[bool]]:
    """The trials as a table: ``run_id``, ``run_name``, the swept ``settings`` (params as
    logged), each objective's column as logged, ``on_front``; and the objective columns and
    whether each is maximised."""
    import pandas as pd

    done = [r for r in runs if r.info.status == "FINISHED"]
    frame = pd.DataFrame({"run_id": [r.info.run_id for r in done],
                          "run_name": [r.info.run_name or "" for r in done]})
    for key in settings:  # a swept objective (n_steps) is the objective's column
        if key not in objectives:
            frame[key] = [r.data.params.get(key, "") for r in done]
    columns, maximize = [], []
    for key, way in zip(objectives, list(ways) + ["minimize"] * len(objectives)):
        column, higher, values = _objective_column(done, key, way)
        frame[column] = np.asarray(values, dtype=float)
        columns.append(column)
        maximize.append(higher)
    frame["on_front"] = (on_front(frame[columns].to_numpy(), maximize) if len(frame)
                         else np.zeros(0, dtype=bool))
    return frame, columns, maximize


#: shorter names for the frontier's usual settings, in the figure's labels
ABBREVIATIONS = {"scale_firing_rates": "scale", "synapse": "syn", "n_steps": "steps",
                 "normalize": "norm", "max_rate_hz": "max_hz", "mean_rate_hz": "mean_hz",
                 "calibrate": "cal"}


def setting_text(row: pd.Series, settings: Sequence[str], abbreviate: bool = False) -> str:
    """A trial's settings in a few words: ``scale_firing_rates=123 synapse=0.01 ...`` (with
    ``abbreviate``: ``scale=123 syn=0.01 ...``); an enum's value without its class. Settings the
    trial's conversion did not use (a scale under data-based normalisation, a percentile target
    under ``mean_rate``) are left out: they did nothing."""
    words = []
    idle = conversion.unused({key: str(row[key]) for key in settings})
    for key in (k for k in settings if k not in idle):
        value = row[key]
        if value is None or str(value) in ("", "nan", "None"):  # a run that did not log it
            continue
        try:
            number = as_number(value)
        except ValueError:
            number = None
        name = short(key)
        name = ABBREVIATIONS.get(name, name) if abbreviate else name
        text = f"{number:.3g}" if number is not None else str(value).rsplit(".", 1)[-1]
        words.append(f"{name}={text}")
    return " ".join(words)


def _reference(runs: list[Run], score: str, higher: bool) -> tuple[float, str] | None:
    """The line the front is read against: the Keras model's score when runs logged it (the
    same model in every trial: their mean), else the rate network's best over the trials (its
    weights, and so its score, follow the trial's scale and normalisation)."""
    keras = score.replace("spiking/", "keras/")
    values = [r.data.metrics[keras] for r in runs if keras in r.data.metrics]
    if values:
        return float(np.mean(values)), f"Keras model ({keras}, mean of {len(values)} runs)"
    rate = score.replace("spiking/", "rate/")
    values = [r.data.metrics[rate] for r in runs if rate in r.data.metrics]
    if values:
        best = float(max(values) if higher else min(values))
        return best, f"rate network ({rate}, best of {len(values)} trials)"
    return None


def draw_front(frame: pd.DataFrame, axes: tuple[str, str], maximize: tuple[bool, bool],
               steps: str | None, settings: Sequence[str],
               reference: tuple[float, str] | None, path: Path) -> Path:
    """``pareto.png``: each trial's score (``axes[0]``) against its cost (``axes[1]``), labelled
    with its settings; the front's trials filled (coloured by steps), the best score at each cost
    among them connected; the reference score as a horizontal line; legend and colour bar beside
    the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score, cost = axes
    fig, ax = plt.subplots(figsize=(8.0, 5.2), layout="constrained")
    rest, front = frame[~frame["on_front"]], frame[frame["on_front"]]
    ax.scatter(rest[cost], rest[score], s=22, facecolors="none", edgecolors="0.5",
               label="dominated trial")
    colour: dict[str, Any] = ({"c": front[steps], "cmap": "viridis"} if steps and len(front)
                              else {"color": "C0"})
    sc = ax.scatter(front[cost], front[score], s=40, edgecolors="k", linewidths=0.5,
                    label="on the front", zorder=3, **colour)
    flat = front[on_front(front[[score, cost]].to_numpy(), list(maximize))]  # score vs cost only
    order = front_order(flat[cost], flat[score])
    ax.plot(flat[cost].to_numpy()[order], flat[score].to_numpy()[order], "-", color="C0",
            lw=1, zorder=2, label="best score at each cost")
    for _, row in frame.iterrows():
        note = ax.annotate(setting_text(row, settings, abbreviate=True), (row[cost], row[score]),
                           xytext=(4, 3), textcoords="offset points", fontsize=5, color="0.25")
        note.set_in_layout(False)  # a long label must not shrink the axes
    if reference is not None:
        ax.axhline(reference[0], color="C3", ls="--", lw=1, label=reference[1])
    if steps and len(front):
        fig.colorbar(sc, ax=ax, label=label(steps), location="right", shrink=0.8)
    ax.margins(x=0.25, y=0.1)
    ax.set_xlabel(label(cost))
    ax.set_ylabel(label(score))
    ax.set_title("The conversion frontier: score against cost", fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncols=2)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def frontier(runs: list[Run], objectives: Sequence[str], ways: Sequence[str],
             settings: Sequence[str], out: Path) -> Section | None:
    """The Pareto set of a multi-objective search: ``pareto.csv``, ``pareto.png``, its metrics
    and a description naming the settings on the front; None without finished trials."""
    frame, columns, maximize = pareto_frame(runs, objectives, ways, settings)
    if frame.empty or len(columns) < 2:
        return None
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "pareto.csv", index=False)
    score, cost = columns[0], columns[1]
    steps = next((c for c in columns[2:] if c == "simulation.n_steps"), None)
    files = [out / "pareto.csv"]
    if frame[[score, cost]].notna().all(axis=1).any():
        files.append(draw_front(frame, (score, cost), (maximize[0], maximize[1]), steps,
                                settings, _reference(runs, score, maximize[0]), out / "pareto.png"))
    front = frame[frame["on_front"]].sort_values(columns[1:] + [columns[0]])
    head = ["settings", *columns]
    rows = [[setting_text(row, settings), *(f"{row[c]:.4g}" for c in columns)]
            for _, row in front.iterrows()]
    ways_text = ", ".join(f"{c} {'max' if m else 'min'}" for c, m in zip(columns, maximize))
    text = (f"**Pareto front**: {len(front)} of {len(frame)} trials are on it ({ways_text}); "
            f"pareto.csv has every trial, pareto.png the figure.\n\n"
            + markdown_table(head, rows))
    html = (f"<p>{len(front)} of {len(frame)} trials are on the front ({report_html.esc(ways_text)}"
            f").</p>" + report_html.table(head, rows))
    return Section(text, ("Pareto front", html), files,
                   {"pareto/trials": float(len(frame)), "pareto/front_size": float(len(front))})


# --------------------------------------------------------------------------------- seed spread
def spread_frame(runs: list[Run]) -> pd.DataFrame:
    """``metric, n, mean, sd, ci_low, ci_high`` over the finished ``runs`` for each headline
    metric they logged (:func:`framework.app.compare.spread_table`)."""
    done = [r for r in runs if r.info.status == "FINISHED"]
    keys = {k for r in done for k in r.data.metrics}
    return spread_table({k: [r.data.metrics.get(k, float("nan")) for r in done] for k in keys})


def seed_spread(client: Client, runs: list[Run], out: Path) -> Section | None:
    """Each headline metric over the seeds: ``spread.csv``, ``spread/<metric>/*`` metrics, a
    description table; and each neuron's preferred-direction spread where the seeds share
    weights. None with fewer than two finished runs."""
    done = [r for r in runs if r.info.status == "FINISHED"]
    if len(done) < 2:
        return None
    table = spread_frame(done)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "spread.csv", index=False)
    files = [out / "spread.csv"]
    metrics = {f"spread/{row['metric']}/{col}": float(row[src]) for _, row in table.iterrows()
               for col, src in (("mean", "mean"), ("sd", "sd"), ("ci_low", "ci_low"),
                                ("ci_high", "ci_high")) if math.isfinite(float(row[src]))}
    head = ["metric", "n", f"mean [{LEVEL:.0%} interval]"]
    rows = [[row["metric"], str(int(row["n"])), interval_text(row)] for _, row in table.iterrows()]
    text = (f"**Over {len(done)} seeds**: mean [{LEVEL:.0%} Student t interval of the mean] "
            f"(spread.csv)\n\n" + markdown_table(head, rows))
    html = report_html.table(head, rows, numbers=False)
    pd_section = pd_spread(client, done, out)
    if pd_section is not None:
        text += "\n\n" + pd_section.markdown
        html += pd_section.html[1]
        files += pd_section.files
        metrics.update(pd_section.metrics)
    return Section(text, (f"Over {len(done)} seeds", html), files, metrics)


def _neuron_tables(client: Client, runs: list[Run], tmp: Path) -> list[pd.DataFrame]:
    """Each run's ``neurons.csv`` (runs without one are left out)."""
    import pandas as pd

    tables = []
    for run in runs:
        try:
            local = client.download_artifacts(run.info.run_id, "neurons.csv",
                                              str(tmp / run.info.run_id))
            tables.append(pd.read_csv(local))
        except Exception:  # noqa: BLE001 - a run without the table says nothing of the spread
            continue
    return tables


def shared_weights(tables: list[pd.DataFrame]) -> bool:
    """Whether the runs' analysed neurons are the same neurons: same ``(layer, neuron)`` rows
    with equal ``gain`` and ``bias`` (a loaded model: the seed changes the split and the
    simulation, not the weights)."""
    if len(tables) < 2 or any(not {"layer", "neuron", "gain", "bias", "pd_deg"} <= set(t)
                              for t in tables):
        return False
    keyed = [t.sort_values(["layer", "neuron"]).reset_index(drop=True) for t in tables]
    first = keyed[0]
    return all(len(t) == len(first) and (t[["layer", "neuron"]] == first[["layer", "neuron"]])
               .all(axis=None) and np.allclose(t[["gain", "bias"]].to_numpy(float),
                                               first[["gain", "bias"]].to_numpy(float))
               for t in keyed[1:])


def pd_spread(client: Client, runs: list[Run], out: Path) -> Section | None:
    """Each neuron's preferred direction over seeds (circular mean and sd of ``pd_deg``, degrees)
    when the runs share weights; ``pd_spread.csv`` and ``spread/pd_sd_deg_median``."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="spiketune-spread-") as tmp:
        tables = _neuron_tables(client, runs, Path(tmp))
    if len(tables) != len(runs) or not shared_weights(tables):
        return None
    both = pd.concat(tables)
    rows = []
    for (layer, neuron), g in both.groupby(["layer", "neuron"], sort=True):
        mean, sd = circular_spread(g["pd_deg"])
        rows.append({"layer": layer, "neuron": neuron, "n": int(g["pd_deg"].notna().sum()),
                     "pd_mean_deg": mean, "pd_sd_deg": sd})
    table = pd.DataFrame(rows)
    table.to_csv(out / "pd_spread.csv", index=False)
    median = float(np.nanmedian(table["pd_sd_deg"])) if table["pd_sd_deg"].notna().any() \
        else float("nan")
    if not math.isfinite(median):
        return None
    text = (f"Preferred directions (the seeds share weights): each neuron's circular sd over "
            f"seeds, median {median:.3g}° over {len(table)} neurons (pd_spread.csv).")
    return Section(text, ("", f"<p>{report_html.esc(text)}</p>"), [out / "pd_spread.csv"],
                   {"spread/pd_sd_deg_median": median})
