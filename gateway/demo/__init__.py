"""The demo alliance (襄垣县) and synthetic prescriptions for benchmarks.

:func:`load_demo` writes the demo alliance as one transaction Bundle of ``PUT``\\ s with fixed ids
through :meth:`FhirService.process_bundle`, so the demo goes through the same validation
(strict: a demo resource that breaks a profile fails the load) and indexing as any client
write. Resources already stored with the same content are left out of the Bundle, so loading
again changes nothing: no new versions, no events.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.demo._alliance import demo_resources, medication_request
from gateway.demo._codes import resident_id
from gateway.demo._synthetic import synthetic_patient, synthetic_prescriptions
from gateway.store.base import StoredResource

__all__ = [
    "demo_bundle",
    "demo_resources",
    "load_demo",
    "medication_request",
    "resident_id",
    "synthetic_patient",
    "synthetic_prescriptions",
]


def demo_bundle(resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A transaction Bundle that PUTs each resource at its fixed id."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in (demo_resources() if resources is None else resources)
        ],
    }


def _unchanged(stored: StoredResource | None, resource: dict[str, Any]) -> bool:
    if stored is None or stored.deleted or stored.body is None:
        return False
    current = orjson.loads(stored.body)
    meta = dict(current.pop("meta", None) or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if meta:
        current["meta"] = meta
    return bool(current == resource)


def load_demo(database_url: str) -> int:
    """Load the demo alliance into ``database_url``; returns how many resources it holds."""
    from gateway.app import create_app
    from gateway.hooks import RequestContext
    from gateway.settings import Settings

    # the operator's own loader, run from the command line: no client, so no access policy
    app = create_app(Settings(database=database_url, validation_mode="strict", insecure_dev=True))
    service, store = app.state.service, app.state.store
    try:
        resources = demo_resources()
        wanted = [r for r in resources if not _unchanged(store.read(r["resourceType"], r["id"]), r)]
        if wanted:
            ctx = RequestContext(base_url="http://localhost/fhir", interaction="transaction")
            service.process_bundle(orjson.dumps(demo_bundle(wanted)), ctx)
        return len(resources)
    finally:
        store.dispose()
