"""The storage interface every backend implements: the only door to the database.

The service layer, the ingest pipeline and the event relay talk only to :class:`Store` and
:class:`StoreTransaction`; SQLite (embedded default) and PostgreSQL (production) implement them
and pass the same parametrised test suite. Everything that touches a table is here: resources,
their history and index, the outbox, the ingest journal, savepoints and staging. A partitioned
or sharded PostgreSQL is therefore a new implementation of this module, not a change elsewhere.

A write and the outbox event describing it commit in the same transaction, so nothing is
acknowledged before it is durable and no event is lost or invented.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
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


class QueryTimeout(Exception):
    """A read ran past the store's statement timeout and was cancelled (setting
    ``statement_timeout_ms``; issue 12). The service answers it 400 (YL-0802)."""

    def __init__(self, limit_ms: int) -> None:
        super().__init__(f"query cancelled after {limit_ms} ms")
        self.limit_ms = limit_ms


class Cancellation:
    """The reads of one request, cancellable from another thread when its client leaves
    (issue 12): each bounded read registers how to interrupt its database connection
    (psycopg's ``cancel``, sqlite3's ``interrupt``) while it runs; :meth:`cancel` interrupts
    what runs and refuses what would start (both raise :class:`QueryTimeout`). A ``deadline``
    makes the statement timeout one budget for all the reads of the request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Callable[[], object]] = {}
        self.cancelled = False
        self.deadline: float | None = None  # time.monotonic() by which all its reads must end

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            running = list(self._running.values())
        for interrupt in running:
            interrupt()

    @contextmanager
    def running(self, interrupt: Callable[[], object]) -> Iterator[None]:
        key = id(interrupt)
        with self._lock:
            if self.cancelled:
                raise QueryTimeout(0)
            self._running[key] = interrupt
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(key, None)


READS: ContextVar[Cancellation | None] = ContextVar("yaolian_reads", default=None)


@contextmanager
def cancellable(token: Cancellation) -> Iterator[Cancellation]:
    """Reads started (or handed to threads) inside this block can be cancelled by ``token``."""
    reset = READS.set(token)
    try:
        yield token
    finally:
        READS.reset(reset)


class DuplicateMessage(Exception):
    """Another transaction journalled the same message first (a resend racing its original)."""


class NotStaged(Exception):
    """This work cannot be prepared outside the write lock; run it inside the transaction."""


@dataclass(frozen=True)
class JournalEntry:
    """One inbound message as the ingest journal keeps it (raw, with its outcome and reply)."""

    seq: int
    adapter: str
    channel: str
    control_id: str | None
    status: str
    raw: bytes
    outcome: bytes | None
    reply: bytes | None
    attempts: int


@dataclass(frozen=True)
class ChangeEvent:
    """An outbox row: what changed, in commit order (``seq``)."""

    seq: int
    event: str  # create | update | delete
    resource_type: str
    resource_id: str
    version: int

    def fields(self) -> dict[str, str]:
        return {
            "seq": str(self.seq),
            "event": self.event,
            "resourceType": self.resource_type,
            "id": self.resource_id,
            "versionId": str(self.version),
        }


# --- Subscriptions (issue 16): per-subscription state and durable deliveries ---------------


@dataclass(frozen=True)
class SubscriptionState:
    """What the store keeps of a subscription besides its resource: the last eventNumber it
    handed out, the outbox seq it started after, its runtime status and delivery lease."""

    sub_id: str
    topic: str
    start_seq: int
    events: int
    status: str  # requested | active | error | off
    lease_owner: str | None
    lease_until: float
    last_sent: float
    last_error: str | None


@dataclass(frozen=True)
class Delivery:
    """One event of one subscription (``event_number`` consecutive per subscription) and where
    its delivery stands: pending (with its next attempt), delivered, or dead (retry budget
    spent; ``yaolian deliveries retry`` puts it back)."""

    sub_id: str
    event_number: int
    outbox_seq: int
    created: str
    event: str  # the topic trigger's interaction: create | update | delete
    res_type: str
    res_id: str
    version: int
    status: str
    attempts: int
    next_attempt: float
    first_failure: float | None
    last_error: str | None


@dataclass(frozen=True)
class FanOut:
    """What the matcher decided for one outbox row: the subscriptions it is an event of, and
    the subscriptions the row itself starts (a Subscription's own create: ``(id, topic)``)."""

    seq: int
    matches: tuple[str, ...] = ()
    starts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DeliveryOutcome:
    """The result of one attempt, recorded under the deliverer's lease."""

    event_number: int
    status: str  # delivered | pending | dead
    attempts: int
    next_attempt: float
    first_failure: float | None
    last_error: str | None


