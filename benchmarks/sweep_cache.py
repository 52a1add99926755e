"""Benchmark: an 8-point simulation-only sweep against one run (target: sweep ≤ 2.5 × one run).

    .venv/bin/python benchmarks/sweep_cache.py [--epochs 20] [--repeat 1]

Both are the real CLI in a fresh process, on a fresh MLflow store:

* one run: ``spiketune <base> training.cache=false`` — import TensorFlow, train, simulate, analyse;
* the sweep: ``spiketune -m <base> simulation.n_steps=25,50,100,200 simulation.synapse=0.005,0.01``
  with the basic launcher and an empty training cache: one process imports TensorFlow once, the
  first job trains and fills the cache, the other seven reuse the weights and only simulate; the
  sweep callback then counts the jobs and logs the comparison plots to the parent run.

The mean n_steps of the sweep (94) is close to the single run's default 100, so the ratio measures
what the sweep shares, not a lighter workload. Prints one JSON line with the wall times (s) and
the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["simulation.n_steps=25,50,100,200", "simulation.synapse=0.005,0.01"]
TARGET = 2.5  # sweep wall time / one run's, at most


def spiketune(args: list[str], env: dict[str, str]) -> float:
    """Wall time (s) of ``python -m framework args``; raises if it fails."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "framework", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"spiketune {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--repeat", type=int, default=1, help="measurements of each (best is kept)")
    args = p.parse_args()
    base = [f"training.epochs={args.epochs}", "tracking.plots=false"]
    single, sweep = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="spiketune-bench-") as tmp:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SPIKETUNE_CACHE_DIR=f"{tmp}/cache")
            single.append(spiketune([*base, "training.cache=false",
                                     f"tracking.uri=sqlite:///{tmp}/one.db"], env))
            sweep.append(spiketune(["-m", *base, *SWEEP, f"tracking.uri=sqlite:///{tmp}/sweep.db",
                                    f"hydra.sweep.dir={tmp}/sweep"], env))
    one, eight = min(single), min(sweep)
    print(json.dumps({"benchmark": "sweep_cache", "epochs": args.epochs, "jobs": 8,
                      "one_run_s": round(one, 1), "sweep_s": round(eight, 1),
                      "ratio": round(eight / one, 2), "target": TARGET,
                      "ok": eight / one <= TARGET, "cpus": os.cpu_count(),
                      "load_avg_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
