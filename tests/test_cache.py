"""The training cache: what the key covers, hits and misses, atomic entries, parallel jobs,
entries verified on use (damaged or foreign ones rebuilt), killed writes' leftovers cleaned."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TINY, compose

from framework import cache
from framework.config import validate
from framework.networks.keras import training_key
from framework.progress import Console
from framework.resolve import network_nodes
from framework.training import Trained

QUIET = Console(quiet=True)


@pytest.fixture
def uri(store):
    """This module's runs log to a copy of an empty, migrated store (conftest's ``store``): no
    run here is about creating a store, and MLflow's migrations cost each run seconds."""
    return store


def cfg_of(*overrides: str):
    return validate(compose(list(overrides)))


def data(digest: str = "d1", sequence: bool = False):
    return SimpleNamespace(digest=digest, sequence=sequence)


def key(*overrides: str, **kw) -> str:
    return training_key(network_nodes(cfg_of(*overrides)), data(**kw)).digest()


def trained(cfg, data, scratch: Path, console, train):
    """The Keras network kind's use of the cache: keyed by its nodes, off with training.cache."""
    nodes = network_nodes(cfg)
    what = training_key(nodes, data) if nodes.training.cache else None
    return cache.trained(what, None, console,
                         lambda: train(None, data, cfg, None, scratch / "trained", console))


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
        "training.batch_size=16", "training.rates.high_hz=70", "simulation.scale_firing_rates=10",
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
    first, st1 = trained(cfg_of(), data(), tmp_path / "s1", QUIET, train)
    second, st2 = trained(cfg_of("simulation.n_steps=50"), data(), tmp_path / "s2", QUIET, train)
    assert (st1, st2, train.calls) == ("miss", "hit", 1)
    assert second.params == first.params == cache_dir / key() / "params"
    assert second.loss == [3.0, 2.5, 1.25]
    assert second.regularizers == {"reg/in_range_after": 0.75}
    np.testing.assert_array_equal(np.load(f"{second.params}.npz")["w"], np.arange(4.0) * 60)
    meta = json.loads((cache_dir / key() / "trained.json").read_text())
    assert meta["config"]["training"]["epochs"] == 60 and "cache" not in meta["config"]["training"]
    _, st3 = trained(cfg_of("training.epochs=5"), data(), tmp_path / "s3",
                            QUIET, train)
    assert (st3, train.calls) == ("miss", 2)
    assert not list(cache_dir.glob(".*"))  # no temporary folders left behind


def test_cache_false_bypasses(cache_dir, tmp_path):
    train = FakeTrain()
    for _ in range(2):
        result, status = trained(cfg_of("training.cache=false"), data(), tmp_path / "s", QUIET,
                                 train)
        assert status == "off" and result.params == tmp_path / "s" / "trained" / "params"
    assert train.calls == 2
    assert not cache_dir.exists()


def test_unreadable_entry_is_retrained(cache_dir, tmp_path):
    train = FakeTrain()
    entry = cache_dir / key()
    entry.mkdir(parents=True)
    (entry / "trained.json").write_text("{half a fi")
    result, status = trained(cfg_of(), data(), tmp_path / "s", QUIET, train)
    assert (status, train.calls) == ("rebuilt", 1)
    assert json.loads((entry / "trained.json").read_text())["loss"] == [3.0, 2.5, 1.25]
    assert cache.verify(entry, key()) == ""  # rebuilt with a manifest


def test_parallel_jobs_train_once(cache_dir, tmp_path):
    """Four jobs with one key at once: one trains (holding the lock), three wait and hit."""
    train = FakeTrain(delay=0.3)
    results = []
    # composed up front: composing is not thread-safe
    cfgs = [cfg_of(f"simulation.n_steps={30 + i}") for i in range(4)]

    def job(i):
        results.append(trained(cfgs[i], data(), tmp_path / f"s{i}", QUIET, train))

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert train.calls == 1
    assert sorted(status for _, status in results) == ["hit", "hit", "hit", "miss"]
    assert len({r.params for r, _ in results}) == 1


