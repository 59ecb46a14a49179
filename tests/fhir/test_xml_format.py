"""FHIR XML <-> JSON conversion against the official R5 examples and hand-written documents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.fhir import definitions
from gateway.fhir.xml_format import FHIR_NS, XHTML_NS, FhirFormatError, json_to_xml, xml_to_json

EXAMPLES = sorted((Path(__file__).parent.parent / "fixtures" / "r5-examples").glob("*.json"))


@dataclass(frozen=True)
class Number:
    """A JSON number as its source text: ``6.10`` != ``6.1`` and a number != a string."""

    text: str


def exact(text: bytes | str) -> Any:
    return json.loads(text, parse_float=Number, parse_int=Number)


def canonical_div(div: str) -> bytes:
    """Narrative XHTML as canonical XML (C14N 2.0).

    The JSON form of the narrative is an XHTML *string*; going through XML keeps its infoset,
    not its spelling. Across the official examples the only differences are that ``&quot;``
    in text comes back as a literal ``"`` and that tabs/newlines inside start tags or
    attribute values come back as spaces (XML attribute-value normalisation, which applied
    to the original string too). Canonical XML removes exactly these spelling choices, so
    any change of elements, attributes or text still fails the comparison.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.tostring(etree.fromstring(div.encode(), parser), method="c14n2")


def normalise_narratives(resource: Any) -> Any:
    if isinstance(resource, dict):
        return {
            key: canonical_div(value) if key == "div" and isinstance(value, str) else normalise_narratives(value)
            for key, value in resource.items()
        }
    if isinstance(resource, list):
        return [normalise_narratives(item) for item in resource]
    return resource


def assert_fhir_structure(node: etree._Element, context: str) -> None:
    """Every child is a known element of ``context``, in definition order, recursively."""
    last_order = -1
    for name in node.attrib:
        info = definitions.element(context, name)
        assert info is not None and info.is_xml_attribute, f"attribute {name} on {context}"
    for child in node:
        qname = etree.QName(child)
        if qname.namespace == XHTML_NS:
            assert qname.localname == "div" and context == "Narrative"
            continue
        assert qname.namespace == FHIR_NS, child.tag
        info = definitions.element(context, qname.localname)
        assert info is not None, f"{qname.localname} is not an element of {context}"
        assert info.order >= last_order, f"{qname.localname} out of order in {context}"
        last_order = info.order
        if info.json_kind == "resource":
            (resource,) = list(child)
            assert_resource_structure(resource)
        elif info.json_kind == "object":
            assert_fhir_structure(child, info.children or info.type)
        else:
            assert set(child.attrib) <= {"id", "value"}
            for extension in child:
                assert extension.tag == f"{{{FHIR_NS}}}extension"
                assert_fhir_structure(extension, "Extension")


def assert_resource_structure(root: etree._Element) -> None:
    qname = etree.QName(root)
    assert qname.namespace == FHIR_NS
    assert qname.localname in definitions.resource_types()
    assert_fhir_structure(root, qname.localname)


def test_examples_are_present() -> None:
    assert len(EXAMPLES) >= 180


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_official_example_round_trips_through_xml(path: Path) -> None:
    original = path.read_bytes()
    xml = json_to_xml(original)

    root = etree.fromstring(xml)
    assert_resource_structure(root)

    back = xml_to_json(xml)
    assert normalise_narratives(exact(back)) == normalise_narratives(exact(original))
    # The XML written from the converted JSON is the same document again.
    assert xml_to_json(json_to_xml(back)) == back


# ----------------------------------------------------------------------- hand-written XML

