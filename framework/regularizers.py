"""Training regularisers that keep neurons in range (x-intercepts, firing rates).

``add_regularizers`` adds what the enabled regularisers need (probes, loss terms) to the converted
network before the training simulator is built; :func:`framework.training.train` then passes
``losses()`` and ``weights()`` to ``sim.compile``/``sim.fit`` and logs ``stats()`` before and after
training.

How each penalty reaches its parameters in NengoDL 3.6:

* **x-intercepts** depend only on the ensemble's bias and gain: x_int = (J_th − bias) / gain. The
  converter fixes gain = ``scale_firing_rates`` and trains bias, so the penalty only has to act on
  the bias. Nengo offers no probe of an ensemble's bias (``Neurons.probeable`` is ``output``,
  ``input`` and state; ``input`` is J = gain·x + bias, which mixes in the data), so the loss is
  attached to a probe on the layer's neurons only to get a slot in ``sim.compile``; it ignores the
  probed values and gathers the live biases from the simulator's trainable variable (what
  ``sim.data[ens].bias`` reads), which is differentiable. The penalty is the mean over neurons of
  gain × (distance of the x-intercept outside the range shrunk by :data:`X_MARGIN`): the bias
  change (J) that would bring the neuron back, a linear hinge whose pull does not fade near the
  edge. The simulator is bound by ``stats(sim, "before")``, which ``train`` calls before
  ``sim.compile``.
* **rates** are read from a probe on the layer's neurons. During ``sim.fit`` NengoDL runs spiking
  types through their rate approximation, so the probe gives rates × amplitude. For the before /
  after statistics the training network is set to ``learning_phase=True`` (NengoDL's documented
  way to make ``sim.predict`` run in training mode), so those are the same rates.

Note on speed: biases are trained in the converter's scaled units (J = scale × Keras bias), so one
Adam step moves an x-intercept by at most about ``learning_rate / scale_firing_rates``; a range far
from where the x-intercepts start (J_th / scale, i.e. 0.01 for LIF at scale 100) needs
``distance × scale / learning_rate`` steps to reach.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framework.errors import UserError

#: the x-intercept penalty starts this fraction of the range's width inside each bound, so the
#: balance point against the task loss lies inside [low, high] rather than on its edge
X_MARGIN = 0.05
#: kinds whose range is enforced by projecting the biases after every training batch
PROJECTED = ("x_intercepts", "biases")


@dataclass
class _Term:
    """One regularised layer of one regulariser.

    Attributes
    ----------
    kind : str
        ``x_intercepts`` or ``rates``.
    layer : str
        Keras layer name.
    neurons : nengo.ensemble.Neurons
        The layer's neurons in the training network.
    probe : nengo.Probe
        Probe on ``neurons`` whose loss slot carries the penalty.
    low, high : float
        Accepted range: x units (x-intercepts), Hz (rates) or J (biases).
    weight : float
        Loss weight (biases: none; they are only projected).
    """

    kind: str
    layer: str
    neurons: Any
    probe: Any
    low: float
    high: float
    weight: float
    threshold: float = 1.0  # J_th of the layer's neuron type
    amplitude: float = 1.0  # output per spike·s⁻¹ of the layer's neuron type (as built)


@dataclass
class Regularizers:
    """The enabled regularisers of one training run (none enabled: every method is a no-op).

    Attributes
    ----------
    terms : list of _Term
        One entry per (regulariser, layer).
    inputs : dict
        ``{input node: training inputs (n, steps, features)}`` for the rate statistics.
    """

    terms: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    _sim: Any = None
    #: layer -> (trainable base variable, indices of the layer's biases in it, gain (J per unit x))
    _bias_params: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.terms)

    # ------------------------------------------------------------------ losses for sim.compile
    def losses(self, n_steps: int, n_samples: int) -> dict:
        """``probe -> (loss function, target array)`` to add to ``sim.compile``/``sim.fit``.

        Parameters
        ----------
        n_steps : int
            Steps per training sample (targets need the same time axis as the inputs).
        n_samples : int
            Training samples (targets need the same batch axis).

        Returns
        -------
        dict
            The targets are zeros of shape (n_samples, n_steps, 1): every penalty ignores them.
        """
        target = np.zeros((n_samples, n_steps, 1), np.float32)
        return {t.probe: (self._loss(t), target) for t in self.terms if t.probe is not None}

    def weights(self, out_probe) -> dict | None:
        """Loss weights per probe for ``sim.compile``: 1 for the task, each term's own weight."""
        if not self.terms:
            return None
        w = {out_probe: 1.0}
        w.update({t.probe: float(t.weight) for t in self.terms if t.probe is not None})
        return w

    # ------------------------------------------------------------------------------ projection
    @property
    def projected(self) -> bool:
        return any(t.kind in PROJECTED for t in self.terms)

    def project(self) -> None:
        """Clip each bound bias into its term's range (projected gradient descent).

        An x-intercept range [low, high] is the bias range [J_th − gain·high, J_th − gain·low]
        (gain > 0, fixed by the conversion); a bias range is taken as it is. After every training
        batch the biases the step moved outside are put back on the edge, so a run ends with every
        regularised neuron inside, whatever the scale or learning rate, and the task loss learns
        around the constraint.
        """
        import tensorflow as tf

        for t in self.terms:
            if t.kind not in PROJECTED:
                continue
            base, idx, gain = self._bias_params[t.layer]
            if t.kind == "x_intercepts":
                lo, hi = t.threshold - gain * t.high, t.threshold - gain * t.low
            else:
                lo, hi = np.full_like(gain, t.low), np.full_like(gain, t.high)
            current = tf.gather(base, idx, axis=0)
            shape = (-1,) + (1,) * (len(current.shape) - 1)
            clipped = tf.clip_by_value(current, lo.reshape(shape), hi.reshape(shape))
            base.scatter_nd_update(idx[:, None], tf.cast(clipped, base.dtype))

    def projection_callback(self):
        """A Keras callback running :meth:`project` after every training batch."""
        import tensorflow as tf

        regs = self

        class Project(tf.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                regs.project()

        return Project()

    def _loss(self, term: _Term) -> Callable:
        import tensorflow as tf

        if term.kind == "rates":
            def rate_loss(y_true, y_pred):
                # mean rate (Hz) of each neuron over the batch and time, then a squared hinge
                r = tf.reduce_mean(y_pred, axis=(0, 1)) / term.amplitude
                return tf.reduce_mean(tf.nn.relu(term.low - r) ** 2
                                      + tf.nn.relu(r - term.high) ** 2)

            rate_loss.__name__ = f"rates_{term.layer}"
            return rate_loss

        def x_intercept_loss(y_true, y_pred):
            if self._sim is None:
                raise RuntimeError("x-intercept regulariser: call stats(sim, 'before') before "
                                   "training, it binds the simulator whose biases are penalised")
            base, idx, gain = self._bias_params[term.layer]
            bias = tf.gather(base, idx, axis=0)
            x_int = (term.threshold - bias) / gain
            margin = X_MARGIN * (term.high - term.low)
            # distance outside the (margin-shrunk) range in x units, times gain: the bias change
            # (J) that would bring the neuron inside, so the penalty is in the trained
            # parameter's units and its gradient (weight / n per bias) does not fade near the edge
            excess = gain * (tf.nn.relu(term.low + margin - x_int)
                             + tf.nn.relu(x_int - term.high + margin))
            return tf.reduce_mean(excess)

        x_intercept_loss.__name__ = f"x_intercepts_{term.layer}"
        return x_intercept_loss

    # ------------------------------------------------------------------------------ statistics
    def stats(self, sim, when: str) -> dict[str, float]:
        """Fractions of neurons inside the ranges: ``reg/<kind>/<layer>/in_range_<when>``.

        Also ``reg/<kind>/in_range_<when>`` over all regularised layers of a kind. Rates are each
        neuron's mean rate (Hz) over the training inputs, in the training (rate) mode. Called with
        ``when="before"`` it binds ``sim`` for the x-intercept loss.

        Parameters
        ----------
        sim : nengo_dl.Simulator
            The training simulator (open).
        when : str
            ``before`` or ``after`` (training).
        """
        if not self.terms:
            return {}
        if when == "before" or self._sim is not sim:
            self._bind(sim)
        values = self.values(sim)
        out: dict[str, float] = {}
        overall: dict[str, list] = {}
        for term in self.terms:
            v = values[(term.kind, term.layer)]
            inside = (v >= term.low) & (v <= term.high)
            out[f"reg/{term.kind}/{term.layer}/in_range_{when}"] = float(inside.mean())
            overall.setdefault(term.kind, []).append(inside)
        for kind, parts in overall.items():
            out[f"reg/{kind}/in_range_{when}"] = float(np.concatenate(parts).mean())
        return out

    def _bind(self, sim) -> None:
        """Find each x-intercept layer's bias in the simulator's trainable variables.

        NengoDL keeps trainable signals in a few concatenated ``base_params`` variables; the bias
        is a slice of one (what ``TensorGraph.get_tensor`` gathers; its cached index tensor cannot
        be shared with the traced loss, so the indices are rebuilt here from the slices). Gains
        are constants of the converted network (= scale_firing_rates), read once, eagerly.
        """
        self._sim = sim
        self._bias_params = {}
        for t in self.terms:
            if t.kind not in PROJECTED:
                continue
            tsig = sim.tensor_graph.signals[sim.model.sig[t.neurons]["bias"]]
            if tsig.key not in sim.tensor_graph.base_params or tsig.minibatched:
                raise UserError(f"training.{t.kind}.layers: the biases of layer '{t.layer}' "
                                f"are not trainable, so they cannot be kept in range")
            idx = np.concatenate([np.arange(a, b, dtype=np.int32) for a, b in tsig.slices])
            gain = np.asarray(sim.data[t.neurons.ensemble].gain, np.float32).ravel()
            self._bias_params[t.layer] = (sim.tensor_graph.base_params[tsig.key], idx, gain)

    def values(self, sim) -> dict[tuple[str, str], np.ndarray]:
        """``(kind, layer) -> per-neuron value``: x-intercepts (x units) or mean rates (Hz)."""
        from framework.analysis import x_intercepts
        from framework.training import pad_to

        out = {}
        rate_terms = [t for t in self.terms if t.kind == "rates"]
        probed = {}
        if rate_terms:
            n = len(next(iter(self.inputs.values())))
            data = {k: pad_to(v, sim.minibatch_size) for k, v in self.inputs.items()}
            res = sim.predict(data, verbose=0)
            probed = {t.probe: np.asarray(res[t.probe])[:n] for t in rate_terms}
        for t in self.terms:
            built = sim.data[t.neurons.ensemble]
            if t.kind == "rates":
                out[(t.kind, t.layer)] = probed[t.probe].mean(axis=(0, 1)) / t.amplitude
            elif t.kind == "biases":
                out[(t.kind, t.layer)] = np.asarray(built.bias, float)
            else:
                out[(t.kind, t.layer)] = x_intercepts(built.gain, built.bias, t.threshold)
        return out


def _layers(key: str, wanted: list[str], available: dict) -> list[str]:
    """The regularised layer names: ``wanted`` (checked) or every layer with neurons."""
    for i, name in enumerate(wanted):
        if name not in available:
            raise UserError(f"training.{key}.layers[{i}]: no layer '{name}'; layers with neurons: "
                            f"{', '.join(available) or 'none'}")
    return list(wanted) or list(available)


def add_regularizers(converter, model, data, cfg) -> Regularizers:
    """Add probes for the enabled regularisers to ``converter.net``.

    Parameters
    ----------
    converter : nengo_dl.Converter
        The training network (converted with ``synapse=None``).
    model : keras.Model
        The converted Keras model (for its layer names and input).
    data : framework.data.base.Data
        Its training inputs feed the rate statistics.
    cfg : framework.config.Config
        Uses ``training.x_intercepts`` and ``training.rates``.

    Returns
    -------
    Regularizers
        Inactive when neither regulariser is enabled (the network is left untouched).
    """
    regs = Regularizers()
    xcfg, rcfg, bcfg = cfg.training.x_intercepts, cfg.training.rates, cfg.training.biases
    if not (xcfg.enabled or rcfg.enabled or bcfg.enabled):
        return regs
    import nengo
    import nengo_dl

    from framework import neurons as neuron_types
    from framework.conversion import neuron_layers
    from framework.training import as_steps

    layers = neuron_layers(converter, model)
    with converter.net:
        for kind, rc, low, high in (("x_intercepts", xcfg, xcfg.low, xcfg.high),
                                    ("rates", rcfg, rcfg.low_hz, rcfg.high_hz),
                                    ("biases", bcfg, bcfg.low, bcfg.high)):
            if not rc.enabled:
                continue
            for name in _layers(kind, list(rc.layers), layers):
                obj = layers[name]
                ntype = obj.ensemble.neuron_type
                # biases are only projected: no loss slot
                probe = None if kind == "biases" else nengo.Probe(obj, label=f"reg_{kind}_{name}")
                regs.terms.append(_Term(
                    kind=kind, layer=name, neurons=obj, probe=probe, low=float(low),
                    high=float(high), weight=float(getattr(rc, "weight", 0.0)),
                    threshold=neuron_types.threshold(ntype),
                    amplitude=float(getattr(ntype, "amplitude", 1.0))))
        if rcfg.enabled:
            # sim.predict in training mode: the rate statistics see the rates fit() trains on
            nengo_dl.configure_settings(learning_phase=True)
    regs.inputs = {converter.inputs[model.inputs[0]]: as_steps(data.x_train, data.sequence)}
    return regs
