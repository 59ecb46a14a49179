"""``GET /fhir/MedicationRequest/{id}/$hl7v2``: write-back of an approved or extended
prescription as HL7 v2.5 RDE^O11 for the member HIS that must dispense it.

The prescription's Patient, Medication, Practitioner and Encounter are read from the store and
handed to the HL7 v2 adapter's ``from_fhir`` in one collection Bundle; the adapter places them
at the positions its own mapping reads, so the message converts back to the same prescription.
MSH-6 (receiving facility) is the dispensing member of a 延伸处方, else the prescribing member.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

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


def prescription_bundle(svc: FhirService, resource_id: str, ctx: RequestContext) -> dict[str, Any]:
    """The MedicationRequest and the resources it references, as a collection Bundle."""
    stored = svc.read("MedicationRequest", resource_id, ctx)
    request = orjson.loads(stored.body or b"{}")
    entries = [{"fullUrl": f"MedicationRequest/{resource_id}", "resource": request}]
    for path in _REFERENCES:
        target = _reference(request, path)
        if target is None:
            continue
        rtype, rid = target.split("/")
        found = svc.store.read(rtype, rid)
        if found is not None and not found.deleted and found.body:
            entries.append({"fullUrl": target, "resource": orjson.loads(found.body)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def render(svc: FhirService, resource_id: str, ctx: RequestContext) -> bytes:
    from adapters.errors import WriteBackError

    bundle = prescription_bundle(svc, resource_id, ctx)
    try:
        return bytes(get_adapter("hl7v2").from_fhir(bundle))
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
    message = await in_thread(render, service(request), rid, ctx)
    return Response(message, media_type=MEDIA_TYPE)
