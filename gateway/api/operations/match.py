"""``Patient/$match`` (type level, POST a Parameters with ``resource`` [+ ``count``,
``onlyCertainMatches``] or a bare Patient): candidates with ``search.score`` and the
``match-grade`` extension; never merges (:mod:`gateway.federation.match`)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest
from gateway.federation.match import match

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def _arguments(data: dict[str, Any]) -> tuple[dict[str, Any], int, bool]:
    if data.get("resourceType") == "Patient":
        return data, 10, False
    patient, count, only_certain = None, 10, False
    if data.get("resourceType") == "Parameters":
        for p in data.get("parameter") or ():
            if p.get("name") == "resource" and isinstance(p.get("resource"), dict):
                patient = p["resource"]
            elif p.get("name") == "count" and isinstance(p.get("valueInteger"), int):
                count = max(1, min(100, p["valueInteger"]))
            elif p.get("name") == "onlyCertainMatches":
                only_certain = p.get("valueBoolean") is True
    if not patient or patient.get("resourceType") != "Patient":
        raise BadRequest("YL-1020", expression=["Parameters.parameter.where(name='resource')"])
    return patient, count, only_certain


async def handle(request: Request) -> Response:
    ctx = context(request, "operation", "Patient")
    body = parse_resource(await request.body(), request_format(request))
    wanted, count, only_certain = _arguments(body.data)
    threshold = request.app.state.settings.match_threshold
    candidates = await in_thread(match, service(request), ctx, wanted, threshold, count)
    if only_certain:
        candidates = [c for c in candidates if c.grade == "certain"]
    entries = [
        {
            "fullUrl": f"{ctx.base_url}/Patient/{c.patient.get('id')}",
            "resource": c.patient,
            "search": {
                "mode": "match",
                "score": c.score,
                "extension": [{"url": MATCH_GRADE, "valueCode": c.grade}],
            },
        }
        for c in candidates
    ]
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    return fhir_response(request, orjson.dumps(bundle))
