"""The 襄垣县 (Xiangyuan county, Changzhi, Shanxi; area code 140423) demo alliance.

One county hospital leads three township health centres, each with village clinics under it
(``Organization.partOf``); drugs of the chronic-disease formulary (hypertension, diabetes, COPD,
the groups the 2024 opinion names), ten patients with valid resident ID numbers, and the
traffic between members the policy documents describe: long-term prescriptions (长期处方),
extended prescriptions written at the county hospital and dispensed in a village (延伸处方),
demand plans, shortage registrations, transfers and stock counts.

Everything has a fixed id and fixed dates so loading is idempotent. The insurance drug codes of
amlodipine and metformin are real; the others, the 本位码, institution and physician codes are
made up in the right shape (they pass the format checks, they are not registry entries). The
WS 364 dose-form codes other than ``01`` (片剂) are unverified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.demo._codes import (
    ALLIANCE_TIER,
    CHRONIC_GROUP,
    DEMAND_REASON,
    DOSE_FORM,
    FIXMEDINS,
    HI_RXNO,
    ICD10,
    MEMBER,
    MEMBER_DRUG,
    NHSA_DRUG,
    PHYSICIAN_CODE,
    PRESCRIPTION_CATEGORY,
    PRESCRIPTION_NUMBER,
    PSN_NO,
    RESIDENT_ID,
    ROUTE,
    SD,
    STANDARD_CODE,
    SUPPLY_KIND,
    TRACE_CODE,
    coding,
    concept,
    days,
    profile,
    ref,
    resident_id,
)

AREA = "140423"
COUNTY_HOSPITAL = "xy-county-hospital"
ADDRESS = {"state": "山西省", "city": "长治市", "district": "襄垣县", "country": "CN"}

Resource = dict[str, Any]


# -- members -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    id: str
    name: str
    tier: str
    fixmedins: str
    part_of: str | None
    town: str


MEMBERS = (
    Member(COUNTY_HOSPITAL, "襄垣县人民医院", "county", "H14042300001", None, "古韩镇"),
    Member("xy-wangqiao", "襄垣县王桥镇卫生院", "township", "H14042300101", COUNTY_HOSPITAL, "王桥镇"),
    Member("xy-houbao", "襄垣县侯堡镇卫生院", "township", "H14042300102", COUNTY_HOSPITAL, "侯堡镇"),
    Member("xy-xiadian", "襄垣县夏店镇卫生院", "township", "H14042300103", COUNTY_HOSPITAL, "夏店镇"),
    Member("xy-dongpo", "王桥镇东坡村卫生室", "village", "H14042300201", "xy-wangqiao", "王桥镇"),
    Member("xy-nanhan", "王桥镇南邯村卫生室", "village", "H14042300202", "xy-wangqiao", "王桥镇"),
    Member("xy-shihuiyao", "侯堡镇石灰窑村卫生室", "village", "H14042300203", "xy-houbao", "侯堡镇"),
    Member("xy-beiyao", "侯堡镇北姚村卫生室", "village", "H14042300204", "xy-houbao", "侯堡镇"),
    Member("xy-yanggou", "夏店镇阳沟村卫生室", "village", "H14042300205", "xy-xiadian", "夏店镇"),
)
_TIER_ZH = {"county": "县级", "township": "乡镇", "village": "村"}
MEMBER_BY_ID = {m.id: m for m in MEMBERS}


def pharmacy(member_id: str) -> str:
    """Each member's pharmacy (the county hospital's is the alliance's central store)."""
    return f"{member_id}-pharmacy"


def _organization(m: Member) -> Resource:
    org: Resource = {
        "resourceType": "Organization",
        "id": m.id,
        "meta": profile("yl-organization"),
        "identifier": [{"system": FIXMEDINS, "value": m.fixmedins}, {"system": MEMBER, "value": m.id}],
        "active": True,
        "type": [concept(ALLIANCE_TIER, m.tier, _TIER_ZH[m.tier])],
        "name": m.name,
        "contact": [{"address": {**ADDRESS, "text": f"山西省长治市襄垣县{m.town}", "city": "长治市"}}],
    }
    if m.part_of:
        org["partOf"] = ref(f"Organization/{m.part_of}")
    return org


def _location(m: Member) -> Resource:
    name = "药库（医共体中心药房）" if m.tier == "county" else "药房"
    return {
        "resourceType": "Location",
        "id": pharmacy(m.id),
        "status": "active",
        "name": f"{m.name}{name}",
        "mode": "instance",
        "type": [concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "PHARM", "Pharmacy")],
        "address": {**ADDRESS, "text": f"山西省长治市襄垣县{m.town}"},
        "managingOrganization": ref(f"Organization/{m.id}"),
    }


