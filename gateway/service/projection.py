"""``_summary`` and ``_elements``: cut a stored resource down without re-encoding what stays."""

from __future__ import annotations

import orjson

from gateway.fhir import definitions
from gateway.fhir.json_text import object_members

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


def _with_subsetted_meta(text: str, meta_span: tuple[int, int] | None) -> str:
    meta = orjson.loads(text[meta_span[0] : meta_span[1]]) if meta_span else {}
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    return orjson.dumps(meta).decode()


def _is_choice_of(resource_type: str, key: str, names: set[str]) -> bool:
    """``deceasedBoolean`` (or ``_deceasedBoolean``) is kept when ``deceased`` is asked for;
    ``statusReason`` is not kept for ``status`` (a different element, not a choice of it)."""
    info = definitions.element(resource_type, key.lstrip("_"))
    return info is not None and info.is_choice and info.path.rsplit(".", 1)[-1].removesuffix("[x]") in names


def project(body: bytes, resource_type: str, summary: str | None, elements: list[str] | None) -> bytes:
    if summary is None and not elements:
        return body
    text = body.decode()
    members, _ = object_members(text, 0)
    if summary == "true":
        keep = set(definitions.summary_elements(resource_type)) | _ALWAYS
    elif summary == "text":
        keep = {"text", *definitions.mandatory_elements(resource_type)} | _ALWAYS
    elif summary == "data":
        keep = {k for k, _ in members} - {"text"}
    else:
        keep = set(elements or ()) | {"resourceType", "id", "meta"} | set(definitions.mandatory_elements(resource_type))
        keep |= {"_" + k for k in list(keep)}
    if summary == "true":
        keep |= {"_" + k for k in list(keep)}
    parts = []
    meta_span = None
    for key, span in members:
        if key == "meta":
            meta_span = (span.start, span.end)
    for key, span in members:
        if key not in keep and not _is_choice_of(resource_type, key, keep):
            continue
        value = text[span.start : span.end]
        if key == "meta":
            value = _with_subsetted_meta(text, meta_span)
        parts.append(f"{orjson.dumps(key).decode()}:{value}")
    if meta_span is None:
        parts.insert(2 if len(parts) >= 2 else len(parts), f'"meta":{_with_subsetted_meta(text, None)}')
    return ("{" + ",".join(parts) + "}").encode()
