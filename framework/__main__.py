"""``python -m framework``: the same as the ``spiketune`` console script.

``python -m`` puts the working directory first on ``sys.path``, so a folder that happens to hold
a ``plugins/`` or ``hydra_plugins/`` package would have its code imported by plugin discovery or
by Hydra, before any config is checked. The package never imports from the working directory:
that entry is removed first (spiketune's own packages are found by their installation).
"""
import os
import sys

_cwd = os.path.realpath(os.getcwd())
sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.realpath(p) != _cwd]

from framework.app.cli import main  # noqa: E402 - after the path is cleaned

main()
