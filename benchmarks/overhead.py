"""Framework overhead: the default experiment through spiketune against a hand-written NengoDL
script.

Both do the same work on the same machine in the same process, interleaved (hand, spiketune, ...)
so that load from other users hits them alike:

* data: synthetic center-out reaching, 8 directions × 150 trials, 8 cosine-tuned channels, 25% test;
* a Keras 8-64-64-2 ReLU network, converted to LIF (scale_firing_rates 100) and trained in NengoDL
  through the LIF rate approximation: 60 epochs, batch 32, Adam 0.01, MSE on (cos θ, sin θ);
* a rate evaluation (LIFRate, one step) and a spiking evaluation (100 steps, synapse 0.01,
  minibatch 200, read-out the mean of the last 20 steps) with probes on both hidden layers;
* firing-rate statistics and cosine tuning fits (least squares per neuron on per-direction means);
* MLflow (sqlite): a run with a few params and metrics.

The script sets ``stateful=False`` as spiketune does (NengoDL's default keeps state between calls,
which costs time and which neither needs), so the ratio measures the framework, not a setting.

spiketune runs ``framework.pipeline.run`` on the default config with the training cache off, with
plots on and off, and once with only the analyses the script does (``analysis=[firing,tuning]``).
The printed ratios are spiketune's wall time over the script's (target ≤ 1.2).

    .venv/bin/python benchmarks/overhead.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import Timer, compose, machine, median

SEED = 0
N_DIR, TRIALS, CHANNELS, NOISE = 8, 150, 8, 0.3
EPOCHS, BATCH, LR, SCALE = 60, 32, 0.01, 100.0
STEPS, SYNAPSE, MINIBATCH, READOUT = 100, 0.01, 200, 20


def reach_data(seed: int):
    """Cosine-tuned channels for center-out reaches; a 75/25 split, standardised on training."""
    rng = np.random.default_rng(seed)
    deg = np.repeat(np.arange(N_DIR) * 360.0 / N_DIR, TRIALS)
    theta = np.deg2rad(deg)
    pd, base, depth = (rng.uniform(0, 2 * np.pi, CHANNELS), rng.uniform(1, 2, CHANNELS),
                       rng.uniform(0.5, 1, CHANNELS))
    x = base + depth * np.cos(theta[:, None] - pd) + NOISE * depth * rng.standard_normal(
        (len(deg), CHANNELS))
    y = np.stack([np.cos(theta), np.sin(theta)], 1).astype(np.float32)
    order = rng.permutation(len(deg))
    n_test = len(deg) // 4
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    mean, sd = x[train].mean(0), x[train].std(0)
    x = ((x - mean) / sd).astype(np.float32)
    return x[train], y[train], x[test], y[test], deg[test]


def pad(x: np.ndarray, multiple: int) -> np.ndarray:
    extra = (-len(x)) % multiple
    return np.concatenate([x, x[:extra]]) if extra else x


def handwritten(uri: str, params_dir: Path) -> dict[str, float]:
    """What a NengoDL user would write by hand for the same experiment."""
    import nengo
    import nengo_dl
    import tensorflow as tf
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    x_tr, y_tr, x_te, y_te, dir_te = reach_data(SEED)
    tf.keras.utils.set_random_seed(SEED)
    inp = tf.keras.Input((CHANNELS,))
    h = tf.keras.layers.Dense(64, activation=tf.nn.relu)(inp)
    h = tf.keras.layers.Dense(64, activation=tf.nn.relu)(h)
    out = tf.keras.layers.Dense(2)(h)
    model = tf.keras.Model(inp, out)
    hidden = model.layers[1:3]

    def convert(neuron, synapse):
        conv = nengo_dl.Converter(model, swap_activations={tf.nn.relu: neuron},
                                  scale_firing_rates=SCALE, synapse=synapse)
        conv.net.seed = SEED
        with conv.net:  # no state carried between calls: what spiketune sets, and faster
            nengo_dl.configure_settings(stateful=False)
        return conv, conv.inputs[inp], conv.outputs[out]

    # train through the LIF rate approximation
    t0 = time.perf_counter()
    conv, i_node, o_probe = convert(nengo.LIF(), None)
    xt, yt = pad(x_tr, BATCH)[:, None], pad(y_tr, BATCH)[:, None]
    with nengo_dl.Simulator(conv.net, minibatch_size=BATCH, seed=SEED, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(LR), loss={o_probe: tf.losses.mse})
        sim.fit({i_node: xt}, {o_probe: yt}, epochs=EPOCHS, verbose=0)
        sim.save_params(str(params_dir / "params"))

    t_train = time.perf_counter() - t0
    # rate evaluation: one step of the LIFRate network
    t0 = time.perf_counter()
    conv, i_node, o_probe = convert(nengo.LIFRate(), None)
    with nengo_dl.Simulator(conv.net, minibatch_size=MINIBATCH, seed=SEED,
                            progress_bar=False) as sim:
        sim.load_params(str(params_dir / "params"))
        rate_out = sim.predict({i_node: pad(x_te, MINIBATCH)[:, None]}, verbose=0)[o_probe]
    rate_out = rate_out[: len(x_te), -1]

    # spiking evaluation with probes on the hidden neurons
    conv, i_node, o_probe = convert(nengo.LIF(), SYNAPSE)
    with conv.net:
        probes = [nengo.Probe(conv.layers[layer]) for layer in hidden]
    xs = np.repeat(pad(x_te, MINIBATCH)[:, None], STEPS, axis=1)
    outs, rates = [], [[] for _ in probes]
    with nengo_dl.Simulator(conv.net, minibatch_size=MINIBATCH, seed=SEED,
                            progress_bar=False) as sim:
        sim.load_params(str(params_dir / "params"))
        for b in range(len(xs) // MINIBATCH):
            res = sim.predict_on_batch({i_node: xs[b * MINIBATCH:(b + 1) * MINIBATCH]})
            outs.append(res[o_probe][:, -READOUT:].mean(axis=1))
            for k, p in enumerate(probes):
                rates[k].append(res[p].mean(axis=1) * SCALE)  # amplitude 1/scale → Hz
    t_sim = time.perf_counter() - t0
    spk_out = np.concatenate(outs)[: len(x_te)]
    hz = np.concatenate([np.concatenate(r)[: len(x_te)] for r in rates], axis=1)

    # metrics, firing statistics and cosine fits on the per-direction means
    def angle_err(o):
        pred = np.rad2deg(np.arctan2(o[:, 1], o[:, 0]))
        return float(np.mean(np.abs((pred - dir_te + 180) % 360 - 180)))

    dirs, idx = np.unique(dir_te, return_inverse=True)
    means = np.stack([hz[idx == k].mean(0) for k in range(len(dirs))])
    t = np.deg2rad(dirs)
    design = np.stack([np.ones_like(t), np.cos(t), np.sin(t)], 1)
    coef = np.linalg.lstsq(design, means, rcond=None)[0]
    resid = means - design @ coef
    ss = ((means - means.mean(0)) ** 2).sum(0)
    r2 = np.where(ss > 0, 1 - (resid ** 2).sum(0) / np.where(ss > 0, ss, 1), np.nan)
    metrics = {"rate/mse": float(np.mean((rate_out - y_te) ** 2)),
               "spiking/mse": float(np.mean((spk_out - y_te) ** 2)),
               "spiking/angle_error_deg": angle_err(spk_out),
               "firing/mean_rate_hz": float(hz.mean()), "firing/max_rate_hz": float(hz.max()),
               "firing/silent_fraction": float(np.mean(hz.mean(0) < 0.1)),
               "tuning/median_r2": float(np.nanmedian(r2)),
               "time/train_s": t_train, "time/simulate_s": t_sim}

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("hand")
    exp_id = exp.experiment_id if exp else client.create_experiment("hand")
    run = client.create_run(exp_id)
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id,
                     params=[Param("epochs", str(EPOCHS)), Param("n_steps", str(STEPS))],
                     metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    return metrics


def spiketune(uri: str, extra: list[str]) -> dict[str, float]:
    from framework.pipeline import run
    from framework.progress import Console

    cfg = compose(["training.cache=false", f"tracking.uri={uri}", *extra])
    return run(cfg, console=Console(quiet=True)).metrics


def main() -> None:
    # the summary, which the docstring wraps over two lines, joined back into one
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from framework import quiet

    quiet.tensorflow()  # imports happen once, before any timing
    import mlflow.tracking  # noqa: F401

    from framework.tracking.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="spiketune-overhead-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    open_store(uri)  # the store's creation is not part of either side
    variants = {
        "hand-written NengoDL": lambda: handwritten(uri, tmp),
        "spiketune default, plots on": lambda: spiketune(uri, []),
        "spiketune default, plots off": lambda: spiketune(uri, ["tracking.plots=false"]),
        "spiketune firing+tuning, plots off": lambda: spiketune(
            uri, ["tracking.plots=false", "analysis=[firing,tuning]"]),
    }
    print(f"machine: {machine()}", flush=True)
    with Timer() as warm:  # first-call costs (Keras, tf.function machinery) paid once, untimed
        handwritten(uri, tmp)
    print(f"warm-up (hand-written, untimed): {warm.s:.1f} s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    metrics: dict[str, dict] = {}
    for r in range(args.repeats):
        for name, fn in variants.items():
            with Timer() as t:
                metrics[name] = fn()
            times[name].append(t.s)
            print(f"  repeat {r + 1}: {name:<36} {t.s:6.1f} s", flush=True)
    hand = median(times["hand-written NengoDL"])
    print("\n| variant | median s | runs (s) | ratio to hand-written |\n| --- | --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {median(ts):.1f} | {', '.join(f'{t:.1f}' for t in ts)} | "
              f"{median(ts) / hand:.2f} |")
    keys = ["spiking/mse", "spiking/angle_error_deg", "firing/mean_rate_hz", "tuning/median_r2"]
    print("\nsame work, similar numbers (last repeat):")
    for name, m in metrics.items():
        print(f"  {name:<36} " + ", ".join(f"{k} {m.get(k, float('nan')):.3g}" for k in keys))
    print("\nstage times (last repeat, s):")
    for name, m in metrics.items():
        print(f"  {name:<36} " + json.dumps({k: round(v, 1) for k, v in m.items()
                                              if k.startswith("time/")}))
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
