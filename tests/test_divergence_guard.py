"""The divergence guard judges the loss by its own trend, and its advice fits the case."""
from __future__ import annotations

import numpy as np
import pytest

from framework.errors import DivergenceError


@pytest.fixture(scope="module")
def guard():
    from framework import quiet
    from framework.training import divergence_guard

    quiet.tensorflow()

    def feed(batches_per_epoch, scaled=True, factor=1e3):
        g = divergence_guard(factor, 1e-5, scaled)
        g.on_train_begin()
        for epoch in batches_per_epoch:
            for b, loss in enumerate(epoch):
                g.on_train_batch_end(b, {"loss": loss})
            g.on_epoch_end(0, {"loss": float(np.mean(epoch))})

    return feed


def test_a_large_slowly_falling_loss_trains_on(guard):
    """The issue's case: raw-unit targets, learning rate 1e-5: loss ~956, falling; predicting the
    mean would score 0.0972, which the old guard compared against and stopped."""
    epochs = [list(956.0 * 0.99 ** np.arange(e * 10, e * 10 + 10)) for e in range(20)]
    guard(epochs)  # no exception


def test_adams_wobble_trains_on(guard):
    """Digits' conv net at learning rate 0.01 (CI, TF 2.21): the epoch loss went 0.034 → 0.063 →
    0.09 → 0.115 and then down again; a guard that called that divergence stopped a good run."""
    losses = [2.0, 0.5, 0.2, 0.0341, 0.0631, 0.09, 0.115, 0.05, 0.03, 0.02]
    guard([[v] * 4 for v in losses])


def test_noisy_but_flat_loss_trains_on(guard):
    rng = np.random.default_rng(0)
    guard([list(1.0 + 0.5 * rng.random(10)) for _ in range(30)])


@pytest.mark.parametrize("epochs,why", [
    ([[100.0, 80.0, np.nan]], "loss nan at batch 2"),
    ([[100.0, 90.0, 1e35]], "1.11e+33 times its lowest so far"),  # the forum thread's explosion
    ([[v] * 3 for v in (1.0, 1.6, 2.6, 4.1, 6.6, 10.5)], "rose 5 epochs in a row to 10.5"),
])
def test_exploding_or_rising_loss_is_stopped(guard, epochs, why):
    with pytest.raises(DivergenceError) as err:
        guard(epochs)
    assert why in str(err.value)
    assert str(err.value).startswith("training.learning_rate: training diverged (")


def test_advice_follows_the_scaling(guard):
    with pytest.raises(DivergenceError) as err:
        guard([[1.0, np.inf]], scaled=False)
    assert str(err.value).endswith("(dataset.scaling=none): set dataset.scaling=standardize, or "
                                   "lower training.learning_rate (now 1e-05)")
    with pytest.raises(DivergenceError) as err:
        guard([[1.0, np.inf]], scaled=True)
    assert str(err.value).endswith("; lower training.learning_rate (now 1e-05)")
    assert "scaling" not in str(err.value)


class _Recorder:
    """What the live loss writes: one entry per write, (key, values, steps, times in ms)."""

    def __init__(self):
        self.writes = []

    def series(self, key, values, steps=None, times_ms=None):
        self.writes.append((key, list(values), list(steps), list(times_ms)))


def test_live_loss_keeps_every_epoch_its_step_and_time_however_it_batches(monkeypatch):
    """The live train/loss goes out in batches (a write per epoch cost 0.25 s of a 3.5 s
    training); whatever the batching, every epoch arrives once, at its own step and with the
    time it ended, and flush() writes the epochs still held (a run that diverged)."""
    import framework.networks.keras as keras_net

    clock = iter(np.arange(0.0, 100.0, 0.75))  # 0.75 s per epoch on a fake clock
    monkeypatch.setattr(keras_net.time, "monotonic", lambda: float(next(clock)))
    rec = _Recorder()
    live = keras_net.LiveLoss(rec)
    for epoch in range(7):
        live(epoch, 1.0 / (epoch + 1))
    assert len(rec.writes) == 2  # 2 s passed after epochs 2 and 5: two writes of three
    live.flush()
    live.flush()  # nothing held: nothing written
    assert len(rec.writes) == 3
    steps = [s for w in rec.writes for s in w[2]]
    values = [v for w in rec.writes for v in w[1]]
    stamps = [t for w in rec.writes for t in w[3]]
    assert steps == list(range(7)) and {w[0] for w in rec.writes} == {"train/loss"}
    np.testing.assert_allclose(values, 1.0 / np.arange(1, 8))
    assert stamps == sorted(stamps) and all(t > 1.7e12 for t in stamps)  # ms since 1970