# -- practitioners ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Clinician:
    id: str
    name: str
    gender: str
    member: str
    role: str  # doctor | pharmacist
    specialty: str
    code: str


CLINICIANS = (
    Clinician("xy-dr-wang", "王建国", "male", COUNTY_HOSPITAL, "doctor", "心血管内科", "D140423000101"),
    Clinician("xy-dr-li", "李秀英", "female", COUNTY_HOSPITAL, "doctor", "内分泌科", "D140423000102"),
    Clinician("xy-ph-zhao", "赵志刚", "male", COUNTY_HOSPITAL, "pharmacist", "药剂科（中心审方）", "D140423000103"),
    Clinician("xy-dr-guo", "郭海平", "male", "xy-wangqiao", "doctor", "全科", "D140423000201"),
    Clinician("xy-dr-du", "杜丽娟", "female", "xy-houbao", "doctor", "全科", "D140423000202"),
    Clinician("xy-dr-han", "韩俊峰", "male", "xy-xiadian", "doctor", "全科", "D140423000203"),
    Clinician("xy-dr-niu", "牛二虎", "male", "xy-dongpo", "doctor", "乡村医生", "D140423000301"),
    Clinician("xy-dr-chang", "常桂兰", "female", "xy-nanhan", "doctor", "乡村医生", "D140423000302"),
    Clinician("xy-dr-wu", "武小军", "male", "xy-shihuiyao", "doctor", "乡村医生", "D140423000303"),
    Clinician("xy-dr-hou", "侯爱萍", "female", "xy-beiyao", "doctor", "乡村医生", "D140423000304"),
    Clinician("xy-dr-shi", "史来顺", "male", "xy-yanggou", "doctor", "乡村医生", "D140423000305"),
)
CLINICIAN_BY_ID = {c.id: c for c in CLINICIANS}
_ROLE_ZH = {"doctor": "医师", "pharmacist": "药师"}


def _practitioner(c: Clinician) -> Resource:
    return {
        "resourceType": "Practitioner",
        "id": c.id,
        "meta": profile("yl-practitioner"),
        "identifier": [{"system": PHYSICIAN_CODE, "value": c.code}],
        "active": True,
        "name": [{"text": c.name, "family": c.name[0], "given": [c.name[1:]]}],
        "gender": c.gender,
    }


def _practitioner_role(c: Clinician) -> Resource:
    return {
        "resourceType": "PractitionerRole",
        "id": f"{c.id}-role",
        "active": True,
        "practitioner": ref(f"Practitioner/{c.id}"),
        "organization": ref(f"Organization/{c.member}"),
        "code": [concept("http://terminology.hl7.org/CodeSystem/practitioner-role", c.role, c.role, _ROLE_ZH[c.role])],
        "specialty": [{"text": c.specialty}],
        "location": [ref(f"Location/{pharmacy(c.member)}")],
    }


# -- drugs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drug:
    id: str
    generic: str  # 通用名 (Medication.code.text)
    nhsa: str  # 医保药品分类与代码, 23 characters
    standard: str  # 本位码, 14 digits
    form: tuple[str, str]  # WS 364 dose form (code, 名称)
    spec: str  # 规格
    unit: str  # dispensing unit
    essential: bool  # 基药
    procurement: bool  # 集采
    route: tuple[str, str]  # WS 364 route (code, 名称)
    dose: str  # usual single dose, for the dosage text
    per_day: int  # units per day at the usual dose
    group: str | None  # chronic disease group it is used for


def _nhsa(atc: str, generic: str, form: str, spec: str, maker: str) -> str:
    code = f"X{atc}{generic}{form}{spec}{maker}"
    assert len(code) == 23, code
    return code


_ORAL, _INHALED, _SC = ("1", "口服"), ("5", "吸入"), ("3", "皮下注射")
_TABLET, _CAPSULE = ("01", "片剂"), ("02", "胶囊剂")
_INJECTION, _INHALER, _AEROSOL = ("06", "注射剂"), ("13", "吸入粉雾剂"), ("14", "气雾剂")

