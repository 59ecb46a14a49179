"""What the service layer is handed rather than imports, as typed seams.

The profile validator lives in :mod:`gateway.validation` (a package the service does not import, so
a deployment can run without it); the application builds one and hands it in. Format adapters are
typed by the adapter SDK's own protocol, :class:`adapters.contract.Adapter`.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.errors import Issue
from gateway.hooks import RequestContext


class Validator(Protocol):
    """Structure and profile validation of one resource: the issues found (empty: valid).

    ``profiles`` names the profiles to check against; ``None`` means the resource's own
    ``meta.profile`` plus the alliance default for its type.
    """

    def __call__(self, data: dict[str, Any], profiles: list[str] | None = None, /) -> list[Issue]: ...


class OwnerTag(Protocol):
    """The ``meta.tag`` coding (``{"system", "code"}``) that marks who owns a record being
    written, or None; the write path stamps it, replacing a tag of the same system. The access
    policy (:func:`gateway.security.policy.owner_of`) is one."""

    def __call__(self, ctx: RequestContext, resource_type: str, data: dict[str, Any], /) -> dict[str, str] | None: ...


__all__ = ["OwnerTag", "Validator"]
