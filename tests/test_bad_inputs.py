"""The bad-input catalogue: every case exits 2 with one line naming the key or file, no traceback,
and never leaves a FINISHED run.

Each case runs through the real entry point, ``framework.app.cli.main`` (pre-validation,
then the Hydra app), inside one driver subprocess per group of cases, so TensorFlow and MLflow
are imported once per group rather than once per case. Stages:

* ``config``: refused by pre-validation, before the Hydra app: < 1 s, TensorFlow and MLflow never
  imported, the store never touched;
* ``store``: the tracking store cannot be opened, so there is no run at all;
* ``run``: the run starts and ends FAILED with the message as its ``error`` tag, before TensorFlow
  is imported;
* ``tf``: as ``run``, after TensorFlow has loaded (slow: the driver imports TensorFlow).

``docs/bad-inputs.md`` is generated from :data:`CASES`: ``python tests/test_bad_inputs.py``
rewrites it, and :func:`test_docs_table_lists_every_case` keeps the two in step.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad-inputs.md"
#: settings every run-time case adds, so a case that gets further than it should stays short
BASE = ("training.epochs=2", "training.cache=false", "simulation.n_steps=20",
        "simulation.readout_steps=5", "tracking.plots=false")
#: the small default experiment, for cases that need TensorFlow
TINY_REACH = ("dataset.trials_per_direction=12", "model.hidden=[16]")
#: ends a case's message when the real one goes on (so the case checks how it starts)
PREFIX = " …"
STAGES = {
    "config": "refused before anything runs (no TensorFlow, no MLflow, store untouched)",
    "store": "the store cannot be opened: no run anywhere",
    "run": "run ends FAILED with this error tag, before TensorFlow is imported",
    "tf": "run ends FAILED with this error tag, after TensorFlow has loaded",
}


@dataclass(frozen=True)
class Case:
    """One bad input: the overrides, the start of the one-line message, and where it is caught.

    ``{data}`` in args and message is the folder of bad files, ``{ro}`` a read-only folder and
    ``{port}`` a TCP port nobody listens on. The message is the whole line after ``spiketune: ``,
    or how it starts when it ends with :data:`PREFIX`.
    """

    id: str
    args: tuple[str, ...]
    message: str
    stage: str
    needs: str = ""  # "ro": a read-only folder; "nonroot": file permissions that bind the user

    def fill(self, env: dict[str, str]) -> Case:
        return Case(self.id, tuple(a.format(**env) for a in self.args),
                    self.message.format(**env), self.stage, self.needs)


def _c(id_, args, message, stage="config", needs=""):
    return Case(id_, tuple(args.split()), message, stage, needs)


CASES: list[Case] = [
    # ---------------------------------------------------------------- config: pre-validation
    _c("unknown-group-option", "neuron=lfi",
       "neuron=lfi: no such option; choose from lif, lif_rate, relu, spiking_relu, threshold_lif"),
    _c("unknown-dataset", "dataset=mnist",
       "dataset=mnist: no such option; choose from digits, file, reach"),
    _c("empty-group-choice", "dataset=",
       "dataset=: no such option; choose from digits, file, reach"),
    _c("misspelled-key", "simulation.n_stepz=5", "simulation.n_stepz: no such key"),
    _c("key-of-another-neuron-type", "neuron=relu neuron.tau_rc=0.02",
       "neuron.tau_rc: no such key"),
    _c("misspelled-plugin-option", "analyses.firing.nope=1", "analyses.firing.nope: no such key"),
    _c("wrong-type-int", "simulation.n_steps=abc",
       "simulation.n_steps: Value 'abc' of type 'str' could not be converted to Integer"),
    _c("wrong-type-float", "training.learning_rate=fast",
       "training.learning_rate: Value 'fast' of type 'str' could not be converted to Float"),
    _c("wrong-type-list", "model.hidden=64",
       "model.hidden: Invalid value assigned: int is not a ListConfig, list or tuple."),
    _c("wrong-type-bool", "tracking.plots=maybe",
       "tracking.plots: Value 'maybe' is not a valid bool (type str)"),
    _c("negative-steps", "simulation.n_steps=-5", "simulation.n_steps: must be >= 1, got -5"),
    _c("dt-zero", "simulation.dt=0", "simulation.dt: must be >= 1e-06, got 0.0"),
    _c("dt-underflows-float32", "simulation.dt=1e-300",
       "simulation.dt: must be >= 1e-06, got 1e-300"),
    _c("dt-ten-seconds", "simulation.dt=10", "simulation.dt: must be <= 0.1, got 10.0"),
    _c("experiment-name-too-long", "tracking.experiment=" + "x" * 300,
       "tracking.experiment: 300 characters; an MLflow store keeps at most 256"),
    _c("run-name-too-long", "tracking.run_name=" + "r" * 251,
       "tracking.run_name: 251 characters; an MLflow store keeps at most 250"),
    _c("tag-name-too-long", f"tags=[{'t' * 251}]",
       "tags[0]: a tag name keeps at most 250 characters and a value 8000; got 251 and 0"),
    _c("threshold-zero", "neuron=threshold_lif neuron.threshold=0",
       "neuron.threshold: must be > 0.0, got 0.0"),
    _c("negative-tau-rc", "neuron.tau_rc=-0.02", "neuron.tau_rc: must be > 0.0, got -0.02"),
    _c("negative-synapse", "simulation.synapse=-0.1",
       "simulation.synapse: must be >= 0.0, got -0.1"),
    _c("empty-layer-list", "model.hidden=[]", "model.hidden: needs at least one hidden layer"),
    _c("zero-neuron-layer", "model.hidden=[8,0]",
       "model.hidden[1]: a layer needs at least 1 neuron, got 0"),
    _c("no-conv-layers", "model=conv model.filters=[]",
       "model.filters: needs at least one convolutional layer"),
    _c("unknown-analysis", "analysis=[firing,nope]",
       "analysis[1]: unknown analysis 'nope'; choose from …"),
    _c("bad-readout", "simulation.readout=median",
       "simulation.readout: Invalid value 'median', expected one of [last, mean, fitted, auto]"),
    _c("readout-longer-than-run", "simulation.n_steps=10 simulation.readout_steps=20",
       "simulation.readout_steps: 20 is more than simulation.n_steps (10)"),
    _c("fitted-readout-and-its-window", "simulation.readout=fitted simulation.readout_steps=5",
       "simulation.readout_steps: 5 given with simulation.readout=fitted, which chooses the "
       "window on training samples; give one of the two"),
    _c("fitted-readout-of-a-sequence", "experiment=reach_sequence simulation.readout=fitted "
       "simulation.readout_steps=null",
       "simulation.readout=fitted: static inputs only (a sequence model's loss pools the bins "
       "its read-out covers); set simulation.readout_steps instead", "run"),
    _c("fitted-readout-of-the-ensemble", "model=ensemble simulation.readout=fitted "
       "simulation.readout_steps=null",
       "simulation.readout=fitted: model ensemble makes its own inputs and has no read-out to "
       "fit", "run"),
    _c("nan-override", "simulation.scale_firing_rates=nan",
       "simulation.scale_firing_rates: must be a finite number, got nan"),
    _c("inf-override", "training.learning_rate=inf",
       "training.learning_rate: must be a finite number, got inf"),
    _c("negative-epochs", "training.epochs=-1", "training.epochs: must be >= 0, got -1"),
    _c("zero-batch", "training.batch_size=0", "training.batch_size: must be >= 1, got 0"),
    _c("zero-minibatch", "simulation.minibatch_size=0",
       "simulation.minibatch_size: must be >= 1, got 0"),
    _c("negative-max-neurons", "analyses.max_neurons=-1",
       "analyses.max_neurons: must be >= 0, got -1"),
    _c("test-fraction-one", "dataset.test_fraction=1.0",
       "dataset.test_fraction: must be < 1.0, got 1.0"),
    _c("bad-task", "dataset.task=foo",
       "dataset.task: Invalid value 'foo', expected one of [classification, regression]"),
    _c("negative-seed", "seed=-1", "seed: must be >= 0, got -1"),
    _c("seed-too-large", "seed=4294967296", "seed: must be < 4294967296, got 4294967296"),
    _c("empty-experiment-name", "tracking.experiment=",
       "tracking.experiment: needs a name (MLflow refuses an empty one)"),
    _c("override-syntax", "model.hidden=[16",
       "override syntax: no viable alternative at input '[16' …"),
    _c("inverted-regulariser-range", "training.x_intercepts.low=1 training.x_intercepts.high=0",
       "training.x_intercepts.low: must be below the upper bound, got 1.0 >= 0.0"),
    _c("regulariser-range-not-enabled", "training.x_intercepts.low=0.1",
       "training.x_intercepts.low: set, but training.x_intercepts is not enabled (add "
       "training.x_intercepts.enabled=true)"),
    _c("ensemble-gain-without-bias", "model=ensemble model.gain=[1.0]",
       "model.gain, model.bias: give both or neither"),
    _c("bad-value-inside-a-sweep", "-m neuron=relu,lif simulation.n_steps=50,-1",
       "simulation.n_steps: must be >= 1, got -1"),
    _c("target-in-a-config-group", "+model._target_=os.system", "model._target_: no such key"),
    _c("hydra-callback-target",
       "+hydra.callbacks.x._target_=shutil.copyfile +hydra.callbacks.x.src={data}/good.csv "
       "+hydra.callbacks.x.dst={data}/copied.csv",
       "hydra.callbacks.x._target_: refused on the command line: Hydra would import and call "
       "the Python object it names"),
    _c("output-dir-under-a-file", "hydra.run.dir={data}/afile/run",
       "hydra.run.dir: {data}/afile is a file, not a folder"),
    _c("read-only-output-dir", "hydra.run.dir={ro}/run", "hydra.run.dir: {ro} is not writable",
       needs="ro"),
    _c("objective-not-a-metric", "objective=spiking:angle",
       "objective: 'spiking:angle' is not a metric name (e.g. spiking/angle_error_deg)",
       "config"),
    _c("budget-without-objective", "budget.metric=firing/mean_rate_hz budget.max=50",
       "budget.metric: a budget limits an objective; set objective=<metric> too", "config"),
    # issue 23: command-line values that would run code, write files or split a sweep
    Case("oc-create-target",
         ("tracking.run_name={{_target_:shutil.copyfile,src:{data}/good.csv,dst:{data}/pwned}}",
          "hydra.callbacks.sweep='${{oc.create:${{tracking.run_name}}}}'"),
         "hydra.callbacks.sweep: refused on the command line: oc.create and oc.decode turn a "
         "value into config, which could make Hydra call Python", "config"),
    _c("interpolated-callback", "hydra.callbacks.sweep=${{tracking}}",
       "hydra.callbacks.sweep: refused on the command line: an interpolation here could bring "
       "in config that makes Hydra call Python"),
    _c("group-choice-is-a-path", "experiment=../../../{data}/x",
       "experiment=../../../{data}/x: a choice of experiment is an option's name, not a path"),
    _c("launcher-choice-is-a-path", "hydra/launcher=/tmp/x",
       "hydra/launcher=/tmp/x: a choice of hydra/launcher is an option's name, not a path"),
    _c("hydra-searchpath", "hydra.searchpath=[file://{data}] experiment=evil",
       "hydra.searchpath: refused on the command line: presets load from spiketune's conf/ only"),
    _c("log-file-elsewhere", "hydra.job_logging.handlers.file.filename={data}/evil.log",
       "hydra.job_logging.handlers.file.filename: refused on the command line: a job's log is "
       "written in its own folder"),
    _c("job-name-a-path", "hydra.job.name=../../evil",
       "hydra.job.name: ../../evil would lead out of the run's folder"),
    _c("output-subdir-absolute", "hydra.output_subdir={data}/hydra",
       "hydra.output_subdir: {data}/hydra would lead out of the run's folder"),
    _c("launcher-folder", "hydra.launcher.submitit_folder={data}/sub",
       "hydra.launcher.submitit_folder: refused on the command line: the launcher's files stay "
       "in the sweep's folder"),
    _c("env-copy", "hydra.job.env_copy=[LD_PRELOAD]",
       "hydra.job.env_copy: refused on the command line: set environment variables in the "
       "shell"),
    _c("spiketune-tag-prefix", "tags=[spiketune.owner.pid:999999]",
       "tags[0]: spiketune.owner.pid: User tags cannot use the `spiketune.` or `mlflow.` "
       "prefixes"),
    _c("mlflow-tag-prefix", "tags=[ok,mlflow.user:eve]",
       "tags[1]: mlflow.user: User tags cannot use the `spiketune.` or `mlflow.` prefixes"),
    _c("list-of-lists", "model.hidden=[[1,2]]",
       "model.hidden: a list of single values, got [[1, 2]]"),
    _c("nested-choice", "-m simulation.n_steps=choice(10,choice(1,2))",
       "simulation.n_steps: a sweep inside a sweep is not expanded; give every value in one "
       "choice() or a,b,c list"),
    _c("zero-job-sweep", "-m simulation.n_steps=glob(*)",
       "simulation.n_steps: the sweep has no jobs (an empty choice or a glob() that matches no "
       "option)"),
    _c("swept-store", "-m tracking.uri=sqlite:///{data}/a.db,sqlite:///{data}/b.db",
       "tracking.uri: a sweep writes to one store, these jobs to 2; run one sweep per store"),
    # ---------------------------------------------------------------- store: cannot be opened
    _c("store-under-a-file", "tracking.uri=sqlite:///{data}/afile/mlflow.db",
       "tracking.uri: {data}/afile is a file, not a folder", "store"),
    _c("store-not-sqlite", "tracking.uri=sqlite:///{data}/notsqlite.db",
       "tracking.uri: {data}/notsqlite.db is not an sqlite database", "store"),
    _c("store-damaged", "tracking.uri=sqlite:///{data}/damaged.db",
       "tracking.uri: {data}/damaged.db is damaged …", "store"),
    _c("store-is-a-folder", "tracking.uri=sqlite:///{data}/dir.csv",
       "tracking.uri: {data}/dir.csv is a folder, not an sqlite database file", "store"),
    _c("store-unsupported-scheme", "tracking.uri=ftp://example.org/store",
       "tracking.uri: unsupported scheme 'ftp' in ftp://example.org/store; use "
       "sqlite:///<path>/mlflow.db or http(s)://<host>:<port>", "store"),
    _c("store-folder-store", "tracking.uri={data}/mlruns",
       "tracking.uri: {data}/mlruns is a folder store, which MLflow 3 refuses; use "
       "sqlite:///<path>/mlflow.db (or set MLFLOW_ALLOW_FILE_STORE=true)", "store"),
    _c("store-server-not-listening", "tracking.uri=http://127.0.0.1:{port}",
       "tracking.uri: cannot reach 127.0.0.1:{port} (Connection refused)", "store"),
    _c("store-read-only-folder", "tracking.uri=sqlite:///{ro}/mlflow.db",
       "tracking.uri: {ro} is not writable", "store", needs="ro"),
    # ---------------------------------------------------------------- run: data files (no TF)
    _c("data-missing-file", "dataset=file dataset.path={data}/missing.csv",
       "dataset.path: no such file: {data}/missing.csv", "run"),
    _c("data-no-path", "dataset=file", "dataset.path: no path given", "run"),
    _c("data-wrong-suffix", "dataset=file dataset.path={data}/data.txt",
       "dataset.path: data.txt is not one of .csv, .npz", "run"),
    _c("data-path-is-a-folder", "dataset=file dataset.path={data}/dir.csv",
       "dataset.path: {data}/dir.csv is a directory, not a .csv or .npz file", "run"),
    _c("data-unreadable-file", "dataset=file dataset.path={data}/locked.csv",
       "dataset.path: cannot read locked.csv: Permission denied", "run", needs="nonroot"),
    _c("csv-empty", "dataset=file dataset.path={data}/empty.csv",
       "dataset.path: empty.csv is empty", "run"),
    _c("csv-header-only", "dataset=file dataset.path={data}/header.csv",
       "dataset.path: header.csv has a header but no data rows", "run"),
    _c("csv-binary", "dataset=file dataset.path={data}/binary.csv",
       "dataset.path: binary.csv is not a text csv (binary content)", "run"),
    _c("csv-non-numeric", "dataset=file dataset.path={data}/text.csv dataset.task=classification",
       "dataset.features: column 'c1' of text.csv is not numeric (line 5: 'abc')", "run"),
    _c("csv-nan", "dataset=file dataset.path={data}/nan.csv dataset.task=classification",
       "dataset.features: NaN/inf values in column 'c2' (1) of nan.csv: 1 row (set "
       "dataset.drop_nan=true to drop them)", "run"),
    _c("csv-missing-target", "dataset=file dataset.path={data}/good.csv dataset.target=label",
       "dataset.target: no column 'label' in good.csv (columns: c0, c1, c2, target)", "run"),
    _c("csv-single-class",
       "dataset=file dataset.path={data}/oneclass.csv dataset.task=classification",
       "dataset.target: column 'target' of oneclass.csv has a single class (1); "
       "classification needs at least two", "run"),
    _c("npz-empty", "dataset=file dataset.path={data}/empty.npz",
       "dataset.path: empty.npz is empty", "run"),
    _c("npz-not-a-zip", "dataset=file dataset.path={data}/text.npz",
       "dataset.path: text.npz is not an npz archive (not a zip file)", "run"),
    _c("npz-single-npy", "dataset=file dataset.path={data}/single.npz",
       "dataset.path: single.npz holds a single .npy array, not named arrays (save it "
       "with numpy.savez)", "run"),
    _c("npz-truncated", "dataset=file dataset.path={data}/truncated.npz",
       "dataset.path: cannot read truncated.npz as npz: File is not a zip file", "run"),
    _c("npz-no-features", "dataset=file dataset.path={data}/nofeatures.npz",
       "dataset.features: array 'x' of nofeatures.npz has shape (40, 0); every axis after the "
       "samples needs at least 1 entry", "run"),
    _c("npz-no-time-bins", "dataset=file dataset.path={data}/notime.npz",
       "dataset.features: array 'x' of notime.npz has shape (40, 0, 3); every axis after the "
       "samples needs at least 1 entry", "run"),
    _c("npz-missing-array",
       "dataset=file dataset.path={data}/notarget.npz dataset.task=classification",
       "dataset.target: no array 'target' in notarget.npz (arrays: x, y)", "run"),
    _c("npz-zip-bomb", "dataset=file dataset.path={data}/bomb.npz limits.memory_gb=0.001",
       "dataset.path: bomb.npz would unpack to 2 MB, more than the memory limit of 1 MB "
       "(limits.memory_gb)", "run"),
    _c("data-path-is-a-pipe", "dataset=file dataset.path={data}/pipe.csv",
       "dataset.path: {data}/pipe.csv is not a regular file (a pipe, device or socket)", "run"),
    _c("analysis-not-for-this-data", "dataset=digits analysis=[tuning]",
       "analysis[0]: 'tuning' cannot run on dataset 'digits': …", "run"),
    # issue 23: data read as written, or refused naming the column and line
    _c("csv-duplicate-header", "dataset=file dataset.path={data}/dupheader.csv",
       "dataset.path: dupheader.csv names the column 'target' more than once in its header; "
       "give each column its own name", "run"),
    _c("csv-beyond-float32", "dataset=file dataset.path={data}/float32.csv",
       "dataset.features: column 'c1' of float32.csv holds 1e+39 at line 8, beyond the float32 "
       "range (±3.4e+38) the network computes in; rescale it", "run"),
    _c("csv-target-beyond-float32",
       "dataset=file dataset.path={data}/float32target.csv dataset.task=regression",
       "dataset.target: column 'target' of float32target.csv holds -5e+38 at line 5, beyond the "
       "float32 range (±3.4e+38) the network computes in; rescale it", "run"),
    _c("csv-giant-line", "dataset=file dataset.path={data}/giantline.csv",
       "dataset.path: cannot read giantline.csv as csv: Error tokenizing data. C error: Expected "
       "3 fields in line 11, saw 200004", "run"),
    _c("npz-scalar-target", "dataset=file dataset.path={data}/scalar.npz",
       "dataset.target: array 'target' of scalar.npz is a single value, not one per sample",
       "run"),
    _c("npz-raw-member", "dataset=file dataset.path={data}/rawpickle.npz",
       "dataset.target: 'target' in rawpickle.npz is not a numpy array (a raw or pickled member, "
       "left unread)", "run"),
    _c("npz-declares-huge-shape", "dataset=file dataset.path={data}/hugeshape.npz",
       "dataset.path: array 'target' of hugeshape.npz declares 26.4 TB, more than the memory "
       "limit of …", "run"),
    _c("npz-declares-big-shape", "dataset=file dataset.path={data}/bigshape.npz",
       "dataset.path: array 'target' of bigshape.npz declares 480 GB, more than the memory "
       "limit of …", "run"),
    # ---------------------------------------------------------------- tf: after TensorFlow loads
    _c("model-file-not-a-model", "model=keras_file model.path={data}/model.h5",
       "model.path: model.h5 is neither an HDF5 nor a zip Keras file …", "tf"),
    _c("model-file-wrong-suffix", "model=keras_file model.path={data}/data.txt",
       "model.path: data.txt is not a saved Keras model …", "tf"),
    _c("model-file-missing", "model=keras_file model.path={data}/nope.keras",
       "model.path: no such file: {data}/nope.keras", "tf"),
    _c("unknown-analysed-layer", " ".join(TINY_REACH) + " analyses.layers=[hidden9]",
       "analyses.layers[0]: no layer 'hidden9'; layers with neurons: hidden0", "tf"),
    _c("unknown-regularised-layer", " ".join(TINY_REACH) + " training.x_intercepts.enabled=true "
       "training.x_intercepts.layers=[nope]",
       "training.x_intercepts.layers[0]: no layer 'nope'; layers with neurons: hidden0", "tf"),
    _c("diverging-training", " ".join(TINY_REACH) + " training.learning_rate=1e6",
       "training.learning_rate: training diverged …", "tf"),
    _c("model-config-a-list", "model=keras_file model.path={data}/cfglist.keras",
       "model.path: cfglist.keras stores a malformed model config (a list where an object "
       "belongs), not a Keras model's", "tf"),
    _c("model-config-null", "model=keras_file model.path={data}/cfgnull.h5",
       "model.path: cfgnull.h5 stores a malformed model config (null where an object belongs), "
       "not a Keras model's", "tf"),
    _c("simulation-too-big", " ".join(TINY_REACH) + " simulation.n_steps=10000000",
       "simulation.n_steps: 24 samples × 10000000 steps of 16 neurons need about …", "tf"),
]
CONFIG = [c for c in CASES if c.stage == "config"]
RUNTIME = [c for c in CASES if c.stage in ("store", "run")]
SLOW = [c for c in CASES if c.stage == "tf"]

# One process runs a group of cases through the CLI's entry point; per case it records the exit
# code, what went to stderr, the time taken and whether TensorFlow or MLflow had been imported.
DRIVER = r"""
import io, json, sys, time
from framework.app import cli

