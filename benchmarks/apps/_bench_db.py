"""The comparison apps' access to the gateway's own tables (same database, same rows).

``BENCH_DATABASE`` is ``sqlite:///FILE`` or a libpq URL; ``BENCH_SCHEMA`` the PostgreSQL schema.
One connection per thread (the apps run blocking calls in the thread pool, like the gateway).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

READ = "SELECT body FROM resources WHERE res_type = ? AND res_id = ? AND NOT deleted"
# the gateway's patient search: idx_reference rows of param 'patient', ordered by id, first page
SEARCH = (
    "SELECT r.body FROM idx_reference x JOIN resources r ON r.res_type = x.res_type AND r.res_id = x.res_id "
    "WHERE x.res_type = ? AND x.param = 'patient' AND x.target_type = 'Patient' AND x.target_id = ? "
    "AND x.grp IS NULL AND NOT r.deleted ORDER BY r.res_id LIMIT ?"
)
INSERT = "INSERT INTO resources (res_type, res_id, version, last_updated, deleted, body) VALUES (?, ?, 1, ?, false, ?)"


class Database:
    def __init__(self) -> None:
        self.url = os.environ["BENCH_DATABASE"]
        self.schema = os.environ.get("BENCH_SCHEMA")
        self.postgres = self.url.startswith("postgres")
        self._local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.postgres:
                import psycopg

                options = f"-c search_path={self.schema}" if self.schema else ""
                conn = psycopg.connect(self.url, autocommit=True, options=options)
            else:
                conn = sqlite3.connect(self.url.split("///", 1)[1], check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def read(self, res_type: str, res_id: str) -> bytes | None:
        row = self._conn().execute(self._sql(READ), (res_type, res_id)).fetchone()
        return bytes(row[0]) if row else None

    def search_patient(self, res_type: str, patient_id: str, count: int = 20) -> list[bytes]:
        rows = self._conn().execute(self._sql(SEARCH), (res_type, patient_id, count)).fetchall()
        return [bytes(r[0]) for r in rows]

    def insert(self, res_type: str, res_id: str, last_updated: str, body: bytes) -> None:
        self._conn().execute(self._sql(INSERT), (res_type, res_id, last_updated, body))
