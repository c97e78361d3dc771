"""A registry of pluggable implementations by name (providers, sandbox backends, routers, judges)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from orchestrator.errors import UserInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory. A new implementation is one module plus one ``register`` call."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T]) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            raise UserInputError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        return factory(*args, **kwargs)
