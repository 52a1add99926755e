"""What a run says when it ends: the summary table and UI links on the terminal, the run's name,
its description in MLflow (``mlflow.note.content``) and its ``report.html``."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framework import health, plugin_host, report_html
from framework.analysis import ANALYSES
from framework.config import register, to_flat_params, validate
from framework.data.base import Data
from framework.health import Finding
from framework.neurons import is_spiking
from framework.paths import CONF, default_uri
from framework.progress import Console, table
from framework.tracking.links import REPORT, UI_DEFAULT, markdown_table, ui_base, ui_links
from framework.tracking.store import Tracker, open_store

#: metrics shown in the end-of-run summary, in this order, when the run has them
SUMMARY_KEYS = ["keras/accuracy", "rate/accuracy", "spiking/accuracy", "keras/mse", "rate/mse",
                "spiking/mse", "keras/angle_error_deg", "rate/angle_error_deg",
                "spiking/angle_error_deg", "firing/mean_rate_hz",
                "firing/max_rate_hz", "firing/silent_fraction", "threshold/x_intercept_median",
                "firing/saturated_fraction", "tuning/directional_fraction",
                "tuning/cosine_fraction", "tuning/median_r2", "tuning/pv_angle_error_deg",
                "tuning/ole_angle_error_deg", "cost/synops_per_sample",
                "time/total_s"]
#: a run's cost metrics (plugins/cost.py) shown in every headline table when the run logged them,
#: formatted with their units (:func:`shown`): operations and energy per test sample
COST_KEYS = ("cost/synops_per_sample",)
ENERGY = ("cost/energy_", "_j")  # cost/energy_<device>_j, J per sample


#: summary labels where a metric's name alone misleads: ``firing/max_rate_hz`` is the highest
#: neuron's mean rate, not ``neurons.csv``'s analytic ``max_rate_hz`` at x = 1
LABELS = {"firing/max_rate_hz": "firing/max_rate_hz (highest neuron mean)",
          "firing/mean_rate_hz": "firing/mean_rate_hz (over neurons)"}


#: shorter words for the keys a run name most often carries (``lr=1e6``, ``scale=20``)
SHORT_KEYS = {"learning_rate": "lr", "scale_firing_rates": "scale", "n_steps": "steps",
              "readout_steps": "readout", "trials_per_direction": "trials"}
#: keys that say where a run is recorded or kept, not what it is: never in its name
UNNAMED = ("tracking.", "hydra.", "paths.", "limits.")


def hydra_job() -> tuple[list[str], set[str]]:
    """The job's task overrides and its config groups (Hydra's choices); empty outside Hydra (a
    Python caller)."""
    with contextlib.suppress(Exception):
        from hydra.core.hydra_config import HydraConfig  # only inside a Hydra job

        hc = HydraConfig.get()
        return [str(o) for o in hc.overrides.task], set(hc.runtime.choices.keys())
    return [], set()


def label(overrides: list[str], groups: set[str]) -> str:
    """What a run was given, short, most telling first: the preset, then the other groups'
    choices by value, then keys by their last word (``georgopoulos lif scale=20``)."""
    preset, chosen, keys = [], [], []
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        if key.startswith(UNNAMED) or key.startswith("~"):
            continue
        if key == "experiment":
            preset.append(value)
        elif key in groups:
            chosen.append(value)
        else:
            last = key.rsplit(".", 1)[-1]
            keys.append(f"{SHORT_KEYS.get(last, last)}={value}")
    return " ".join(preset + chosen + keys)


def run_name(cfg: Any, tags: dict[str, Any] | None = None, uri: str = "") -> str:
    """``tracking.run_name``; else a sweep job's name, what the job changed (``lif n_steps=50``,
    :func:`framework.app.sweep_records.job_label`, in ``tags``); else what the run was given
    (:func:`label`: ``georgopoulos``, ``lr=1e6``), or ``<dataset>-<model>-<neuron>`` when it was
    given nothing, made unique within the experiment at ``uri`` (``lr=1e6 (2)``)."""
    if cfg.tracking.run_name:
        return str(cfg.tracking.run_name)
    if tags and tags.get("mlflow.runName"):
        return str(tags["mlflow.runName"])
    name = label(*hydra_job()) or f"{cfg.dataset.name}-{cfg.model.name}-{cfg.neuron.name}"
    return unique(name[:200], uri, cfg.tracking.experiment) if uri else name[:200]


def unique(name: str, uri: str, experiment: str) -> str:
    """``name``, or ``name (n)`` with the first ``n`` no run of ``experiment`` has yet."""
    try:
        client = open_store(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return name
        quoted = name.replace("'", "\\'")
        taken = {r.info.run_name for r in client.search_runs(
            [exp.experiment_id], f"attributes.run_name LIKE '{quoted}%'", max_results=1000)}
    except Exception:  # noqa: BLE001 - a name is never worth a failure; the store's own errors
        return name  # come from the Tracker that opens it next, naming the key
    n = 1
    while (f"{name} ({n})" if n > 1 else name) in taken:
        n += 1
    return f"{name} ({n})" if n > 1 else name


#: the devices a summary names: the Keras model on a CPU and a GPU beside the spiking network on
#: Loihi (every device's estimate is a metric and in docs/cost.md)
SUMMARY_DEVICES = ("cpu", "gpu", "loihi")


def energy_keys(metrics: Any) -> list[str]:
    """``cost/energy_<device>_j`` keys of ``metrics`` (J per sample) for
    :data:`SUMMARY_DEVICES`, in that order."""
    return [k for d in SUMMARY_DEVICES if (k := f"{ENERGY[0]}{d}{ENERGY[1]}") in metrics]


def summary_keys(metrics: Any) -> list[str]:
    """:data:`SUMMARY_KEYS` the run has, its energy estimates after the operations."""
    keys = [k for k in SUMMARY_KEYS if k in metrics]
    at = keys.index("time/total_s") if "time/total_s" in keys else len(keys)
    return keys[:at] + energy_keys(metrics) + keys[at:]


def shown(key: str, value: float) -> str:
    """``value`` of metric ``key`` as a reader wants it: operations per sample as a count, energy
    in J with an SI prefix (``2.31 µJ/sample``), else 4 significant digits."""
    if key.startswith(ENERGY[0]) and key.endswith(ENERGY[1]):
        for factor, prefix in ((1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p")):
            if abs(value) * factor >= 1.0 or prefix == "p":
                return f"{value * factor:.3g} {prefix}J/sample"
    if key in COST_KEYS:
        return f"{value:,.0f} ops/sample" if abs(value) >= 100 else f"{value:.3g} ops/sample"
    return f"{value:.4g}"


def summary(console: Console, tracker: Tracker, metrics: dict[str, float], ui: str = "",
            found: list[Finding] | None = None) -> None:
    """The end-of-run summary: the headline metrics, the verdict, and the UI links."""
    regs = sorted(k for k in metrics if k.startswith("reg/") and k.count("/") == 2)
    rows = [(LABELS.get(k, k), shown(k, metrics[k])) for k in summary_keys(metrics) + regs]
    console.say(table(rows, "summary"))
    for line in verdict_lines(found) if found is not None else []:
        console.say(line)
    console.say(f"run {tracker.run_id} FINISHED in {tracker.uri}")
    ui = ui or ui_base("", tracker.uri)
    if tracker.uri.startswith(("http://", "https://")):
        serve = "the tracking server"
    else:
        serve = "spiketune-ui" + ("" if tracker.uri == default_uri() else f" --uri {tracker.uri}")
        if ui != UI_DEFAULT:
            serve = f"{serve} (or your own server at {ui})"
    links = tracker.links(ui)
    console.say(f"MLflow UI, served by {serve}:")
    console.say(f"  run         {links['run']}")
    console.say(f"  report      {links['report']}")
    if "sweep" in links:
        console.say(f"  sweep runs  {links['sweep']}")
    console.say(f"  all runs    {links['runs']}")


#: headline metrics of a run's description, at most this many
DESCRIBE_KEYS = 10
#: what a run found, most telling first: its scores, then its rates and tuning
HEADLINE = [k for k in SUMMARY_KEYS if k.split("/")[0] in ("keras", "rate", "spiking")] + [
    "firing/mean_rate_hz", "tuning/directional_fraction", "tuning/cosine_fraction",
    "tuning/pv_angle_error_deg", "firing/saturated_fraction", "firing/silent_fraction"]


def result(metrics: dict[str, float], found: list[Finding]) -> str:
    """The run's finding in one short line (the ``spiketune.result`` tag, a runs-table column):
    its scores, its mean rate and its verdict (``spiking/angle_error_deg 5.6 | rate 3.2 | 26 Hz |
    ok``)."""
    name = health.score_key(metrics) or ""
    scores = [f"{kind}/{name}" for kind in ("spiking", "rate", "keras")
              if f"{kind}/{name}" in metrics]
    words = [f"{scores[0]} {metrics[scores[0]]:.3g}"] if scores else []
    words += [f"{k.split('/')[0]} {metrics[k]:.3g}" for k in scores[1:]]
    if "firing/mean_rate_hz" in metrics:
        words.append(f"{metrics['firing/mean_rate_hz']:.3g} Hz")
    return " | ".join(words + [health.verdict(found)])


def describe(obj: Any, tracker: Tracker, metrics: dict[str, float],
             error: str | None = None, found: list[Finding] | None = None) -> str:
    """The run's description (``mlflow.note.content``, Markdown): what ran, on what, and its
    headline metrics (the summary's first :data:`DESCRIBE_KEYS`), or the error it ended with."""
    what = [f"dataset `{obj.dataset.name}`", f"model `{obj.model.name}`",
            f"neuron `{obj.neuron.name}`"]
    if obj.model.reads_data:  # a converted network: trained (or not), simulated for n steps
        trains = obj.model.trains()
        what += [f"{obj.training.epochs} epochs" if trains else "not trained (model.train=false)",
                 f"{obj.simulation.n_steps} steps of {obj.simulation.dt * 1e3:g} ms",
                 "synapse " + ("none" if obj.simulation.synapse is None
                               else f"{obj.simulation.synapse * 1e3:g} ms")]
    overrides = given_overrides(tracker)
    text = f"**{tracker.run_name}**: " + ", ".join(what) + "."
    if metrics and found is not None:  # the answer on the line the collapsed view shows
        text += f" **{result(metrics, found)}**"
    if overrides is not None:
        text += "\n\n`" + f"spiketune {overrides}".strip() + "`"
    if error:
        return text + f"\n\n**FAILED**: {error}"
    rows = [[k, f"{metrics[k]:.4g}"] for k in HEADLINE if k in metrics][:DESCRIBE_KEYS]
    rows += [[k, shown(k, metrics[k])] for k in [*COST_KEYS, *energy_keys(metrics)]
             if k in metrics]
    if "time/total_s" in metrics:
        rows.append(["time/total_s", f"{metrics['time/total_s']:.1f}"])
    head = "" if found is None else "\n\n" + verdict_markdown(found)
    return text + head + "\n\n" + markdown_table(["metric", "value"], rows)


def given_overrides(tracker: Tracker) -> str | None:
    """The overrides the run was given (a sweep job's tag, else Hydra's task overrides); ``None``
    outside Hydra (a Python caller)."""
    overrides = tracker.tags.get("spiketune.overrides")
    if overrides is None:
        with contextlib.suppress(Exception):  # outside Hydra (a Python caller) there are none
            from hydra.core.hydra_config import HydraConfig  # only inside a Hydra job

            overrides = " ".join(HydraConfig.get().overrides.task)
    return overrides


#: the default config's flat params per conf folder and plugin set, composed once per process
#: (0.1-0.4 s each)
_DEFAULTS: dict[str, dict[str, str]] = {}


def defaults_diff(cfg: Any) -> list[list[str]] | None:
    """``[key, this run's value, the default's]`` for every leaf of the composed config ``cfg``
    that differs from the default config (``conf/config.yaml`` with no overrides), both as
    composed and validated (an ``auto`` stays ``auto``: config.yaml holds what the data made of
    it); ``None`` when the defaults cannot be composed."""
    try:
        from hydra import compose, initialize_config_dir  # Hydra: composing, only here
        from hydra.core.global_hydra import GlobalHydra
        from omegaconf import OmegaConf

        # the same in every run of a process (a sweep's jobs) with the same plugins
        which = f"{CONF} {' '.join(sorted(ANALYSES.names()))}"
        if which not in _DEFAULTS:
            register()
            if GlobalHydra.instance().is_initialized():  # inside the CLI's Hydra job
                default = compose("config")
            else:
                with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                    default = compose("config")
            _DEFAULTS[which] = to_flat_params(OmegaConf.structured(validate(default)))
        base = _DEFAULTS[which]
        mine = to_flat_params(OmegaConf.structured(validate(cfg)))
    except Exception:  # noqa: BLE001 - the report says the overrides instead
        return None
    return [[key, value, base.get(key, "(none)")] for key, value in mine.items()
            if base.get(key) != value]


def headline_rows(metrics: dict[str, float]) -> list[list[str]]:
    """The summary's metrics the run has, labelled, at 4 significant digits."""
    return [[LABELS.get(k, k), shown(k, metrics[k])] for k in summary_keys(metrics)]


def finish(cfg: Any, obj: Any, tracker: Tracker, metrics: dict[str, float],
           found: list[Finding], scratch: Path) -> None:
    """A finished run's record: its description, its verdict tags, the figures the analyses
    drew (in the background, :func:`framework.plugin_host.drawing`, or into
    ``scratch/upload/plots``) as ``plots/``, and its ``report.html`` with them."""
    tracker.describe(describe(obj, tracker, metrics, found=found))
    verdict(tracker, found)
    tracker.tag("spiketune.result", result(metrics, found))
    plots = scratch / "upload" / "plots"
    drawn = plugin_host.drawing(scratch)
    if drawn is not None:
        t0 = time.perf_counter()
        plots = drawn.wait()
        # what the run waited for its figures after everything else was done, s
        tracker.metrics({"time/plots_wait_s": time.perf_counter() - t0})
        if plots.is_dir():
            tracker.artifact_dir(plots, "plots")
    page = html_report(cfg, obj, tracker, metrics, found, plots)
    tracker.artifact_text(page, REPORT)


def failed(cfg: Any, obj: Any, tracker: Tracker, error: str, console: Console,
           ui: str) -> None:
    """A failed run's record before it ends: its description and ``report.html`` with the
    error, and the links to both on the terminal; figures still being drawn are dropped."""
    plugin_host.stop_drawings()
    tracker.describe(describe(obj, tracker, {}, error=error))
    tracker.artifact_text(html_report(cfg, obj, tracker, {}, None, None, error), REPORT)
    links = tracker.links(ui)
    console.say(f"run {tracker.run_id} FAILED: {links['run']}")
    console.say(f"  report      {links['report']}")


def html_report(cfg: Any, obj: Any, tracker: Tracker, metrics: dict[str, float],
                found: list[Finding] | None, plots: Path | None, error: str | None = None) -> str:
    """The run's ``report.html`` (framework/report_html.py): verdict with remedies, headline
    table, key figures, and the overrides it was given (its difference from the defaults)."""
    diff = defaults_diff(cfg)
    if diff is None:  # the defaults could not be composed: the overrides given stand for it
        diff = [[*key.partition("=")[::2], ""] for key in (given_overrides(tracker) or "").split()]
    what = (f"dataset <code>{report_html.esc(obj.dataset.name)}</code>, model "
            f"<code>{report_html.esc(obj.model.name)}</code>, neuron "
            f"<code>{report_html.esc(obj.neuron.name)}</code>; run "
            f"<code>{tracker.run_id}</code>, experiment "
            f"<code>{report_html.esc(obj.tracking.experiment)}</code>")
    sections = [("Verdict", report_html.verdict_section(found, error)),
                ("Headline metrics", report_html.table(["metric", "value"],
                                                       headline_rows(metrics))
                 if metrics else ""),
                ("", report_html.figures_section(plots)),
                ("Config: what differs from the defaults",
                 report_html.table(["key", "this run", "default"], diff, numbers=False) if diff else
                 "<p>None: the default config (<code>config.yaml</code> holds it resolved).</p>")]
    return report_html.page(tracker.run_name, what, sections)


#: the key that sets the firing rates under each data-based normalisation
RATE_KEYS = {"mean_rate": "conversion.mean_rate_hz", "percentile": "conversion.max_rate_hz"}


def facts(obj: Any, data: Data | None, said: list[Finding]) -> health.Facts:
    """What the verdict's checks read besides the metrics (:class:`framework.health.Facts`)."""
    loaded = bool(obj.model.loaded or obj.model.start_params())
    sim = obj.simulation
    out = health.Facts(
        loaded=loaded, trained=bool(obj.model.reads_data and obj.model.trains()
                                    and obj.training.epochs > 0),
        held_out=bool(data is None or data.split_given or not loaded),
        spiking=is_spiking(obj.neuron.build()), dt=float(sim.dt), n_steps=int(sim.n_steps),
        # the ensemble measures each input's rate over the whole n_steps it is held
        readout_steps=int(sim.readout_steps if obj.model.reads_data and sim.readout_steps
                          else sim.n_steps), said=list(said))
    out.readout_s = out.readout_steps * out.dt
    normalize = obj.conversion.normalize
    out.rate_key = RATE_KEYS.get(str(getattr(normalize, "value", normalize)), out.rate_key)
    if data is not None:
        out.split_source = (f"spiketune's own {obj.dataset.test_fraction:g} split of "
                            f"{getattr(obj.dataset, 'path', '') or data.name}")
        if not hasattr(obj.dataset, "split"):  # only a user's file carries its own split
            out.split_keys = "dataset=file with dataset.split"
        if data.classification:
            out.chance_accuracy = float(np.bincount(data.y_test).max() / len(data.y_test))
        elif not data.has_directions:
            out.target_var = float(np.mean(np.var(data.y_test, axis=0)))
    return out


def verdict(tracker: Tracker, found: list[Finding]) -> str:
    """Tag the verdict: ``spiketune.health`` and one ``spiketune.health.<check>`` per finding
    (its line); returns ``ok`` or ``warn``."""
    word = health.verdict(found)
    tracker.tag("spiketune.health", word)
    for f in found:
        tracker.tag(f"spiketune.health.{f.check}", f.message)
    return word


def verdict_lines(found: list[Finding]) -> list[str]:
    """The verdict on the terminal: one line, then one per finding."""
    if not found:
        return ["verdict: ok (no check fired)"]
    return ([f"verdict: warn ({', '.join(f.check for f in found)})"]
            + [f"  {f.check}: {f.message}" for f in found])


def verdict_markdown(found: list[Finding]) -> str:
    """The verdict for the run's description: ``ok``, or each finding on its own line."""
    if not found:
        return "**Verdict: ok**: no check fired (framework/health.py)."
    lines = [f"**Verdict: warn** ({len(found)} check{'s' if len(found) > 1 else ''})"]
    lines += [f"- `{f.check}`: {f.message}" for f in found]
    return "\n".join(lines)


def best_child(runs: list[Any]) -> tuple[Any, str] | None:
    """The finished child with the best spiking score (else rate score), and that score's key."""
    for kind, name in [(kind, name) for kind in ("spiking", "rate") for name in health.SCORES]:
        key = f"{kind}/{name}"
        done = [r for r in runs if r.info.status == "FINISHED" and key in r.data.metrics]
        if done:
            sign = 1 if health.SCORES[name] else -1
            return min(done, key=lambda r: sign * r.data.metrics[key]), key
    return None


def child_verdict(run: Any) -> str:
    """A child's verdict as its tags say: ``ok``, ``warn (checks)``, or its status (a run
    without a verdict: FAILED, KILLED, or FINISHED by a caller that gave none)."""
    tags: dict[str, str] = run.data.tags
    if run.info.status != "FINISHED":
        return str(run.info.status)
    checks = sorted(k.removeprefix("spiketune.health.") for k in tags
                    if k.startswith("spiketune.health."))
    return tags.get("spiketune.health", "FINISHED") + (f" ({', '.join(checks)})" if checks
                                                        else "")


def sweep_report(name: str, head: str, varies: str, runs: list[Any], ui: str,
                 plots: Path | None, extra: Sequence[tuple[str, str, str]] = ()
                 ) -> tuple[str, str]:
    """A sweep parent's description (Markdown) and ``report.html``: every child's headline
    metrics (spiking and rate both), its verdict, the best setting and links to the children;
    ``extra`` sections ``(markdown, heading, html)`` (the Pareto front, the spread over seeds)
    after the best setting."""
    logged = set().union(*(r.data.metrics for r in runs))
    keys = [k for k in summary_keys(logged) if k != "time/total_s"]
    scores = [k for k in keys if k.split("/")[0] in ("keras", "rate", "spiking")]
    repeats = bool(varies) and all(w.startswith("seed=") for w in varies.split())
    best = None if repeats else best_child(runs)
    best_line = ("" if best is None else f"Best setting by `{best[1]}`: **"
                 f"{best[0].info.run_name}** ({best[0].data.metrics[best[1]]:.4g}).")
    if repeats:  # seeds are repeats of one setting: the best of them is luck, not a finding
        best_line = ("Only the seed varies: the children are repeats of one setting, so none is "
                     "best; their spread is the finding.")

    def row(r: Any, cols: list[str]) -> list[str]:
        return [r.info.run_name or r.info.run_id[:8], child_verdict(r),
                *(shown(k, r.data.metrics[k]) if k in r.data.metrics else "" for k in cols)]

    short = scores + [k for k in ("firing/mean_rate_hz", "tuning/directional_fraction")
                      if k in keys]
    text = (f"**{name}**: {head}\n\nSwept: `{varies or 'nothing'}`\n\n{best_line}\n\n"
            + "".join(f"{md}\n\n" for md, _, _ in extra)
            + markdown_table(["run", "verdict", *short], [row(r, short) for r in runs]))
    rows = [[report_html.link(ui_links(ui, r.info.experiment_id, r.info.run_id)["report"],
                              r.info.run_name or r.info.run_id[:8]), *row(r, keys)[1:]]
            for r in runs]
    sections = [("", f"<p>{report_html.esc(head)} Swept: <code>"
                 f"{report_html.esc(varies or 'nothing')}</code></p>"),
                ("Best setting", "<p>" + report_html.esc(best_line.replace("*", "").replace(
                    "`", "")) + "</p>" if best_line else ""),
                *((heading, html) for _, heading, html in extra),
                ("Children: headline metrics and verdicts (links open each child's report)",
                 report_html.table(["run", "verdict", *keys], rows)),
                ("", report_html.figures_section(plots))]
    return text, report_html.page(name, "a sweep's parent run", sections)
