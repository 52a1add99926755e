"""framework.data.files: loading a user's .csv / .npz recording; bad ones refused in one line."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework.data.base import Task, scale, split
from framework.data.files import FileDataset, load_file
from framework.errors import UserError

N_DIR, PER_DIR, N_CH = 8, 20, 8  # directions, trials per direction, EMG-like channels


def reach_table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Cosine-tuned EMG-like channels for center-out reaches; returns the table and the PDs (rad).

    Directions are written with random whole turns added (−360, 0, +360) so the loader must wrap
    them; ``label`` is the direction index and ``speed`` a continuous regression target.
    """
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(N_DIR), PER_DIR)
    theta = np.deg2rad(label * 360.0 / N_DIR)
    pd_rad = rng.uniform(0, 2 * np.pi, N_CH)
    emg = 2.0 + np.cos(theta[:, None] - pd_rad) + 0.2 * rng.standard_normal((len(label), N_CH))
    table = pd.DataFrame({f"emg{c}": emg[:, c] for c in range(N_CH)})
    table["direction"] = label * 360.0 / N_DIR + 360.0 * rng.integers(-1, 2, len(label))
    table["label"] = label
    table["speed"] = rng.uniform(0.1, 0.5, len(label))
    return table, pd_rad


def cfg(path, **kw) -> FileDataset:
    kw.setdefault("task", Task.classification)
    kw.setdefault("target", "label")
    return FileDataset(path=str(path), **kw)


@pytest.fixture
def reach_csv(tmp_path):
    table, _ = reach_table()
    path = tmp_path / "reach.csv"
    table.to_csv(path, index=False)
    return path


def test_csv_loads_as_is_stratified_with_directions_and_standardises_on_request(reach_csv):
    from framework.data.base import scale

    table, pd_rad = reach_table()
    raw_data = load_file(cfg(reach_csv, direction="direction",
                             features=[f"emg{c}" for c in range(N_CH)]), seed=3)
    data, stats = scale(raw_data, "standardize")
    n_test = N_DIR * round(PER_DIR * 0.25)
    assert data.x_train.shape == (N_DIR * PER_DIR - n_test, N_CH)
    assert data.x_test.shape == (n_test, N_CH)
    assert (data.name, data.task, data.n_outputs, data.sequence) == (
        "file", "classification", 8, False)
    assert data.source == str(reach_csv.resolve())
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    # stratified: every direction loses exactly round(20 * 0.25) = 5 trials to the test split
    assert np.bincount(data.y_test, minlength=N_DIR).tolist() == [5] * N_DIR
    # directions wrapped into [0, 360) and still aligned with their rows' labels
    for d, y in ((data.dir_train, data.y_train), (data.dir_test, data.y_test)):
        assert d.min() >= 0 and d.max() < 360
        np.testing.assert_allclose(d, y * 45.0)
    # loaded as the file holds them; the test split is standardised with the training split's
    # statistics, row for row, and those statistics are what the run records
    raw = table[[f"emg{c}" for c in range(N_CH)]].to_numpy()
    train, test = split(len(raw), 0.25, np.random.default_rng(3),
                        stratify=table["label"].to_numpy())
    np.testing.assert_allclose(raw_data.x_train, raw[train], rtol=1e-6)
    mean, sd = raw[train].mean(axis=0), raw[train].std(axis=0)
    np.testing.assert_allclose(data.x_test, (raw[test] - mean) / sd, rtol=1e-5, atol=1e-5)
    assert stats["method"] == "standardize"
    np.testing.assert_allclose(stats["offset"], mean)
    np.testing.assert_allclose(stats["scale"], sd)
    # each channel keeps its cosine tuning to the carried directions (rows not scrambled)
    th = np.deg2rad(data.dir_train)
    fit = np.linalg.lstsq(np.stack([np.ones_like(th), np.cos(th), np.sin(th)], 1), data.x_train,
                          rcond=None)[0]
    pd_fit = np.arctan2(fit[2], fit[1]) % (2 * np.pi)
    err = np.abs((pd_fit - pd_rad + np.pi) % (2 * np.pi) - np.pi)
    assert np.rad2deg(err).max() < 10


def test_csv_default_features_exclude_target_and_direction(reach_csv):
    data = load_file(cfg(reach_csv, direction="direction", task=Task.regression, target="speed"), 0)
    assert data.x_train.shape[1] == N_CH + 1  # emg0..7 and label; not speed, not direction
    assert data.y_train.shape == (120, 1) and data.y_train.dtype == np.float32
    assert data.n_outputs == 1 and data.task == "regression"
    assert 0.1 <= data.y_train.min() and data.y_train.max() <= 0.5  # targets are not standardised


