"""One write path for REST, Bundles, ``$ingest`` and MLLP: prepare outside the lock, apply under it.

Every write is a piece of *work*: a function of a store transaction (a REST create, one batch
entry, a whole transaction Bundle, an adapter's Bundle). :meth:`WritePath.prepare` runs it
against a staging transaction (:meth:`gateway.store.base.Store.staging`): reads answered from
committed data and remembered, writes and the write hooks recorded. Validation, reference
rewriting, index extraction and rendering - most of a write's time - happen there, while other
writers hold the lock. :meth:`WritePath.apply`, inside the real transaction, asks the
remembered reads again; if every answer stands it applies the recorded steps (or raises the
error the work raised, which the same reads would raise again), otherwise it runs the work
again inside the transaction. Either way the write hooks run exactly once, inside the
transaction that commits the write, because they travel with the writes
(:meth:`~gateway.store.base.StoreTransaction.defer`).

A second run must not cost a second validation, nor hand out other ids: the ids a run handed
out (:func:`new_resource_id`) and the findings of each resource it validated
(:func:`remembered_findings`) are kept with the prepared work and handed out again. The
findings are keyed by the resource with the ids of its references left out: a second run
typically differs from the first only there (the patient an earlier message created is now
referenced instead of the one this message meant to create), and validation reads a
reference's type, never its id (``tests/service/test_write_path.py`` checks both).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from gateway.errors import FhirError, Issue
from gateway.store.base import NotStaged, StagedWrites, Store, StoreTransaction

log = logging.getLogger("yaolian.writes")

T = TypeVar("T")
Work = Callable[[StoreTransaction], T]


@dataclass
class _Memory:
    """What the runs of one piece of work share: ids handed out, findings of validations."""

    ids: list[str] = field(default_factory=list)
    findings: dict[bytes, list[Issue]] = field(default_factory=dict)
    next_id: int = 0

    @contextmanager
    def run(self) -> Iterator[None]:
        self.next_id = 0
        token = _MEMORY.set(self)
        try:
            yield
        finally:
            _MEMORY.reset(token)


_MEMORY: ContextVar[_Memory | None] = ContextVar("yaolian_write_memory", default=None)


def new_resource_id() -> str:
    """A server-assigned id; a second run of the same work gets the same ids in the same order."""
    memory = _MEMORY.get()
    if memory is None:
        return str(uuid.uuid4())
    if memory.next_id == len(memory.ids):
        memory.ids.append(str(uuid.uuid4()))
    memory.next_id += 1
    return memory.ids[memory.next_id - 1]


_REFERENCE_ID = re.compile(rb'("reference":"[A-Za-z]+/)[^"/]+"')


def findings_key(data: dict[str, Any]) -> bytes:
    """What validation depends on: the resource, with ``Type/id`` references cut to ``Type/``."""
    return _REFERENCE_ID.sub(rb'\1"', orjson.dumps(data))


def remembered_findings(data: dict[str, Any], validate: Callable[[dict[str, Any]], list[Issue]]) -> list[Issue]:
    """``validate(data)``, once per content for the runs of one piece of work (validation is
    a pure function of the resource, blind to the ids its references carry)."""
    memory = _MEMORY.get()
    if memory is None:
        return validate(data)
    try:
        key = findings_key(data)
    except TypeError:  # not plain JSON values: nothing to key on
        return validate(data)
    found = memory.findings.get(key)
    if found is None:
        found = memory.findings[key] = validate(data)
    return found


@dataclass
class PreparedWrite(Generic[T]):
    """Work run outside the lock: its recorded steps, and its result or its error."""

    work: Work[T]
    staged: StagedWrites | None = None  # None: it could not be staged
    result: T | None = None
    error: FhirError | None = None
    memory: _Memory = field(default_factory=_Memory)


class WritePath:
    def __init__(self, store: Store, *, stage: bool = True) -> None:
        """``stage`` off runs every piece of work inside its transaction (for comparison: the
        oracle test stores the same rows both ways)."""
        self.store = store
        self.stage = stage

    def prepare(self, work: Work[T]) -> PreparedWrite[T]:
        prepared: PreparedWrite[T] = PreparedWrite(work)
        if not self.stage:
            return prepared
        with prepared.memory.run(), self.store.staging() as staged:
            try:
                prepared.result = work(staged)
            except NotStaged:
                return prepared
            except FhirError as exc:  # the verdict of these reads; apply checks they still hold
                prepared.error = exc
            except Exception:  # a bug: the run inside the transaction meets it and answers for it
                log.debug("staging failed", exc_info=True)
                return prepared
            prepared.staged = staged
        return prepared

    def apply(self, prepared: PreparedWrite[T], tx: StoreTransaction) -> T:
        """Inside ``tx`` (under the write lock): the staged steps if the reads they depend on
        still hold, else the work run again in ``tx``."""
        staged = prepared.staged
        if staged is not None and staged.holds(tx):
            if prepared.error is not None:
                raise prepared.error
            staged.apply(tx)
            return prepared.result  # type: ignore[return-value]
        with prepared.memory.run():
            return prepared.work(tx)

    def run(self, work: Work[T]) -> T:
        """Prepare, then apply in a transaction of its own."""
        prepared = self.prepare(work)
        with self.store.transaction() as tx:
            return self.apply(prepared, tx)
