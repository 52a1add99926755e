"""Stage 4, training: ``train(...) -> Trained``, in NengoDL through the neurons' rate approximation.

The network is converted first and trained as converted (``sim.fit``): spiking neurons train through
their rate approximation, as NengoDL does, so the weights fit the neurons that will run them. A ReLU
net trained in Keras and swapped to LIF afterwards scored 35-50% spiking on digits; trained here it
scored 95%.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framework.batches import as_steps, pad_to, readout_bins, targets
from framework.conversion import Conversion
from framework.data.base import Data
from framework.errors import DivergenceError, UserError, check_interrupt
from framework.paths import existing_path
from framework.regularizers import (
    BiasRange,
    GainRange,
    RangeConfig,
    RateRegularizer,
    Regularizers,
    XInterceptRegularizer,
    add_regularizers,
)
from framework.schema import bounded

#: fine-tuning: the fraction of training samples held back to choose the epoch kept
VALIDATION_FRACTION = 0.15
#: Adam's step when ``training.learning_rate`` is unset and the network trains from its initial
#: weights (a loaded model's fine-tuning step is framework.resolve.FINE_TUNE_LEARNING_RATE)
LEARNING_RATE = 0.01


@dataclass
class TrainingConfig:
    """The ``training`` node: how NengoDL fits the converted network."""

    epochs: int = bounded(60, ge=0)  # passes over the training split; 0 keeps the initial weights
    batch_size: int = bounded(32, ge=1)  # samples per gradient step
    # Adam step size; None: 0.01, or 0.003 fine-tuning a loaded model (framework/resolve.py)
    learning_rate: float | None = bounded(None, gt=0.0)
    # a batch loss this many times the lowest so far counts as diverged
    divergence_factor: float = bounded(1e3, gt=1.0)
    cache: bool = True  # reuse trained weights for an identical training config
    x_intercepts: XInterceptRegularizer = field(default_factory=XInterceptRegularizer)
    rates: RateRegularizer = field(default_factory=RateRegularizer)
    biases: BiasRange = field(default_factory=BiasRange)
    gains: GainRange = field(default_factory=GainRange)  # native ensembles only (see GainRange)

    def ranges(self) -> list[RangeConfig]:
        """The range regularisers, in the order they are applied and logged."""
        return [self.x_intercepts, self.rates, self.biases, self.gains]


@dataclass
class Trained:
    """Trained parameters and what training recorded.

    Attributes
    ----------
    params : pathlib.Path
        ``sim.save_params`` file (without ``.npz``) of the trained network.
    loss : list of float
        Training loss per epoch.
    regularizers : dict
        ``name -> value`` stats the regularisers logged (fractions in range before/after).
    cache_key : str
        The training cache key (:func:`framework.cache.cache_key`) when the cache was used, else
        empty.
    """

    params: Path
    loss: list[float] = field(default_factory=list)
    regularizers: dict[str, float] = field(default_factory=dict)
    cache_key: str = ""


def loss_fn(data: Data, bins: int | None) -> Callable[[Any, Any], Any]:
    """The NengoDL loss on the output probe; for sequences (``bins`` given), on the mean of the
    output over the last ``bins`` time bins, one per training step (see :func:`readout_bins`)."""
    import tensorflow as tf

    def pool(y_pred: Any) -> Any:
        if bins:  # sequence: the read-out is the mean of the last bins
            return tf.reduce_mean(y_pred[:, -bins:], axis=1, keepdims=True)
        return y_pred

    if data.classification:
        def loss(y_true: Any, y_pred: Any) -> Any:
            return tf.keras.losses.sparse_categorical_crossentropy(
                y_true[:, -1:], pool(y_pred), from_logits=True)
    else:
        def loss(y_true: Any, y_pred: Any) -> Any:
            return tf.reduce_mean(tf.square(y_true[:, -1:] - pool(y_pred)), axis=-1)
    return loss


def divergence_guard(factor: float, lr: float, scaled: bool, key: str = "loss",
                     patience: int = 5, rise: float = 10.0) -> Any:
    """A Keras callback that stops training whose loss has diverged, judged by its own trend.

    Diverged is a non-finite batch loss, a batch loss ``factor`` times above the lowest batch loss
    so far (the forum thread's 1e35 after 1e2), or an epoch loss that rose ``patience`` epochs in a
    row to ``rise`` times its best. A loss that is large but falling (raw-unit data, a small
    learning rate) trains on, and so does Adam's ordinary wobble (digits at learning rate 0.01:
    0.034 to 0.115 over three epochs, then down again). The advice fits the case: inputs used as
    they are (``scaled`` False) are the likeliest cause, else the learning rate.
    """
    import tensorflow as tf

    advice = (f"lower training.learning_rate (now {lr:g})" if scaled else
              f"the inputs are used as they are (dataset.scaling=none): set "
              f"dataset.scaling=standardize, or lower training.learning_rate (now {lr:g})")

    def stop(what: str) -> None:
        raise DivergenceError(f"training.learning_rate: training diverged ({what}); {advice}")

    class DivergenceGuard(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF: no types
        def __init__(self) -> None:
            super().__init__()
            self.best_batch: float = np.inf  # lowest batch loss so far
            self.epochs: list[float] = []  # epoch losses so far

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.best_batch, self.epochs = np.inf, []

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupt()
            # ``key``: the task loss alone when regularisers add their own terms to "loss"
            loss = float((logs or {}).get(key, 0.0))
            if not np.isfinite(loss):
                stop(f"loss {loss} at batch {batch}")
            if loss > factor * max(self.best_batch, 1e-12):
                stop(f"loss {loss:.3g}, {loss / self.best_batch:.3g} times its lowest so far, "
                     f"{self.best_batch:.3g}")
            self.best_batch = min(self.best_batch, loss)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epochs.append(float((logs or {}).get(key, np.nan)))
            tail = self.epochs[-(patience + 1):]
            if (len(tail) == patience + 1 and all(b > a for a, b in zip(tail, tail[1:]))
                    and tail[-1] > rise * min(self.epochs)):
                stop(f"epoch loss rose {patience} epochs in a row to {tail[-1]:.3g}, from a best "
                     f"of {min(self.epochs):.3g}")

    return DivergenceGuard()


def load_nengo_params(sim: Any, value: str) -> None:
    """Load a ``sim.save_params`` file onto ``sim``'s network, after checking it fits.

    Raises
    ------
    UserError
        Naming ``model.params``: not an npz of arrays, or arrays that do not match the converted
        network's variables (count, or the first shape that differs).
    """
    import tensorflow as tf

    path = existing_path(value, "model.params", (".npz",))
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = [archive[f"arr_{i}"] for i in range(len(archive.files))]
    except (OSError, ValueError, KeyError) as ex:
        raise UserError(f"model.params: cannot read {path.name} as NengoDL parameters "
                        f"(sim.save_params): {' '.join(str(ex).split())[:200]}") from None
    weights = list(sim.keras_model.weights)
    if len(arrays) != len(weights):
        raise UserError(f"model.params: {path.name} holds {len(arrays)} arrays, the converted "
                        f"network has {len(weights)} parameters (another network's file?)")
    for i, (a, w) in enumerate(zip(arrays, weights)):
        if tuple(a.shape) != tuple(w.shape):
            raise UserError(f"model.params: {path.name} array {i} has shape {tuple(a.shape)}, "
                            f"the network's parameter {i} ({w.name}) has {tuple(w.shape)}")
    tf.keras.backend.batch_set_value(zip(weights, arrays))


def epoch_callback(on_epoch: Callable[[int, float], None], key: str) -> Any:
    """A Keras callback handing each finished epoch's ``key`` loss to ``on_epoch(epoch, loss)``
    as training runs (epoch from 0), so a tracker can log it with that epoch's own timestamp;
    its ``flush()`` hands over the epoch cut short (the divergence guard stopped it mid-epoch),
    with the loss so far, so a diverged run shows its blow-up."""
    import tensorflow as tf

    class EpochLoss(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF: no types
        def __init__(self) -> None:
            super().__init__()
            self.epoch, self.partial = 0, float("nan")

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch, self.partial = int(epoch), float("nan")

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(key)  # Keras's running mean over the epoch so far
            self.partial = float("nan") if value is None else float(value)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(key)
            self.partial = float("nan")
            if value is not None:
                on_epoch(int(epoch), float(value))

        def flush(self) -> None:
            if not np.isnan(self.partial):  # an infinite loss is the blow-up itself: kept
                on_epoch(self.epoch, self.partial)

    return EpochLoss()


def progress_callback(bar: Any) -> Any:
    """A Keras callback moving the console's ``bar`` on after every epoch, with the loss."""
    import tensorflow as tf

    class Progress(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF: no types
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            bar.update(epoch + 1, f"loss {float((logs or {}).get('loss', np.nan)):.4g}")

    return Progress()


def train(model: Any, data: Data, training: TrainingConfig, simulation: Any,
          conversion: Conversion, *, start: str = "", fit: bool = True, out_dir: Path,
          console: Any, on_epoch: Callable[[int, float], None] | None = None,
          keep_best: bool = False) -> Trained:
    """Convert ``model`` and fit it in NengoDL; save the trained parameters under ``out_dir``.

    Parameters
    ----------
    model : keras.Model
        The network (its initial weights are the starting point).
    data : framework.data.base.Data
        Training split in ``x_train``/``y_train``.
    training : TrainingConfig
        The ``training`` node (epochs, batch size, learning rate, divergence guard, ranges).
    simulation : framework.simulation.SimulationConfig
        Sequences only: the read-out (``readout``, ``readout_steps``, ``n_steps``), so the loss
        pools the time bins the spiking network will be read at.
    conversion : framework.conversion.Conversion
        The neuron type (trained through its rate approximation), firing-rate scales and seed.
    start : str
        NengoDL parameters (``sim.save_params`` .npz) loaded before training (``model.params``).
    fit : bool
        False: the weights are evaluated as they are (a saved model with ``model.train=false``).
    out_dir : pathlib.Path
        Where the trained parameters are saved (``params.npz``).
    console : framework.progress.Console
    on_epoch : callable, optional
        ``on_epoch(epoch, loss)`` after every epoch, while training runs: the task's own loss
        (without the regularisers' terms), as ``Trained.loss`` records it. Training has no
        validation split, so there is no validation loss to hand on.
    keep_best : bool
        Fine-tuning a loaded model: :data:`VALIDATION_FRACTION` of the training samples judge
        each epoch, and the weights that do best on them (the loaded ones included) are kept.
    """
    import nengo_dl
    import tensorflow as tf

    seed = conversion.seed
    out_dir.mkdir(parents=True, exist_ok=True)
    params = out_dir / "params"
    converter = conversion.convert(model, synapse=None)
    inp = converter.inputs[model.inputs[0]]
    out_p = converter.outputs[model.outputs[0]]
    regs = add_regularizers(converter, model, data, training.ranges())
    rng = np.random.default_rng(seed)
    samples = np.arange(len(data.x_train))
    val = None
    if keep_best and fit and training.epochs > 0 and len(samples) >= 20:
        samples, val = _validation_split(samples, rng)
    batch = min(training.batch_size, len(samples))

    def io(rows: np.ndarray) -> tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
        """Inputs, targets (the task's and the regularisers') and the regularisers' losses."""
        rows = pad_to(rows, batch, rng)
        x = as_steps(data.x_train, data.sequence)[rows]
        terms = regs.losses(x.shape[1], len(x))
        outputs = {out_p: targets(data.y_train, data.classification)[rows]}
        outputs.update({probe: tgt for probe, (_, tgt) in terms.items()})
        return {inp: x}, outputs, {probe: loss for probe, (loss, _) in terms.items()}

    inputs, outputs, reg_losses = io(samples)
    readout = readout_bins(inputs[inp].shape[1], simulation) if data.sequence else None
    losses = {out_p: loss_fn(data, readout), **reg_losses}
    stats: dict[str, float] = {}
    tf.keras.utils.set_random_seed(seed)
    with nengo_dl.Simulator(converter.net, minibatch_size=batch, seed=seed,
                            progress_bar=False) as sim:
        if start:
            load_nengo_params(sim, start)
        stats.update(regs.stats(sim, "before"))
        history: list[float] = []
        epochs = training.epochs if fit else 0
        if epochs > 0:
            history, kept = _fit(sim, regs, training, data, (inputs, outputs, losses, out_p),
                                 epochs, console, on_epoch, None if val is None else io(val)[:2])
            stats.update(kept)
        stats.update(regs.stats(sim, "after"))
        sim.save_params(str(params))
    return Trained(params=params, loss=history, regularizers=stats)


def _validation_split(samples: np.ndarray, rng: np.random.Generator,
                      fraction: float = VALIDATION_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Training samples split into those fitted and those that judge each epoch (fine-tuning)."""
    order = rng.permutation(samples)
    n_val = max(1, int(round(len(order) * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def keep_best_callback(sim: Any, key: str, initial: float) -> Any:
    """A Keras callback that keeps the weights of the epoch with the lowest validation ``key``
    loss, the loaded weights (``initial``, their validation loss) included, and restores them when
    training ends; what it kept is its ``stats`` (``train/best_epoch``: −1 for the loaded
    weights; ``train/val_loss_*``)."""
    import tensorflow as tf

    weights = list(sim.keras_model.weights)

    class KeepBest(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF: no types
        def __init__(self) -> None:
            super().__init__()
            self.best, self.epoch = initial, -1
            self.saved = tf.keras.backend.batch_get_value(weights)
            self.stats: dict[str, float] = {}

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = float((logs or {}).get(f"val_{key}", np.inf))
            if value < self.best:
                self.best, self.epoch = value, epoch
                self.saved = tf.keras.backend.batch_get_value(weights)

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            tf.keras.backend.batch_set_value(zip(weights, self.saved))
            self.stats = {"train/best_epoch": float(self.epoch), "train/val_loss_start": initial,
                          "train/val_loss_best": self.best}

    return KeepBest()


def _fit(sim: Any, regs: Regularizers, training: TrainingConfig, data: Data, io: tuple[Any, ...],
         epochs: int, console: Any, on_epoch: Callable[[int, float], None] | None,
         val: tuple[Any, Any] | None = None) -> tuple[list[float], dict[str, float]]:
    """``sim.fit`` for ``epochs`` with the divergence guard, live loss, progress and projection;
    with ``val`` (fine-tuning), the epoch that does best on it is kept. The task's own loss per
    epoch, and what keeping the best epoch recorded (empty without ``val``)."""
    import tensorflow as tf

    inputs, outputs, losses, out_p = io
    # resolved before training (framework.resolve); unset, the from-scratch default
    lr = LEARNING_RATE if training.learning_rate is None else float(training.learning_rate)
    sim.compile(optimizer=tf.optimizers.Adam(lr), loss=losses, loss_weights=regs.weights(out_p))
    bar = console.bar("train", epochs)
    # with regularisers Keras logs the task's own loss under the output probe's name
    task_key = f"{sim.get_name(out_p)}_loss" if regs.active else "loss"
    guard = divergence_guard(training.divergence_factor, lr, scaled=data.scaling != "none",
                             key=task_key)
    # the epoch's loss goes out before the guard looks at it: a diverging epoch is seen
    callbacks = [epoch_callback(on_epoch, task_key)] if on_epoch is not None else []
    callbacks += [guard, progress_callback(bar)]
    # projected ranges: clipped inside the training step, else by a per-batch callback
    callbacks += [regs.projection_callback()] if regs.projected and not regs.constrain() else []
    keep = None
    if val is not None:  # judged on training samples the fit does not see
        start = sim.evaluate(*val, verbose=0)
        keep = keep_best_callback(sim, task_key, float(start[task_key]))
        callbacks.append(keep)
    try:
        fit = sim.fit(inputs, outputs, epochs=epochs, verbose=0, shuffle=True,
                      callbacks=callbacks, validation_data=val)
    except DivergenceError:
        if on_epoch is not None:
            callbacks[0].flush()  # the diverging epoch's loss so far
        raise
    return [float(v) for v in fit.history[task_key]], {} if keep is None else keep.stats
