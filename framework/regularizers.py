"""Training regularisers that keep neurons in range (x-intercepts, firing rates).

``add_regularizers`` adds what the enabled regularisers need (probes, loss terms) to the converted
network before the training simulator is built.
"""
from __future__ import annotations


class Regularizers:
    """The enabled regularisers of one training run (none enabled: every method is a no-op)."""

    def __init__(self):
        self.terms: list = []

    @property
    def active(self) -> bool:
        return bool(self.terms)

    def losses(self, n_steps: int, n_samples: int) -> dict:
        """``probe -> (loss function, target array)`` to add to ``sim.compile``/``sim.fit``."""
        return {}

    def weights(self, out_probe):
        """Loss weights per probe for ``sim.compile`` (None: every loss weighs 1)."""
        return None

    def stats(self, sim, when: str) -> dict[str, float]:
        """Fractions of neurons inside the asked ranges, keyed ``<reg>/<layer>/in_range_<when>``."""
        return {}


def add_regularizers(converter, model, data, cfg) -> Regularizers:
    return Regularizers()
