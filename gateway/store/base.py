"""The storage interface every backend implements.

The service layer talks only to :class:`Store` and :class:`StoreTransaction`; SQLite (embedded
default) and PostgreSQL (production) implement them and pass the same parametrised test suite.
A write and the outbox event describing it commit in the same transaction, so nothing is
acknowledged before it is durable and no event is lost or invented.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.search.extract import IndexRows
    from gateway.search.query import SearchQuery


@dataclass(frozen=True)
class StoredResource:
    res_type: str
    res_id: str
    version: int
    last_updated: str
    deleted: bool
    body: bytes | None
    method: str = ""

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True)
class SearchPage:
    ids: list[str]
    total: int | None


class VersionConflict(Exception):
    """The row changed between read and write (If-Match race or concurrent create)."""


class StoreTransaction(Protocol):
    def current(self, res_type: str, res_id: str, *, for_update: bool = True) -> StoredResource | None:
        """The current version; ``for_update`` also locks it until the transaction ends (the
        version about to be replaced), without it the row is only read (a conditional create
        that matched returns what exists)."""
        ...

    def put(
        self,
        stored: StoredResource,
        index: IndexRows | None,
        *,
        expected_version: int | None,
    ) -> None: ...

    def search_ids(self, query: SearchQuery, limit: int) -> list[str]: ...

    def match_token(self, res_type: str, param: str, system: str, code: str, *, limit: int) -> list[str]: ...

    def lock(self, key: str) -> None: ...

    def reader(self) -> Store:
        """The store's read methods inside this transaction, seeing its own writes."""
        ...


class Store(Protocol):
    dialect: str

    def create_schema(self) -> None: ...

    def transaction(self) -> AbstractContextManager[StoreTransaction]: ...

    def read(self, res_type: str, res_id: str) -> StoredResource | None: ...

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]: ...

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None: ...

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        *,
        since: str | None,
        at: tuple[str, str] | None,
        count: int,
        offset: int,
    ) -> tuple[list[StoredResource], int]:
        """Versions newest first: all, or those written ``since``, or those current at some point
        of the period ``at`` (written before it ended and not replaced before it began)."""
        ...

    def search(
        self, query: SearchQuery, *, count: int, offset: int, total: bool, base_url: str | None = None
    ) -> SearchPage: ...

    def references_from(
        self, res_type: str, res_ids: Sequence[str], param: str | None, target_type: str | None
    ) -> list[tuple[str, str]]: ...

    def references_to(self, source_type: str, param: str | None, targets: Sequence[tuple[str, str]]) -> list[str]: ...

    def pending_events(self, limit: int) -> Iterator[tuple[int, str, str, str, int]]: ...

    def dispose(self) -> None: ...
