"""``dataset=digits``: scikit-learn's bundled 8×8 handwritten digits (no download)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from framework.data.base import DATASETS, Data, DatasetConfig, Scaling, Task, split
from framework.errors import UserError
from framework.schema import option


@option(DATASETS)
@dataclass
class DigitsDataset(DatasetConfig):
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes; no download)."""

    own_scaling: ClassVar[Scaling] = Scaling.none  # pixels are already ink fractions in [0, 1]

    name: str = "digits"
    task: Task = Task.classification

    def load(self, seed: int) -> Data:
        return digits(self, seed)


def digits(cfg: DigitsDataset, seed: int) -> Data:
    """scikit-learn's bundled 8×8 digits as (8, 8, 1) images in [0, 1]; no download."""
    from sklearn.datasets import load_digits

    if cfg.task.value != "classification":
        raise UserError("dataset.task: digits is a classification dataset")
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train, test = split(len(y), cfg.test_fraction, rng, stratify=y)
    return Data(name="digits", task="classification", x_train=x[train], y_train=y[train],
                x_test=x[test], y_test=y[test], n_outputs=10,
                source="sklearn.datasets.load_digits", train_index=train, test_index=test)
