"""Reports of one run: JSON, JUnit XML, an R5 TestReport and a bilingual HTML page.

All four are written from the same `Run`, so they never disagree. The HTML is self-contained
(no scripts, no external assets) so a vendor can mail it or attach it to a ticket.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from conformance.definitions import load
from conformance.model import Outcome, Result
from conformance.runner import Run

OUTCOME_ZH = {
    "pass": "通过",
    "fail": "失败",
    "not-applicable": "不适用",
    "insufficient-data": "数据不足",
    "error": "错误",
}
TESTREPORT_RESULT = {
    Outcome.PASS: "pass",
    Outcome.FAIL: "fail",
    Outcome.NOT_APPLICABLE: "skip",
    Outcome.INSUFFICIENT_DATA: "warning",
    Outcome.ERROR: "error",
}


def to_json(run: Run) -> dict[str, Any]:
    coverage = Counter(p for r in run.results if r.outcome == Outcome.PASS for p in r.check.policies)
    cited = Counter(p for r in run.results for p in r.check.policies)
    return {
        "kit": "yaolian-conformance",
        "baseUrl": run.base_url,
        "suite": run.suite,
        "started": run.started.isoformat(),
        "finished": run.finished.isoformat() if run.finished else None,
        "passed": run.passed,
        "counts": run.counts,
        "requiredFailures": [r.check.id for r in run.blocking],
        "requirements": {p: {"tests": cited[p], "passed": coverage[p]} for p in sorted(cited)},
        "resourcesObserved": run.must_support_observed,
        "results": [r.to_json() for r in run.results],
    }


def to_junit(run: Run) -> str:
    suites = ET.Element("testsuites", name="yaolian-conformance", tests=str(len(run.results)))
    by_group: dict[str, list[Result]] = {}
    for r in run.results:
        by_group.setdefault(r.check.group, []).append(r)
    for group, results in by_group.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=group,
            tests=str(len(results)),
            failures=str(sum(r.outcome == Outcome.FAIL and r.check.required for r in results)),
            errors=str(sum(r.outcome == Outcome.ERROR for r in results)),
            skipped=str(sum(r.outcome not in (Outcome.PASS, Outcome.ERROR) and not r.blocking for r in results)),
            time=f"{sum(r.duration for r in results):.3f}",
        )
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"conformance.{group}", name=r.check.id)
            case.set("time", f"{r.duration:.3f}")
            props = ET.SubElement(case, "properties")
            for name, value in (
                ("outcome", r.outcome.value),
                ("level", r.check.level),
                ("requirement", r.check.requirement),
            ):
                ET.SubElement(props, "property", name=name, value=value)
            if r.outcome == Outcome.FAIL and r.check.required:
                ET.SubElement(case, "failure", message=r.message[:500], type="fail").text = _evidence(r)
            elif r.outcome == Outcome.ERROR:
                ET.SubElement(case, "error", message=r.message[:500], type="error").text = _evidence(r)
            elif r.outcome == Outcome.FAIL:
                ET.SubElement(case, "skipped", message=f"optional ({r.check.level}) test failed: {r.message[:400]}")
            elif r.outcome != Outcome.PASS:
                ET.SubElement(case, "skipped", message=f"{r.outcome.value}: {r.message[:400]}")
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _evidence(r: Result) -> str:
    lines = [r.message, f"requirement: {r.check.requirement}"]
    for e in r.exchanges[-3:]:
        lines.append(f"> {e.method} {e.url}\n< {e.status} {e.response_body[:800]}")
    return "\n".join(lines)


def to_testreport(run: Run) -> dict[str, Any]:
    """An R5 TestReport (one `test` per check, one assert per check)."""
    passed = sum(r.outcome == Outcome.PASS for r in run.results)
    scored = sum(r.outcome in (Outcome.PASS, Outcome.FAIL, Outcome.ERROR) for r in run.results)
    capability = load().capability
    tests = []
    for r in run.results:
        message = f"[{r.check.level}] {r.outcome.value}: {r.message}".strip()
        tests.append(
            {
                "name": r.check.id,
                "description": f"{r.check.title} — {r.check.requirement}",
                "action": [
                    {
                        "assert": {
                            "result": TESTREPORT_RESULT[r.outcome],
                            "message": message[:4000],
                            "detail": r.check.requirement[:1000],
                        }
                    }
                ],
            }
        )
    return {
        "resourceType": "TestReport",
        "id": f"yaolian-conformance-{run.started.strftime('%Y%m%d%H%M%S')}",
        "name": "Yaolian alliance conformance run",
        "status": "completed",
        "testScript": capability["url"],
        "result": "pass" if run.passed else "fail",
        "score": round(100.0 * passed / scored, 2) if scored else 100.0,
        "tester": "yaolian-conformance",
        "issued": (run.finished or run.started).isoformat(),
        "participant": [
            {"type": "test-engine", "uri": "urn:yaolian:conformance"},
            {"type": "server", "uri": run.base_url},
        ],
        "test": tests,
    }


_CSS = """
body{font-family:system-ui,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.pass{color:#17692b}.fail{color:#b00020;font-weight:bold}.error{color:#8a2be2;font-weight:bold}
.not-applicable{color:#666}.insufficient-data{color:#a15c00}
details{margin:.3rem 0;border-left:4px solid #ddd;padding-left:.6rem}details.fail,details.error{border-color:#b00020}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:24rem;white-space:pre-wrap}
.req{color:#555;font-size:.9em}
"""


def to_html(run: Run) -> str:
    e = html.escape
    counts = run.counts
    verdict = (
        "通过 PASSED — every required test passed"
        if run.passed
        else f"未通过 FAILED — {len(run.blocking)} required test(s) failed"
    )
    rows = "".join(f"<tr><td class='{o}'>{OUTCOME_ZH[o]} / {o}</td><td>{n}</td></tr>" for o, n in counts.items())
    groups: dict[str, list[Result]] = {}
    for r in run.results:
        groups.setdefault(r.check.group, []).append(r)
    group_rows = "".join(
        f"<tr><td>{e(g)}</td>" + "".join(f"<td>{sum(r.outcome.value == o for r in rs)}</td>" for o in counts) + "</tr>"
        for g, rs in groups.items()
    )
    body = []
    order = {
        Outcome.FAIL: 0,
        Outcome.ERROR: 1,
        Outcome.INSUFFICIENT_DATA: 2,
        Outcome.NOT_APPLICABLE: 3,
        Outcome.PASS: 4,
    }
    for g, rs in groups.items():
        body.append(f"<h2>{e(g)}</h2>")
        for r in sorted(rs, key=lambda r: (order[r.outcome], r.check.id)):
            o = r.outcome.value
            why = {
                "fail": "失败原因 Why it failed",
                "error": "错误 Error",
                "insufficient-data": "缺少的数据 Missing data",
                "not-applicable": "不适用原因 Why not applicable",
            }.get(o, "结果 Result")
            exchanges = "".join(
                "<details><summary>"
                + e(f"{x.method} {x.url} → {x.status if x.status is not None else x.error}")
                + "</summary><b>请求 Request</b><pre>"
                + e("\n".join(f"{k}: {v}" for k, v in x.request_headers.items()) + "\n\n" + x.request_body)
                + "</pre><b>响应 Response</b><pre>"
                + e("\n".join(f"{k}: {v}" for k, v in x.response_headers.items()) + "\n\n" + x.response_body)
                + "</pre></details>"
                for x in r.exchanges[-12:]
            )
            more = f"<p>({len(r.exchanges) - 12} earlier requests not shown)</p>" if len(r.exchanges) > 12 else ""
            policies = f" · {e(', '.join(r.check.policies))}" if r.check.policies else ""
            body.append(
                f"<details class='{o}'{' open' if r.blocking else ''}><summary><span class='{o}'>"
                f"{OUTCOME_ZH[o]} {o}</span> [{r.check.level}] <code>{e(r.check.id)}</code> — "
                f"{e(r.check.title_zh)} / {e(r.check.title)}</summary>"
                f"<p class='req'>依据 Requirement: {e(r.check.requirement)}{policies}</p>"
                f"<p><b>{why}:</b> {e(r.message)}</p>{more}{exchanges}</details>"
            )
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>药联一致性测试报告 Yaolian conformance report</title><style>{_CSS}</style></head><body>"
        "<h1>药联一致性测试报告 · Yaolian conformance report</h1>"
        f"<p>服务器 Server: <code>{e(run.base_url)}</code> · 套件 Suite: {e(run.suite)} · "
        f"开始 Started: {e(run.started.isoformat())}</p>"
        f"<p class='{'pass' if run.passed else 'fail'}' style='font-size:1.3em'>{e(verdict)}</p>"
        f"<table><tr><th>结果 Outcome</th><th>数量 Count</th></tr>{rows}</table>"
        "<table><tr><th>组 Group</th>"
        + "".join(f"<th>{OUTCOME_ZH[o]}<br>{o}</th>" for o in counts)
        + f"</tr>{group_rows}</table>"
        "<p>必需 SHALL 测试失败即不通过；SHOULD 测试失败仅作提示。"
        "不适用 = 服务器声明不支持；数据不足 = 缺少测试所需数据。<br>"
        "A failed SHALL test fails the run; a failed SHOULD test is advisory. not-applicable = the server declared "
        "no support; insufficient-data = data the test needs is missing.</p>" + "".join(body) + "</body></html>"
    )


def write_all(run: Run, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "conformance.json",
        "junit": directory / "junit.xml",
        "testreport": directory / "TestReport.json",
        "html": directory / "report.html",
    }
    paths["json"].write_text(json.dumps(to_json(run), ensure_ascii=False, indent=1), encoding="utf-8")
    paths["junit"].write_text(to_junit(run), encoding="utf-8")
    paths["testreport"].write_text(json.dumps(to_testreport(run), ensure_ascii=False, indent=1), encoding="utf-8")
    paths["html"].write_text(to_html(run), encoding="utf-8")
    return paths
