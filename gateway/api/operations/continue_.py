"""``MedicationRequest/$continue`` (type level, POST Parameters): continue another member's
prescription here as a new MedicationRequest whose ``priorPrescription`` points at it
(:mod:`gateway.federation.recognition`; POL-08 互认, POL-09 延伸处方).

Parameters: ``prescription`` (valueIdentifier: the prescription number to continue, stored
here or held by a live member), ``patient`` (valueReference: the patient here; defaults to the
prior prescription's when that one is stored here), and optionally ``identifier``
(valueIdentifier: the new prescription's number), ``authoredOn`` (valueDateTime),
``requester`` (valueReference), ``dispensingMember`` (valueString: a member code — an extended
prescription dispensed there), ``member`` (valueString: the continuing member, for callers
that are not a member's client).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.operations.prescriptions import federation
from gateway.api.responses import written_response
from gateway.federation.recognition import continuation, refuse
from gateway.fhir.json_text import ResourceText, dumps_keeping_numbers

PRESCRIPTION_NUMBER = "urn:oid:2.16.156.10011.1.20"


def _parameters(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("resourceType") != "Parameters":
        raise refuse("the body must be a Parameters resource")
    found: dict[str, Any] = {}
    for p in data.get("parameter") or ():
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            value = next((v for k, v in p.items() if k.startswith("value")), None)
            found[p["name"]] = value
    return found


async def handle(request: Request) -> Response:
    ctx = context(request, "operation", "MedicationRequest")
    params = _parameters(parse_resource(await request.body(), request_format(request)).data)
    number = params.get("prescription")
    if not (isinstance(number, dict) and number.get("system") and number.get("value")):
        raise refuse("parameter prescription (valueIdentifier with system and value) is required")
    patient_ref = (params.get("patient") or {}).get("reference") if isinstance(params.get("patient"), dict) else None
    fed = federation(request)
    origin = await fed.find_prescription(ctx, f"{number['system']}|{number['value']}", patient_ref)
    if origin is None:
        raise refuse(f"no prescription {number['value']} was found here or at a live member")
    if patient_ref is None:
        subject = (origin.resource.get("subject") or {}).get("reference")
        if not origin.local or not isinstance(subject, str):
            raise refuse("parameter patient is required when the prescription is another member's")
        patient_ref = subject
    registry = await in_thread(fed.registry)
    dispenser = None
    if isinstance(params.get("dispensingMember"), str):
        member = registry.get(params["dispensingMember"])
        if member is None:
            raise refuse(f"no member with code {params['dispensingMember']}")
        dispenser = (member.code, member.reference)
    principal = ctx.principal
    owner = principal.member if principal is not None and principal.member else params.get("member")
    resource = continuation(
        origin,
        patient=patient_ref,
        number_system=PRESCRIPTION_NUMBER,
        identifier=params.get("identifier") if isinstance(params.get("identifier"), dict) else None,
        authored=params.get("authoredOn") if isinstance(params.get("authoredOn"), str) else None,
        requester=params.get("requester") if isinstance(params.get("requester"), dict) else None,
        dispenser=dispenser,
        owner=owner if isinstance(owner, str) else None,
    )
    svc = service(request)
    body = ResourceText.parse(dumps_keeping_numbers(resource))
    result = await in_thread(svc.write, ctx, lambda tx: svc.writer.create(tx, ctx, "MedicationRequest", body))
    return written_response(request, result)
