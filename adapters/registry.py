"""Adapter discovery: built-ins plus entry points in the group ``yaolian.adapters``.

An entry point names either an adapter class/factory (called without arguments) or an
adapter instance. Two adapters under one name are refused with ``DuplicateAdapterError``: a
vendor package cannot silently replace a built-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from adapters.contract import Adapter
from adapters.errors import AdapterLookupError, DuplicateAdapterError

__all__ = ["ENTRY_POINT_GROUP", "AdapterRegistry", "default_registry", "get", "names"]

ENTRY_POINT_GROUP = "yaolian.adapters"

# name -> "module:attribute"; loaded lazily so importing the registry stays cheap.
BUILTINS: dict[str, str] = {
    "hl7v2": "adapters.hl7v2:HL7v2Adapter",
    "sqlview": "adapters.sqlview:SqlViewAdapter",
}


def _load_target(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def _instantiate(obj: Any) -> Adapter:
    adapter = obj() if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "to_fhir")) else obj
    if not isinstance(adapter, Adapter):
        raise TypeError(f"{obj!r} does not implement the Adapter protocol")
    return adapter


def _builtin_factory(spec: str) -> Callable[[], Adapter]:
    return lambda: _instantiate(_load_target(spec))


def _entry_point_factory(ep: EntryPoint) -> Callable[[], Adapter]:
    return lambda: _instantiate(ep.load())


class AdapterRegistry:
    """Name -> adapter factory; adapters are built on first ``get`` and then reused."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], Adapter]] = {}
        self._origins: dict[str, str] = {}
        self._instances: dict[str, Adapter] = {}

    def register(self, name: str, factory: Callable[[], Adapter] | Adapter, origin: str) -> None:
        if name in self._factories:
            raise DuplicateAdapterError(
                f"adapter name {name!r} is registered twice: by {self._origins[name]} and by "
                f"{origin}; rename one of them",
                message_zh=f"适配器名称 {name!r} 重复注册（{self._origins[name]} 与 {origin}）",
            )
        if isinstance(factory, Adapter):
            instance = factory
            self._factories[name] = lambda: instance
        else:
            self._factories[name] = lambda: _instantiate(factory)
        self._origins[name] = origin

    def register_entry_points(self, eps: Iterable[EntryPoint]) -> None:
        for ep in eps:
            self.register(ep.name, _entry_point_factory(ep), f"entry point {ep.value}")

    def get(self, name: str) -> Adapter:
        if name not in self._instances:
            try:
                factory = self._factories[name]
            except KeyError:
                raise AdapterLookupError(
                    f"no adapter named {name!r}; known: {', '.join(sorted(self._factories))}",
                    message_zh=f"未找到名为 {name!r} 的适配器",
                ) from None
            self._instances[name] = factory()
        return self._instances[name]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def origin(self, name: str) -> str:
        return self._origins[name]


def build_registry(eps: Iterable[EntryPoint] | None = None) -> AdapterRegistry:
    """Built-ins first, then entry points (an entry point repeating a built-in's name is refused,
    unless it points at the very same object, as it will once pyproject declares the built-ins)."""
    registry = AdapterRegistry()
    for name, spec in BUILTINS.items():
        registry.register(name, _builtin_factory(spec), f"built-in {spec}")
    if eps is None:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    for ep in eps:
        if BUILTINS.get(ep.name) == ep.value:
            continue
        registry.register(ep.name, _entry_point_factory(ep), f"entry point {ep.value}")
    return registry


_default: AdapterRegistry | None = None


def default_registry() -> AdapterRegistry:
    global _default
    if _default is None:
        _default = build_registry()
    return _default


def get(name: str) -> Adapter:
    """The adapter registered as ``name`` (built-in or entry point)."""
    return default_registry().get(name)


def names() -> list[str]:
    return default_registry().names()