def test_labels_mapped_to_0_k_and_noted(tmp_path):
    table, _ = reach_table()
    table["label"] = np.array([3, 7, 11, 20])[table["label"] % 4]
    table.to_csv(tmp_path / "r.csv", index=False)
    data = load_file(cfg(tmp_path / "r.csv", features=["emg0", "emg1"]), 0)
    assert data.n_outputs == 4 and sorted(np.unique(data.y_train)) == [0, 1, 2, 3]
    assert data.notes == {"n_classes": 4.0, "label_0": 3.0, "label_1": 7.0, "label_2": 11.0,
                          "label_3": 20.0}


def test_drop_nan_drops_and_counts_rows(tmp_path):
    table, _ = reach_table()
    table.loc[[0, 50, 100], "emg2"] = np.nan
    table.loc[100, "direction"] = np.nan  # same row as above: counted once
    table.loc[151, "speed"] = np.inf
    table.to_csv(tmp_path / "r.csv", index=False)
    data = load_file(cfg(tmp_path / "r.csv", direction="direction", drop_nan=True), 0)
    assert data.notes["dropped_nan_rows"] == 4
    assert len(data.x_train) + len(data.x_test) == N_DIR * PER_DIR - 4
    assert np.isfinite(data.x_train).all() and np.isfinite(data.dir_test).all()


