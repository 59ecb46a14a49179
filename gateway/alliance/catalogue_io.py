"""The pharmacy committee's spreadsheet (药事管理与药物治疗学委员会): CSV (UTF-8 or GB18030)
and XLSX, with Chinese or English headers, read into :class:`Drug` rows and written back.

Reading never stops at a bad row: each bad cell becomes an issue naming its line and column
(the header is line 1), and every good row is kept, so a committee fixes the few rows named and
imports again (POL-01, POL-27).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.alliance.catalogue import CHRONIC_GROUPS, CONTROL_CLASSES, NHSA_CODE, Dose, Drug
from gateway.errors import Issue, issue

#: Column key, Chinese header, English header - in the committee's order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("医保药品编码", "nhsa_code"),
    ("通用名", "generic_name"),
    ("剂型", "dose_form"),
    ("规格", "specification"),
    ("慢病分组", "chronic_group"),
    ("ATC", "atc"),
    ("管制类别", "control_class"),
    ("每日最大剂量", "max_daily_dose"),
    ("基药", "essential"),
    ("集采", "vbp"),
)
_KEY_OF = {name.lower(): key for zh, key in COLUMNS for name in (zh, key)}
_KEY_OF.update({"atc code": "atc", "atc编码": "atc", "atc 编码": "atc"})

_CHRONIC_WORDS = {"高血压": "hypertension", "糖尿病": "diabetes", "慢阻肺": "copd", "慢性阻塞性肺疾病": "copd"}
_CONTROL_WORDS = {
    "麻醉": "narcotic",
    "麻醉药品": "narcotic",
    "精一": "psychotropic-1",
    "第一类精神药品": "psychotropic-1",
    "一类精神": "psychotropic-1",
    "精二": "psychotropic-2",
    "第二类精神药品": "psychotropic-2",
    "二类精神": "psychotropic-2",
    "毒性": "toxic",
    "医疗用毒性药品": "toxic",
    "放射": "radioactive",
    "放射性药品": "radioactive",
}
_YES = {"y", "yes", "true", "1", "是", "√"}
_NO = {"n", "no", "false", "0", "否", ""}
_VBP_WORDS = {
    "": "none",
    "none": "none",
    "否": "none",
    "无": "none",
    "n": "none",
    "no": "none",
    "national": "national",
    "国家": "national",
    "国采": "national",
    "国家集采": "national",
    "inter-provincial": "inter-provincial",
    "省际": "inter-provincial",
    "省际联盟": "inter-provincial",
    "interprovincial": "inter-provincial",
}
_ATC = re.compile(r"^[A-Z]\d{2}([A-Z]([A-Z](\d{2})?)?)?$")


@dataclass
class Sheet:
    """What a spreadsheet held: the good rows (with their line) and the issues of the bad cells."""

    drugs: list[tuple[int, Drug]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    rows: int = 0


def _cell_issue(line: int, column: str, reason_en: str, reason_zh: str, *, severity: str = "error") -> Issue:
    return issue(
        "YL-1100",
        severity=severity,
        expression=[f"line {line}, column {column}"],
        line=line,
        column=column,
        reason=reason_en,
        reason_zh=reason_zh,
    )


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 (which also reads GBK and GB2312)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030")


def read_rows(raw: bytes, filename: str) -> list[list[str]]:
    """The cells of a CSV or XLSX file as text, header first."""
    if filename.lower().endswith((".xlsx", ".xlsm")) or raw[:2] == b"PK":
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        rows = [["" if v is None else _cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        book.close()
        return rows
    return [list(row) for row in csv.reader(io.StringIO(_decode(raw)))]


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value).strip()


def parse_sheet(raw: bytes, filename: str, *, need_attributes: bool) -> Sheet:
    """Rows of the committee's spreadsheet; ``need_attributes`` (the catalogue) requires the
    generic name, a member's list needs only the drug code."""
    sheet = Sheet()
    rows = read_rows(raw, filename)
    if not rows:
        sheet.issues.append(issue("YL-1101", expression=["line 1"], missing="医保药品编码 nhsa_code"))
        return sheet
    header = [_KEY_OF.get(h.strip().lstrip("\ufeff").lower()) for h in rows[0]]
    names = {key: rows[0][i].strip() for i, key in enumerate(header) if key}
    required = ["nhsa_code", "generic_name"] if need_attributes else ["nhsa_code"]
    missing = [k for k in required if k not in names]
    if missing:
        wanted = ", ".join(f"{zh} {en}" for zh, en in COLUMNS if en in missing)
        sheet.issues.append(issue("YL-1101", expression=["line 1"], missing=wanted))
        return sheet
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        sheet.rows += 1
        cells = {key: (row[i].strip() if i < len(row) else "") for i, key in enumerate(header) if key}
        drug, problems = _drug(number, cells, names, need_attributes)
        sheet.issues.extend(problems)
        if drug is not None:
            sheet.drugs.append((number, drug))
    return sheet


