#!/usr/bin/env python
"""Build the alliance conformance resources in ``profiles/``.

The profiles, extensions and terminology are authored here as compact Python data; this script
turns them into FHIR R5 JSON: StructureDefinitions with a differential *and* a generated snapshot
(the snapshot is derived from the official R5 base definitions), CodeSystems, ValueSets,
NamingSystems, SearchParameters, expansions of the core value sets our required bindings use, and
the valid/invalid examples with their expected findings (``profiles/examples/index.json``).

The R5 core package (npm ``hl7.fhir.r5.core@5.0.0``) is only needed here, never at run time::

    python scripts/build_profiles.py [--core /tmp/fhirpkg/hl7.fhir.r5.core-5.0.0/package] [--out DIR]

tests/profiles/test_build_profiles.py runs it on the part of the package it reads
(tests/fixtures/r5-core-subset, see scripts/core_subset.py) and compares the output with profiles/.

Generated files are committed; rerun after changing anything below.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from gateway.validation.identifiers import FORMATS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "profiles"
CORE_DEFAULT = Path("/tmp/fhirpkg/hl7.fhir.r5.core-5.0.0/package")

BASE = "http://yaolian.org/fhir"
SD = f"{BASE}/StructureDefinition"
CS = f"{BASE}/CodeSystem"
VS = f"{BASE}/ValueSet"
SID = f"{BASE}/sid"
DATE = "2025-03-01"
VERSION = "0.1.0"
PUBLISHER = "Yaolian county medical alliance gateway"

# identifier / code systems (DOMAIN.md); national OIDs as urn:oid
SYS_RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
SYS_RX_NO = "urn:oid:2.16.156.10011.1.20"
SYS_INSTITUTION = "urn:oid:2.16.156.10011.1.5"
SYS_OUTPATIENT_NO = "urn:oid:2.16.156.10011.1.11"
SYS_DEPARTMENT = "urn:oid:2.16.156.10011.1.26"
SYS_ROUTE = "urn:oid:2.16.156.10011.2.3.1.158"
SYS_DOSE_FORM = "urn:oid:2.16.156.10011.2.3.1.211"
SYS_ICD10 = "urn:oid:2.16.156.10011.2.3.3.11.1"
SYS_SEX = "urn:oid:2.16.156.10011.2.3.3.4"
SYS_RX_CATEGORY_WS = "urn:oid:2.16.156.10011.2.3.2.40"
SYS_FIXMEDINS = f"{SID}/fixmedins-code"
SYS_DR_CODE = f"{SID}/nhsa-physician-code"
SYS_PSN_NO = f"{SID}/nhsa-psn-no"
SYS_HI_RXNO = f"{SID}/hi-rxno"
SYS_RX_TRACE = f"{SID}/rx-trace-code"
SYS_DRUG_CODE = f"{SID}/nhsa-drug-code"
SYS_STANDARD_CODE = f"{SID}/drug-standard-code"
SYS_LOCAL_DRUG = f"{SID}/member-drug-code"
SYS_TRACE_CODE = f"{SID}/drug-trace-code"
SYS_MEMBER = f"{SID}/member"
UCUM = "http://unitsofmeasure.org"

CS_TIER = f"{CS}/alliance-tier"
CS_RX_CATEGORY = f"{CS}/prescription-category"
CS_CHRONIC = f"{CS}/chronic-disease-group"
CS_SUPPLY_KIND = f"{CS}/supply-request-kind"
CS_REVIEW = f"{CS}/review-result"
CS_DEMAND_REASON = f"{CS}/demand-reason"


# --------------------------------------------------------------------------------------------
# terminology
# --------------------------------------------------------------------------------------------


def code_system(cs_id: str, title: str, zh: str, desc: str, concepts: list[tuple[str, str, str, str]]) -> dict:
    """concepts: (code, english display, chinese display, definition)."""
    return {
        "resourceType": "CodeSystem",
        "id": cs_id,
        "url": f"{CS}/{cs_id}",
        "version": VERSION,
        "name": "".join(p.title() for p in cs_id.split("-")),
        "title": f"{title} {zh}",
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": desc,
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": [
            {
                "code": code,
                "display": en,
                "definition": definition,
                "designation": [{"language": "zh-CN", "value": zh_display}],
            }
            for code, en, zh_display, definition in concepts
        ],
    }


def value_set(vs_id: str, title: str, zh: str, desc: str, include: list[dict]) -> dict:
    return {
        "resourceType": "ValueSet",
        "id": vs_id,
        "url": f"{VS}/{vs_id}",
        "version": VERSION,
        "name": "".join(p.title() for p in vs_id.split("-")),
        "title": f"{title} {zh}",
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": desc,
        "compose": {"include": include},
    }


def terminology() -> list[dict]:
    out: list[dict] = []
    out.append(
        code_system(
            "alliance-tier",
            "Alliance tier",
            "医联体层级",
            "The tier of a member in a county medical alliance: county hospital, township health "
            "centre or village clinic (POL-03).",
            [
                ("county", "County", "县级", "County-level hospital, usually the alliance lead."),
                ("township", "Township", "乡镇", "Township health centre / community centre."),
                ("village", "Village", "村", "Village clinic / community health station."),
            ],
        )
    )
    out.append(
        code_system(
            "endpoint-kind",
            "Endpoint kind",
            "成员接入方式",
            "How the gateway reaches an alliance member (Endpoint.connectionType, issue 13, POL-08): its "
            "data is pushed and stored here, or it is asked live at query time.",
            [
                (
                    "pushed",
                    "Pushed",
                    "推送",
                    "Data arrives over an adapter (HL7 v2, files) and is stored by the gateway.",
                ),
                ("fhir-r5", "FHIR R5 server", "FHIR R5 服务", "A FHIR R5 server asked live; address is its base."),
                ("fhir-r4", "FHIR R4 server", "FHIR R4 服务", "A FHIR R4 server asked live; answers translated to R5."),
                (
                    "sql-view",
                    "Database view",
                    "数据库视图",
                    "A read-only database view of the member's HIS asked live through the sqlview adapter; "
                    "address is yaolian-sqlview:NAME, NAME a connection of the gateway's settings.",
                ),
            ],
        )
    )
    out.append(
        code_system(
            "prescription-category",
            "Prescription category",
            "处方类别",
            "Prescription categories of the 处方管理办法 (2007), mapped to WS 364 "
            "2.16.156.10011.2.3.2.40 where the national code list is used (POL-06).",
            [
                ("general", "General", "普通处方", "Ordinary prescription."),
                ("emergency", "Emergency", "急诊处方", "Emergency prescription (at most 3 days)."),
                ("pediatric", "Pediatric", "儿科处方", "Pediatric prescription."),
                (
                    "narcotic",
                    "Narcotic / psychotropic I",
                    "麻醉药品和第一类精神药品处方",
                    "Narcotic and class I psychotropic drugs.",
                ),
                ("psychotropic-2", "Psychotropic II", "第二类精神药品处方", "Class II psychotropic drugs."),
                ("chinese-herbal", "Chinese herbal", "中药饮片处方", "Chinese herbal pieces."),
            ],
        )
    )
    chronic = code_system(
        "chronic-disease-group",
        "Chronic disease group",
        "慢病分组",
        "Chronic-disease groups of the 2024 opinion whose drugs are exempt from 一品两规 and linked "
        "between village and township (POL-03, POL-05); each groups an ICD-10 code range.",
        [
            ("hypertension", "Hypertension", "高血压", "Hypertensive diseases, ICD-10 I10–I15."),
            ("diabetes", "Diabetes", "糖尿病", "Diabetes mellitus, ICD-10 E10–E14."),
            ("copd", "COPD", "慢阻肺病", "Chronic obstructive pulmonary disease, ICD-10 J44."),
        ],
    )
    chronic["property"] = [{"code": "icd10-range", "type": "string", "description": "ICD-10 category range"}]
    ranges = {"hypertension": "I10-I15", "diabetes": "E10-E14", "copd": "J44-J44"}
    for concept in chronic["concept"]:
        concept["property"] = [{"code": "icd10-range", "valueString": ranges[concept["code"]]}]
    out.append(chronic)
    out.append(
        code_system(
            "supply-request-kind",
            "Supply request kind",
            "供应申请类别",
            "What a SupplyRequest is in the alliance: a demand-plan line (POL-11), a shortage "
            "registration (POL-16) or a transfer between members (POL-15).",
            [
                ("demand-plan", "Demand plan line", "需求计划", "A line of a member's demand plan."),
                ("shortage", "Shortage registration", "缺药登记", "A patient registered a drug missing at the member."),
                ("transfer", "Transfer", "调剂", "Surplus/deficit dispatch between two members."),
            ],
        )
    )
    out.append(
        code_system(
            "stock-alert",
            "Stock alert",
            "库存预警",
            "What a stock alert (a DetectedIssue written by gateway.alliance.supply, docs/supply.md) is "
            "about: its code and category, and what the stock-alert SubscriptionTopics trigger on (POL-14, "
            "POL-15).",
            [
                (
                    "below-alert-line",
                    "Below the alert line",
                    "低于库存警戒线",
                    "Stock of a drug at a member is strictly below its alert line.",
                ),
                (
                    "expiring-batch",
                    "Expiring batch",
                    "近效期批次",
                    "A batch held at a member expires within the expiry window.",
                ),
            ],
        )
    )
    out.append(
        code_system(
            "review-result",
            "Central review result",
            "集中审方结果",
            "Result of the county-wide central prescription pre-review (前置审核, POL-06).",
            [
                ("pass", "Pass", "通过", "No problem found."),
                ("warn", "Pass with warnings", "提示通过", "Dispensable; the prescriber was told."),
                ("reject", "Rejected", "不通过", "Must be changed by the prescriber."),
                ("pending", "Pending", "待审", "Awaiting a pharmacist."),
            ],
        )
    )
    out.append(
        code_system(
            "demand-reason",
            "Demand reason",
            "需求原因",
            "Structural and seasonal needs a demand plan must consider (POL-11).",
            [
                ("emergency", "Emergency / rescue", "急（抢）救", "Emergency and rescue drugs."),
                ("chronic", "Chronic disease", "慢性病", "Chronic-disease drugs."),
                ("occupational", "Occupational disease", "职业病", "Occupational-disease drugs."),
                ("infectious", "Infectious disease", "传染病", "Infectious-disease drugs."),
                ("elderly", "Elderly", "老年人", "Drugs for the elderly."),
                ("women-children", "Women and children", "妇女儿童", "Drugs for women and children."),
                ("seasonal", "Seasonal", "季节性", "Seasonal demand."),
            ],
        )
    )
    for cs in list(out):
        out.append(
            value_set(
                cs["id"],
                cs["title"].rsplit(" ", 1)[0],
                cs["title"].rsplit(" ", 1)[1],
                f"All codes of {cs['url']}. {cs['description']}",
                [{"system": cs["url"]}],
            )
        )
    icd = "ICD-10 国家临床版 2.0 / 医保版 2.0 (" + SYS_ICD10 + ")"
    groups = [
        ("hypertension", "Hypertension diagnoses", "高血压诊断", r"^I1[0-5](\..*)?$"),
        ("diabetes", "Diabetes diagnoses", "糖尿病诊断", r"^E1[0-4](\..*)?$"),
        ("copd", "COPD diagnoses", "慢阻肺病诊断", r"^J44(\..*)?$"),
    ]
    for key, title, zh, regex in groups:
        out.append(
            value_set(
                f"chronic-{key}-icd10",
                title,
                zh,
                f"{icd} codes of the {key} group (POL-05).",
                [{"system": SYS_ICD10, "filter": [{"property": "code", "op": "regex", "value": regex}]}],
            )
        )
    out.append(
        value_set(
            "chronic-disease-icd10",
            "Chronic disease diagnoses",
            "慢病诊断",
            f"{icd} codes of hypertension, diabetes and COPD (POL-03, POL-05, POL-09).",
            [{"valueSet": [f"{VS}/chronic-{k}-icd10" for k, *_ in groups]}],
        )
    )
    out.append(
        value_set(
            "icd10-cn",
            "ICD-10 China",
            "疾病诊断编码",
            f"Any {icd} code; the code list is not distributed, the format is checked.",
            [{"system": SYS_ICD10}],
        )
    )
    out.append(
        value_set(
            "dose-form",
            "Dosage form",
            "剂型",
            f"WS 364 dosage form codes ({SYS_DOSE_FORM}); list not distributed.",
            [{"system": SYS_DOSE_FORM}],
        )
    )
    out.append(
        value_set(
            "route",
            "Route of administration",
            "用药途径",
            f"WS 364 route codes ({SYS_ROUTE}); list not distributed.",
            [{"system": SYS_ROUTE}],
        )
    )
    return out


NAMING_SYSTEMS = [
    # id, system, kind, name en, name zh, description (formats: identifiers.FORMATS)
    (
        "resident-id",
        SYS_RESIDENT_ID,
        "identifier",
        "Resident ID card number",
        "居民身份证号",
        "GB 11643-1999; 18 characters, ISO 7064 MOD 11-2 check character.",
    ),
    (
        "prescription-number",
        SYS_RX_NO,
        "identifier",
        "Hospital prescription number",
        "处方号",
        "WS 364 prescription number (hosp_rxno), unique within the issuing member.",
    ),
    ("outpatient-number", SYS_OUTPATIENT_NO, "identifier", "Outpatient number", "门诊号", "WS 364 outpatient number."),
    (
        "institution",
        SYS_INSTITUTION,
        "identifier",
        "Institution code",
        "医疗机构代码",
        "WS 364 medical institution code.",
    ),
    ("department", SYS_DEPARTMENT, "identifier", "Department code", "科室代码", "WS 364 department code."),
    (
        "fixmedins-code",
        SYS_FIXMEDINS,
        "identifier",
        "Insurance institution code",
        "定点医疗机构编码",
        "NHSA fixmedins_code: H (hospital) or P (pharmacy), 6-digit area code, 5-digit sequence.",
    ),
    (
        "nhsa-physician-code",
        SYS_DR_CODE,
        "identifier",
        "Insurance physician code",
        "医保医师代码",
        "NHSA dr_code; up to 20 characters (pattern unverified, length only).",
    ),
    ("nhsa-psn-no", SYS_PSN_NO, "identifier", "Insured person number", "医保人员编号", "NHSA psn_no."),
    (
        "hi-rxno",
        SYS_HI_RXNO,
        "identifier",
        "Insurance prescription number",
        "医保处方编号",
        "hiRxno returned by the insurance e-prescription pre-check (7101).",
    ),
    (
        "rx-trace-code",
        SYS_RX_TRACE,
        "identifier",
        "Prescription trace code",
        "处方追溯码",
        "rxTraceCode returned by the insurance e-prescription pre-check (7101).",
    ),
    (
        "nhsa-drug-code",
        SYS_DRUG_CODE,
        "codesystem",
        "National insurance drug code",
        "医保药品分类与代码",
        "med_list_codg; 23 characters, X = western, Z = Chinese patent medicine.",
    ),
    (
        "drug-standard-code",
        SYS_STANDARD_CODE,
        "codesystem",
        "Drug standard code",
        "国家药品编码本位码",
        "14 digits starting 869; the check digit is not verified.",
    ),
    (
        "member-drug-code",
        SYS_LOCAL_DRUG,
        "identifier",
        "Member local drug code",
        "院内药品编码",
        "fixmedins_hilist_id; unique per member (Identifier.assigner).",
    ),
    (
        "drug-trace-code",
        SYS_TRACE_CODE,
        "identifier",
        "Drug traceability code",
        "药品追溯码",
        "drug_trac_codg; 20 digits, first 7 identify the product, starts with 8 in practice.",
    ),
    (
        "member",
        SYS_MEMBER,
        "identifier",
        "Alliance member facility code",
        "医联体成员机构代码",
        "The code a member's HIS sends as its facility (HL7 v2 MSH-4); members are registered in "
        "the alliance with it and the HL7 v2 adapter references them by it (POL-03, POL-08).",
    ),
    ("icd10-cn", SYS_ICD10, "codesystem", "ICD-10 China", "疾病分类与代码", "ICD-10 国家临床版 2.0 / 医保版 2.0."),
    ("dose-form", SYS_DOSE_FORM, "codesystem", "Dosage form", "剂型代码", "WS 364 dosage form."),
    ("route", SYS_ROUTE, "codesystem", "Route of administration", "用药途径代码", "WS 364 route of administration."),
    ("sex", SYS_SEX, "codesystem", "Sex", "性别代码", "GB/T 2261.1 sex."),
]


def naming_systems() -> list[dict]:
    out = []
    for ns_id, system, kind, en, zh, desc in NAMING_SYSTEMS:
        fmt = FORMATS[system].pattern.pattern if system in FORMATS else None
        unique: list[dict] = []
        if system.startswith("urn:oid:"):
            unique.append({"type": "oid", "value": system.removeprefix("urn:oid:"), "preferred": False})
        unique.append({"type": "uri", "value": system, "preferred": True})
        if fmt:
            unique[-1]["comment"] = f"format {fmt}"
        out.append(
            {
                "resourceType": "NamingSystem",
                "id": ns_id,
                "url": f"{BASE}/NamingSystem/{ns_id}",
                "name": "".join(p.title() for p in ns_id.split("-")),
                "title": f"{en} {zh}",
                "status": "active",
                "kind": kind,
                "date": DATE,
                "publisher": PUBLISHER,
                "description": desc,
                "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "CN"}]}],
                "uniqueId": unique,
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# search parameters
# --------------------------------------------------------------------------------------------


def search_param(base: str, code: str, sp_type: str, expression: str, desc: str, **extra: Any) -> dict:
    sp_id = f"{base.lower()}-{code}"
    return {
        "resourceType": "SearchParameter",
        "id": sp_id,
        "url": f"{BASE}/SearchParameter/{sp_id}",
        "version": VERSION,
        "name": "".join(p.title() for p in f"{base}-{code}".split("-")),
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": desc,
        "code": code,
        "base": [base],
        "type": sp_type,
        "expression": expression,
        "processingMode": "normal",
        **extra,
    }


def search_parameters() -> list[dict]:
    ext = f"{SD}/yl-"
    sps = [
        search_param(
            "MedicationRequest",
            "dispense-quantity",
            "quantity",
            "MedicationRequest.dispenseRequest.quantity",
            "Total quantity to dispense (drug_cnt), e.g. `ge30||{unit}` (POL-06).",
        ),
        search_param(
            "MedicationRequest",
            "supply-days",
            "quantity",
            "MedicationRequest.dispenseRequest.expectedSupplyDuration",
            "Days of supply (medc_days), e.g. `gt28|http://unitsofmeasure.org|d` (POL-09).",
        ),
        search_param(
            "MedicationRequest",
            "prescription-category",
            "token",
            f"MedicationRequest.extension('{ext}prescription-category').value",
            "Prescription category (rx_type_code) (POL-06).",
        ),
        search_param(
            "MedicationRequest",
            "long-term",
            "token",
            f"MedicationRequest.extension('{ext}long-term-prescription').extension('chronicGroup').value",
            "Chronic-disease group of a long-term prescription (长期处方, POL-09).",
        ),
        search_param(
            "MedicationRequest",
            "dispensing-member",
            "reference",
            f"MedicationRequest.extension('{ext}extended-prescription').extension('dispensingMember').value",
            "Dispensing member of an extended prescription (延伸处方, POL-09).",
            target=["Organization"],
        ),
        search_param(
            "MedicationRequest",
            "prior-prescription",
            "reference",
            "MedicationRequest.priorPrescription",
            "The prescription this one continues (互认处方, POL-08): by reference when it is stored here, with "
            ":identifier when it is another member's (its prescription number).",
            target=["MedicationRequest"],
        ),
        search_param(
            "MedicationRequest",
            "review-result",
            "token",
            f"MedicationRequest.extension('{ext}central-review-result').extension('result').value",
            "Central pre-review result (POL-06, POL-07).",
        ),
        search_param(
            "Medication",
            "insurance-code",
            "token",
            f"Medication.code.coding.where(system='{SYS_DRUG_CODE}')",
            "National insurance drug code 医保药品分类与代码 (med_list_codg) (POL-01).",
        ),
        search_param(
            "Medication",
            "standard-code",
            "token",
            f"Medication.code.coding.where(system='{SYS_STANDARD_CODE}')",
            "Drug standard code 本位码 (POL-01).",
        ),
        search_param(
            "Medication",
            "local-code",
            "token",
            f"Medication.identifier.where(system='{SYS_LOCAL_DRUG}')",
            "Member local drug code 院内编码 (fixmedins_hilist_id) (POL-08).",
        ),
        search_param(
            "Medication",
            "generic-name",
            "string",
            "Medication.code.text",
            "Generic name 通用名 (drug_genname) (POL-01).",
        ),
        search_param(
            "Medication",
            "essential-medicine",
            "token",
            f"Medication.extension('{ext}essential-medicine').value",
            "Essential-medicine flag 基药 (bas_medn_flag) (POL-01).",
        ),
        search_param(
            "Medication",
            "volume-procurement",
            "token",
            f"Medication.extension('{ext}volume-based-procurement').value",
            "Volume-based-procurement flag 集采 (POL-01).",
        ),
        search_param(
            "InventoryReport",
            "item-code",
            "token",
            "InventoryReport.inventoryListing.item.item.concept",
            "Code of a counted item (POL-14).",
        ),
        search_param(
            "InventoryReport",
            "item-quantity",
            "quantity",
            "InventoryReport.inventoryListing.item.quantity",
            "Counted quantity of an item (inv_cnt) (POL-14, POL-15).",
        ),
        search_param(
            "InventoryReport",
            "traceability-code",
            "token",
            f"InventoryReport.inventoryListing.item.extension('{ext}traceability-code').value",
            "Drug traceability code 药品追溯码 of a counted batch (POL-12).",
        ),
        search_param(
            "InventoryReport",
            "lot-number",
            "string",
            f"InventoryReport.inventoryListing.item.extension('{ext}lot-number').value",
            "Batch number 批号 (manu_lotnum) (POL-12).",
        ),
        search_param(
            "InventoryReport",
            "expiry",
            "date",
            f"InventoryReport.inventoryListing.item.extension('{ext}expiration-date').value",
            "Batch expiry 有效期 (expy_end) (POL-14).",
        ),
        search_param(
            "Organization",
            "alliance-tier",
            "token",
            f"Organization.type.coding.where(system='{CS_TIER}')",
            "Alliance tier county/township/village (POL-03).",
        ),
        search_param(
            "Organization",
            "insurance-code",
            "token",
            f"Organization.identifier.where(system='{SYS_FIXMEDINS}')",
            "Insurance institution code 定点医疗机构编码 (fixmedins_code) (POL-18).",
        ),
        search_param(
            "Practitioner",
            "physician-code",
            "token",
            f"Practitioner.identifier.where(system='{SYS_DR_CODE}')",
            "Insurance physician code 医保医师代码 (dr_code) (POL-06).",
        ),
        search_param(
            "SupplyRequest",
            "kind",
            "token",
            f"SupplyRequest.category.coding.where(system='{CS_SUPPLY_KIND}')",
            "Demand plan / shortage registration / transfer (POL-11, POL-15, POL-16).",
        ),
    ]
    sps.append(
        search_param(
            "InventoryReport",
            "item-code-quantity",
            "composite",
            "InventoryReport.inventoryListing.item",
            "Item code and counted quantity of the same listing item, e.g. "
            "`item-code-quantity=http://yaolian.org/fhir/sid/nhsa-drug-code|XA10BAE054A001010102770"
            "$lt10` for stock below an alert line (POL-14, POL-15).",
            component=[
                {"definition": f"{BASE}/SearchParameter/inventoryreport-item-code", "expression": "item.concept"},
                {"definition": f"{BASE}/SearchParameter/inventoryreport-item-quantity", "expression": "quantity"},
            ],
        )
    )
    return sps


# --------------------------------------------------------------------------------------------
# structure definitions: authoring helpers
# --------------------------------------------------------------------------------------------


def el(eid: str, **kw: Any) -> dict:
    """A differential element; ``zh`` becomes ElementDefinition.label (the Chinese label)."""
    out: dict[str, Any] = {"id": eid, "path": _path_of(eid)}
    if ":" in eid.rsplit(".", 1)[-1]:
        out["sliceName"] = eid.rsplit(":", 1)[1]
    if "zh" in kw:
        out["label"] = kw.pop("zh")
    if "card" in kw:
        lo, hi = kw.pop("card").split("..")
        out["min"], out["max"] = int(lo), hi
    if "binding" in kw:
        strength, vs = kw.pop("binding")
        out["binding"] = {"strength": strength, "valueSet": vs}
    if "types" in kw:
        out["type"] = kw.pop("types")
    if "ext" in kw:
        out["type"] = [{"code": "Extension", "profile": [f"{SD}/{kw.pop('ext')}"]}]
    if "ref" in kw:
        out["type"] = [{"code": "Reference", "targetProfile": kw.pop("ref")}]
    if "constraints" in kw:
        out["constraint"] = [
            {"key": key, "severity": sev, "human": human, "expression": expr}
            for key, sev, human, expr in kw.pop("constraints")
        ]
    out.update(kw)
    return out


def _path_of(eid: str) -> str:
    return ".".join(part.split(":", 1)[0] for part in eid.split("."))


def slicing(eid: str, path: str, kind: str = "value", rules: str = "open", **kw: Any) -> dict:
    return el(eid, slicing={"discriminator": [{"type": kind, "path": path}], "rules": rules}, **kw)


def core(name: str) -> str:
    return f"http://hl7.org/fhir/StructureDefinition/{name}"


def profile(sd_id: str, resource: str, title: str, zh: str, desc: str, elements: list[dict]) -> dict:
    return {
        "resourceType": "StructureDefinition",
        "id": sd_id,
        "url": f"{SD}/{sd_id}",
        "version": VERSION,
        "name": "".join(p.title() for p in sd_id.split("-")),
        "title": f"{title} {zh}",
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": desc,
        "fhirVersion": "5.0.0",
        "kind": "resource",
        "abstract": False,
        "type": resource,
        "baseDefinition": core(resource),
        "derivation": "constraint",
        "differential": {"element": [el(resource, zh=zh, short=title), *elements]},
    }


def extension(
    sd_id: str,
    title: str,
    zh: str,
    desc: str,
    contexts: list[str],
    value: dict | None = None,
    parts: list[tuple[str, str, str, str, dict]] | None = None,
    constraints: list[tuple[str, str, str, str]] | None = None,
) -> dict:
    """A simple extension (``value``: a value[x] element dict) or a complex one (``parts``:
    (name, card, english, chinese, value[x] element kwargs))."""
    url = f"{SD}/{sd_id}"
    root = el("Extension", short=title, zh=zh, definition=desc)
    if constraints:
        root["constraint"] = el("x", constraints=constraints)["constraint"]
    elements = [root]
    if parts:
        elements.append(slicing("Extension.extension", "url", rules="closed", card="1..*"))
        for name, card, en, pzh, value_kw in parts:
            base = f"Extension.extension:{name}"
            elements += [
                el(base, card=card, short=en, zh=pzh),
                el(f"{base}.extension", max="0"),
                el(f"{base}.url", fixedUri=name),
                el(f"{base}.value[x]", card="1..1", **value_kw),
            ]
        elements.append(el("Extension.value[x]", max="0"))
    else:
        elements.append(el("Extension.extension", max="0"))
    elements.append(el("Extension.url", fixedUri=url))
    if value is not None:
        elements.append(el("Extension.value[x]", card="1..1", **value))
    return {
        "resourceType": "StructureDefinition",
        "id": sd_id,
        "url": url,
        "version": VERSION,
        "name": "".join(p.title() for p in sd_id.split("-")),
        "title": f"{title} {zh}",
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": desc,
        "fhirVersion": "5.0.0",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in contexts],
        "type": "Extension",
        "baseDefinition": core("Extension"),
        "derivation": "constraint",
        "differential": {"element": elements},
    }


def identifier_slice(prefix: str, name: str, system: str, card: str, en: str, zh: str, **kw: Any) -> list[dict]:
    return [
        el(f"{prefix}:{name}", card=card, short=en, zh=zh, **kw),
        el(f"{prefix}:{name}.system", card="1..1", fixedUri=system),
        el(f"{prefix}:{name}.value", card="1..1"),
    ]


def ext_slice(prefix: str, name: str, sd_id: str, card: str, en: str, zh: str) -> dict:
    return el(f"{prefix}.extension:{name}", card=card, ext=sd_id, short=en, zh=zh)


def extensions() -> list[dict]:
    return [
        extension(
            "yl-long-term-prescription",
            "Long-term prescription",
            "长期处方",
            "Marks a long-term prescription (长期处方管理规范 2021) for a chronic patient with a "
            "stable regimen; normally up to 4 weeks, at most 12 weeks (POL-09).",
            ["MedicationRequest"],
            parts=[
                (
                    "chronicGroup",
                    "1..1",
                    "Chronic disease group",
                    "慢病分组",
                    {"types": [{"code": "Coding"}], "binding": ("required", f"{VS}/chronic-disease-group")},
                ),
                ("maxWeeks", "0..1", "Weeks of validity", "有效周数", {"types": [{"code": "positiveInt"}]}),
            ],
            constraints=[
                (
                    "yl-ltp-1",
                    "error",
                    "A long-term prescription is valid for at most 12 weeks",
                    "extension('maxWeeks').value.all($this <= 12)",
                ),
            ],
        ),
        extension(
            "yl-extended-prescription",
            "Extended prescription",
            "延伸处方",
            "A prescription written at the county hospital and dispensed at a township or "
            "village member (延伸处方, POL-08, POL-09).",
            ["MedicationRequest"],
            parts=[
                (
                    "dispensingMember",
                    "1..1",
                    "Dispensing member",
                    "配药机构",
                    {"types": [{"code": "Reference", "targetProfile": [f"{SD}/yl-organization"]}]},
                ),
                (
                    "originPrescription",
                    "0..1",
                    "Original prescription number",
                    "原处方号",
                    {"types": [{"code": "Identifier"}]},
                ),
            ],
        ),
        extension(
            "yl-prescription-category",
            "Prescription category",
            "处方类别",
            "Prescription category (rx_type_code) (POL-06).",
            ["MedicationRequest"],
            value={"types": [{"code": "Coding"}], "binding": ("required", f"{VS}/prescription-category")},
        ),
        extension(
            "yl-central-review-result",
            "Central review result",
            "集中审方结果",
            "Result of the county-wide central pre-review (POL-06, POL-07).",
            ["MedicationRequest"],
            parts=[
                (
                    "result",
                    "1..1",
                    "Result",
                    "审核结果",
                    {"types": [{"code": "code"}], "binding": ("required", f"{VS}/review-result")},
                ),
                (
                    "reviewer",
                    "0..1",
                    "Reviewing pharmacist",
                    "审方药师",
                    {"types": [{"code": "Reference", "targetProfile": [f"{SD}/yl-practitioner"]}]},
                ),
                ("date", "1..1", "Review time", "审核时间", {"types": [{"code": "dateTime"}]}),
                ("note", "0..1", "Reason", "审核意见", {"types": [{"code": "string"}]}),
            ],
        ),
        extension(
            "yl-essential-medicine",
            "Essential medicine",
            "基本药物",
            "The drug is on the national essential medicines list (基药, bas_medn_flag) (POL-01).",
            ["Medication"],
            value={"types": [{"code": "boolean"}]},
        ),
        extension(
            "yl-volume-based-procurement",
            "Volume-based procurement",
            "集采",
            "The drug is a national volume-based-procurement winner (集采中选) (POL-01).",
            ["Medication"],
            value={"types": [{"code": "boolean"}]},
        ),
        extension(
            "yl-drug-specification",
            "Specification",
            "规格",
            "Drug specification as printed (drug_spec), e.g. 0.5g*20片 (POL-05).",
            ["Medication"],
            value={"types": [{"code": "string"}]},
        ),
        extension(
            "untranslated-code",
            "Untranslated code",
            "未转换代码",
            "Marks a coding copied from a member's message that the adapter's ConceptMap (the "
            "canonical in the value) could not translate; it is kept, never silently dropped, and "
            "the conversion reported a YL-2302 warning; members mutually recognise prescriptions only when "
            "their codes are national or visibly local (POL-08).",
            ["Coding"],
            value={"types": [{"code": "canonical", "targetProfile": [core("ConceptMap")]}]},
        ),
        extension(
            "yl-lot-number",
            "Batch number",
            "批号",
            "Manufacturer batch (manu_lotnum) (POL-12).",
            ["InventoryReport.inventoryListing.item"],
            value={"types": [{"code": "string"}]},
        ),
        extension(
            "yl-expiration-date",
            "Expiry date",
            "有效期",
            "Batch expiry (expy_end) (POL-12, POL-14).",
            ["InventoryReport.inventoryListing.item"],
            value={"types": [{"code": "date"}]},
        ),
        extension(
            "yl-traceability-code",
            "Traceability code",
            "药品追溯码",
            "Drug traceability code (drug_trac_codg) of a counted package (POL-12).",
            ["InventoryReport.inventoryListing.item"],
            value={"types": [{"code": "Identifier"}], "patternIdentifier": {"system": SYS_TRACE_CODE}},
        ),
    ]


def resource_profiles() -> list[dict]:
    kind = f"category.coding.where(system='{CS_SUPPLY_KIND}' and code='%s').exists()"
    lt = f"{SD}/yl-long-term-prescription"
    rid = SYS_RESIDENT_ID
    return [
        profile(
            "yl-prescription",
            "MedicationRequest",
            "Alliance prescription",
            "医联体处方",
            "One drug line of a prescription as recognised across the alliance: prescription "
            "numbers, prescriber, diagnosis, quantity and days, category, long-term and extended "
            "prescription, central review result (POL-06, POL-08, POL-09).",
            [
                ext_slice(
                    "MedicationRequest",
                    "category",
                    "yl-prescription-category",
                    "1..1",
                    "Prescription category",
                    "处方类别",
                ),
                ext_slice(
                    "MedicationRequest",
                    "longTerm",
                    "yl-long-term-prescription",
                    "0..1",
                    "Long-term prescription",
                    "长期处方",
                ),
                ext_slice(
                    "MedicationRequest",
                    "extended",
                    "yl-extended-prescription",
                    "0..1",
                    "Extended prescription",
                    "延伸处方",
                ),
                ext_slice(
                    "MedicationRequest",
                    "review",
                    "yl-central-review-result",
                    "0..1",
                    "Central review result",
                    "集中审方结果",
                ),
                slicing("MedicationRequest.identifier", "system", card="1..*"),
                *identifier_slice(
                    "MedicationRequest.identifier",
                    "hospRxno",
                    SYS_RX_NO,
                    "1..1",
                    "Hospital prescription number",
                    "处方号",
                ),
                *identifier_slice(
                    "MedicationRequest.identifier",
                    "hiRxno",
                    SYS_HI_RXNO,
                    "0..1",
                    "Insurance prescription number",
                    "医保处方编号",
                ),
                *identifier_slice(
                    "MedicationRequest.identifier",
                    "rxTraceCode",
                    SYS_RX_TRACE,
                    "0..1",
                    "Prescription trace code",
                    "处方追溯码",
                ),
                el("MedicationRequest.intent", fixedCode="order", zh="意图"),
                el("MedicationRequest.medication", zh="药品", short="Drug (a yl-drug Medication)"),
                el(
                    "MedicationRequest.medication.reference",
                    card="1..1",
                    zh="药品引用",
                    types=[{"code": "Reference", "targetProfile": [f"{SD}/yl-drug"]}],
                ),
                el(
                    "MedicationRequest.subject",
                    zh="患者",
                    types=[{"code": "Reference", "targetProfile": [f"{SD}/yl-patient"]}],
                ),
                el("MedicationRequest.authoredOn", card="1..1", zh="开方时间"),
                el(
                    "MedicationRequest.requester",
                    card="1..1",
                    zh="开方医生",
                    types=[{"code": "Reference", "targetProfile": [f"{SD}/yl-practitioner", core("PractitionerRole")]}],
                ),
                el(
                    "MedicationRequest.reason",
                    card="1..*",
                    zh="诊断",
                    short="Diagnosis (diag_code), ICD-10 China",
                    binding=("extensible", f"{VS}/icd10-cn"),
                ),
                el("MedicationRequest.dosageInstruction", card="1..*", zh="用法用量"),
                el("MedicationRequest.dispenseRequest", card="1..1", zh="配药要求"),
                el("MedicationRequest.dispenseRequest.quantity", card="1..1", zh="总量"),
                el(
                    "MedicationRequest.dispenseRequest.expectedSupplyDuration",
                    card="1..1",
                    zh="用药天数",
                    short="Days of supply (medc_days), in UCUM days",
                    patternDuration={"system": UCUM, "code": "d"},
                ),
            ],
        )
        | {
            "_constraints": [
                (
                    "yl-rx-1",
                    "error",
                    "A long-term prescription supplies at most 12 weeks (84 days)",
                    f"extension('{lt}').exists() implies dispenseRequest.expectedSupplyDuration.value <= 84",
                ),
                (
                    "yl-rx-2",
                    "error",
                    "A long-term prescription needs a diagnosis of its chronic disease group",
                    f"extension('{lt}').exists() implies reason.concept.coding.exists()",
                ),
            ]
        },
        profile(
            "yl-drug",
            "Medication",
            "Alliance drug",
            "医联体药品",
            "A drug of the alliance formulary: national insurance drug code, 本位码, member local "
            "code, generic name, specification, dosage form, 基药 and 集采 flags (POL-01, POL-05).",
            [
                ext_slice("Medication", "specification", "yl-drug-specification", "1..1", "Specification", "规格"),
                ext_slice(
                    "Medication",
                    "essentialMedicine",
                    "yl-essential-medicine",
                    "1..1",
                    "Essential medicine flag",
                    "基药标志",
                ),
                ext_slice(
                    "Medication",
                    "volumeProcurement",
                    "yl-volume-based-procurement",
                    "1..1",
                    "Volume-based procurement flag",
                    "集采标志",
                ),
                slicing("Medication.identifier", "system"),
                *identifier_slice(
                    "Medication.identifier", "local", SYS_LOCAL_DRUG, "0..*", "Member local drug code", "院内编码"
                ),
                el("Medication.identifier:local.assigner", card="1..1", zh="编码机构"),
                el("Medication.code", card="1..1", zh="药品编码"),
                slicing("Medication.code.coding", "system", card="1..*"),
                el(
                    "Medication.code.coding:insurance",
                    card="1..1",
                    zh="医保药品代码",
                    short="National insurance drug code (med_list_codg)",
                ),
                el("Medication.code.coding:insurance.system", card="1..1", fixedUri=SYS_DRUG_CODE),
                el("Medication.code.coding:insurance.code", card="1..1"),
                el("Medication.code.coding:standard", card="0..1", zh="本位码", short="Drug standard code"),
                el("Medication.code.coding:standard.system", card="1..1", fixedUri=SYS_STANDARD_CODE),
                el("Medication.code.coding:standard.code", card="1..1"),
                el("Medication.code.text", card="1..1", zh="通用名", short="Generic name (drug_genname)"),
                el("Medication.doseForm", card="1..1", zh="剂型", binding=("extensible", f"{VS}/dose-form")),
            ],
        ),
        profile(
            "yl-supply-request",
            "SupplyRequest",
            "Alliance supply request",
            "医联体供应申请",
            "A demand-plan line (POL-11), a shortage registration (POL-16) or a transfer between "
            "members (POL-15); the kind is SupplyRequest.category.",
            [
                el("SupplyRequest.status", card="1..1", zh="状态"),
                el("SupplyRequest.category", card="1..1", zh="类别", binding=("required", f"{VS}/supply-request-kind")),
                el("SupplyRequest.item", zh="药品"),
                el("SupplyRequest.quantity", zh="数量"),
                el(
                    "SupplyRequest.requester",
                    card="1..1",
                    zh="申请机构",
                    types=[
                        {
                            "code": "Reference",
                            "targetProfile": [f"{SD}/yl-organization", core("Practitioner"), core("PractitionerRole")],
                        }
                    ],
                ),
                el("SupplyRequest.authoredOn", card="1..1", zh="申请时间"),
                el("SupplyRequest.reason", zh="需求原因", binding=("extensible", f"{VS}/demand-reason")),
            ],
        )
        | {
            "_constraints": [
                (
                    "yl-sr-1",
                    "error",
                    "A transfer names the member it comes from and the one it goes to",
                    f"{kind % 'transfer'} implies (deliverFrom.exists() and deliverTo.exists())",
                ),
                (
                    "yl-sr-2",
                    "error",
                    "A shortage registration names the patient (deliverFor)",
                    f"{kind % 'shortage'} implies deliverFor.exists()",
                ),
            ]
        },
        profile(
            "yl-inventory-report",
            "InventoryReport",
            "Alliance stock report",
            "医联体库存报告",
            "A member's stock count (3501) or change (3502) with batch, expiry and traceability "
            "codes (POL-12, POL-14, POL-15).",
            [
                el(
                    "InventoryReport.reporter",
                    card="1..1",
                    zh="报告人",
                    # R5 allows Device | Patient | Practitioner | RelatedPerson here (issue 17: an
                    # Organization, the reporting member, contradicted the base); the member is the
                    # writer's, stamped in meta.tag
                    types=[{"code": "Reference", "targetProfile": [f"{SD}/yl-practitioner"]}],
                ),
                el("InventoryReport.reportedDateTime", zh="盘存时间"),
                el("InventoryReport.inventoryListing", card="1..*", zh="库存清单"),
                el("InventoryReport.inventoryListing.item", card="1..*", zh="库存项"),
                ext_slice(
                    "InventoryReport.inventoryListing.item",
                    "lotNumber",
                    "yl-lot-number",
                    "1..1",
                    "Batch number",
                    "批号",
                ),
                ext_slice(
                    "InventoryReport.inventoryListing.item",
                    "expirationDate",
                    "yl-expiration-date",
                    "1..1",
                    "Expiry date",
                    "有效期",
                ),
                ext_slice(
                    "InventoryReport.inventoryListing.item",
                    "traceabilityCode",
                    "yl-traceability-code",
                    "0..*",
                    "Traceability codes",
                    "药品追溯码",
                ),
                el("InventoryReport.inventoryListing.item.quantity", zh="库存数量"),
                el("InventoryReport.inventoryListing.item.item", zh="药品"),
            ],
        )
        | {
            "_constraints": [
                (
                    "yl-inv-1",
                    "error",
                    "A stock count (snapshot) has no negative quantities",
                    "countType = 'snapshot' implies inventoryListing.item.quantity.all(value >= 0)",
                ),
            ]
        },
        profile(
            "yl-patient",
            "Patient",
            "Alliance patient",
            "医联体患者",
            "A patient known across the alliance, identified by the resident ID card number "
            "(checked with its MOD 11-2 check character) (POL-08).",
            [
                slicing("Patient.identifier", "system", card="1..*"),
                *identifier_slice(
                    "Patient.identifier", "residentId", rid, "0..1", "Resident ID card number", "居民身份证号"
                ),
                *identifier_slice(
                    "Patient.identifier", "insuranceNo", SYS_PSN_NO, "0..1", "Insured person number", "医保人员编号"
                ),
                el("Patient.name", card="1..*", zh="姓名"),
                el("Patient.gender", card="1..1", zh="性别"),
                el("Patient.birthDate", zh="出生日期"),
            ],
        )
        | {
            "_constraints": [
                (
                    "yl-pat-1",
                    "error",
                    "The birth date agrees with the resident ID card number",
                    f"(identifier.where(system='{rid}').value.matches('^\\\\d{{17}}[\\\\dX]$') and "
                    "birthDate.exists()) implies "
                    f"identifier.where(system='{rid}').value.substring(6, 8) = "
                    "birthDate.toString().replace('-', '')",
                ),
            ]
        },
        profile(
            "yl-organization",
            "Organization",
            "Alliance member",
            "医联体成员单位",
            "A member of the county medical alliance with its insurance institution code, its "
            "tier and the member it belongs to (POL-03).",
            [
                slicing("Organization.identifier", "system", card="1..*"),
                *identifier_slice(
                    "Organization.identifier",
                    "fixmedins",
                    SYS_FIXMEDINS,
                    "1..1",
                    "Insurance institution code",
                    "定点医疗机构编码",
                ),
                slicing("Organization.type", "$this", kind="pattern", card="1..*"),
                el(
                    "Organization.type:tier",
                    card="1..1",
                    zh="医联体层级",
                    short="Alliance tier",
                    patternCodeableConcept={"coding": [{"system": CS_TIER}]},
                    binding=("required", f"{VS}/alliance-tier"),
                ),
                el("Organization.name", card="1..1", zh="名称"),
                el(
                    "Organization.partOf",
                    zh="上级成员",
                    types=[{"code": "Reference", "targetProfile": [f"{SD}/yl-organization"]}],
                ),
            ],
        )
        | {
            "_constraints": [
                (
                    "yl-org-1",
                    "error",
                    "A township or village member names the member it belongs to",
                    f"type.coding.where(system='{CS_TIER}' and (code = 'township' or code = "
                    "'village')).exists() implies partOf.exists()",
                ),
            ]
        },
        profile(
            "yl-practitioner",
            "Practitioner",
            "Alliance prescriber",
            "医联体医师",
            "A prescriber or pharmacist with the insurance physician code (dr_code) (POL-06).",
            [
                slicing("Practitioner.identifier", "system", card="1..*"),
                *identifier_slice(
                    "Practitioner.identifier",
                    "physicianCode",
                    SYS_DR_CODE,
                    "1..1",
                    "Insurance physician code",
                    "医保医师代码",
                ),
                el("Practitioner.name", card="1..*", zh="姓名"),
            ],
        ),
    ]


# --------------------------------------------------------------------------------------------
# snapshot generation
# --------------------------------------------------------------------------------------------

DROP_KEYS = {"mapping"}


class Core:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sd: dict[str, dict] = {}

    def sd(self, type_name: str) -> dict:
        if type_name not in self._sd:
            path = self.folder / f"StructureDefinition-{type_name}.json"
            self._sd[type_name] = json.loads(path.read_text(encoding="utf-8"))
        return self._sd[type_name]

    def load(self, kind: str, res_id: str) -> dict | None:
        path = self.folder / f"{kind}-{res_id}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def code_system(self, url: str) -> dict | None:
        if not hasattr(self, "_cs_by_url"):
            self._cs_by_url = {}
            for path in self.folder.glob("CodeSystem-*.json"):
                cs = json.loads(path.read_text(encoding="utf-8"))
                self._cs_by_url[cs.get("url")] = cs
        return self._cs_by_url.get(url)


def _clean(element: dict) -> dict:
    return {k: v for k, v in element.items() if k not in DROP_KEYS}


def generate_snapshot(sd: dict, core_pkg: Core) -> list[dict]:
    base = core_pkg.sd(sd["type"])
    snap = [_clean(copy.deepcopy(e)) for e in base["snapshot"]["element"]]

    def index(eid: str) -> int:
        for i, e in enumerate(snap):
            if e["id"] == eid:
                return i
        return -1

    def end_of(eid: str) -> int:
        """Index after the element ``eid`` with all its descendants and slices."""
        i = index(eid)
        j = i + 1
        while j < len(snap) and (snap[j]["id"].startswith(eid + ".") or snap[j]["id"].startswith(eid + ":")):
            j += 1
        return j

    def unfold(parent_id: str) -> None:
        parent = snap[index(parent_id)]
        types = parent.get("type", [])
        if len(types) != 1:
            raise SystemExit(f"cannot unfold {parent_id}: {len(types)} types")
        tname = types[0]["code"]
        children = core_pkg.sd(tname)["snapshot"]["element"][1:]
        at = index(parent_id) + 1
        for child in children:
            c = _clean(copy.deepcopy(child))
            c["id"] = parent_id + c["id"][len(tname) :]
            c["path"] = parent["path"] + c["path"][len(tname) :]
            snap.insert(at, c)
            at += 1

    def ensure(eid: str) -> int:
        i = index(eid)
        if i >= 0:
            return i
        head, _, last = eid.rpartition(".")
        if ":" in last:  # a new slice of an existing element
            name, slice_name = last.split(":", 1)
            base_id = f"{head}.{name}" if head else name
            base_el = snap[ensure(base_id)]
            if "slicing" not in base_el and name in ("extension", "modifierExtension"):
                base_el["slicing"] = {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}
            new = copy.deepcopy(base_el)
            new.pop("slicing", None)
            new["id"] = eid
            new["sliceName"] = slice_name
            at = end_of(base_id)
            snap.insert(at, new)
            # copy the unsliced children of the base element under the slice
            kids = [copy.deepcopy(e) for e in snap[index(base_id) + 1 : at] if e["id"].startswith(base_id + ".")]
            for offset, kid in enumerate(kids, start=1):
                kid["id"] = eid + kid["id"][len(base_id) :]
                snap.insert(at + offset, kid)
            return at
        ensure(head)
        if index(eid) < 0:
            unfold(head)
        i = index(eid)
        if i < 0:
            raise SystemExit(f"{sd['id']}: no element {eid} in the base")
        return i

    for d in sd["differential"]["element"]:
        i = ensure(d["id"])
        target = snap[i]
        for key, value in d.items():
            if key in ("id", "path"):
                continue
            if key == "constraint":
                target.setdefault("constraint", [])
                target["constraint"] += [dict(c, source=sd["url"]) for c in value]
            else:
                target[key] = copy.deepcopy(value)
    return snap


def finish_sd(sd: dict, core_pkg: Core) -> dict:
    constraints = sd.pop("_constraints", None)
    if constraints:
        root = sd["differential"]["element"][0]
        root["constraint"] = el("x", constraints=constraints)["constraint"]
    sd["snapshot"] = {"element": generate_snapshot(sd, core_pkg)}
    return sd


# --------------------------------------------------------------------------------------------
# core expansions for required bindings of our profiles
# --------------------------------------------------------------------------------------------


def _flatten(concepts: list[dict]) -> list[dict]:
    out = []
    for c in concepts:
        out += [c, *_flatten(c.get("concept", []))]
    return out


def core_expansions(sds: list[dict], core_pkg: Core) -> dict:
    """Expand the R5 core value sets that our snapshots bind with strength required, so the
    validator can check them without the core package (content complete, <= 300 codes)."""
    urls = sorted(
        {
            e["binding"]["valueSet"].split("|")[0]
            for sd in sds
            for e in sd["snapshot"]["element"]
            if e.get("binding", {}).get("strength") == "required"
            and e["binding"].get("valueSet", "").startswith("http://hl7.org/fhir/ValueSet/")
        }
    )
    entries = []
    for url in urls:
        vs = core_pkg.load("ValueSet", url.rsplit("/", 1)[1])
        if vs is None:
            continue
        contains: list[dict] = []
        ok = True
        for inc in vs.get("compose", {}).get("include", []):
            if "valueSet" in inc or "filter" in inc or "system" not in inc:
                ok = False
                break
            if "concept" in inc:
                contains += [
                    {"system": inc["system"], "code": c["code"], "display": c.get("display", c["code"])}
                    for c in inc["concept"]
                ]
                continue
            cs = core_pkg.code_system(inc["system"])
            if cs is None or cs.get("content") != "complete":
                ok = False
                break

            contains += [
                {"system": inc["system"], "code": c["code"], "display": c.get("display", c["code"])}
                for c in _flatten(cs.get("concept", []))
            ]
        if not ok or not contains or len(contains) > 300:
            continue
        entries.append(
            {
                "fullUrl": url,
                "resource": {
                    "resourceType": "ValueSet",
                    "id": vs["id"],
                    "url": url,
                    "version": vs.get("version", "5.0.0"),
                    "status": "active",
                    "expansion": {"timestamp": DATE + "T00:00:00Z", "total": len(contains), "contains": contains},
                },
            }
        )
    return {"resourceType": "Bundle", "id": "core-expansions", "type": "collection", "entry": entries}


# --------------------------------------------------------------------------------------------
# examples
# --------------------------------------------------------------------------------------------

ORG_COUNTY = {
    "resourceType": "Organization",
    "id": "county-hospital",
    "meta": {"profile": [f"{SD}/yl-organization"]},
    "identifier": [{"system": SYS_FIXMEDINS, "value": "H14042300011"}],
    "active": True,
    "type": [{"coding": [{"system": CS_TIER, "code": "county", "display": "县级"}]}],
    "name": "平顺县人民医院",
}
ORG_VILLAGE = {
    "resourceType": "Organization",
    "id": "village-clinic",
    "meta": {"profile": [f"{SD}/yl-organization"]},
    "identifier": [{"system": SYS_FIXMEDINS, "value": "H14042300457"}],
    "active": True,
    "type": [{"coding": [{"system": CS_TIER, "code": "village", "display": "村"}]}],
    "name": "青羊镇东庄村卫生室",
    "partOf": {"reference": "Organization/township-centre"},
}
PATIENT = {
    "resourceType": "Patient",
    "id": "zhang-guifang",
    "meta": {"profile": [f"{SD}/yl-patient"]},
    "identifier": [
        {"system": SYS_RESIDENT_ID, "value": "11010519491231002X"},
        {"system": SYS_PSN_NO, "value": "14000000000000123456"},
    ],
    "name": [{"text": "张桂芳"}],
    "gender": "female",
    "birthDate": "1949-12-31",
}
PRACTITIONER = {
    "resourceType": "Practitioner",
    "id": "dr-li",
    "meta": {"profile": [f"{SD}/yl-practitioner"]},
    "identifier": [{"system": SYS_DR_CODE, "value": "D140423000123"}],
    "name": [{"text": "李明"}],
}
MEDICATION = {
    "resourceType": "Medication",
    "id": "metformin-0-5g",
    "meta": {"profile": [f"{SD}/yl-drug"]},
    "extension": [
        {"url": f"{SD}/yl-drug-specification", "valueString": "0.5g*20片"},
        {"url": f"{SD}/yl-essential-medicine", "valueBoolean": True},
        {"url": f"{SD}/yl-volume-based-procurement", "valueBoolean": True},
    ],
    "identifier": [
        {"system": SYS_LOCAL_DRUG, "value": "YP000321", "assigner": {"reference": "Organization/county-hospital"}}
    ],
    "code": {
        "coding": [
            {"system": SYS_DRUG_CODE, "code": "XA10BAE054A001010102770", "display": "二甲双胍片"},
            {"system": SYS_STANDARD_CODE, "code": "86900234000123"},
        ],
        "text": "盐酸二甲双胍片",
    },
    "status": "active",
    "doseForm": {"coding": [{"system": SYS_DOSE_FORM, "code": "01", "display": "片剂"}]},
}
PRESCRIPTION = {
    "resourceType": "MedicationRequest",
    "id": "rx-20250301-0001-1",
    "meta": {"profile": [f"{SD}/yl-prescription"]},
    "extension": [
        {
            "url": f"{SD}/yl-prescription-category",
            "valueCoding": {"system": CS_RX_CATEGORY, "code": "general", "display": "普通处方"},
        },
        {
            "url": f"{SD}/yl-long-term-prescription",
            "extension": [
                {"url": "chronicGroup", "valueCoding": {"system": CS_CHRONIC, "code": "diabetes"}},
                {"url": "maxWeeks", "valuePositiveInt": 4},
            ],
        },
        {
            "url": f"{SD}/yl-extended-prescription",
            "extension": [
                {"url": "dispensingMember", "valueReference": {"reference": "Organization/village-clinic"}},
            ],
        },
        {
            "url": f"{SD}/yl-central-review-result",
            "extension": [
                {"url": "result", "valueCode": "pass"},
                {"url": "reviewer", "valueReference": {"reference": "Practitioner/dr-li"}},
                {"url": "date", "valueDateTime": "2025-03-01T09:12:00+08:00"},
            ],
        },
    ],
    "identifier": [
        {"system": SYS_RX_NO, "value": "RX20250301000001"},
        {"system": SYS_HI_RXNO, "value": "1401000000000000000123"},
    ],
    "status": "active",
    "intent": "order",
    "medication": {"reference": {"reference": "Medication/metformin-0-5g"}},
    "subject": {"reference": "Patient/zhang-guifang"},
    "authoredOn": "2025-03-01T09:05:00+08:00",
    "requester": {"reference": "Practitioner/dr-li"},
    "reason": [{"concept": {"coding": [{"system": SYS_ICD10, "code": "E11.900", "display": "2型糖尿病"}]}}],
    "dosageInstruction": [
        {
            "text": "每次0.5g，每日2次，口服",
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "route": {"coding": [{"system": SYS_ROUTE, "code": "1", "display": "口服"}]},
            "doseAndRate": [{"doseQuantity": {"value": 0.5, "unit": "g", "system": UCUM, "code": "g"}}],
        }
    ],
    "dispenseRequest": {
        "quantity": {"value": 56, "unit": "片"},
        "expectedSupplyDuration": {"value": 28, "unit": "天", "system": UCUM, "code": "d"},
    },
}
SUPPLY_REQUEST = {
    "resourceType": "SupplyRequest",
    "id": "transfer-1",
    "meta": {"profile": [f"{SD}/yl-supply-request"]},
    "status": "active",
    "category": {"coding": [{"system": CS_SUPPLY_KIND, "code": "transfer", "display": "调剂"}]},
    "item": {"reference": {"reference": "Medication/metformin-0-5g"}},
    "quantity": {"value": 200, "unit": "片"},
    "requester": {"reference": "Organization/village-clinic"},
    "authoredOn": "2025-03-02T10:00:00+08:00",
    "deliverFrom": {"reference": "Location/county-pharmacy"},
    "deliverTo": {"reference": "Location/village-clinic-pharmacy"},
}
SHORTAGE = {
    "resourceType": "SupplyRequest",
    "id": "shortage-1",
    "meta": {"profile": [f"{SD}/yl-supply-request"]},
    "status": "active",
    "category": {"coding": [{"system": CS_SUPPLY_KIND, "code": "shortage"}]},
    "item": {
        "concept": {
            "coding": [{"system": SYS_DRUG_CODE, "code": "XC08CAA046A001010100937"}],
            "text": "苯磺酸氨氯地平片",
        }
    },
    "quantity": {"value": 28, "unit": "片"},
    "requester": {"reference": "Organization/village-clinic"},
    "authoredOn": "2025-03-02T10:00:00+08:00",
    "deliverFor": {"reference": "Patient/zhang-guifang"},
}
INVENTORY = {
    "resourceType": "InventoryReport",
    "id": "stock-20250301",
    "meta": {"profile": [f"{SD}/yl-inventory-report"]},
    "status": "active",
    "countType": "snapshot",
    "reportedDateTime": "2025-03-01T18:00:00+08:00",
    "reporter": {"reference": "Practitioner/dr-li"},
    "inventoryListing": [
        {
            "countingDateTime": "2025-03-01T17:30:00+08:00",
            "item": [
                {
                    "extension": [
                        {"url": f"{SD}/yl-lot-number", "valueString": "240915"},
                        {"url": f"{SD}/yl-expiration-date", "valueDate": "2027-08-31"},
                        {
                            "url": f"{SD}/yl-traceability-code",
                            "valueIdentifier": {"system": SYS_TRACE_CODE, "value": "81234560012345678901"},
                        },
                    ],
                    "quantity": {"value": 120, "unit": "片"},
                    "item": {"reference": {"reference": "Medication/metformin-0-5g"}},
                }
            ],
        }
    ],
}

VALID = {
    "yl-organization": [("county-hospital", ORG_COUNTY), ("village-clinic", ORG_VILLAGE)],
    "yl-patient": [("zhang-guifang", PATIENT)],
    "yl-practitioner": [("dr-li", PRACTITIONER)],
    "yl-drug": [("metformin", MEDICATION)],
    "yl-prescription": [("long-term-extended", PRESCRIPTION)],
    "yl-supply-request": [("transfer", SUPPLY_REQUEST), ("shortage", SHORTAGE)],
    "yl-inventory-report": [("stock-count", INVENTORY)],
}


def _mutate(resource: dict, path: str, value: Any = None, delete: bool = False) -> dict:
    """Copy ``resource`` and set/delete the dotted ``path`` (ints index lists)."""
    out = copy.deepcopy(resource)
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for p in parts[:-1]:
        node = node[p]
    if delete:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return out


def invalid_examples() -> list[tuple[str, str, dict, list[tuple[str, str, str]]]]:
    """(profile id, case, resource, expected [(error_code, expression, severity)])."""
    m = _mutate
    rx, med, pat, org = PRESCRIPTION, MEDICATION, PATIENT, ORG_VILLAGE
    mr = "MedicationRequest"
    return [
        (
            "yl-patient",
            "bad-checksum",
            m(pat, "identifier.0.value", "110105194912310021"),
            [("YL-3041", "Patient.identifier[0].value", "error")],
        ),
        (
            "yl-patient",
            "bad-id-format",
            m(pat, "identifier.0.value", "1101051949123100"),
            [("YL-3040", "Patient.identifier[0].value", "error")],
        ),
        ("yl-patient", "birthdate-mismatch", m(pat, "birthDate", "1950-01-01"), [("YL-3060", "Patient", "error")]),
        ("yl-patient", "missing-gender", m(pat, "gender", delete=True), [("YL-3010", "Patient.gender", "error")]),
        ("yl-patient", "bad-gender-code", m(pat, "gender", "F"), [("YL-3030", "Patient.gender", "error")]),
        ("yl-patient", "structure-bad-boolean", m(pat, "active", "maybe"), [("YL-3070", "Patient.active", "error")]),
        (
            "yl-patient",
            "structure-bad-date",
            m(pat, "name.0.period", {"start": "2020-02-30x"}),
            [("YL-3070", "Patient.name[0].period.start", "error")],
        ),
        (
            "yl-organization",
            "bad-fixmedins",
            m(org, "identifier.0.value", "X1404230045"),
            [("YL-3040", "Organization.identifier[0].value", "error")],
        ),
        (
            "yl-organization",
            "missing-fixmedins",
            m(org, "identifier.0.system", SYS_INSTITUTION),
            [("YL-3010", "Organization.identifier", "error")],
        ),
        (
            "yl-organization",
            "bad-tier-code",
            m(org, "type.0.coding.0.code", "city"),
            [("YL-3030", "Organization.type[0]", "error")],
        ),
        (
            "yl-organization",
            "village-without-parent",
            m(org, "partOf", delete=True),
            [("YL-3060", "Organization", "error")],
        ),
        (
            "yl-practitioner",
            "physician-code-too-long",
            m(PRACTITIONER, "identifier.0.value", "D1404230001234567890123"),
            [("YL-3040", "Practitioner.identifier[0].value", "error")],
        ),
        (
            "yl-practitioner",
            "missing-physician-code",
            m(PRACTITIONER, "identifier.0.system", "http://example.org/staff"),
            [("YL-3010", "Practitioner.identifier", "error")],
        ),
        (
            "yl-drug",
            "bad-insurance-code",
            m(med, "code.coding.0.code", "XA10BAE054A00101010277"),
            [("YL-3040", "Medication.code.coding[0].code", "error")],
        ),
        (
            "yl-drug",
            "bad-standard-code",
            m(med, "code.coding.1.code", "96900234000123"),
            [("YL-3040", "Medication.code.coding[1].code", "error")],
        ),
        (
            "yl-drug",
            "two-insurance-codes",
            m(med, "code.coding.1", {"system": SYS_DRUG_CODE, "code": "XA10BAE054A001010102771"}),
            [("YL-3011", "Medication.code.coding", "error")],
        ),
        (
            "yl-drug",
            "missing-generic-name",
            m(med, "code.text", delete=True),
            [("YL-3010", "Medication.code.text", "error")],
        ),
        (
            "yl-drug",
            "missing-essential-flag",
            m(med, "extension", med["extension"][:1] + med["extension"][2:]),
            [("YL-3010", "Medication.extension", "error")],
        ),
        (
            "yl-drug",
            "flag-not-boolean",
            m(med, "extension.1", {"url": f"{SD}/yl-essential-medicine", "valueString": "是"}),
            [("YL-3013", "Medication.extension[1].valueString", "error")],
        ),
        (
            "yl-drug",
            "local-code-without-assigner",
            m(med, "identifier.0.assigner", delete=True),
            [("YL-3010", "Medication.identifier[0].assigner", "error")],
        ),
        ("yl-prescription", "intent-not-order", m(rx, "intent", "plan"), [("YL-3020", f"{mr}.intent", "error")]),
        (
            "yl-prescription",
            "supply-not-in-days",
            m(rx, "dispenseRequest.expectedSupplyDuration.code", "wk"),
            [("YL-3021", f"{mr}.dispenseRequest.expectedSupplyDuration", "error")],
        ),
        (
            "yl-prescription",
            "missing-quantity",
            m(rx, "dispenseRequest.quantity", delete=True),
            [("YL-3010", f"{mr}.dispenseRequest.quantity", "error")],
        ),
        (
            "yl-prescription",
            "missing-category",
            m(rx, "extension", rx["extension"][1:]),
            [("YL-3010", f"{mr}.extension", "error")],
        ),
        (
            "yl-prescription",
            "bad-category-code",
            m(rx, "extension.0.valueCoding.code", "vip"),
            [("YL-3030", f"{mr}.extension[0].valueCoding", "error")],
        ),
        (
            "yl-prescription",
            "long-term-over-12-weeks",
            m(rx, "dispenseRequest.expectedSupplyDuration.value", 120),
            [("YL-3060", mr, "error")],
        ),
        (
            "yl-prescription",
            "long-term-max-weeks",
            m(rx, "extension.1.extension.1.valuePositiveInt", 16),
            [("YL-3060", f"{mr}.extension[1]", "error")],
        ),
        (
            "yl-prescription",
            "long-term-bad-group",
            m(rx, "extension.1.extension.0.valueCoding.code", "asthma"),
            [("YL-3030", f"{mr}.extension[1].extension[0].valueCoding", "error")],
        ),
        (
            "yl-prescription",
            "long-term-unknown-part",
            m(rx, "extension.1.extension.1.url", "weeks"),
            [("YL-3050", f"{mr}.extension[1].extension[1]", "error")],
        ),
        (
            "yl-prescription",
            "extended-without-member",
            m(rx, "extension.2.extension", []),
            [
                ("YL-3010", f"{mr}.extension[2].extension", "error"),
                ("YL-3071", f"{mr}.extension[2].extension", "error"),  # R5 JSON: no empty arrays
                ("YL-3060", f"{mr}.extension[2]", "error"),  # ext-1: neither value nor extensions
            ],
        ),
        (
            "yl-prescription",
            "bad-review-result",
            m(rx, "extension.3.extension.0.valueCode", "ok"),
            [("YL-3030", f"{mr}.extension[3].extension[0].valueCode", "error")],
        ),
        (
            "yl-prescription",
            "bad-icd10",
            m(rx, "reason.0.concept.coding.0.code", "E11-900"),
            [("YL-3040", f"{mr}.reason[0].concept.coding[0].code", "error")],
        ),
        (
            "yl-prescription",
            "missing-rx-number",
            m(rx, "identifier", rx["identifier"][1:]),
            [("YL-3010", f"{mr}.identifier", "error")],
        ),
        ("yl-prescription", "bad-status", m(rx, "status", "done"), [("YL-3030", f"{mr}.status", "error")]),
        (
            "yl-prescription",
            "structure-timing",
            m(rx, "dosageInstruction.0.timing", "bid"),
            [("YL-3001", f"{mr}.dosageInstruction[0].timing", "error")],
        ),
        (
            "yl-prescription",
            "structure-unknown-element",
            m(rx, "dispenseRequest.days", 28),
            [("YL-3001", f"{mr}.dispenseRequest.days", "error")],
        ),
        (
            "yl-supply-request",
            "transfer-without-source",
            m(SUPPLY_REQUEST, "deliverFrom", delete=True),
            [("YL-3060", "SupplyRequest", "error")],
        ),
        (
            "yl-supply-request",
            "shortage-without-patient",
            m(SHORTAGE, "deliverFor", delete=True),
            [("YL-3060", "SupplyRequest", "error")],
        ),
        (
            "yl-supply-request",
            "unknown-kind",
            m(SUPPLY_REQUEST, "category.coding.0.code", "gift"),
            [("YL-3030", "SupplyRequest.category", "error")],
        ),
        (
            "yl-inventory-report",
            "bad-trace-code",
            m(INVENTORY, "inventoryListing.0.item.0.extension.2.valueIdentifier.value", "8123456001234567890"),
            [("YL-3040", "InventoryReport.inventoryListing[0].item[0].extension[2].valueIdentifier.value", "error")],
        ),
        (
            "yl-inventory-report",
            "trace-code-not-8",
            m(INVENTORY, "inventoryListing.0.item.0.extension.2.valueIdentifier.value", "61234560012345678901"),
            [("YL-3043", "InventoryReport.inventoryListing[0].item[0].extension[2].valueIdentifier.value", "warning")],
        ),
        (
            "yl-inventory-report",
            "trace-code-wrong-system",
            m(INVENTORY, "inventoryListing.0.item.0.extension.2.valueIdentifier.system", SYS_STANDARD_CODE),
            [
                ("YL-3021", "InventoryReport.inventoryListing[0].item[0].extension[2].valueIdentifier", "error"),
                ("YL-3040", "InventoryReport.inventoryListing[0].item[0].extension[2].valueIdentifier.value", "error"),
            ],
        ),
        (
            "yl-inventory-report",
            "missing-lot-number",
            m(
                INVENTORY,
                "inventoryListing.0.item.0.extension",
                INVENTORY["inventoryListing"][0]["item"][0]["extension"][1:],
            ),
            [("YL-3010", "InventoryReport.inventoryListing[0].item[0].extension", "error")],
        ),
        (
            "yl-inventory-report",
            "negative-count",
            m(INVENTORY, "inventoryListing.0.item.0.quantity.value", -3),
            [("YL-3060", "InventoryReport", "error")],
        ),
        (
            "yl-inventory-report",
            "no-listing",
            m(INVENTORY, "inventoryListing", delete=True),
            [("YL-3010", "InventoryReport.inventoryListing", "error")],
        ),
    ]


def write_examples(out: Path = OUT) -> None:
    folder = out / "examples"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    (folder / "__init__.py").write_text(
        '"""Valid and invalid examples of the alliance profiles (see index.json)."""\n', encoding="utf-8"
    )
    index: list[dict] = []
    for prof, cases in VALID.items():
        for case, res in cases:
            name = f"{prof}.valid.{case}.json"
            dump(folder / name, res)
            index.append({"file": name, "profile": f"{SD}/{prof}", "valid": True, "issues": []})
    for prof, case, res, issues in invalid_examples():
        name = f"{prof}.invalid.{case}.json"
        dump(folder / name, res)
        index.append(
            {
                "file": name,
                "profile": f"{SD}/{prof}",
                "valid": False,
                "issues": [{"error_code": c, "expression": x, "severity": s} for c, x, s in issues],
            }
        )
    dump(folder / "index.json", index)


# -- SubscriptionTopics (issue 16, gateway/events/topics.py) --------------------------------

_TOPIC_FILTERS = {
    "patient": "The patient the record is about (Patient/id).",
    "member": "The alliance member the record belongs to (member code, http://yaolian.org/fhir/sid/member).",
    "drug": "A drug code of the record (system|code or code: medication, item or alert code).",
    "tier": "The alliance tier of the record's member (county, township, village).",
}


def _topic(
    topic_id: str,
    title: str,
    zh: str,
    desc: str,
    resource: str,
    interactions: list[str],
    filters: list[str],
    criteria: dict[str, Any] | None = None,
) -> dict:
    trigger: dict[str, Any] = {
        "description": desc,
        "resource": f"http://hl7.org/fhir/StructureDefinition/{resource}",
        "supportedInteraction": interactions,
    }
    if criteria:
        trigger["queryCriteria"] = criteria
    return {
        "resourceType": "SubscriptionTopic",
        "id": topic_id,
        "url": f"http://yaolian.org/fhir/SubscriptionTopic/{topic_id}",
        "version": "0.1.0",
        "name": "".join(w.capitalize() for w in topic_id.split("-")),
        "title": f"{title} {zh}",
        "status": "active",
        "date": "2026-12-03",
        "publisher": PUBLISHER,
        "description": desc,
        "resourceTrigger": [trigger],
        "canFilterBy": [
            {
                "description": _TOPIC_FILTERS[f],
                "resource": f"http://hl7.org/fhir/StructureDefinition/{resource}",
                "filterParameter": f,
            }
            for f in filters
        ],
        "notificationShape": [{"resource": f"http://hl7.org/fhir/StructureDefinition/{resource}"}],
    }


def subscription_topics() -> list[dict]:
    """The alliance's topics: what may leave the gateway for insurance and regulators (POL-18)."""
    rx = ["patient", "member", "drug", "tier"]
    supply = ["member", "drug", "tier"]
    stock, expiring = f"{CS}/stock-alert|below-alert-line", f"{CS}/stock-alert|expiring-batch"

    def changed(current: str, previous: str, create: str) -> dict[str, Any]:
        return {"previous": previous, "resultForCreate": create, "current": current, "requireBoth": True}

    return [
        _topic("prescription-created", "Prescription created", "处方开具",
               "A prescription (MedicationRequest) was created.", "MedicationRequest", ["create"], rx),
        _topic("prescription-changed", "Prescription changed", "处方变更",
               "A prescription (MedicationRequest) was updated or deleted (revoked).", "MedicationRequest",
               ["update", "delete"], rx),
        _topic("review-blocked", "Review blocked", "审方拦截",
               "The central pre-review rejected a prescription (review-result becomes reject, POL-06).",
               "MedicationRequest", ["create", "update"], rx,
               changed("review-result=reject", "review-result:not=reject", "test-passes")),
        _topic("review-overridden", "Review overridden", "审方放行",
               "A rejected prescription was let through (review-result goes from reject to pass or warn).",
               "MedicationRequest", ["update"], rx,
               changed("review-result=pass,warn", "review-result=reject", "test-fails")),
        _topic("dispense-recorded", "Dispense recorded", "发药记录",
               "A dispense (MedicationDispense) was recorded.", "MedicationDispense", ["create"], rx),
        _topic("supply-request-created", "Supply request created", "请领申请",
               "A member's supply request (SupplyRequest) was created.", "SupplyRequest", ["create"], supply),
        _topic("supply-request-approved", "Supply request approved", "请领批准",
               "A supply request became active (approved by the county pharmacy).", "SupplyRequest",
               ["create", "update"], supply, changed("status=active", "status:not=active", "test-passes")),
        _topic("delivery-recorded", "Delivery recorded", "配送记录",
               "A delivery (SupplyDelivery) to a member was recorded.", "SupplyDelivery", ["create"], supply),
        _topic("stock-alert-raised", "Stock alert raised", "库存预警",
               "A stock alert (DetectedIssue, code stock-alert|below-alert-line or |expiring-batch, POL-14/15) "
               "was raised.", "DetectedIssue", ["create", "update"], supply,
               changed(f"code={stock},{expiring}&status=final", "status:not=final", "test-passes")),
        _topic("stock-alert-closed", "Stock alert closed", "预警解除",
               "A stock alert closed itself: the stock recovered (DetectedIssue status mitigated).", "DetectedIssue",
               ["update"], supply, changed(f"code={stock},{expiring}&status=mitigated", "status=final", "test-fails")),
        _topic("shortage-registered", "Shortage registered", "缺药登记",
               "A member registered a drug a patient needs and it lacks (SupplyRequest of kind shortage, POL-16).",
               "SupplyRequest", ["create"], supply, {"current": f"category={CS}/supply-request-kind|shortage"}),
    ]  # fmt: skip


