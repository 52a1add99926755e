"""nengo-dl's own test suite, run against the installed, unmodified package with this layer loaded.

``make test-nengo-dl`` (``python -m framework.compat.upstream_tests [pytest args]``) runs the test
files nengo-dl ships inside its sdist (installed as ``nengo_dl.tests``) with
:mod:`framework.compat.upstream_plugin` in place of the sdist's root ``conftest.py``, which is not
installed. Every failure that is not in :data:`KNOWN_FAILURES` fails the run; a known failure that
starts passing fails it too (strict xfail), so the list cannot go stale.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import framework  # noqa: F401  (the layer, before pytest imports nengo-dl)

# As spiketune runs TensorFlow (framework.quiet): oneDNN's reordered float sums move the
# converter's own Keras-vs-Nengo check (np.allclose, atol 1e-8) past its tolerance on outputs near
# zero (test_converter.py::test_sequential: 1.5e-8), a difference of summation order, not of the
# layer.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

#: nengo-dl's test files that run (test_benchmarks needs a benchmark machine; 3.6.0 has no
#: test_neuron_builders: its neuron-builder tests are in test_neurons)
FILES = ("test_builder", "test_compat", "test_config", "test_converter", "test_dists",
         "test_graph_optimizer", "test_keras", "test_learning_rules", "test_nengo_tests",
         "test_neurons", "test_objectives", "test_op_builders", "test_processes", "test_signals",
         "test_simulator", "test_tensor_graph", "test_tensor_node", "test_transforms",
         "test_utils")

#: node id (relative to nengo_dl/tests) -> why it fails on this stack *and* on TensorFlow 2.12
KNOWN_FAILURES: dict[str, str] = {}

#: upstream's [tool:pytest] settings (setup.cfg in the sdist) that shape results
INI = """[pytest]
addopts = --disable-warnings -p no:nengo -p no:cacheprovider -p framework.compat.upstream_plugin
filterwarnings = always
xfail_strict = true
"""


def main(argv: list[str] | None = None) -> int:
    """Run the suite; extra arguments go to pytest (``-n 2``, ``-k``, ``-x``)."""
    import nengo_dl
    import pytest

    tests = Path(nengo_dl.__file__).parent / "tests"
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp, "pytest.ini")
        ini.write_text(INI)
        args = ["-c", str(ini), "--rootdir", str(tests), "-q",
                *[str(tests / f"{name}.py") for name in FILES], *(argv or [])]
        return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
