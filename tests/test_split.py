"""The user's own split (``dataset.split``, ``dataset.test_path``), ``split.csv``, and sequences in
the recording's own time (``dataset.bin_s``): read from files, no TensorFlow."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import compose

from framework.config import validate
from framework.data.base import Task, split_csv
from framework.data.files import FileDataset, load_file
from framework.errors import UserError
from framework.resolve import resolve_defaults


def table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.standard_normal((n, 3)), columns=["a", "b", "c"])
    df["target"] = np.arange(n) % 2
    df["fold"] = np.where(np.arange(n) % 5 == 0, "test", "train")
    return df


def test_a_split_column_chooses_exactly_the_test_rows_and_is_no_feature(tmp_path):
    df = table()
    df.loc[7, "a"] = np.nan  # a dropped row keeps the others' own indices
    df.to_csv(tmp_path / "d.csv", index=False)
    data = load_file(FileDataset(path=str(tmp_path / "d.csv"), split="fold", drop_nan=True,
                                 task=Task.classification), seed=0)
    assert data.split_given and data.x_train.shape[1] == 3  # a, b, c: not the split column
    assert data.test_index.tolist() == [i for i in range(40) if i % 5 == 0]
    assert 7 not in data.train_index and len(data.train_index) == 31
    np.testing.assert_allclose(data.x_test[:, 0], df.loc[data.test_index, "a"], rtol=1e-6)
    rows = pd.read_csv(pd.io.common.StringIO(split_csv(data)))
    assert rows["index"].tolist() == [i for i in range(40) if i != 7]
    assert (rows["split"] == "test").sum() == 8


def test_an_npz_split_array_and_its_bad_values(tmp_path):
    x = np.arange(20.0).reshape(10, 2)
    y = np.arange(10) % 2
    split = np.array(["train"] * 7 + ["TEST"] * 3)
    np.savez(tmp_path / "d.npz", x=x, target=y, part=split)
    data = load_file(FileDataset(path=str(tmp_path / "d.npz"), split="part",
                                 task=Task.classification), seed=3)
    assert data.test_index.tolist() == [7, 8, 9]
    np.savez(tmp_path / "bad.npz", x=x, target=y, part=np.array(["train"] * 9 + ["valid"]))
    with pytest.raises(UserError, match="dataset.split: array 'part' of bad.npz holds 'valid' "
                                        "at sample 9"):
        load_file(FileDataset(path=str(tmp_path / "bad.npz"), split="part"), seed=0)
    np.savez(tmp_path / "all.npz", x=x, target=y, part=np.array(["train"] * 10))
    with pytest.raises(UserError, match="dataset.split: 10 training and 0 test samples"):
        load_file(FileDataset(path=str(tmp_path / "all.npz"), split="part"), seed=0)


def test_a_test_file_holds_the_test_samples(tmp_path):
    df = table().drop(columns="fold")
    df.iloc[:30].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[30:].to_csv(tmp_path / "test.csv", index=False)
    data = load_file(FileDataset(path=str(tmp_path / "train.csv"),
                                 test_path=str(tmp_path / "test.csv"),
                                 task=Task.classification), seed=0)
    assert data.split_given and len(data.x_train) == 30 and len(data.x_test) == 10
    np.testing.assert_allclose(data.x_test, df.iloc[30:][["a", "b", "c"]], rtol=1e-6)
    df.iloc[30:].drop(columns="c").to_csv(tmp_path / "narrow.csv", index=False)
    with pytest.raises(UserError, match="dataset.test_path: narrow.csv's samples are"):
        load_file(FileDataset(path=str(tmp_path / "train.csv"),
                              test_path=str(tmp_path / "narrow.csv")), seed=0)


def test_bin_s_runs_the_recordings_own_time():
    from types import SimpleNamespace

    obj = validate(compose(["~tuned", "dataset.sequence=true", "dataset.bin_s=0.02"]))
    said = resolve_defaults(obj, SimpleNamespace(sequence=True, x_test=np.zeros((3, 20, 8))))
    assert obj.simulation.n_steps == 400 and obj.simulation.readout_steps == 400
    assert "simulation.n_steps -> 400 (dataset.bin_s=0.02 s × 20 bins" in said[-2]
    obj = validate(compose(["~tuned", "dataset.bin_s=0.0015"]))
    with pytest.raises(UserError, match="dataset.bin_s: set for data that are not a sequence"):
        resolve_defaults(obj, SimpleNamespace(sequence=False, x_test=np.zeros((3, 8))))
    obj = validate(compose(["~tuned", "dataset.sequence=true", "dataset.bin_s=0.0015"]))
    with pytest.raises(UserError, match="not a whole number of simulation.dt"):
        resolve_defaults(obj, SimpleNamespace(sequence=True, x_test=np.zeros((3, 20, 8))))
