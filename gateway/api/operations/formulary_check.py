"""``GET /fhir/$formulary-check``: the formulary linkage checks (docs/formulary.md) as a
Parameters with one ``finding`` part per finding (rule, severity, member, drug, text), or as
the HTML report with ``?format=html`` (POL-02..05, POL-10, POL-13, POL-21)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.alliance import linkage
from gateway.alliance.formulary_check import run_check
from gateway.alliance.review.central import CentralReview
from gateway.api.context import context, in_thread, service
from gateway.api.responses import fhir_response


async def handle(request: Request) -> Response:
    ctx = context(request, "operation")
    svc = service(request)
    central: CentralReview = request.app.state.review
    day = request.query_params.get("date")
    today = dt.date.fromisoformat(day) if day else None
    findings = await in_thread(run_check, svc, central.reviewer_context(ctx), request.app.state.settings, today)
    if request.query_params.get("format") == "html":
        return HTMLResponse(linkage.as_html(findings))
    parts: list[dict[str, Any]] = [
        {
            "name": "finding",
            "part": [
                {"name": "rule", "valueCode": f.rule},
                {"name": "severity", "valueCode": f.severity},
                {"name": "member", "valueString": f.member},
                {"name": "drug", "valueString": f.drug},
                {"name": "text", "valueString": f.en},
                {"name": "textZh", "valueString": f.zh},
            ],
        }
        for f in findings
    ]
    return fhir_response(request, orjson.dumps({"resourceType": "Parameters", "parameter": parts}))