DRUGS = (
    Drug("amlodipine-5mg", "苯磺酸氨氯地平片", "XC08CAA044A001010103451", "86900001000011", _TABLET,
         "5mg*28片", "片", True, True, _ORAL, "5mg", 1, "hypertension"),
    Drug("metformin-0-5g", "盐酸二甲双胍片", "XA10BAE054A001010102770", "86900001000028", _TABLET,
         "0.5g*20片", "片", True, True, _ORAL, "0.5g", 2, "diabetes"),
    Drug("nifedipine-er-30mg", "硝苯地平控释片", _nhsa("C08CA", "X126", "A012", "0101", "00872"), "86900001000035",
         _TABLET, "30mg*7片", "片", True, True, _ORAL, "30mg", 1, "hypertension"),
    Drug("losartan-50mg", "氯沙坦钾片", _nhsa("C09CA", "L059", "A001", "0101", "01533"), "86900001000042",
         _TABLET, "50mg*7片", "片", True, True, _ORAL, "50mg", 1, "hypertension"),
    Drug("indapamide-2-5mg", "吲达帕胺片", _nhsa("C03BA", "Y018", "A001", "0101", "00341"), "86900001000059",
         _TABLET, "2.5mg*30片", "片", True, False, _ORAL, "2.5mg", 1, "hypertension"),
    Drug("metoprolol-25mg", "酒石酸美托洛尔片", _nhsa("C07AB", "M087", "A001", "0101", "00209"), "86900001000066",
         _TABLET, "25mg*20片", "片", True, False, _ORAL, "25mg", 2, "hypertension"),
    Drug("atorvastatin-20mg", "阿托伐他汀钙片", _nhsa("C10AA", "A121", "A001", "0101", "02284"), "86900001000073",
         _TABLET, "20mg*7片", "片", True, True, _ORAL, "20mg", 1, None),
    Drug("aspirin-100mg", "阿司匹林肠溶片", _nhsa("B01AC", "A062", "A030", "0101", "00113"), "86900001000080",
         _TABLET, "100mg*30片", "片", True, False, _ORAL, "100mg", 1, None),
    Drug("clopidogrel-75mg", "硫酸氢氯吡格雷片", _nhsa("B01AC", "L052", "A001", "0101", "03120"), "86900001000097",
         _TABLET, "75mg*7片", "片", True, True, _ORAL, "75mg", 1, None),
    Drug("glimepiride-2mg", "格列美脲片", _nhsa("A10BB", "G050", "A001", "0101", "01765"), "86900001000103",
         _TABLET, "2mg*15片", "片", True, True, _ORAL, "2mg", 1, "diabetes"),
    Drug("acarbose-50mg", "阿卡波糖片", _nhsa("A10BF", "A003", "A001", "0101", "00668"), "86900001000110",
         _TABLET, "50mg*30片", "片", True, True, _ORAL, "50mg", 3, "diabetes"),
    Drug("insulin-30r", "精蛋白生物合成人胰岛素注射液（预混30R）", _nhsa("A10AD", "J021", "B002", "0301", "00456"),
         "86900001000127", _INJECTION, "3ml:300单位*1支", "支", True, True, _SC, "12单位", 0, "diabetes"),
    Drug("tiotropium-18ug", "噻托溴铵吸入粉雾剂", _nhsa("R03BB", "S041", "E004", "0201", "04310"), "86900001000134",
         _INHALER, "18μg*10粒", "粒", True, True, _INHALED, "18μg", 1, "copd"),
    Drug("budesonide-formoterol", "布地奈德福莫特罗吸入粉雾剂", _nhsa("R03AK", "B113", "E004", "0301", "05021"),
         "86900001000141", _INHALER, "160μg/4.5μg*60吸", "支", False, False, _INHALED, "1吸", 0, "copd"),
    Drug("salbutamol-aerosol", "硫酸沙丁胺醇吸入气雾剂", _nhsa("R03AC", "S010", "E001", "0201", "00988"),
         "86900001000158", _AEROSOL, "100μg*200揿", "支", True, False, _INHALED, "100μg", 0, "copd"),
)  # fmt: skip
DRUG_BY_ID = {d.id: d for d in DRUGS}


def _medication(d: Drug, index: int) -> Resource:
    return {
        "resourceType": "Medication",
        "id": d.id,
        "meta": profile("yl-drug"),
        "extension": [
            {"url": SD + "yl-drug-specification", "valueString": d.spec},
            {"url": SD + "yl-essential-medicine", "valueBoolean": d.essential},
            {"url": SD + "yl-volume-based-procurement", "valueBoolean": d.procurement},
        ],
        "identifier": [
            {
                "system": MEMBER_DRUG,
                "value": f"YP{index + 1:06d}",
                "assigner": ref(f"Organization/{COUNTY_HOSPITAL}"),
            }
        ],
        "code": {
            "coding": [coding(NHSA_DRUG, d.nhsa, d.generic), coding(STANDARD_CODE, d.standard)],
            "text": d.generic,
        },
        "status": "active",
        "doseForm": concept(DOSE_FORM, *d.form),
    }


