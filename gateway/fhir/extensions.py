"""Finding an extension by its URL, the one lookup every reader of profiled resources needs."""

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
