"""framework.compat: nengo-dl 3.6.0 on TensorFlow 2.21 with Keras 3 beside it, in this process and
in fresh ones."""
import subprocess
import sys

import numpy as np
import pytest

import framework  # noqa: F401  (installs the layer before nengo-dl is imported)

# What a fresh interpreter sees after `import framework`: tf.keras is tf_keras, `keras` is Keras 3
# with no alias left behind, and nengo-dl's compat module got tf_keras's Functional.
PROBE = """
import sys
import framework, nengo_dl, keras, tensorflow as tf
from nengo_dl import compat
import tf_keras
print(tf.keras.__name__.split('.')[0], keras.__version__.split('.')[0],
      [n for n in ('keras.engine', 'keras.engine.functional') if n in sys.modules],
      sys.modules.get('keras.layers') is sys.modules.get('tf_keras.src.layers'),
      compat.Functional is tf_keras.src.engine.functional.Functional)
"""


def test_fresh_process_gets_tf_keras_for_nengo_dl_and_keras3_untouched():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["tf_keras", "3", "[]", "False", "True"]


def test_nengo_dl_needs_the_layer_on_this_stack():
    """Without the hook, nengo-dl 3.6.0 does not import on TensorFlow 2.21: the layer is not a
    no-op here (so the probe above would fail without it)."""
    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Hook']\n"
            "import nengo_dl")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode != 0
    assert "No module named 'keras.engine'" in out.stderr


def test_plain_import_nengo_dl_works_in_any_venv_process(tmp_path):
    """The venv loads the layer at start-up (spiketune-compat.pth): a user's own script, in
    another folder, imports nengo-dl and builds a converted Keras model with no spiketune import."""
    script = tmp_path / "user.py"
    script.write_text("import nengo_dl, tensorflow as tf\n"
                      "inp = tf.keras.Input((3,)); "
                      "out = tf.keras.layers.Dense(2, activation='relu')(inp)\n"
                      "conv = nengo_dl.Converter(tf.keras.Model(inp, out))\n"
                      "print(type(conv.net).__name__)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "Network"


SYNAPSES = {
    "gain": ([2.0], [1.0]),                     # NoX step: D only
    "same-order": ([1.0, 0.5], [1.0, 2.0]),     # General step with a D term
    "lowpass-like": ([1.0], [0.01, 1.0]),       # OneX step, no D
    "second-order": ([0.5, 1.0], [1.0, 2.0, 3.0]),
}


def _net(num, den):
    import nengo

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: np.sin(10 * t) + 0.3)
        out = nengo.Node(size_in=1)
        nengo.Connection(stim, out, synapse=nengo.LinearFilter(num, den))
        probe = nengo.Probe(out)
    return net, probe


@pytest.mark.parametrize("name", sorted(SYNAPSES))
def test_linear_filters_with_any_d_match_nengo_reference(name):
    import nengo
    import nengo_dl

    net, probe = _net(*SYNAPSES[name])
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(100)
    with nengo_dl.Simulator(net, progress_bar=False, minibatch_size=3) as sim:
        sim.run_steps(100)
    assert np.allclose(sim.data[probe], ref.data[probe][None], atol=1e-5), name


def test_unpatched_builder_fails_on_a_direct_term():
    """The backport is what makes the gain synapse build: 3.6.0's own method refuses it."""
    import nengo_dl
    from nengo_dl.process_builders import LinearFilterBuilder

    net, _ = _net(*SYNAPSES["gain"])
    fixed = LinearFilterBuilder.build_pre
    LinearFilterBuilder.build_pre = LinearFilterBuilder._original_build_pre
    try:
        with pytest.raises(AssertionError):
            nengo_dl.Simulator(net, progress_bar=False)
    finally:
        LinearFilterBuilder.build_pre = fixed
