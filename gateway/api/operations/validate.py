"""``$validate`` (type and instance level, optional ``?profile=``): never stores anything."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest, Issue, operation_outcome
from gateway.fhir.json_text import ResourceText
from gateway.service.ports import Validator
from gateway.validation import structure_issues


def _unwrap_parameters(body: ResourceText) -> tuple[ResourceText, list[str]]:
    """Accept a Parameters body (``resource`` + ``profile``) as the spec defines."""
    if body.resource_type != "Parameters":
        return body, []
    resource = None
    profiles: list[str] = []
    for p in body.data.get("parameter") or []:
        if p.get("name") == "resource" and isinstance(p.get("resource"), dict):
            resource = p["resource"]
        elif p.get("name") == "profile" and isinstance(url := p.get("valueCanonical") or p.get("valueUri"), str):
            profiles.append(url)
    if resource is None:
        raise BadRequest("YL-0102")
    return ResourceText.parse(orjson.dumps(resource)), profiles


async def handle(request: Request) -> Response:
    rtype = request.path_params["type"]
    ctx = context(request, "operation", rtype)
    svc = service(request)
    rid = request.path_params.get("id")
    raw = await request.body()
    if raw.strip():
        body, profiles = _unwrap_parameters(parse_resource(raw, request_format(request)))
    elif rid:
        stored = await in_thread(svc.read, rtype, rid, ctx)
        assert stored.body is not None, "read() answers a deleted resource with 410 Gone"
        body, profiles = ResourceText.parse(stored.body), []
    else:
        raise BadRequest("YL-0102")
    profiles += request.query_params.getlist("profile")
    if body.resource_type != rtype:
        raise BadRequest("YL-0103", found=body.resource_type, expected=rtype)

    def run() -> list[Issue]:
        validator: Validator | None = request.app.state.profile_validator
        if validator is None:
            return structure_issues(body.data)
        issues = validator(body.data, profiles or None)
        for found in issues:  # a profile the caller asked for by name must exist
            if profiles and found.error_code == "YL-3002":
                found.severity = "error"
        return issues

    issues = await in_thread(run)
    return fhir_response(request, orjson.dumps(operation_outcome(issues)))