PATIENT_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root -->
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xmlns:h="http://www.w3.org/1999/xhtml"
         xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
  <id value="p1"/>
  <text>
    <status value="generated"/>
    <h:div><h:p>Peter &amp; <h:b>James</h:b></h:p></h:div>
  </text>
  <contained>
    <Organization>
      <id value="org1"/>
      <name value="County Hospital"/>
    </Organization>
  </contained>
  <extension url="http://example.org/ext">
    <valueBoolean value="true"/>
  </extension>
  <active value="false"/>
  <name id="n1">
    <!-- comments inside are dropped -->
    <family value="Chalmers"/>
    <given value="Peter"/>
    <given id="g2">
      <extension url="http://hl7.org/fhir/StructureDefinition/data-absent-reason">
        <valueCode value="masked"/>
      </extension>
    </given>
    <given value="James"/>
  </name>
  <birthDate value="1974-12-25">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1974-12-25T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="+2"/>
  <managingOrganization>
    <reference value="#org1"/>
  </managingOrganization>
</Patient>
"""

PATIENT_JSON = {
    "resourceType": "Patient",
    "id": "p1",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Peter &amp; <b>James</b></p></div>',
    },
    "contained": [{"resourceType": "Organization", "id": "org1", "name": "County Hospital"}],
    "extension": [{"url": "http://example.org/ext", "valueBoolean": True}],
    "active": False,
    "name": [
        {
            "id": "n1",
            "family": "Chalmers",
            "given": ["Peter", None, "James"],
            "_given": [
                None,
                {
                    "id": "g2",
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                            "valueCode": "masked",
                        }
                    ],
                },
                None,
            ],
        }
    ],
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "multipleBirthInteger": Number("2"),
    "managingOrganization": {"reference": "#org1"},
}


def test_hand_written_patient_xml() -> None:
    text = xml_to_json(PATIENT_XML)
    # The narrative (written with an h: prefix in XML) declares XHTML as its default namespace
    # and leaks no other declaration in scope (xsi, h).
    assert exact(text) == PATIENT_JSON


OBSERVATION_XML = b"""<Observation xmlns="http://hl7.org/fhir">
  <status value="final"/>
  <code><text value="glucose"/></code>
  <valueQuantity>
    <value value="6.10"/>
    <unit value="mmol/L"/>
  </valueQuantity>
  <component>
    <code><text value="scan"/></code>
    <valueAttachment>
      <size value="9007199254740993"/>
    </valueAttachment>
  </component>
  <component>
    <code><text value="ratio"/></code>
    <valueRatio>
      <numerator><value value="1.0E3"/></numerator>
      <denominator><value value="-0.000"/></denominator>
    </valueRatio>
  </component>
