"""Synthetic prescriptions at scale, for benchmarks and load tests.

Realistic in shape (the same ``yl-prescription`` MedicationRequests as the demo, against the
demo alliance's drugs, doctors and members; patients with valid resident ID numbers) and
deterministic for a seed, so two runs load the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from gateway.demo._alliance import (
    AREA,
    CLINICIANS,
    COPD,
    DIABETES,
    DRUGS,
    HYPERTENSION,
    MEMBERS,
    medication_request,
)
from gateway.demo._codes import PSN_NO, RESIDENT_ID, SD, ref, resident_id

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段"  # noqa: E501
_GIVEN_M = "建国文斌铁柱富贵保平满仓志刚海平俊峰二虎小军来顺国庆振华"  # two characters each
_GIVEN_F = "桂芳秀兰翠英玉梅春花丽娟爱萍桂兰秀英淑珍凤英金花彩霞月娥"
_GROUPS = {"hypertension": HYPERTENSION, "diabetes": DIABETES, "copd": COPD}
_DOCTORS = [c for c in CLINICIANS if c.role == "doctor"]
_VILLAGES = [m.id for m in MEMBERS if m.tier == "village"]
_START = date(2024, 1, 1)


def _given(rng: random.Random, names: str) -> str:
    k = rng.randrange(len(names) // 2)
    return names[2 * k : 2 * k + 2]


def synthetic_patient(seed: int, number: int, rng: random.Random) -> dict[str, Any]:
    gender = rng.choice(("male", "female"))
    birth = date(1935, 1, 1) + timedelta(days=rng.randrange(40 * 365))
    sequence = rng.randrange(500) * 2 + (1 if gender == "male" else 0)
    name = rng.choice(_SURNAMES) + _given(rng, _GIVEN_M if gender == "male" else _GIVEN_F)
    clinic = rng.choice(_VILLAGES)
    return {
        "resourceType": "Patient",
        "id": f"syn{seed}-pat-{number:07d}",
        "meta": {"profile": [SD + "yl-patient"]},
        "identifier": [
            {"system": RESIDENT_ID, "value": resident_id(AREA, birth.isoformat(), sequence)},
            {"system": PSN_NO, "value": f"{AREA}{seed % 100:02d}{number:012d}"},
        ],
        "name": [{"text": name}],
        "gender": gender,
        "birthDate": birth.isoformat(),
        "managingOrganization": ref(f"Organization/{clinic}"),
    }


def synthetic_prescriptions(n: int, seed: int = 0, *, per_patient: int = 10) -> Iterator[dict[str, Any]]:
    """``n`` MedicationRequests, each patient (about ``n / per_patient`` of them) yielded just
    before its first prescription, so a loader can write them in order.

    A patient keeps one chronic group and a regular drug; prescriptions follow every 4 weeks
    or so, mostly long-term (4–12 weeks), a third of them extended to the patient's village.
    """
    rng = random.Random(seed)
    grouped = {g: [d for d in DRUGS if d.group == g] for g in _GROUPS}
    patient: dict[str, Any] = {}
    group = "hypertension"
    when = _START
    for i in range(n):
        if i % per_patient == 0:
            patient = synthetic_patient(seed, i // per_patient, rng)
            group = rng.choices(list(_GROUPS), weights=(6, 3, 1))[0]
            when = _START + timedelta(days=rng.randrange(60))
            yield patient
        drug = rng.choice(grouped[group])
        doctor = rng.choice(_DOCTORS)
        weeks = rng.choice((None, 4, 4, 8, 12))
        supply = weeks * 7 if weeks else rng.choice((3, 7))
        village = patient["managingOrganization"]["reference"].split("/", 1)[1]
        extended = village if doctor.member != village and rng.random() < 0.33 else None
        when += timedelta(days=rng.randrange(20, 40))
        yield medication_request(
            f"syn{seed}-rx-{i:08d}",
            f"RX{when:%Y%m%d}{seed % 100:02d}{i:08d}",
            patient["id"],
            drug,
            doctor.id,
            f"{when.isoformat()}T{8 + rng.randrange(9):02d}:{rng.randrange(60):02d}:00+08:00",
            supply,
            _GROUPS[group],
            long_term_weeks=weeks,
            dispensing_member=extended,
            status=rng.choices(("active", "completed", "stopped"), weights=(5, 4, 1))[0],
        )
