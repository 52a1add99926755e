"""``spiketune --help``: the user-facing config groups, their options and the presets, read from
conf/ (file names and each preset's first comment line) without composing a config, so it prints
in a fraction of a second. ``--cfg job`` shows the composed config, ``--hydra-help`` Hydra's own
flags."""
from __future__ import annotations

from pathlib import Path

#: groups a user chooses from, in the order a run uses them (schema/* and tuned/ are internal)
USER_GROUPS = ["dataset", "model", "neuron", "experiment", "debug", "paths", "hydra/launcher",
               "hydra/sweeper"]

USAGE = """\
spiketune: train a Keras network, convert it to spiking neurons with NengoDL, analyse the neurons
and log everything to MLflow.

usage: spiketune [group=option ...] [key=value ...]        one run
       spiketune -m key=a,b,c [key2=x,y ...]                a sweep: one child run per job
       spiketune --cfg job [overrides]                      the composed config, validated
       spiketune --json ...                                 stdout: one JSON object per job
       spiketune --hydra-help                               Hydra's own flags
"""

EXAMPLES = """\
examples:
  spiketune neuron=threshold_lif neuron.threshold=0.5
  spiketune dataset=file dataset.path=emg.npz dataset.direction=direction model=keras_file \\
      model.path=model.keras dataset.split=split    (scored on its own held-out trials)
  spiketune -m neuron=lif,spiking_relu simulation.n_steps=50,100 hydra/launcher=parallel
  spiketune debug=smoke                                    a seconds-long check of the set-up

keys (every one typed and checked before TensorFlow loads; units in framework/config.py):
  seed, dataset.*, model.*, neuron.*, training.* (epochs, batch_size, learning_rate,
  x_intercepts, rates, biases), simulation.* (n_steps, dt, synapse, scale_firing_rates,
  readout, readout_steps), conversion.*, analysis=[firing,thresholds,tuning,...], analyses.<name>.*,
  tracking.* (uri, experiment, run_name, plots), paths.* (outputs, data, store, cache),
  tags=[...], objective=<metric>, health.* (the verdict's limits: saturated_max, silent_max,
  min_spikes, ...); dataset.split / dataset.test_path (your own held-out trials),
  dataset.bin_s (seconds per time bin of a sequence)
"""


def summary(path: Path, width: int = 78) -> str:
    """A preset's first sentence, from its header comment (Hydra directives left out), cut to
    ``width`` characters."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.startswith("@package"):
            continue
        if not body:
            if words:
                break
            continue
        words += body.split()
        if body.endswith(".") or ". " in body:
            break
    sentence = " ".join(words).split(". ")[0].rstrip(".:")
    return sentence if len(sentence) <= width else sentence[:width - 1].rstrip() + "…"


def options(conf: Path, group: str) -> list[Path]:
    folder = conf / group
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def text(conf: Path) -> str:
    """The help text for the config folder ``conf``."""
    lines = [USAGE, "config groups (group=option):"]
    for group in USER_GROUPS:
        found = options(conf, group)
        if not found:
            continue
        if group in ("experiment", "debug"):
            lines.append(f"  {group}:")
            width = max(len(p.stem) for p in found)
            lines += [f"    {p.stem:<{width}}  {summary(p, 94 - width)}" for p in found]
        else:
            names = ", ".join(p.stem for p in found)
            lines.append(f"  {group}: {names}")
    lines += ["", EXAMPLES]
    return "\n".join(lines)