# -- patients --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resident:
    id: str
    name: str
    gender: str
    birth: str
    sequence: int  # odd for men, even for women (GB 11643)
    clinic: str  # the village clinic / township centre where they are registered
    doctor: str  # 签约家庭医生
    conditions: tuple[tuple[str, str, str], ...]  # (ICD-10 国家临床版, 名称, chronic group or "")


HYPERTENSION = ("I10.x00x002", "高血压", "hypertension")
DIABETES = ("E11.900", "2型糖尿病", "diabetes")
COPD = ("J44.900", "慢性阻塞性肺疾病", "copd")
CHD = ("I25.103", "冠状动脉粥样硬化性心脏病", "")
LIPIDS = ("E78.500", "高脂血症", "")

RESIDENTS = (
    Resident("xy-pat-zhang-guifang", "张桂芳", "female", "1949-03-12", 22, "xy-dongpo", "xy-dr-niu",
             (HYPERTENSION, DIABETES)),
    Resident("xy-pat-li-wenbin", "李文斌", "male", "1952-07-08", 31, "xy-nanhan", "xy-dr-chang", (HYPERTENSION,)),
    Resident("xy-pat-wang-xiulan", "王秀兰", "female", "1956-11-23", 44, "xy-shihuiyao", "xy-dr-wu", (DIABETES,)),
    Resident("xy-pat-zhao-tiezhu", "赵铁柱", "male", "1948-01-30", 17, "xy-beiyao", "xy-dr-hou", (COPD,)),
    Resident("xy-pat-liu-cuiying", "刘翠英", "female", "1960-05-17", 26, "xy-yanggou", "xy-dr-shi", (HYPERTENSION,)),
    Resident("xy-pat-chen-fugui", "陈富贵", "male", "1955-09-02", 53, "xy-wangqiao", "xy-dr-guo", (DIABETES, LIPIDS)),
    Resident("xy-pat-yang-yumei", "杨玉梅", "female", "1963-12-19", 68, "xy-houbao", "xy-dr-du", (HYPERTENSION, CHD)),
    Resident("xy-pat-hao-baoping", "郝保平", "male", "1950-04-04", 75, "xy-xiadian", "xy-dr-han",
             (COPD, HYPERTENSION)),
    Resident("xy-pat-duan-chunhua", "段春花", "female", "1958-08-28", 80, "xy-dongpo", "xy-dr-niu", (DIABETES,)),
    Resident("xy-pat-ren-mancang", "任满仓", "male", "1945-02-14", 99, "xy-nanhan", "xy-dr-chang",
             (HYPERTENSION, CHD)),
)  # fmt: skip
RESIDENT_BY_ID = {r.id: r for r in RESIDENTS}


def _patient(r: Resident, index: int) -> Resource:
    town = MEMBER_BY_ID[r.clinic].town
    return {
        "resourceType": "Patient",
        "id": r.id,
        "meta": profile("yl-patient"),
        "identifier": [
            {"system": RESIDENT_ID, "value": resident_id(AREA, r.birth, r.sequence)},
            {"system": PSN_NO, "value": f"{AREA}{index + 1:014d}"},
        ],
        "active": True,
        "name": [{"text": r.name, "family": r.name[0], "given": [r.name[1:]]}],
        "gender": r.gender,
        "birthDate": r.birth,
        "address": [{**ADDRESS, "text": f"山西省长治市襄垣县{town}", "use": "home"}],
        "generalPractitioner": [ref(f"Practitioner/{r.doctor}")],
        "managingOrganization": ref(f"Organization/{r.clinic}"),
    }


# -- prescriptions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rx:
    patient: str
    drug: str
    prescriber: str
    date: str  # YYYY-MM-DD
    supply_days: int
    diagnosis: tuple[str, str, str]
    long_term_weeks: int | None = None  # 长期处方
    dispensing_member: str | None = None  # 延伸处方: written here, dispensed there
    status: str = "active"
    reviewed: bool = False


