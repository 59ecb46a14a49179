"""One run against one server: the client, the definitions, the server's own CapabilityStatement,
and the shared read-only test data ("world").

The world is created on first use, with identifiers unique to the run, and never modified; tests
that change data (update, delete, conflicts) create their own resources. So the result of a test
does not depend on which tests ran before it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from conformance import fixtures
from conformance.client import FhirClient, Response
from conformance.definitions import Definitions, load
from conformance.model import CheckFailed, InsufficientData

Json = dict[str, Any]


@dataclass
class World:
    """Three server-side variants per alliance resource type, as the server returned them."""

    tag: str
    sent: dict[str, list[Json]] = field(default_factory=dict)
    stored: dict[str, list[Json]] = field(default_factory=dict)

    def ids(self, type_: str) -> list[str]:
        return [r["id"] for r in self.stored[type_]]

    def ref(self, type_: str, i: int) -> str:
        return f"{type_}/{self.stored[type_][i]['id']}"


class Session:
    def __init__(self, client: FhirClient, definitions: Definitions | None = None, *, seed_only: bool = False) -> None:
        self.client = client
        self.defs = definitions or load()
        self.tag = secrets.token_hex(3)
        self.seed_only = seed_only
        self._server_cs: Json | None = None
        self._world: World | None = None
        self._world_error: Exception | None = None
        self.observed: dict[str, list[Json]] = {}

    # --- what the server declares -------------------------------------------------------------
    @property
    def server_capability(self) -> Json:
        if self._server_cs is None:
            r = self.client.get("metadata")
            body = r.json
            if r.status != 200 or not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
                self._server_cs = {}
            else:
                self._server_cs = body
        return self._server_cs

    def server_resource(self, type_: str) -> Json | None:
        for rest in self.server_capability.get("rest", []):
            if rest.get("mode", "server") != "server":
                continue
            for res in rest.get("resource", []):
                if res.get("type") == type_:
                    return res  # type: ignore[no-any-return]
        return None

    def declares_interaction(self, type_: str, code: str) -> bool:
        res = self.server_resource(type_) or {}
        return any(i.get("code") == code for i in res.get("interaction", []))

    def declares_search_param(self, type_: str, name: str) -> bool:
        res = self.server_resource(type_) or {}
        if name in ("_id", "_lastUpdated") and any(i.get("code") == "search-type" for i in res.get("interaction", [])):
            return True
        return any(p.get("name") == name for p in res.get("searchParam", []))

    def declares_include(self, type_: str, value: str, rev: bool = False) -> bool:
        res = self.server_resource(type_) or {}
        listed = res.get("searchRevInclude" if rev else "searchInclude", [])
        return value in listed or "*" in listed

    # --- observations for must-support coverage ------------------------------------------------
    def observe(self, resource: Json | None) -> None:
        if isinstance(resource, dict) and resource.get("resourceType"):
            bucket = self.observed.setdefault(resource["resourceType"], [])
            if len(bucket) < 200:
                bucket.append(resource)

    # --- test data -----------------------------------------------------------------------------
    def create(self, resource: Json) -> Json:
        """POST a resource the test needs; anything but 201 with a body or Location is a failure."""
        r = self.client.request(
            "POST", resource["resourceType"], body=resource, headers={"Prefer": "return=representation"}
        )
        if r.status not in (200, 201):
            raise CheckFailed(f"could not create the {resource['resourceType']} this test needs: HTTP {r.status}")
        stored = r.json if r.resource_type == resource["resourceType"] else None
        if stored is None:
            location = r.header("Location") or r.header("Content-Location") or ""
            rid = _id_from_location(location, resource["resourceType"])
            if not rid:
                raise CheckFailed(f"create of {resource['resourceType']} returned neither the resource nor a Location")
            got = self.client.get(f"{resource['resourceType']}/{rid}")
            stored = got.json if got.status == 200 else {**resource, "id": rid}
        self.observe(stored)
        return stored

    def graph(self, tag: str | None = None, upto: str | None = None) -> World:
        """A fresh set of variants of every type (up to and including `upto`), created for one test."""
        world = World(tag or secrets.token_hex(4))
        for type_ in fixtures.ORDER:
            world.sent[type_], world.stored[type_] = [], []
            for i in range(fixtures.VARIANTS):
                resource = fixtures.build(type_, i, world.tag, world.ref)
                world.sent[type_].append(resource)
                world.stored[type_].append(self.create(resource))
            if type_ == upto:
                break
        return world

    def one(self, type_: str, i: int = 0) -> tuple[Json, Json]:
        """A fresh resource of one type for a test that will change it; its references point into
        the shared (never modified) world, its identifiers are its own."""
        resource = fixtures.build(type_, i, secrets.token_hex(4), self.world.ref)
        return resource, self.create(resource)

    @property
    def world(self) -> World:
        if self._world is None and self._world_error is None:
            try:
                self._world = self._seeded_world() if self.seed_only else self.graph(self.tag)
            except (CheckFailed, InsufficientData) as exc:
                self._world_error = exc
        if self._world is None:
            raise InsufficientData(
                f"the shared test data could not be created ({self._world_error}); load the seed set with "
                "`yaolian conformance seed --base-url …` and run with --seed-only"
            )
        return self._world

    def _seeded_world(self) -> World:
        world = World("seed")
        for type_ in fixtures.ORDER:
            world.sent[type_], world.stored[type_] = [], []
            for i in range(fixtures.VARIANTS):
                rid = fixtures.seed_id(type_, i)
                r = self.client.get(f"{type_}/{rid}")
                if r.status != 200:
                    raise InsufficientData(f"seed resource {type_}/{rid} is missing (HTTP {r.status})")
                world.sent[type_].append(fixtures.build(type_, i, "seed", lambda t, j: f"{t}/{fixtures.seed_id(t, j)}"))
                world.stored[type_].append(r.json)
                self.observe(r.json)
        return world

    def search(self, type_: str, params: list[tuple[str, str]], post: bool = False) -> Response:
        if post:
            return self.client.request("POST", f"{type_}/_search", form=params)
        return self.client.get(type_, params=params)


def _id_from_location(location: str, type_: str) -> str | None:
    parts = location.rstrip("/").split("/")
    if type_ in parts:
        idx = parts.index(type_)
        if idx + 1 < len(parts):
            return parts[idx + 1]
    return None


def seed(client: FhirClient, tag: str = "seed") -> list[str]:
    """Load the seed set by PUT with fixed ids (update as create). Returns the problems, if any."""
    problems = []
    for entry in fixtures.seed_bundle(tag)["entry"]:
        r = client.request("PUT", entry["request"]["url"], body=entry["resource"])
        if r.status not in (200, 201):
            problems.append(f"PUT {entry['request']['url']}: HTTP {r.status} {r.text[:300]}")
    return problems
