"""Backport of nengo-dl's unreleased "Fix LinearFilter D reshaping" (main branch, c2dbadf, 2023-02-08).

nengo 3.2+ (nengo/nengo#1687) stores the direct term ``D`` of a LinearFilter step as a (1, 1)
matrix; nengo-dl 3.6.0's ``LinearFilterBuilder.build_pre`` indexes it as a vector
(``step.D[None, :, None]``), which yields a 4-d array and fails its shape assertion. Any synapse with
a direct term fails to build: a pure gain ``LinearFilter([k], [1])`` or a filter whose numerator and
denominator have the same order. Upstream's tests ``test_zero_matrices`` and
``test_linearfilter_minibatched`` fail on 3.6.0 for this reason.

:func:`build_pre` is upstream's method at c2dbadf, unchanged: it differs from 3.6.0 in the two
``np.reshape(step.D, ...)`` calls only.
"""
# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import numpy as np
from nengo.synapses import LinearFilter


def apply(builder_cls: type) -> None:
    """Replace ``builder_cls.build_pre`` (nengo-dl's LinearFilterBuilder) with the fixed one."""
    if getattr(builder_cls.build_pre, "_spiketune_backport", False):
        return
    builder_cls._original_build_pre = builder_cls.build_pre  # kept for the test that needs the bug
    builder_cls.build_pre = build_pre


def build_pre(self, signals, config):
    import tensorflow as tf
    from nengo_dl.builder import OpBuilder

    OpBuilder.build_pre(self, signals, config)  # upstream: super().build_pre(signals, config)

    # note: linear filters are linear systems with n_inputs/n_outputs == 1.
    # we apply them to multidimensional inputs, but we do so by
    # broadcasting that SISO linear system (so it's effectively
    # d 1-dimensional linear systems). this means that we can make
    # some simplifying assumptions, namely that B has shape (state_d, 1),
    # C has shape (1, state_d), and D has shape (1, 1), and then we can
    # implement those operations as (broadcasted) multiplies rather than
    # full matrix multiplications.
    # this also means that the minibatch dimension is identical to the
    # signal dimension (i.e. n m-dimensional signals is the same as
    # 1 n*m-dimensional signal); in either case we're just doing that
    # B/C/D broadcasting along all the non-state dimensions. so in these
    # computations we collapse minibatch and signal dimensions into one.

    self.input_data = signals.combine([op.input for op in self.ops])
    self.output_data = signals.combine([op.output for op in self.ops])

    if self.input_data.ndim != 1:
        raise NotImplementedError(
            "LinearFilter of non-vector signals is not implemented"
        )

    steps = [
        op.process.make_step(
            op.input.shape,
            op.output.shape,
            signals.dt_val,
            state=op.process.make_state(
                op.input.shape, op.output.shape, signals.dt_val
            ),
            rng=None,
        )
        for op in self.ops
    ]
    self.filter_step = steps[0]
    assert all(isinstance(step, type(self.filter_step)) for step in steps)

    self.n_ops = len(self.ops)
    self.signal_d = self.ops[0].input.shape[0]
    self.state_d = steps[0].A.shape[0]

    if isinstance(self.filter_step, LinearFilter.NoX):
        self.A = None
        self.B = None
        self.C = None
        # combine D scalars for each op, and broadcast along minibatch and
        # signal dimensions
        self.D = tf.constant(
            np.concatenate(
                [np.reshape(step.D, (1, step.D.size, 1)) for step in steps], axis=1
            ),
            dtype=signals.dtype,
        )

        assert self.D.shape == (1, self.n_ops, 1)
    elif isinstance(self.filter_step, LinearFilter.OneX):
        # combine A scalars for each op, and broadcast along batch/state
        self.A = tf.constant(
            np.concatenate([step.A for step in steps])[None, :], dtype=signals.dtype
        )
        # combine B and C scalars for each op, and broadcast along batch/state
        self.B = tf.constant(
            np.concatenate([step.B * step.C for step in steps])[None, :],
            dtype=signals.dtype,
        )
        self.C = None
        self.D = None

        assert self.A.shape == (1, self.n_ops, 1)
        assert self.B.shape == (1, self.n_ops, 1)
    else:
        self.A = tf.constant(
            np.stack([step.A for step in steps], axis=0), dtype=signals.dtype
        )
        self.B = tf.constant(
            np.stack([step.B for step in steps], axis=0), dtype=signals.dtype
        )
        self.C = tf.constant(
            np.stack([step.C for step in steps], axis=0), dtype=signals.dtype
        )

        if isinstance(self.filter_step, LinearFilter.NoD):
            self.D = None
        else:
            self.D = tf.constant(
                np.concatenate(
                    [np.reshape(step.D, (step.D.size, 1, 1)) for step in steps]
                ),
                dtype=signals.dtype,
            )
            assert self.D.shape == (self.n_ops, 1, 1)

        # create a variable to represent the internal state of the filter
        self.state_data = signals.combine([op.state["X"] for op in self.ops])

        assert self.A.shape == (self.n_ops, self.state_d, self.state_d)
        assert self.B.shape == (self.n_ops, self.state_d, 1)

build_pre._spiketune_backport = True
