"""The one place that loads settings.

Every option of `yaolian serve` also comes from a `YAOLIAN_*` environment variable so that a
container, a systemd unit or CI configures the gateway without editing files.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
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


@cache
def get_settings() -> Settings:
    return Settings()
