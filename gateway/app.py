"""The ASGI application: settings -> store -> service -> routes."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response

from gateway.api import auth, cds_hooks, errors
from gateway.api.routes import ROUTES
from gateway.hooks import Hooks
from gateway.security import redact
from gateway.security.authn import Authenticator
from gateway.service.fhir_service import FhirService
from gateway.service.ports import Validator
from gateway.settings import Settings, audit_spool_directory, get_settings
from gateway.store.sql import open_store

log = logging.getLogger("yaolian")


def _profile_validator() -> tuple[Validator, dict[str, list[str]]]:
    """Structure + alliance profile validation (gateway.validation), and profiles by type."""
    from gateway import validation
    from gateway.errors import Issue

    by_type: dict[str, list[str]] = {}
    for url in validation.known_profiles():
        resource_type = validation.profile_resource_type(url)
        if resource_type:
            by_type.setdefault(resource_type, []).append(url)

    def run(data: dict[str, Any], profiles: list[str] | None = None, /) -> list[Issue]:
        wanted = tuple(profiles) if profiles else validation.profiles_for(data)
        return validation.validate(data, wanted, structure=True)

    return run, by_type


def create_app(settings: Settings | None = None, *, hooks: Hooks | None = None) -> FastAPI:
    settings = settings or get_settings()
    redact.install()  # no token, assertion, secret or Authorization header in any log record
    store = open_store(settings.database, statement_timeout_ms=settings.statement_timeout_ms)
    store.create_schema()
    validator, profiles_by_type = _profile_validator()
    from gateway.service.served import served_definitions

    service = FhirService(
        store,
        settings,
        hooks,
        validator if settings.validation_mode != "off" else None,
        served=served_definitions(),  # profiles/ answered over REST, read-only
    )
    if not settings.insecure_dev:
        from gateway.security.policy import Policy

        Policy(store).install(service)
    from gateway.events.subscriptions import SubscriptionRules

    SubscriptionRules().install(service)  # Subscriptions checked when written, each client's own (issue 16)

    from gateway.ingest.journal import Journal
    from gateway.ingest.pipeline import IngestPipeline

    pipeline = IngestPipeline(service, Journal(store))
    from gateway.events.relay import OutboxRelay
    from gateway.hooks import Pointcut

    relay = OutboxRelay(
        store, settings.redis, stream=settings.events_stream, republish_after=settings.outbox_republish_seconds
    )
    service.hooks.register(Pointcut.AFTER_COMMIT, relay.notify)
    from gateway.federation.fanout import Federation

    federation = Federation(service, settings)  # issue 13: live members asked in parallel
    federation.install()

    # Central prescription review (issue 14): $review, CDS Hooks, and the review on write.
    from gateway.alliance.review import on_write

    review = on_write.install(service, settings)

    from gateway.alliance.supply import monitor  # issue 15: stock alerts follow InventoryReport writes

    monitor.install(service)

    dispatcher = None
    if settings.subscriptions:
        from gateway.events.dispatcher import Dispatcher

        dispatcher = Dispatcher(service, settings, relay=relay, stream=settings.events_stream)
        service.hooks.register(Pointcut.AFTER_COMMIT, dispatcher.notify)

    # The audit trail registers last, after any access-control hooks at the same points, so it
    # records what was shown (gateway/security/audit.py).
    audit = None
    if settings.audit:
        from gateway.security.audit import AuditTrail

        audit = AuditTrail(
            store,
            retention_days=settings.audit_retention_days,
            reads_fsync=settings.audit_read_durability == "fsync",
            spool_dir=audit_spool_directory(settings),
            chainer=settings.audit_chainer,
            database=settings.database,
        )
        audit.install(service.hooks)
        pipeline.audit = audit

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if audit is not None:
            audit.start()  # chains what a gateway killed before chaining its reads' records left
        relay.start()
        if dispatcher is not None:
            dispatcher.start()
        mllp = None
        if settings.mllp_port:
            from gateway.ingest.mllp import MllpServer

            base = settings.base_url or f"http://{settings.host}:{settings.port}/fhir"
            binding = None
            if not settings.insecure_dev:
                from gateway.security.senders import SenderBinding

                binding = SenderBinding.from_settings(
                    settings.mllp_senders, settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_client_ca
                )
            mllp = MllpServer(pipeline, base, settings=settings, binding=binding)
            await mllp.start(settings.host, settings.mllp_port)
        # What exists now (models, definitions, routes) lives as long as the process: frozen, the
        # collector stops re-scanning it (the MLLP listener freezes again after its first group).
        # In process on the MLLP path, with all of it frozen, GC went from 6% to 1.5% of the time.
        gc.freeze()
        yield
        if mllp is not None:
            await mllp.stop()
        if dispatcher is not None:
            dispatcher.stop()
        relay.stop()
        await federation.close()
        if audit is not None:
            audit.close()
        store.dispose()

    app = FastAPI(
        title="Yaolian (药联) FHIR R5 gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.service = service
    app.state.store = store
    app.state.ingest = pipeline
    app.state.relay = relay
    app.state.review = review
    app.state.federation = federation

    app.state.dispatcher = dispatcher
    app.state.capability_cache = {}
    app.state.profile_validator = validator
    app.state.profiles_by_type = profiles_by_type
    app.state.authenticator = Authenticator(store, settings)

    app.state.audit = audit
    errors.install(app)
    app.router.routes.extend(auth.ROUTES)
    app.router.routes.extend(cds_hooks.ROUTES)
    from gateway.api.limits import BodyLimit  # issue 12: request bodies over max_body_bytes are a 413

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.router.routes.extend(ROUTES)
    if dispatcher is not None:
        from gateway.api.websocket import ROUTE as WEBSOCKET

        app.router.routes.append(WEBSOCKET)  # subscriptions' websocket channel (issue 16)
    if audit is not None:
        from gateway.api.audit import AuditMiddleware

        app.add_middleware(AuditMiddleware, trail=audit)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/fhir/metadata")

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "database": store.dialect}

    return app