job, dest = sys.argv[1:3]  # main() replaces sys.argv
cli.prevalidate([])  # loads Hydra, the schemas and the plugins once, outside the timings
cases, out = json.load(open(job)), []
for case in cases:
    buf, real = io.StringIO(), sys.stderr
    sys.stderr = buf
    t = time.perf_counter()
    try:
        cli.main(case["argv"])
        code = 0
    except SystemExit as ex:
        code = ex.code
    finally:
        sys.stderr = real
    out.append({"id": case["id"], "code": code, "stderr": buf.getvalue(),
                "seconds": time.perf_counter() - t, "tensorflow": "tensorflow" in sys.modules,
                "mlflow": "mlflow" in sys.modules})
json.dump(out, open(dest, "w"))
"""


# ------------------------------------------------------------------------------------- the files
def write_bad_files(folder: Path) -> None:
    """The good and bad data and model files the cases point at."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    good = pd.DataFrame({f"c{i}": rng.normal(size=40) for i in range(3)})
    good["target"] = np.repeat([0, 1], 20)
    good.to_csv(folder / "good.csv", index=False)
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("c0,c1,target\n")
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 2)
    text = good.astype(object)
    text.loc[3, "c1"] = "abc"  # data row 3 is line 5 (header, rows 0-2)
    text.to_csv(folder / "text.csv", index=False)
    nan = good.copy()
    nan.loc[5, "c2"] = np.nan
    nan.to_csv(folder / "nan.csv", index=False)
    one = good.copy()
    one["target"] = 1
    one.to_csv(folder / "oneclass.csv", index=False)
    good.to_csv(folder / "locked.csv", index=False)
    (folder / "empty.npz").write_bytes(b"")
    (folder / "text.npz").write_text("hello")
    with open(folder / "single.npz", "wb") as f:
        np.save(f, np.zeros((4, 2)))
    np.savez(folder / "good.npz", x=rng.normal(size=(40, 3)), target=np.repeat([0, 1], 20))
    whole = (folder / "good.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    np.savez(folder / "notarget.npz", x=rng.normal(size=(40, 3)), y=np.repeat([0, 1], 20))
    np.savez_compressed(folder / "bomb.npz", x=np.zeros((500, 500)), target=np.zeros(500))
    os.mkfifo(folder / "pipe.csv")  # opening it to read would wait for a writer forever
    (folder / "data.txt").write_text("1,2\n")
    (folder / "dir.csv").mkdir()
    (folder / "model.h5").write_text("not a model\n")
    (folder / "notsqlite.db").write_text("this is a text file, not a database\n")
    np.savez(folder / "nofeatures.npz", x=np.zeros((40, 0)), target=np.repeat([0, 1], 20))
    np.savez(folder / "notime.npz", x=np.zeros((40, 0, 3)), target=np.repeat([0, 1], 20))
    import sqlite3  # a real database whose pages after the first are overwritten (a bad disk)

    with contextlib.closing(sqlite3.connect(folder / "damaged.db")) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO runs (name) VALUES (?)",
                       [(f"run{i:05d}",) for i in range(2000)])
        db.commit()
    with open(folder / "damaged.db", "r+b") as f:
        f.seek(4096)
        f.write(bytes(range(256)) * 64)
    (folder / "afile").write_text("a file where a folder is expected\n")
    write_issue23_files(folder)


