"""Fine-tuning a loaded model in NengoDL: which Adam learning rate keeps what the model learnt.

The seed-000 user's 8-50-50-9 EMG classifier (tests/test_user_model.py's recording, in µV, with a
rest class) is trained in Keras 3 on three quarters of each class and saved; spiketune then runs it
with LIF neurons at ``simulation.scale_firing_rates=100`` (``conversion.normalize=none``), once as
it is (``model.train=false``) and once fine-tuned for ``--epochs`` at each learning rate, every
score on the held-out quarter (``dataset.split``). The fine-tunes keep their best epoch on 15% of
the training samples (framework/training.py), so the table also says which epoch was kept (−1:
the loaded weights). Accuracy numbers, not timings.

    .venv/bin/python benchmarks/fine_tune.py [--rates 0.01,0.003,0.001,0.0003] [--epochs 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, compose, machine

sys.path.insert(0, str(REPO / "tests"))


def user_model(folder: Path) -> float:
    """Train and save the user's model on its own split; its accuracy on the held-out trials."""
    from helpers import user_split_model
    from test_user_model import emg_recording

    x, label, direction = emg_recording()
    split = np.where(np.arange(len(label)) % 4 == 3, "test", "train")
    return user_split_model(folder, x, label, direction, split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0.01,0.003,0.001,0.0003")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--conversion", default="conversion.normalize=none,"
                        "simulation.scale_firing_rates=100",
                        help="comma-separated overrides of the conversion (e.g. "
                             "conversion.normalize=percentile,conversion.max_rate_hz=80)")
    args = parser.parse_args()
    from mlflow import MlflowClient

    from framework import quiet
    from framework.pipeline import run
    from framework.progress import Console

    quiet.tensorflow()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        own = user_model(folder)
        base = ["dataset=file", f"dataset.path={folder / 'emg.npz'}", "dataset.target=label",
                "dataset.split=split", "dataset.task=classification", "model=keras_file",
                f"model.path={folder / 'model.keras'}", "neuron=lif",
                *args.conversion.split(","),
                "analysis=[firing]", "tracking.plots=false", "tracking.log_model=false",
                "training.cache=false", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"]
        print(machine())
        print(f"Keras 3 model on its held-out trials: {own:.3f}")
        print("| learning rate | rate accuracy | spiking accuracy | epoch kept | verdict |")
        print("| --- | --- | --- | --- | --- |")
        for lr in ["none", *args.rates.split(",")]:
            extra = (["model.train=false"] if lr == "none" else
                     ["model.train=true", f"training.learning_rate={lr}",
                      f"training.epochs={args.epochs}"])
            res = run(compose(base + extra), console=Console(quiet=True))
            m = res.metrics
            kept = m.get("train/best_epoch")
            tags = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").get_run(res.run_id).data.tags
            fired = [k.split(".")[-1] for k in tags if k.startswith("spiketune.health.")]
            print(f"| {lr} | {m['rate/accuracy']:.3f} | {m['spiking/accuracy']:.3f} | "
                  f"{'' if kept is None else int(kept)} | "
                  f"{tags.get('spiketune.health')} {', '.join(sorted(fired))} |")


if __name__ == "__main__":
    main()
