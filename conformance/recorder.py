"""A recording FHIR server: point a client or an adapter's sender at it and see what it sends.

`yaolian conformance record --port P [--report DIR]` serves an in-memory FHIR R5 endpoint at
`http://HOST:P/fhir` (Starlette, no database). It accepts create (POST), update (PUT), conditional
create (`If-None-Exist`), transaction and batch Bundles (POST to the base), read, vread, a small
search (`_id`, `identifier`) and delete, and answers as a server would (201 + Location + ETag,
`transaction-response` Bundles with `urn:uuid` references rewritten to the assigned ids). Every
request becomes one result of the group `record`, checked for:

- content type: a body is `application/fhir+json` or `application/fhir+xml` (charset UTF-8 if given);
  `Accept`, when sent, names a FHIR format; `Prefer: return=` is one of the three R5 values;
- the body is valid FHIR JSON or XML (fhir.resources), and the resource type and id agree with the URL;
- each resource conforms to the alliance profiles (the kit's own profile checker: the profiles it
  claims, else the alliance profile of its type);
- transaction/batch Bundles are well formed (`bundle_check`: request.method/url, fullUrl and
  `urn:uuid` consistency);
- conditional headers are sane (`If-Match` an ETag, `If-None-Exist` a query on POST only …).

A request with problems is answered with an error (415 content type, 400 structure/Bundle/headers,
422 profile) and an OperationOutcome naming each problem, as the alliance gateway would. The results
are written in the formats of `run` (HTML, JUnit, JSON, TestReport) after every request and at
shutdown.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.bundle_check import bundle_problems, conditional_header_problems
from conformance.client import Exchange, _clip
from conformance.definitions import load
from conformance.model import Check, Outcome, Result
from conformance.profile_check import ProfileChecker
from conformance.runner import Run

Json = dict[str, Any]
GROUP = "record"
FHIR_TYPES = ("application/fhir+json", "application/fhir+xml")
ACCEPTABLE = ("application/fhir+json", "application/fhir+xml", "application/json", "application/xml", "*/*")
FHIR_NS = "{http://hl7.org/fhir}"
OUT_TYPE = "application/fhir+json; charset=utf-8"


class Rejected(Exception):
    """The request cannot be processed; `status` is the HTTP answer, `problems` its reasons."""

    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status = status
        self.problems = problems


@dataclass
class Stored:
    versions: list[Json] = field(default_factory=list)
    deleted: bool = False

    @property
    def current(self) -> Json:
        return self.versions[-1]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome(problems: list[str], severity: str = "error", code: str = "invalid") -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": p} for p in problems]
        or [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
    }


class Recorder:
    def __init__(self, base_path: str = "/fhir", report: Path | None = None, public_url: str = "") -> None:
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.report = report
        self.public_url = public_url or f"http://recorder{self.base_path}"
        self.checker = ProfileChecker()
        self.defs = load()
        self.store: dict[tuple[str, str], Stored] = {}
        self.results: list[Result] = []
        self.started = datetime.now(UTC)
        self.app = Starlette(
            routes=[Route("/{path:path}", self.handle, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])],
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        self.write_reports()

    # --- results ------------------------------------------------------------------------------
    def run_record(self) -> Run:
        run = Run(self.public_url, "record", self.started, datetime.now(UTC), list(self.results))
        return run

    def write_reports(self) -> dict[str, Path]:
        if not self.report:
            return {}
        from conformance.reports import write_all

        return write_all(self.run_record(), self.report)

    # --- HTTP ---------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        path = request.url.path
        query = request.url.query
        headers = {k: v for k, v in request.headers.items()}
        kind, requirement = "request", "FHIR R5 http.html"
        try:
            if not path.startswith(self.base_path + "/") and path != self.base_path:
                raise Rejected(404, [f"{path} is not under the FHIR base {self.base_path or '/'}"])
            rel = path[len(self.base_path) :].strip("/")
            kind, requirement = _classify(request.method, rel)
            status, out_headers, out_body = self.dispatch(request.method, rel, query, headers, body)
            problems: list[str] = []
        except Rejected as exc:
            status, problems = exc.status, exc.problems
            out_headers = {}
            out_body = outcome(problems, code="not-supported" if exc.status == 405 else "invalid")
        text = json.dumps(out_body, ensure_ascii=False) if out_body is not None else ""
        response_headers = {"Content-Type": OUT_TYPE, **out_headers} if text else dict(out_headers)
        self._record(
            request.method,
            str(request.url),
            headers,
            body,
            status,
            response_headers,
            text,
            kind,
            requirement,
            problems,
            time.perf_counter() - started,
        )
        return Response(text.encode() if text else b"", status_code=status, headers=response_headers)

    def _record(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        status: int,
        response_headers: dict[str, str],
        text: str,
        kind: str,
        requirement: str,
        problems: list[str],
        duration: float,
    ) -> None:
        n = len(self.results) + 1
        short = url.split("://", 1)[-1].split("/", 1)[-1]
        check = Check(
            id=f"{GROUP}/{n:04d} {method} /{short}"[:160],
            group=GROUP,
            title=f"{kind}: what the client sent is conformant",
            requirement=requirement,
            required=True,
            run=lambda _: None,
            title_zh=f"{kind}：客户端请求符合规范",
        )
        shown = {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in headers.items()}
        exchange = Exchange(method, url, shown, _clip(body.decode("utf-8", errors="replace")), status)
        exchange.response_headers = response_headers
        exchange.response_body = _clip(text)
        exchange.elapsed_ms = duration * 1000
        if method == "PATCH":
            result_outcome, message = Outcome.NOT_APPLICABLE, "the recorder does not check PATCH"
        elif problems:
            result_outcome, message = Outcome.FAIL, "; ".join(problems)
        else:
            result_outcome, message = Outcome.PASS, f"HTTP {status}"
        self.results.append(Result(check, result_outcome, message, [exchange], duration))
        if self.report:
            self.write_reports()

    # --- the FHIR interactions ----------------------------------------------------------------
    def dispatch(
        self, method: str, rel: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Json | None]:
        problems = _accept_problems(headers) + conditional_header_problems(method, headers)
        parts = [p for p in rel.split("/") if p]
        if problems:
            raise Rejected(400, problems)
        if method in ("GET", "HEAD"):
            return self._get(parts, query)
        if method == "DELETE" and len(parts) == 2:
            found = self.store.get((parts[0], parts[1]))
            if found:
                found.deleted = True
            return 204, {}, None
        if method == "PATCH":
            raise Rejected(405, ["PATCH is not supported by the recording server"])
        if method == "POST" and parts and parts[-1] == "_search":
            return self._get(parts[:-1], body.decode(errors="replace"))
        resource = self.parse(headers, body)
        if method == "POST" and not parts:
            return self._bundle(resource, headers)
        if method == "POST" and len(parts) == 1:
            return self._create(parts[0], resource, headers)
        if method == "PUT" and len(parts) == 2:
            return self._update(parts[0], parts[1], resource, headers)
        raise Rejected(405, [f"{method} /{rel} is not a FHIR interaction the recording server knows"])

    def parse(self, headers: dict[str, str], body: bytes) -> Json:
        problems = _content_type_problems(headers, body)
        if problems:
            raise Rejected(415, problems)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media.endswith("xml"):
            return _parse_xml(body)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Rejected(400, [f"the body is not JSON: {exc}"]) from None
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            raise Rejected(400, ["the body is not a FHIR resource (no resourceType)"])
        return data

    def validate(self, resource: Json, where: str = "") -> list[str]:
        prefix = f"{where}: " if where else ""
        structure = self.checker.structure(resource)
        if structure:
            return [prefix + p for p in structure]
        claimed = [p for p in (resource.get("meta") or {}).get("profile") or [] if p in self.defs.structure_definitions]
        return [prefix + p for p in self.checker.check(resource, claimed or None)]

    def _store(self, type_: str, rid: str, resource: Json) -> tuple[Json, bool]:
        entry = self.store.setdefault((type_, rid), Stored())
        created = not entry.versions or entry.deleted
        entry.deleted = False
        stored = {
            **resource,
            "id": rid,
            "meta": {
                **(resource.get("meta") or {}),
                "versionId": str(len(entry.versions) + 1),
                "lastUpdated": _now(),
            },
        }
        entry.versions.append(stored)
        return stored, created

    def _existing(self, type_: str, condition: str) -> list[Json]:
        return [r for r in self._all(type_) if _matches(r, parse_qsl(condition))]

    def _all(self, type_: str) -> list[Json]:
        return [s.current for (t, _), s in self.store.items() if t == type_ and not s.deleted]

    def _respond(self, stored: Json, created: bool, headers: dict[str, str]) -> tuple[int, dict[str, str], Json | None]:
        meta = stored["meta"]
        out = {
            "Location": f"{self.public_url}/{stored['resourceType']}/{stored['id']}/_history/{meta['versionId']}",
            "ETag": f'W/"{meta["versionId"]}"',
            "Last-Modified": meta["lastUpdated"],
        }
        prefer = headers.get("prefer", "")
        body: Json | None = stored
        if "return=minimal" in prefer:
            body = None
        elif "return=OperationOutcome" in prefer:
            body = outcome([], "information")
        return (201 if created else 200), out, body

    def _create(self, type_: str, resource: Json, headers: dict[str, str]) -> tuple[int, dict[str, str], Json | None]:
        problems = []
        if resource.get("resourceType") != type_:
            problems.append(f"POST /{type_} with a {resource.get('resourceType')} in the body")
        problems += self.validate(resource)
        if problems:
            raise Rejected(422 if resource.get("resourceType") == type_ else 400, problems)
        condition = headers.get("if-none-exist")
        if condition:
            existing = self._existing(type_, condition)
            if len(existing) > 1:
                raise Rejected(412, [f"If-None-Exist {condition!r} matches {len(existing)} resources"])
            if existing:
                return self._respond(existing[0], False, headers)
        stored, _ = self._store(type_, str(uuid.uuid4()), resource)
        return self._respond(stored, True, headers)

    def _update(
        self, type_: str, rid: str, resource: Json, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Json | None]:
        problems = []
        if resource.get("resourceType") != type_:
            problems.append(f"PUT /{type_}/{rid} with a {resource.get('resourceType')} in the body")
        if resource.get("id") != rid:
            problems.append(f"PUT /{type_}/{rid}: the resource's id is {resource.get('id')!r} (R5 http.html#update)")
        if problems:
            raise Rejected(400, problems)
        problems = self.validate(resource)
        if problems:
            raise Rejected(422, problems)
        current = self.store.get((type_, rid))
        if_match = headers.get("if-match")
        if (
            if_match
            and current
            and current.versions
            and if_match.strip() != f'W/"{current.current["meta"]["versionId"]}"'
        ):
            raise Rejected(412, [f"If-Match {if_match} is not the current version of {type_}/{rid}"])
        stored, created = self._store(type_, rid, resource)
        return self._respond(stored, created, headers)

    def _bundle(self, bundle: Json, headers: dict[str, str]) -> tuple[int, dict[str, str], Json | None]:
        if bundle.get("resourceType") != "Bundle":
            raise Rejected(
                400, [f"POST to the base needs a transaction or batch Bundle, not a {bundle.get('resourceType')}"]
            )
        problems = bundle_problems(bundle)
        if problems:
            raise Rejected(400, problems)
        problems = []
        entries = bundle.get("entry") or []
        for i, entry in enumerate(entries):
            if isinstance(entry.get("resource"), dict):
                problems += self.validate(entry["resource"], f"Bundle.entry[{i}]")
        if problems:
            raise Rejected(422, problems)
        transaction = bundle.get("type") == "transaction"
        assigned: dict[str, str] = {}
        plans: list[tuple[Json, str, str, Json | None]] = []
        for entry in entries:
            request = entry["request"]
            method, url = request["method"], request["url"]
            type_ = url.split("?")[0].split("/")[0]
            resource = entry.get("resource")
            if method == "POST":
                found = self._existing(type_, request["ifNoneExist"]) if request.get("ifNoneExist") else []
                rid = found[0]["id"] if found else str(uuid.uuid4())
                resource = None if found else resource
            else:
                rid = url.split("?")[0].split("/")[1] if "/" in url.split("?")[0] else str(uuid.uuid4())
            if entry.get("fullUrl"):
                assigned[entry["fullUrl"]] = f"{type_}/{rid}"
            plans.append((entry, type_, rid, resource))
        response_entries = []
        for entry, type_, rid, resource in plans:
            method = entry["request"]["method"]
            if method in ("GET", "HEAD"):
                status, _, got = self._get(entry["request"]["url"].split("?")[0].split("/"), "")
                response_entries.append({"response": {"status": str(status)}, **({"resource": got} if got else {})})
                continue
            if method == "DELETE":
                found_entry = self.store.get((type_, rid))
                if found_entry:
                    found_entry.deleted = True
                response_entries.append({"response": {"status": "204 No Content"}})
                continue
            if resource is None:  # conditional create that matched
                current = self.store[(type_, rid)].current
                response_entries.append({"response": _entry_response(current, False)})
                continue
            if transaction:
                resource = _rewrite(resource, assigned)
            stored, created = self._store(type_, rid, resource)
            answered: Json = {
                "fullUrl": f"{self.public_url}/{type_}/{rid}",
                "response": _entry_response(stored, created),
            }
            response_entries.append(answered)
        return (
            200,
            {},
            {
                "resourceType": "Bundle",
                "id": str(uuid.uuid4()),
                "type": f"{bundle.get('type')}-response",
                "entry": response_entries,
            },
        )

    def _get(self, parts: list[str], query: str) -> tuple[int, dict[str, str], Json | None]:
        parts = [p for p in parts if p]
        if parts == ["metadata"]:
            cs = {**self.defs.capability, "kind": "instance", "date": _now()}
            cs["software"] = {"name": "Yaolian conformance recording server"}
            cs["implementation"] = {"description": "records and checks what a client sends", "url": self.public_url}
            return 200, {}, cs
        if len(parts) >= 2:
            found = self.store.get((parts[0], parts[1]))
            if not found:
                raise Rejected(404, [f"{parts[0]}/{parts[1]} is not known"])
            if found.deleted:
                raise Rejected(410, [f"{parts[0]}/{parts[1]} was deleted"])
            version = found.current
            if len(parts) == 4 and parts[2] == "_history":
                matches = [v for v in found.versions if v["meta"]["versionId"] == parts[3]]
                if not matches:
                    raise Rejected(404, [f"{parts[0]}/{parts[1]} has no version {parts[3]}"])
                version = matches[0]
            return 200, {"ETag": f'W/"{version["meta"]["versionId"]}"'}, version
        if len(parts) == 1:
            params = [(k, v) for k, v in parse_qsl(query) if not k.startswith("_") or k == "_id"]
            hits = [r for r in self._all(parts[0]) if _matches(r, params)]
            return (
                200,
                {},
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": len(hits),
                    "entry": [
                        {
                            "fullUrl": f"{self.public_url}/{parts[0]}/{r['id']}",
                            "resource": r,
                            "search": {"mode": "match"},
                        }
                        for r in hits
                    ],
                },
            )
        raise Rejected(404, ["GET on the base is not an interaction"])


def _entry_response(stored: Json, created: bool) -> Json:
    meta = stored["meta"]
    return {
        "status": "201 Created" if created else "200 OK",
        "location": f"{stored['resourceType']}/{stored['id']}/_history/{meta['versionId']}",
        "etag": f'W/"{meta["versionId"]}"',
        "lastModified": meta["lastUpdated"],
    }


def _rewrite(node: Any, assigned: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (assigned.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, assigned))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v, assigned) for v in node]
    return node


def _matches(resource: Json, params: list[tuple[str, str]]) -> bool:
    for name, value in params:
        wanted = value.split(",")
        if name == "_id" and resource.get("id") not in wanted:
            return False
        if name in ("identifier", "code"):
            nodes = (
                resource.get("identifier") or []
                if name == "identifier"
                else (resource.get("code") or {}).get("coding") or []
            )
            if not any(_token(n, w, "value" if name == "identifier" else "code") for n in nodes for w in wanted):
                return False
    return True


def _token(node: Json, wanted: str, key: str) -> bool:
    if "|" in wanted:
        system, _, value = wanted.partition("|")
        return node.get("system") == system and node.get(key) == value
    return node.get(key) == wanted


def _classify(method: str, rel: str) -> tuple[str, str]:
    parts = [p for p in rel.split("/") if p]
    if method == "POST" and not parts:
        return "transaction/batch", "FHIR R5 http.html#transaction; bundle.html (fullUrl, urn:uuid, request)"
    if method == "POST" and len(parts) == 1:
        return "create", "FHIR R5 http.html#create; alliance profiles (CapabilityStatement-alliance-server)"
    if method == "PUT":
        return "update", "FHIR R5 http.html#update; alliance profiles (CapabilityStatement-alliance-server)"
    if method in ("GET", "HEAD"):
        return "read/search", "FHIR R5 http.html#read, #search (Accept: a FHIR format)"
    return method.lower(), "FHIR R5 http.html"


def _accept_problems(headers: dict[str, str]) -> list[str]:
    problems = []
    accept = headers.get("accept")
    if accept:
        types = [t.split(";")[0].strip().lower() for t in accept.split(",")]
        if not any(t in ACCEPTABLE or t == "application/*" for t in types):
            problems.append(f"Accept {accept!r} names no FHIR format (application/fhir+json)")
    for part in headers.get("prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "return" and value not in ("minimal", "representation", "OperationOutcome"):
            problems.append(f"Prefer return={value!r} is not minimal, representation or OperationOutcome")
    return problems


def _content_type_problems(headers: dict[str, str], body: bytes) -> list[str]:
    if not body:
        return ["the request has no body"]
    content_type = headers.get("content-type")
    if not content_type:
        return ["the request has a body but no Content-Type (application/fhir+json)"]
    media, *params = [p.strip() for p in content_type.split(";")]
    problems = []
    if media.lower() not in FHIR_TYPES:
        problems.append(f"Content-Type {media!r} is not a FHIR format (application/fhir+json or application/fhir+xml)")
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower().replace("_", "-") not in (
            "utf-8",
            "utf8",
        ):
            problems.append(f"Content-Type charset {value!r}: FHIR is UTF-8")
    return problems


def _parse_xml(body: bytes) -> Json:
    from fhir.resources import get_fhir_model_class
    from lxml import etree
    from pydantic import ValidationError

    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise Rejected(400, [f"the body is not well-formed XML: {exc}"]) from None
    tag = str(root.tag)
    if not tag.startswith(FHIR_NS):
        raise Rejected(400, [f"the XML root {tag!r} is not in the FHIR namespace http://hl7.org/fhir"])
    type_ = tag[len(FHIR_NS) :]
    try:
        model = get_fhir_model_class(type_)
        parsed = model.model_validate_xml(body)
    except (KeyError, ValueError, ValidationError) as exc:
        raise Rejected(400, [f"the XML is not a valid FHIR {type_}: {str(exc)[:500]}"]) from None
    data: Json = json.loads(parsed.model_dump_json(exclude_none=True))
    return data
