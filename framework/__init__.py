"""spiketune: declarative conversion of Keras networks to spiking neurons, analysed and tracked.

The stages, one module each: :mod:`config` → :mod:`datasets` → :mod:`models` → :mod:`conversion` /
:mod:`training` → :mod:`simulation` → :mod:`analysis` (plugins) → :mod:`tracking`, run by
:func:`framework.pipeline.run`.
"""
from framework import compat

__version__ = "0.1.0"

# before anything imports TensorFlow or nengo-dl, in this process and in every sweep worker
compat.install()
