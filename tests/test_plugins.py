"""Plugin authoring: a new analysis dropped into a copy of the project, or installed as a package
through the ``spiketune.analyses`` entry-point group, is configured, run and logged without any
change to framework/. The plugin is the one docs/plugins.md teaches, so the guide stays true."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, TINY, cli, runs

from framework.analysis import Context, Layer
from framework.data.base import Data
from framework.plugin_host import select
from plugins.example_sparsity import Sparsity, SparsityConfig, treves_rolls

GUIDE = REPO / "docs" / "plugins.md"

EXTERNAL_PLUGIN = '''"""An analysis from another package, registered through an entry point."""
from dataclasses import dataclass

from framework.analysis import Analysis, Result, bounded


@dataclass
class ExtConfig:
    gain: float = bounded(1.0, gt=0.0)  # multiplies the logged value


class ExtProbe(Analysis):
    name = "ext_probe"
    Config = ExtConfig
    default = False

    def run(self, ctx, cfg):
        n = sum(len(layer.index) for layer in ctx.layers)
        return Result(metrics={"ext_probe/scaled_neurons": cfg.gain * n})
'''


def guide_blocks() -> list[str]:
    """The ```python blocks of docs/plugins.md, in order."""
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project (no .venv, no outputs) with the guide's ``plugins/my_probe.py``."""
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns(".venv", "outputs", "__pycache__", "*.pyc", ".git")
    for name in ("framework", "plugins", "conf"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    source = guide_blocks()[0]
    assert 'name = "my_probe"' in source, "docs/plugins.md must open with the my_probe plugin"
    (root / "plugins" / "my_probe.py").write_text(source)
    return root


@pytest.fixture
def external(tmp_path) -> Path:
    """A site directory holding an installed-looking package with a spiketune.analyses entry."""
    site = tmp_path / "site"
    (site / "ext_probe_pkg").mkdir(parents=True)
    (site / "ext_probe_pkg" / "__init__.py").write_text(EXTERNAL_PLUGIN)
    meta = site / "ext_probe_pkg-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: ext-probe-pkg\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text("[spiketune.analyses]\next_probe = ext_probe_pkg\n")
    return site


def in_copy(args: list[str], project: Path):
    """``python -m framework args`` of the copy: put on the path by name (PYTHONPATH), as an
    installed copy would be; the working directory is never searched for code."""
    return cli(args, cwd=project.parent, env={"PYTHONPATH": str(project)})


def test_copied_project_knows_the_new_plugin_and_its_config(project):
    proc = in_copy(["--cfg", "job", "analysis=[firing,my_probe]",
                    "analyses.my_probe.threshold_hz=75"], project)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"my_probe:\n\s+threshold_hz: 75(\.0)?\n", proc.stdout), proc.stdout
    # the copy's framework is unchanged: the plugin alone made the difference
    for f in (REPO / "framework").glob("*.py"):
        assert (project / "framework" / f.name).read_bytes() == f.read_bytes(), f.name


def test_new_plugin_config_is_validated_before_tensorflow(project):
    proc = in_copy(["analysis=[firing,my_probe]", "analyses.my_probe.threshold_hz=-1"], project)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "analyses.my_probe.threshold_hz: must be >= 0" in lines[0], lines
    proc = in_copy(["analyses.my_probe.threshold=5"], project)
    assert proc.returncode == 2 and "analyses.my_probe.threshold" in proc.stderr


def test_the_repository_itself_does_not_have_the_plugin():
    """The copy really is separate: the same override is refused in the original tree."""
    proc = cli(["analysis=[firing,my_probe]"])
    assert proc.returncode == 2
    assert "my_probe" in proc.stderr and "Traceback" not in proc.stderr


def test_guide_unit_test_example_passes(project):
    """The guide's in-process test of my_probe, run against the copy."""
    test_source = next(b for b in guide_blocks() if "def test_busy_fraction" in b)
    proc = subprocess.run([sys.executable, "-c", test_source + "\ntest_busy_fraction()\n"],
                          cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_entry_point_plugin_is_discovered_and_configurable(external):
    proc = cli(["--cfg", "job", "analyses.ext_probe.gain=2.5"],
               env={"PYTHONPATH": str(external)})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"ext_probe:\n\s+gain: 2\.5\n", proc.stdout), proc.stdout
    proc = cli(["analyses.ext_probe.gain=0"], env={"PYTHONPATH": str(external)})
    assert proc.returncode == 2 and "analyses.ext_probe.gain: must be > 0" in proc.stderr


@pytest.mark.slow
def test_new_plugins_run_and_log_to_mlflow(project, external, uri):
    """A full tiny run in the copy with the guide's plugin and the entry-point plugin."""
    import pandas as pd

    args = TINY + ["analysis=[firing,my_probe,ext_probe]", "analyses.my_probe.threshold_hz=150",
                   "analyses.ext_probe.gain=2.5"]
    proc = cli(args, uri=uri, cwd=project.parent,
               env={"PYTHONPATH": os.pathsep.join([str(project), str(external)])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "] analyse  my_probe" in proc.stderr and "] analyse  ext_probe" in proc.stderr
    client, found = runs(uri)
    (run,) = found
    assert run.info.status == "FINISHED"
    assert run.data.params["analyses.my_probe.threshold_hz"] == "150.0"
    neurons = pd.read_csv(client.download_artifacts(run.info.run_id, "neurons.csv"))
    assert "busy" in neurons.columns
    np.testing.assert_array_equal(neurons["busy"], neurons["mean_rate_hz"] > 150)
    m = run.data.metrics
    assert m["my_probe/busy_fraction"] == pytest.approx(neurons["busy"].mean())
    (layer,) = neurons["layer"].unique()
    assert m[f"z_detail/my_probe/{layer}/busy_fraction"] == pytest.approx(neurons["busy"].mean())
    assert m["ext_probe/scaled_neurons"] == pytest.approx(2.5 * len(neurons))


# ------------------------------------------------------------------- the example plugin: sparsity
def test_treves_rolls_sparseness_limits():
    one_active = np.array([[0.0, 0.0, 0.0, 40.0]])
    uniform = np.full((1, 4), 25.0)
    assert treves_rolls(one_active, axis=1)[0] == pytest.approx(1.0)
    assert treves_rolls(uniform, axis=1)[0] == pytest.approx(0.0)
    assert treves_rolls(one_active, axis=1, normalise=False)[0] == pytest.approx(0.25)  # 1/N
    half = np.array([[10.0, 10.0, 0.0, 0.0]])  # a = 0.5, S = (1 − 0.5) / (1 − 1/4) = 2/3
    assert treves_rolls(half, axis=1)[0] == pytest.approx(2 / 3)
    assert np.isnan(treves_rolls(np.zeros((1, 4)), axis=1)[0])


def test_sparsity_plugin_is_opt_in_and_logs_per_layer(tmp_path):
    n = 6
    rates = np.zeros((n, 4))
    rates[np.arange(n), np.arange(n) % 4] = 50.0  # one neuron active per sample
    x = np.zeros((n, 2), np.float32)
    data = Data(name="reach", task="regression", x_train=x, y_train=x, x_test=x, y_test=x,
                n_outputs=2)
    layer = Layer(name="hidden0", neuron_type=None, threshold=1.0, index=np.arange(4),
                  gain=np.ones(4), bias=np.zeros(4), rates=rates)
    ctx = Context(data=data, layers=[layer], dt=0.001, n_steps=10, sample=np.arange(n))
    res = Sparsity().run(ctx, SparsityConfig())
    assert res.metrics["sparsity/hidden0/population"] == pytest.approx(1.0)
    assert res.metrics["sparsity/hidden0/active_fraction"] == pytest.approx(0.25)
    # neuron 0 fires on 2 of 6 samples: a = (2·50/6)² / (2·50²/6) = 1/3, S = (2/3)/(5/6) = 0.8
    assert res.neurons["lifetime_sparseness"].iloc[0] == pytest.approx(0.8)
    assert "sparsity" not in select(["auto"], data)
    assert "sparsity" in select(["sparsity"], data)
    import matplotlib

    matplotlib.use("Agg")
    res.figures["sparsity"]().savefig(tmp_path / "sparsity.png", dpi=60)


def test_saturated_neurons_are_flagged_and_said():
    """Saturated: ≥ 0.9/τ_ref on some sample (LIF), or more than one spike per step (spiking
    ReLU); the firing analysis flags them in neurons.csv, counts them and says which layer."""
    import nengo

    from plugins.firing import Firing, FiringConfig

    lif = Layer(name="lif", neuron_type=nengo.LIF(tau_ref=0.002), threshold=1.0,
                index=np.arange(3), gain=np.ones(3), bias=np.zeros(3),
                rates=np.array([[10.0, 449.0, 100.0], [20.0, 300.0, 451.0]]))
    relu = Layer(name="relu", neuron_type=nengo.SpikingRectifiedLinear(), threshold=0.0,
                 index=np.arange(2), gain=np.ones(2), bias=np.zeros(2),
                 rates=np.array([[999.0, 1001.0]]))
    ctx = Context(data=None, layers=[lif, relu], dt=0.001, n_steps=1,
                  sample=np.arange(2))
    res = Firing().run(ctx, FiringConfig())
    assert list(res.neurons.saturated) == [False, False, True, False, True]
    assert res.metrics["firing/lif/saturated_fraction"] == pytest.approx(1 / 3)
    assert res.metrics["firing/saturated_fraction"] == pytest.approx(2 / 5)
    assert len(res.remarks) == 1 and "lif 1 of 3" in res.remarks[0]
    assert "relu 1 of 2 (≥ 1/dt)" in res.remarks[0]
    lif.rates = lif.rates * 0.5
    relu.rates = relu.rates * 0.5
    assert Firing().run(ctx, FiringConfig()).remarks == []