# --- Authentication: registered clients, used assertion ids, server keys (issue 11) ---------


@dataclass(frozen=True)
class ClientRecord:
    """A registered client (``yaolian clients add``): who it is, how it authenticates, and the
    SMART scopes it may be granted. Only a slow hash of a client secret is ever stored."""

    client_id: str
    name: str
    role: str  # a gateway.principal.Role value
    member: str | None
    scopes: str  # space-separated SMART v2 system scopes
    auth_kind: str  # "private_key_jwt" | "client_secret_basic"
    jwks: str | None  # the client's public JWKS (JSON text), for private_key_jwt
    secret_hash: str | None  # for client_secret_basic
    created: str
    revoked: str | None = None


class DuplicateClient(Exception):
    """A client with this id is already registered."""


# --- end authentication -------------------------------------------------------------------

# -- audit trail (gateway/security/audit.py) ------------------------------------------------
#: ``prev_hash`` of the first record of a chain that was never pruned.
AUDIT_GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    """One audit record as it is appended: the AuditEvent's canonical JSON bytes (``event``)
    and the columns auditors search by, all of them covered by the record's hash."""

    recorded: str
    client_id: str
    member: str | None
    action: str  # the interaction: read, search-type, create, mllp, ...
    outcome: str  # AuditEvent outcome code: 0 success, 4 minor failure, 8 serious failure
    patients: tuple[str, ...]
    event: bytes


@dataclass(frozen=True)
class AuditRow(AuditRecord):
    """A stored audit record: its place in the chain (``seq``, consecutive from 1), the hash
    of the record before it and its own (:func:`audit_hash`)."""

    seq: int = 0
    prev_hash: str = AUDIT_GENESIS
    hash: str = ""
    #: the record's rows in the patient index auditors search by (``audit_rows`` fills it, so
    #: verify finds a record hidden from a patient search by deleting its index rows)
    indexed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AuditAnchor:
    """Where the chain starts after pruning: the last pruned record's ``seq`` and ``hash``."""

    seq: int
    hash: str
    pruned_at: str
    pruned: int  # records pruned so far, in all prunes


@dataclass(frozen=True)
class AuditCriteria:
    """An auditor's search: any of patient, client, and a period ``[since, before)``."""

    patient: str | None = None
    client_id: str | None = None
    since: str | None = None  # recorded >= since
    before: str | None = None  # recorded < before


def audit_hash(prev_hash: str, seq: int, record: AuditRecord) -> str:
    """sha256 over the previous hash, the record's place and every stored field, each field
    length-prefixed (no separator can be forged by a field's content)."""
    digest = hashlib.sha256()
    for part in (
        prev_hash,
        str(seq),
        record.recorded,
        record.client_id,
        record.member or "",
        record.action,
        record.outcome,
        " ".join(record.patients),
    ):
        data = part.encode()
        digest.update(b"%d:" % len(data) + data)
    digest.update(b"%d:" % len(record.event) + record.event)
    return digest.hexdigest()


class Savepoint(Protocol):
    def rollback(self) -> None:
        """Undo what ran since the savepoint and stay inside it (a rejected message is rolled
        back and then journalled in the same savepoint)."""
        ...


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

    def match_token(
        self, res_type: str, param: str, system: str, code: str, *, limit: int, tag: tuple[str, str] | None = None
    ) -> list[str]:
        """Ids of current resources with ``param=system|code`` (and, given ``tag``, that
        ``meta.tag``): the conditional create's common match, on a prebuilt statement."""
        ...

    def lock(self, key: str) -> None: ...

    def reader(self) -> Store:
        """The store's read methods inside this transaction, seeing its own writes."""
        ...

    def defer(self, action: Callable[[StoreTransaction], None]) -> None:
        """Run ``action`` inside the transaction once the writes put before it are applied: at
        once here, at :meth:`StagedWrites.apply` for a staged transaction. Hooks run through it,
        so they run exactly once, inside the transaction that commits the write."""
        ...

    def savepoint(self) -> AbstractContextManager[Savepoint]:
        """A nested transaction: an exception leaving the block undoes it and propagates."""
        ...

    def journal_find(self, adapter: str, control_id: str | None) -> JournalEntry | None:
        """The journalled message, seeing messages saved earlier in this transaction."""
        ...

    def journal_save(
        self,
        *,
        adapter: str,
        channel: str,
        control_id: str | None,
        raw: bytes,
        status: str,
        outcome: bytes | None,
        reply: bytes | None,
        previous: JournalEntry | None,
    ) -> int:
        """Journal a message with its outcome in this transaction (``previous``: a new attempt
        at a message already kept); returns its ``seq``. A first insert that collides with a
        concurrent copy raises :class:`DuplicateMessage`."""
        ...

    # -- audit trail ---------------------------------------------------------------------
    def audit_append(self, records: Sequence[AuditRecord]) -> None:
        """Append ``records`` to the audit chain in this transaction, in order: they commit
        with it, or are rolled back with it (or with the savepoint they were appended in).
        Appends are serialised (PostgreSQL: an advisory lock taken at the commit, the last lock
        of the transaction; SQLite: the writer lock), so the chain stays linear and ``seq``
        has no gaps."""
        ...