# -- OperationDefinitions (gateway/api/operations/__init__.py: the operation table) ------------
# Each parameter is what the handler in gateway/api/operations/ really reads or answers; the
# test tests/profiles/test_operation_definitions.py holds them to the table and to behaviour.

OD = f"{BASE}/OperationDefinition"


def _param(
    name: str, use: str, low: int, high: str, kind: str | None, doc: str, *parts: tuple[Any, ...], **extra: Any
) -> dict:
    out: dict[str, Any] = {"name": name, "use": use, "min": low, "max": high, "documentation": doc}
    if kind is not None:
        out["type"] = kind
    out.update(extra)
    if parts:
        out["part"] = [_param(*p) for p in parts]
    return out


def _operation(
    code: str,
    title: str,
    desc: str,
    *,
    levels: tuple[str, ...],
    resource: tuple[str, ...] = (),
    affects_state: bool,
    parameters: list[dict],
) -> dict:
    out: dict[str, Any] = {
        "resourceType": "OperationDefinition",
        "id": code,
        "url": f"{OD}/{code}",
        "version": VERSION,
        "name": "".join(p.title() for p in code.split("-")),
        "title": title,
        "status": "active",
        "kind": "operation",
        "date": "2026-12-04",
        "publisher": PUBLISHER,
        "description": desc,
        "affectsState": affects_state,
        "code": code,
    }
    if resource:
        out["resource"] = list(resource)
    out.update(system="system" in levels, type="type" in levels, instance="instance" in levels)
    out["parameter"] = parameters
    return out


