"""The transaction Bundle every adapter hands the gateway for one converted input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from adapters.mapping.engine import YAOLIAN_NAMESPACE

__all__ = ["transaction_bundle"]


def transaction_bundle(key: str, entries: list[dict[str, Any]], **elements: Any) -> dict[str, Any]:
    """A transaction Bundle of ``entries`` whose id is derived from ``key`` (the source and the
    input's own id, e.g. ``sqlview|CFH-1``): the same input sent again makes the same Bundle.
    ``elements`` (``meta``, ``identifier`` …) are added as given."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(YAOLIAN_NAMESPACE, f"Bundle|{key}")),
        **elements,
        "type": "transaction",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "entry": entries,
    }
