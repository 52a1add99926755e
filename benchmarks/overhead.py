"""Framework overhead: the default experiment through spiketune against a hand-written NengoDL
script.

Both do the same work on the same machine in the same process, interleaved (hand, spiketune, ...)
so that load from other users hits them alike. The default run (conf/tuned/reach_dense.yaml):

* data: the reach dataset's synthetic center-out reaches (8 directions × 150 trials, 8 EMG-like
  channels: 4 cosine, 2 axial, 2 untuned; ``framework.data.reach``, the same arrays on both
  sides), standardised on the training split, 25% test;
* a Keras 8-128-2 ReLU network, converted to LIF (scale_firing_rates 100) and trained in NengoDL
  through the LIF rate approximation: 60 epochs, batch 32, Adam 0.01, MSE on (cos θ, sin θ), plus
  a squared-hinge penalty (weight 1e-3) on the hidden neurons' mean rates outside [10, 80] Hz,
  and the hidden biases clipped into [1.1, 1.6] J after every batch;
* a rate evaluation (LIFRate, one step) and a spiking evaluation (200 steps, synapse 0.01,
  minibatch 200, read-out the mean of the last 40 steps) with a probe on the hidden layer;
* firing-rate statistics and cosine tuning fits (least squares per neuron on per-direction means);
* MLflow (sqlite): a run with a few params and metrics.

The script sets ``stateful=False`` as spiketune does (NengoDL's default keeps state between calls,
which costs time and which neither needs), so the ratio measures the framework, not a setting.

spiketune runs ``framework.pipeline.run`` on the default config with the training cache off: with
plots and report.html (the default: figures drawn in the run's process after the analyses), with
plots off, and once doing the script's work (:data:`SCRIPTS_WORK`); ``--worker`` adds the
default run with its figures drawn by a forked worker. The printed ratios are spiketune's wall
time over the script's (target: the default run, plots and report included, ≤ 1.1).

    .venv/bin/python benchmarks/overhead.py [--repeats 3] [--worker]
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
EPOCHS, BATCH, LR, SCALE, HIDDEN = 60, 32, 0.01, 100.0, 128
RATE_LOW, RATE_HIGH, RATE_WEIGHT = 10.0, 80.0, 1e-3  # Hz, Hz, per Hz²
BIAS_LOW, BIAS_HIGH = 1.1, 1.6  # J
STEPS, SYNAPSE, MINIBATCH, READOUT = 200, 0.01, 200, 40


#: spiketune doing what the script does and no more: the firing and tuning analyses without
#: figures, bootstrap intervals or a logged model (the shape fits and decoders still run)
SCRIPTS_WORK = ["tracking.plots=false", "analysis=[firing,tuning]", "analyses.tuning.bootstrap=0",
                "tracking.log_model=false"]


def reach_data(seed: int):
    """The reach dataset's arrays (the data is an input, not either side's work), standardised
    on the training split as a user would."""
    from framework.data.reach import ReachDataset

    data = ReachDataset().load(seed)
    mean, sd = data.x_train.mean(0), data.x_train.std(0)
    x_tr, x_te = ((x - mean) / sd for x in (data.x_train, data.x_test))
    return (x_tr.astype(np.float32), data.y_train.astype(np.float32), x_te.astype(np.float32),
            data.y_test.astype(np.float32), data.dir_test)


def pad(x: np.ndarray, multiple: int) -> np.ndarray:
    extra = (-len(x)) % multiple
    return np.concatenate([x, x[:extra]]) if extra else x


def bias_clipper(sim, neurons):
    """A Keras callback clipping ``neurons``' biases (J) after every batch: NengoDL keeps them in
    a slice of a trainable base variable."""
    import tensorflow as tf

    tsig = sim.tensor_graph.signals[sim.model.sig[neurons]["bias"]]
    base = sim.tensor_graph.base_params[tsig.key]
    idx = np.concatenate([np.arange(a, b, dtype=np.int32) for a, b in tsig.slices])[:, None]

    class Clip(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            base.scatter_nd_update(idx, tf.clip_by_value(tf.gather_nd(base, idx), BIAS_LOW,
                                                         BIAS_HIGH))

    return Clip()


def rate_penalty(y_true, y_pred):
    """Squared hinge on each neuron's mean rate (Hz) outside [RATE_LOW, RATE_HIGH]."""
    import tensorflow as tf

    r = tf.reduce_mean(y_pred, axis=(0, 1)) * SCALE  # amplitude 1/scale → Hz
    return tf.reduce_mean(tf.nn.relu(RATE_LOW - r) ** 2 + tf.nn.relu(r - RATE_HIGH) ** 2)