P = {r.id.removeprefix("xy-pat-"): r.id for r in RESIDENTS}
PRESCRIPTIONS = (
    # 张桂芳: county-hospital long-term + extended prescriptions, dispensed in her village
    Rx(P["zhang-guifang"], "amlodipine-5mg", "xy-dr-wang", "2025-01-06", 28, HYPERTENSION, 4, "xy-dongpo",
       "completed", True),
    Rx(P["zhang-guifang"], "metformin-0-5g", "xy-dr-li", "2025-01-06", 28, DIABETES, 4, "xy-dongpo", "completed", True),
    Rx(P["zhang-guifang"], "amlodipine-5mg", "xy-dr-wang", "2025-02-03", 56, HYPERTENSION, 8, "xy-dongpo",
       reviewed=True),
    Rx(P["zhang-guifang"], "metformin-0-5g", "xy-dr-li", "2025-02-03", 56, DIABETES, 8, "xy-dongpo", reviewed=True),
    # 李文斌: village follow-up, then a county switch to losartan
    Rx(P["li-wenbin"], "nifedipine-er-30mg", "xy-dr-chang", "2025-01-10", 7, HYPERTENSION, status="completed"),
    Rx(P["li-wenbin"], "losartan-50mg", "xy-dr-wang", "2025-01-20", 28, HYPERTENSION, 4, "xy-nanhan", reviewed=True),
    Rx(P["li-wenbin"], "indapamide-2-5mg", "xy-dr-wang", "2025-01-20", 28, HYPERTENSION, 4, "xy-nanhan"),
    # 王秀兰: type 2 diabetes, township-managed, 12-week long-term prescription
    Rx(P["wang-xiulan"], "metformin-0-5g", "xy-dr-du", "2025-01-08", 84, DIABETES, 12, "xy-shihuiyao"),
    Rx(P["wang-xiulan"], "glimepiride-2mg", "xy-dr-du", "2025-01-08", 84, DIABETES, 12, "xy-shihuiyao"),
    Rx(P["wang-xiulan"], "acarbose-50mg", "xy-dr-wu", "2025-02-15", 7, DIABETES),
    # 赵铁柱: COPD, inhalers from the county hospital through the township
    Rx(P["zhao-tiezhu"], "tiotropium-18ug", "xy-dr-wang", "2025-01-15", 30, COPD, 4, "xy-beiyao", reviewed=True),
    Rx(P["zhao-tiezhu"], "salbutamol-aerosol", "xy-dr-hou", "2025-01-28", 7, COPD),
    Rx(P["zhao-tiezhu"], "budesonide-formoterol", "xy-dr-du", "2025-02-12", 30, COPD, 4, "xy-beiyao"),
    # 刘翠英
    Rx(P["liu-cuiying"], "amlodipine-5mg", "xy-dr-shi", "2025-01-05", 7, HYPERTENSION, status="completed"),
    Rx(P["liu-cuiying"], "amlodipine-5mg", "xy-dr-han", "2025-01-12", 28, HYPERTENSION, 4, "xy-yanggou"),
    Rx(P["liu-cuiying"], "metoprolol-25mg", "xy-dr-han", "2025-01-12", 28, HYPERTENSION, 4, "xy-yanggou"),
    # 陈富贵
    Rx(P["chen-fugui"], "metformin-0-5g", "xy-dr-guo", "2025-01-09", 28, DIABETES, 4),
    Rx(P["chen-fugui"], "atorvastatin-20mg", "xy-dr-guo", "2025-01-09", 28, LIPIDS),
    Rx(P["chen-fugui"], "glimepiride-2mg", "xy-dr-li", "2025-02-06", 56, DIABETES, 8, "xy-wangqiao", reviewed=True),
    # 杨玉梅: hypertension with coronary heart disease
    Rx(P["yang-yumei"], "losartan-50mg", "xy-dr-du", "2025-01-14", 28, HYPERTENSION, 4),
    Rx(P["yang-yumei"], "aspirin-100mg", "xy-dr-wang", "2025-01-21", 30, CHD, dispensing_member="xy-houbao"),
    Rx(P["yang-yumei"], "atorvastatin-20mg", "xy-dr-wang", "2025-01-21", 28, CHD, dispensing_member="xy-houbao"),
    # 郝保平: COPD and hypertension
    Rx(P["hao-baoping"], "tiotropium-18ug", "xy-dr-han", "2025-01-07", 30, COPD, 4),
    Rx(P["hao-baoping"], "nifedipine-er-30mg", "xy-dr-han", "2025-01-07", 28, HYPERTENSION, 4),
    Rx(P["hao-baoping"], "salbutamol-aerosol", "xy-dr-han", "2025-02-18", 3, COPD, status="stopped"),
    # 段春花: insulin started at the county hospital, continued in the village
    Rx(P["duan-chunhua"], "insulin-30r", "xy-dr-li", "2025-01-16", 28, DIABETES, 4, "xy-dongpo", reviewed=True),
    Rx(P["duan-chunhua"], "metformin-0-5g", "xy-dr-niu", "2025-02-13", 28, DIABETES, 4),
    # 任满仓
    Rx(P["ren-mancang"], "amlodipine-5mg", "xy-dr-chang", "2025-01-11", 28, HYPERTENSION, 4),
    Rx(P["ren-mancang"], "aspirin-100mg", "xy-dr-wang", "2025-01-18", 30, CHD, dispensing_member="xy-nanhan"),
    Rx(P["ren-mancang"], "clopidogrel-75mg", "xy-dr-wang", "2025-01-18", 28, CHD, dispensing_member="xy-nanhan",
       status="cancelled"),
    Rx(P["ren-mancang"], "atorvastatin-20mg", "xy-dr-wang", "2025-02-15", 56, CHD, dispensing_member="xy-nanhan",
       reviewed=True),
)  # fmt: skip


