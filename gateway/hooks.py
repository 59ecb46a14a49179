"""Hook points for cross-cutting concerns (auth, audit, validation, events).

Modelled on HAPI FHIR's pointcuts but kept small: a hook is a plain callable registered for
one :class:`Pointcut`. Hooks run in registration order; a hook stops processing by raising a
:class:`gateway.errors.FhirError` (e.g. ``Forbidden``). Later issues (security, audit,
alliance rules, subscriptions) plug in here instead of editing the interaction handlers.

=====================  ===============================================  ==============
pointcut               called with                                      may stop it
=====================  ===============================================  ==============
REQUEST_RECEIVED       (context)                                        yes (auth)
BEFORE_WRITE           (context, resource_type, data, existing)         yes (rules)
AFTER_WRITE_IN_TX      (context, transaction, stored)                   yes (rolls back)
AFTER_COMMIT           (context, stored)                                no (notify)
BEFORE_READ_RESPONSE   (context, stored)                                yes (consent)
=====================  ===============================================  ==============
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Pointcut(Enum):
    REQUEST_RECEIVED = "request_received"
    BEFORE_WRITE = "before_write"
    AFTER_WRITE_IN_TX = "after_write_in_tx"
    AFTER_COMMIT = "after_commit"
    BEFORE_READ_RESPONSE = "before_read_response"


@dataclass
class RequestContext:
    """What a hook may need to know about the request it runs for."""

    base_url: str
    interaction: str = ""
    resource_type: str | None = None
    user: Any = None
    strict_handling: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Hooks:
    def __init__(self) -> None:
        self._hooks: dict[Pointcut, list[Callable[..., None]]] = defaultdict(list)

    def register(self, pointcut: Pointcut, hook: Callable[..., None]) -> None:
        self._hooks[pointcut].append(hook)

    def run(self, pointcut: Pointcut, *args: Any) -> None:
        for hook in self._hooks.get(pointcut, ()):
            hook(*args)

    def __contains__(self, pointcut: Pointcut) -> bool:
        return bool(self._hooks.get(pointcut))
