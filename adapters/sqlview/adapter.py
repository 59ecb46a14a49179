"""The database-view adapter: a member HIS's read-only views, asked live for a patient's
prescriptions and dispenses (POL-08), one row mapped to a MedicationRequest (or a
MedicationDispense) and its Medication.

Two doors, one mapping:

- :meth:`SqlViewAdapter.to_fhir` converts one row given as a JSON object (what golden tests and
  ``yaolian adapters convert`` feed it) into a transaction Bundle, like every adapter;
- :meth:`SqlViewAdapter.query` reads the rows of a patient (or of one prescription number)
  from the view with SQLAlchemy Core and maps each the same way, returning plain resources
  (references as ``Medication/id``) for the federation to merge.

Rows are read with bound parameters only; the view and column names come from the mapping
file, checked as identifiers when it loads and quoted. Each query runs in its own read-only
transaction under a statement timeout where the database has one (PostgreSQL
``statement_timeout`` set locally; SQLite a progress handler that interrupts the statement)
and is always rolled back. Engines are pooled per URL and kept for the adapter's life.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine, Select, column, create_engine, literal_column, select, table, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnClause, quoted_name

from adapters.bundle import transaction_bundle
from adapters.contract import AdapterDescriptor, ConversionResult, Issue, QueryResult
from adapters.errors import AdapterLookupError, ConversionError, NotWritableError, SourceQueryError
from adapters.mapping.engine import Mapping, load_mapping
from adapters.mapping.record import RecordPathSyntax, RecordTree
from adapters.sqlview.view import MAPPING_NAME, ViewSpec, load_view

__all__ = ["VOLATILE_PATHS", "SqlViewAdapter", "row_record"]

#: Bundle paths that differ between two conversions of the same row (golden tests drop them).
VOLATILE_PATHS = ("timestamp",)
#: Seconds a PostgreSQL connection attempt may take (libpq's minimum is 2).
CONNECT_TIMEOUT = 2
#: SQLite: the progress handler runs every this many virtual-machine instructions.
_SQLITE_PROGRESS_STEPS = 1000


def _mapping_dir() -> Path:
    import mappings

    return Path(mappings.__file__).parent / "sqlview"


@dataclass(frozen=True, slots=True)
class _Dialect:
    """One mapping file, loaded: the view it reads and the rules that map a row."""

    view: ViewSpec
    mapping: Mapping


def row_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the JSON object :meth:`SqlViewAdapter.to_fhir` reads: dates and times as
    ``YYYY-MM-DD[ HH:MM:SS]`` text (no zone: the HIS's local time, read as +08:00 by the
    ``datetime`` transform, or the zone the database gave), decimals as plain numbers in text,
    NULL left out. What a query maps is exactly what a golden file would."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        key = str.__str__(name)  # a plain str: column labels come back as quoted_name
        if value is None:
            continue
        if isinstance(value, datetime):
            out[key] = value.isoformat(sep=" ")
        elif isinstance(value, date):
            out[key] = value.isoformat()
        elif isinstance(value, Decimal):
            out[key] = format(value.normalize(), "f")
        elif isinstance(value, bytes | bytearray | memoryview):
            continue  # a binary column has no text to map
        elif isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def _rewrite_references(node: Any, local: dict[str, str]) -> None:
    """``urn:uuid:`` references to resources of the same row become ``Type/id``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in local:
                node[key] = local[value]
            else:
                _rewrite_references(value, local)
    elif isinstance(node, list):
        for item in node:
            _rewrite_references(item, local)


