"""Schema helpers shared by every config dataclass (a leaf: no other framework module needed).

``bounded`` marks a numeric dataclass field with inclusive or exclusive bounds; the bounds live
in the field's metadata, and config validation reads them to name the first out-of-range key.
"""
from __future__ import annotations

from dataclasses import field
from typing import Any

from omegaconf import MISSING

__all__ = ["MISSING", "bounded", "command_line", "named_keys", "option", "override_key"]


def override_key(item: str) -> str:
    """The dotted key of a Hydra override (``+a.b=1``, ``~a.b``, ``a.b=1`` → ``a.b``)."""
    return item.split("=", 1)[0].lstrip("+~")


def command_line() -> list[str]:
    """The overrides the user gave this job (``key=value``), inside a Hydra job; else none."""
    try:
        from hydra.core.hydra_config import HydraConfig  # only inside a Hydra job

        return [str(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # outside Hydra (a Python caller): nothing was given on a command line
        return []


def named_keys() -> set[str]:
    """The keys this job's command line names (:func:`override_key` of each override)."""
    return {override_key(o) for o in command_line()}


def bounded(default: Any = MISSING, *, ge: Any = None, gt: Any = None, le: Any = None,
            lt: Any = None, factory: Any = None) -> Any:
    """A dataclass field with inclusive (ge/le) or exclusive (gt/lt) numeric bounds."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def option(registry: Any) -> Any:
    """Class decorator: register a config-group option's schema under its ``name`` default.

    One registration per option: the schema class carries its own name (the ``name`` field's
    default, which is also the option's file in conf/) and the code that builds or loads it, so
    adding an option is one class in one file (after nengo's ``Builder.register``).
    """
    def deco(cls: Any) -> Any:
        registry.register(cls.name)(cls)
        return cls

    return deco
