"""pytest plugin standing in for nengo-dl's root ``conftest.py`` (in its sdist, not installed).

It gives nengo-dl's tests what that conftest gave them: the ``Simulator`` fixture (nengo-dl's own
``make_test_sim``), its command-line options and markers, a Keras session cleared between tests,
and the skips of GPU and performance tests. Two shims fit the suite to today's pytest and nengo:

* ``pytest.warns(None)`` (pytest < 8: "record warnings, expect none in particular") is refused by
  pytest 8; here it records, as it did.
* ``nengo.networks.Oscillator``, which nengo 4 removed and ``test_simulator.py`` builds while it
  is collected, is given back as the network nengo 3 built (a 2-D ensemble whose recurrent
  connection rotates its state at ``frequency`` rad/s);
* the known failures of :data:`framework.compat.upstream_tests.KNOWN_FAILURES` are marked as strict
  expected failures with their reason.
"""
from __future__ import annotations

from typing import Any

import pytest
from _pytest.recwarn import WarningsRecorder

from framework.compat.upstream_tests import KNOWN_FAILURES

_warns = pytest.warns


def _warns_none_records(expected_warning: Any = Warning, *args: Any, **kwargs: Any) -> Any:
    if expected_warning is None:
        return WarningsRecorder(_ispytest=True)
    return _warns(expected_warning, *args, **kwargs)


def _oscillator(recurrent_tau: float, frequency: float, n_neurons: int, net: Any = None) -> Any:
    """nengo 3's ``nengo.networks.Oscillator``: dx/dt = [[0, -ω], [ω, 0]] x, through a synapse."""
    import nengo

    net = nengo.Network(label="Oscillator") if net is None else net
    rotation = [[1, -frequency * recurrent_tau], [frequency * recurrent_tau, 1]]
    with net:
        net.input = nengo.Node(label="In", size_in=2)
        net.ensemble = nengo.Ensemble(n_neurons, dimensions=2, label="Oscillator")
        nengo.Connection(net.ensemble, net.ensemble, synapse=recurrent_tau, transform=rotation)
        nengo.Connection(net.input, net.ensemble, synapse=None)
    return net


def pytest_configure(config: pytest.Config) -> None:
    import nengo.networks

    pytest.warns = _warns_none_records
    if not hasattr(nengo.networks, "Oscillator"):
        nengo.networks.Oscillator = _oscillator
    config.addinivalue_line("markers", "training: mark test as requiring training functionality")
    config.addinivalue_line("markers", "performance: tests that need a benchmark machine")
    config.addinivalue_line("markers", "gpu: tests that need tensorflow-gpu")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--simulator-only", action="store_true", default=False)
    parser.addoption("--inference-only", action="store_true", default=False)
    parser.addoption("--dtype", default="float32", choices=("float32", "float64"))
    parser.addoption("--unroll-simulation", default=1, type=int)
    parser.addoption("--device", default=None)
    parser.addoption("--performance", action="store_true", default=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    from nengo_dl import utils

    if item.get_closest_marker("gpu") and not utils.tf_gpu_installed:
        pytest.skip("This test requires tensorflow-gpu")
    if item.get_closest_marker("performance") and not item.config.getvalue("--performance"):
        pytest.skip("Skipping performance test")
    if item.get_closest_marker("training") and item.config.getvalue("--inference-only"):
        pytest.skip("Skipping training test in inference-only mode")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        node = item.nodeid.split("/")[-1]
        for known, reason in KNOWN_FAILURES.items():
            if node == known or (known.endswith("*") and node.startswith(known[:-1])):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(scope="session")
def Simulator(request: pytest.FixtureRequest) -> Any:  # noqa: N802  (upstream's fixture name)
    """nengo-dl's test Simulator, configured from the command-line options."""
    from nengo_dl.tests import make_test_sim

    return make_test_sim(request)


@pytest.fixture(autouse=True)
def clear_session() -> None:
    """Free TensorFlow's resources between tests, as upstream does."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
