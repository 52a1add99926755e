"""Small costs users feel: rejecting a bad config, fitting tuning curves, a default run's memory.

* time to reject a bad config: ``python -m framework simulation.n_steps=0`` end to end (process
  start to exit code 2), and ``prevalidate`` alone in a warm process;
* tuning-fit time: ``plugins.tuning.fit_cosine`` on 10,000 neurons × 300 trials in 8 directions
  (skipped if the tuning plugin is missing);
* peak memory: ``ru_maxrss`` of one default run (``python -m framework``, training cache off, its
  own store), with its wall time.

    .venv/bin/python benchmarks/footprint.py [--skip-run]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from common import REPO, Timer, machine, median

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def reject_seconds(repeats: int = 5) -> tuple[float, float]:
    """(median end-to-end seconds of a refused command, median in-process prevalidate seconds)."""
    from framework.app.cli import prevalidate
    from framework.errors import UserError

    walls = []
    for _ in range(repeats):
        with Timer() as t:
            proc = subprocess.run([sys.executable, "-m", "framework", "simulation.n_steps=0"],
                                  cwd=str(REPO), capture_output=True, text=True, env=ENV)
        assert proc.returncode == 2, proc.stderr
        walls.append(t.s)
    try:
        prevalidate(["simulation.n_steps=0"])  # warm: imports and plugin discovery
    except UserError:
        pass
    inproc = []
    for _ in range(repeats):
        with Timer() as t:
            try:
                prevalidate(["simulation.n_steps=0"])
            except UserError:
                pass
        inproc.append(t.s)
    return median(walls), median(inproc)


def tuning_fit_seconds(neurons: int = 10_000, trials: int = 300, repeats: int = 5):
    """Median seconds of one vectorised cosine fit, or None without the tuning plugin."""
    try:
        from plugins.tuning import fit_cosine
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    directions = np.repeat(np.arange(8) * 45.0, trials // 8)
    theta = np.deg2rad(directions)[:, None]
    pd = rng.uniform(0, 2 * np.pi, neurons)
    rates = 20 + 15 * np.cos(theta - pd) + rng.normal(0, 5, (len(directions), neurons))
    fit_cosine(rates, directions)  # warm
    times = []
    for _ in range(repeats):
        with Timer() as t:
            fit = fit_cosine(rates, directions)
        times.append(t.s)
    err = np.abs((np.deg2rad(fit.pd_deg) - pd + np.pi) % (2 * np.pi) - np.pi)
    return median(times), float(np.rad2deg(np.median(err)))


def default_run_memory() -> tuple[float, float]:
    """(peak resident memory in MB, wall seconds) of one default run in its own process."""
    tmp = tempfile.mkdtemp(prefix="spiketune-footprint-")
    args = [sys.executable, "-m", "framework", "training.cache=false",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"hydra.run.dir={tmp}/hydra"]
    with Timer() as t:
        proc = subprocess.Popen(args, cwd=str(REPO), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    return usage.ru_maxrss / 1024.0, t.s  # Linux reports kilobytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip-run", action="store_true", help="skip the default run (memory)")
    args = p.parse_args()
    print(f"machine: {machine()}", flush=True)
    wall, inproc = reject_seconds()
    print(f"reject a bad config: {wall:.2f} s end to end (process start to exit 2), "
          f"{inproc * 1000:.0f} ms in a warm process", flush=True)
    tuning = tuning_fit_seconds()
    if tuning is None:
        print("tuning fit: skipped (plugins/tuning.py missing)")
    else:
        print(f"tuning fit, 10,000 neurons × 300 trials: {tuning[0] * 1000:.0f} ms "
              f"(median PD error {tuning[1]:.2f}°)", flush=True)
    if not args.skip_run:
        mb, s = default_run_memory()
        print(f"default run: peak RSS {mb:.0f} MB, {s:.0f} s wall")
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
