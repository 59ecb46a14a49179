"""Property-based: random bytes and mutated messages through the ingest pipeline never crash and
always produce an answer - an ACK for MLLP, a Bundle or OperationOutcome for HTTP."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from ingest_support import GOLDEN

from gateway.hooks import RequestContext
from gateway.ingest.journal import Journal
from gateway.ingest.mllp import hl7_reply
from gateway.ingest.pipeline import IngestPipeline, convert
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import open_store

SEEDS = [p.read_bytes() for p in sorted(GOLDEN.glob("*/*.hl7"))]
CTX = RequestContext(base_url="http://fuzz/fhir", interaction="mllp")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestPipeline]:
    settings = Settings(database=f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.sqlite'}")
    store = open_store(settings.database)
    store.create_schema()
    yield IngestPipeline(FhirService(store, settings), Journal(store))
    store.dispose()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    message = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "separator"]))
        pos = draw(st.integers(0, max(len(message) - 1, 0)))
        if kind == "flip" and message:
            message[pos] = draw(st.integers(0, 255))
        elif kind == "delete":
            del message[pos : pos + draw(st.integers(1, 40))]
        elif kind == "insert":
            message[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        else:
            message[pos:pos] = draw(st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"\\X", b"\\E\\"]))
    return bytes(message)


INPUTS = st.one_of(st.binary(max_size=300), mutated())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=INPUTS)
def test_mllp_path_always_acks(pipeline: IngestPipeline, raw: bytes) -> None:
    result = pipeline.ingest("hl7v2", raw, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert result.status in ("accepted", "rejected")
    assert result.reply is not None and result.reply.startswith(b"MSH|")
    assert b"\rMSA|A" in result.reply
    if result.status == "rejected":
        assert b"\rERR|" in result.reply


@settings(max_examples=120, deadline=None)
@given(raw=INPUTS)
def test_convert_never_raises(raw: bytes) -> None:
    bundle, issues = convert("hl7v2", raw)
    if bundle is None:
        outcome = orjson.loads(orjson.dumps({"issue": [i.en for i in issues]}))
        assert outcome["issue"], "a failed conversion says why"
    else:
        assert bundle["resourceType"] == "Bundle"
