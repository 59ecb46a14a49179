"""Rebuild the search index from the stored resources.

Needed when search parameter definitions change (a new alliance SearchParameter in
``profiles/``, a fix in how values are indexed): writes index with the definitions of their
time, so existing resources are re-extracted here, in batches, each batch one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from sqlalchemy import false, func, select

from gateway.search.extract import extract
from gateway.store.schema import resources
from gateway.store.sql import SqlStore


def current_count(store: SqlStore, resource_type: str | None = None) -> int:
    """How many resources :func:`reindex` will visit (for its progress bar)."""
    stmt = select(func.count()).select_from(resources).where(resources.c.deleted == false())
    if resource_type:
        stmt = stmt.where(resources.c.res_type == resource_type)
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def reindex(
    store: SqlStore,
    resource_type: str | None = None,
    *,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-extract the index rows of every current (not deleted) resource; returns how many."""
    done = 0
    after = ("", "")
    while True:
        stmt = (
            select(resources.c.res_type, resources.c.res_id, resources.c.body)
            .where(resources.c.deleted == false(), resources.c.body.is_not(None))
            .where(
                (resources.c.res_type > after[0])
                | ((resources.c.res_type == after[0]) & (resources.c.res_id > after[1]))
            )
            .order_by(resources.c.res_type, resources.c.res_id)
            .limit(batch)
        )
        if resource_type:
            stmt = stmt.where(resources.c.res_type == resource_type)
        with store.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return done
        with store.transaction() as tx:
            for res_type, res_id, body in rows:
                tx.replace_index(res_type, res_id, extract(orjson.loads(body)))
        done += len(rows)
        after = (rows[-1][0], rows[-1][1])
        if progress is not None:
            progress(len(rows))
