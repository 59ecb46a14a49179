"""pytest plugin: the conformance tests as pytest items.

Registered through the `pytest11` entry point (`yaolian_conformance = "conformance.pytest_plugin"`),
it does nothing unless `--fhir-base-url` is given:

    pytest --fhir-base-url http://127.0.0.1:8080/fhir [--fhir-token T] [--fhir-suite core] [--fhir-only search]

Outcomes map to pytest's: pass -> passed; a required failure or an error -> failed; an optional
(SHOULD) failure -> xfailed; not-applicable and insufficient-data -> skipped with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.model import Check, Outcome

_SESSION_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("yaolian-conformance", "Yaolian alliance FHIR conformance kit")
    group.addoption("--fhir-base-url", default=None, help="run the conformance kit against this FHIR base")
    group.addoption("--fhir-token", default=None, help="bearer token for the server under test")
    group.addoption("--fhir-suite", default="full", choices=("core", "full"), help="core = SHALL tests only")
    group.addoption("--fhir-only", default=None, help="groups or test-id prefixes, comma-separated")


class ConformanceItem(pytest.Item):
    check: Check

    @classmethod
    def create(cls, parent: pytest.Session, check: Check) -> ConformanceItem:
        item = cls.from_parent(parent, name=f"conformance::{check.id}")
        item.check = check
        item.add_marker(pytest.mark.conformance)
        return item

    def runtest(self) -> None:
        from conformance.runner import run_check

        result = run_check(self.check, _session(self.config))
        self.user_properties.append(("requirement", self.check.requirement))
        self.user_properties.append(("outcome", result.outcome.value))
        if result.outcome == Outcome.PASS:
            return
        if result.outcome in (Outcome.NOT_APPLICABLE, Outcome.INSUFFICIENT_DATA):
            pytest.skip(f"{result.outcome.value}: {result.message}")
        if result.outcome == Outcome.FAIL and not self.check.required:
            pytest.xfail(f"optional ({self.check.level}) test failed: {result.message}")
        raise ConformanceFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            r = excinfo.value.result
            lines = [
                f"{r.outcome.value} [{r.check.level}] {r.check.id}",
                r.message,
                f"requirement: {r.check.requirement}",
            ]
            for x in r.exchanges[-3:]:
                lines.append(f"> {x.method} {x.url}\n< {x.status} {x.response_body[:500]}")
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "conformance", None, self.check.id


class ConformanceFailure(Exception):
    def __init__(self, result: Any) -> None:
        super().__init__(result.message)
        self.result = result


def _session(config: pytest.Config) -> Any:
    if _SESSION_KEY not in config.stash:
        from conformance.client import FhirClient
        from conformance.session import Session

        client = FhirClient(config.getoption("--fhir-base-url"), token=config.getoption("--fhir-token"))
        config.stash[_SESSION_KEY] = Session(client)
    return config.stash[_SESSION_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: a Yaolian conformance kit test (from --fhir-base-url)")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fhir-base-url"):
        return
    from conformance.runner import all_checks, select

    checks = select(all_checks(), config.getoption("--fhir-suite"), config.getoption("--fhir-only"))
    items.extend(ConformanceItem.create(session, c) for c in checks)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_KEY in config.stash:
        config.stash[_SESSION_KEY].client.close()