class SqlViewAdapter:
    """A member HIS's read-only database views (mappings: ``mappings/sqlview/<dialect>.yaml``)."""

    descriptor = AdapterDescriptor(
        name="sqlview",
        version="0.1.0",
        media_types=("application/json",),
        description="Prescriptions and dispenses in a HIS's read-only database views (one row per drug line) "
        "-> FHIR R5; asked live by the federation (POL-08)",
        message_types=("MedicationRequest", "MedicationDispense"),
    )

    def __init__(self, mapping_dir: Path | None = None, default_mapping: str = "generic-his") -> None:
        self.mapping_dir = mapping_dir or _mapping_dir()
        self.default_mapping = default_mapping
        self._dialects: dict[str, _Dialect] = {}
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ mappings
    def dialect(self, name: str) -> _Dialect:
        """The mapping ``name`` (a file of :attr:`mapping_dir`), loaded once and checked."""
        found = self._dialects.get(name)
        if found is not None:
            return found
        file = self.mapping_dir / f"{name}.yaml"
        if not MAPPING_NAME.match(name) or not file.is_file():
            known = ", ".join(sorted(p.stem for p in self.mapping_dir.glob("*.yaml")))
            raise AdapterLookupError(
                f"no database-view mapping {name!r}; known: {known}",
                message_zh=f"未找到数据库视图映射 {name!r}",
            )
        loaded = _Dialect(load_view(file), load_mapping(file, RecordPathSyntax()))
        with self._lock:
            self._dialects.setdefault(name, loaded)
        return self._dialects[name]

    def family(self, name: str) -> list[_Dialect]:
        """The mapping ``name`` and the dispense mapping its view names (asked together)."""
        first = self.dialect(name)
        found = [first]
        if first.view.dispenses:
            linked = self.dialect(first.view.dispenses)
            if linked.view.records != "MedicationDispense":
                raise AdapterLookupError(
                    f"view.dispenses of {name!r} names {first.view.dispenses!r}, whose records are "
                    f"{linked.view.records}, not MedicationDispense",
                    message_zh=f"映射 {name!r} 的 view.dispenses 指向的不是发药视图映射",
                )
            found.append(linked)
        return found

    def mappings(self) -> list[str]:
        """The dialects shipped (the mapping files' names)."""
        return sorted(p.stem for p in self.mapping_dir.glob("*.yaml"))

    # ------------------------------------------------------------------ the contract
    def to_fhir(self, raw: bytes, mapping: str | None = None) -> ConversionResult:
        """One row (a JSON object, column -> value) as a transaction Bundle."""
        dialect = self.dialect(mapping or self.default_mapping)
        tree = RecordTree.from_json(raw)
        entries, issues = dialect.mapping.run(tree)
        if any(i.severity in ("fatal", "error") for i in issues):
            raise ConversionError("row cannot be converted", issues)
        bundle = transaction_bundle(f"sqlview|{tree.message_key()}", entries)
        return ConversionResult(bundle, issues)

    def from_fhir(self, resource: dict[str, Any]) -> bytes:
        raise NotWritableError("a database view is read-only", message_zh="数据库视图只读")

    # ------------------------------------------------------------------ rows -> resources
    def _map(self, dialect: _Dialect, rows: Sequence[dict[str, Any]]) -> QueryResult:
        view = dialect.view
        result = QueryResult()
        seen: set[tuple[str, str]] = set()
        for n, row in enumerate(rows):
            record = row_record(row)
            number = str(record.get(view.prescription.column, "")) or f"#{n + 1}"
            tree = RecordTree(record, hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest())
            try:
                entries, issues = dialect.mapping.run(tree)
            except (ValueError, TypeError, KeyError, ArithmeticError, AttributeError) as exc:
                entries, issues = [], [Issue("error", "exception", en=f"mapping failed: {type(exc).__name__}")]
            errors = [i for i in issues if i.severity in ("fatal", "error")]
            if errors:
                result.issues.append(self._left_out(view, number, errors[0]))
                continue
            local = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries}
            for entry in entries:
                resource = entry["resource"]
                _rewrite_references(resource, local)
                key = (resource["resourceType"], resource["id"])
                if resource["resourceType"] == view.records:
                    result.matches.append(resource)
                elif key not in seen:  # one Medication named by several lines is included once
                    seen.add(key)
                    result.included.append(resource)
        return result

    @staticmethod
    def _left_out(view: ViewSpec, number: str, error: Issue) -> Issue:
        column = error.where or "?"
        return Issue(
            "warning",
            "processing",
            en=f"row of prescription {number} in {view.qualified_name} left out: column {column}: {error.en}",
            zh=f"视图 {view.qualified_name} 中处方 {number} 的一行未能映射，已忽略：列 {column}：{error.zh}",
            expression=(f"{view.qualified_name}.{column}",),
            error_code="YL-2309",
        )

    # ------------------------------------------------------------------ asking the view
    def query(
        self,
        source: str,
        mapping: str,
        *,
        identifier: str,
        types: Sequence[str],
        most: int,
        criterion: Literal["patient", "prescription"] = "patient",
        timeout: float | None = None,
    ) -> QueryResult:
        """The records of the patient ``identifier`` (``SYSTEM|VALUE``; ``criterion``
        ``prescription``: of that prescription number) from the view of ``mapping`` and the
        dispense view it names, those of ``types``: at most ``most`` rows of each, newest first
        when the view names a date column, all in one read-only transaction. An identifier of
        another system than the view's column holds finds nothing (an empty result, no error)."""
        system, _, value = identifier.rpartition("|")
        asked = []
        for dialect in self.family(mapping):
            view = dialect.view
            key = view.patient if criterion == "patient" else view.prescription
            if view.records in types and value and (not system or system == key.system) and most >= 1:
                asked.append((dialect, _statement(view, key.column, value, most)))
        result = QueryResult()
        if not asked:
            return result
        with self._read_only(source, timeout) as connection:
            rows = [[dict(r) for r in connection.execute(statement).mappings()] for _, statement in asked]
        seen: set[str] = set()
        for (dialect, _), found in zip(asked, rows, strict=True):
            part = self._map(dialect, found)
            result.matches += part.matches
            for resource in part.included:  # a drug on a line and on its dispense: one Medication
                if resource["id"] not in seen:
                    seen.add(resource["id"])
                    result.included.append(resource)
            result.issues += part.issues
        return result

    def check(self, source: str, mapping: str, *, timeout: float | None = None) -> None:
        """``SELECT 1`` over the member's connection (``yaolian members check``); the mappings
        are loaded too, so a member registered with a mapping that does not exist shows."""
        self.family(mapping)
        with self._read_only(source, timeout) as connection:
            connection.execute(select(literal_column("1"))).all()

    def close(self) -> None:
        """Every pooled connection closed (the gateway's shutdown, tests)."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.dispose()

    def _engine(self, url: str) -> Engine:
        engine = self._engines.get(url)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                try:
                    engine = self._new_engine(url)
                except (SQLAlchemyError, ValueError, ImportError) as exc:
                    raise SourceQueryError(
                        f"the connection string is not usable ({type(exc).__name__})",
                        message_zh="数据库连接串不可用",
                    ) from None
                self._engines[url] = engine
        return engine

    @staticmethod
    def _new_engine(url: str) -> Engine:
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            options.update(
                connect_args={"connect_timeout": CONNECT_TIMEOUT},
                pool_size=4,
                max_overflow=4,
                pool_timeout=CONNECT_TIMEOUT,
            )
        return create_engine(url, **options)

    @contextmanager
    def _read_only(self, source: str, timeout: float | None) -> Iterator[Connection]:
        """A connection in a read-only transaction bounded by ``timeout``, rolled back after."""
        engine = self._engine(source)
        try:
            with engine.connect() as connection:
                backend = engine.dialect.name
                if backend == "postgresql":
                    connection.execute(text("SET TRANSACTION READ ONLY"))
                    if timeout is not None:
                        ms = str(max(1, int(timeout * 1000)))
                        connection.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": ms})
                    yield connection
                elif backend == "sqlite":
                    with _sqlite_guard(connection, timeout):
                        yield connection
                else:
                    yield connection
                connection.rollback()
        except DBAPIError as exc:
            raise _query_error(exc) from None
        except SQLAlchemyError as exc:
            raise SourceQueryError(
                f"the database could not be asked ({type(exc).__name__})", message_zh="无法查询数据库"
            ) from None


@contextmanager
def _sqlite_guard(connection: Connection, timeout: float | None) -> Iterator[None]:
    """SQLite: ``query_only`` (no writes through this connection) and, with ``timeout``, a
    progress handler that interrupts a statement running past it."""
    raw: Any = connection.connection.driver_connection
    connection.exec_driver_sql("PRAGMA query_only = ON")
    handler: Callable[[], int] | None = None
    if timeout is not None:
        deadline = time.monotonic() + timeout

        def handler() -> int:
            return 1 if time.monotonic() > deadline else 0

        raw.set_progress_handler(handler, _SQLITE_PROGRESS_STEPS)
    try:
        yield
    finally:
        if handler is not None:
            raw.set_progress_handler(None, _SQLITE_PROGRESS_STEPS)
        connection.exec_driver_sql("PRAGMA query_only = OFF")


def _query_error(exc: DBAPIError) -> SourceQueryError:
    """The driver's failure in words that name no host, user or password: the exception's
    type and, for a timeout, that it was one."""
    original = exc.orig
    kind = type(original).__name__ if original is not None else type(exc).__name__
    said = str(original or "").lower()
    if kind == "QueryCanceled" or "statement timeout" in said or "interrupted" in said:
        return SourceQueryError("the query ran past its time limit", timed_out=True, message_zh="查询超时")
    if "no such" in said:  # SQLite names a missing view or column this way (an OperationalError)
        return SourceQueryError(f"the database refused the query ({kind})", message_zh="数据库拒绝了查询")
    if exc.connection_invalidated or kind in ("OperationalError", "ConnectionTimeout", "ConnectionFailure"):
        return SourceQueryError(f"the database could not be reached ({kind})", message_zh="无法连接数据库")
    return SourceQueryError(f"the database refused the query ({kind})", message_zh="数据库拒绝了查询")


def _statement(view: ViewSpec, key: str, value: str, most: int) -> Select[Any]:
    """``SELECT <columns> FROM <view> WHERE <key> = :value [ORDER BY <date> DESC] LIMIT :most``,
    every name quoted as the mapping writes it, the value a bound parameter."""
    columns: list[ColumnClause[Any]] = [column(quoted_name(c, quote=True)) for c in view.columns]
    source = table(
        quoted_name(view.name, quote=True),
        *columns,
        schema=quoted_name(view.schema, quote=True) if view.schema else None,
    )
    by_name = {c.name: c for c in columns}
    statement = select(*columns).select_from(source).where(by_name[key] == value).limit(most)
    if view.newest_first:
        statement = statement.order_by(by_name[view.newest_first].desc())
    return statement
