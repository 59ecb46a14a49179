"""Content negotiation: JSON and XML in, JSON and XML out (``_format``, Accept, Content-Type).

Internally everything is the client's JSON text; XML is converted at this boundary only.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import BadRequest, NotAcceptable, UnsupportedMedia
from gateway.fhir.json_text import ResourceText

JSON = "application/fhir+json"
XML = "application/fhir+xml"
_FORMAT_ALIASES = {
    "json": JSON,
    "application/json": JSON,
    "application/fhir+json": JSON,
    "text/json": JSON,
    "xml": XML,
    "text/xml": XML,
    "application/xml": XML,
    "application/fhir+xml": XML,
}


def response_format(request: Request) -> str:
    explicit = request.query_params.get("_format")
    if explicit:
        fmt = _FORMAT_ALIASES.get(explicit.split(";")[0].strip())
        if fmt is None:
            raise NotAcceptable("YL-0111", accept=explicit)
        return fmt
    accept = request.headers.get("accept", "")
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[media]
        if media in ("*/*", "application/*", "text/html", ""):
            return JSON
    raise NotAcceptable("YL-0111", accept=accept)


def request_format(request: Request) -> str:
    content_type = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    fmt = _FORMAT_ALIASES.get(content_type)
    if fmt is None:
        raise UnsupportedMedia("YL-0110", media=content_type)
    return fmt


def body_json(raw: bytes, fmt: str) -> bytes:
    """The body as FHIR JSON text, converting XML at the boundary."""
    if fmt == XML:
        from gateway.fhir.xml_format import FhirFormatError, xml_to_json

        try:
            return xml_to_json(raw)
        except FhirFormatError as exc:
            raise BadRequest(
                "YL-0101",
                reason=str(exc),
                expression=[exc.location] if getattr(exc, "location", None) else [],
            ) from None
    return raw


def parse_resource(raw: bytes, fmt: str) -> ResourceText:
    if not raw.strip():
        raise BadRequest("YL-0102")
    return ResourceText.parse(body_json(raw, fmt))


def render(body: bytes, fmt: str) -> bytes:
    if fmt == XML:
        from gateway.fhir.xml_format import json_to_xml

        return json_to_xml(body)
    return body