_RAW = (
    "The raw message is the request body itself (HL7 v2 ER7, XML, CSV ... as the adapter reads it), "
    "not a Parameters resource."
)
_PERIOD = "The period: a month (2025-11) or a year (2025); anything else is YL-1202."
_DRUG = ("drug", "out", 1, "1", "Coding", "The drug (national drug code, http://yaolian.org/fhir/sid/nhsa-drug-code).")
_LINES = ("line", "out", 1, "*", "Reference", "The demand-plan lines (SupplyRequest) this total sums.")


def operation_definitions() -> list[dict]:
    """The operations the gateway defines itself (yaolian.org URLs of the operation table)."""
    adapter = _param(
        "adapter",
        "in",
        1,
        "1",
        "string",
        "The adapter that reads the message (URL parameter ?adapter=, e.g. hl7v2); missing is YL-0404.",
    )
    message = _param("message", "in", 1, "1", "Binary", _RAW)
    return [
        _operation(
            "ingest", "Ingest a member HIS message 接入院内系统报文",
            "Journals a member's raw HIS message, converts it with the named adapter and stores the "
            "result as one transaction (the same path as MLLP). An empty body is YL-0102; a message the "
            "adapter rejects is a 422 OperationOutcome and goes to the dead letters.",
            levels=("system",), affects_state=True,
            parameters=[adapter, message, _param(
                "return", "out", 1, "1", "Bundle",
                "The transaction-response Bundle (header X-Yaolian-Message: the journal number; "
                "X-Yaolian-Duplicate: true when the message was already ingested).")],
        ),
        _operation(
            "convert", "Convert a member HIS message 转换院内系统报文",
            "Converts a member's raw HIS message with the named adapter and stores nothing: what $ingest "
            "would write, for checking a mapping.",
            levels=("system",), affects_state=False,
            parameters=[adapter, message, _param(
                "return", "out", 1, "1", "Bundle",
                "The transaction Bundle the adapter built; Bundle.issues holds the warnings about how it was built.")],
        ),
        _operation(
            "hl7v2", "Prescription as HL7 v2 RDE^O11 处方回写",
            "Writes an approved or extended prescription back as HL7 v2.5 RDE^O11 for the member HIS that "
            "must dispense it; with scope=prescription every order of its 处方 (same groupIdentifier and "
            "patient), one ORC group each.",
            levels=("instance",), resource=("MedicationRequest",), affects_state=False,
            parameters=[
                _param("scope", "in", 0, "1", "code",
                       "order (default): this MedicationRequest; prescription: every order of its 处方. "
                       "Anything else is YL-0404."),
                _param("return", "out", 1, "1", "Binary",
                       "The HL7 v2 message, answered as the body itself (x-application/hl7-v2+er7)."),
            ],
        ),
        _operation(
            "insurance-status",
            "Prescription status at the insurance platform 电子处方信息查询",
            "Asks the national insurance platform what it says of an uploaded prescription (7105 电子处方信息查询, "
            "then 7106 电子处方取药结果查询; 7106's status wins). Whoever may read the MedicationRequest may ask. "
            "Never uploaded is YL-1308; a refusal or no answer from the platform YL-1307..1311.",
            levels=("instance",),
            resource=("MedicationRequest",),
            affects_state=False,
            parameters=[
                _param("prescription", "out", 1, "1", "Reference", "The MedicationRequest asked about."),
                _param("hiRxno", "out", 1, "1", "Identifier", "The platform's prescription number (hi_rxno)."),
                _param("rxTraceCode", "out", 0, "1", "Identifier", "The trace code recorded at upload."),
                _param("status", "out", 0, "1", "Coding", "The prescription status (rx_stas_codg / rx_stas_name)."),
                _param("usedStatus", "out", 0, "1", "Coding", "取药状态 (rx_used_stas_codg / rx_used_stas_name)."),
                _param("dispensedAt", "out", 0, "1", "dateTime", "When it was dispensed (7106 setl_time, China time)."),
                _param("dispensedBy", "out", 0, "1", "Reference",
                       "The dispensing institution, when 7106 names it (fixmedins_code / fixmedins_name)."),
                _param("dispensed", "out", 0, "*", None, "One per 7106 seltdelts line.",
                       ("drug", "out", 0, "1", "Coding", "The drug (national code and generic name)."),
                       ("quantity", "out", 0, "1", "decimal",
                        "The quantity (the platform's text as valueString when it is not a number)."),
                       ("taken", "out", 0, "1", "boolean", "Whether the drug was taken (take_drug_flag).")),
            ],
        ),
        _operation(
            "review", "Central prescription pre-review 前置审核",
            "Runs the alliance's review rules (profiles/rules/review) on a prescription before it is signed "
            "(POL-06). At type level the prescription is the body; at instance level the stored one when "
            "the body is empty. Records the review unless record=false.",
            levels=("type", "instance"), resource=("MedicationRequest",), affects_state=True,
            parameters=[
                _param("resource", "in", 0, "1", "Resource",
                       "The MedicationRequest, a Bundle holding it with its Medication and Patient, or this "
                       "parameter in a Parameters body. Required at type level (an empty body is YL-1110)."),
                _param("member", "in", 0, "1", "string",
                       "The prescribing member's code (URL parameter); else the owner tag, the caller's member "
                       "or the requester's organization."),
                _param("record", "in", 0, "1", "boolean",
                       "false: review only, record nothing (URL parameter; default true)."),
                _param("ruleSetVersion", "out", 1, "1", "string", "The rule set and its version (id|version)."),
                _param("result", "out", 1, "*", "code",
                       "One per prescription reviewed: pass, warn or reject (CodeSystem review-result)."),
                _param("issue", "out", 0, "*", "DetectedIssue", "One per finding of the rules."),
                _param("outcome", "out", 1, "1", "OperationOutcome",
                       "The findings as issues (YL-1111 per finding, YL-1114 for a pass)."),
            ],
        ),
        _operation(
            "formulary-check", "Formulary linkage checks 目录衔接检查",
            "Checks the member formularies against the alliance's linkage rules (POL-02..05, 10, 13, 21).",
            levels=("system",), affects_state=False,
            parameters=[
                _param("date", "in", 0, "1", "date", "The day to judge on (default: today)."),
                _param("format", "in", 0, "1", "code", "html: the findings as an HTML page instead of Parameters."),
                _param("finding", "out", 0, "*", None, "One per finding.",
                       ("rule", "out", 1, "1", "code", "The rule id (village-chronic-not-in-township, ...)."),
                       ("severity", "out", 1, "1", "code", "The finding's severity."),
                       ("member", "out", 1, "1", "string", "The member's code."),
                       ("drug", "out", 1, "1", "string", "The national drug code, or the generic name."),
                       ("text", "out", 1, "1", "string", "The finding in English."),
                       ("textZh", "out", 1, "1", "string", "The finding in Chinese.")),
            ],
        ),
        _operation(
            "continue", "Continue a prescription (mutual recognition) 互认共享",
            "Creates a new MedicationRequest continuing a prior prescription, stored here or at a live "
            "member (POL-08/09); with dispensingMember an extended prescription (延伸处方) dispensed there.",
            levels=("type",), resource=("MedicationRequest",), affects_state=True,
            parameters=[
                _param("prescription", "in", 1, "1", "Identifier",
                       "The number of the prescription to continue (system and value)."),
                _param("patient", "in", 0, "1", "Reference",
                       "The patient here; defaults to the prior prescription's when that one is stored here."),
                _param("identifier", "in", 0, "1", "Identifier", "The new prescription's number."),
                _param("authoredOn", "in", 0, "1", "dateTime", "When the new prescription is written."),
                _param("requester", "in", 0, "1", "Reference", "Who writes the new prescription."),
                _param("dispensingMember", "in", 0, "1", "string",
                       "The member code that dispenses it (an extended prescription, 延伸处方)."),
                _param("member", "in", 0, "1", "string",
                       "The continuing member, for callers that are not a member's client."),
                _param("return", "out", 1, "1", "MedicationRequest", "The new prescription, as created."),
            ],
        ),
        _operation(
            "prescriptions", "A patient's prescriptions across the alliance 跨机构处方查询",
            "Every MedicationRequest and MedicationDispense of a patient, from the store and every live "
            "member asked in parallel, newest first, with a Provenance per member.",
            levels=("type",), resource=("Patient",), affects_state=False,
            parameters=[
                _param("identifier", "in", 0, "1", "string",
                       "SYSTEM|VALUE of the patient (the resident ID card number is the key across members). "
                       "identifier or patient is required (YL-1010).", searchType="token"),
                _param("patient", "in", 0, "1", "string", "A Patient here (id or Patient/id).",
                       searchType="reference"),
                _param("_count", "in", 0, "1", "integer", "Page size."),
                _param("_sort", "in", 0, "1", "string", "-authoredon (default, newest first) or authoredon."),
                _param("_page", "in", 0, "1", "string", "The token of a next link."),
                _param("return", "out", 1, "1", "Bundle", "A searchset Bundle."),
            ],
        ),
        _operation(
            "aggregate", "Aggregate the demand plans 请领汇总",
            "The county's procurement plan for a period: totals per (county, drug) and per (county, supplier, "
            "drug) of the active demand-plan lines (POL-11, POL-12).",
            levels=("type",), resource=("SupplyRequest",), affects_state=False,
            parameters=[
                _param("period", "in", 1, "1", "string", _PERIOD + " URL parameter or Parameters."),
                _param("output", "in", 0, "1", "code", "json (default: Parameters) or csv."),
                _param("period", "out", 1, "1", "string", "The period aggregated."),
                _param("drugTotal", "out", 0, "*", None, "A total per county and drug.",
                       ("county", "out", 1, "1", "string", "The county."), _DRUG,
                       ("quantity", "out", 1, "1", "decimal", "The quantity."), _LINES),
                _param("supplierTotal", "out", 0, "*", None, "A total per county, supplier and drug.",
                       ("county", "out", 1, "1", "string", "The county."),
                       ("supplier", "out", 1, "1", "Reference", "The distribution company."), _DRUG,
                       ("quantity", "out", 1, "1", "decimal", "The quantity."), _LINES),
            ],
        ),
        _operation(
            "approve", "Approve the demand plans 请领审批",
            "The county pharmacy approves a period's demand-plan lines in one transaction, with changes "
            "(quantity 0 cuts a line); a List records the approved plan (POL-11, POL-12).",
            levels=("type",), resource=("SupplyRequest",), affects_state=True,
            parameters=[
                _param("period", "in", 1, "1", "string", _PERIOD),
                _param("change", "in", 0, "*", None, "A changed line (YL-1214 when line or quantity is missing).",
                       ("line", "in", 1, "1", "Reference", "The plan line (SupplyRequest)."),
                       ("quantity", "in", 1, "1", "decimal", "The approved quantity (0 cuts the line)."),
                       ("reason", "in", 1, "1", "string", "Why (a change without a reason is YL-1204).")),
                _param("period", "out", 1, "1", "string", "The period approved."),
                _param("approved", "out", 0, "*", "Reference", "Lines approved as they were."),
                _param("cut", "out", 0, "*", "Reference", "Lines cut (quantity 0)."),
                _param("changed", "out", 0, "*", "Reference", "Lines approved with another quantity."),
                _param("plan", "out", 0, "*", "Reference", "The List of each county's approved plan."),
            ],
        ),
        _operation(
            "export-plan", "Export the procurement plan 采购计划导出",
            "The approved plan for the distributors: one row per supplier, destination member, drug, "
            "quantity, unit and plan line.",
            levels=("type",), resource=("SupplyRequest",), affects_state=False,
            parameters=[
                _param("period", "in", 1, "1", "string", _PERIOD + " URL parameter."),
                _param("output", "in", 0, "1", "code", "csv (default) or xlsx."),
                _param("return", "out", 1, "1", "Binary", "The CSV or XLSX file, answered as the body itself."),
            ],
        ),
        _operation(
            "balance", "Balance stock between members 库存调剂",
            "Proposes transfers that lift members towards their alert lines without taking a giver below "
            "its own, within a county (POL-15, POL-25, POL-26); with propose=true writes each as a draft "
            "SupplyRequest of kind transfer.",
            levels=("type",), resource=("SupplyRequest",), affects_state=True,
            parameters=[
                _param("propose", "in", 0, "1", "boolean", "true: write the transfers as draft SupplyRequests."),
                _param("as-of", "in", 0, "1", "date", "The day the stock is judged on (default: the ledger's)."),
                _param("transfer", "out", 0, "*", None, "A proposed transfer.",
                       ("drug", "out", 1, "1", "string", "The drug code."),
                       ("from", "out", 1, "1", "string", "The giving member."),
                       ("to", "out", 1, "1", "string", "The receiving member."),
                       ("lot", "out", 0, "1", "string", "The batch."),
                       ("expiry", "out", 0, "1", "string", "The batch's expiry."),
                       ("quantity", "out", 1, "1", "decimal", "How much."),
                       ("request", "out", 0, "1", "Reference", "The SupplyRequest written (propose=true).")),
            ],
        ),
        _operation(
            "register-shortage", "Register a shortage 缺药登记",
            "Registers a drug a patient needs and the member lacks, for a reviewed extended or "
            "individual-treatment prescription (POL-16): a SupplyRequest of kind shortage.",
            levels=("type",), resource=("SupplyRequest",), affects_state=True,
            parameters=[
                _param("prescription", "in", 1, "1", "Reference",
                       "The reviewed prescription (MedicationRequest); missing is YL-1214."),
                _param("member", "in", 0, "1", "string", "The registering member (default: the dispensing member)."),
                _param("quantity", "in", 0, "1", "decimal", "The quantity needed."),
                _param("return", "out", 1, "1", "SupplyRequest", "The registration, as created (201)."),
            ],
        ),
        _operation(
            "stock-alerts", "Stock alerts 库存预警",
            "Checks every member's stock against its alert lines and batch expiries (POL-14, POL-15), "
            "raising and closing DetectedIssue alerts.",
            levels=("system",), affects_state=True,
            parameters=[
                _param("as-of", "in", 0, "1", "date", "The day the stock is judged on (default: the ledger's)."),
                _param("alert", "out", 0, "*", None, "A member below its alert line for a drug.",
                       ("kind", "out", 1, "1", "string", "below-alert-line."),
                       ("member", "out", 1, "1", "string", "The member."),
                       ("drug", "out", 1, "1", "string", "The drug code."),
                       ("stock", "out", 1, "1", "string", "The stock."),
                       ("line", "out", 1, "1", "string", "The alert line.")),
                _param("expiring", "out", 0, "*", None, "A batch near or past its expiry.",
                       ("kind", "out", 1, "1", "string", "expiring-batch."),
                       ("member", "out", 1, "1", "string", "The member."),
                       ("drug", "out", 1, "1", "string", "The drug code."),
                       ("stock", "out", 1, "1", "string", "The stock."),
                       ("lot", "out", 1, "1", "string", "The batch."),
                       ("expiry", "out", 1, "1", "string", "The batch's expiry.")),
                _param("raised", "out", 0, "*", "Reference", "Alerts raised (DetectedIssue)."),
                _param("closed", "out", 0, "*", "Reference", "Alerts closed (DetectedIssue)."),
            ],
        ),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------


def dump(path: Path, resource: Any) -> None:
    path.write_text(json.dumps(resource, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


GENERATED_KINDS = (
    "StructureDefinition", "CodeSystem", "ValueSet", "NamingSystem", "SearchParameter", "SubscriptionTopic",
    "OperationDefinition",
)  # fmt: skip


def build(core_folder: Path, out: Path = OUT) -> int:
    """Write every generated file into ``out``; returns how many conformance resources."""
    core_pkg = Core(core_folder)
    # Only the kinds generated here: profiles/ also holds hand-kept files (CapabilityStatement-*).
    for kind in GENERATED_KINDS:
        for old in out.glob(f"{kind}-*.json"):
            old.unlink()
    sds = [finish_sd(sd, core_pkg) for sd in [*resource_profiles(), *extensions()]]
    resources = [
        *sds,
        *terminology(),
        *naming_systems(),
        *search_parameters(),
        *subscription_topics(),
        *operation_definitions(),
    ]
    for res in resources:
        dump(out / f"{res['resourceType']}-{res['id']}.json", res)
    dump(out / "core-expansions.json", core_expansions(sds, core_pkg))
    write_examples(out)
    return len(resources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=Path, default=CORE_DEFAULT, help="unpacked hl7.fhir.r5.core package folder")
    parser.add_argument("--out", type=Path, default=OUT, help="folder to write into (default: profiles/)")
    args = parser.parse_args()
    count = build(args.core, args.out)
    print(f"wrote {count} resources and the examples to {args.out}")


if __name__ == "__main__":
    main()