def _drug(
    line: int, cells: dict[str, str], names: dict[str, str], need_attributes: bool
) -> tuple[Drug | None, list[Issue]]:
    problems: list[Issue] = []

    def bad(key: str, en: str, zh: str) -> None:
        problems.append(_cell_issue(line, names.get(key, key), en, zh))

    code = cells.get("nhsa_code", "")
    if not code:
        bad("nhsa_code", "the drug code is empty", "药品编码为空")
    elif not NHSA_CODE.match(code):  # DOMAIN.md: parse softly, never reject on the shape
        problems.append(
            _cell_issue(
                line,
                names["nhsa_code"],
                f"{code!r} is not of the 23-character national insurance shape (kept)",
                f"{code!r} 不符合 23 位医保药品编码格式（已保留）",
                severity="warning",
            )
        )
    name = cells.get("generic_name", "")
    if need_attributes and not name:
        bad("generic_name", "the generic name is empty", "通用名为空")
    chronic_text = cells.get("chronic_group", "")
    chronic = _CHRONIC_WORDS.get(chronic_text, chronic_text.lower()) or None
    if chronic is not None and chronic not in CHRONIC_GROUPS:
        bad(
            "chronic_group",
            f"{chronic_text!r} is not hypertension/diabetes/copd or empty",
            f"{chronic_text!r} 不是 高血压/糖尿病/慢阻肺 或空",
        )
    control_text = cells.get("control_class", "")
    control = _CONTROL_WORDS.get(control_text, control_text.lower()) or None
    if control in ("none", "无", "否"):
        control = None
    if control is not None and control not in CONTROL_CLASSES:
        bad(
            "control_class",
            f"{control_text!r} is not narcotic/psychotropic-1/psychotropic-2/toxic/radioactive or empty",
            f"{control_text!r} 不是 麻醉/精一/精二/毒性/放射 或空",
        )
    dose_text = cells.get("max_daily_dose", "")
    dose = Dose.parse(dose_text) if dose_text else None
    if dose_text and dose is None:
        bad(
            "max_daily_dose",
            f"{dose_text!r} is not an amount with a unit (e.g. 2 g)",
            f"{dose_text!r} 不是带单位的剂量（如 2 g）",
        )
    essential_text = cells.get("essential", "").lower()
    if essential_text not in _YES | _NO:
        bad("essential", f"{essential_text!r} is not Y or N", f"{essential_text!r} 不是 Y 或 N")
    vbp_text = cells.get("vbp", "")
    vbp = _VBP_WORDS.get(vbp_text.lower())
    if vbp is None:
        bad("vbp", f"{vbp_text!r} is not none/national/inter-provincial", f"{vbp_text!r} 不是 无/国家/省际")
    atc = cells.get("atc", "").upper() or None
    if atc is not None and not _ATC.match(atc):
        bad("atc", f"{atc!r} is not an ATC code (e.g. A10BA02)", f"{atc!r} 不是 ATC 编码（如 A10BA02）")
    if any(p.severity == "error" for p in problems):
        return None, problems
    drug = Drug(
        nhsa_code=code,
        generic_name=name,
        dose_form=cells.get("dose_form", ""),
        specification=cells.get("specification", ""),
        chronic_group=chronic,
        atc=atc,
        control_class=control,
        max_daily_dose=dose,
        essential=essential_text in _YES,
        vbp=vbp or "none",
    )
    return drug, problems


def _row(drug: Drug) -> list[str]:
    return [
        drug.nhsa_code,
        drug.generic_name,
        drug.dose_form,
        drug.specification,
        drug.chronic_group or "",
        drug.atc or "",
        drug.control_class or "",
        str(drug.max_daily_dose) if drug.max_daily_dose else "",
        "Y" if drug.essential else "N",
        drug.vbp,
    ]


def headers(language: str) -> list[str]:
    return [zh if language == "zh" else en for zh, en in COLUMNS]


def write_csv(drugs: Iterable[Drug], *, language: str = "zh", encoding: str = "utf-8") -> bytes:
    """The committee's CSV; UTF-8 with a BOM (what spreadsheet programs expect) or GB18030."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers(language))
    writer.writerows(_row(d) for d in drugs)
    text = out.getvalue()
    return text.encode("gb18030") if encoding.lower().replace("-", "") == "gb18030" else text.encode("utf-8-sig")


def write_xlsx(drugs: Iterable[Drug], *, language: str = "zh") -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "药品目录"
    sheet.append(headers(language))
    for drug in drugs:
        sheet.append(_row(drug))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_file(path: Path, drugs: Sequence[Drug], *, language: str = "zh", encoding: str = "utf-8") -> None:
    data = (
        write_xlsx(drugs, language=language)
        if path.suffix.lower() == ".xlsx"
        else write_csv(drugs, language=language, encoding=encoding)
    )
    path.write_bytes(data)
