"""A township HIS's outpatient prescription tables (header 处方, lines 处方明细, dispenses
发药记录) and the read-only views it exposes in the generic dialect
(``mappings/sqlview/generic-his.yaml`` and ``generic-his-dispense.yaml``), built the same way in
SQLite and PostgreSQL. Shared by the adapter and federation tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import create_engine, text

PATIENT = "140423195603071234"
OTHER_PATIENT = "140423198001010021"

TABLES = (
    """CREATE TABLE "HIS_MZ_CF" (
        "CFH" VARCHAR(20) PRIMARY KEY, "JGDM" VARCHAR(20), "SFZH" VARCHAR(18), "HZXM" VARCHAR(40),
        "KFRQ" TIMESTAMP, "YSGH" VARCHAR(20), "YSXM" VARCHAR(40), "KSMC" VARCHAR(40),
        "ZDDM" VARCHAR(20), "ZDMC" VARCHAR(60), "CFZT" VARCHAR(2))""",
    """CREATE TABLE "HIS_MZ_CFMX" (
        "CFH" VARCHAR(20), "CFMXH" INTEGER, "YPBM" VARCHAR(20), "YBBM" VARCHAR(30), "YPMC" VARCHAR(60),
        "JX" VARCHAR(20), "JL" NUMERIC(10, 3), "JLDW" VARCHAR(10), "PC" VARCHAR(10), "YF" VARCHAR(10),
        "TS" INTEGER, "SL" NUMERIC(10, 2), "SLDW" VARCHAR(10), PRIMARY KEY ("CFH", "CFMXH"))""",
    """CREATE VIEW "v_yl_prescription" AS
        SELECT c."JGDM", c."CFH", m."CFMXH", c."SFZH", c."HZXM", c."KFRQ", c."YSGH", c."YSXM", c."KSMC",
               c."ZDDM", c."ZDMC", m."YPBM", m."YBBM", m."YPMC", m."JX", m."JL", m."JLDW", m."PC", m."YF",
               m."TS", m."SL", m."SLDW", c."CFZT"
        FROM "HIS_MZ_CF" c JOIN "HIS_MZ_CFMX" m ON m."CFH" = c."CFH" """,
    """CREATE TABLE "HIS_MZ_FY" (
        "FYH" VARCHAR(20), "CFH" VARCHAR(20), "CFMXH" INTEGER, "FYRQ" TIMESTAMP, "FYSL" NUMERIC(10, 2),
        "FYRGH" VARCHAR(20), "FYRXM" VARCHAR(40), "FYZT" VARCHAR(2), PRIMARY KEY ("FYH", "CFMXH"))""",
    """CREATE VIEW "v_yl_dispense" AS
        SELECT c."JGDM", f."FYH", f."CFH", f."CFMXH", c."SFZH", c."HZXM", f."FYRQ", f."FYRGH", f."FYRXM",
               m."YPBM", m."YBBM", m."YPMC", m."JX", f."FYSL", m."SLDW", f."FYZT"
        FROM "HIS_MZ_FY" f JOIN "HIS_MZ_CF" c ON c."CFH" = f."CFH"
        JOIN "HIS_MZ_CFMX" m ON m."CFH" = f."CFH" AND m."CFMXH" = f."CFMXH" """,
)

#: (CFH, SFZH, KFRQ, CFZT, diagnosis code, diagnosis) and their lines.
PRESCRIPTIONS: list[tuple[str, str, str, str, str, str]] = [
    ("CF20261002001", PATIENT, "2026-10-02 08:30:00", "1", "I10.x00", "高血压"),
    ("CF20261102007", PATIENT, "2026-11-02 09:15:00", "1", "E11.900", "2型糖尿病"),
    ("CF20261115003", PATIENT, "2026-11-15 10:05:00", "0", "I10.x00", "高血压"),
    ("CF20261120011", OTHER_PATIENT, "2026-11-20 14:40:00", "1", "J44.900", "慢性阻塞性肺病"),
]
LINES: list[tuple[Any, ...]] = [
    ("CF20261002001", 1, "YP00123", "XC08CAA014A001010100486", "苯磺酸氨氯地平片", "片剂", "5", "mg", "QD", "PO", 30, "30", "片"),  # noqa: E501
    ("CF20261102007", 1, "YP00456", "XA10BAA001A001010101234", "盐酸二甲双胍片", "片剂", "0.5", "g", "TID", "PO", 30, "90", "片"),  # noqa: E501
    ("CF20261102007", 2, "YP00123", "XC08CAA014A001010100486", "苯磺酸氨氯地平片", "片剂", "5", "mg", "QD", "PO", 30, "30", "片"),  # noqa: E501
    ("CF20261115003", 1, "YP00789", None, "硝苯地平缓释片", "缓释片", "20", "mg", "BID", "PO", 14, "28", "片"),
    ("CF20261120011", 1, "YP00999", None, "噻托溴铵粉吸入剂", "吸入剂", "18", "ug", "QD", "IH", 30, "30", "粒"),
]  # fmt: skip


#: (FYH, CFH, CFMXH, FYRQ, FYSL, FYZT): the 10-02 line and both 11-02 lines were handed over.
DISPENSES: list[tuple[Any, ...]] = [
    ("FY20261002015", "CF20261002001", 1, "2026-10-02 09:02:00", "30", "1"),
    ("FY20261102031", "CF20261102007", 1, "2026-11-02 09:40:00", "90", "1"),
    ("FY20261102031", "CF20261102007", 2, "2026-11-02 09:40:00", "30", "1"),
]


def build_his(url: str, *, bad_date: str | None = None) -> None:
    """The HIS tables, filled, and the view at ``url``. ``bad_date``: a prescription number whose
    KFRQ is stored as text no date parser reads (a view over a VARCHAR date column)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for ddl in TABLES:
            if bad_date is not None:
                ddl = ddl.replace('"KFRQ" TIMESTAMP', '"KFRQ" VARCHAR(30)')
            conn.execute(text(ddl))
        for cfh, sfzh, kfrq, cfzt, zddm, zdmc in PRESCRIPTIONS:
            conn.execute(
                text(
                    'INSERT INTO "HIS_MZ_CF" VALUES '
                    "(:cfh, :jg, :sfzh, :name, :kfrq, :ysgh, :ysxm, :ks, :zddm, :zdmc, :cfzt)"
                ),
                {
                    "cfh": cfh,
                    "jg": "LJXWSY",
                    "sfzh": sfzh,
                    "name": "王建国" if sfzh == PATIENT else "李秀英",
                    "kfrq": "下午两点" if cfh == bad_date else kfrq,
                    "ysgh": "D017",
                    "ysxm": "李明",
                    "ks": "全科",
                    "zddm": zddm,
                    "zdmc": zdmc,
                    "cfzt": cfzt,
                },
            )
        for line in LINES:
            conn.execute(
                text('INSERT INTO "HIS_MZ_CFMX" VALUES (:a, :b, :c, :d, :e, :f, :g, :h, :i, :j, :k, :l, :m)'),
                dict(zip("abcdefghijklm", line, strict=True)),
            )
        for fyh, cfh, line_no, fyrq, fysl, fyzt in DISPENSES:
            conn.execute(
                text('INSERT INTO "HIS_MZ_FY" VALUES (:fyh, :cfh, :n, :fyrq, :fysl, :gh, :xm, :zt)'),
                {
                    "fyh": fyh,
                    "cfh": cfh,
                    "n": line_no,
                    "fyrq": fyrq,
                    "fysl": fysl,
                    "gh": "Y003",
                    "xm": "赵敏",
                    "zt": fyzt,
                },
            )
    engine.dispose()


def numbers(resources: Sequence[dict[str, Any]], resource_type: str = "MedicationRequest") -> list[str]:
    """The identifiers of the records of ``resource_type``, in order: a prescription line's
    ``CFH-CFMXH``, a dispense's ``FYH-CFMXH``."""
    return [r["identifier"][0]["value"] for r in resources if r["resourceType"] == resource_type]
