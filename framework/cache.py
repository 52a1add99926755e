"""Trained weights, reused across runs whose training config is identical."""
from __future__ import annotations


def trained(cfg, model, data, neuron_type, scratch, console, train):
    """``(Trained, cached)``: train into ``scratch`` (caching comes with sweeps)."""
    return train(model, data, cfg, neuron_type, scratch / "trained", console), False
