"""A registry of pluggable implementations by name: providers (providers.base) and sandbox backends (sandbox.base)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from orchestrator.errors import UserInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory. A new implementation is one module plus one entry (``register`` or ``add_lazy``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._modules: dict[str, str] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T]) -> None:
        self._factories[name] = factory

    def add_lazy(self, name: str, module: str) -> None:
        """Register ``name`` as provided by ``module``, imported (and so registered) on first use.

        Keeps start-up fast: an SDK is imported only by the user who asks for its provider.
        """
        self._modules[name] = module

    def names(self) -> list[str]:
        return sorted({*self._factories, *self._modules})

    def module_of(self, name: str) -> str:
        """The module that implements ``name`` (a lazy entry's, else its factory's), for its declarations."""
        if name in self._modules:
            return self._modules[name]
        if name in self._factories:
            return self._factories[name].__module__
        raise UserInputError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")

    def __contains__(self, name: object) -> bool:
        return name in self._factories or name in self._modules

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        if name not in self._factories and name in self._modules:
            importlib.import_module(self._modules[name])
        try:
            factory = self._factories[name]
        except KeyError:
            raise UserInputError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        return factory(*args, **kwargs)
