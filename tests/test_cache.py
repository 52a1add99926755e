"""The training cache: what the key covers, hits and misses, atomic entries, parallel jobs."""
from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TINY, compose

from framework import cache
from framework.config import validate
from framework.progress import Console
from framework.training import Trained

QUIET = Console(quiet=True)


def cfg_of(*overrides: str):
    return validate(compose(list(overrides)))


def data(digest: str = "d1", sequence: bool = False):
    return SimpleNamespace(digest=digest, sequence=sequence)


def key(*overrides: str, **kw) -> str:
    return cache.cache_key(cfg_of(*overrides), data(**kw))


def test_key_ignores_what_training_does_not_read():
    base = key()
    for ov in ["simulation.n_steps=37", "simulation.synapse=null", "simulation.dt=0.002",
               "simulation.minibatch_size=7", "simulation.readout_steps=3",
               "simulation.max_samples=10", "tracking.plots=false", "tracking.experiment=x",
               "analysis=[firing]", "analyses.max_neurons=5", "training.cache=false"]:
        assert key(ov) == base, ov


def test_key_covers_what_training_reads():
    keys = {key(ov) for ov in [
        "seed=0", "seed=1", "training.epochs=3", "training.learning_rate=0.02",
        "training.batch_size=16", "training.rates.enabled=true", "simulation.scale_firing_rates=10",
        "neuron=relu", "neuron.tau_rc=0.03", "model.hidden=[8]", "dataset.noise=0.1",
        "dataset.test_fraction=0.5"]}
    assert len(keys) == 12
    assert key(digest="d2") != key(digest="d1")  # same config, other data


def test_readout_steps_only_for_sequences():
    assert key("simulation.readout_steps=3") == key("simulation.readout_steps=5")
    assert key("simulation.readout_steps=3", sequence=True) != \
        key("simulation.readout_steps=5", sequence=True)


def test_keras_file_key_follows_the_file_bytes(tmp_path):
    f = tmp_path / "net.h5"
    f.write_bytes(b"weights-1")
    first = key("model=keras_file", f"model.path={f}")
    f.write_bytes(b"weights-2")
    assert key("model=keras_file", f"model.path={f}") != first
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v.data").write_bytes(b"a")
    k1 = key("model=keras_file", f"model.path={folder}")
    (folder / "variables" / "v.data").write_bytes(b"b")
    assert key("model=keras_file", f"model.path={folder}") != k1


class FakeTrain:
    """Stands in for framework.training.train: writes a params.npz, counts its calls."""

    def __init__(self, delay: float = 0.0):
        self.calls = 0
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, model, data, cfg, neuron_type, out_dir, console):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        out_dir.mkdir(parents=True, exist_ok=True)
        np.savez(out_dir / "params.npz", w=np.arange(4.0) * cfg.training.epochs)
        return Trained(params=out_dir / "params", loss=[3.0, 2.5, 1.25],
                       regularizers={"reg/in_range_after": 0.75})


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKETUNE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_miss_then_hit_then_miss(cache_dir, tmp_path):
    train = FakeTrain()
    first, hit1 = cache.trained(cfg_of(), None, data(), None, tmp_path / "s1", QUIET, train)
    second, hit2 = cache.trained(cfg_of("simulation.n_steps=50"), None, data(), None,
                                 tmp_path / "s2", QUIET, train)
    assert (hit1, hit2, train.calls) == (False, True, 1)
    assert second.params == first.params == cache_dir / key() / "params"
    assert second.loss == [3.0, 2.5, 1.25]
    assert second.regularizers == {"reg/in_range_after": 0.75}
    np.testing.assert_array_equal(np.load(f"{second.params}.npz")["w"], np.arange(4.0) * 60)
    meta = json.loads((cache_dir / key() / "trained.json").read_text())
    assert meta["config"]["training"]["epochs"] == 60 and "cache" not in meta["config"]["training"]
    _, hit3 = cache.trained(cfg_of("training.epochs=5"), None, data(), None, tmp_path / "s3",
                            QUIET, train)
    assert (hit3, train.calls) == (False, 2)
    assert not list(cache_dir.glob(".*"))  # no temporary folders left behind


def test_cache_false_bypasses(cache_dir, tmp_path):
    train = FakeTrain()
    for _ in range(2):
        result, hit = cache.trained(cfg_of("training.cache=false"), None, data(), None,
                                    tmp_path / "s", QUIET, train)
        assert not hit and result.params == tmp_path / "s" / "trained" / "params"
    assert train.calls == 2
    assert not cache_dir.exists()


def test_unreadable_entry_is_retrained(cache_dir, tmp_path):
    train = FakeTrain()
    entry = cache_dir / key()
    entry.mkdir(parents=True)
    (entry / "trained.json").write_text("{half a fi")
    result, hit = cache.trained(cfg_of(), None, data(), None, tmp_path / "s", QUIET, train)
    assert (hit, train.calls) == (False, 1)
    assert json.loads((entry / "trained.json").read_text())["loss"] == [3.0, 2.5, 1.25]


def test_parallel_jobs_train_once(cache_dir, tmp_path):
    """Four jobs with one key at once: one trains (holding the lock), three wait and hit."""
    train = FakeTrain(delay=0.3)
    results = []
    # composed up front: composing is not thread-safe
    cfgs = [cfg_of(f"simulation.n_steps={30 + i}") for i in range(4)]

    def job(i):
        results.append(cache.trained(cfgs[i], None, data(), None, tmp_path / f"s{i}", QUIET, train))

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert train.calls == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True]
    assert len({r.params for r, _ in results}) == 1


@pytest.mark.slow
def test_pipeline_hits_when_only_simulation_changes(uri, tmp_path, monkeypatch):
    """Real runs in one process: the second (other n_steps, synapse) reuses the weights — same
    loss curve, same rate-network error — the third (other epochs) trains again."""
    from helpers import runs

    from framework.pipeline import run

    monkeypatch.setenv("SPIKETUNE_CACHE_DIR", str(tmp_path / "cache"))
    base = [*TINY, f"tracking.uri={uri}", "analysis=[firing]"]
    r1 = run(compose(base), console=QUIET)
    r2 = run(compose([*base, "simulation.n_steps=30", "simulation.synapse=0.02"]), console=QUIET)
    r3 = run(compose([*base, "training.epochs=3"]), console=QUIET)
    client, found = runs(uri)
    tags = {r.info.run_id: r.data.tags["training_cache"] for r in found}
    assert [tags[r.run_id] for r in (r1, r2, r3)] == ["miss", "hit", "miss"]
    loss = [[m.value for m in client.get_metric_history(r.run_id, "train/loss")]
            for r in (r1, r2, r3)]
    assert loss[0] == loss[1] and len(loss[0]) == 2 and len(loss[2]) == 3
    assert r1.metrics["rate/mse"] == pytest.approx(r2.metrics["rate/mse"], rel=1e-6)
    assert r1.metrics["spiking/mse"] != r2.metrics["spiking/mse"]  # simulation did change
    assert len(list((tmp_path / "cache").glob("*/params.npz"))) == 2