def write_model_config(path: Path, stored: object) -> None:
    """A model file (``.keras`` zip or ``.h5``) whose stored config is ``stored``, as JSON."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", json.dumps(stored))
            z.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
    else:
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs["model_config"] = json.dumps(stored)


def write_issue23_files(folder: Path) -> None:
    """Issue 23's data files: read as written, or refused naming where they go wrong."""
    import pickle

    import numpy as np

    rows = [f"{i * 0.1:.1f},{(i % 3) * 0.5:.1f},{i % 2}" for i in range(40)]
    (folder / "dupheader.csv").write_text("c0,target,target\n" + "\n".join(rows) + "\n")
    big = rows.copy()
    big[6] = "0.1,1e39,1"  # data row 6 is line 8
    (folder / "float32.csv").write_text("c0,c1,target\n" + "\n".join(big) + "\n")
    (folder / "float32target.csv").write_text("c0,c1,target\n" + "\n".join(
        rows[:3] + ["0.1,0.2,-5e38"] + rows[4:]) + "\n")
    giant = rows[:9] + [",".join("7" for _ in range(200_004))] + rows[9:]  # line 11
    (folder / "giantline.csv").write_text("c0,c1,target\n" + "\n".join(giant) + "\n")
    x = np.zeros((40, 3))
    np.savez(folder / "scalar.npz", x=x, target=np.array(3))
    with zipfile.ZipFile(folder / "rawpickle.npz", "w") as z:
        with z.open("x.npy", "w") as f:
            np.save(f, x)
        z.writestr("target.npy", pickle.dumps(list(range(40))))
    for name, stored in (("cfglist.keras", [1, 2]), ("cfgnull.h5", None)):
        write_model_config(folder / name, stored)
    for name, shape in (("hugeshape.npz", (1 << 20, 1 << 20, 3)),
                        ("bigshape.npz", (60_000_000_000,))):
        with zipfile.ZipFile(folder / name, "w") as z:
            with z.open("x.npy", "w") as f:
                np.save(f, x)
            with z.open("target.npy", "w") as f:  # a header declaring far more than it holds
                np.lib.format.write_array_header_1_0(
                    f, {"descr": "<f8", "fortran_order": False, "shape": shape})
                f.write(b"\0" * 64)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` with its kind, size and modification time (ns), to prove no
    case created, changed or removed an input (stat only: ``locked.csv`` may be unreadable)."""
    return {str(p.relative_to(folder)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_read_only(folder: Path) -> str | None:
    """Make ``folder`` unwritable; None if it worked, else why it cannot be done here.

    chmod binds every user but root. Root (these tests usually run as root) ignores the mode, so
    there the folder is made immutable (``chattr +i``), which binds root too on ext4/xfs/btrfs.
    """
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif shutil.which("chattr"):
        proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if proc.returncode != 0:
            return f"running as root and chattr +i failed: {proc.stderr.strip()}"
    else:
        return "running as root (chmod does not bind root) and chattr is not installed"
    if os.access(folder, os.W_OK):
        undo_read_only(folder)
        return "could not make a folder read-only on this filesystem"
    return None


def undo_read_only(folder: Path) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def skip_reason(case: Case, env: dict) -> str | None:
    if case.needs == "ro" and env["ro_skip"]:
        return env["ro_skip"]
    if case.needs == "nonroot" and os.geteuid() == 0:
        return "running as root, which reads any file whatever its mode"
    return None


# ------------------------------------------------------------------------------------ the driver
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Bad files, a shared store, a read-only folder and a dead port, shared by every case."""
    root = tmp_path_factory.mktemp("bad-inputs")
    data, ro, hydra = root / "data", root / "ro", root / "hydra"
    for d in (data, ro, hydra):
        d.mkdir()
    write_bad_files(data)
    (data / "locked.csv").chmod(0o000)
    ro_skip = make_read_only(ro)
    yield {"data": str(data), "ro": str(ro), "port": str(free_port()), "root": str(root),
           "hydra": str(hydra), "ro_skip": ro_skip, "store": f"sqlite:///{root / 'store.db'}",
           "untouched": str(root / "untouched" / "mlflow.db")}
    if ro_skip is None:
        undo_read_only(ro)
    (data / "locked.csv").chmod(0o644)


def argv(case: Case, env: dict) -> list[str]:
    """The case's command line, plus a private Hydra folder, store and run name."""
    store = env["untouched"] if case.stage == "config" else env["store"][len("sqlite:///"):]
    implicit = [f"hydra.run.dir={env['hydra']}/{case.id}", f"tracking.uri=sqlite:///{store}",
                f"tracking.run_name={case.id}"]
    return implicit + ([] if case.stage == "config" else list(BASE)) + list(case.args)


def start(name: str, cases: list[Case], env: dict) -> tuple:
    """Start a driver process on ``cases``; :func:`finish` collects its results."""
    root = Path(env["root"])
    todo = [c for c in cases if skip_reason(c, env) is None]
    job, out = root / f"cases-{name}.json", root / f"results-{name}.json"
    job.write_text(json.dumps([{"id": c.id, "argv": argv(c.fill(env), env)} for c in todo]))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(job), str(out)], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                                     SPIKETUNE_CACHE_DIR=str(root / "cache")))
    return proc, out


def finish(started: tuple, timeout: float) -> dict:
    proc, out = started
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, log[-3000:]
    return {r["id"]: r for r in json.loads(out.read_text())}


@pytest.fixture(scope="module")
def store(env):
    from framework.tracking.store import open_store

    open_store(env["store"])  # created once, here: a new store takes seconds to migrate
    return env["store"]


def results_of(name: str, cases: list[Case], env: dict, timeout: float) -> dict:
    """Run ``cases`` in one driver process; results by case id, and whether the inputs survived."""
    before = snapshot(Path(env["data"]))
    results = finish(start(name, cases, env), timeout)
    results["_unchanged"] = snapshot(Path(env["data"])) == before
    return results


@pytest.fixture(scope="module")
def config_results(env):
    return results_of("config", CONFIG, env, 300)


@pytest.fixture(scope="module")
def runtime_results(env, store):
    """Run-time cases before TensorFlow: about a second each (Hydra composes, a run opens)."""
    return results_of("runtime", RUNTIME, env, 600)


@pytest.fixture(scope="module")
def tf_results(env, store):
    return results_of("tf", SLOW, env, 900)


def runs_named(uri: str, name: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("spiketune")
    if exp is None:
        return []
    return list(client.search_runs([exp.experiment_id], f"attributes.run_name = '{name}'"))


def check(case: Case, results: dict, env: dict) -> None:
    why = skip_reason(case, env)
    if why:
        pytest.skip(why)
    case = case.fill(env)
    res = results[case.id]
    err = res["stderr"]
    lines = err.strip().splitlines()
    assert res["code"] == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert lines, "nothing on stderr"
    assert [line for line in lines if line.startswith("spiketune:")] == [lines[-1]], err[-3000:]
    if case.message.endswith(PREFIX):  # the message goes on (a list that plugins extend, ...)
        assert lines[-1].startswith(f"spiketune: {case.message[:-len(PREFIX)]}"), lines[-1]
    else:
        assert lines[-1] == f"spiketune: {case.message}"
    if case.stage == "config":
        assert len(lines) == 1, err
        # refused before TensorFlow or MLflow load (how fast: benchmarks/footprint.py)
        assert not res["tensorflow"] and not res["mlflow"]
        assert not Path(env["untouched"]).exists()  # no store, so no run
    else:
        assert res["tensorflow"] == (case.stage == "tf")
        found = runs_named(env["store"], case.id)
        if case.stage == "store":
            assert found == []
        else:
            assert [r.info.status for r in found] == ["FAILED"]
            assert found[0].data.tags["error"] == lines[-1][len("spiketune: "):]
            assert found[0].data.params["tracking.run_name"] == case.id
    assert results["_unchanged"], "a case changed the bad input files"


@pytest.mark.parametrize("case", CONFIG, ids=[c.id for c in CONFIG])
def test_bad_config_is_refused_at_once_in_one_line(case, config_results, env):
    check(case, config_results, env)


@pytest.mark.parametrize("case", RUNTIME, ids=[c.id for c in RUNTIME])
def test_bad_store_or_data_exits_2_with_one_line(case, runtime_results, env):
    check(case, runtime_results, env)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[c.id for c in SLOW])
def test_bad_input_after_tensorflow_loads_exits_2_with_one_line(case, tf_results, env):
    check(case, tf_results, env)


def test_no_case_finished_a_run(runtime_results, env):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["store"])
    exp = client.get_experiment_by_name("spiketune")
    found = client.search_runs([exp.experiment_id], max_results=1000)
    # the TensorFlow cases (slow) share the store: each run-time case left exactly its own run
    expected = sorted(c.id for c in RUNTIME if c.stage == "run" and not skip_reason(c, env))
    ids = {c.id for c in RUNTIME}
    assert sorted(r.info.run_name for r in found if r.info.run_name in ids) == expected
    assert {r.info.status for r in found} == {"FAILED"}
    assert not (Path(env["data"]) / "copied.csv").exists()  # the callback never ran


def test_catalogue_is_large_and_ids_unique():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.stage for c in CASES} == set(STAGES)


def test_unreadable_data_file_is_a_user_error(tmp_path, monkeypatch):
    """As root no file mode stops a read, so the permission error is injected where it is raised."""
    import framework.data.files as userdata
    from framework.data.files import FileDataset
    from framework.errors import UserError

    path = tmp_path / "locked.csv"
    path.write_text("a,target\n1,0\n2,1\n")

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(userdata, "open", denied, raising=False)
    with pytest.raises(UserError) as err:
        userdata.load_file(FileDataset(path=str(path)), seed=0)
    assert str(err.value) == "dataset.path: cannot read locked.csv: Permission denied"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("stored, what", [
    ([1, 2], "a list where an object belongs"), (None, "null where an object belongs"),
    (7, "a number where an object belongs"), ("abc", "a string where an object belongs"),
    ({"class_name": "Sequential", "config": [1]}, "its 'config' or 'layers' are not objects"),
    ({"class_name": "Sequential", "config": {"layers": [1]}},
     "its 'config' or 'layers' are not objects"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": 5}}]}},
     "'int' object is not subscriptable"),
])
def test_a_model_files_stored_config_of_another_shape_is_one_line(tmp_path, suffix, stored, what):
    """Issue 23 case 20: a stored config that is a list, null, a number or a string (or holds
    one where an object or list belongs) was an AttributeError; the screen reads it as data."""
    from framework.errors import UserError
    from framework.keras_io import screen

    path = tmp_path / f"m{suffix}"
    write_model_config(path, stored)
    with pytest.raises(UserError) as err:
        screen.stored_input_shape(path)
    assert str(err.value) == (f"model.path: m{suffix} stores a malformed model config ({what}), "
                              f"not a Keras model's")
    if what.startswith("'int'"):
        return  # the screen reads the shape only for the input layer's size
    with pytest.raises(UserError) as err:
        screen.inspect(path, True, set(), set())
    assert str(err.value) == (f"model.path: m{suffix} stores a malformed model config ({what}), "
                              f"not a Keras model's")


# -------------------------------------------------------------------------------- the docs table
def table() -> str:
    """docs/bad-inputs.md, generated from :data:`CASES`."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Bad inputs and what spiketune says",
        "",
        "Generated from `tests/test_bad_inputs.py` "
        "(`python tests/test_bad_inputs.py` rewrites it;",
        "a test fails when the two differ). Every case exits with code 2 and prints one line,",
        "`spiketune: <message>`, naming the key or file at fault, with no traceback; "
        "no case leaves",
        "a FINISHED run. The message column is the line after `spiketune: `; `…` marks where it",
        "goes on (with a list of choices, say).",
        "",
        "`<data>` is a folder of bad files, `<ro>` a read-only folder and `<port>` a port nobody",
        "listens on. Run-time cases also pass `" + " ".join(BASE) + "`.",
        "",
        "| stage | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| `{k}` | {v} |" for k, v in STAGES.items()]
    lines += ["", f"{len(CASES)} cases.", "", "| case | stage | input | message |",
              "| --- | --- | --- | --- |"]
    env = {"data": "<data>", "ro": "<ro>", "port": "<port>"}
    for c in CASES:
        c = c.fill(env)
        lines.append(f"| `{c.id}` | {c.stage} | `{cell(' '.join(c.args))}` | "
                     f"`{cell(c.message)}` |")
    lines += ["", "## Beyond this table", "",
              "Cases that need a server, a signal or a file changing under a run are tests of "
              "their own", "(issue 23's numbers; docs/security.md says what each promises):", ""]
    lines += [f"- {n}. {what}: `{test}`" for n, what, test in ELSEWHERE]
    lines += ["", *SECURITY]
    return "\n".join(lines) + "\n"


#: issue 23's cases tested outside the catalogue: (case, what, test)
ELSEWHERE = [
    ("1-3", "a command-line value that would make Hydra call Python or load a preset from "
     "elsewhere", "tests/test_security.py::test_no_command_line_value_makes_hydra_call_python"),
    ("4", "a job log written elsewhere",
     "tests/test_security.py::test_a_job_log_cannot_be_written_elsewhere"),
    ("6-8", "a server's password in a sweep (tags, sweep folder, pickles, output)",
     "tests/test_security.py::test_a_sweeps_password_is_in_no_store_file_or_output"),
    ("7", "a database password in the sweep records",
     "tests/test_security.py::test_sweep_records_mask_a_database_password"),
    ("9", "`--cfg` and `--info` printing a password",
     "tests/test_security.py::test_printed_configs_mask_a_database_password"),
    ("9", "an sqlite URI's `?password=` in a file name",
     "tests/test_security.py::test_a_sqlite_query_is_in_no_file_name"),
    ("10", "the tracking server going away mid-run",
     "tests/test_security.py::test_a_server_that_goes_away_mid_run_is_one_masked_line"),
    ("15", "an interrupt a library swallowed",
     "tests/test_faults.py::test_an_interrupt_a_library_swallowed_still_ends_the_run_killed"),
    ("16", "a cache manifest linked to /dev/zero, a pipe, or oversized",
     "tests/test_faults.py::test_a_cache_manifest_that_never_ends_is_not_read"),
    ("17", "the artifact folder deleted mid-run",
     "tests/test_faults.py::test_a_run_whose_artifacts_did_not_all_land_is_not_finished"),
    ("19", "orphans in another experiment",
     "tests/test_faults.py::test_orphans_of_every_experiment_are_ended_at_the_next_start"),
    ("20", "a model file's stored config of another shape",
     "tests/test_bad_inputs.py::test_a_model_files_stored_config_of_another_shape_is_one_line"),
    ("21", "`$SPIKETUNE_CACHE_DIR` naming a file",
     "tests/test_faults.py::test_a_cache_folder_that_is_a_file_is_refused_before_anything_runs"),
    ("21", "the store file deleted mid-run",
     "tests/test_faults.py::test_a_store_file_deleted_mid_run_is_one_line"),
    ("21", "`https://` against a plain-http server",
     "tests/test_faults.py::test_an_https_uri_against_an_http_server_is_one_line_at_once"),
]


