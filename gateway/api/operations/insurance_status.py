"""``GET /fhir/MedicationRequest/{id}/$insurance-status``: what the national insurance platform
says of an uploaded prescription (7105 status, 7106 dispensing result), as a Parameters resource.

Whoever may read the MedicationRequest may ask (it is read with their rights); a prescription
never uploaded, a refusal or no answer from the platform is an OperationOutcome (YL-1307..1311).
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.errors import BadRequest
from gateway.events.insurance.status import insurance_status

MEDIA_TYPE = "application/fhir+json; charset=utf-8"


async def handle(request: Request) -> Response:
    rtype = request.path_params.get("type")
    rid = request.path_params.get("id")
    ctx = context(request, "operation", rtype)
    if rtype != "MedicationRequest" or not rid:
        reason = "only MedicationRequest/{id}/$insurance-status"
        raise BadRequest("YL-0404", name="$insurance-status", value=str(rtype), reason=reason)
    timeout = float(request.app.state.settings.delivery_timeout_seconds)
    answer = await in_thread(insurance_status, service(request), rid, ctx, timeout=timeout)
    return Response(orjson.dumps(answer), media_type=MEDIA_TYPE)