def test_npz_sequence(tmp_path):
    rng = np.random.default_rng(1)
    label = np.repeat(np.arange(4), 15)
    x = rng.standard_normal((60, 10, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]
    np.savez(tmp_path / "seq.npz", x=x, y=label, dirs=label * 90.0 - 360.0)
    data = load_file(cfg(tmp_path / "seq.npz", target="y", direction="dirs"), 0)
    assert data.sequence and data.input_shape == (10, 3)
    assert data.x_train.shape == (44, 10, 3) and data.x_test.shape == (16, 10, 3)
    # as the file holds them; standardize (on request) works per channel over trials and time
    assert np.allclose(np.sort(np.concatenate([data.x_train, data.x_test]).ravel()),
                       np.sort(x.ravel().astype(np.float32)))
    scaled, _ = scale(data, "standardize")
    np.testing.assert_allclose(scaled.x_train.mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.std(axis=(0, 1)), 1, atol=1e-4)
    np.testing.assert_allclose(data.dir_test, data.y_test * 90.0)


def test_npz_picks_the_only_other_array_and_accepts_omegaconf(tmp_path):
    from omegaconf import OmegaConf

    y = np.repeat([[0.5, -1.0], [1.0, 2.0]], 10, axis=0)
    np.savez(tmp_path / "e.npz", emg=np.arange(40.0).reshape(20, 2), target=y)
    data = load_file(cfg(tmp_path / "e.npz", task=Task.regression, target="target"), 0)
    assert data.y_train.shape == (15, 2) and data.n_outputs == 2 and not data.sequence
    node = OmegaConf.structured(cfg(tmp_path / "e.npz", task=Task.regression, target="target",
                                    features=["emg"]))
    again = load_file(node, 0)
    assert again.digest == data.digest


# ------------------------------------------------------------------------------------ bad inputs
def _csv(tmp_path, edit=None, name="reach.csv"):
    table, _ = reach_table()
    table = edit(table) if edit else table
    table.to_csv(tmp_path / name, index=False)
    return tmp_path / name


def _npz(tmp_path, **arrays):
    base = {"x": np.ones((40, 3)), "label": np.repeat([0, 1], 20)}
    base.update(arrays)
    np.savez(tmp_path / "rec.npz", **{k: v for k, v in base.items() if v is not None})
    return tmp_path / "rec.npz"


def _raw(tmp_path, name, content: bytes):
    (tmp_path / name).write_bytes(content)
    return tmp_path / name


def _set(table, col, rows, value):
    table[col] = table[col].astype(object) if isinstance(value, str) else table[col]
    table.loc[rows, col] = value
    return table


def _truncated_npz(tmp_path):
    path = _npz(tmp_path)
    path.write_bytes(path.read_bytes()[:300])
    return path


BAD = [  # id, make(tmp_path) -> path, config overrides, expected words in the message
    ("missing_file", lambda p: p / "nope.csv", {}, "no such file"),
    ("wrong_suffix", lambda p: _raw(p, "data.txt", b"a,b\n1,2\n"), {}, "is not one of"),
    ("empty_csv", lambda p: _raw(p, "e.csv", b""), {}, "e.csv is empty"),
    ("binary_csv", lambda p: _raw(p, "b.csv", bytes(range(256)) * 8), {}, "binary"),
    ("header_only_csv", lambda p: _raw(p, "h.csv", b"emg0,label\n"), {}, "no data rows"),
    ("ragged_csv", lambda p: _raw(p, "r.csv", b"a,label\n1,0\n2,1,5,6\n"), {}, "cannot read r.csv"),
    ("missing_target_column", lambda p: _csv(p), {"target": "class"}, "no column 'class'"),
    ("missing_feature_column", lambda p: _csv(p), {"features": ["emg0", "emg9"]},
     "columns: emg0, emg1"),
    ("feature_is_target", lambda p: _csv(p), {"features": ["emg0", "label"]}, "'label' is also"),
    ("non_numeric_column", lambda p: _csv(p, lambda t: _set(t, "emg3", 7, "n/a ")), {},
     "column 'emg3' of reach.csv is not numeric (line 9"),
    ("nan_in_feature", lambda p: _csv(p, lambda t: _set(t, "emg2", [4, 9], np.nan)), {},
     "NaN/inf values in column 'emg2' (2) of reach.csv: 2 rows"),
    ("inf_in_direction", lambda p: _csv(p, lambda t: _set(t, "direction", 3, np.inf)),
     {"direction": "direction"},
     "dataset.direction: column 'direction' of reach.csv holds inf on 1 row; mark trials "
     "without a direction as NaN"),
    ("non_integer_labels", lambda p: _csv(p), {"target": "speed"}, "non-integer labels"),
    ("single_class", lambda p: _csv(p, lambda t: _set(t, "label", slice(None), 2)), {},
     "single class (2)"),
    ("too_few_per_class", lambda p: _csv(p, lambda t: t.iloc[::10]), {}, "dataset.test_fraction"),
    ("npz_not_zip", lambda p: _raw(p, "g.npz", b"hello, not a zip"), {}, "not an npz"),
    ("npz_empty", lambda p: _raw(p, "z.npz", b""), {}, "z.npz is empty"),
    ("npz_truncated", _truncated_npz, {}, "rec.npz"),
    ("npy_as_npz", lambda p: _raw(p, "a.npz", (np.lib.format.MAGIC_PREFIX + b"\x01\x00")), {},
     "single .npy"),
    ("npz_missing_array", lambda p: _npz(p), {"target": "y"}, "arrays: x, label"),
    ("npz_ambiguous_features", lambda p: _npz(p, x=None, a=np.ones((40, 2)), b=np.ones((40, 2))),
     {}, "name one"),
    ("npz_two_feature_names", lambda p: _npz(p), {"features": ["x", "label"]}, "exactly one"),
    ("npz_features_1d", lambda p: _npz(p, x=np.ones(40)), {}, "shape (40,)"),
    ("npz_features_5d", lambda p: _npz(p, x=np.ones((40, 2, 2, 2, 2))), {},
     "shape (40, 2, 2, 2, 2); need (samples, features), (samples, time, channels) or (samples, "
     "height, width, channels)"),
    ("npz_sequence_layout_2d", lambda p: _npz(p), {"layout": "sequence"},
     "dataset.layout: sequence needs (samples, time, channels)"),
    ("npz_target_rows", lambda p: _npz(p, label=np.repeat([0, 1], 10)), {},
     "has 20 rows but the features have 40"),
    ("npz_direction_rows", lambda p: _npz(p, d=np.zeros(39)), {"direction": "d"},
     "dataset.direction: array 'd' of rec.npz has 39 rows"),
    ("npz_direction_2d", lambda p: _npz(p, d=np.zeros((40, 2))), {"direction": "d"},
     "one angle per sample"),
    ("npz_string_target", lambda p: _npz(p, label=np.array(["a", "b"] * 20)), {}, "not numeric"),
    ("npz_object_array", lambda p: _npz(p, x=np.array([[1, None]] * 40, dtype=object)), {},
     "cannot read array 'x'"),
    ("npz_nan_target", lambda p: _npz(p, label=np.r_[np.nan, np.ones(39)]), {},
     "NaN/inf values in array 'label' of rec.npz: 1 row "),
    ("regression_3d_target", lambda p: _npz(p, label=np.ones((40, 2, 2))),
     {"task": Task.regression}, "regression needs"),
    ("drop_nan_everything", lambda p: _npz(p, x=np.full((40, 3), np.nan)), {"drop_nan": True},
     "dataset.drop_nan: all 40 rows"),
]


@pytest.mark.parametrize("make, overrides, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs_raise_one_line_user_error(tmp_path, make, overrides, expected):
    path = make(tmp_path)
    with pytest.raises(UserError) as info:
        load_file(cfg(path, **overrides), seed=0)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("dataset.") and (path.name in msg or "dataset.path" not in msg), msg
    assert expected in msg, msg
