"""Command-line sub-commands of the alliance features (``yaolian members``, ``formulary``,
``review``, ``supply``, ``stock``, ``report``, ``deliveries`` ...), one module each.

Each module here defines ``COMMAND = FeatureCommand(name, help, app)``; :mod:`gateway.cli`
mounts every one it finds, so a feature adds its commands without editing the core CLI. Commands
act through the same service as the REST API (:func:`operator_service`): the same validation,
hooks and audit trail, as the local operator.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from gateway.hooks import RequestContext
from gateway.principal import Principal, Role, parse_scopes
from gateway.service.fhir_service import FhirService

#: Who a CLI command acts as: the operator at the gateway's console (audited as such).
OPERATOR = Principal("cli", "local operator (yaolian CLI)", Role.ADMIN, None, parse_scopes("system/*.cruds"))


@dataclass(frozen=True)
class FeatureCommand:
    name: str
    help: str
    app: typer.Typer


def feature_commands() -> list[FeatureCommand]:
    """Every ``COMMAND`` of the modules in this package, by name."""
    found: list[FeatureCommand] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if isinstance(command, FeatureCommand):
            found.append(command)
    return sorted(found, key=lambda c: c.name)


@contextmanager
def operator_service(database: str | None = None) -> Iterator[tuple[FhirService, RequestContext]]:
    """The gateway's service as the app builds it (settings from the environment, ``database``
    overriding), with a request context for the local operator; closed on exit."""
    import os

    if database:
        os.environ["YAOLIAN_DATABASE"] = database
    from gateway.app import create_app
    from gateway.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    app = create_app(settings)
    service: FhirService = app.state.service
    base = settings.base_url or f"http://{settings.host}:{settings.port}/fhir"
    try:
        yield service, RequestContext(base_url=base, interaction="operation", principal=OPERATOR)
    finally:
        if app.state.audit is not None:
            app.state.audit.close()
        app.state.store.dispose()
