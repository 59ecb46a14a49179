"""Finding an extension by its URL and an identifier by its system: the two lookups every
reader of profiled resources needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def extension(element: Mapping[str, Any], url: str) -> dict[str, Any] | None:
    """The first extension of ``element`` (a resource, or an extension with sub-extensions)
    whose url is ``url``; None when there is none or the JSON is not of the expected shape."""
    for ext in element.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext
    return None


def identifier_value(resource: Mapping[str, Any], system: str) -> str | None:
    """The value of the resource's first identifier in ``system`` that has one."""
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") == system:
            value = identifier.get("value")
            if isinstance(value, str) and value:
                return value
    return None
