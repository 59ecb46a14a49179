"""``$validate-code``, ``$lookup`` and ``$translate`` on the alliance's local terminology.

No terminology server is needed: code systems and value sets come from ``profiles/``,
concept maps from ``mappings/``. Parameters come from the query string or a Parameters body.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest, NotFound


async def _params(request: Request) -> dict[str, str]:
    values = dict(request.query_params)
    if request.method == "POST":
        raw = await request.body()
        if raw.strip():
            body = orjson.loads(raw)
            for p in body.get("parameter") or []:
                value = next((v for k, v in p.items() if k.startswith("value")), None)
                if value is None and isinstance(p.get("valueCoding"), dict):
                    value = p["valueCoding"].get("code")
                if isinstance(value, str):
                    values[p.get("name", "")] = value
    return values


def _need(values: dict[str, str], *names: str) -> str:
    for name in names:
        if values.get(name):
            return values[name]
    raise BadRequest("YL-0404", name=names[0], value="", reason="this parameter is required")


def _parameters(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"resourceType": "Parameters", "parameter": items})


async def validate_code(request: Request) -> Response:
    from gateway.validation.terminology import validate_code as check

    rtype = request.path_params.get("type")
    context(request, "operation", rtype)
    if rtype not in ("CodeSystem", "ValueSet"):
        raise NotFound("YL-0204", op="$validate-code")
    values = await _params(request)
    code = _need(values, "code")
    system = values.get("system") or (values.get("url") if rtype == "CodeSystem" else None) or ""
    valueset = values.get("url") if rtype == "ValueSet" else None
    result, display, message = check(system, code, valueset)
    items: list[dict[str, Any]] = [{"name": "result", "valueBoolean": bool(result)}]
    if display:
        items.append({"name": "display", "valueString": display})
    if message:
        items.append({"name": "message", "valueString": message})
    return fhir_response(request, _parameters(items))


async def lookup(request: Request) -> Response:
    from gateway.validation.terminology import lookup as find

    context(request, "operation", "CodeSystem")
    if request.path_params.get("type") != "CodeSystem":
        raise NotFound("YL-0204", op="$lookup")
    values = await _params(request)
    system, code = _need(values, "system"), _need(values, "code")
    found = find(system, code)
    if found is None:
        raise NotFound("YL-0201", type="CodeSystem", id=f"{system}|{code}")
    items: list[dict[str, Any]] = [{"name": "name", "valueString": found.get("name") or system}]
    if found.get("version"):
        items.append({"name": "version", "valueString": found["version"]})
    if found.get("display"):
        items.append({"name": "display", "valueString": found["display"]})
    if found.get("definition"):
        items.append({"name": "definition", "valueString": found["definition"]})
    for d in found.get("designation") or []:
        parts = [{"name": "value", "valueString": d.get("value", "")}]
        if d.get("language"):
            parts.insert(0, {"name": "language", "valueCode": d["language"]})
        items.append({"name": "designation", "part": parts})
    return fhir_response(request, _parameters(items))


async def translate(request: Request) -> Response:
    from gateway.validation.terminology import translate as run

    context(request, "operation", "ConceptMap")
    if request.path_params.get("type") != "ConceptMap":
        raise NotFound("YL-0204", op="$translate")
    values = await _params(request)
    url = _need(values, "url", "conceptMap")
    code = _need(values, "sourceCode", "code")
    system = _need(values, "system", "sourceSystem")
    matches = run(url, system, code)
    items: list[dict[str, Any]] = [{"name": "result", "valueBoolean": bool(matches)}]
    if not matches:
        items.append({"name": "message", "valueString": f"No translation of {system}|{code} in {url}"})
    for m in matches:
        coding = {
            k: v for k, v in (("system", m.get("system")), ("code", m.get("code")), ("display", m.get("display"))) if v
        }
        items.append(
            {
                "name": "match",
                "part": [
                    {"name": "relationship", "valueCode": m.get("relationship")},
                    {"name": "concept", "valueCoding": coding},
                ],
            }
        )
    return fhir_response(request, _parameters(items))
