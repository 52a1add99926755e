"""Shaping samples for NengoDL: whole minibatches, a time axis, the read-out's bins, targets.

Shared by training, the rate evaluation and the spiking simulation (and the regularisers'
statistics), so each shapes its arrays the same way.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def pad_to(x: np.ndarray, multiple: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad the first axis to a multiple of ``multiple`` (NengoDL needs whole minibatches).

    With ``rng``, padding repeats random samples (training); without, the last sample (evaluation,
    where the padded outputs are dropped).
    """
    extra = (-len(x)) % multiple
    if extra == 0:
        return x
    idx = rng.integers(0, len(x), extra) if rng is not None else np.full(extra, len(x) - 1)
    return np.concatenate([x, x[idx]])


def as_steps(x: np.ndarray, sequence: bool) -> np.ndarray:
    """Inputs with a time axis: (n, 1, features) for static data, (n, time, channels) for
    sequences."""
    n = len(x)
    return x.reshape(n, x.shape[1], -1) if sequence else x.reshape(n, 1, -1)


def readout_bins(n_bins: int, sim_cfg: Any) -> int:
    """How many of a sequence's last time bins the spiking read-out covers.

    The spiking simulation holds each bin for ``ceil(n_steps / n_bins)`` steps and reads the last
    step (``readout=last``: the last bin) or the mean of the last ``readout_steps`` steps (the bins
    those steps fall in). Training and the rate evaluation run one step per bin, so they pool the
    same bins and the loss is on what the spiking network will be read at.
    """
    if sim_cfg.readout.value == "last":
        return 1
    hold = int(np.ceil(sim_cfg.n_steps / n_bins))
    return int(min(n_bins, np.ceil(sim_cfg.readout_steps / hold)))


def targets(y: np.ndarray, classification: bool) -> np.ndarray:
    """Targets shaped (n, 1, k) for NengoDL (class labels as (n, 1, 1))."""
    return y.reshape(len(y), 1, -1).astype(np.float32 if not classification else np.int32)
