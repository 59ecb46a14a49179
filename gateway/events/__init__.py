"""Events: the outbox written with every change, relayed after commit.

Each write puts an outbox row in the same transaction as the change, so an event exists iff
the change committed. :class:`OutboxRelay` moves pending rows to a Redis Stream
(``yaolian:events``, consumer groups for insurance/regulator feeds) or, on the embedded default,
to in-process listeners. Delivery is at-least-once; consumers de-duplicate on ``seq``.
"""
