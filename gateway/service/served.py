"""The conformance resources of ``profiles/``, served read-only next to the stored ones.

Vendors' tools (the HL7 validator, IG tooling) fetch a profile, CodeSystem or OperationDefinition
by its canonical URL from the server whose CapabilityStatement names it. The files in
``profiles/`` are the source of truth the gateway validates and reviews with, so they are
served as they are and never written: a write to one is refused (YL-0304), and so is a stored
resource that claims the canonical URL of a served file (YL-0305), so a canonical
never has two sources.

Searches run on the gateway's own search engine: the files are loaded once per process into a
private SQLite store (``bulk_load``: the same rendering and index rows as a write), so every
search parameter, ``_summary``, ``_elements`` and paging behave exactly as for stored resources.
:class:`gateway.service.fhir_service.FhirService` merges the two sources in one place, before the
read and search hook points run, so access control and audit see served resources like any other.
A served file wins over a stored resource of the same type and id (only data from before the
file existed can collide: such writes are refused now).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.errors import MethodNotAllowed, Unprocessable
from gateway.search.query import SearchQuery, parse_search
from gateway.store.base import SearchPage, StoredResource
from gateway.store.sql import SqlStore

#: FHIR's canonical (definitional) resource types: public master data, read-only when served.
DEFINITION_TYPES = frozenset(
    {
        "ActivityDefinition",
        "CapabilityStatement",
        "CodeSystem",
        "CompartmentDefinition",
        "ConceptMap",
        "GraphDefinition",
        "ImplementationGuide",
        "MessageDefinition",
        "NamingSystem",
        "OperationDefinition",
        "SearchParameter",
        "StructureDefinition",
        "StructureMap",
        "SubscriptionTopic",
        "TerminologyCapabilities",
        "ValueSet",
    }
)


class ServedDefinitions:
    """The served files by type and id, and (built on first search or read) their store."""

    def __init__(self, items: Iterable[dict[str, Any]]) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.urls: set[tuple[str, str]] = set()
        for item in items:
            rtype, rid = item.get("resourceType"), item.get("id")
            if rtype in DEFINITION_TYPES and isinstance(rid, str):
                self.items[(rtype, rid)] = item
                if isinstance(item.get("url"), str):
                    self.urls.add((rtype, item["url"]))
        self.types = frozenset(t for t, _ in self.items)
        self._store: SqlStore | None = None
        self._lock = threading.Lock()

    # -- what is served -------------------------------------------------------------------
    def covers(self, resource_type: str) -> bool:
        return resource_type in self.types

    def has(self, resource_type: str, resource_id: str) -> bool:
        return (resource_type, resource_id) in self.items

    def refuse_write(self, resource_type: str, resource_id: str, data: dict[str, Any] | None) -> None:
        """Raise when a write would change a served file or give its canonical a second source."""
        if resource_type not in self.types:
            return
        if (resource_type, resource_id) in self.items:
            raise MethodNotAllowed("YL-0304", type=resource_type, id=resource_id)
        url = (data or {}).get("url")
        if isinstance(url, str) and (resource_type, url) in self.urls:
            raise Unprocessable("YL-0305", type=resource_type, url=url, expression=[f"{resource_type}.url"])

    def refuse_conditional_delete(self, resource_type: str, criteria: str) -> None:
        """Raise when conditional delete criteria name a served file: answering "nothing to
        delete" would tell the client the file is gone while it is still served."""
        if resource_type not in self.types:
            return
        query = parse_search(
            resource_type, parse_qsl(criteria, keep_blank_values=True), strict=True, default_count=1, max_count=1
        )
        found = self.store.search(query, count=1, offset=0, total=False)
        if found.ids:
            raise MethodNotAllowed("YL-0304", type=resource_type, id=found.ids[0])

    # -- reading them, as a store would ----------------------------------------------------
    @property
    def store(self) -> SqlStore:
        """The files in a private SQLite store, loaded on first use (a process that never reads
        a conformance resource never pays for it)."""
        with self._lock:
            if self._store is None:
                self._store = _load(list(self.items.values()))
            return self._store

    def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        return self.store.read(resource_type, resource_id) if self.has(resource_type, resource_id) else None

    def vread(self, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
        return self.store.vread(resource_type, resource_id, version) if self.has(resource_type, resource_id) else None

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        wanted = [k for k in keys if k in self.items]
        return self.store.read_many(wanted) if wanted else []

    def merge(
        self, query: SearchQuery, stored: SearchPage, *, count: int, offset: int, total: bool, base_url: str | None
    ) -> SearchPage:
        """One page of the served matches merged with ``stored``, the store's first
        ``offset + count`` ids of the same query.

        Both sources are asked for everything up to the end of the page from the start, then
        merged: in id order (keyset paging, the default), or with ``_sort`` each source in its
        own order, the served files first. A served file hides a stored resource of its id."""
        wanted = offset + count
        served = self.store.search(query, count=wanted, offset=0, total=total, base_url=base_url)
        others = [i for i in stored.ids if (query.resource_type, i) not in self.items]
        merged = served.ids + others if query.sort else sorted(set(served.ids) | set(others))
        both = None
        if served.total is not None and stored.total is not None:
            both = served.total + stored.total - (len(stored.ids) - len(others))
        return SearchPage(merged[offset:wanted], both)


def _load(items: list[dict[str, Any]]) -> SqlStore:
    from gateway.store.bulk import bulk_load
    from gateway.store.sql import open_store

    folder = Path(tempfile.mkdtemp(prefix="yaolian-served-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    store = open_store(f"sqlite:///{folder / 'served.sqlite'}")
    store.create_schema()
    bulk_load(store, items)
    return store


@functools.cache
def served_definitions() -> ServedDefinitions:
    """The conformance resources of ``profiles/`` (one file each, ``Type-id.json``)."""
    items: list[dict[str, Any]] = []
    for entry in sorted(resources.files("profiles").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json") and entry.name.split("-", 1)[0] in DEFINITION_TYPES:
            items.append(orjson.loads(entry.read_bytes()))
    return ServedDefinitions(items)


__all__ = ["DEFINITION_TYPES", "ServedDefinitions", "served_definitions"]
