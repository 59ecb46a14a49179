"""A minimal FHIR R5 server on fhirstarter (PyPI) serving the gateway's MedicationRequests.

It reads the same rows from the same database as the gateway (``BENCH_DATABASE``), rather than
holding 100k parsed models in memory: per request it fetches the stored bytes by primary key
(read) or through the gateway's index table (``patient`` search, same SQL as the floor), then
does what a fhirstarter provider does — return fhir.resources R5 models, which fhirstarter
validates and serialises. Create parses the body into a model (fhirstarter's validation) and
stores ``model_dump_json()`` under a new id, without index rows. Handlers are plain functions,
so FastAPI runs them in its thread pool, as the gateway runs its database work.
"""

# no "from __future__ import annotations": fhirstarter reads the handlers' annotations at runtime

import uuid
from datetime import UTC, datetime

from _bench_db import Database
from fhir.resources.bundle import Bundle
from fhir.resources.medicationrequest import MedicationRequest
from fhirstarter import FHIRProvider, FHIRStarter, InteractionContext
from fhirstarter.exceptions import FHIRResourceNotFoundError

db = Database()
provider = FHIRProvider()


@provider.read(MedicationRequest)
def medication_request_read(context: InteractionContext, id_: str) -> MedicationRequest:
    body = db.read("MedicationRequest", id_)
    if body is None:
        raise FHIRResourceNotFoundError
    return MedicationRequest.model_validate_json(body)


@provider.search_type(MedicationRequest)
def medication_request_search(context: InteractionContext, patient: str | None) -> Bundle:
    bodies = db.search_patient("MedicationRequest", (patient or "").removeprefix("Patient/"))
    entries = [{"resource": MedicationRequest.model_validate_json(b)} for b in bodies]
    return Bundle(type="searchset", total=len(entries), entry=entries or None)


@provider.create(MedicationRequest)
def medication_request_create(context: InteractionContext, resource: MedicationRequest) -> str:
    resource.id = str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    db.insert("MedicationRequest", resource.id, now, resource.model_dump_json().encode())
    return resource.id


app = FHIRStarter(title="fhirstarter comparison app")
app.add_providers(provider)
