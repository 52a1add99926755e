"""User errors, one-line reasons, and signal handling shared by every stage.

A :class:`UserError` is anything the user can fix (a config key, a data file, a diverging loss). The
CLI prints its message on one line and exits 2; anything else is an internal error (exit 1).
"""
from __future__ import annotations

import signal
from pathlib import Path

EXIT_USER = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix; its message names the config key or file at fault."""


class DivergenceError(UserError):
    """Training produced a non-finite or exploding loss."""


_interrupts: list[str] = []


def on_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    """Record which signal arrived, then raise KeyboardInterrupt.

    A KeyboardInterrupt raised inside TensorFlow's import or an optional import's bare ``except``
    may surface as another exception or be swallowed; the record lets the pipeline still see it.
    """
    _interrupts.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


def interruption(ex: BaseException | None = None) -> str | None:
    """One-line reason if the run was interrupted by a signal (or ``ex`` is a KeyboardInterrupt)."""
    if _interrupts:
        name = _interrupts[-1]
        return "interrupted by the user (Ctrl-C)" if name == "SIGINT" else f"interrupted by {name}"
    if isinstance(ex, KeyboardInterrupt):
        return "interrupted by the user (Ctrl-C)"
    return None


def check_interrupt() -> None:
    """Raise KeyboardInterrupt at a stage boundary if a signal arrived and was swallowed."""
    if _interrupts:
        raise KeyboardInterrupt


def _quiet_swallowed_interrupt(hook):
    """A ``sys.unraisablehook`` that stays silent on the KeyboardInterrupt of a recorded signal.

    A signal that lands in a garbage-collector callback (jax registers one during TensorFlow's
    import) raises there, where Python cannot propagate it and prints "Exception ignored ...
    Traceback" instead. The signal is recorded and :func:`check_interrupt` acts on it, so that
    traceback is noise; anything else goes to the previous hook.
    """

    def unraisable(info):
        if _interrupts and isinstance(info.exc_value, KeyboardInterrupt):
            return
        hook(info)

    unraisable.spiketune = True  # type: ignore[attr-defined]  # marks our hook as installed
    return unraisable


def install_signal_handlers() -> None:
    """Treat SIGTERM like Ctrl-C, and record SIGINT too (unless someone else handles it)."""
    import sys

    signal.signal(signal.SIGTERM, on_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_interrupt)
    if not getattr(sys.unraisablehook, "spiketune", False):
        sys.unraisablehook = _quiet_swallowed_interrupt(sys.unraisablehook)


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


def launch_dir() -> Path:
    """The directory the user launched from (Hydra may have changed the working directory)."""
    try:
        from hydra.utils import get_original_cwd

        return Path(get_original_cwd())
    except (ImportError, ValueError):
        return Path.cwd()
