"""What tests share besides fixtures: tiny configs, composing a config, the CLI as a subprocess,
reading a store. Imported as ``from helpers import ...`` (tests/ is on the path under pytest)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: overrides that make the default experiment run in a few seconds (``~tuned``: without
#: conf/tuned/reach_dense.yaml's rate and bias ranges, which tests of other things do not want)
TINY = ["~tuned", "dataset.trials_per_direction=12", "model.hidden=[16]", "training.epochs=2",
        "simulation.n_steps=20", "simulation.readout_steps=5", "tracking.plots=false"]


def compose(overrides: list[str] | None = None):
    """The composed config for ``overrides``, as the CLI would build it (no validation)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from framework.app import startup
    from framework.config import register
    from framework.paths import CONF

    register()
    startup.start()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides or []))


def cli(args: list[str], uri: str | None = None, cwd: Path | None = None, timeout: float = 600,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m framework`` with ``args`` (and ``tracking.uri=uri``) in a subprocess."""
    full = list(args) + ([f"tracking.uri={uri}"] if uri else [])
    environ = dict(os.environ, **(env or {}))
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run([sys.executable, "-m", "framework", *full], cwd=str(cwd or REPO),
                          capture_output=True, text=True, timeout=timeout, env=environ)


def runs(uri: str, experiment: str = "spiketune"):
    """All runs of ``experiment`` in the store at ``uri``, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return client, []
    found = client.search_runs([exp.experiment_id], max_results=1000, order_by=["start_time ASC"])
    return client, list(found)


def prepared(overrides: list[str]):
    """``(cfg, data)`` as a run gets them: validated, the data loaded and scaled as resolved."""
    from framework.config import validate
    from framework.resolve import prepare_data

    cfg = validate(compose(overrides))
    data, _, _ = prepare_data(cfg)
    return cfg, data


def loaded_dataset(*overrides: str):
    """The ``Data`` the dataset node of ``overrides`` loads (validated, not scaled)."""
    from framework.config import validate
    from framework.data.base import load

    cfg = validate(compose(list(overrides)))
    return load(cfg.dataset, cfg.seed)


def logged_params(overrides: list[str]) -> dict[str, str]:
    """The params a run of ``overrides`` logs: every leaf, the data-following ones resolved."""
    from types import SimpleNamespace

    from framework.config import to_flat_params, validate
    from framework.resolve import resolve_defaults, resolved

    cfg = compose(overrides)
    obj = validate(compose(overrides))
    resolve_defaults(obj, SimpleNamespace(sequence=bool(getattr(obj.dataset, "sequence", False))))
    return dict(to_flat_params(resolved(cfg, obj)))


def cli_in_process(args: list[str], monkeypatch, pipeline) -> int:
    """``spiketune args`` in this process with ``pipeline`` standing in for
    ``framework.pipeline.run`` (no TensorFlow); returns the exit code."""
    import framework.pipeline
    from framework.app.cli import main

    monkeypatch.setattr(framework.pipeline, "run", pipeline)
    monkeypatch.setattr(sys, "argv", ["spiketune"])
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    before = _log_handlers()
    absl = sys.modules.get("absl.logging")
    if absl is not None:
        # Hydra's logging config closes every handler in the process, and absl's (made when
        # TensorFlow was first imported, by an earlier test) closes its stream unless that is the
        # *current* sys.stderr: under capsys it is not, and pytest's own capture file would close.
        monkeypatch.setattr(absl.get_absl_handler().python_handler, "stream", sys.__stderr__)
    try:
        main(args)
        return 0
    except SystemExit as ex:
        return int(ex.code or 0)
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        _drop_log_handlers(before)


def _log_handlers() -> dict:
    """``{logger: [handler, ...]}`` of every logger in this process."""
    import logging

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return {lg: lg.handlers[:] for lg in loggers}


def _drop_log_handlers(before: dict) -> None:
    """Remove the handlers Hydra's logging config installed in this process during a run: they
    hold streams (pytest's captured stderr, a job's log file) that close once the test ends.
    Pytest's own capture handlers (there before the run) are put back untouched: closing them
    closes the buffer pytest reads at teardown."""
    for logger, handlers in _log_handlers().items():
        kept = before.get(logger, [])
        for handler in handlers:
            if handler not in kept:
                logger.removeHandler(handler)
                handler.close()  # out of logging's shutdown list too, so nothing flushes it later
        for handler in kept:
            if handler not in logger.handlers:
                logger.addHandler(handler)


def family(uri: str):
    """``(client, parent, children)`` of the only sweep in the store."""
    client, found = runs(uri)
    parents = [r for r in found if r.data.tags.get("spiketune.sweep") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in found]
    kids = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(kids) + 1 == len(found), "runs outside the sweep"
    return client, client.get_run(parents[0].info.run_id), sorted(
        kids, key=lambda r: int(r.data.tags["spiketune.job"]))


def user_split_model(folder: Path, x, label, direction, split) -> float:
    """The forum user's EMG classifier (Keras 3: two Dense(50, relu) and a linear read-out, Adam
    1e-3, 150 epochs on the raw values), trained on the ``split == "train"`` samples only; saves
    ``emg.npz`` (``x``, ``label``, ``direction``, ``split``) and ``model.keras`` in ``folder`` and
    returns the model's own accuracy on the held-out samples."""
    import keras
    import numpy as np

    np.savez(folder / "emg.npz", x=x, label=label, direction=direction, split=split)
    keras.utils.set_random_seed(0)
    inp = keras.Input((x.shape[1],))
    h = keras.layers.Dense(50, activation="relu")(inp)
    h = keras.layers.Dense(50, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(int(label.max()) + 1)(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = split == "train"
    model.fit(x[train], label[train], epochs=150, batch_size=32, verbose=0)
    model.save(folder / "model.keras")
    return float(np.mean(model.predict(x[~train], verbose=0).argmax(-1) == label[~train]))
