"""The alliance's SubscriptionTopics (``profiles/SubscriptionTopic-*.json``) as matchers.

A topic is data: its resource trigger names a resource type, the interactions it fires on and
``queryCriteria`` in the R5 sense (``previous`` is asked of the version before the change,
``current`` of the version after it; ``resultForCreate``/``resultForDelete`` stand in for the
missing side; ``requireBoth`` asks both). Criteria are search-style token tests
(``status=active``, ``review-result:not=reject``, ``category=system|code``) asked of the
resource's own search index rows, so they mean what the same search would mean.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from gateway.search.extract import extract

SD = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True)
class Criterion:
    param: str
    negated: bool
    values: tuple[tuple[str | None, str], ...]  # (system or None, code)


def parse_criteria(text: str | None) -> tuple[Criterion, ...]:
    """``a=x,y&b:not=s|z`` (an optional leading ``Type?`` is ignored)."""
    if not text:
        return ()
    text = text.split("?", 1)[1] if "?" in text else text
    out: list[Criterion] = []
    for part in text.split("&"):
        name, _, raw = part.partition("=")
        param, _, modifier = name.partition(":")
        values = []
        for value in raw.split(","):
            system, bar, code = value.rpartition("|")
            values.append((system if bar else None, code))
        out.append(Criterion(param, modifier == "not", tuple(values)))
    return tuple(out)


def _tokens(data: dict[str, Any]) -> dict[str, set[tuple[str | None, str | None]]]:
    found: dict[str, set[tuple[str | None, str | None]]] = {}
    for row in extract(data).token:
        found.setdefault(row[0], set()).add((row[1], row[2]))
    return found


def criteria_hold(criteria: tuple[Criterion, ...], data: dict[str, Any]) -> bool:
    tokens = _tokens(data)
    for c in criteria:
        have = tokens.get(c.param, set())
        hit = any(
            code == v_code and (v_system is None or system == v_system)
            for system, code in have
            for v_system, v_code in c.values
        )
        if hit == c.negated:
            return False
    return True


@dataclass(frozen=True)
class Topic:
    url: str
    id: str
    title: str
    resource_type: str
    interactions: frozenset[str]
    current: tuple[Criterion, ...]
    previous: tuple[Criterion, ...]
    result_for_create: bool
    result_for_delete: bool
    require_both: bool
    filters: frozenset[str]

    @classmethod
    def from_resource(cls, data: dict[str, Any]) -> Topic:
        trigger = data["resourceTrigger"][0]
        qc = trigger.get("queryCriteria") or {}
        return cls(
            url=data["url"],
            id=data["id"],
            title=data.get("title", data["id"]),
            resource_type=trigger["resource"].removeprefix(SD),
            interactions=frozenset(trigger.get("supportedInteraction") or ("create", "update", "delete")),
            current=parse_criteria(qc.get("current")),
            previous=parse_criteria(qc.get("previous")),
            result_for_create=qc.get("resultForCreate", "test-passes") == "test-passes",
            result_for_delete=qc.get("resultForDelete", "test-passes") == "test-passes",
            require_both=bool(qc.get("requireBoth", False)),
            filters=frozenset(f["filterParameter"] for f in data.get("canFilterBy") or ()),
        )

    def triggered(self, event: str, current: dict[str, Any] | None, previous: dict[str, Any] | None) -> bool:
        """Whether a change (``event``: create | update | delete) is an event of this topic."""
        if event not in self.interactions:
            return False
        if not self.current and not self.previous:
            return True
        if event == "delete" or current is None:
            now = self.result_for_delete
        else:
            now = criteria_hold(self.current, current) if self.current else True
        if previous is None:
            before = self.result_for_create
        else:
            before = criteria_hold(self.previous, previous) if self.previous else True
        if not self.previous:
            return now
        return (now and before) if self.require_both else (now or before)


@functools.cache
def topic_resources() -> tuple[dict[str, Any], ...]:
    folder = resources.files("profiles")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("SubscriptionTopic-") and entry.name.endswith(".json"):
            found.append(orjson.loads(entry.read_bytes()))
    return tuple(found)


@functools.cache
def topics() -> dict[str, Topic]:
    """Every topic by canonical URL."""
    return {t.url: t for t in (Topic.from_resource(data) for data in topic_resources())}


def topic(url: str) -> Topic | None:
    return topics().get(url.split("|", 1)[0])
