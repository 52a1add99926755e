"""User errors, one-line reasons, and signal handling shared by every stage.

A :class:`UserError` is anything the user can fix (a config key, a data file, a diverging loss). The
CLI prints its message on one line and exits 2; anything else is an internal error (exit 1).
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

EXIT_USER = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix; its message names the config key or file at fault."""


class DivergenceError(UserError):
    """Training produced a non-finite or exploding loss."""


_interrupts: list[str] = []


def on_interrupt(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - a handler
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


def _quiet_swallowed_interrupt(hook: Callable[[Any], Any]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that stays silent on the KeyboardInterrupt of a recorded signal.

    A signal that lands in a garbage-collector callback (jax registers one during TensorFlow's
    import) raises there, where Python cannot propagate it and prints "Exception ignored ...
    Traceback" instead. The signal is recorded and :func:`check_interrupt` acts on it, so that
    traceback is noise; anything else goes to the previous hook.
    """

    def unraisable(info: Any) -> None:  # sys.UnraisableHookArgs
        if _interrupts and isinstance(info.exc_value, KeyboardInterrupt):
            return
        hook(info)

    unraisable.spiketune = True  # type: ignore[attr-defined]  # marks our hook as installed
    return unraisable


def install_signal_handlers() -> None:
    """Treat SIGTERM like Ctrl-C, and record SIGINT too (unless someone else handles it)."""
    signal.signal(signal.SIGTERM, on_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_interrupt)
    if not getattr(sys.unraisablehook, "spiketune", False):
        sys.unraisablehook = _quiet_swallowed_interrupt(sys.unraisablehook)
