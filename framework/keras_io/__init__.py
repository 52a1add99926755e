"""A user's saved Keras model (Keras 2 or Keras 3), loaded without running any code it carries.

:mod:`.screen` reads the stored config as data and refuses what is unsafe or unconvertible (no
TensorFlow needed); :mod:`.load` loads it with the Keras that wrote it and hands NengoDL a tf-keras
model.
"""
from framework.keras_io.load import load_keras, load_model, rebuild
from framework.keras_io.screen import file_tags, keras_major, sha256

__all__ = ["file_tags", "keras_major", "load_keras", "load_model", "rebuild", "sha256"]
