"""Stage 1, data: :mod:`base` (Data, split, scaling, the ``dataset`` schema and registry) and one
module per dataset option, imported here in order to register."""
from framework.data import digits, files, reach
from framework.data.base import DATASETS, Data, DatasetConfig, load, scale, split

__all__ = ["DATASETS", "Data", "DatasetConfig", "digits", "files", "load", "reach", "scale",
           "split"]