def rx_id(index: int) -> str:
    return f"xy-rx-{index + 1:03d}"


def medication_request(
    rx_id_: str,
    rx_number: str,
    patient: str,
    drug: Drug,
    prescriber: str,
    authored: str,
    supply_days: int,
    diagnosis: tuple[str, str, str],
    *,
    long_term_weeks: int | None = None,
    dispensing_member: str | None = None,
    status: str = "active",
    reviewer: str | None = None,
    hi_rxno: str | None = None,
) -> Resource:
    """A MedicationRequest conforming to ``yl-prescription`` (also used by the synthetic generator)."""
    extensions: list[Resource] = [
        {
            "url": SD + "yl-prescription-category",
            "valueCoding": coding(PRESCRIPTION_CATEGORY, "general", "普通处方"),
        }
    ]
    if long_term_weeks is not None:
        extensions.append(
            {
                "url": SD + "yl-long-term-prescription",
                "extension": [
                    {"url": "chronicGroup", "valueCoding": coding(CHRONIC_GROUP, diagnosis[2])},
                    {"url": "maxWeeks", "valuePositiveInt": long_term_weeks},
                ],
            }
        )
    if dispensing_member is not None:
        extensions.append(
            {
                "url": SD + "yl-extended-prescription",
                "extension": [{"url": "dispensingMember", "valueReference": ref(f"Organization/{dispensing_member}")}],
            }
        )
    if reviewer is not None:
        extensions.append(
            {
                "url": SD + "yl-central-review-result",
                "extension": [
                    {"url": "result", "valueCode": "pass"},
                    {"url": "reviewer", "valueReference": ref(f"Practitioner/{reviewer}")},
                    {"url": "date", "valueDateTime": authored[:11] + "10:30:00+08:00"},
                ],
            }
        )
    identifiers = [{"system": PRESCRIPTION_NUMBER, "value": rx_number}]
    if hi_rxno:
        identifiers.append({"system": HI_RXNO, "value": hi_rxno})
    per_day = drug.per_day
    quantity = per_day * supply_days if per_day else max(1, supply_days // 28)
    dosage: Resource = {
        "text": f"每次{drug.dose}，{_frequency_zh(per_day)}，{drug.route[1]}",
        "route": concept(ROUTE, *drug.route),
    }
    if per_day:
        dosage["timing"] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    return {
        "resourceType": "MedicationRequest",
        "id": rx_id_,
        "meta": profile("yl-prescription"),
        "extension": extensions,
        "identifier": identifiers,
        "status": status,
        "intent": "order",
        "category": [
            concept(
                "http://terminology.hl7.org/CodeSystem/medicationrequest-admin-location",
                "community",
                "Community",
            )
        ],
        "medication": {"reference": ref(f"Medication/{drug.id}")},
        "subject": ref(f"Patient/{patient}"),
        "authoredOn": authored,
        "requester": ref(f"Practitioner/{prescriber}"),
        "reason": [{"concept": concept(ICD10, diagnosis[0], diagnosis[1])}],
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": {"value": quantity, "unit": drug.unit},
            "expectedSupplyDuration": days(supply_days),
        },
    }


def _frequency_zh(per_day: int) -> str:
    return {0: "按需", 1: "每日1次", 2: "每日2次", 3: "每日3次"}.get(per_day, f"每日{per_day}次")


def _prescription(index: int, rx: Rx) -> Resource:
    date = rx.date.replace("-", "")
    return medication_request(
        rx_id(index),
        f"RX{date}{index + 1:06d}",
        rx.patient,
        DRUG_BY_ID[rx.drug],
        rx.prescriber,
        f"{rx.date}T09:{index % 60:02d}:00+08:00",
        rx.supply_days,
        rx.diagnosis,
        long_term_weeks=rx.long_term_weeks,
        dispensing_member=rx.dispensing_member,
        status=rx.status,
        reviewer="xy-ph-zhao" if rx.reviewed else None,
        hi_rxno=f"14042300{date}{index + 1:06d}" if rx.reviewed else None,
    )


