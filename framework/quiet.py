"""Keep TensorFlow's import-time chatter out of the user's terminal."""
from __future__ import annotations

import logging
import os
import warnings


def tensorflow() -> None:
    """Silence TensorFlow's C++ and Python logs and nengo-dl's version warnings; import TF."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", message=".*nengo.*version.*", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="No GPU support detected")
    # the conversion swaps both spellings of ReLU; a model uses one of them
    warnings.filterwarnings("ignore", message="swap_activations contained")
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("nengo_dl").setLevel(logging.ERROR)
    import nengo_dl  # noqa: F401 - its import warns once; do it here, silenced
