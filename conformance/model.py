"""Tests, outcomes and results: the kit's vocabulary.

A `Check` is one generated (or hand-written) test: an id, the group it belongs to, the requirement
it cites, whether the alliance requires it (SHALL) and a function that runs it against a `Session`.
Running a check yields a `Result` whose `Outcome` is one of five, never a blurred "skipped":

    pass              the server did what the requirement asks
    fail              it did not; `message` says why, `exchanges` show the evidence
    not-applicable    the server declared it does not support this (only for SHOULD/MAY items)
    insufficient-data the kit could not get the data it needs; `message` names the missing data
    error             the kit itself could not finish the test (a bug, a network failure)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.client import Exchange
    from conformance.session import Session

__all__ = ["Check", "CheckFailed", "InsufficientData", "NotApplicable", "Outcome", "Result"]


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"
    INSUFFICIENT_DATA = "insufficient-data"
    ERROR = "error"


class CheckFailed(Exception):
    """Raised inside a check: the server did not meet the requirement."""


class NotApplicable(Exception):
    """Raised inside a check: the server declared no support for what is tested."""


class InsufficientData(Exception):
    """Raised inside a check: data the test needs is missing (the message says which)."""


@dataclass
class Check:
    id: str
    group: str
    title: str
    requirement: str
    required: bool
    run: Callable[[Session], str | None]
    title_zh: str = ""
    policies: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        return "SHALL" if self.required else "SHOULD"


@dataclass
class Result:
    check: Check
    outcome: Outcome
    message: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    duration: float = 0.0

    @property
    def blocking(self) -> bool:
        """A required test that did not pass for a reason on the server's side (or the kit's)."""
        return self.check.required and self.outcome in (Outcome.FAIL, Outcome.ERROR)

    def to_json(self) -> dict[str, Any]:
        c = self.check
        return {
            "id": c.id,
            "group": c.group,
            "title": c.title,
            "title_zh": c.title_zh,
            "requirement": c.requirement,
            "policies": list(c.policies),
            "level": c.level,
            "required": c.required,
            "outcome": self.outcome.value,
            "message": self.message,
            "duration": round(self.duration, 4),
            "exchanges": [e.to_json() for e in self.exchanges],
        }
