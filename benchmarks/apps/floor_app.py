"""The floor: bare Starlette endpoints on the gateway's tables, nothing FHIR about them.

Read returns the stored bytes by primary key; search runs the same index query the gateway runs
and concatenates the stored bytes into a searchset; create inserts the posted bytes under a new
id (no parsing, no validation, no index). Blocking database calls run in the thread pool
(Starlette does that for plain ``def`` endpoints), as in the gateway.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from _bench_db import Database
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

db = Database()
FHIR_JSON = "application/fhir+json"


def read(request: Request) -> Response:
    body = db.read(request.path_params["type"], request.path_params["id"])
    if body is None:
        return Response(b'{"resourceType":"OperationOutcome"}', 404, media_type=FHIR_JSON)
    return Response(body, media_type=FHIR_JSON)


def search(request: Request) -> Response:
    patient = request.query_params.get("patient", "").removeprefix("Patient/")
    bodies = db.search_patient(request.path_params["type"], patient)
    entries = b",".join(b'{"resource":' + b + b"}" for b in bodies)
    total = str(len(bodies)).encode()
    return Response(
        b'{"resourceType":"Bundle","type":"searchset","total":' + total + b',"entry":[' + entries + b"]}",
        media_type=FHIR_JSON,
    )


async def create(request: Request) -> Response:
    body = await request.body()
    rid = str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(db.insert, request.path_params["type"], rid, now, body)
    return Response(status_code=201, headers={"Location": f"/fhir/{request.path_params['type']}/{rid}"})


app = Starlette(
    routes=[
        Route("/fhir/{type}/{id}", read, methods=["GET"]),
        Route("/fhir/{type}", search, methods=["GET"]),
        Route("/fhir/{type}", create, methods=["POST"]),
    ]
)
