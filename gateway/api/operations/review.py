"""``POST /fhir/MedicationRequest/$review``: the central pre-review (前置审核) of a prescription.

At type level the body is a MedicationRequest, a Bundle with it and its Medication and Patient
(and, for pregnancy, an Observation or Condition), or a Parameters with it as ``resource``; at
instance level (``/fhir/MedicationRequest/{id}/$review``, empty body) the stored prescription
is reviewed. The answer is a Parameters: ``result`` (pass / warn / reject per prescription),
``ruleSetVersion``, one ``issue`` (DetectedIssue) per finding and the ``outcome``
(OperationOutcome). Each decision is recorded (``?record=false`` to only ask). ``?member=CODE``
names the prescribing member when nothing in the request does (POL-06, POL-20).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.alliance.review.central import CentralReview
from gateway.alliance.review.engine import detected_issues, outcome_issues
from gateway.api.context import context, in_thread, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest, operation_outcome


def _unwrap(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("resourceType") != "Parameters":
        return data
    for p in data.get("parameter") or ():
        if p.get("name") == "resource" and isinstance(p.get("resource"), dict):
            return dict(p["resource"])
    raise BadRequest("YL-1110", found="Parameters without a resource")


async def handle(request: Request) -> Response:
    ctx = context(request, "operation", "MedicationRequest")
    raw = await request.body()
    rid = request.path_params.get("id")
    if raw.strip():
        body = _unwrap(parse_resource(raw, request_format(request)).data)
    elif rid:  # instance level: the stored prescription, read as the caller may read it
        stored = await in_thread(service(request).read, "MedicationRequest", rid, ctx)
        body = orjson.loads(stored.body or b"{}")
    else:
        raise BadRequest("YL-1110", found="an empty body")
    central: CentralReview = request.app.state.review
    member = request.query_params.get("member")
    record = request.query_params.get("record", "true").lower() != "false"

    def run() -> bytes:
        subjects, reviews = central.review_body(body, ctx, member)
        if record:
            central.record(ctx, reviews)
        parameters: list[dict[str, Any]] = []
        issues = []
        for subject, found in zip(subjects, reviews, strict=True):
            parameters.append({"name": "result", "valueCode": found.result})
            issues += outcome_issues(found, subject.where)
            parameters += [{"name": "issue", "resource": r} for r in detected_issues(found)]
        version = central.rule_set.version
        parameters.insert(0, {"name": "ruleSetVersion", "valueString": f"{central.rule_set.id}|{version}"})
        parameters.append({"name": "outcome", "resource": operation_outcome(issues)})
        return orjson.dumps({"resourceType": "Parameters", "parameter": parameters})

    return fhir_response(request, await in_thread(run))
