"""The supply rules' own principal: alert evaluation and the alert lines (configuration, not a
member's data) are read and written as the gateway itself, whoever's request triggered them."""

from __future__ import annotations

from gateway.hooks import RequestContext
from gateway.principal import Principal, Role, parse_scopes

SUPPLY_MONITOR = Principal(
    "supply-monitor", "stock alert evaluation (gateway)", Role.ADMIN, None, parse_scopes("system/*.cruds")
)


def system_context(ctx: RequestContext) -> RequestContext:
    """A context acting as :data:`SUPPLY_MONITOR` (audited as such) on the same base URL."""
    return RequestContext(base_url=ctx.base_url, interaction="operation", principal=SUPPLY_MONITOR)
