"""The conversion frontier of networks trained elsewhere: spiking score against mean rate and steps,
for each conversion method, on the same held-out trials.

The networks are benchmarks/conversion_gap.py's, trained in Keras 3 and loaded with
``model=keras_file model.train=false`` (the digits conv net; the seed thread's EMG classifier on
rectified EMG in microvolts), run as spiking ReLU (a loaded ReLU model's default neuron). Methods:

* ``percentile`` at 400 Hz: today's default for a loaded model (``normalize=auto``), and at 1000 Hz;
* ``mean_rate`` at 20, 50, 100 Hz: each layer scaled so its mean rate on the training inputs is
  the target;
* ``+ calibrate``: then Li et al. 2021's bias calibration on 256 training samples;
* ``+ half``: and every membrane voltage starting at half the spiking voltage;
* ``+ fitted read-out``: the read-out window chosen on 256 training samples
  (``simulation.readout=fitted``, a loaded model's default since 2026-12-07).

Each row: the Keras model's held-out score, the spiking score and mean rate (Hz) at 25, 50, 100
steps (dt = 1 ms, synapse 10 ms, read-out the mean of the last fifth unless fitted). Scores, not
timings.

    .venv/bin/python benchmarks/frontier.py [--steps 25,50,100] [--nets digits,emg]
        [--methods <part of a method's name>] [--out F]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import compose, machine
from conversion_gap import BASE, train_models

#: the last fifth of the steps, as every method read before the fitted read-out
LAST_FIFTH = ["simulation.readout=mean"]
FITTED = ["simulation.readout=fitted"]
METHODS = [
    ("percentile 400 Hz (today)",
     ["conversion.normalize=percentile", "conversion.max_rate_hz=400", *LAST_FIFTH]),
    ("percentile 1000 Hz", ["conversion.normalize=percentile", "conversion.max_rate_hz=1000",
                            *LAST_FIFTH]),
] + [
    (f"mean_rate {r} Hz{label}", ["conversion.normalize=mean_rate", f"conversion.mean_rate_hz={r}"]
     + extra)
    for r in (20, 50, 100)
    for label, extra in (("", LAST_FIFTH), (" + calibrate", ["conversion.calibrate=bias",
                                                              *LAST_FIFTH]),
                         (" + calibrate + half", ["conversion.calibrate=bias",
                                                  "conversion.initial_voltage=half", *LAST_FIFTH]),
                         (" + fitted read-out", FITTED))
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="25,50,100", help="simulation.n_steps values")
    parser.add_argument("--nets", default="digits,emg", help="of conversion_gap's networks")
    parser.add_argument("--methods", default="", help="only the methods whose name holds this")
    parser.add_argument("--out", default="", help="also write each row as a JSON line here")
    args = parser.parse_args()
    from framework import quiet

    quiet.tensorflow()
    from framework.pipeline import run
    from framework.progress import Console

    steps = [int(s) for s in args.steps.split(",")]
    out = open(args.out, "a") if args.out else None  # noqa: SIM115 (kept open for every row)
    with tempfile.TemporaryDirectory() as tmp:
        nets = train_models(Path(tmp))
        uri = f"sqlite:///{tmp}/mlflow.db"
        print(f"machine: {machine()}")
        print("| network | method | keras | " + " | ".join(
            f"{n} steps: spiking (mean Hz)" for n in steps) + " |")
        print("| --- | --- | --- |" + " --- |" * len(steps))
        for name in args.nets.split(","):
            key = "angle_error_deg" if name == "reach" else "accuracy"
            for label, extra in (m for m in METHODS if args.methods in m[0]):
                cells, keras = [], float("nan")
                for n in steps:
                    m = run(compose(BASE + nets[name] + [
                        "neuron=spiking_relu", f"tracking.uri={uri}", "tracking.log_model=false",
                        f"simulation.n_steps={n}"] + extra), console=Console(quiet=True)).metrics
                    keras = m[f"keras/{key}"]
                    cells.append(f"{m[f'spiking/{key}']:.3f} ({m['firing/mean_rate_hz']:.0f})")
                    if out:
                        out.write(json.dumps({"network": name, "method": label, "steps": n,
                                              **m}) + "\n")
                        out.flush()
                print(f"| {name} | {label} | {keras:.3f} | " + " | ".join(cells) + " |",
                      flush=True)
    if out:
        out.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
