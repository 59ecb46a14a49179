"""When stock alerts are evaluated: after every committed InventoryReport write (an
``AFTER_WRITE_IN_TX`` hook notes the members whose stock changed, the ``AFTER_COMMIT`` hook
evaluates them), and on demand (``yaolian stock alerts``, ``$stock-alerts``).

The evaluation acts as :data:`gateway.alliance.supply.system.SUPPLY_MONITOR`, a system
principal: the member whose report triggered it may not see the county's stock, but the alert
rules must.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date

from gateway.alliance.supply.alert_lines import current_lines
from gateway.alliance.supply.alerts import Finding, Reconciled, evaluate, reconcile
from gateway.alliance.supply.reading import SupplyWorld
from gateway.alliance.supply.stock import load_ledger
from gateway.alliance.supply.system import system_context
from gateway.hooks import Pointcut, RequestContext
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoredResource, StoreTransaction

log = logging.getLogger("yaolian.supply")

_PENDING = "supply.stock-changed"


def run_alerts(
    service: FhirService,
    ctx: RequestContext,
    *,
    members: Iterable[str] | None = None,
    today: date | None = None,
    window_days: int | None = None,
) -> tuple[list[Finding], Reconciled]:
    """Evaluate stock against the lines and bring the stored alerts in line with it."""
    world = SupplyWorld.load(service, ctx)
    ledger = load_ledger(service, ctx, world)
    wanted = list(members) if members is not None else None
    # alerts are dated the day the stock is as of: the day asked for, else the latest count
    today = today or ledger.as_of()
    when = today.isoformat()
    window = service.settings.supply_expiry_window_days if window_days is None else window_days
    findings = evaluate(ledger, current_lines(service, ctx), world.registry, today, window, wanted)
    return findings, reconcile(service, ctx, world, findings, when, wanted)


def install(service: FhirService) -> None:
    """The supply rules on the service's hook points: deliveries checked and turned into stock
    movements; stock alerts evaluated after InventoryReport writes (``supply_alerts_on_write``)."""
    from gateway.alliance.supply.deliveries import DeliveryRules

    DeliveryRules(service).install()
    if not service.settings.supply_alerts_on_write:
        return

    def noted(ctx: RequestContext, tx: StoreTransaction, stored: StoredResource) -> None:
        if stored.res_type == "InventoryReport":
            ctx.extra[_PENDING] = True

    def after_commit(ctx: RequestContext, _stored: StoredResource | None) -> None:
        if not ctx.extra.pop(_PENDING, False):
            return
        monitor = system_context(ctx)
        try:
            run_alerts(service, monitor)
        except Exception:  # an alert run must never fail the write that triggered it
            log.exception("stock alert evaluation failed")

    service.hooks.register(Pointcut.AFTER_WRITE_IN_TX, noted)
    service.hooks.register(Pointcut.AFTER_COMMIT, after_commit)