def two_entries(tmp_path, train):
    """Entries for the default config (weights ``arange(4) * 60``) and for ``training.epochs=5``
    (``arange(4) * 5``, same shapes, so the same file size): their keys."""
    for i, ov in enumerate(([], ["training.epochs=5"])):
        trained(cfg_of(*ov), data(), tmp_path / f"s{i}", QUIET, train)
    return key(), key("training.epochs=5")


def test_verify_tells_damaged_and_foreign_entries(cache_dir, tmp_path):
    ka, kb = two_entries(tmp_path, FakeTrain())
    a, b = cache_dir / ka, cache_dir / kb
    assert cache.verify(a, ka) == cache.verify(b, kb) == ""
    pristine = {p.name: p.read_bytes() for p in a.iterdir()}
    assert set(pristine) == {"params.npz", "trained.json", "manifest.json"}
    size = len(pristine["params.npz"])

    def check(expected: str) -> None:
        assert cache.verify(a, ka) == expected
        shutil.rmtree(a)  # back to the pristine entry before the next fault
        a.mkdir()
        for name, content in pristine.items():
            (a / name).write_bytes(content)
        assert cache.verify(a, ka) == ""

    with open(a / "params.npz", "r+b") as fh:  # a write cut short, a full disk
        fh.truncate(size // 2)
    check(f"params.npz is {size // 2} B, manifest.json says {size} B (truncated or foreign)")
    flipped = bytearray(pristine["params.npz"])
    flipped[size // 2] ^= 0x01  # one bit, same size
    (a / "params.npz").write_bytes(bytes(flipped))
    check("params.npz sha256 mismatch (damaged or foreign)")
    shutil.copyfile(b / "params.npz", a / "params.npz")  # the other config's weights
    assert (a / "params.npz").stat().st_size == size
    check("params.npz sha256 mismatch (damaged or foreign)")
    meta = json.loads(pristine["trained.json"])
    meta["loss"][-1] = 0.5
    (a / "trained.json").write_text(json.dumps(meta))
    assert cache.verify(a, ka).startswith("trained.json ")
    check(cache.verify(a, ka))
    (a / "params.npz").unlink()
    check("params.npz missing")
    (a / "manifest.json").unlink()
    check("manifest.json missing (an entry from before manifests, or damaged)")
    (a / "manifest.json").write_text('{"key": "')
    check("manifest.json unreadable (JSONDecodeError)")
    # the other entry's whole folder under this key: every file matches its manifest, the key not
    shutil.rmtree(a)
    shutil.copytree(b, a)
    check(f"manifest.json is for key {kb[:12]} (foreign entry)")
    # and the pristine entry is served, weights and curve
    train = FakeTrain()
    result, status = trained(cfg_of(), data(), tmp_path / "s", QUIET, train)
    assert (status, train.calls, result.loss) == ("hit", 0, [3.0, 2.5, 1.25])
    np.testing.assert_array_equal(np.load(f"{result.params}.npz")["w"], np.arange(4.0) * 60)


def test_damaged_entry_is_reported_once_removed_and_rebuilt(cache_dir, tmp_path):
    train = FakeTrain()
    ka, kb = two_entries(tmp_path, train)
    a = cache_dir / ka
    size = (a / "params.npz").stat().st_size

    def truncate() -> None:
        with open(a / "params.npz", "r+b") as fh:
            fh.truncate(100)

    def swap() -> None:
        shutil.copyfile(cache_dir / kb / "params.npz", a / "params.npz")

    for damage, fault in [
            (truncate, f"params.npz is 100 B, manifest.json says {size} B (truncated or foreign)"),
            (swap, "params.npz sha256 mismatch (damaged or foreign)")]:
        damage()
        calls = train.calls
        out = io.StringIO()
        result, status = trained(cfg_of(), data(), tmp_path / "s", Console(
            stream=out), train)
        assert out.getvalue().splitlines() == [
            f"          cache    entry {ka[:12]}: {fault}; rebuilding"]
        assert (status, train.calls) == ("rebuilt", calls + 1)
        # this config's own weights (epochs=60), not the other entry's (epochs=5)
        np.testing.assert_array_equal(np.load(f"{result.params}.npz")["w"], np.arange(4.0) * 60)
        assert result.params == a / "params" and result.cache_key == ka
        assert cache.verify(a, ka) == ""
        _, status = trained(cfg_of(), data(), tmp_path / "s", QUIET, train)
        assert (status, train.calls) == ("hit", calls + 1)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        [ka, kb, f"{ka}.lock", f"{kb}.lock"])  # no temporary folder left


def test_leftovers_of_killed_writes_are_cleaned(cache_dir, tmp_path):
    k = key()
    cache_dir.mkdir()
    # a real writer killed (SIGKILL) halfway through its write
    code = ("import os, signal, sys; from pathlib import Path; from framework import cache; "
            "t = cache._tmp_dir(Path(sys.argv[1]), sys.argv[2]); "
            "(t / 'params.npz').write_bytes(b'half'); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(cache_dir), k],
                            cwd=Path(cache.__file__).parents[1])
    assert proc.wait(timeout=60) == -9
    (killed,) = cache_dir.glob(f".tmp-*-{proc.pid}@*")
    live = cache._tmp_dir(cache_dir, k)  # this process's own: a write under way
    other_host = cache_dir / f".tmp-{k[:16]}-abcdefgh-1@elsewhere.example"  # cannot tell: wait
    other_host_old = cache_dir / f".tmp-{k[:16]}-abcdefgh-2@elsewhere.example"
    before_pids = cache_dir / f".{k[:16]}-abcdefgh"  # the name before pids were recorded
    not_ours = cache_dir / ".someone-elses"
    hour_ago = time.time() - 3600
    for path in (other_host, other_host_old, before_pids, not_ours):
        path.mkdir()
    for path in (other_host_old, before_pids, not_ours):
        os.utime(path, (hour_ago, hour_ago))
    out = io.StringIO()
    train = FakeTrain()
    _, status = trained(cfg_of(), data(), tmp_path / "s", Console(stream=out), train)
    assert (status, train.calls) == ("miss", 1)
    assert out.getvalue().splitlines()[0] == \
        "          cache    removed 3 leftover temporary folder(s) of killed writes"
    assert not killed.exists() and not other_host_old.exists() and not before_pids.exists()
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        [k, f"{k}.lock", live.name, other_host.name, not_ours.name])
    # once older than STALE_S, another host's folder goes too; a live writer's stays however old
    assert cache.clean_leftovers(cache_dir, now=time.time() + cache.STALE_S + 60) == [other_host]
    assert live.exists()


