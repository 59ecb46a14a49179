"""``Patient/$prescriptions`` (type level, GET or POST form): every prescription and dispense of
one patient across the alliance — the gateway's store and every live member, asked in parallel
(:mod:`gateway.federation.fanout`) — as one searchset Bundle.

Also :func:`federated_search`, the branch ``MedicationRequest``/``MedicationDispense`` searches
on ``patient.identifier`` take once the registry has a live member (the local path is
untouched otherwise), and :func:`federated_entries`, the same for the GET entries of a batch
Bundle (all of them asked at once, before the batch's other entries run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context
from gateway.api.responses import fhir_response
from gateway.errors import FhirError
from gateway.federation.fanout import RECORD_TYPES, FederatedQuery, Federation, parse_prescriptions, parse_type_search
from gateway.hooks import RequestContext
from gateway.service.bundles import Entry
from gateway.service.transactions import failed_entry

PRESCRIPTIONS = "Patient/$prescriptions"


def federation(request: Request) -> Federation:
    return request.app.state.federation  # type: ignore[no-any-return]


def no_cache(request: Request) -> bool:
    """``Cache-Control: no-cache`` (or ``no-store``): every live member is asked again."""
    directives = {d.strip().lower() for d in request.headers.get("cache-control", "").split(",")}
    return bool(directives & {"no-cache", "no-store"})


async def _params(request: Request) -> list[tuple[str, str]]:
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/x-www-form-urlencoded":
            params += parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return [(k, v) for k, v in params if k not in ("_format", "_pretty")]


async def prescriptions(request: Request) -> Response:
    ctx = context(request, "operation", "Patient")
    fed = federation(request)
    query = parse_prescriptions(await _params(request), fed.settings)
    body = await fed.search(ctx, query, no_cache=no_cache(request), path=PRESCRIPTIONS)
    return fhir_response(request, body)


async def federated_search(request: Request, resource_type: str) -> Response | None:
    """The federated answer of a type search that names the patient by identifier, or None
    when the search stays local (another search, or no live member)."""
    fed: Federation | None = getattr(request.app.state, "federation", None)
    if fed is None:
        return None
    query = parse_type_search(resource_type, await _params(request), fed.settings)
    if query is None or not await fed.has_live_members():
        return None
    ctx = context(request, "search-type", resource_type)
    body = await fed.search(ctx, query, no_cache=no_cache(request), path=resource_type)
    return fhir_response(request, body)


def _federated_get(parts: SplitResult, fed: Federation) -> tuple[str, str, FederatedQuery] | None:
    """What a batch GET entry's ``url`` would ask the alliance, with its path and type: the
    prescriptions operation or a type search that federates when a member is live; None for
    anything that stays local."""
    path = parts.path.strip("/")
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("_format", "_pretty")]
    if path == PRESCRIPTIONS:
        return path, "Patient", parse_prescriptions(params, fed.settings)
    if "/" in path:
        return None
    query = parse_type_search(path, params, fed.settings)
    return (path, path, query) if query is not None else None


async def federated_entries(request: Request, ctx: RequestContext, raw: bytes) -> dict[int, Entry]:
    """The answers of a batch Bundle's GET entries that federate, by entry index: asked of
    the members all at once here, on the event loop, rather than one after another inside
    the batch's thread (where a federated search cannot run). The prescriptions operation is
    answered here even when no member is live. An entry whose query is bad or forbidden gets
    its OperationOutcome, as any failed batch entry does. A transaction's GETs stay local:
    they must see the transaction's writes."""
    fed: Federation | None = getattr(request.app.state, "federation", None)
    if fed is None or b'"GET"' not in raw or b'"batch"' not in raw:
        return {}
    try:
        bundle = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}  # the batch itself says what is wrong with it
    if not isinstance(bundle, dict) or bundle.get("type") != "batch" or not isinstance(bundle.get("entry"), list):
        return {}
    if len(bundle["entry"]) > fed.settings.max_bundle_entries:
        return {}  # refused whole by the batch itself (YL-0801), before any member is asked
    answers: dict[int, Entry] = {}
    wanted: dict[int, tuple[str, str, FederatedQuery]] = {}
    live: bool | None = None  # asked of the registry only when a type search could federate
    for index, entry in enumerate(bundle["entry"]):
        request_element: Any = entry.get("request") if isinstance(entry, dict) else None
        url = request_element.get("url") if isinstance(request_element, dict) else None
        if not isinstance(url, str) or request_element.get("method") != "GET":
            continue
        parts = urlsplit(url)
        path = parts.path.strip("/")
        operation = path == PRESCRIPTIONS
        if not operation and path not in RECORD_TYPES:
            continue
        if not operation:
            live = await fed.has_live_members() if live is None else live
            if not live:
                continue  # the store's own search, in the batch's thread
        try:
            federated = _federated_get(parts, fed)
        except FhirError as exc:
            answers[index] = failed_entry(exc)
            continue
        if federated is not None:
            wanted[index] = federated
    asked: dict[int, Awaitable[bytes]] = {}
    for index, (path, resource_type, query) in wanted.items():
        interaction = "operation" if path == PRESCRIPTIONS else "search-type"
        entry_ctx = replace(ctx, interaction=interaction, resource_type=resource_type)
        asked[index] = fed.search(entry_ctx, query, no_cache=no_cache(request), path=path)
    done = await asyncio.gather(*asked.values(), return_exceptions=True)
    for index, result in zip(asked, done, strict=True):
        if isinstance(result, FhirError):
            answers[index] = failed_entry(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            answers[index] = Entry(resource=result, response={"status": "200 OK"})
    return answers