def handwritten(uri: str, params_dir: Path) -> dict[str, float]:
    """What a NengoDL user would write by hand for the same experiment."""
    import nengo
    import nengo_dl
    import tensorflow as tf
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    x_tr, y_tr, x_te, y_te, dir_te = reach_data(SEED)
    tf.keras.utils.set_random_seed(SEED)
    inp = tf.keras.Input((x_tr.shape[1],))
    h = tf.keras.layers.Dense(HIDDEN, activation=tf.nn.relu)(inp)
    out = tf.keras.layers.Dense(2)(h)
    model = tf.keras.Model(inp, out)
    hidden = model.layers[1]

    def convert(neuron, synapse):
        conv = nengo_dl.Converter(model, swap_activations={tf.nn.relu: neuron},
                                  scale_firing_rates=SCALE, synapse=synapse)
        conv.net.seed = SEED
        with conv.net:  # no state carried between calls: what spiketune sets, and faster
            nengo_dl.configure_settings(stateful=False)
        return conv, conv.inputs[inp], conv.outputs[out]

    # train through the LIF rate approximation, rates penalised, biases clipped
    t0 = time.perf_counter()
    conv, i_node, o_probe = convert(nengo.LIF(), None)
    with conv.net:
        p_rates = nengo.Probe(conv.layers[hidden])
    xt, yt = pad(x_tr, BATCH)[:, None], pad(y_tr, BATCH)[:, None]
    with nengo_dl.Simulator(conv.net, minibatch_size=BATCH, seed=SEED, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(LR),
                    loss={o_probe: tf.losses.mse, p_rates: rate_penalty},
                    loss_weights={o_probe: 1.0, p_rates: RATE_WEIGHT})
        sim.fit({i_node: xt}, {o_probe: yt, p_rates: np.zeros((len(xt), 1, 1), np.float32)},
                epochs=EPOCHS, verbose=0,
                callbacks=[bias_clipper(sim, conv.layers[hidden].ensemble.neurons)])
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

    # spiking evaluation with a probe on the hidden neurons
    conv, i_node, o_probe = convert(nengo.LIF(), SYNAPSE)
    with conv.net:
        probe = nengo.Probe(conv.layers[hidden])
    xs = np.repeat(pad(x_te, MINIBATCH)[:, None], STEPS, axis=1)
    outs, rates = [], []
    with nengo_dl.Simulator(conv.net, minibatch_size=MINIBATCH, seed=SEED,
                            progress_bar=False) as sim:
        sim.load_params(str(params_dir / "params"))
        for b in range(len(xs) // MINIBATCH):
            res = sim.predict_on_batch({i_node: xs[b * MINIBATCH:(b + 1) * MINIBATCH]})
            outs.append(res[o_probe][:, -READOUT:].mean(axis=1))
            rates.append(res[probe].mean(axis=1) * SCALE)  # amplitude 1/scale → Hz
    t_sim = time.perf_counter() - t0
    spk_out = np.concatenate(outs)[: len(x_te)]
    hz = np.concatenate(rates)[: len(x_te)]

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
               "firing/mean_rate_hz": float(hz.mean()),
               "firing/max_rate_hz": float(hz.mean(0).max()),
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


def spiketune(uri: str, extra: list[str], background: bool = False) -> dict[str, float]:
    """The default run through ``framework.pipeline.run``; ``background=True`` draws the figures
    in a forked worker while the model is logged (``plugin_host.BACKGROUND``, off by default)."""
    from framework import plugin_host
    from framework.pipeline import run
    from framework.progress import Console

    cfg = compose(["training.cache=false", f"tracking.uri={uri}", *extra])
    was, plugin_host.BACKGROUND = plugin_host.BACKGROUND, background
    try:
        return run(cfg, console=Console(quiet=True)).metrics
    finally:
        plugin_host.BACKGROUND = was


def main() -> None:
    # the summary, which the docstring wraps over two lines, joined back into one
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", action="store_true",
                   help="also draw the figures in a forked worker (plugin_host.BACKGROUND)")
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
        "spiketune default, plots + report": lambda: spiketune(uri, []),
        "spiketune default, plots off": lambda: spiketune(uri, ["tracking.plots=false"]),
        "spiketune, the script's work": lambda: spiketune(uri, SCRIPTS_WORK),
    }
    if args.worker:
        variants["spiketune default, plots drawn by a worker"] = lambda: spiketune(uri, [], True)
    print(f"machine: {machine()}", flush=True)
    with Timer() as warm:  # first-call costs (Keras, tf.function machinery) paid once, untimed
        handwritten(uri, tmp)
    print(f"warm-up (hand-written, untimed): {warm.s:.1f} s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}  # the process's CPU s, all threads
    metrics: dict[str, dict] = {}
    for r in range(args.repeats):
        for name, fn in variants.items():
            c0 = time.process_time()
            with Timer() as t:
                metrics[name] = fn()
            times[name].append(t.s)
            cpu[name].append(time.process_time() - c0)
            print(f"  repeat {r + 1}: {name:<42} {t.s:6.1f} s, CPU {cpu[name][-1]:5.1f} s",
                  flush=True)
    hand, hand_cpu = median(times["hand-written NengoDL"]), median(cpu["hand-written NengoDL"])
    # CPU time moves less with other users' load than wall time (a forked worker's is not in it)
    print("\n| variant | median s | runs (s) | ratio to hand-written | median CPU s | CPU ratio |"
          "\n| --- | --- | --- | --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {median(ts):.1f} | {', '.join(f'{t:.1f}' for t in ts)} | "
              f"{median(ts) / hand:.2f} | {median(cpu[name]):.1f} | "
              f"{median(cpu[name]) / hand_cpu:.2f} |")
    keys = ["spiking/mse", "spiking/angle_error_deg", "firing/mean_rate_hz", "tuning/median_r2"]
    print("\nsame work, similar numbers (last repeat):")
    for name, m in metrics.items():
        print(f"  {name:<42} " + ", ".join(f"{k} {m.get(k, float('nan')):.3g}" for k in keys))
    print("\nstage times (last repeat, s):")
    for name, m in metrics.items():
        print(f"  {name:<42} " + json.dumps({k: round(v, 1) for k, v in m.items()
                                              if k.startswith("time/")}))
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