@pytest.mark.slow
def test_pipeline_hits_when_only_simulation_changes(uri, tmp_path, monkeypatch):
    """Real runs in one process: the second (other n_steps, synapse) reuses the weights — same
    loss curve, same rate-network error — the third (other epochs) trains again."""
    from helpers import runs

    from framework.pipeline import run

    monkeypatch.setenv("SPIKETUNE_CACHE_DIR", str(tmp_path / "cache"))
    base = [*TINY, f"tracking.uri={uri}", "analysis=[firing]", "tracking.log_model=false"]
    r1 = run(compose(base), console=QUIET)
    r2 = run(compose([*base, "simulation.n_steps=30", "simulation.synapse=0.02"]), console=QUIET)
    r3 = run(compose([*base, "training.epochs=3"]), console=QUIET)
    client, found = runs(uri)
    tags = {r.info.run_id: r.data.tags["spiketune.training_cache"] for r in found}
    assert [tags[r.run_id] for r in (r1, r2, r3)] == ["miss", "hit", "miss"]
    loss = [[m.value for m in client.get_metric_history(r.run_id, "train/loss")]
            for r in (r1, r2, r3)]
    assert loss[0] == loss[1] and len(loss[0]) == 2 and len(loss[2]) == 3
    assert r1.metrics["rate/mse"] == pytest.approx(r2.metrics["rate/mse"], rel=1e-6)
    assert r1.metrics["spiking/mse"] != r2.metrics["spiking/mse"]  # simulation did change
    assert len(list((tmp_path / "cache").glob("*/params.npz"))) == 2


