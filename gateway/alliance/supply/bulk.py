"""Bulk work without the cyclic garbage collector.

Building a ledger of a province's stock rows allocates millions of small objects that hold no
reference cycles (tuples, batches, dictionaries of them). CPython's cyclic collector runs a full
collection every so many allocations and walks every live object each time, so left on it makes
the work grow faster than the rows (measured: 1.7 -> 9.4 us per row from 10k to 100k rows, see
``benchmarks/bench_stock.py``). Reference counting still frees everything; the collector is back
on (if it was on) when the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_cyclic_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