class StagedWrites(Protocol):
    """Work run against a read snapshot (see :meth:`Store.staging`), its writes recorded."""

    def holds(self, tx: StoreTransaction) -> bool:
        """Inside ``tx``, under the write lock: take the recorded locks and ask every recorded
        read again; True if every answer is what it was while staging."""
        ...

    def apply(self, tx: StoreTransaction) -> None:
        """Perform the recorded writes and deferred actions in ``tx``, in their order (after
        :meth:`holds` said True)."""
        ...


class StagingTransaction(StoreTransaction, StagedWrites, Protocol):
    """What :meth:`Store.staging` yields: used as a transaction, then held and applied."""


class Store(Protocol):
    dialect: str

    def create_schema(self) -> None: ...

    def transaction(self) -> AbstractContextManager[StoreTransaction]: ...

    def audit_commit(self, records: Sequence[AuditRecord], *, durable: bool) -> None:
        """Append audit records in a transaction of their own. ``durable`` False: the commit
        reaches the database (a crash of the gateway loses nothing) without waiting for its
        flush to disk, which the next durable commit, a checkpoint or (PostgreSQL) the WAL
        writer does within moments."""
        ...

    def audit_chain_spool(self, name: str, take: Callable[[int], tuple[Sequence[AuditRecord], int]]) -> int:
        """Chain what spool file ``name`` holds past its mark, in one transaction under the
        audit lock: ``take(mark)`` gives the records after byte ``mark`` and the byte they end
        at, which becomes the new mark. The lock is taken before the mark is read, so any
        number of chainers (threads, processes) may work on one spool: none chains a record
        twice. Returns the new mark."""
        ...

    def audit_spool_chained(self, name: str) -> int:
        """How many bytes of spool file ``name`` are chained already (0: none, or unknown)."""
        ...

    def audit_spool_forget(self, name: str) -> None:
        """The spool file ``name`` is gone: drop its mark."""
        ...

    def staging(self) -> AbstractContextManager[StagingTransaction]:
        """A transaction that takes no write lock: reads are answered from committed data and
        remembered, writes and deferred actions are only recorded (see :mod:`.staging`).
        Reads it cannot answer that way raise :class:`NotStaged`."""
        ...

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

    def drain_outbox(self, publish: Callable[[list[ChangeEvent]], None], batch: int) -> int:
        """Hand up to ``batch`` undelivered outbox events to ``publish`` in ``seq`` order and
        mark them delivered when it returns; the rows stay locked meanwhile, so relays in
        several processes share the work. An exception from ``publish`` leaves them pending."""
        ...

    # --- Subscriptions (issue 16): delegated to gateway.store.sql_subscriptions ------------

    def outbox_pending(
        self, limit: int, seqs: Sequence[int] | None = None, after: int | None = None
    ) -> list[ChangeEvent]:
        """Outbox rows not yet fanned out, in ``seq`` order (only ``seqs``, or only those with a
        ``seq`` above ``after``, when given); no lock."""
        ...

    def outbox_fan_out(self, plans: Sequence[FanOut], now: str) -> list[int]:
        """In one transaction, one fan-out at a time (an advisory lock on PostgreSQL, the write
        lock on SQLite): for each plan whose outbox row is still pending, start the
        subscriptions it names, append its deliveries (the next eventNumber of each
        subscription) and mark the row done. The row is done only once its deliveries are
        durable here (issue 12 point 9). Returns the seqs it marked (not those already done)."""
        ...

    def subscription_states(self) -> list[SubscriptionState]: ...

    def subscription_state(self, sub_id: str) -> SubscriptionState | None: ...

    def subscription_set_status(self, sub_id: str, status: str, error: str | None, sent: float | None) -> None: ...

    def deliveries_claim(
        self, owner: str, now: float, lease_seconds: float, limit: int, sub_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Lease up to ``limit`` subscriptions with a pending delivery (or the ``sub_ids`` named:
        a handshake or heartbeat) whose lease is free or ran out (``lease_until`` < now: a
        process killed mid-delivery loses it then; a back-off parks it there too)."""
        ...

    def deliveries_release(self, sub_id: str, owner: str, until: float = 0.0) -> None:
        """Give the lease up; ``until``: nobody may take it before then (the back-off)."""
        ...

    def deliveries_pending(self, sub_id: str, limit: int) -> list[Delivery]:
        """Pending deliveries of one subscription in eventNumber order."""
        ...

    def deliveries_record(
        self, sub_id: str, owner: str, outcomes: Sequence[DeliveryOutcome], now: float, lease_seconds: float = 30.0
    ) -> bool:
        """Record attempts if ``owner`` still holds the lease (False: it lost it, nothing saved)."""
        ...

    def deliveries_list(
        self, sub_id: str | None, status: str | None, limit: int, *, since: int = 0, until: int | None = None
    ) -> list[Delivery]: ...

    def deliveries_retry(self, sub_id: str | None, event_numbers: Sequence[int] | None, now: float) -> int:
        """Put dead deliveries back to pending, due now, with a fresh retry budget."""
        ...

    def deliveries_counts(self) -> dict[str, int]: ...

    def deliveries_prune(self, before: str) -> tuple[int, int]:
        """Forget delivered events and relayed outbox rows created before ``before`` (retention:
        both tables otherwise grow by a row per change for ever); dead letters stay. Returns the
        numbers of deliveries and outbox rows removed."""
        ...

    # --- end subscriptions ----------------------------------------------------------------

    def journal_find(self, adapter: str, control_id: str | None) -> JournalEntry | None: ...

    def journal_get(self, seq: int) -> JournalEntry | None: ...

    def journal_dead_letters(self, adapter: str | None, limit: int) -> list[JournalEntry]:
        """Rejected (and never finished) messages, oldest first: what ``yaolian replay`` re-runs."""
        ...

    def journal_counts(self) -> dict[str, int]: ...

    # --- Authentication (issue 11): clients, used assertion ids, server keys ------------------

    def client_add(self, client: ClientRecord) -> None:
        """Register a client; :class:`DuplicateClient` if its id is taken."""
        ...

    def client_get(self, client_id: str) -> ClientRecord | None: ...

    def clients_list(self) -> list[ClientRecord]:
        """Every client, revoked ones too, oldest first."""
        ...

    def client_revoke(self, client_id: str, when: str) -> bool:
        """Mark a client revoked at ``when``; False if there is no such (unrevoked) client."""
        ...

    def client_set_jwks(self, client_id: str, jwks: str) -> bool:
        """Replace a private_key_jwt client's JWKS (key rotation); False if no such client."""
        ...

    def jti_use(self, client_id: str, jti: str, expires: int) -> bool:
        """Record that ``client_id`` used assertion id ``jti`` (valid until the epoch second
        ``expires``): True the first time, False if it was seen before and has not expired.
        Expired entries are forgotten."""
        ...

    def server_key(self, name: str, make: Callable[[], str]) -> str:
        """The server secret called ``name``, created with ``make()`` on first use; every
        process sharing the database gets the same one (the first insert wins)."""
        ...

    # --- end authentication ---------------------------------------------------------------

    # -- audit trail ---------------------------------------------------------------------
    def audit_rows(self, after: int, limit: int) -> list[AuditRow]:
        """Up to ``limit`` records with ``seq > after``, in ``seq`` order (``yaolian audit verify``)."""
        ...

    def audit_anchor(self) -> AuditAnchor | None:
        """Where the remaining chain starts (None: never pruned, it starts at the genesis)."""
        ...

    def audit_search(self, criteria: AuditCriteria, *, count: int, offset: int) -> tuple[list[AuditRow], int]:
        """Records matching ``criteria``, newest first, and how many match."""
        ...

    def audit_prune(self, before: str) -> AuditAnchor | None:
        """Delete the records recorded before ``before`` (an instant) and move the anchor to the
        last of them, in one transaction; None when nothing was that old."""
        ...

    def dispose(self) -> None: ...
