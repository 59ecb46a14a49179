"""Run checks, one at a time, each turned into exactly one Result."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from conformance.client import FhirClient
from conformance.definitions import Definitions
from conformance.generate import generate
from conformance.model import Check, CheckFailed, InsufficientData, NotApplicable, Outcome, Result
from conformance.session import Session
from conformance.workflows import workflows

SUITES = ("core", "full")


def all_checks(definitions: Definitions | None = None) -> list[Check]:
    return generate(definitions) + workflows()


def select(checks: Iterable[Check], suite: str = "full", only: str | None = None) -> list[Check]:
    """`core` = the required (SHALL) tests; `full` = all. `only` = comma-separated groups or id prefixes."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r} (core or full)")
    chosen = [c for c in checks if suite == "full" or c.required]
    if only:
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        chosen = [c for c in chosen if any(_selected(c, w) for w in wanted)]
    return chosen


def _selected(check: Check, wanted: str) -> bool:
    """A group name, a whole test id, or an id prefix ending at a `/` or `.` boundary."""
    if check.group == wanted or check.id == wanted:
        return True
    stem = wanted.rstrip("/.")
    return check.id.startswith(stem + "/") or check.id.startswith(stem + ".")


@dataclass
class Run:
    base_url: str
    suite: str
    started: datetime
    finished: datetime | None = None
    results: list[Result] = field(default_factory=list)
    must_support_observed: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts = {o.value: 0 for o in Outcome}
        for r in self.results:
            counts[r.outcome.value] += 1
        return counts

    @property
    def blocking(self) -> list[Result]:
        return [r for r in self.results if r.blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking


def run_check(check: Check, session: Session) -> Result:
    start = len(session.client.log)
    started = time.perf_counter()
    try:
        message = check.run(session) or ""
        outcome = Outcome.PASS
    except CheckFailed as exc:
        outcome, message = Outcome.FAIL, str(exc)
    except NotApplicable as exc:
        outcome, message = Outcome.NOT_APPLICABLE, str(exc)
    except InsufficientData as exc:
        outcome, message = Outcome.INSUFFICIENT_DATA, str(exc)
    except httpx.HTTPError as exc:
        outcome, message = Outcome.ERROR, f"HTTP failure talking to the server: {type(exc).__name__}: {exc}"
    except Exception as exc:
        outcome = Outcome.ERROR
        message = f"the kit failed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
    return Result(check, outcome, message, session.client.log[start:], time.perf_counter() - started)


def run(
    base_url: str,
    *,
    token: str | None = None,
    suite: str = "full",
    only: str | None = None,
    transport: httpx.BaseTransport | None = None,
    seed_only: bool = False,
    progress: Callable[[Check, Result | None], None] | None = None,
    checks: list[Check] | None = None,
) -> Run:
    chosen = checks if checks is not None else select(all_checks(), suite, only)
    client = FhirClient(base_url, token=token, transport=transport)
    session = Session(client, seed_only=seed_only)
    result_run = Run(base_url, suite, datetime.now(UTC))
    try:
        for check in chosen:
            if progress:
                progress(check, None)
            result = run_check(check, session)
            result_run.results.append(result)
            if progress:
                progress(check, result)
    finally:
        client.close()
    result_run.finished = datetime.now(UTC)
    result_run.must_support_observed = {k: len(v) for k, v in session.observed.items()}
    return result_run
