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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import nengo
import numpy as np

from framework.batches import as_steps, pad_to
from framework.conversion import neuron_layers
from framework.errors import UserError
from framework.neurons import threshold, x_intercepts
from framework.schema import bounded


@dataclass
class RangeConfig:
    """A range some per-neuron quantity is kept inside during training (one subclass per kind)."""

    #: the node's key under ``training`` (``training.<key>``), and its metrics' ``reg/<key>/``
    key: ClassVar[str] = ""
    #: the range is reached by projecting the biases back after every training batch
    projected: ClassVar[bool] = False
    #: the range adds a penalty to the loss (through a probe on the layer's neurons)
    penalised: ClassVar[bool] = True
    #: the value is the neurons' rates on the training inputs (a prediction in training mode)
    reads_rates: ClassVar[bool] = False

    enabled: bool = False
    layers: list[str] = field(default_factory=list)  # hidden layer names; empty: every hidden layer

    def bounds(self) -> tuple[str, float, float]:
        """``(name of the lower bound's key, low, high)``, in the quantity's units."""
        raise NotImplementedError

    def check(self, switched_off: bool = False) -> None:
        """A range whose ends are crossed, or that is set without ``enabled``, is refused: it
        would silently do nothing; unless ``switched_off``: ``enabled=false`` given by name on
        the command line, over a preset that set the bounds."""
        name, lo, hi = self.bounds()
        if lo >= hi:
            raise UserError(f"training.{self.key}.{name}: must be below the upper bound, got "
                            f"{lo} >= {hi}")
        default = type(self)()
        changed = [f.name for f in dataclasses.fields(self)
                   if f.name != "enabled" and getattr(self, f.name) != getattr(default, f.name)]
        if changed and not self.enabled and not switched_off:
            raise UserError(f"training.{self.key}.{changed[0]}: set, but training.{self.key} is "
                            f"not enabled (add training.{self.key}.enabled=true)")

    def loss_weight(self) -> float:
        """The penalty's weight in the loss (0 for a range that is only projected)."""
        return float(getattr(self, "weight", 0.0))

    def loss(self, term: _Term, regs: Regularizers) -> Callable[..., Any]:
        """The penalty for ``sim.compile`` (TensorFlow ops; imported when training)."""
        raise NotImplementedError

    def bias_bounds(self, term: _Term, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected kinds: the per-neuron bias range (J) the range means."""
        raise NotImplementedError

    def value(self, term: _Term, built: Any, probed: dict[Any, np.ndarray]) -> np.ndarray:
        """The regularised quantity per neuron, in the range's units."""
        raise NotImplementedError


@dataclass
class XInterceptRegularizer(RangeConfig):
    """Keep neurons' x-intercepts inside [low, high]: a hinge penalty added to the loss, and the
    biases projected back into the range after every training batch."""

    key: ClassVar[str] = "x_intercepts"
    projected: ClassVar[bool] = True

    low: float = -0.5  # lowest accepted x-intercept, x units
    high: float = 0.5  # highest accepted x-intercept, x units
    weight: float = bounded(1.0, ge=0.0)  # loss weight

    def bounds(self) -> tuple[str, float, float]:
        return "low", float(self.low), float(self.high)

    def loss(self, term: _Term, regs: Regularizers) -> Callable[..., Any]:
        import tensorflow as tf

        def x_intercept_loss(y_true: Any, y_pred: Any) -> Any:
            if regs.sim is None:
                raise RuntimeError("x-intercept regulariser: call stats(sim, 'before') before "
                                   "training, it binds the simulator whose biases are penalised")
            base, idx, gain = regs.bias_params[term.layer]
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

    def bias_bounds(self, term: _Term, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # x_int = (J_th − bias) / gain with gain > 0 (fixed by the conversion)
        return term.threshold - gain * term.high, term.threshold - gain * term.low

    def value(self, term: _Term, built: Any, probed: dict[Any, np.ndarray]) -> np.ndarray:
        return x_intercepts(built.gain, built.bias, term.threshold)


@dataclass
class RateRegularizer(RangeConfig):
    """Keep neurons' mean firing rates inside [low_hz, high_hz] on the training data."""

    key: ClassVar[str] = "rates"
    reads_rates: ClassVar[bool] = True

    low_hz: float = bounded(10.0, ge=0.0)  # lowest accepted mean rate, Hz
    high_hz: float = bounded(200.0, gt=0.0)  # highest accepted mean rate, Hz
    weight: float = bounded(1e-3, ge=0.0)  # loss weight, per Hz² of violation

    def bounds(self) -> tuple[str, float, float]:
        return "low_hz", float(self.low_hz), float(self.high_hz)

    def loss(self, term: _Term, regs: Regularizers) -> Callable[..., Any]:
        import tensorflow as tf

        def rate_loss(y_true: Any, y_pred: Any) -> Any:
            # mean rate (Hz) of each neuron over the batch and time, then a squared hinge
            r = tf.reduce_mean(y_pred, axis=(0, 1)) / term.amplitude
            return tf.reduce_mean(tf.nn.relu(term.low - r) ** 2 + tf.nn.relu(r - term.high) ** 2)

        rate_loss.__name__ = f"rates_{term.layer}"
        return rate_loss

    def value(self, term: _Term, built: Any, probed: dict[Any, np.ndarray]) -> np.ndarray:
        mean: np.ndarray = probed[term.probe].mean(axis=(0, 1))  # times amplitude
        return mean / term.amplitude


@dataclass
class BiasRange(RangeConfig):
    """Keep neurons' biases (the ``bias`` column of neurons.csv: J, as built) inside [low, high]:
    projected back after every training batch."""

    key: ClassVar[str] = "biases"
    projected: ClassVar[bool] = True
    penalised: ClassVar[bool] = False

    low: float = 0.0  # lowest accepted bias, J (input-current units)
    high: float = 0.5  # highest accepted bias, J

    def bounds(self) -> tuple[str, float, float]:
        return "low", float(self.low), float(self.high)

    def bias_bounds(self, term: _Term, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full_like(gain, term.low), np.full_like(gain, term.high)

    def value(self, term: _Term, built: Any, probed: dict[Any, np.ndarray]) -> np.ndarray:
        return np.asarray(built.bias, float)


@dataclass
class GainRange(RangeConfig):
    """Keep neurons' gains (the ``gain`` column of neurons.csv: J per unit x) inside [low, high].

    Only a native ensemble's gain trains: NengoDL trains its scaled encoders, gain × encoder /
    radius, and :func:`project_ensembles` rescales each neuron's row to the bounded gain keeping
    its direction (``framework.api.range_callback`` in a user's own ``sim.fit``). A converted
    layer's gain is its firing-rate scale, fixed by the conversion and never trained, so the
    CLI (which trains converted networks only) refuses the range in one line.
    """

    key: ClassVar[str] = "gains"
    projected: ClassVar[bool] = True
    penalised: ClassVar[bool] = False

    low: float = 0.0  # lowest accepted gain, J per unit x
    high: float = 0.5  # highest accepted gain, J per unit x

    def bounds(self) -> tuple[str, float, float]:
        return "low", float(self.low), float(self.high)

    def check(self, switched_off: bool = False) -> None:
        super().check(switched_off)
        if self.enabled:
            # model=ensemble does not train at all: a user's own native ensembles do
            raise UserError(f"training.gains: {CONVERTED_GAIN} (a native ensemble's gains: "
                            f"framework.api.range_callback in your own sim.fit)")

    def value(self, term: _Term, built: Any, probed: dict[Any, np.ndarray]) -> np.ndarray:
        return np.asarray(built.gain, float)


#: the one line refusing a gain range on a converted layer (the CLI's networks, or one named to
#: ``range_callback``)
CONVERTED_GAIN = ("a converted layer's gain is its firing-rate scale, fixed by the conversion and "
                  "not trained; set simulation.scale_firing_rates or conversion.* (normalize, "
                  "max_rate_hz) instead")


#: the x-intercept penalty starts this fraction of the range's width inside each bound, so the
#: balance point against the task loss lies inside [low, high] rather than on its edge
X_MARGIN = 0.05


@dataclass
class _Term:
    """One regularised layer of one regulariser.

    Attributes
    ----------
    spec : RangeConfig
        The range's node (its class is the regulariser's kind).
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

    spec: RangeConfig
    layer: str
    neurons: Any
    probe: Any
    low: float
    high: float
    weight: float
    threshold: float = 1.0  # J_th of the layer's neuron type
    amplitude: float = 1.0  # output per spike·s⁻¹ of the layer's neuron type (as built)

    @property
    def kind(self) -> str:
        """``training.<kind>``: ``x_intercepts``, ``rates`` or ``biases``."""
        return self.spec.key


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

    terms: list[_Term] = field(default_factory=list)
    inputs: dict[Any, np.ndarray] = field(default_factory=dict)
    #: the training simulator the penalties read (bound by ``stats(sim, "before")``)
    sim: Any = None
    #: layer -> (trainable base variable, indices of the layer's biases in it, gain (J per unit x))
    bias_params: dict[str, tuple[Any, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.terms)

    # ------------------------------------------------------------------ losses for sim.compile
    def losses(self, n_steps: int, n_samples: int
               ) -> dict[Any, tuple[Callable[..., Any], np.ndarray]]:
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
        return {t.probe: (t.spec.loss(t, self), target) for t in self.terms
                if t.probe is not None}

    def weights(self, out_probe: Any) -> dict[Any, float] | None:
        """Loss weights per probe for ``sim.compile``: 1 for the task, each term's own weight."""
        if not self.terms:
            return None
        w: dict[Any, float] = {out_probe: 1.0}
        w.update({t.probe: float(t.weight) for t in self.terms if t.probe is not None})
        return w

    # ------------------------------------------------------------------------------ projection
    @property
    def projected(self) -> bool:
        return any(t.spec.projected for t in self.terms)

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
            if not t.spec.projected:
                continue
            base, idx, gain = self.bias_params[t.layer]
            lo, hi = t.spec.bias_bounds(t, gain)
            current = tf.gather(base, idx, axis=0)
            shape = (-1,) + (1,) * (len(current.shape) - 1)
            clipped = tf.clip_by_value(current, lo.reshape(shape), hi.reshape(shape))
            base.scatter_nd_update(idx[:, None], tf.cast(clipped, base.dtype))

    def constrain(self) -> bool:
        """Make the projection part of the compiled training step: each trainable variable that
        holds projected biases gets a ``constraint`` clipping them into their terms' ranges,
        which tf_keras's optimizer applies right after every update (the same clip as
        :meth:`project`, without the eager calls of a per-batch callback: 1,680 on the default
        run, 0.4 s). Call after ``stats(sim, "before")`` and before the first ``fit``.

        Returns
        -------
        bool
            False when the variables take no constraint (a TensorFlow that moved it): then
            :meth:`projection_callback` projects instead.
        """
        import tensorflow as tf

        groups: dict[int, tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]] = {}
        for t in self.terms:
            if t.spec.projected:
                base, idx, gain = self.bias_params[t.layer]
                lo, hi = t.spec.bias_bounds(t, gain)
                groups.setdefault(id(base), (base, []))[1].append((idx, lo, hi))
        for base, parts in groups.values():
            if getattr(base, "constraint", False) is not None:  # absent, or someone else's
                return False
            idx = tf.constant(np.concatenate([p[0] for p in parts])[:, None])
            shape = (-1,) + (1,) * (len(base.shape) - 1)
            lo, hi = (tf.constant(np.concatenate([p[k] for p in parts]).reshape(shape),
                                  dtype=base.dtype) for k in (1, 2))

            def clip(value: Any, idx: Any = idx, lo: Any = lo, hi: Any = hi) -> Any:
                return tf.tensor_scatter_nd_update(
                    value, idx, tf.clip_by_value(tf.gather_nd(value, idx), lo, hi))

            base._constraint = clip  # what Keras's add_weight(constraint=) sets
            if base.constraint is not clip:
                return False
        return True

    def projection_callback(self) -> Any:
        """A Keras callback running :meth:`project` after every training batch (where
        :meth:`constrain` cannot)."""
        import tensorflow as tf

        regs = self

        class Project(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF: no types
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None
                                   ) -> None:
                regs.project()

        return Project()

    # ------------------------------------------------------------------------------ statistics
    def stats(self, sim: Any, when: str) -> dict[str, float]:
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
        if when == "before" or self.sim is not sim:
            self._bind(sim)
        values = self.values(sim)
        out: dict[str, float] = {}
        overall: dict[str, list[np.ndarray]] = {}
        for term in self.terms:
            # at the precision the values are stored in: a bias projected to 0.3 is stored as
            # float32 0.30000001, which a float64 0.3 would call outside
            v = np.asarray(values[(term.kind, term.layer)], dtype=np.float32)
            inside = (v >= np.float32(term.low)) & (v <= np.float32(term.high))
            out[f"reg/{term.kind}/{term.layer}/in_range_{when}"] = float(inside.mean())
            overall.setdefault(term.kind, []).append(inside)
        for kind, parts in overall.items():
            out[f"reg/{kind}/in_range_{when}"] = float(np.concatenate(parts).mean())
        return out

    def _bind(self, sim: Any) -> None:
        """Find each x-intercept layer's bias in the simulator's trainable variables.

        NengoDL keeps trainable signals in a few concatenated ``base_params`` variables; the bias
        is a slice of one (what ``TensorGraph.get_tensor`` gathers; its cached index tensor cannot
        be shared with the traced loss, so the indices are rebuilt here from the slices). Gains
        are constants of the converted network (= scale_firing_rates), read once, eagerly.
        """
        self.sim = sim
        self.bias_params = {}
        for t in self.terms:
            if not t.spec.projected:
                continue
            tsig = sim.tensor_graph.signals[sim.model.sig[t.neurons]["bias"]]
            if tsig.key not in sim.tensor_graph.base_params or tsig.minibatched:
                raise UserError(f"training.{t.kind}.layers: the biases of layer '{t.layer}' "
                                f"are not trainable, so they cannot be kept in range")
            idx = np.concatenate([np.arange(a, b, dtype=np.int32) for a, b in tsig.slices])
            gain = np.asarray(sim.data[t.neurons.ensemble].gain, np.float32).ravel()
            self.bias_params[t.layer] = (sim.tensor_graph.base_params[tsig.key], idx, gain)

    def values(self, sim: Any) -> dict[tuple[str, str], np.ndarray]:
        """``(kind, layer) -> per-neuron value``: x-intercepts (x units), mean rates (Hz) or
        biases (J)."""
        probed: dict[Any, np.ndarray] = {}
        rate_terms = [t for t in self.terms if t.spec.reads_rates]
        if rate_terms:  # the rates: one prediction in training mode over the training inputs
            n = len(next(iter(self.inputs.values())))
            data = {k: pad_to(v, sim.minibatch_size) for k, v in self.inputs.items()}
            res = sim.predict(data, verbose=0)
            probed = {t.probe: np.asarray(res[t.probe])[:n] for t in rate_terms}
        return {(t.kind, t.layer): t.spec.value(t, sim.data[t.neurons.ensemble], probed)
                for t in self.terms}


def _layers(key: str, wanted: list[str], available: dict[str, Any]) -> list[str]:
    """The regularised layer names: ``wanted`` (checked) or every layer with neurons."""
    for i, name in enumerate(wanted):
        if name not in available:
            raise UserError(f"training.{key}.layers[{i}]: no layer '{name}'; layers with neurons: "
                            f"{', '.join(available) or 'none'}")
    return list(wanted) or list(available)


def add_regularizers(converter: Any, model: Any, data: Any,
                     ranges: list[RangeConfig]) -> Regularizers:
    """Add probes for the enabled regularisers to ``converter.net``.

    Parameters
    ----------
    converter : nengo_dl.Converter
        The training network (converted with ``synapse=None``).
    model : keras.Model
        The converted Keras model (for its layer names and input).
    data : framework.data.base.Data
        Its training inputs feed the rate statistics.
    ranges : list of RangeConfig
        ``training.ranges()``: the x-intercept, rate and bias ranges.

    Returns
    -------
    Regularizers
        Inactive when no range is enabled (the network is left untouched).
    """
    regs = Regularizers()
    enabled = [rng for rng in ranges if rng.enabled]
    if not enabled:
        return regs
    import nengo_dl

    layers = neuron_layers(converter, model)
    with converter.net:
        for rng in enabled:
            for name in _layers(rng.key, list(rng.layers), layers):
                regs.terms.append(_term(rng, name, layers[name]))
        if any(rng.reads_rates for rng in enabled):
            # sim.predict in training mode: the rate statistics see the rates fit() trains on
            nengo_dl.configure_settings(learning_phase=True)
    regs.inputs = {converter.inputs[model.inputs[0]]: as_steps(data.x_train, data.sequence)}
    return regs


def _term(rng: RangeConfig, name: str, obj: Any) -> _Term:
    """The term of range ``rng`` on layer ``name`` (its neurons ``obj``), with its probe when the
    range is penalised (biases are only projected: no loss slot)."""
    ntype = obj.ensemble.neuron_type
    probe = nengo.Probe(obj, label=f"reg_{rng.key}_{name}") if rng.penalised else None
    _, low, high = rng.bounds()
    return _Term(spec=rng, layer=name, neurons=obj, probe=probe, low=low, high=high,
                 weight=rng.loss_weight(), threshold=threshold(ntype),
                 amplitude=float(getattr(ntype, "amplitude", 1.0)))


# ---------------------------------------------------------------------------------------------
# Ranges on the ensembles of a user's own NengoDL simulator (framework.api.range_callback)

#: a projected gain is aimed this relative distance inside its bounds: NengoDL infers the gain
#: from the float32 scaled encoders (radius × row norm), which may round a gain on the edge out
GAIN_EPS = 1e-6


def _float32_inside(low: float, high: float) -> tuple[np.float32, np.float32]:
    """The float32 bounds inside [low, high]: a bias clipped to float32(0.3) = 0.30000001 would
    be outside 0.3."""
    lo, hi = np.float32(low), np.float32(high)
    lo = np.nextafter(lo, np.float32(np.inf)) if lo < low else lo
    hi = np.nextafter(hi, np.float32(-np.inf)) if hi > high else hi
    return np.float32(lo), np.float32(hi)


def _trainable(sim: Any, sig: Any) -> tuple[Any, np.ndarray] | None:
    """``(trainable base variable, row indices)`` of a signal in a NengoDL simulator, or None
    when NengoDL does not train it (see :meth:`Regularizers._bind`)."""
    tsig = sim.tensor_graph.signals.get(sig) if sig is not None else None
    if tsig is None or tsig.key not in sim.tensor_graph.base_params or tsig.minibatched:
        return None
    idx = np.concatenate([np.arange(a, b, dtype=np.int32) for a, b in tsig.slices])
    return sim.tensor_graph.base_params[tsig.key], idx


@dataclass
class EnsembleRanges:
    """Gains and biases of named ensembles of a user's NengoDL simulator kept in range.

    Attributes
    ----------
    sim : nengo_dl.Simulator
        The user's simulator (open).
    ensembles : dict
        ``label -> nengo.Ensemble``.
    gains, biases : (float, float) or None
        Accepted gains (J per unit x) and biases (J); None leaves that quantity free.
    stats : dict
        ``reg/<gains|biases>/<label>/in_range_<before|after>`` and the totals over ensembles,
        fractions of neurons inside (``before``: when made; ``after``: after :meth:`record`).
    """

    sim: Any
    ensembles: dict[str, Any]
    gains: tuple[float, float] | None = None
    biases: tuple[float, float] | None = None
    stats: dict[str, float] = field(default_factory=dict)
    _params: dict[tuple[str, str], tuple[Any, np.ndarray]] = field(default_factory=dict)

    def bind(self) -> None:
        """Find every bounded parameter's trainable variable; refuse what does not train."""
        for label, ens in self.ensembles.items():
            sigs = self.sim.model.sig
            for kind, bounds, sig in (("gains", self.gains, sigs[ens].get("encoders")),
                                      ("biases", self.biases, sigs[ens.neurons].get("bias"))):
                if bounds is None:
                    continue
                if not bounds[0] < bounds[1]:
                    raise UserError(f"range_callback {kind}: low must be below high, got "
                                    f"{bounds}")
                found = _trainable(self.sim, sig)
                if found is None:
                    why = (f"{CONVERTED_GAIN} (nengo_dl.Converter's scale_firing_rates)"
                           if kind == "gains" else "NengoDL does not train it")
                    raise UserError(f"range_callback {kind}: '{label}': {why}")
                self._params[(kind, label)] = found

    def project(self) -> None:
        """Put every gain and bias the last step moved outside back on its bound: a gain by
        rescaling the neuron's scaled encoder (its direction kept), a bias by clipping."""
        import tensorflow as tf

        for (kind, label), (base, idx) in self._params.items():
            current = tf.gather(base, idx, axis=0).numpy()
            if kind == "gains":
                new = self._rescaled(self.ensembles[label], current)
            else:
                lo, hi = _float32_inside(*self.biases)  # type: ignore[misc]  # bound in bind()
                new = np.clip(current, lo, hi)
            base.scatter_nd_update(idx[:, None], tf.cast(new, base.dtype))

    def _rescaled(self, ens: Any, scaled: np.ndarray) -> np.ndarray:
        """Scaled encoders whose gains (radius × row norm / build encoder norm, as NengoDL infers
        them) are clipped into ``gains``; a zero row takes its build encoder's direction."""
        lo, hi = self.gains  # type: ignore[misc]  # bound in bind()
        enc = np.asarray(self.sim.model.params[ens].encoders, float)
        unit = np.linalg.norm(enc, axis=1)
        gain = ens.radius * np.linalg.norm(scaled, axis=1) / unit
        target = np.clip(gain, lo + abs(lo) * GAIN_EPS, hi - abs(hi) * GAIN_EPS)
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = np.where(gain[:, None] > 0, scaled / gain[:, None], enc / ens.radius)
        return np.asarray(rows * target[:, None], dtype=np.float32)

    def record(self, when: str) -> dict[str, float]:
        """Add the fractions of neurons inside each range to :attr:`stats` and return them."""
        out: dict[str, float] = {}
        for kind, bounds in (("gains", self.gains), ("biases", self.biases)):
            if bounds is None:
                continue
            parts = []
            for label, ens in self.ensembles.items():
                built = self.sim.data[ens]
                v = np.asarray(built.gain if kind == "gains" else built.bias, np.float32)
                inside = (v >= np.float32(bounds[0])) & (v <= np.float32(bounds[1]))
                out[f"reg/{kind}/{label}/in_range_{when}"] = float(inside.mean())
                parts.append(inside)
            out[f"reg/{kind}/in_range_{when}"] = float(np.concatenate(parts).mean())
        self.stats.update(out)
        return out

    def callback(self) -> Any:
        """A Keras callback projecting after every training batch and recording the fractions
        inside after training (before: already recorded when the ranges were made)."""
        import tensorflow as tf

        ranges = self

        class KeepInRange(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF: no types
            """Project the named ensembles' gains and biases into range after every batch."""

            #: the ranges it keeps (``.ranges.stats`` holds the fractions inside)
            ranges: EnsembleRanges

            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None
                                   ) -> None:
                ranges.project()

            def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
                ranges.record("after")

        cb = KeepInRange()
        cb.ranges = self
        return cb
