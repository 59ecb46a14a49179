"""``GET /fhir/MedicationRequest/{id}/$hl7v2[?scope=order|prescription]``: write-back of an
approved or extended prescription as HL7 v2.5 RDE^O11 for the member HIS that must dispense it.

``scope=order`` (the default) writes this one MedicationRequest; ``scope=prescription`` writes
every MedicationRequest of its 处方 (same ``groupIdentifier`` and patient), one ORC group each,
ordered by placer number. Their Patient, Medications, Practitioners and Encounter are read
through the service (the same read hook points as every read: what a hook hides is left out as
a missing resource is) and handed to the HL7 v2 adapter's ``from_fhir`` in one collection
Bundle; the adapter places them at the positions its own mapping reads, so the message converts
back to the same prescription. MSH-6 (receiving facility) is the dispensing member of a 延伸处方,
else the prescribing member.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from adapters.contract import Adapter
from gateway.api.context import context, in_thread, service
from gateway.errors import BadRequest, Issue, Unprocessable
from gateway.hooks import RequestContext
from gateway.ingest.pipeline import get_adapter
from gateway.service.fhir_service import FhirService

MEDIA_TYPE = "x-application/hl7-v2+er7; charset=utf-8"
_REFERENCES = (("subject",), ("medication", "reference"), ("requester",), ("encounter",))


def _reference(resource: dict[str, Any], path: tuple[str, ...]) -> str | None:
    node: Any = resource
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    target = node.get("reference") if isinstance(node, dict) else None
    return target if isinstance(target, str) and target.count("/") == 1 else None


def prescription_bundle(
    svc: FhirService, resource_id: str, ctx: RequestContext, scope: str = "order"
) -> dict[str, Any]:
    """The MedicationRequest (with ``scope=prescription``, every one of its 处方) and the
    resources they reference, as a collection Bundle."""
    from adapters.hl7v2.writer import placer_order

    stored = svc.read("MedicationRequest", resource_id, ctx)
    request = orjson.loads(stored.body or b"{}")
    requests = {resource_id: request}
    group = request.get("groupIdentifier") or {}
    subject = (request.get("subject") or {}).get("reference")
    if scope == "prescription" and group.get("value"):
        token = f"{group.get('system', '')}|{group['value']}"
        params = [("group-identifier", token), ("_count", "100"), ("_total", "none")]
        for found in svc.find("MedicationRequest", params, ctx):
            other = orjson.loads(found.body or b"{}")
            if (other.get("subject") or {}).get("reference") == subject:
                requests[found.res_id] = other
    entries = [
        {"fullUrl": f"MedicationRequest/{rid}", "resource": resource}
        for rid, resource in sorted(requests.items(), key=lambda item: (placer_order(item[1])[1], item[0]))
    ]
    seen: set[str] = set()
    for resource in requests.values():
        for path in _REFERENCES:
            target = _reference(resource, path)
            if target is None or target in seen:
                continue
            seen.add(target)
            referenced = svc.read_reference(target, ctx)
            if referenced is not None and referenced.body:
                entries.append({"fullUrl": target, "resource": orjson.loads(referenced.body)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def render(svc: FhirService, resource_id: str, ctx: RequestContext, scope: str = "order") -> bytes:
    from adapters.errors import WriteBackError

    bundle = prescription_bundle(svc, resource_id, ctx, scope)
    try:
        adapter: Adapter = get_adapter("hl7v2")
        return adapter.from_fhir(bundle)
    except WriteBackError as exc:
        raise Unprocessable(
            [Issue(severity="error", code="processing", en=exc.message, zh=exc.message_zh, error_code=exc.code)]
        ) from None


async def hl7v2(request: Request) -> Response:
    rtype = request.path_params.get("type")
    rid = request.path_params.get("id")
    ctx = context(request, "operation", rtype)
    if rtype != "MedicationRequest" or not rid:
        raise BadRequest("YL-0404", name="$hl7v2", value=str(rtype), reason="only MedicationRequest/{id}/$hl7v2")
    scope = request.query_params.get("scope", "order")
    if scope not in ("order", "prescription"):
        raise BadRequest("YL-0404", name="scope", value=scope, reason="scope is order (default) or prescription")
    message = await in_thread(render, service(request), rid, ctx, scope)
    return Response(message, media_type=MEDIA_TYPE)
