"""Every read goes through the service's hook points (gateway/hooks.py): a hook that hides some
resources hides them from read (the 404 of a missing one), vread, search matches, ``_include``,
``_revinclude``, ``_summary=count``, history, GET entries of a Bundle and ``$hl7v2`` — on both
store backends. And no code in gateway/api reads the store behind the service's back."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.hooks import Hidden, HistoryPage, Hooks, Pointcut, RequestContext, SearchResults
from gateway.search.query import SearchQuery, parse_criterion
from gateway.settings import Settings
from gateway.store.base import StoredResource

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "hl7v2" / "RDE_O11"
HL7 = {"Content-Type": "x-application/hl7-v2+er7"}
FAMILY = "Hookread"
HEART_RATE = "8867-4"
RX_NO = "urn:oid:2.16.156.10011.1.20"

Key = tuple[str, str]


@dataclass
class Hider:
    """An access rule as the access-control issue will plug it in: ``hidden`` keys are never
    shown; ``restrict`` also narrows searches before they run (so counts stay exact)."""

    hidden: set[Key] = field(default_factory=set)
    restrict: bool = True
    seen: list[tuple[str, Any]] = field(default_factory=list)
    interactions: list[str] = field(default_factory=list)

    def install(self, hooks: Hooks) -> None:
        hooks.register(Pointcut.BEFORE_SEARCH, self.before_search)
        hooks.register(Pointcut.BEFORE_SEARCH_RESPONSE, self.search_results)
        hooks.register(Pointcut.BEFORE_HISTORY_RESPONSE, self.history)
        hooks.register(Pointcut.BEFORE_READ_RESPONSE, self.read)

    def visible(self, stored: StoredResource) -> bool:
        return (stored.res_type, stored.res_id) not in self.hidden

    def before_search(self, ctx: RequestContext, query: SearchQuery) -> None:
        ids = sorted(rid for rtype, rid in self.hidden if rtype == query.resource_type)
        if self.restrict and ids:
            criterion = parse_criterion(query.resource_type, "_id:not", ",".join(ids))
            assert criterion is not None
            query.criteria.append(criterion)

    def search_results(self, ctx: RequestContext, results: SearchResults) -> None:
        self.seen.append(("search", (results.total, _keys(results.matches), _keys(results.included))))
        self.interactions.append(ctx.interaction)
        results.matches = [r for r in results.matches if self.visible(r)]
        results.included = [r for r in results.included if self.visible(r)]

    def history(self, ctx: RequestContext, page: HistoryPage) -> None:
        if page.resource_type and page.resource_id and (page.resource_type, page.resource_id) in self.hidden:
            raise Hidden
        page.entries = [v for v in page.entries if self.visible(v)]

    def read(self, ctx: RequestContext, stored: StoredResource) -> None:
        self.seen.append(("read", (stored.res_type, stored.res_id)))
        self.interactions.append(ctx.interaction)
        if not self.visible(stored):
            raise Hidden


def _keys(resources: list[StoredResource]) -> list[Key]:
    return [(r.res_type, r.res_id) for r in resources]


@pytest.fixture(scope="module")
def gateway(module_database_url: str) -> Iterator[tuple[TestClient, Hider]]:
    hooks = Hooks()
    hider = Hider()
    hider.install(hooks)
    app = create_app(Settings(database=module_database_url, validation_mode="lenient"), hooks=hooks)
    with TestClient(app, raise_server_exceptions=False) as client:
        for rid in ("pat-shown", "pat-secret"):
            put(client, {"resourceType": "Patient", "id": rid, "name": [{"family": FAMILY}]})
        observations = (
            ("obs-a", "pat-shown", HEART_RATE),
            ("obs-secret", "pat-shown", HEART_RATE),
            ("obs-b", "pat-secret", HEART_RATE),
            ("obs-c", "pat-secret", "8310-5"),
        )
        for rid, subject, code in observations:
            observation = {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/{subject}"},
            }
            put(client, observation)
        put(client, {"resourceType": "Patient", "id": "pat-secret", "name": [{"family": FAMILY}], "gender": "female"})
        yield client, hider


@pytest.fixture
def hide(gateway: tuple[TestClient, Hider]) -> Iterator[tuple[TestClient, Hider]]:
    client, hider = gateway
    hider.hidden = {("Patient", "pat-secret"), ("Observation", "obs-secret")}
    hider.restrict = True
    hider.seen.clear()
    hider.interactions.clear()
    yield client, hider
    hider.hidden = set()


def put(client: TestClient, resource: dict[str, Any]) -> None:
    response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    )


def codes(response: Any) -> list[str]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return [c["code"] for i in outcome["issue"] for c in i.get("details", {}).get("coding", [])]


def test_read_and_vread_of_a_hidden_resource_answer_the_404_of_a_missing_one(hide: Any) -> None:
    client, _ = hide
    assert client.get("/fhir/Patient/pat-shown").status_code == 200
    hidden, missing = client.get("/fhir/Patient/pat-secret"), client.get("/fhir/Patient/pat-never")
    assert hidden.status_code == missing.status_code == 404
    assert codes(hidden) == codes(missing)
    assert client.get("/fhir/Observation/obs-secret").status_code == 404
    hidden_version = client.get("/fhir/Patient/pat-secret/_history/1")
    assert hidden_version.status_code == 404
    assert codes(hidden_version) == codes(client.get("/fhir/Patient/pat-never/_history/1"))
    assert client.get("/fhir/Patient/pat-shown/_history/1").status_code == 200
    # $validate of a stored resource reads it too
    assert client.get("/fhir/Patient/pat-secret/$validate").status_code == 404


def test_search_matches_totals_and_count_leave_hidden_resources_out(hide: Any) -> None:
    client, hider = hide
    found = client.get("/fhir/Patient", params={"family": FAMILY}).json()
    assert ids(found) == ["Patient/pat-shown"] and found["total"] == 1
    counted = client.get("/fhir/Patient", params={"family": FAMILY, "_summary": "count"}).json()
    assert counted["total"] == 1 and not counted.get("entry")
    # the results point sees the count before it is shown: nothing to thin out, the right total
    assert hider.seen[-1] == ("search", (1, [], []))
    # paged one by one: no page and no link names the hidden id
    page = client.get("/fhir/Patient", params={"family": FAMILY, "_count": "1"})
    assert "pat-secret" not in page.text and page.json()["total"] == 1
    # a POST _search is the same search
    posted = client.post(
        "/fhir/Patient/_search",
        content=f"family={FAMILY}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()
    assert ids(posted) == ["Patient/pat-shown"]


def test_results_hook_alone_thins_out_the_page(hide: Any) -> None:
    client, hider = hide
    hider.restrict = False  # only the point over results: the store found the hidden one
    found = client.get("/fhir/Patient", params={"family": FAMILY}).json()
    assert ids(found) == ["Patient/pat-shown"]
    assert found["total"] == 1  # the page was all there is: the total is what is shown
    assert hider.seen[-1] == ("search", (2, [("Patient", "pat-secret"), ("Patient", "pat-shown")], []))
    counted = client.get("/fhir/Patient", params={"family": FAMILY, "_summary": "count"}).json()
    assert counted["total"] == 2  # a count is exact only when BEFORE_SEARCH restricts
    paged = client.get("/fhir/Patient", params={"family": FAMILY, "_count": "1"})
    assert "pat-secret" not in paged.text


def test_include_and_revinclude_leave_hidden_resources_out(hide: Any) -> None:
    client, _ = hide
    found = client.get("/fhir/Observation", params={"code": HEART_RATE, "_include": "Observation:subject"}).json()
    assert ids(found) == ["Observation/obs-a", "Observation/obs-b"]
    assert ids(found, "include") == ["Patient/pat-shown"]  # not obs-b's subject, which is hidden

    rev = client.get("/fhir/Patient", params={"family": FAMILY, "_revinclude": "Observation:subject"}).json()
    assert ids(rev) == ["Patient/pat-shown"]
    assert ids(rev, "include") == ["Observation/obs-a"]

    # nothing is followed from a hidden resource: obs-c is reached only through pat-secret
    iterate = client.get(
        "/fhir/Observation",
        params={"_id": "obs-b", "_include": "Observation:subject", "_revinclude:iterate": "Observation:subject"},
    ).json()
    assert ids(iterate) == ["Observation/obs-b"] and ids(iterate, "include") == []


def test_history_leaves_hidden_resources_out(hide: Any) -> None:
    client, _ = hide
    instance = client.get("/fhir/Patient/pat-secret/_history")
    assert instance.status_code == 404
    assert codes(instance) == codes(client.get("/fhir/Patient/pat-never/_history"))
    assert client.get("/fhir/Patient/pat-shown/_history").status_code == 200
    for path in ("/fhir/_history", "/fhir/Patient/_history", "/fhir/Observation/_history"):
        history = client.get(path, params={"_count": "100"})
        assert history.status_code == 200
        urls = [e["fullUrl"] for e in history.json()["entry"]]
        assert urls and not [u for u in urls if u.endswith(("/pat-secret", "/obs-secret"))]
    patients = client.get("/fhir/Patient/_history").json()
    assert {e["fullUrl"].rsplit("/", 1)[1] for e in patients["entry"]} == {"pat-shown"}


def _bundle(bundle_type: str, urls: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


def test_get_entries_of_a_bundle_leave_hidden_resources_out(hide: Any) -> None:
    client, hider = hide
    searches = [f"Patient?family={FAMILY}", f"Observation?code={HEART_RATE}&_include=Observation:subject"]
    for bundle_type in ("batch", "transaction"):
        hider.interactions.clear()
        response = client.post("/fhir", json=_bundle(bundle_type, [*searches, "Patient/pat-shown"]))
        assert response.status_code == 200, response.text
        # the hooks see each GET as the interaction it is, as over REST
        assert hider.interactions == ["search-type", "search-type", "search-type", "read"]
        patients, observations, shown = (e["resource"] for e in response.json()["entry"])
        assert ids(patients) == ["Patient/pat-shown"] and patients["total"] == 1
        assert ids(observations, "include") == ["Patient/pat-shown"]
        assert shown["id"] == "pat-shown"
        for url in ("Patient/pat-secret", "Patient/pat-secret/_history/1", "Observation/obs-secret"):
            answered = client.post("/fhir", json=_bundle(bundle_type, [url]))
            if bundle_type == "batch":
                (entry,) = answered.json()["entry"]
                assert entry["response"]["status"].startswith("404"), url
            else:  # a GET that fails fails the transaction
                assert answered.status_code == 404, url


def test_hl7v2_writeback_reads_through_the_hooks(hide: Any) -> None:
    client, hider = hide
    message = (GOLDEN / "v23-standard-two-orders-prn.hl7").read_bytes()
    ingested = client.post("/fhir/$ingest?adapter=hl7v2", content=message, headers=HL7)
    assert ingested.status_code == 200, ingested.text

    def order(placer: str) -> str:
        (entry,) = client.get("/fhir/MedicationRequest", params={"identifier": f"{RX_NO}|{placer}"}).json()["entry"]
        return str(entry["resource"]["id"])

    def orc(rid: str, **params: str) -> list[str]:
        response = client.get(f"/fhir/MedicationRequest/{rid}/$hl7v2", params=params)
        assert response.status_code == 200, response.text
        return [line.split("|")[2] for line in response.text.split("\r") if line.startswith("ORC")]

    first, second = order("RX9001"), order("RX9002")
    hider.seen.clear()
    assert orc(second, scope="prescription") == ["RX9001^XHZXWSY", "RX9002^XHZXWSY"]
    reads = [key for point, key in hider.seen if point == "read"]
    assert reads[0] == ("MedicationRequest", second)
    assert {"Patient", "Practitioner"} <= {t for t, _ in reads}  # read by reference, through the point
    searched = [key for point, key in hider.seen if point == "search"]
    assert searched == [(None, sorted([("MedicationRequest", first), ("MedicationRequest", second)]), [])]

    hider.hidden.add(("MedicationRequest", first))  # a hidden order of the 处方 is left out
    assert orc(second, scope="prescription") == ["RX9002^XHZXWSY"]
    hider.restrict = False  # also when only the point over results hides it
    assert orc(second, scope="prescription") == ["RX9002^XHZXWSY"]

    # a resource read by reference and hidden is left out, as a missing one is
    requester = client.get(f"/fhir/MedicationRequest/{second}").json()["requester"]["reference"]
    assert "D77^" in client.get(f"/fhir/MedicationRequest/{second}/$hl7v2").text
    hider.hidden.add(tuple(requester.split("/")))  # type: ignore[arg-type]
    without = client.get(f"/fhir/MedicationRequest/{second}/$hl7v2")
    assert without.status_code == 200 and "D77^" not in without.text and "ORC|NW|RX9002" in without.text

    hidden = client.get(f"/fhir/MedicationRequest/{first}/$hl7v2")
    assert hidden.status_code == 404
    assert codes(hidden) == codes(client.get("/fhir/MedicationRequest/nope/$hl7v2"))


def test_reads_call_no_hook_machinery_when_none_is_registered(
    gateway: tuple[TestClient, Hider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read points cost one ``in`` test each when nobody registered for them."""
    client, _ = gateway
    service = client.app.state.service  # type: ignore[attr-defined]
    monkeypatch.setattr(service, "hooks", Hooks())

    def called(*args: Any) -> None:
        raise AssertionError(f"Hooks.run{args!r} with no hook registered")

    monkeypatch.setattr(Hooks, "run", called)
    assert client.get("/fhir/Patient/pat-secret").status_code == 200
    assert client.get("/fhir/Patient/pat-secret/_history/1").status_code == 200
    found = client.get("/fhir/Patient", params={"family": FAMILY, "_revinclude": "Observation:subject"}).json()
    assert ids(found) == ["Patient/pat-secret", "Patient/pat-shown"] and found["total"] == 2
    assert len(ids(found, "include")) == 4
    assert client.get("/fhir/_history").status_code == 200
    assert client.get("/fhir/Patient/pat-secret/_history").status_code == 200


