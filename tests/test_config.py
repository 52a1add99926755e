"""Config composition and validation: refused before TensorFlow, one line naming the key."""
from __future__ import annotations

import pytest
from helpers import cli, compose

from framework.app.cli import split_args
from framework.config import Config, to_flat_params, validate
from framework.errors import UserError


def test_default_config_composes_to_typed_dataclasses():
    obj = validate(compose())
    assert isinstance(obj, Config)
    assert (obj.dataset.name, obj.model.name, obj.neuron.name) == ("reach", "dense", "lif")
    assert obj.simulation.scale_firing_rates == 100.0
    assert obj.analysis == ["auto"]
    assert obj.analyses.firing.silent_below_hz == pytest.approx(0.1)


def test_flat_params_hold_every_leaf_with_dotted_keys():
    flat = to_flat_params(compose(["neuron=threshold_lif", "neuron.threshold=0.5"]))
    assert flat["neuron.threshold"] == "0.5"
    assert flat["dataset.task"] == "regression"  # enums as their names
    assert flat["model.hidden"] == "[128]"  # conf/tuned/reach_dense.yaml
    assert flat["training.x_intercepts.enabled"] == "False"
    assert not any(k.startswith("hydra") for k in flat)


@pytest.mark.parametrize("overrides, message", [
    (["simulation.n_steps=0"], "simulation.n_steps: must be >= 1, got 0"),
    (["simulation.dt=-0.001"], "simulation.dt: must be >= 1e-06"),
    (["neuron=threshold_lif", "neuron.threshold=0"], "neuron.threshold: must be > 0"),
    (["model.hidden=[]"], "model.hidden: needs at least one hidden layer"),
    (["model.hidden=[8,0]"], "model.hidden[1]: a layer needs at least 1 neuron"),
    (["simulation.readout_steps=300"], "simulation.readout_steps: 300 is more than"),
    (["dataset.test_fraction=1.0"], "dataset.test_fraction: must be < 1.0"),
    (["training.x_intercepts.low=1", "training.x_intercepts.high=0"],
     "training.x_intercepts.low: must be below"),
    (["simulation.scale_firing_rates=nan"], "simulation.scale_firing_rates: must be a finite"),
])
def test_out_of_range_values_name_their_key(overrides, message):
    with pytest.raises(UserError) as err:
        validate(compose(overrides))
    assert message in str(err.value)


def test_split_args_separates_flags_from_overrides():
    assert split_args(["-m", "neuron=lif,relu", "seed=3"]) == (
        ["neuron=lif,relu", "seed=3"], True, True)
    assert split_args(["--cfg", "job", "seed=1"]) == (["seed=1"], False, False)
    assert split_args(["-cn", "config", "seed=2"]) == (["seed=2"], False, True)


@pytest.mark.parametrize("args, first_words", [
    (["neuron=lfi"], "neuron=lfi: no such option; choose from lif, lif_rate, relu"),
    (["simulation.n_steps=-5"], "simulation.n_steps: must be >= 1, got -5"),
    (["simulation.n_stepz=5"], "simulation.n_stepz: no such key"),
    (["simulation.n_steps=abc"], "simulation.n_steps: Value 'abc'"),
    (["+model._target_=os.system"], "model._target_: no such key"),
    (["analysis=[firing,nope]"], "analysis[1]: unknown analysis 'nope'"),
    (["-m", "neuron=relu,lfi"], "neuron=lfi: no such option"),
    (["-m", "neuron=relu,lif", "simulation.n_steps=50,-1"], "simulation.n_steps: must be >= 1"),
    (["dataset.task=foo"], "dataset.task: Invalid value 'foo'"),
])
def test_cli_refuses_bad_config_with_one_line_and_exit_2(args, first_words, uri):
    proc = cli(args, uri=uri, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"spiketune: {first_words}"), lines[0]
    assert "Traceback" not in proc.stderr
    assert "tensorflow" not in proc.stderr.lower()


def test_a_jobs_config_unpickles_and_validates_in_a_fresh_process(tmp_path):
    """Launchers (submitit, Ray) cloudpickle each job's config to a worker process. The analyses
    schema is built at run time from the plugins; it travels by reference and the worker rebuilds
    it, so validation there sees every key (cloudpickle 2 copies such a class without its
    dataclass fields: "analyses.layers: no such key")."""
    import os
    import subprocess
    import sys

    import cloudpickle
    from helpers import REPO

    from framework.config import analyses_schema

    cfg = compose(["analyses.layers=[hidden0]", "analyses.max_neurons=3"])
    assert len(cloudpickle.dumps(analyses_schema())) < 200  # a reference, not the class
    (tmp_path / "cfg.pkl").write_bytes(cloudpickle.dumps(cfg))
    code = ("import pickle, sys; from framework.config import validate; "
            "obj = validate(pickle.load(open(sys.argv[1], 'rb'))); "
            "print(obj.analyses.layers, obj.analyses.max_neurons, "
            "obj.analyses.firing.silent_below_hz)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cfg.pkl")],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["['hidden0']", "3", "0.1"]


def test_paths_outputs_moves_the_store_the_cache_and_hydras_folders(monkeypatch):
    monkeypatch.delenv("SPIKETUNE_CACHE_DIR", raising=False)
    cfg = compose(["paths.outputs=/scratch/me"])
    assert cfg.tracking.uri == "sqlite:////scratch/me/mlflow.db"
    assert cfg.paths.cache == "/scratch/me/cache"
    # an explicit tracking.uri wins over paths.store
    assert compose(["paths.outputs=/scratch/me", "tracking.uri=sqlite:////s/m.db"]
                   ).tracking.uri == "sqlite:////s/m.db"
    proc = cli(["--cfg", "all", "--resolve", "paths.outputs=/scratch/me"])
    assert proc.returncode == 0, proc.stderr
    assert "dir: /scratch/me/hydra/" in proc.stdout and "dir: /scratch/me/multirun/" in proc.stdout
    # Hydra resolves --cfg hydra cut off from paths.*: one line instead of its traceback
    proc = cli(["--cfg", "hydra", "--resolve"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "use --cfg all --resolve" in proc.stderr


def test_the_cache_environment_variable_is_only_the_default(monkeypatch):
    monkeypatch.setenv("SPIKETUNE_CACHE_DIR", "/env/cache")
    assert compose().paths.cache == "/env/cache"
    assert compose(["paths.cache=/cli/cache"]).paths.cache == "/cli/cache"


def test_relative_inputs_are_read_from_paths_data():
    base = ["dataset=file", "model=keras_file", "paths.data=/data/lab"]
    obj = validate(compose([*base, "dataset.path=emg.npz", "model.path=nets/model.keras"]))
    assert (obj.dataset.path, obj.model.path) == ("/data/lab/emg.npz", "/data/lab/nets/model.keras")
    obj = validate(compose([*base, "dataset.path=/elsewhere/emg.npz", "model.path=m.keras"]))
    assert obj.dataset.path == "/elsewhere/emg.npz"  # absolute paths stay as written
    # without paths.data they stay relative: taken from the launch directory when read
    assert validate(compose(["dataset=file", "dataset.path=emg.npz"])).dataset.path == "emg.npz"
