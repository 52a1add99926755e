"""What makes the locked libraries work together: nengo-dl 3.6.0 on TensorFlow 2.21, Keras 3 beside.

nengo-dl 3.6.0 (January 2023, the last release) was written for TensorFlow ≤ 2.11, where
``tf.keras`` *was* the ``keras`` package (Keras 2). TensorFlow 2.16+ installs Keras 3 as ``keras``;
the Keras 2 API lives on as ``tf_keras``. :func:`install` makes nengo-dl run unmodified on that
stack and changes nothing else. It does exactly four things:

1. Sets ``TF_USE_LEGACY_KERAS=1`` (before TensorFlow is imported), so that ``tf.keras`` is
   ``tf_keras``: nengo-dl's Converter, Simulator and losses use the Keras 2 API through
   ``tf.keras``.
   ``import keras`` still gives Keras 3, which reads users' Keras 3 files
   (:mod:`framework.keras_io.load`).
2. Installs an import hook for the one module ``nengo_dl.compat``. That module runs
   ``from keras.engine.functional import Functional, _build_map`` and
   ``from keras.layers import BatchNormalizationV1, BatchNormalizationV2``: Keras 2 paths that
   Keras 3 does not have. While ``nengo_dl.compat`` (and only it) executes, ``sys.modules`` maps

   ================================  ==================================
   ``keras.engine``                  ``tf_keras.src.engine``
   ``keras.engine.functional``       ``tf_keras.src.engine.functional``
   ``keras.layers``                  ``tf_keras.src.layers``
   ================================  ==================================

   and the previous entries are put back afterwards, so the real ``keras`` (Keras 3) is untouched.
   Every other private TensorFlow import nengo-dl makes still exists in 2.21.
3. Backports nengo-dl's unreleased fix "Fix LinearFilter D reshaping" (main branch, c2dbadf,
   February 2023) when ``nengo_dl.process_builders`` is imported: nengo 4 stores a LinearFilter's D
   as a (1, 1) matrix, which 3.6.0 reshapes wrongly, so any synapse with a direct term (a gain
   ``LinearFilter([k], [1])``, or equal numerator and denominator orders) fails to build.

4. Answers nengo-dl's GPU probe in-process where the machine has no NVIDIA device: importing
   ``nengo_dl.utils`` otherwise starts a second Python that imports TensorFlow only to ask
   ``tf.config.list_physical_devices('GPU')`` (3-5 s for every process that builds a network:
   each run, each sweep job). Without ``/dev/nvidiactl`` that answer is "none", so the probe's
   ``subprocess.call`` is answered 1 ("no GPU") while ``nengo_dl.utils`` executes, and only it.

Each part is a no-op where it is not needed: the aliases only when ``keras.engine`` cannot be
imported from the installed ``keras`` (Keras 3) and the backport only on nengo-dl ≤ 3.6.0.
``import framework`` calls :func:`install`, so every process that runs spiketune's code has it
before anything imports nengo-dl, sweep workers included (joblib, submitit and Ray unpickle a
``framework`` function first). It imports nothing heavy itself.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

from framework.compat import linear_filter  # cheap: imports nothing heavy at its top

#: the module names ``nengo_dl.compat`` imports from Keras 2, and where tf_keras keeps them
KERAS2_ALIASES = {
    "keras.engine": "tf_keras.src.engine",
    "keras.engine.functional": "tf_keras.src.engine.functional",
    "keras.layers": "tf_keras.src.layers",
}
_MISSING = object()


def _needs_keras2_aliases() -> bool:
    """True when the installed ``keras`` is Keras 3 (it has no ``keras.engine``)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        return False
    return not any(os.path.isdir(os.path.join(loc, "engine"))
                   for loc in spec.submodule_search_locations)


def _with_keras2_aliases(run: Callable[[], None]) -> None:
    """Run ``run`` with :data:`KERAS2_ALIASES` in ``sys.modules``; restore the old entries after."""
    saved = {name: sys.modules.get(name, _MISSING) for name in KERAS2_ALIASES}
    try:
        for name, target in KERAS2_ALIASES.items():
            sys.modules[name] = importlib.import_module(target)
        run()
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old  # type: ignore[assignment]