</Observation>"""


def test_numbers_keep_their_xml_text_and_integer64_is_a_string() -> None:
    text = xml_to_json(OBSERVATION_XML)
    assert b'"value":6.10' in text
    assert b'"size":"9007199254740993"' in text
    assert b'"value":1.0E3' in text
    assert b'"value":-0.000' in text
    document = exact(text)
    assert document["valueQuantity"] == {"value": Number("6.10"), "unit": "mmol/L"}
    assert document["component"][0]["valueAttachment"] == {"size": "9007199254740993"}

    xml = json_to_xml(text)
    root = etree.fromstring(xml)
    ns = {"f": FHIR_NS}
    assert root.xpath("f:valueQuantity/f:value/@value", namespaces=ns) == ["6.10"]
    assert root.xpath("f:component/f:valueAttachment/f:size/@value", namespaces=ns) == ["9007199254740993"]
    assert exact(xml_to_json(xml)) == document


def test_bundle_and_parameters_wrap_resources_by_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "active": True}},
            {
                "resource": {
                    "resourceType": "Parameters",
                    "parameter": [
                        {"name": "n", "valueDecimal": Number("0.50")},
                        {
                            "name": "r",
                            "resource": {"resourceType": "Medication", "status": "active"},
                        },
                    ],
                }
            },
        ],
    }
    source = (
        b'{"resourceType":"Bundle","type":"collection","entry":['
        b'{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","active":true}},'
        b'{"resource":{"resourceType":"Parameters","parameter":[{"name":"n","valueDecimal":0.50},'
        b'{"name":"r","resource":{"resourceType":"Medication","status":"active"}}]}}]}'
    )
    xml = json_to_xml(source)
    root = etree.fromstring(xml)
    ns = {"f": FHIR_NS}
    assert root.xpath("f:entry[1]/f:resource/f:Patient/f:active/@value", namespaces=ns) == ["true"]
    assert root.xpath(
        "f:entry[2]/f:resource/f:Parameters/f:parameter[2]/f:resource/f:Medication/f:status/@value",
        namespaces=ns,
    ) == ["active"]
    # fullUrl precedes resource even though definition order, not JSON order, decides.
    assert [etree.QName(c).localname for c in root.find(f"{{{FHIR_NS}}}entry")] == [
        "fullUrl",
        "resource",
    ]
    assert exact(xml_to_json(xml)) == bundle


def test_json_member_order_does_not_matter_for_xml_order() -> None:
    source = b'{"gender":"male","name":[{"given":["A"],"family":"B"}],"resourceType":"Patient"}'
    root = etree.fromstring(json_to_xml(source))
    assert [etree.QName(c).localname for c in root] == ["name", "gender"]
    assert [etree.QName(c).localname for c in root[0]] == ["family", "given"]


def test_extension_url_and_element_id_are_attributes() -> None:
    source = (
        b'{"resourceType":"Patient","name":[{"id":"x1","extension":'
        b'[{"url":"http://e.org/a","valueString":"v"}],"family":"F"}]}'
    )
    root = etree.fromstring(json_to_xml(source))
    name = root[0]
    assert name.get("id") == "x1"
    assert name[0].get("url") == "http://e.org/a"
    assert name[0][0].tag == f"{{{FHIR_NS}}}valueString"


def test_json_output_is_compact_utf8() -> None:
    xml = '<Patient xmlns="http://hl7.org/fhir"><name><family value="王"/></name></Patient>'
    assert xml_to_json(xml.encode()) == ('{"resourceType":"Patient","name":[{"family":"王"}]}'.encode())


def test_newlines_in_strings_survive_xml() -> None:
    source = b'{"resourceType":"Patient","name":[{"text":"line 1\\nline\\t2"}]}'
    assert exact(xml_to_json(json_to_xml(source))) == exact(source)


# ------------------------------------------------------------------------------ rejections

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol4;"/></name></Patient>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>"""

