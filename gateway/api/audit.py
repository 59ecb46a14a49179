"""The audit trail at the HTTP boundary: every FHIR request's record commits before its answer.

:class:`AuditMiddleware` (a plain ASGI layer around the routes and the error mapping) opens a
:class:`~gateway.security.audit.RequestAudit` for each request under ``/fhir`` (but
``metadata``); the read hook points fill it with what is shown. When the response starts,
the record (the request's outcome included: a 401, 403 or 404 is recorded as a failure) goes
to the trail and the response is held until it is durable (in the process's audit spool, or
committed by the group committer). A write already
recorded itself in its own transaction, so it adds nothing here. If the record cannot be
stored the answer is withheld: the client gets a 500 instead (fail closed).

The auditors' search is :mod:`gateway.api.interactions.audit`.
"""

from __future__ import annotations

import logging
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import issue, operation_outcome
from gateway.security.audit import CURRENT, AuditTrail, RequestAudit

log = logging.getLogger("yaolian.audit")

#: Paths under /fhir that touch no patient data.
_UNAUDITED = frozenset({"/fhir/metadata", "/fhir/metadata/"})


class AuditMiddleware:
    def __init__(self, app: ASGIApp, trail: AuditTrail) -> None:
        self.app = app
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/fhir") or path in _UNAUDITED:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        seen = RequestAudit(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            client_ip=client[0] if client else None,
        )
        token = CURRENT.set(seen)
        withheld = False

        async def send_audited(message: Message) -> None:
            nonlocal withheld
            if message["type"] == "http.response.start":
                record = self.trail.request_facts(seen, int(message["status"]))
                if record is not None:
                    try:
                        await self.trail.commit_read(record)
                    except Exception:
                        withheld = True
                        reference = uuid.uuid4().hex[:12]
                        log.exception("audit record %s not stored; answer withheld", reference)
                        body = orjson.dumps(operation_outcome([issue("YL-0952", ref=reference)]))
                        headers = [(b"content-type", b"application/fhir+json;charset=utf-8")]
                        headers.append((b"content-length", str(len(body)).encode()))
                        await send({"type": "http.response.start", "status": 500, "headers": headers})
                        await send({"type": "http.response.body", "body": body})
                        return
            elif withheld:
                return
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            # the server's error handler answers 500 outside this layer: record it, then let it
            record = self.trail.request_facts(seen, 500)
            if record is not None:
                self.trail.submit_read(record)
            raise
        finally:
            CURRENT.reset(token)