#: the device node every NVIDIA GPU needs; without it TensorFlow lists no GPU
NVIDIA_CONTROL = "/dev/nvidiactl"


def _is_gpu_probe(args: Any) -> bool:
    """``args`` is nengo_dl.utils' GPU probe (``python -c "... list_physical_devices ..."``)."""
    return (isinstance(args, list) and len(args) == 3 and args[1] == "-c"
            and "list_physical_devices('GPU')" in str(args[2]))


def _without_gpu_probe(run: Callable[[], None]) -> None:
    """Execute ``nengo_dl.utils`` with its GPU probe answered 1 ("no GPU", its exit code when
    TensorFlow lists none) instead of started; every other ``subprocess.call`` goes through."""
    import subprocess

    real = subprocess.call

    def call(args: Any, *rest: Any, **kwargs: Any) -> int:
        return 1 if _is_gpu_probe(args) else real(args, *rest, **kwargs)

    subprocess.call = call
    try:
        run()
    finally:
        subprocess.call = real


def _after_process_builders(module: types.ModuleType) -> None:
    """Apply the LinearFilter backport to a freshly executed ``nengo_dl.process_builders``."""
    from nengo_dl import version
    from packaging.version import Version

    if Version(version.version) <= Version("3.6.0"):
        linear_filter.apply(module.LinearFilterBuilder)


class _Loader(importlib.abc.Loader):
    """Wraps a module's own loader: ``around`` runs its execution, ``after`` sees the result."""

    def __init__(self, inner: importlib.abc.Loader,
                 around: Callable[[Callable[[], None]], None] | None,
                 after: Callable[[types.ModuleType], None] | None) -> None:
        self.inner, self.around, self.after = inner, around, after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        def run() -> None:
            self.inner.exec_module(module)

        (self.around or (lambda f: f()))(run)
        if self.after is not None:
            self.after(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, is_package, ...
        return getattr(self.inner, name)


class _Hook(importlib.abc.MetaPathFinder):
    """Finds the modules named in ``patches`` with the other finders and wraps their loaders."""

    def __init__(self, patches: dict[str, tuple[Any, Any]]) -> None:
        self.patches = patches

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                around, after = self.patches[fullname]
                spec.loader = _Loader(spec.loader, around, after)
                return spec
        return None


def install() -> None:
    """Make nengo-dl 3.6.0 run on the installed TensorFlow and Keras (see the module docstring).

    Idempotent and cheap: it imports neither TensorFlow nor nengo-dl. Where nengo-dl's modules
    were imported before (by code that made them import some other way), the backport is applied
    to the loaded module at once.
    """
    if any(isinstance(f, _Hook) for f in sys.meta_path):
        return
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    patches: dict[str, tuple[Any, Any]] = {}
    if "nengo_dl.process_builders" in sys.modules:
        _after_process_builders(sys.modules["nengo_dl.process_builders"])
    else:
        patches["nengo_dl.process_builders"] = (None, _after_process_builders)
    if "nengo_dl.utils" not in sys.modules and not os.path.exists(NVIDIA_CONTROL):
        patches["nengo_dl.utils"] = (_without_gpu_probe, None)
    if "nengo_dl.compat" not in sys.modules and _needs_keras2_aliases():
        patches["nengo_dl.compat"] = (_with_keras2_aliases, None)
    sys.meta_path.insert(0, _Hook(patches))


def check_tf_keras() -> None:
    """Refuse to go on when ``tf.keras`` is not tf_keras (TensorFlow was imported too early).

    Raises
    ------
    RuntimeError
        Naming the cause: TensorFlow imported before :func:`install` without
        ``TF_USE_LEGACY_KERAS=1``.
    """
    import tensorflow as tf

    name = getattr(tf.keras, "__name__", "")
    if not name.startswith("tf_keras") and not name.startswith("keras.api._v2"):
        raise RuntimeError(f"tf.keras is {name!r}, not tf_keras: TensorFlow was imported before "
                           f"framework (set TF_USE_LEGACY_KERAS=1 or import framework first)")