# -- dispenses, supply, stock ------------------------------------------------------------------
def _dispense(index: int, rx_index: int, handed_over: str) -> Resource:
    rx = PRESCRIPTIONS[rx_index]
    drug = DRUG_BY_ID[rx.drug]
    member = rx.dispensing_member or CLINICIAN_BY_ID[rx.prescriber].member
    dispenser = next(c.id for c in CLINICIANS if c.member == member)
    request = _prescription(rx_index, rx)
    return {
        "resourceType": "MedicationDispense",
        "id": f"xy-dispense-{index + 1:03d}",
        "status": "completed",
        "medication": {"reference": ref(f"Medication/{drug.id}")},
        "subject": ref(f"Patient/{rx.patient}"),
        "performer": [{"actor": ref(f"Practitioner/{dispenser}")}],
        "location": ref(f"Location/{pharmacy(member)}"),
        "authorizingPrescription": [ref(f"MedicationRequest/{rx_id(rx_index)}")],
        "quantity": request["dispenseRequest"]["quantity"],
        "daysSupply": days(rx.supply_days),
        "whenHandedOver": handed_over,
        "dosageInstruction": [{"text": request["dosageInstruction"][0]["text"]}],
    }


_SUPPLY_KIND_ZH = {"demand-plan": "需求计划", "shortage": "短缺登记", "transfer": "调剂"}


def _supply_request(
    sid: str,
    kind: str,
    drug: str,
    quantity: int,
    requester: str,
    authored: str,
    **extra: Any,
) -> Resource:
    d = DRUG_BY_ID[drug]
    return {
        "resourceType": "SupplyRequest",
        "id": sid,
        "meta": profile("yl-supply-request"),
        "status": extra.pop("status", "active"),
        "category": concept(SUPPLY_KIND, kind, _SUPPLY_KIND_ZH[kind]),
        "item": {"reference": ref(f"Medication/{d.id}")},
        "quantity": {"value": quantity, "unit": d.unit},
        "authoredOn": authored,
        "requester": ref(f"Organization/{requester}"),
        **extra,
    }


def _supply_requests() -> list[Resource]:
    county_store = ref(f"Location/{pharmacy(COUNTY_HOSPITAL)}")
    return [
        _supply_request(
            "xy-plan-2025q2-wangqiao-amlodipine",
            "demand-plan",
            "amlodipine-5mg",
            2800,
            "xy-wangqiao",
            "2025-03-01T10:00:00+08:00",
            supplier=[ref(f"Organization/{COUNTY_HOSPITAL}")],
            reason=[{"concept": concept(DEMAND_REASON, "chronic", "慢性病")}],
            deliverTo=ref(f"Location/{pharmacy('xy-wangqiao')}"),
            occurrencePeriod={"start": "2025-04-01", "end": "2025-06-30"},
        ),
        _supply_request(
            "xy-plan-2025q2-houbao-metformin",
            "demand-plan",
            "metformin-0-5g",
            4000,
            "xy-houbao",
            "2025-03-01T10:20:00+08:00",
            supplier=[ref(f"Organization/{COUNTY_HOSPITAL}")],
            reason=[{"concept": concept(DEMAND_REASON, "chronic", "慢性病")}],
            deliverTo=ref(f"Location/{pharmacy('xy-houbao')}"),
            occurrencePeriod={"start": "2025-04-01", "end": "2025-06-30"},
        ),
        _supply_request(
            "xy-plan-2025q4-xiadian-salbutamol",
            "demand-plan",
            "salbutamol-aerosol",
            120,
            "xy-xiadian",
            "2025-03-03T15:00:00+08:00",
            supplier=[ref(f"Organization/{COUNTY_HOSPITAL}")],
            reason=[{"concept": concept(DEMAND_REASON, "seasonal", "季节性")}],
            deliverTo=ref(f"Location/{pharmacy('xy-xiadian')}"),
            occurrencePeriod={"start": "2025-10-01", "end": "2025-12-31"},
        ),
        _supply_request(
            "xy-shortage-beiyao-tiotropium",
            "shortage",
            "tiotropium-18ug",
            30,
            "xy-beiyao",
            "2025-02-20T08:40:00+08:00",
            deliverFor=ref(f"Patient/{P['zhao-tiezhu']}"),
            deliverTo=ref(f"Location/{pharmacy('xy-beiyao')}"),
        ),
        _supply_request(
            "xy-shortage-nanhan-clopidogrel",
            "shortage",
            "clopidogrel-75mg",
            28,
            "xy-nanhan",
            "2025-02-16T09:15:00+08:00",
            deliverFor=ref(f"Patient/{P['ren-mancang']}"),
            deliverTo=ref(f"Location/{pharmacy('xy-nanhan')}"),
        ),
        _supply_request(
            "xy-transfer-insulin-dongpo",
            "transfer",
            "insulin-30r",
            4,
            "xy-dongpo",
            "2025-02-10T11:00:00+08:00",
            status="completed",
            deliverFrom=county_store,
            deliverTo=ref(f"Location/{pharmacy('xy-dongpo')}"),
        ),
    ]


