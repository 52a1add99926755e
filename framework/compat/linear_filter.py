"""Backport of nengo-dl's unreleased "Fix LinearFilter D reshaping" (main, c2dbadf, 2023-02-08).

nengo 3.2+ (nengo/nengo#1687) gives a LinearFilter step its direct term ``D`` as a (1, 1) matrix;
nengo-dl 3.6.0's ``LinearFilterBuilder.build_pre`` indexes it as a vector (``step.D[None, :, None]``
and ``step.D[:, None, None]``), gets a 4-d array and fails its shape assertion. So any synapse
with a direct term fails to build: a pure gain ``LinearFilter([k], [1])``, or a filter whose
numerator and denominator have the same order. Upstream's tests ``test_zero_matrices`` and
``test_linearfilter_minibatched`` fail on 3.6.0 for this reason.

Upstream's fix reshapes ``D`` to ``(1, D.size, 1)`` / ``(D.size, 1, 1)``. nengo-dl's code is under a
proprietary licence, so instead of carrying a copy of the method this wraps it: while the original
``build_pre`` runs, the steps it makes for its operators have ``D`` flattened to the vector 3.6.0's
indexing expects, which yields exactly upstream's arrays. Nothing outside that call sees a change:
the steps are local to ``build_pre``, and nengo's own simulator makes steps of its own.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def _flat_d(make_step: Callable[..., Any]) -> Callable[..., Any]:
    """``make_step`` whose steps carry ``D`` as a vector (3.6.0 indexes it as one)."""

    @functools.wraps(make_step)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        # numpy is loaded by now (nengo-dl is building); importing it at this module's top would
        # put it in every interpreter's start (framework.compat runs from a .pth file)
        import numpy as np

        step = make_step(*args, **kwargs)
        if getattr(step, "D", None) is not None:
            step.D = np.reshape(step.D, -1)
        return step

    return wrapped


def apply(builder_cls: Any) -> None:
    """Wrap ``builder_cls.build_pre`` (nengo-dl's LinearFilterBuilder) with the fix; idempotent.

    The unwrapped method stays reachable as ``builder_cls._original_build_pre`` (a test shows that
    it fails where the wrapped one builds).
    """
    original = builder_cls.build_pre
    if getattr(original, "_spiketune_backport", False):
        return

    @functools.wraps(original)
    def build_pre(self: Any, signals: Any, config: Any) -> None:
        # one process may serve several operators: wrap each once, as an instance attribute that
        # shadows the class's method, and remove it again
        processes = list({id(op.process): op.process for op in self.ops}.values())
        for proc in processes:
            proc.make_step = _flat_d(type(proc).make_step.__get__(proc))
        try:
            original(self, signals, config)
        finally:
            for proc in processes:
                vars(proc).pop("make_step", None)

    build_pre._spiketune_backport = True  # type: ignore[attr-defined]
    builder_cls._original_build_pre = original
    builder_cls.build_pre = build_pre
