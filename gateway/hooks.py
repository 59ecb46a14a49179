"""Hook points for cross-cutting concerns (auth, access control, audit, validation, events).

Modelled on HAPI FHIR's pointcuts but kept small: a hook is a plain callable registered for
one :class:`Pointcut`, with the signature of that pointcut. :meth:`Hooks.register` is typed per
pointcut, so mypy rejects a hook whose signature does not fit the point it is registered at.
Hooks run in registration order; a hook stops processing by raising a
:class:`gateway.errors.FhirError` (e.g. ``Forbidden``). Later issues (security, audit,
alliance rules, subscriptions) plug in here instead of editing the interaction handlers.

Every read goes through :class:`gateway.service.fhir_service.FhirService` and passes the read
points below: read and vread (REST, GET entries of a Bundle, ``$validate``, ``$hl7v2``),
search (REST, GET entries of a Bundle, the sibling orders of ``$hl7v2``), its ``_include`` and
``_revinclude`` rounds, and history. No code in ``gateway/api`` touches the store.

=======================  ========================================================  ===========
pointcut                 called with                                               may stop it
=======================  ========================================================  ===========
REQUEST_RECEIVED         (ctx: RequestContext)                                     yes (auth)
BEFORE_STORE             (ctx: RequestContext, tx: StoreTransaction,               yes (review
                         resource_type: str, body: ResourceText)                   on write)
BEFORE_WRITE             (ctx: RequestContext, resource_type: str,                 yes (rules)
                         data: dict[str, Any] | None, existing: StoredResource
                         | None)
AFTER_WRITE_IN_TX        (ctx: RequestContext, tx: StoreTransaction,               yes (rolls
                         stored: StoredResource)                                   back)
AFTER_COMMIT             (ctx: RequestContext, stored: StoredResource | None)      no (notify)
BEFORE_SEARCH            (ctx: RequestContext, query: SearchQuery)                 yes
BEFORE_SEARCH_RESPONSE   (ctx: RequestContext, results: SearchResults)             yes
BEFORE_HISTORY_RESPONSE  (ctx: RequestContext, page: HistoryPage)                  yes
BEFORE_READ_RESPONSE     (ctx: RequestContext, stored: StoredResource)             yes (consent)
=======================  ========================================================  ===========

* ``BEFORE_STORE`` runs when a create or update is prepared, before validation and rendering
  (HAPI's STORAGE_PRESTORAGE_RESOURCE_CREATED): a hook may amend ``body`` (its ``data`` and the
  matching ``members`` text) and write other resources in ``tx`` (they commit or roll back with
  this write); it runs again if the write path re-runs the work. The review on write hangs here.
* ``BEFORE_WRITE``: ``data`` is None for a delete; ``existing`` is None for a create.
  ``AFTER_COMMIT`` is called once per committed interaction with ``stored`` None.
* ``BEFORE_SEARCH`` runs after the search is parsed and before the store runs it (HAPI's
  STORAGE_PRESEARCH_REGISTERED): a hook may add criteria to ``query.criteria`` (built with
  :func:`gateway.search.query.parse_criterion`) to restrict what is found, so ``total``,
  ``_summary=count`` and the paging links count only what the caller may see. Page links keep
  the client's parameters: the hook restricts every page again.
* ``BEFORE_SEARCH_RESPONSE`` runs before resources become part of a searchset (HAPI's
  STORAGE_PRESHOW_RESOURCES): first with the page's matches (``results.included`` empty, also
  for ``_summary=count``, where ``matches`` is empty and ``total`` is the count), then once per
  round of ``_include``/``_revinclude`` with the new resources in ``results.included``
  (``matches`` empty). A hook thins out ``matches``/``included`` (never adds to them) and may
  lower ``total``; nothing is included from a resource it removed. Resources removed here after
  the store has counted them are still in ``total`` unless the hook lowers it: restrict at
  ``BEFORE_SEARCH`` to keep totals and paging exact.
  A hook removing matches can leave a keyset page with nothing shown: it then has no next link
  (a link never names a hidden id).
* ``BEFORE_HISTORY_RESPONSE`` runs on a page of history (system, type or instance level) before
  it is rendered: a hook thins out ``page.entries`` (versions, deletions included) and may lower
  ``page.total``; raising :class:`Hidden` answers 404 at instance level, as if the resource had
  never existed, and an empty page above it.
* ``BEFORE_READ_RESPONSE`` runs for every single resource read (read, vread, a GET entry of a
  Bundle, ``$validate`` of a stored resource, each resource ``$hl7v2`` reads), deleted ones too
  (``stored.deleted``, ``body`` None) before their 410. Raising :class:`Hidden` answers exactly
  the 404 a missing resource (or version) gets, so what the caller may not see cannot be told
  from what does not exist; a resource ``$hl7v2`` reads by reference is then left out, as a
  missing one is. :class:`Hidden` is for these two points; the others thin out what they get.
* A GET entry of a Bundle runs with ``ctx.interaction`` of what it does (``read``, ``vread``,
  ``search-type``), like the same GET over REST.

A pointcut nobody registered for costs one dictionary look-up: callers check
``pointcut in hooks`` before building the objects a hook would see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

from gateway.principal import Principal

if TYPE_CHECKING:
    from gateway.fhir.json_text import ResourceText
    from gateway.search.query import SearchQuery
    from gateway.store.base import StoredResource, StoreTransaction


class Pointcut(Enum):
    REQUEST_RECEIVED = "request_received"
    BEFORE_STORE = "before_store"
    BEFORE_WRITE = "before_write"
    AFTER_WRITE_IN_TX = "after_write_in_tx"
    AFTER_COMMIT = "after_commit"
    BEFORE_SEARCH = "before_search"
    BEFORE_SEARCH_RESPONSE = "before_search_response"
    BEFORE_HISTORY_RESPONSE = "before_history_response"
    BEFORE_READ_RESPONSE = "before_read_response"


class Hidden(Exception):
    """Raised by a ``BEFORE_READ_RESPONSE`` (or instance-level ``BEFORE_HISTORY_RESPONSE``)
    hook: the caller may not see this resource. The service answers the 404 of a missing one."""


@dataclass
class RequestContext:
    """What a hook may need to know about the request it runs for."""

    base_url: str
    interaction: str = ""
    resource_type: str | None = None
    #: who is asking (None: nobody authenticated it - a hook that guards data refuses then)
    principal: Principal | None = None
    strict_handling: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResults:
    """Resources about to be shown in a searchset; a ``BEFORE_SEARCH_RESPONSE`` hook may remove
    entries from ``matches`` and ``included`` and lower ``total``."""

    query: SearchQuery
    matches: list[StoredResource]
    included: list[StoredResource]
    total: int | None


@dataclass
class HistoryPage:
    """One page of a history Bundle before it is rendered; ``resource_type``/``resource_id``
    name the level asked for (None above it)."""

    resource_type: str | None
    resource_id: str | None
    entries: list[StoredResource]
    total: int


RequestHook: TypeAlias = Callable[[RequestContext], None]
BeforeStoreHook: TypeAlias = Callable[[RequestContext, "StoreTransaction", str, "ResourceText"], None]
BeforeWriteHook: TypeAlias = Callable[
    [RequestContext, str, "dict[str, Any] | None", "StoredResource | None"],
    None,
]
AfterWriteHook: TypeAlias = Callable[[RequestContext, "StoreTransaction", "StoredResource"], None]
AfterCommitHook: TypeAlias = Callable[[RequestContext, "StoredResource | None"], None]
SearchHook: TypeAlias = Callable[[RequestContext, "SearchQuery"], None]
SearchResultsHook: TypeAlias = Callable[[RequestContext, SearchResults], None]
HistoryHook: TypeAlias = Callable[[RequestContext, HistoryPage], None]
ReadHook: TypeAlias = Callable[[RequestContext, "StoredResource"], None]


class Hooks:
    def __init__(self) -> None:
        self._hooks: dict[Pointcut, list[Callable[..., None]]] = defaultdict(list)

    @overload
    def register(self, pointcut: Literal[Pointcut.REQUEST_RECEIVED], hook: RequestHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.BEFORE_STORE], hook: BeforeStoreHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.BEFORE_WRITE], hook: BeforeWriteHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.AFTER_WRITE_IN_TX], hook: AfterWriteHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.AFTER_COMMIT], hook: AfterCommitHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.BEFORE_SEARCH], hook: SearchHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.BEFORE_SEARCH_RESPONSE], hook: SearchResultsHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.BEFORE_HISTORY_RESPONSE], hook: HistoryHook) -> None: ...
    @overload
    def register(self, pointcut: Literal[Pointcut.BEFORE_READ_RESPONSE], hook: ReadHook) -> None: ...
    def register(self, pointcut: Pointcut, hook: Callable[..., None]) -> None:
        self._hooks[pointcut].append(hook)

    @overload
    def run(self, pointcut: Literal[Pointcut.REQUEST_RECEIVED], ctx: RequestContext, /) -> None: ...
    @overload
    def run(
        self,
        pointcut: Literal[Pointcut.BEFORE_STORE],
        ctx: RequestContext,
        tx: StoreTransaction,
        resource_type: str,
        body: ResourceText,
        /,
    ) -> None: ...
    @overload
    def run(
        self,
        pointcut: Literal[Pointcut.BEFORE_WRITE],
        ctx: RequestContext,
        resource_type: str,
        data: dict[str, Any] | None,
        existing: StoredResource | None,
        /,
    ) -> None: ...
    @overload
    def run(
        self,
        pointcut: Literal[Pointcut.AFTER_WRITE_IN_TX],
        ctx: RequestContext,
        tx: StoreTransaction,
        stored: StoredResource,
        /,
    ) -> None: ...
    @overload
    def run(
        self, pointcut: Literal[Pointcut.AFTER_COMMIT], ctx: RequestContext, stored: StoredResource | None, /
    ) -> None: ...
    @overload
    def run(self, pointcut: Literal[Pointcut.BEFORE_SEARCH], ctx: RequestContext, query: SearchQuery, /) -> None: ...
    @overload
    def run(
        self, pointcut: Literal[Pointcut.BEFORE_SEARCH_RESPONSE], ctx: RequestContext, results: SearchResults, /
    ) -> None: ...
    @overload
    def run(
        self, pointcut: Literal[Pointcut.BEFORE_HISTORY_RESPONSE], ctx: RequestContext, page: HistoryPage, /
    ) -> None: ...
    @overload
    def run(
        self, pointcut: Literal[Pointcut.BEFORE_READ_RESPONSE], ctx: RequestContext, stored: StoredResource, /
    ) -> None: ...
    def run(self, pointcut: Pointcut, *args: Any) -> None:
        for hook in self._hooks.get(pointcut, ()):
            hook(*args)

    def __contains__(self, pointcut: Pointcut) -> bool:
        return bool(self._hooks.get(pointcut))