#: the end of docs/bad-inputs.md: what these checks are, and what they are not
SECURITY = """\
## What is and is not a security boundary

docs/security.md is the threat model: what is trusted, and what each untrusted source can and
cannot do, each promise with its test. In short:

- **A config is code.** A YAML file in `conf/`, an `experiment=` preset or a `hydra/` group can
  make Hydra import and call Python (callbacks, launchers, logging handlers): only use config
  folders you would run as a script. spiketune itself instantiates nothing from configs; it picks
  components by registry name. What the checks do stop is the command line reaching that
  machinery: no `_target_`-style key, added callback, environment variable or logging class under
  `hydra.` may come from an override, no `oc.create`/`oc.decode` anywhere, no interpolation under
  Hydra's instantiated parts; a group choice is an option's name, never a path, and
  `hydra.searchpath` is refused, so no preset loads from outside `conf/`.
- **The working directory is not code.** `python -m framework` and `spiketune` never import from
  the folder they run in (a `plugins/` or `hydra_plugins/` folder there is ignored).
- **Plugins are code**: every module in `plugins/` and every `spiketune.analyses` entry point is
  imported at start-up. Install only plugins you trust.
- **A model file is data, read in safe mode**: Keras 3 files load with `safe_mode=True`, Lambda
  layers and custom classes are refused, and a zip that would unpack beyond `limits.memory_gb` is
  refused unread. A Keras 2 SavedModel folder holds TensorFlow graphs that run when called: load
  only models you trust.
- **Data files are data**: `.npz` archives are read with `allow_pickle=False` and size-checked
  before they are unpacked, csv files as text, and a path that is not a regular file (a pipe, a
  device) is refused rather than waited on.
- **The MLflow store is trusted**: anyone who can write to it can change what runs report.
  A password written into `tracking.uri` (`postgresql://user:pw@...`, `https://user:pw@...`,
  `?token=...`) is used to connect and masked as `***` in everything spiketune records: params,
  tags, `config.yaml` and the model's config, the terminal, the job's log and Hydra's saved
  configs (framework/redact.py; tests/test_server.py checks a real one). It still passes through
  the process's command line, where `ps` shows it to other users of the machine, and the shell's
  history: better leave it out of the URI, in MLflow's environment variables
  (`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`) or PostgreSQL's `~/.pgpass`.
""".splitlines()


def test_the_tests_listed_beyond_the_table_exist():
    import re

    missing = [test for _, _, test in ELSEWHERE if not re.search(
        rf"^def {test.split('::')[1]}\(", (REPO / test.split("::")[0]).read_text(), re.M)]
    assert missing == []


def test_docs_table_lists_every_case():
    assert DOC.exists(), "run: python tests/test_bad_inputs.py"
    text = DOC.read_text()
    for c in CASES:
        assert f"| `{c.id}` |" in text, (
            f"{c.id} missing from {DOC}; run python tests/test_bad_inputs.py")
    assert text == table(), f"{DOC} is out of date; run: python tests/test_bad_inputs.py"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(table())
    print(f"wrote {DOC} ({len(CASES)} cases)")
