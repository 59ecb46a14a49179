"""The one place that loads settings.

Every option of `yaolian serve` also comes from a `YAOLIAN_*` environment variable so that a
container, a systemd unit or CI configures the gateway without editing files.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("var")


def default_database_url() -> str:
    """An embedded SQLite file beside the working directory: zero set-up for a newcomer."""
    return f"sqlite:///{DEFAULT_DATA_DIR / 'yaolian.sqlite'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YAOLIAN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    database: str = Field(default_factory=default_database_url)
    redis: str | None = None
    base_url: str | None = Field(
        default=None,
        description="Public FHIR base (e.g. https://gw.example/fhir); derived from the request if unset.",
    )
    default_count: int = 20
    max_count: int = 1000
    search_handling: Literal["strict", "lenient"] = "lenient"
    validation_mode: Literal["strict", "lenient", "off"] = "lenient"
    demo: bool = False
    mllp_port: int | None = None
    # MLLP senders bound to members (gateway.security.senders)
    mllp_senders: str | None = Field(default=None, description='"CODE=IP[,CIDR];CODE=..."')
    mllp_tls_cert: str | None = None
    mllp_tls_key: str | None = None
    mllp_client_ca: str | None = None
    require_services: bool = False
    # --- Authentication (issue 11, docs/security.md) ---
    insecure_dev: bool = Field(
        default=False,
        description="Authentication and access control OFF (every call runs as an admin); development only. "
        "--demo implies it.",
    )
    rate_limit_per_second: float = Field(default=50.0, gt=0, description="Requests per second per client.")
    rate_limit_burst: int = Field(default=100, ge=1, description="Requests a client may make at once.")

    @model_validator(mode="after")
    def _demo_is_insecure(self) -> Settings:
        """The demo answers without tokens (``pip install . && yaolian serve --demo``)."""
        if self.demo:
            self.insecure_dev = True
        return self

    audit: bool = Field(
        default=True,
        description="Record an AuditEvent for every read, search, write, operation and MLLP message (off: benchmarks).",
    )
    audit_read_durability: Literal["commit", "fsync"] = Field(
        default="commit",
        description="Records of reads: committed before the response (a gateway crash loses none; flushed to disk "
        "with the next durable commit, a checkpoint or PostgreSQL's WAL writer), or also fsync'd ('fsync').",
    )
    audit_spool_dir: Path | None = Field(
        default=None,
        description="Where read records are spooled before they are chained (durability 'commit'); default: beside "
        "the SQLite file, or var/audit-spool. Keep it on a local disk of the gateway's machine.",
    )
    audit_chainer: Literal["process", "thread"] = Field(
        default="process",
        description="Who chains spooled read records into the audit table: a chainer process beside the gateway "
        "(its CPU is not the gateway's) or a thread of the gateway.",
    )
    audit_retention_days: int = Field(default=183, description="`yaolian audit prune` keeps at least this many days.")

    # -- Limits (issue 12): no single message, query or connection can stall the gateway.
    # Each is documented in docs/deployment.md "## Limits"; each refusal names its setting.
    max_body_bytes: int = 10 * 1024 * 1024  # HTTP request body (413)
    max_bundle_entries: int = 1000  # entries of a batch/transaction Bundle
    max_search_params: int = 30  # search criteria per request, after de-duplication
    max_search_values: int = 200  # values (ORs included) over all criteria of a request
    max_includes: int = 10  # _include + _revinclude values per request
    max_include_depth: int = 4  # rounds of _include:iterate
    max_included: int = 1000  # resources _include/_revinclude add to one page (fan-out)
    statement_timeout_ms: int = 10_000  # one search/history/include query (400 when over)
    mllp_max_frame: int = 1024 * 1024  # bytes of one MLLP frame (AR when over)
    max_findings_per_code: int = 20  # findings kept per code of one ingested message (+ a count)
    mllp_convert_timeout: float = 10.0  # seconds to convert one message (AR when over)
    mllp_idle_timeout: float = 60.0  # seconds a connection may stay silent or mid-frame
    mllp_max_connections: int = 256  # open MLLP connections per listener
    mllp_max_connections_per_address: int = 32  # open MLLP connections per sender address
    # -- Federation (issue 13): live members asked in parallel with the gateway's own store.
    federation_timeout: float = Field(default=2.0, gt=0, description="Seconds a live member has to answer.")
    federation_breaker_failures: int = Field(default=3, ge=1, description="Failures in a row that open a breaker.")
    federation_breaker_reset: float = Field(default=30.0, gt=0, description="Seconds a member's breaker stays open.")
    federation_cache_seconds: float = Field(default=30.0, ge=0, description="Seconds a live answer is reused (0: off).")
    federation_max_per_member: int = Field(default=500, ge=1, description="Records taken from one member per query.")
    match_threshold: float = Field(default=0.8, ge=0, le=1, description="$match score below which no match is certain.")
    federation_views: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Database connections of view members (Endpoint kind sql-view, address yaolian-sqlview:NAME): "
        'NAME -> SQLAlchemy URL, JSON in YAOLIAN_FEDERATION_VIEWS, e.g. {"ljx-his": '
        '"postgresql+psycopg://reader:pw@10.1.2.3/his"}. Kept here, never in a resource: Endpoints are readable.',
    )

    # -- Subscriptions and deliveries (issue 16, docs/subscriptions.md)
    subscriptions: bool = Field(default=True, description="Run the subscription dispatcher in this process.")
    delivery_retry_hours: float = Field(
        default=24.0,
        gt=0,
        description="How long an event is retried (exponential back-off) before it is a dead letter.",
    )
    delivery_backoff_seconds: float = Field(default=2.0, gt=0, description="First retry delay; doubles per attempt.")
    delivery_backoff_max_seconds: float = Field(default=600.0, gt=0, description="Longest delay between two attempts.")
    delivery_lease_seconds: float = Field(
        default=60.0, gt=0, description="A process delivering a subscription's events holds it this long (renewed)."
    )
    delivery_workers: int = Field(default=4, ge=1, description="Subscriptions delivered at once by this process.")
    delivery_timeout_seconds: float = Field(default=10.0, gt=0, description="Default wait for a receiver's answer.")
    delivery_poll_seconds: float = Field(default=1.0, gt=0, description="Look for due retries this often.")
    insurance_review_pharmacist: str | None = Field(
        default=None,
        description="Practitioner id of the alliance's responsible pharmacist, named as the reviewing pharmacist "
        "(审方药师) in the insurance upload (7103) of a prescription the central review passed without one (POL-18).",
    )
    events_stream: str = Field(default="yaolian:events", description="Redis mode: the stream key of outbox events.")
    outbox_republish_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Redis mode: an outbox row not acknowledged this long after publishing is sent again.",
    )
    allowed_hosts: list[str] = Field(
        default=["localhost", "127.0.0.1", "[::1]", "testserver"],
        description="Host headers accepted when base_url is unset (JSON list in YAOLIAN_ALLOWED_HOSTS).",
    )
    # -- Supply chain (issue 15, gateway.alliance.supply)
    supply_expiry_window_days: int = Field(
        default=90, ge=0, description="Batches expiring within this many days are flagged."
    )
    supply_alerts_on_write: bool = Field(
        default=True, description="Evaluate stock alerts after every committed InventoryReport write."
    )
    supply_shortage_threshold: int = Field(
        default=3, ge=1, description="Shortage registrations of one drug in a year above this propose it for linkage."
    )

    # -- Formulary and prescription review (issue 14, docs/formulary.md)
    review_on_write: Literal["off", "warn", "block"] = Field(
        default="off",
        description="Pre-review every MedicationRequest written: 'block' refuses one with a high-severity "
        "finding (422), 'warn' stores it with the result in its review extension.",
    )
    review_rules: str | None = Field(
        default=None, description="Folder of the review rule set (default: profiles/rules/review)."
    )
    formulary_variety_average: float | None = Field(
        default=None,
        description="Provincial average variety count of township lists (else the known townships').",
    )
    formulary_alliance_essential_min: int | None = Field(
        default=None,
        description="Essential-medicine varieties the alliance sets for itself as a whole (POL-21).",
    )
    formulary_low_use_max: int = Field(
        default=2, description="Prescriptions a year at or below which a listed drug with a substitute is little used."
    )
    formulary_adjust_days: int = Field(default=365, description="Longest time between two adjustments of a list.")


def audit_spool_directory(settings: Settings) -> Path | None:
    """The audit spool of ``settings`` (None: an in-memory database, which a spool would outlive).

    One folder per database: whoever chains a spool chains it into the database it has open,
    so gateways of two databases (two PostgreSQL schemas, a test and production) must never
    share one. Under ``audit_spool_dir`` (default ``var/audit-spool``) each database gets a
    folder named by a hash of its URL; a SQLite file's spool sits beside it."""
    if settings.audit_spool_dir is not None:
        return settings.audit_spool_dir / _database_key(settings.database)
    if settings.database.startswith("sqlite"):
        path = settings.database.split("///", 1)[1] if "///" in settings.database else ""
        path = path.split("?", 1)[0]
        if not path or path == ":memory:" or "mode=memory" in settings.database:
            return None
        return Path(path + ".audit-spool")
    return DEFAULT_DATA_DIR / "audit-spool" / _database_key(settings.database)


def _database_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@cache
def get_settings() -> Settings:
    return Settings()
