"""The one registry idiom used for loaders, converters, techniques and SDK platforms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from compressor.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries registered with a decorator; lookups list what is known.

    >>> loaders = Registry("model loader")
    >>> @loaders.register("onnx")
    ... def load_onnx(path): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, *names: str) -> Callable[[T], T]:
        """Register the decorated object under each of ``names``."""

        def decorate(entry: T) -> T:
            for name in names:
                if name in self._entries:
                    raise ValueError(f"{self.kind} {name!r} is registered twice")
                self._entries[name] = entry
            return entry

        return decorate

    def get(self, name: str) -> T:
        """Return the entry for ``name``; raise :class:`UnknownNameError` listing the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