# (member, counted at, [(drug, count, lot, expiry)])
_STOCK = (
    (COUNTY_HOSPITAL, "xy-ph-zhao", "2025-03-01T17:00:00+08:00", (
        ("amlodipine-5mg", 12600, "240915", "2027-08-31"),
        ("metformin-0-5g", 18400, "241102", "2027-10-31"),
        ("insulin-30r", 86, "B24061", "2026-05-31"),
        ("tiotropium-18ug", 420, "T240803", "2026-07-31"),
        ("clopidogrel-75mg", 0, "C240417", "2026-03-31"),
    )),
    ("xy-wangqiao", "xy-dr-guo", "2025-03-01T17:30:00+08:00", (
        ("amlodipine-5mg", 560, "240915", "2027-08-31"),
        ("metformin-0-5g", 1200, "241102", "2027-10-31"),
        ("glimepiride-2mg", 300, "G240611", "2026-11-30"),
    )),
    ("xy-dongpo", "xy-dr-niu", "2025-03-01T18:00:00+08:00", (
        ("amlodipine-5mg", 84, "240915", "2027-08-31"),
        ("metformin-0-5g", 120, "241102", "2027-10-31"),
        ("insulin-30r", 3, "B24061", "2026-05-31"),
    )),
)  # fmt: skip


def _inventory_reports() -> list[Resource]:
    reports = []
    for n, (member, reporter, when, lines) in enumerate(_STOCK):
        items = []
        for m, (drug, count, lot, expiry) in enumerate(lines):
            d = DRUG_BY_ID[drug]
            trace = f"8{d.standard[5:11]}{n:03d}{m:010d}"
            items.append(
                {
                    "extension": [
                        {"url": SD + "yl-lot-number", "valueString": lot},
                        {"url": SD + "yl-expiration-date", "valueDate": expiry},
                        {
                            "url": SD + "yl-traceability-code",
                            "valueIdentifier": {"system": TRACE_CODE, "value": trace},
                        },
                    ],
                    "quantity": {"value": count, "unit": d.unit},
                    "item": {"reference": ref(f"Medication/{d.id}")},
                }
            )
        reports.append(
            {
                "resourceType": "InventoryReport",
                "id": f"xy-stock-20250301-{member.removeprefix('xy-')}",
                "meta": profile("yl-inventory-report"),
                "status": "active",
                "countType": "snapshot",
                "reportedDateTime": when,
                "reporter": ref(f"Practitioner/{reporter}"),
                "inventoryListing": [
                    {
                        "location": ref(f"Location/{pharmacy(member)}"),
                        "countingDateTime": when,
                        "item": items,
                    }
                ],
            }
        )
    return reports


def demo_resources() -> list[Resource]:
    """Every resource of the demo alliance, referenced resources first."""
    out: list[Resource] = [_organization(m) for m in MEMBERS]
    out += [_location(m) for m in MEMBERS]
    out += [_practitioner(c) for c in CLINICIANS]
    out += [_practitioner_role(c) for c in CLINICIANS]
    out += [_medication(d, i) for i, d in enumerate(DRUGS)]
    out += [_patient(r, i) for i, r in enumerate(RESIDENTS)]
    out += [_prescription(i, rx) for i, rx in enumerate(PRESCRIPTIONS)]
    out += [
        _dispense(0, 0, "2025-01-07T15:20:00+08:00"),
        _dispense(1, 1, "2025-01-07T15:22:00+08:00"),
        _dispense(2, 4, "2025-01-10T10:05:00+08:00"),
        _dispense(3, 13, "2025-01-05T16:40:00+08:00"),
        _dispense(4, 25, "2025-01-17T09:30:00+08:00"),
    ]
    out += _supply_requests()
    out += _inventory_reports()
    return out


__all__ = ["DRUGS", "MEMBERS", "PRESCRIPTIONS", "RESIDENTS", "demo_resources", "medication_request", "resident_id"]
