"""Tables of the store, one schema for SQLite and PostgreSQL.

``resources`` holds the current version of each resource (the client's JSON bytes plus our
id/meta), ``resource_history`` every version (system-wide order by ``seq``), the ``idx_*``
tables the search index filled at write time, and ``outbox`` the events written in the same
transaction as the change they describe (delivered later by the events service).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

metadata = MetaData()
_BIGINT_PK = BigInteger().with_variant(Integer(), "sqlite")

resources = Table(
    "resources",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(32), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("body", LargeBinary, nullable=True),
    Index("ix_resources_type_updated", "res_type", "last_updated"),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("seq", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(32), nullable=False),
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("body", LargeBinary, nullable=True),
    Index("ux_history_version", "res_type", "res_id", "version", unique=True),
    Index("ix_history_type_seq", "res_type", "seq"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("created", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("delivered", Boolean, nullable=False, default=False),
    Index("ix_outbox_pending", "delivered", "seq"),
)


def _index_table(name: str, *columns: Column[Any], extra: tuple[Index, ...] = ()) -> Table:
    return Table(
        f"idx_{name}",
        metadata,
        Column("res_type", String(64), nullable=False),
        Column("res_id", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        *columns,
        Column("grp", Integer, nullable=True),
        Index(f"ix_idx_{name}_owner", "res_type", "res_id"),
        *extra,
    )


idx_token = _index_table(
    "token",
    Column("system", String(512), nullable=True),
    Column("code", String(512), nullable=True),
    Column("text", String(512), nullable=True),
    extra=(Index("ix_idx_token_lookup", "res_type", "param", "code", "system"),),
)
idx_string = _index_table(
    "string",
    Column("norm", String(512), nullable=False),
    Column("exact", String(512), nullable=False),
    extra=(Index("ix_idx_string_lookup", "res_type", "param", "norm"),),
)
idx_date = _index_table(
    "date",
    Column("low", String(26), nullable=False),
    Column("high", String(26), nullable=False),
    extra=(
        Index("ix_idx_date_low", "res_type", "param", "low"),
        Index("ix_idx_date_high", "res_type", "param", "high"),
    ),
)
idx_reference = _index_table(
    "reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(1024), nullable=True),
    Column("ident_system", String(512), nullable=True),
    Column("ident_value", String(512), nullable=True),
    extra=(
        Index("ix_idx_reference_target", "res_type", "param", "target_id", "target_type"),
        Index("ix_idx_reference_rev", "target_type", "target_id"),
    ),
)
idx_number = _index_table(
    "number",
    Column("low", Numeric(38, 12), nullable=False),
    Column("high", Numeric(38, 12), nullable=False),
    extra=(Index("ix_idx_number_lookup", "res_type", "param", "low"),),
)
idx_quantity = _index_table(
    "quantity",
    Column("system", String(512), nullable=True),
    Column("code", String(128), nullable=True),
    Column("value", Numeric(38, 12), nullable=False),
    Column("low", Numeric(38, 12), nullable=False),
    Column("high", Numeric(38, 12), nullable=False),
    extra=(Index("ix_idx_quantity_lookup", "res_type", "param", "code", "value"),),
)
idx_uri = _index_table(
    "uri",
    Column("uri", String(1024), nullable=False),
    extra=(Index("ix_idx_uri_lookup", "res_type", "param", "uri"),),
)

INDEX_TABLES: dict[str, Table] = {
    "token": idx_token,
    "string": idx_string,
    "date": idx_date,
    "reference": idx_reference,
    "number": idx_number,
    "quantity": idx_quantity,
    "uri": idx_uri,
}

INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    "token": ("param", "system", "code", "text", "grp"),
    "string": ("param", "norm", "exact", "grp"),
    "date": ("param", "low", "high", "grp"),
    "reference": ("param", "target_type", "target_id", "url", "ident_system", "ident_value", "grp"),
    "number": ("param", "low", "high", "grp"),
    "quantity": ("param", "system", "code", "value", "low", "high", "grp"),
    "uri": ("param", "uri", "grp"),
}

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_TABLES",
    "Text",
    "metadata",
    "outbox",
    "resource_history",
    "resources",
]

ingest_messages = Table(
    "ingest_messages",
    metadata,
    Column("seq", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("adapter", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("control_id", String(128), nullable=True),
    Column("received", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("outcome", LargeBinary, nullable=True),
    Column("reply", LargeBinary, nullable=True),
    Column("attempts", Integer, nullable=False, default=1),
    Index("ux_ingest_control", "adapter", "control_id", unique=True),
    Index("ix_ingest_status", "status", "seq"),
)


# --- Authentication (issue 11): registered clients, used assertion ids, server keys ---------

auth_clients = Table(
    "auth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("member", String(64), nullable=True),
    Column("scopes", Text, nullable=False),
    Column("auth_kind", String(32), nullable=False),
    Column("jwks", Text, nullable=True),
    Column("secret_hash", String(512), nullable=True),
    Column("created", String(32), nullable=False),
    Column("revoked", String(32), nullable=True),
)

#: Assertion ids (``jti``) already used, kept until their assertion expires (replay refused).
auth_jti = Table(
    "auth_jti",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires", BigInteger, nullable=False),
    Index("ix_auth_jti_expires", "expires"),
)

#: Server secrets shared by every gateway process (the access-token signing key).
auth_keys = Table(
    "auth_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created", String(32), nullable=False),
)

# --- end authentication ---------------------------------------------------------------------

# The audit trail (gateway/security/audit.py): append-only, hash-chained. ``seq`` is handed out
# by the appender under its lock (last + 1), never by a sequence, so a gap always means a
# deleted record (a rolled-back transaction burns no number). ``audit_patient`` indexes the
# patients of each record for auditors' searches; ``audit_anchor`` (one row) is where the chain
# starts after pruning.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded", String(32), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("member", String(64), nullable=True),
    Column("action", String(32), nullable=False),
    Column("outcome", String(4), nullable=False),
    Column("patients", Text, nullable=False),
    Column("event", LargeBinary, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_recorded", "recorded"),
    Index("ix_audit_client", "client_id", "recorded"),
)

audit_patient = Table(
    "audit_patient",
    metadata,
    Column("seq", BigInteger, nullable=False),
    Column("patient", String(64), nullable=False),
    Index("ix_audit_patient", "patient", "seq"),
    Index("ix_audit_patient_seq", "seq"),
)

# How far each audit spool file (gateway/security/audit_spool.py) has been chained into
# ``audit_log``: moved in the same transaction as the records it covers, so a crash between the
# commit and the file's removal never chains a record twice.
audit_spool = Table(
    "audit_spool",
    metadata,
    Column("name", String(200), primary_key=True, autoincrement=False),
    Column("chained", BigInteger, nullable=False),
)

audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("pruned_at", String(32), nullable=False),
    Column("pruned", BigInteger, nullable=False),
)

# --- Subscriptions (issue 16, gateway/events): per-subscription state and its deliveries -------
# ``sub_state`` holds what a Subscription resource does not: the last eventNumber handed out
# (``events``, numbers are consecutive per subscription), the outbox seq it started after, the
# delivery lease one gateway process holds on it (so two processes never deliver its events at
# once) and its runtime status. ``sub_deliveries`` is one row per (subscription, event): the
# durable delivery state the outbox row is marked done for (issue 12 point 9).
sub_state = Table(
    "sub_state",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("topic", String(512), nullable=False),
    Column("start_seq", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False, default=0),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float(53), nullable=False, default=0),
    Column("last_sent", Float(53), nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)

sub_deliveries = Table(
    "sub_deliveries",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("event_number", BigInteger, primary_key=True, autoincrement=False),
    Column("outbox_seq", BigInteger, nullable=False),
    Column("created", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", Float(53), nullable=False, default=0),
    Column("first_failure", Float(53), nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_sub_deliveries_due", "status", "next_attempt"),
    Index("ux_sub_deliveries_outbox", "sub_id", "outbox_seq", unique=True),
)
