"""A circuit breaker per member: a member that keeps failing is not asked for a while.

Closed (asked) until ``failures`` answers in a row fail; then open for ``reset`` seconds
(not asked, named in the outcome at no cost); then one query is let through (half-open): a
success closes it, a failure opens it again. The state is per gateway process on purpose: it
is a local judgement of "is it worth waiting for", and a second process learns it within
``failures`` queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False


@dataclass
class Breakers:
    failures: int = 3
    reset: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)

    def allow(self, member: str) -> bool:
        """Whether ``member`` may be asked now (half-open: one caller gets the trial)."""
        state = self._states.get(member)
        if state is None or state.opened_at is None:
            return True
        if self.clock() - state.opened_at < self.reset or state.trial:
            return False
        state.trial = True
        return True

    def succeeded(self, member: str) -> None:
        self._states.pop(member, None)

    def failed(self, member: str) -> None:
        state = self._states.setdefault(member, _State())
        state.failures += 1
        state.trial = False
        if state.failures >= self.failures:
            state.opened_at = self.clock()

    def is_open(self, member: str) -> bool:
        state = self._states.get(member)
        return state is not None and state.opened_at is not None
