"""Well-formedness of transaction and batch Bundles, and sanity of conditional headers.

Shared by the adapter group (an adapter's output must be a transaction Bundle a server can
process) and the recording server (what a client or adapter sends). Rules of FHIR R5 http.html
§3.2.0.13 (batch/transaction) and bundle.html:

- `type` is `transaction` or `batch`; every entry has `request.method` and `request.url`;
- `request.url` is relative to the base: `Type` for POST, `Type/id` for PUT/DELETE/PATCH (or a
  conditional `Type?query`), and the resource's type (and id for PUT) agree with it;
- `fullUrl` is unique; a `urn:uuid:` fullUrl carries a well-formed UUID; a PUT entry's fullUrl,
  when absolute, ends with its url;
- every `urn:uuid:` reference inside the Bundle resolves to the fullUrl of one of its entries;
- `ifNoneExist` is a search query (`name=value[&…]`) and only on POST; `ifMatch` is an ETag
  (`W/"v"`), `ifNoneMatch` is `*` or an ETag; `ifModifiedSince` is an instant.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

Json = dict[str, Any]

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
TYPE_RE = re.compile(r"^[A-Z][A-Za-z]+$")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
ETAG_RE = re.compile(r'^(W/)?"[^"]*"$')
QUERY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.:]*(=[^&]*)(&[A-Za-z_][A-Za-z0-9_\-.:]*=[^&]*)*$")


def references(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, reference) of every `reference` string in a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key == "reference" and isinstance(value, str):
                yield here, value
            else:
                yield from references(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from references(item, f"{path}[{i}]")


def etag_problem(name: str, value: str) -> str | None:
    if not ETAG_RE.match(value.strip()):
        return f'{name} {value!r} is not an ETag (expected W/"<versionId>")'
    return None


def query_problem(name: str, value: str) -> str | None:
    if not QUERY_RE.match(value):
        return f"{name} {value!r} is not a search query (expected name=value[&name=value])"
    return None


def instant_problem(name: str, value: str) -> str | None:
    try:
        parsedate_to_datetime(value)
        return None
    except (TypeError, ValueError):
        pass
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return None
    except ValueError:
        return f"{name} {value!r} is neither an HTTP date nor an instant"


def conditional_header_problems(method: str, headers: dict[str, str]) -> list[str]:
    """Problems with If-Match / If-None-Match / If-None-Exist / If-Modified-Since request headers."""
    out: list[str] = []
    lower = {k.lower(): v for k, v in headers.items()}
    if "if-match" in lower:
        if method not in ("PUT", "PATCH", "DELETE"):
            out.append(f"If-Match on {method}: only meaningful on PUT, PATCH or DELETE")
        out.extend(p for p in [etag_problem("If-Match", lower["if-match"])] if p)
    if "if-none-match" in lower:
        value = lower["if-none-match"].strip()
        if value != "*":
            out.extend(p for p in [etag_problem("If-None-Match", value)] if p)
    if "if-none-exist" in lower:
        if method != "POST":
            out.append(f"If-None-Exist on {method}: conditional create is a POST")
        out.extend(p for p in [query_problem("If-None-Exist", lower["if-none-exist"])] if p)
    if "if-modified-since" in lower:
        out.extend(p for p in [instant_problem("If-Modified-Since", lower["if-modified-since"])] if p)
    return out


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """`Type/id?query` -> (Type, id, query)."""
    path, _, query = url.partition("?")
    parts = [p for p in path.split("/") if p]
    type_ = parts[0] if parts else ""
    rid = parts[1] if len(parts) > 1 else None
    return type_, rid, (query or None)


def bundle_problems(bundle: Any, *, allowed_types: tuple[str, ...] = ("transaction", "batch")) -> list[str]:
    """All problems that make `bundle` unfit to be POSTed to a FHIR base as a transaction/batch."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return ["not a Bundle"]
    out: list[str] = []
    kind = bundle.get("type")
    if kind not in allowed_types:
        out.append(f"Bundle.type is {kind!r}, expected {' or '.join(allowed_types)}")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        return [*out, "Bundle.entry is not a list"]
    full_urls: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            out.append(f"{where}: not an object")
            continue
        full_url = entry.get("fullUrl")
        resource = entry.get("resource")
        request = entry.get("request")
        if isinstance(full_url, str):
            if full_url in full_urls:
                out.append(f"{where}.fullUrl {full_url!r} repeats entry[{full_urls[full_url]}]")
            full_urls[full_url] = i
            if full_url.startswith("urn:uuid:"):
                try:
                    uuid.UUID(full_url[len("urn:uuid:") :])
                except ValueError:
                    out.append(f"{where}.fullUrl {full_url!r} is not a valid urn:uuid")
            elif full_url.startswith("urn:oid:"):
                pass
            elif not full_url.startswith(("http://", "https://")):
                out.append(f"{where}.fullUrl {full_url!r} is neither absolute nor a urn:uuid")
        elif resource is not None and kind == "transaction":
            out.append(f"{where}: a resource without fullUrl cannot be referenced (use urn:uuid:)")
        if not isinstance(request, dict):
            out.append(f"{where}.request is missing (every {kind} entry needs method and url)")
            continue
        method, url = request.get("method"), request.get("url")
        if method not in METHODS:
            out.append(f"{where}.request.method {method!r} is not one of {', '.join(METHODS)}")
        if not isinstance(url, str) or not url:
            out.append(f"{where}.request.url is missing")
            continue
        if url.startswith(("http://", "https://", "/")):
            out.append(f"{where}.request.url {url!r} must be relative to the base (e.g. Patient/123)")
            continue
        type_, rid, query = _split_url(url)
        if not TYPE_RE.match(type_):
            out.append(f"{where}.request.url {url!r} does not start with a resource type")
        if method in ("POST", "PUT", "PATCH") and resource is None:
            out.append(f"{where}: {method} without a resource")
        if isinstance(resource, dict) and method in ("POST", "PUT"):
            if resource.get("resourceType") != type_:
                out.append(f"{where}: resource is a {resource.get('resourceType')} but request.url is {url!r}")
        if method == "POST" and (rid or query):
            out.append(f"{where}.request.url {url!r}: a create is POST to the type (use ifNoneExist for a condition)")
        if method == "PUT":
            if rid is None and query is None:
                out.append(f"{where}.request.url {url!r}: PUT needs Type/id or a conditional Type?query")
            if rid is not None:
                if not ID_RE.match(rid):
                    out.append(f"{where}.request.url {url!r}: {rid!r} is not a valid id")
                if isinstance(resource, dict) and resource.get("id") != rid:
                    out.append(f"{where}: resource.id {resource.get('id')!r} differs from request.url {url!r}")
                if (
                    isinstance(full_url, str)
                    and full_url.startswith("http")
                    and not full_url.endswith(f"{type_}/{rid}")
                ):
                    out.append(f"{where}.fullUrl {full_url!r} does not match request.url {url!r}")
        if method in ("DELETE", "PATCH") and rid is None and query is None:
            out.append(f"{where}.request.url {url!r}: {method} needs Type/id or Type?query")
        if "ifNoneExist" in request:
            if method != "POST":
                out.append(f"{where}.request.ifNoneExist on {method}: conditional create is a POST")
            problem = query_problem("ifNoneExist", str(request["ifNoneExist"]))
            if problem:
                out.append(f"{where}.request.{problem}")
        if "ifMatch" in request:
            problem = etag_problem("ifMatch", str(request["ifMatch"]))
            if problem:
                out.append(f"{where}.request.{problem}")
        if "ifNoneMatch" in request and str(request["ifNoneMatch"]).strip() != "*":
            problem = etag_problem("ifNoneMatch", str(request["ifNoneMatch"]))
            if problem:
                out.append(f"{where}.request.{problem}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        for path, ref in references(entry["resource"]):
            if ref.startswith("urn:uuid:") and ref not in full_urls:
                out.append(f"Bundle.entry[{i}].resource.{path}: {ref!r} is no entry's fullUrl")
            if ref.startswith("urn:uuid:") and kind == "batch":
                out.append(f"Bundle.entry[{i}].resource.{path}: urn:uuid references only resolve in a transaction")
    return out
