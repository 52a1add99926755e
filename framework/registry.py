"""Small name → component registries, after Nengo's Builder and nengo-dl's TF_NEURON_IMPL.

Configs choose components by these names only; nothing is ever instantiated from a dotted path in
YAML, so a config cannot reach arbitrary Python objects.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from framework.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one kind, looked up by name.

    Parameters
    ----------
    kind : str
        What the components are ("dataset", "analysis"), used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second, different ``obj`` is an error."""

        def deco(obj: T) -> T:
            old = self._items.get(name)
            if old is not None and old is not obj and getattr(old, "__qualname__", None) != getattr(
                    obj, "__qualname__", object()):
                raise ValueError(f"{self.kind} '{name}' is registered twice ({old} and {obj})")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str, key: str) -> T:
        """The component called ``name``; a UserError naming config ``key`` if there is none."""
        try:
            return self._items[name]
        except KeyError:
            raise UserError(f"{key}: unknown {self.kind} '{name}'; choose from "
                            f"{', '.join(sorted(self._items))}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
