"""The trained rate network as an MLflow model (the pyfunc flavour), logged with every Keras run.

:func:`log_network` logs, under the name ``model`` (an MLflow 3 logged model linked to the run, so
``runs:/<run id>/model`` and ``models:/<model id>`` both load it), these artifacts:

* ``keras_model.keras``: the Keras network as built (its architecture; NengoDL's trained
  parameters replace its weights on conversion, as in the run),
* ``params.npz``: the NengoDL parameters training left (``sim.save_params``),
* ``config.yaml``: the run's config, resolved, including the values resolved from the data
  (``conversion.layer_scales``): with ``params.npz`` it rebuilds the spiking network too
  (:meth:`RateNetwork.converter` with ``spiking=True``),
* ``network.json``: the input shape, the outputs, the read-out pooling of sequences, versions,
* ``calibration.npz``: ``conversion.calibrate=bias``'s input shift of each neuron, one array per
  layer in its activation units (none: no arrays); :meth:`RateNetwork.spiking_simulator` adds
  them, so the spiking network it builds is the run's.

``mlflow.pyfunc.load_model(uri).predict(x)`` converts the network with the neurons' rate versions
and no synapses, loads the parameters and predicts one step in NengoDL: the computation of
:func:`framework.simulation.evaluate_rates`, so it returns what the run's rate network returned
(``tests/test_model_flavour.py`` holds it to 1e-5). ``x`` is shaped like the dataset's inputs
(``(n, features)``, ``(n, h, w, c)``, or ``(n, time bins, channels)`` for sequences), float32
(the model's signature; NengoDL computes in float32 whatever it is given); the output is
``(n, outputs)``: logits for classification, the regression targets' units otherwise.

Loading needs this package importable (it is listed in the model's requirements, with the locked
TensorFlow, tf-keras, Nengo, NengoDL and MLflow versions); the run's ``spiketune.version`` and
``mlflow.source.git.commit`` tags say which code to install.

The model is logged as MLflow "models from code": its code is :data:`MODEL_CODE`, a script that
imports ``RateNetwork`` and hands MLflow an instance, run whenever the model is loaded (no pickled
object that only unpickles under the same library versions). ``RateNetwork`` subclasses
``mlflow.pyfunc.PythonModel``, so it is built on first use (the module's ``__getattr__``):
importing this module imports neither MLflow nor TensorFlow.

A simulator is built on the first ``predict`` and kept for the next ones of the same batch size
(``min(simulation.minibatch_size, n)``, as the run batched them); another size builds another,
which takes seconds.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from framework import __version__, neurons, quiet
from framework.batches import as_steps, pad_to
from framework.conversion import Conversion, InitialVoltage
from framework.errors import UserError
from framework.networks.base import TrainedNetwork
from framework.neurons import NEURONS, NeuronConfig
from framework.redact import redact
from framework.tracking.store import DETAIL, retry, scratch_dir, use_uri

#: the model's name in the run (``runs:/<run id>/model``)
NAME = "model"
#: how many test inputs make the model's input example
N_EXAMPLE = 5
#: distributions the model needs at load, at the versions of the environment that logged it
REQUIREMENTS = ("spiketune", "tensorflow", "tf-keras", "nengo", "nengo-dl", "numpy", "omegaconf",
                "mlflow")


#: the model's code (MLflow "models from code"): what ``mlflow.pyfunc.load_model`` runs
MODEL_CODE = '''"""spiketune's rate network as an MLflow pyfunc model (framework.tracking.model)."""
import mlflow

from framework.tracking.model import RateNetwork

