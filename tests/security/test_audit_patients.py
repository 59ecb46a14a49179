"""The patients an audit record names: the fast scan finds exactly what the reference regex
finds (the regex is the oracle), on the demo alliance, the golden files and edge cases."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import orjson
import pytest

from gateway.demo import demo_bundle
from gateway.security.audit import patient_refs

GOLDEN = Path(__file__).parents[1] / "golden"
#: the regex the audit trail used before patient_refs: any ``"reference"`` whose value ends in
#: ``Patient/ID`` (relative or absolute, with or without ``_history``)
_PATIENT_REF = re.compile(rb'"reference"\s*:\s*"(?:[^"]*/)?Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^"]*)?"')


def oracle(body: bytes) -> list[str]:
    return [m.decode() for m in _PATIENT_REF.findall(body)]


def _bodies() -> list[bytes]:
    bodies = [orjson.dumps(e["resource"]) for e in demo_bundle()["entry"]]
    for path in sorted(GOLDEN.rglob("*.json"))[:400]:
        try:
            bodies.append(json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=1).encode())
        except (ValueError, UnicodeDecodeError):
            continue
    return bodies


def test_same_patients_as_the_regex_on_real_resources() -> None:
    bodies = _bodies()
    assert len(bodies) > 50
    assert sum(bool(oracle(b)) for b in bodies) > 10  # the corpus does name patients
    for body in bodies:
        assert patient_refs(body) == oracle(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"subject":{"reference":"Patient/p1"}}',
        b'{"subject":{"reference" : "Patient/p1"}}',
        b'{"subject":{"reference"\n:\t"Patient/p1"}}',
        b'{"subject":{"reference":"http://x/fhir/Patient/p-2.a"}}',
        b'{"subject":{"reference":"Patient/p1/_history/3"}}',
        b'{"subject":{"reference":"Patient/Patient/x"}}',
        b'{"subject":{"display":"Patient/p1"}}',
        b'{"subject":{"reference":"Group/g1","display":"Patient/p9"}}',
        b'{"a":{"reference":"Patient/' + b"x" * 70 + b'"}}',
        b'{"a":{"reference":"Patient/p1"},"b":[{"reference":"Patient/p2"},{"reference":"Practitioner/d"}]}',
        b'{"text":"see Patient/p1\\" and \\"reference\\":\\"Patient/p2\\""}',
        b'{"reference":"xPatient/p1"}',
        b'{"xreference":"Patient/p1"}',
        b'Patient/p1"',
        b"",
    ],
)
def test_same_patients_as_the_regex_on_edge_cases(body: bytes) -> None:
    assert patient_refs(body) == oracle(body)


def test_same_patients_as_the_regex_on_random_splices() -> None:
    """Fragments of references, keys, quotes and spaces spliced at random."""
    parts = [b'"reference"', b":", b" ", b'"', b"Patient/", b"p1", b"/", b"_history/2", b"x", b",", b"\n", b"{", b"}"]
    rng = random.Random(11)
    for _ in range(3000):
        body = b"".join(rng.choice(parts) for _ in range(rng.randrange(1, 18)))
        assert patient_refs(body) == oracle(body), body
