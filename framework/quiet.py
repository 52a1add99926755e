"""Keep TensorFlow's import-time chatter out of the user's terminal."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

#: lines TensorFlow's C++ side prints at import whatever TF_CPP_MIN_LOG_LEVEL says
NOISE = ("TF-TRT Warning", "Could not find TensorRT", "oneDNN custom operations",
         "This TensorFlow binary is optimized", "rebuild TensorFlow with the appropriate",
         # TensorFlow 2.21 logs through absl before it reads TF_CPP_MIN_LOG_LEVEL; on a machine
         # without a GPU these say only that (CPU is what spiketune runs on)
         "before absl::InitializeLog() is called", "cudart_stub.cc", "cuda_platform.cc",
         "Could not find cuda drivers", "failed call to cuInit")


@contextlib.contextmanager
def c_stderr_filtered() -> Iterator[None]:
    """Capture what C/C++ code writes to file descriptor 2, and pass on all but known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if line.strip() and not any(n in line for n in NOISE):
                    print(line, file=sys.stderr)


def tensorflow() -> None:
    """Import TensorFlow and nengo-dl with their logs and version warnings silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="No GPU support detected")
    warnings.filterwarnings("ignore", message="This version of NengoDL has not been tested")
    # the conversion swaps both spellings of ReLU; a model uses one of them
    warnings.filterwarnings("ignore", message="swap_activations contained")
    # Nengo's builder derives each converted neuron's "max rate at x = 1" from its gain and bias;
    # for a layer whose scale puts x = 1 below threshold that is undefined (NaN), and it is not
    # what spiketune reports for converted layers
    warnings.filterwarnings("ignore", message="Non-finite values detected in `max_rates`")
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="nengo.neurons")
    with c_stderr_filtered():
        import tensorflow as tf
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils

        # the TensorRT probe runs once, lazily, and warns on every machine without TensorRT;
        # run it here where its line is filtered
        _pywrap_py_utils.is_tensorrt_enabled()
        import nengo_dl  # noqa: F401

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("nengo_dl").setLevel(logging.ERROR)
