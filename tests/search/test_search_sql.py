"""Search never reads stored JSON: the SQL a search emits filters and sorts on the ``idx_*``
tables and the key/bookkeeping columns of ``resources``; resource bodies are fetched only by
primary key, for the ids the index already chose."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).parent))
from search_dataset import DRUG, MRN, Dataset

INDEX_TABLE = re.compile(r"^idx_[a-z]+$")
# resources columns a search may filter or sort on (identity, liveness, _lastUpdated)
BOOKKEEPING = {"res_type", "res_id", "deleted", "last_updated"}


@pytest.fixture
def statements(dataset: Dataset) -> Iterator[list[str]]:
    engine = dataset.client.app.state.store.engine  # type: ignore[attr-defined]
    captured: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "audit_" not in statement:  # the audit trail's own statements (gateway/security/audit.py)
            captured.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", capture)
    yield captured
    event.remove(engine, "before_cursor_execute", capture)


def tables_of(statement: str) -> set[str]:
    return {m.lower() for m in re.findall(r"\b(?:FROM|JOIN)\s+\"?([A-Za-z_]+)", statement, flags=re.IGNORECASE)}


def resource_columns(statement: str) -> set[str]:
    return set(re.findall(r"\bresources\.(\w+)", statement))


def check_statement(statement: str) -> str:
    """Classify one SELECT: 'index' (may not touch bodies) or 'body-by-key'."""
    tables = tables_of(statement)
    assert tables, statement
    assert all(t == "resources" or INDEX_TABLE.match(t) for t in tables), statement
    columns = resource_columns(statement)
    if "body" in columns:
        # a body read: from resources alone, by (res_type, res_id) and nothing else
        assert tables == {"resources"}, statement
        where = statement.split(" WHERE ", 1)[1]
        assert set(re.findall(r"\bresources\.(\w+)", where)) <= {"res_type", "res_id"}, statement
        assert not re.search(r"\b(LIKE|json|->>|substr|instr)\b", where, flags=re.IGNORECASE), statement
        return "body-by-key"
    assert columns <= BOOKKEEPING, statement
    assert "body" not in statement.lower().replace("resources.body", ""), statement
    return "index"


@pytest.mark.parametrize(
    "query",
    [
        f"Patient?identifier={MRN}|M001",
        "Patient?name:contains=ang&_sort=-birthdate,family",
        "Patient?birthdate=ge1950&birthdate=lt1980&gender:not=male",
        "Patient?_tag:not=vip&_lastUpdated=gt2000-01-01&_count=2&_offset=1",
        "MedicationRequest?patient.identifier=http://example.org/mrn|M001&_include=MedicationRequest:medication",
        "MedicationRequest?dispense-quantity=gt20&_sort=-dispense-quantity&_total=accurate",
        f"InventoryReport?item-code-quantity={DRUG}|XC08CAA001$gt100",
        "Organization?_source:below=http://his.county.example&_revinclude=Patient:organization",
        "Patient?_id=pat-wang&_revinclude=MedicationRequest:subject&_include:iterate=MedicationRequest:medication",
        "Medication?code:text=amlo&_summary=true",
        "Patient?gender=female&_summary=count",
    ],
)
def test_search_sql_uses_only_the_index_and_reads_bodies_by_key(
    dataset: Dataset, statements: list[str], query: str
) -> None:
    response = dataset.client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.text
    # the in-process event relay polls the outbox on the same engine: not part of the search
    selects = [s for s in statements if s.upper().startswith(("SELECT", "WITH")) and "outbox" not in tables_of(s)]
    assert selects
    kinds = [check_statement(s) for s in selects]
    assert "index" in kinds
    entries = response.json().get("entry", [])
    if entries:
        assert "body-by-key" in kinds
    else:
        assert "body-by-key" not in kinds
    writes = [
        s for s in statements if s.upper().startswith(("INSERT", "UPDATE", "DELETE")) and "outbox" not in s.split()[:3]
    ]
    assert writes == []


def test_the_checker_itself_rejects_a_body_scan() -> None:
    scan = "SELECT resources.res_id FROM resources WHERE resources.body LIKE '%Wang%'"
    with pytest.raises(AssertionError):
        check_statement(scan)
    json_filter = (
        "SELECT resources.res_id, resources.body FROM resources "
        "WHERE resources.res_type = ? AND json_extract(resources.body, '$.gender') = ?"
    )
    with pytest.raises(AssertionError):
        check_statement(json_filter)
    assert check_statement("SELECT resources.res_id FROM resources WHERE resources.res_type = ?") == "index"