@pytest.mark.slow
def test_pipeline_rebuilds_a_truncated_and_a_swapped_entry(uri, tmp_path, monkeypatch):
    """Real runs: a truncated entry, then one holding another config's weights, are each reported,
    not served and rebuilt; the run finishes with the weights, loss curve and rate-network error
    of the first, fresh training (same seed)."""
    from helpers import runs

    from framework.pipeline import run

    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("SPIKETUNE_CACHE_DIR", str(cache_dir))
    base = [*TINY, f"tracking.uri={uri}", "analysis=[firing]", "tracking.log_model=false"]

    def weights(path: Path) -> dict:
        with np.load(path) as z:
            return {name: z[name].copy() for name in z.files}

    r1 = run(compose(base), console=QUIET)
    client, found = runs(uri)
    entry = cache_dir / found[0].data.tags["spiketune.training_cache_key"]
    fresh = weights(entry / "params.npz")
    size = (entry / "params.npz").stat().st_size
    with open(entry / "params.npz", "r+b") as fh:
        fh.truncate(size // 2)
    r2 = run(compose(base), console=QUIET)  # was a BadZipFile, tagged hit, for ever
    after_truncation = weights(entry / "params.npz")
    r3 = run(compose([*base, "training.epochs=3"]), console=QUIET)
    client, found = runs(uri)
    other = cache_dir / found[-1].data.tags["spiketune.training_cache_key"]
    foreign = weights(other / "params.npz")
    shutil.copyfile(other / "params.npz", entry / "params.npz")  # was served silently
    r4 = run(compose(base), console=QUIET)
    after_swap = weights(entry / "params.npz")

    client, found = runs(uri)
    tags = {r.info.run_id: r.data.tags for r in found}
    assert [tags[r.run_id]["spiketune.training_cache"] for r in (r1, r2, r3, r4)] == \
        ["miss", "rebuilt", "miss", "rebuilt"]
    assert [tags[r.run_id]["spiketune.training_cache"] for r in (r2, r4)] == ["rebuilt", "rebuilt"]
    assert tags[r4.run_id]["spiketune.train_loss"].startswith("live: 2 epochs")  # trained again
    # the other config's weights really differ, so serving them would be seen
    assert set(foreign) == set(fresh)
    assert max(float(np.abs(foreign[n] - fresh[n]).max()) for n in fresh) > 1e-3
    for rebuilt in (after_truncation, after_swap):
        assert set(rebuilt) == set(fresh)
        for name in fresh:
            np.testing.assert_allclose(rebuilt[name], fresh[name], rtol=1e-6, atol=1e-7,
                                       err_msg=name)
    loss = {r.run_id: [m.value for m in client.get_metric_history(r.run_id, "train/loss")]
            for r in (r1, r2, r3, r4)}
    assert len(loss[r1.run_id]) == 2 and len(loss[r3.run_id]) == 3
    assert loss[r2.run_id] == pytest.approx(loss[r1.run_id], rel=1e-6)
    assert loss[r4.run_id] == pytest.approx(loss[r1.run_id], rel=1e-6)
    for r in (r2, r4):
        assert r.metrics["rate/mse"] == pytest.approx(r1.metrics["rate/mse"], rel=1e-5)
    assert r3.metrics["rate/mse"] != pytest.approx(r1.metrics["rate/mse"], rel=1e-3)
    assert cache.verify(entry, entry.name) == ""