# -- no read behind the service's back ----------------------------------------------------


def test_gateway_api_never_touches_the_store() -> None:
    """Reads from gateway/api go through FhirService methods (and so through the hook points):
    no ``.store`` attribute and no store module but the type definitions (and the store's
    errors, which gateway/api/errors.py, the one place errors become responses, maps)."""
    allowed = {"gateway.store.base": {"StoredResource"}, "gateway.store.errors": {"InvalidSearchValue"}}
    found: list[str] = []
    for path in sorted((ROOT / "gateway" / "api").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "store":
                found.append(f"{where}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gateway.store"):
                if any(a.name not in allowed.get(node.module or "", set()) for a in node.names):
                    found.append(f"{where}:{node.lineno}: from {node.module} import …")
            if isinstance(node, ast.Import) and any(a.name.startswith("gateway.store") for a in node.names):
                found.append(f"{where}:{node.lineno}: import gateway.store…")
    assert found == []


STORE_READS = {"read", "read_many", "vread", "history", "search", "references_from", "references_to"}


def test_nothing_outside_the_service_reads_through_a_service_store() -> None:
    """``svc.store.read(…)`` and the like appear only in gateway/service (and the store itself):
    elsewhere a service's store is used to write (``.transaction()``), never to read."""
    found: list[str] = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        where = path.relative_to(ROOT)
        if where.parts[1] in ("service", "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in STORE_READS
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "store"
            ):
                found.append(f"{where}:{node.lineno}: .store.{node.attr}")
    assert found == []


def test_a_hook_of_the_wrong_signature_is_a_type_error(tmp_path: Path) -> None:
    """``Hooks.register`` is typed per pointcut: mypy rejects a hook that does not fit."""
    sample = tmp_path / "hooks_sample.py"
    sample.write_text(
        "from gateway.hooks import Hooks, Pointcut, RequestContext, SearchResults\n"
        "from gateway.store.base import StoredResource\n"
        "def read(ctx: RequestContext, stored: StoredResource) -> None: ...\n"
        "def results(ctx: RequestContext, results: SearchResults) -> None: ...\n"
        "hooks = Hooks()\n"
        "hooks.register(Pointcut.BEFORE_READ_RESPONSE, read)\n"
        "hooks.register(Pointcut.BEFORE_SEARCH_RESPONSE, results)\n"
        "hooks.register(Pointcut.BEFORE_READ_RESPONSE, results)\n"
        "hooks.run(Pointcut.AFTER_COMMIT, RequestContext(base_url=''), None)\n"
        "hooks.run(Pointcut.BEFORE_READ_RESPONSE, RequestContext(base_url=''), None)\n",
        encoding="utf-8",
    )
    # in a process of its own: mypy in this one would raise the recursion limit for later tests
    executable = shutil.which("mypy") or str(Path(sys.executable).with_name("mypy"))
    command = [executable, "--strict", "--cache-dir", str(tmp_path / "cache"), str(sample)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    errors = [line.split(":")[1] for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1 and errors == ["8", "10"], result.stdout + result.stderr
