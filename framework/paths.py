"""Every path spiketune knows of its own: the repository, its conf/, the outputs folder, and
how a user-given path is resolved and checked.

``$SPIKETUNE_OUTPUTS`` moves the whole outputs folder (store, artifacts, cache, Hydra logs; the test
suite points it at a temporary folder); ``$SPIKETUNE_CACHE_DIR`` moves the training cache alone.
The config's ``paths`` group (conf/paths/default.yaml) takes its defaults from here.
"""
from __future__ import annotations

import os
from pathlib import Path

from framework.errors import UserError

#: the checkout (or installation) the code runs from
REPO = Path(__file__).resolve().parents[1]
#: Hydra's config folder: one group per concern, ``experiment/`` presets
CONF = REPO / "conf"
#: the store, artifacts, training cache and Hydra logs: ``$SPIKETUNE_OUTPUTS`` or <repo>/outputs
OUTPUTS = Path(os.environ.get("SPIKETUNE_OUTPUTS") or REPO / "outputs").absolute()


def default_uri() -> str:
    """The default MLflow store: an absolute sqlite file under :data:`OUTPUTS`."""
    return f"sqlite:///{OUTPUTS / 'mlflow.db'}"


def cache_root() -> Path:
    """``$SPIKETUNE_CACHE_DIR`` or ``<outputs>/cache``."""
    return Path(os.environ.get("SPIKETUNE_CACHE_DIR") or OUTPUTS / "cache")


def launch_dir() -> Path:
    """The directory the user launched from (Hydra may have changed the working directory)."""
    try:
        from hydra.utils import get_original_cwd

        return Path(get_original_cwd())
    except (ImportError, ValueError):
        return Path.cwd()


def existing_path(value: str, key: str, suffixes: tuple[str, ...] = ()) -> Path:
    """Resolve a user-given path and check it exists (and has an accepted suffix).

    Parameters
    ----------
    value : str
        The path as written in the config; relative paths are taken from the launch directory.
    key : str
        The config key, named in the error.
    suffixes : tuple of str
        Accepted suffixes (``.csv``); empty accepts any.
    """
    if not value:
        raise UserError(f"{key}: no path given")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = launch_dir() / path
    if not path.exists():
        raise UserError(f"{key}: no such file: {path}")
    if not (path.is_file() or path.is_dir()):  # a pipe or device would block or never end
        raise UserError(f"{key}: {path} is not a regular file (a pipe, device or socket)")
    if suffixes and path.suffix.lower() not in suffixes and not path.is_dir():
        raise UserError(f"{key}: {path.name} is not one of {', '.join(suffixes)}")
    return path