mlflow.models.set_model(RateNetwork())
'''


def check_register(name: str) -> None:
    """Refuse a ``tracking.register`` name the model registry would refuse, before the run.

    Raises
    ------
    UserError
        Naming ``tracking.register``: blank, or holding ``/`` or ``:`` (MLflow's rule).
    """
    if name and (not name.strip() or any(c in name for c in "/:")):
        raise UserError(f"tracking.register: {name!r} cannot name a registered model (no '/' or "
                        f"':', not blank)")


# --------------------------------------------------------------------------------- the model
class _RateNetworkMethods:
    """The methods of :class:`RateNetwork` (the class itself also derives from MLflow's
    ``PythonModel``, which is why it is assembled on first use)."""

    #: (minibatch size, simulator, input node, output probe) of the simulator built last
    _sim: tuple[int, Any, Any, Any] | None = None

    def load_context(self, context: Any) -> None:
        """Read the config, shapes and calibration; the NengoDL simulator is built on the first
        predict."""
        self._files = {k: Path(v) for k, v in context.artifacts.items()}
        self._net = json.loads(self._files["network"].read_text())
        self._cfg = OmegaConf.load(self._files["config"])
        self._sim = None
        self.calibration: dict[str, np.ndarray] = {}
        if "calibration" in self._files:  # models logged before 2026-12-07 have none
            with np.load(self._files["calibration"]) as shifts:
                self.calibration = {name: np.asarray(shifts[name]) for name in shifts.files}

    # unannotated on purpose: MLflow reads predict's type hints as a model signature (and warns
    # that Any is not one); the run's signature is inferred from its data (_signature)
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """The rate network's outputs (n, outputs) for inputs ``model_input`` (n, *input shape).

        Parameters
        ----------
        context : mlflow.pyfunc.PythonModelContext
        model_input : array-like
            Inputs in the units the run's network got them (after ``dataset.scaling``).
        params : dict, optional
            Unused (MLflow's inference parameters).
        """
        x = np.asarray(model_input, dtype=np.float32)
        shape = tuple(self._net["input_shape"])
        if x.ndim == len(shape):  # one input without its batch axis
            x = x[None]
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"the network takes inputs of shape (n, {', '.join(map(str, shape))})"
                             f", got {x.shape}")
        n = len(x)
        if n == 0:
            return np.zeros((0, self._net["n_outputs"]), np.float32)
        mb = min(int(self._cfg.simulation.minibatch_size), n)  # as evaluate_rates batches them
        sim, inp, out_p = self._simulator(mb)
        y = sim.predict({inp: pad_to(as_steps(x, self._net["sequence"]), mb)}, verbose=0)
        y = np.asarray(y[out_p][:n])
        if self._net["sequence"]:  # one step per time bin: the bins the spiking read-out covers
            return np.asarray(y[:, -int(self._net["readout_bins"]):].mean(axis=1))
        return np.asarray(y[:, -1])

    def conversion(self) -> Conversion:
        """How the run converted its network: neuron type, firing-rate scales, seed, initial
        voltage and :attr:`calibration`."""
        cfg = self._cfg
        return Conversion(_neuron_type(cfg.neuron), float(cfg.simulation.scale_firing_rates),
                          {str(k): float(v) for k, v in cfg.conversion.layer_scales.items()},
                          int(cfg.seed), calibration=dict(self.calibration),
                          initial_voltage=InitialVoltage(
                              str(cfg.conversion.get("initial_voltage", "uniform"))))

    def converter(self, spiking: bool = False) -> tuple[Any, Path]:
        """The network converted as the run converted it.

        Parameters
        ----------
        spiking : bool
            False: the rate network (the neurons' rate versions, no synapses), as ``predict``
            runs it. True: the spiking network of the run's simulation (``neuron`` as configured,
            ``simulation.synapse`` on every connection, s, ``conversion.initial_voltage``),
            without the input shifts of ``conversion.calibrate=bias``: those are connections the
            parameters do not hold, which :meth:`spiking_simulator` adds.

        Returns
        -------
        (nengo_dl.Converter, pathlib.Path)
            The converter, and the parameters to load into a simulator of its network
            (``sim.load_params(str(path))``).
        """
        quiet.tensorflow()
        import tensorflow as tf

        keras_model = tf.keras.models.load_model(str(self._files["keras"]), compile=False)
        synapse = self._cfg.simulation.synapse if spiking else None
        conv = self.conversion().convert(keras_model, synapse=synapse, rate=not spiking)
        return conv, self._files["params"].with_suffix("")

    def spiking_simulator(self, minibatch_size: int = 1) -> tuple[Any, Any, Any]:
        """The run's spiking network in a NengoDL simulator, trained parameters and calibration
        shifts in place (:meth:`framework.conversion.Conversion.simulator`, as the run built it).

        Parameters
        ----------
        minibatch_size : int
            Samples per ``predict_on_batch`` call.

        Returns
        -------
        (nengo_dl.Simulator, nengo.Node, nengo.Probe)
            The simulator (the caller closes it), the input node and the output probe. Its inputs
            are ``(minibatch_size, steps, features)``, each step ``simulation.dt`` s long; the
            probe's output is filtered by ``simulation.synapse``, as the run read it out.
        """
        conv, params = self.converter(spiking=True)
        keras_model = conv.model
        sim = self.conversion().simulator(conv, keras_model, params, minibatch_size)
        return sim, conv.inputs[keras_model.inputs[0]], conv.outputs[keras_model.outputs[0]]

    def _simulator(self, minibatch: int) -> tuple[Any, Any, Any]:
        """One NengoDL simulator of the rate network, rebuilt only when the batch size changes
        (building one takes seconds; NengoDL fixes the minibatch size when it builds)."""
        if self._sim is not None and self._sim[0] == minibatch:
            return self._sim[1], self._sim[2], self._sim[3]
        import nengo_dl

        self.close()
        conv, params = self.converter(spiking=False)
        keras_model = conv.model
        sim = nengo_dl.Simulator(conv.net, minibatch_size=minibatch, seed=int(self._cfg.seed),
                                 progress_bar=False)
        sim.load_params(str(params))
        inp, out_p = conv.inputs[keras_model.inputs[0]], conv.outputs[keras_model.outputs[0]]
        self._sim = (minibatch, sim, inp, out_p)
        return sim, inp, out_p

    def close(self) -> None:
        """Close the simulator (its TensorFlow graph), if one was built."""
        if self._sim is not None:
            sim, self._sim = self._sim[1], None
            sim.close()

    def __del__(self) -> None:
        # NengoDL warns about a simulator garbage-collected while open
        with contextlib.suppress(Exception):
            self.close()


def _neuron_type(node: Any) -> Any:
    """The Nengo neuron type of a config's ``neuron`` node (its schema from the registry)."""
    schema = NEURONS.get(str(node.name), "neuron")
    built = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    assert isinstance(built, NeuronConfig)  # the registry's schema, filled from the node
    return neurons.build(built)


_built: dict[str, type] = {}


def __getattr__(name: str) -> type:
    if name == "RateNetwork":
        if name not in _built:
            import mlflow.pyfunc

            cls = type("RateNetwork", (_RateNetworkMethods, mlflow.pyfunc.PythonModel),
                       {"__module__": __name__, "__qualname__": "RateNetwork",
                        "__doc__": "The run's rate network as an MLflow pyfunc model (see the "
                                   "module docstring)."})
            _built[name] = cls
        return _built[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------- logging
def requirements() -> list[str]:
    """:data:`REQUIREMENTS` pinned to the installed versions (MLflow would otherwise load the
    model in a subprocess to guess them: a second TensorFlow process and tens of seconds)."""
    import importlib.metadata

    out = []
    for dist in REQUIREMENTS:
        try:
            out.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(dist)
    return out


def _save_unchecked(validate_serving_input: bool = True, **kwargs: Any) -> Any:
    """``mlflow.pyfunc.save_model`` without Model.log's serving-input check, which would load the
    model again and build a second NengoDL simulator to predict the example the run computed."""
    import mlflow.pyfunc

    return mlflow.pyfunc.save_model(**kwargs)


#: mlflow.pyfunc as Model.log sees a flavour (its name, its save_model), minus that check
_PYFUNC_UNCHECKED = SimpleNamespace(__name__="mlflow.pyfunc", save_model=_save_unchecked)


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """No MLflow INFO lines ("Validating input example ...") or artifact progress bars while the
    model is logged: the run's console says what happened, once."""
    import logging
    import os

    logger = logging.getLogger("mlflow")
    level, bar = logger.level, os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    logger.setLevel(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        logger.setLevel(level)
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


def _signature(x: np.ndarray, y: np.ndarray) -> Any:
    """Tensor signature, float32 in and out (NengoDL computes in float32, whatever it is given;
    MLflow checks tensor dtypes exactly), the batch axis free."""
    from mlflow.models import infer_signature

    return infer_signature(x.astype(np.float32), y.astype(np.float32))


def log_network(tracker: Any, net: TrainedNetwork, config_yaml: str,
                register: str = "") -> dict[str, Any]:
    """Log ``net`` as the run's MLflow model; register it when ``register`` names a model.

    Parameters
    ----------
    tracker : framework.tracking.Tracker
        The run (its store and run id; no global active run is used or left).
    net : TrainedNetwork
    config_yaml : str
        The run's resolved config, as it rebuilds the network (``config.yaml`` beside the model).
    register : str, optional
        ``tracking.register``: a registered model to add this one to as a new version.

    Returns
    -------
    dict
        ``uri`` (``runs:/<run id>/model``), ``model_id``, ``seconds`` (wall time spent logging),
        and with ``register`` the ``version`` created.
    """
    t0 = time.perf_counter()
    data = net.data
    tmp = scratch_dir()
    try:
        artifacts = _artifacts(tmp, net, config_yaml, tracker.run_id)
        x_example = np.asarray(data.x_test[:N_EXAMPLE], dtype=np.float32)
        y_example = np.asarray(net.rate_out[:N_EXAMPLE])
        import mlflow.pyfunc
        from mlflow.models import Model

        # models from code (MLflow's advice): the model is this script, run at load, instead of
        # a pickled instance that only unpickles under the same library versions
        code = tmp / "rate_network.py"
        code.write_text(MODEL_CODE)
        client = tracker.client
        # created here, in the run's experiment: Model.log would put it in the process's active
        # experiment (Default, artifacts under ./mlruns of whatever the working directory is)
        logged = retry(client.create_logged_model, tracker.experiment_id, name=NAME,
                       source_run_id=tracker.run_id,
                       params={k: v[:6000] for k, v in client.get_run(tracker.run_id)
                               .data.params.items()},
                       tags={"spiketune.run_name": tracker.run_name or ""})
        final = last_step(client, tracker.run_id)  # the model shows the loss training ended at
        with use_uri(tracker.uri), _quiet_mlflow():
            info = Model.log(
                None, name=NAME, flavor=_PYFUNC_UNCHECKED, run_id=tracker.run_id,
                model_id=logged.model_id, python_model=str(code),
                artifacts=artifacts,
                signature=_signature(x_example, y_example), input_example=x_example,
                pip_requirements=requirements(),
                metadata={"spiketune_version": __version__, "run_id": tracker.run_id,
                          "what": "spiketune rate network: rate neurons, no synapses, one step"},
                validate_serving_input=False, step=final)
            link_metrics(client, tracker.run_id, info.model_id, final)
            retry(client.set_logged_model_tags, info.model_id, describe_model(data, tracker))
            out = {"uri": f"runs:/{tracker.run_id}/{NAME}", "model_id": info.model_id}
            if register:
                # MLflow prints its own two lines about it; the run's console says it once
                with contextlib.redirect_stderr(io.StringIO()):
                    version = mlflow.register_model(info.model_uri, register,
                                                    await_registration_for=0)
                out["version"] = str(version.version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["seconds"] = time.perf_counter() - t0
    return out


def _artifacts(tmp: Path, net: TrainedNetwork, config_yaml: str, run_id: str) -> dict[str, str]:
    """Write the model's files into ``tmp`` (the module docstring lists them); MLflow's
    ``artifacts`` mapping of them (name -> path)."""
    data = net.data
    net.model.save(str(tmp / "keras_model.keras"))
    shutil.copy2(f"{net.params}.npz", tmp / "params.npz")
    (tmp / "config.yaml").write_text(config_yaml)
    record = conversion_record(config_yaml)  # so model.params=<this params.npz> never guesses
    (tmp / "params.conversion.json").write_text(json.dumps(record, indent=1))
    network = {"input_shape": list(data.x_test.shape[1:]), "n_outputs": int(data.n_outputs),
               "sequence": bool(data.sequence), "readout_bins": net.readout_bins,
               "task": data.task, "dataset": data.name, "spiketune_version": __version__,
               "run_id": run_id}
    (tmp / "network.json").write_text(json.dumps(network, indent=1))
    shifts: dict[str, Any] = {name: np.asarray(shift, np.float64)
                              for name, shift in net.calibration.items()}
    np.savez(tmp / "calibration.npz", **shifts)
    return {name: str(tmp / file) for name, file in (
        ("keras", "keras_model.keras"), ("params", "params.npz"),
        ("params_conversion", "params.conversion.json"), ("config", "config.yaml"),
        ("network", "network.json"), ("calibration", "calibration.npz"))}


def describe_model(data: Any, tracker: Any) -> dict[str, str]:
    """The logged model's description (its ``mlflow.note.content`` tag, Markdown): what it
    computes and its signature in words, with units."""
    shape = ", ".join(["n", *(str(d) for d in data.x_test.shape[1:])])
    kind = ("time bins × channels, the last bins pooled as the run read them out"
            if data.sequence else "one value per input feature")
    out = (f"logits of the {data.n_outputs} classes (argmax: the class; not probabilities)"
           if data.classification else
           f"the {data.n_outputs} regression targets, in the dataset's target units"
           + (" (cos θ, sin θ of the movement direction: atan2 gives the angle)"
              if data.has_directions and data.n_outputs == 2 else ""))
    text = (f"**spiketune rate network** of run **{tracker.run_name}**: the trained network "
            f"with its neurons' rate versions and no synapses, one step in NengoDL (what the "
            f"run's `rate/*` metrics scored).\n\n"
            f"| | signature |\n| --- | --- |\n"
            f"| input `x` | float32, shape ({shape}): {kind}, in the run's input units after "
            f"its `dataset.scaling` (`scaling.json` beside the run: x' = (x − offset) / scale) |\n"
            f"| output | float32, shape (n, {data.n_outputs}): {out} |\n\n"
            f"`mlflow.pyfunc.load_model(uri).predict(x)`; `config.yaml` and `params.npz` rebuild "
            f"the spiking network too, and `spiking_simulator()` builds it with its calibration "
            f"(framework/tracking/model.py).")
    return {"mlflow.note.content": text}


#: the per-epoch series whose last value the logged model carries
LOSS = "train/loss"


def last_step(client: Any, run_id: str) -> int:
    """The last epoch of the run's :data:`LOSS` (0 without one). ``Model.log`` links the run's
    metrics at one step to the model: this one, so the model shows the loss training ended at,
    not epoch 0's (:func:`link_metrics` links the rest)."""
    return max((m.step for m in retry(client.get_metric_history, run_id, LOSS)), default=0)


def link_metrics(client: Any, run_id: str, model_id: str, step: int) -> None:
    """Link the run's other metrics (logged at step 0, one value each) to the logged model when
    ``Model.log`` linked those at ``step`` > 0 (the last epoch's :data:`LOSS`); MLflow's
    ``system/*`` series are not the model's."""
    from mlflow.entities import Metric

    if not step:  # Model.log linked the step-0 metrics itself
        return
    run = retry(client.get_run, run_id)
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0, run_id=run_id, model_id=model_id)
               for key, value in run.data.metrics.items()
               if key != LOSS and not key.startswith(("system/", DETAIL))]
    for i in range(0, len(metrics), 1000):  # MLflow's log_batch limit
        retry(client.log_batch, run_id, metrics=metrics[i:i + 1000])


def conversion_record(config_yaml: str) -> dict[str, Any]:
    """What ``params.npz`` was trained under, from the run's resolved config: the firing-rate
    scales and the neuron type (``params.conversion.json``, read back by
    :func:`framework.resolve.params_record` when the file is ``model.params``)."""
    cfg = OmegaConf.create(config_yaml)
    return {"scale_firing_rates": float(cfg.simulation.scale_firing_rates),
            "layer_scales": {str(k): float(v) for k, v in
                             (cfg.conversion.get("layer_scales") or {}).items()},
            "neuron": str(cfg.neuron.name)}


def log_run_model(tracker: Any, net: TrainedNetwork, config: Any, register: str,
                  console: Any) -> dict[str, float]:
    """Log the trained rate network as the run's MLflow model, after every metric, so the logged
    model carries them; returns ``time/model_s``, what it cost (nothing when it failed).

    Parameters
    ----------
    tracker : framework.tracking.store.Tracker
    net : TrainedNetwork
    config : omegaconf.DictConfig
        The run's config as resolved (with ``conversion.layer_scales``): it rebuilds the network.
    register : str
        ``tracking.register``: a model asked for by name must be logged, or the run fails.
    console : framework.progress.Console
    """
    console.stage("mlflow", "logging the rate network as an MLflow model"
                  + (f", registering it as '{register}'" if register else ""))
    try:
        info = log_network(tracker, net, redact(OmegaConf.to_yaml(config, resolve=True)),
                           register)
    except Exception as ex:  # noqa: BLE001 - the run's science stands without its model
        why = f"{type(ex).__name__}: {' '.join(str(ex).split())[:300]}"
        if register:  # asked for by name: a run without it has not done what it was asked
            raise RuntimeError(f"tracking.register: the model could not be logged ({why})") \
                from ex
        tracker.tag("spiketune.model", f"not logged: {why}")
        console.say(f"model: not logged ({why}); the run goes on without it")
        return {}
    tracker.metrics({"time/model_s": info["seconds"]})
    tracker.tag("spiketune.model", info["uri"])
    tracker.tag("spiketune.model_id", info["model_id"])
    if register:
        tracker.tag("spiketune.registered_model", f"{register}/{info['version']}")
    console.say(f"          model    {info['uri']} ({info['seconds']:.1f} s)"
                + (f", registered as {register} version {info['version']}" if register else ""))
    return {"time/model_s": info["seconds"]}
