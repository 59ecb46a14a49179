"""Spot checks of the generated R5 definitions against facts of the FHIR R5 specification."""

from __future__ import annotations

from gateway.fhir import definitions


def test_medication_request_subject_is_a_single_mandatory_reference() -> None:
    subject = definitions.element("MedicationRequest", "subject")
    assert subject is not None
    assert subject.type == "Reference"
    assert subject.json_kind == "object"
    assert not subject.is_array
    assert subject.min == 1
    assert subject.is_summary
    assert set(subject.targets) == {"Patient", "Group"}


def test_patient_name_is_an_array_of_human_names() -> None:
    name = definitions.element("Patient", "name")
    assert name is not None
    assert name.is_array and name.type == "HumanName" and name.children == "HumanName"
    given = definitions.element("HumanName", "given")
    assert given is not None and given.is_array and given.json_kind == "string"


def test_observation_value_choice_names() -> None:
    names = {info.name for info in definitions.ordered_elements("Observation") if info.path == "Observation.value[x]"}
    assert names == {
        "valueQuantity",
        "valueCodeableConcept",
        "valueString",
        "valueBoolean",
        "valueInteger",
        "valueRange",
        "valueRatio",
        "valueSampledData",
        "valueTime",
        "valueDateTime",
        "valuePeriod",
        "valueAttachment",
        "valueReference",
    }
    quantity = definitions.element("Observation", "valueQuantity")
    assert quantity is not None and quantity.is_choice and quantity.type == "Quantity"
    assert definitions.element("Observation", "value") is None
    boolean = definitions.element("Observation", "valueBoolean")
    assert boolean is not None and boolean.json_kind == "boolean"


def test_primitive_json_representations() -> None:
    assert definitions.primitive_json_kind("integer64") == "string"
    assert definitions.primitive_json_kind("decimal") == "number"
    assert definitions.primitive_json_kind("unsignedInt") == "number"
    assert definitions.primitive_json_kind("positiveInt") == "number"
    assert definitions.primitive_json_kind("boolean") == "boolean"
    assert definitions.primitive_json_kind("date") == "string"
    assert definitions.primitive_json_kind("HumanName") is None
    size = definitions.element("Attachment", "size")
    assert size is not None and size.type == "integer64" and size.json_kind == "string"


def test_xml_attributes_and_order() -> None:
    url = definitions.element("Extension", "url")
    assert url is not None and url.is_xml_attribute and url.type == "uri"
    element_id = definitions.element("HumanName", "id")
    assert element_id is not None and element_id.is_xml_attribute
    resource_id = definitions.element("Patient", "id")
    assert resource_id is not None and not resource_id.is_xml_attribute
    order = [info.name for info in definitions.ordered_elements("Patient")][:9]
    assert order == [
        "id",
        "meta",
        "implicitRules",
        "language",
        "text",
        "contained",
        "extension",
        "modifierExtension",
        "identifier",
    ]


def test_backbone_and_content_reference_contexts() -> None:
    dosage = definitions.element("MedicationRequest", "dispenseRequest")
    assert dosage is not None and dosage.children == "MedicationRequest.dispenseRequest"
    quantity = definitions.element("MedicationRequest.dispenseRequest", "quantity")
    assert quantity is not None and quantity.type == "Quantity"
    nested = definitions.element("Questionnaire.item", "item")
    assert nested is not None and nested.children == "Questionnaire.item" and nested.is_array
    repeat = definitions.element("Timing", "repeat")
    assert repeat is not None and repeat.children == "Timing.repeat"
    contained = definitions.element("Patient", "contained")
    assert contained is not None and contained.json_kind == "resource"
    div = definitions.element("Narrative", "div")
    assert div is not None and div.json_kind == "xhtml"


def test_resource_types_are_the_concrete_resources() -> None:
    types = definitions.resource_types()
    assert {"MedicationRequest", "SupplyDelivery", "InventoryReport", "Bundle"} <= types
    assert "DomainResource" not in types and "Resource" not in types
    assert "HumanName" not in types
    assert len(types) == 158  # concrete resource StructureDefinitions in hl7.fhir.r5.core 5.0.0


def test_summary_and_mandatory_elements() -> None:
    summary = definitions.summary_elements("MedicationRequest")
    assert {"id", "meta", "status", "intent", "subject", "medication"} <= summary
    assert "text" not in summary and "note" not in summary
    assert definitions.mandatory_elements("MedicationRequest") == {
        "status",
        "intent",
        "medication",
        "subject",
    }
    assert "deceasedBoolean" in definitions.summary_elements("Patient")


def test_search_parameters_include_medication_request_patient() -> None:
    params = definitions.search_parameters()
    assert len(params) > 1000
    matches = [p for p in params if p["code"] == "patient" and "MedicationRequest" in p["base"]]
    assert len(matches) == 1
    (patient,) = matches
    assert patient["type"] == "reference"
    assert "MedicationRequest.subject.where(resolve() is Patient)" in patient["expression"]
    assert "Patient" in patient["target"]


def test_composite_search_parameter_components() -> None:
    by_url = {p["url"]: p for p in definitions.search_parameters()}
    combo = by_url["http://hl7.org/fhir/SearchParameter/Observation-code-value-quantity"]
    assert combo["type"] == "composite"
    assert [c["expression"] for c in combo["component"]] == ["code", "value.ofType(Quantity)"]
