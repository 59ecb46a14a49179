"""CDS Hooks (https://cds-hooks.hl7.org/2.0/): the central pre-review as an ``order-sign``
service, so a member's HIS asks before a prescription is signed.

``GET /cds-services`` is the discovery document; ``POST /cds-services/yaolian-prescription-review``
takes ``context.draftOrders`` (a Bundle of MedicationRequests) and the patient (prefetch or
``context.patientId``) and answers one card per finding: ``critical`` for a high finding (block),
``warning`` for a moderate one, each with ``overrideReasons``, and a ``systemActions`` entry
creating its DetectedIssue; the OperationOutcome rides in the response's ``extension``.
Authentication is the FHIR API's (bearer token); errors are OperationOutcomes like everywhere.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.alliance.review.central import CentralReview
from gateway.alliance.review.engine import detected_issues, outcome_issues
from gateway.api.context import context, in_thread
from gateway.errors import BadRequest, NotFound, operation_outcome

SERVICE_ID = "yaolian-prescription-review"
INDICATOR = {"high": "critical", "moderate": "warning", "low": "info"}
OVERRIDE_SYSTEM = "http://yaolian.org/fhir/CodeSystem/review-override-reason"


def _discovery() -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": "order-sign",
                "id": SERVICE_ID,
                "title": "County-wide prescription pre-review 县域处方前置审核",
                "description": "Reviews draft MedicationRequests against the county's rule set: formulary, days of "
                "supply, long-term limits, daily dose, duplicate therapy across the alliance, interactions, "
                "age and pregnancy cautions, extended prescriptions.",
                "prefetch": {"patient": "Patient/{{context.patientId}}"},
            }
        ]
    }


async def discovery(request: Request) -> Response:
    return JSONResponse(_discovery())


def _cards(central: CentralReview, body: dict[str, Any], ctx: Any, member: str | None) -> dict[str, Any]:
    hook_context = body.get("context")
    if body.get("hook") not in (None, "order-sign"):
        raise BadRequest("YL-1112", reason=f"hook {body.get('hook')!r} is not order-sign")
    if not isinstance(hook_context, dict) or not isinstance(hook_context.get("draftOrders"), dict):
        raise BadRequest("YL-1112", reason="context.draftOrders (a Bundle) is missing")
    bundle = dict(hook_context["draftOrders"])
    entries = list(bundle.get("entry") or ())
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    patient = (prefetch or {}).get("patient")
    if isinstance(patient, dict) and patient.get("resourceType") == "Patient":
        entries.append({"resource": patient})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    subjects, reviews = central.review_body(bundle, ctx, member)
    central.record(ctx, reviews)
    cards: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    issues = []
    for subject, found in zip(subjects, reviews, strict=True):
        issues += outcome_issues(found, subject.where)
        for finding, resource in zip(found.findings, detected_issues(found), strict=True):
            cards.append(
                {
                    "uuid": resource["id"],
                    "summary": f"[{finding.rule}] {finding.title_zh}"[:140],
                    "detail": f"{finding.en}\n\n{finding.zh}\n\n(rule set {found.rule_set} {found.version})",
                    "indicator": INDICATOR[finding.severity],
                    "source": {"label": "药联 central pre-review", "topic": {"code": finding.rule}},
                    "overrideReasons": [
                        {"system": OVERRIDE_SYSTEM, "code": "clinically-justified", "display": "临床需要，药师已确认"},
                        {"system": OVERRIDE_SYSTEM, "code": "patient-informed", "display": "已告知患者风险"},
                    ],
                    "selectionBehavior": "any",
                    "suggestions": [],
                    "extension": {"ruleSetVersion": found.version, "rule": finding.rule},
                }
            )
            actions.append({"type": "create", "description": finding.en, "resource": resource})
    return {"cards": cards, "systemActions": actions, "extension": {"outcome": operation_outcome(issues)}}


async def service(request: Request) -> Response:
    if request.path_params["service_id"] != SERVICE_ID:
        raise NotFound("YL-1115", service=request.path_params["service_id"][:64])
    ctx = context(request, "operation", "MedicationRequest")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest("YL-1112", reason=f"the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("YL-1112", reason="the body is not a JSON object")
    central: CentralReview = request.app.state.review
    member = request.query_params.get("member")
    return JSONResponse(await in_thread(_cards, central, body, ctx, member))


ROUTES = [
    Route("/cds-services", discovery, methods=["GET"]),
    Route("/cds-services/{service_id}", service, methods=["POST"]),
]
