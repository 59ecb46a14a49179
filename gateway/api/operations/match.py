"""``Patient/$match`` (type level, POST a Parameters with ``resource`` [+ ``count``,
``onlyCertainMatches``] or a bare Patient): candidates from the gateway's patient index and
every live member with ``search.score`` and the ``match-grade`` extension; never merges
(:mod:`gateway.federation.match`, :meth:`gateway.federation.fanout.Federation.match_patients`;
POL-09: a prescription is recognised only once its patient is found)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context
from gateway.api.formats import parse_resource, request_format
from gateway.api.operations.prescriptions import federation, no_cache
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest


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
    bundle = await federation(request).match_patients(
        ctx, wanted, count=count, certain_only=only_certain, no_cache=no_cache(request)
    )
    return fhir_response(request, bundle)