DOCTYPE_ONLY = b"""<!DOCTYPE Patient SYSTEM "http://example.org/patient.dtd">
<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, DOCTYPE_ONLY], ids=["laughs", "xxe", "dtd"])
def test_dtd_and_entities_are_rejected(payload: bytes) -> None:
    with pytest.raises(FhirFormatError, match=r"DOCTYPE|entit"):
        xml_to_json(payload)


def test_dtd_in_narrative_string_is_rejected() -> None:
    div = '<!DOCTYPE div [<!ENTITY a "aaaaaaaa">]><div xmlns="http://www.w3.org/1999/xhtml">&a;</div>'
    resource = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    source = json.dumps(resource).encode()
    with pytest.raises(FhirFormatError) as caught:
        json_to_xml(source)
    assert caught.value.location == "Patient.text.div"


def test_unknown_element_reports_its_xpath() -> None:
    xml = b"""<Patient xmlns="http://hl7.org/fhir">
      <name><family value="A"/></name>
      <name><given value="B"/><given value="C"/><nickname value="D"/></name>
    </Patient>"""
    with pytest.raises(FhirFormatError) as caught:
        xml_to_json(xml)
    assert caught.value.location == "/f:Patient/f:name[2]/f:nickname[1]"
    assert "nickname" in caught.value.message


def test_bad_decimal_reports_its_xpath() -> None:
    xml = b"""<Observation xmlns="http://hl7.org/fhir"><status value="final"/>
      <code><text value="x"/></code>
      <component><code><text value="a"/></code><valueInteger value="1"/></component>
      <component><code><text value="b"/></code>
        <valueQuantity><value value="6,10"/></valueQuantity></component>
    </Observation>"""
    with pytest.raises(FhirFormatError) as caught:
        xml_to_json(xml)
    assert caught.value.location == "/f:Observation/f:component[2]/f:valueQuantity[1]/f:value[1]/@value"
    assert "6,10" in caught.value.message


@pytest.mark.parametrize(
    ("xml", "location"),
    [
        (
            b'<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>',
            "/f:Patient/f:active[1]/@value",
        ),
        (
            b'<Patient xmlns="http://hl7.org/fhir"><multipleBirthInteger value="1.5"/></Patient>',
            "/f:Patient/f:multipleBirthInteger[1]/@value",
        ),
        (
            b'<Patient xmlns="http://hl7.org/fhir"><active value="true"/><active value="true"/></Patient>',
            "/f:Patient/f:active[2]",
        ),
        (
            b'<Patient xmlns="http://example.org"><active value="true"/></Patient>',
            "/*[local-name()='Patient']",
        ),
        (
            b'<Patient xmlns="http://hl7.org/fhir"><active value="true" xmlns="urn:x"/></Patient>',
            "/f:Patient/*[local-name()='active'][1]",
        ),
        (b'<Unicorn xmlns="http://hl7.org/fhir"/>', "/f:Unicorn"),
        (
            b'<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/>'
            b"<div>no xhtml namespace</div></text></Patient>",
            "/f:Patient/f:text[1]/f:div[1]",
        ),
        (
            b'<Patient xmlns="http://hl7.org/fhir">oops<active value="true"/></Patient>',
            "/f:Patient",
        ),
        (b'<Patient xmlns="http://hl7.org/fhir"><active value="true"></Patient>', "/"),
    ],
    ids=[
        "boolean",
        "integer",
        "repeated",
        "namespace",
        "child-namespace",
        "type",
        "div",
        "text",
        "malformed",
    ],
)
def test_invalid_xml_is_located(xml: bytes, location: str) -> None:
    with pytest.raises(FhirFormatError) as caught:
        xml_to_json(xml)
    assert caught.value.location == location


@pytest.mark.parametrize(
    ("source", "location"),
    [
        (b'{"resourceType":"Patient","name":[{"nickname":"x"}]}', "Patient.name[0].nickname"),
        (b'{"resourceType":"Patient","active":"true"}', "Patient.active"),
        (b'{"resourceType":"Patient","multipleBirthInteger":"2"}', "Patient.multipleBirthInteger"),
        (b'{"resourceType":"Patient","multipleBirthInteger":2.5}', "Patient.multipleBirthInteger"),
        (b'{"resourceType":"Patient","name":{"family":"x"}}', "Patient.name"),
        (b'{"resourceType":"Patient","gender":["male"]}', "Patient.gender"),
        (b'{"resourceType":"Patient","name":[{"given":["a",null]}]}', "Patient.name[0].given[1]"),
        (b'{"resourceType":"Unicorn"}', "$"),
        (b'{"resourceType":"Patient","contained":[{"id":"x"}]}', "Patient.contained[0]"),
        (b'{"resourceType":"Patient","name":[{"text":"a\\u0001b"}]}', "Patient.name[0].text"),
        (b'{"resourceType":"Medication","totalVolume":{"value":NaN}}', "$"),
        (b'{"resourceType":"Patient",', "line 1"),
    ],
    ids=[
        "unknown",
        "boolean",
        "number",
        "integer",
        "array",
        "single",
        "null",
        "type",
        "contained",
        "control-char",
        "nan",
        "malformed",
    ],
)
def test_invalid_json_is_located(source: bytes, location: str) -> None:
    with pytest.raises(FhirFormatError) as caught:
        json_to_xml(source)
    assert caught.value.location == location


def test_json_decimal_text_reaches_xml_unchanged() -> None:
    source = b'{"resourceType":"Medication","totalVolume":{"value":6.10,"unit":"mL"}}'
    root = etree.fromstring(json_to_xml(source))
    assert root.xpath("f:totalVolume/f:value/@value", namespaces={"f": FHIR_NS}) == ["6.10"]


def test_deeply_nested_json_is_a_format_error_not_a_crash() -> None:
    depth = 1500
    source = (
        b'{"resourceType":"Questionnaire","status":"draft"'
        + b',"item":[{"linkId":"a","type":"group"' * depth
        + b"}]" * depth
        + b"}"
    )
    with pytest.raises(FhirFormatError, match="nested too deeply"):
        json_to_xml(source)
