"""Readable profile pages: ``yaolian profiles docs --out DIR``.

One HTML page per StructureDefinition in ``profiles/`` (the constrained elements with
cardinality, types, fixed/pattern values and bindings, the invariants, the examples with their
expected findings) and an index that also lists the code systems with their codes, so a vendor
can read the alliance rules without FHIR tooling. Labels are bilingual (中文 / English).
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.validation._conformance import conformance

__all__ = ["render_profile_docs"]

_STYLE = """body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2em;max-width:75em}
table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .5em;
vertical-align:top;text-align:left}th{background:#f3f3f3}code,pre{font-size:.85em}pre{background:#f7f7f7;
padding:.8em;overflow:auto}.bad{color:#a00}.ok{color:#070}"""


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _page_name(sd: dict[str, Any]) -> str:
    return f"{sd['id']}.html"


def _card(e: dict[str, Any]) -> str:
    return f"{e.get('min', 0)}..{e.get('max', '*')}"


def _types(e: dict[str, Any], pages: dict[str, str]) -> str:
    out = []
    for t in e.get("type", []):
        text = escape(t["code"])
        for url in t.get("profile", []) + t.get("targetProfile", []):
            name = url.rsplit("/", 1)[1]
            text += f' → <a href="{pages[url]}">{escape(name)}</a>' if url in pages else f" → {escape(name)}"
        out.append(text)
    return "<br>".join(out)


def _rules(e: dict[str, Any]) -> str:
    out = []
    for key, value in e.items():
        if key.startswith(("fixed", "pattern")):
            label = "固定值 fixed" if key.startswith("fixed") else "模式 pattern"
            out.append(f"{label}: <code>{escape(json.dumps(value, ensure_ascii=False))}</code>")
    binding = e.get("binding")
    if binding and binding.get("valueSet"):
        out.append(f"绑定 binding ({escape(binding['strength'])}): <code>{escape(binding['valueSet'])}</code>")
    if "slicing" in e:
        disc = ", ".join(f"{d['type']}:{d['path']}" for d in e["slicing"].get("discriminator", []))
        out.append(f"切片 slicing by {escape(disc)} ({escape(e['slicing'].get('rules', 'open'))})")
    return "<br>".join(out)


def _examples(url: str) -> str:
    folder = resources.files("profiles").joinpath("examples")
    index = json.loads(folder.joinpath("index.json").read_text("utf-8"))
    parts = []
    for case in (c for c in index if c["profile"] == url):
        resource = folder.joinpath(case["file"]).read_text("utf-8")
        if case["valid"]:
            head = f'<h3 class="ok">有效示例 Valid: {escape(case["file"])}</h3>'
        else:
            found = "; ".join(
                f"{i['error_code']} {i['severity']} at <code>{escape(i['expression'])}</code>" for i in case["issues"]
            )
            head = f'<h3 class="bad">无效示例 Invalid: {escape(case["file"])}</h3><p>预期问题 Expected: {found}</p>'
        parts.append(f"{head}<details><summary>JSON</summary><pre>{escape(resource)}</pre></details>")
    return "\n".join(parts)


def _profile_page(sd: dict[str, Any], pages: dict[str, str]) -> str:
    snapshot = {e["id"]: e for e in sd["snapshot"]["element"]}
    rows, invariants = [], []
    for d in sd["differential"]["element"]:
        e = snapshot[d["id"]]
        rows.append(
            "<tr>"
            f"<td><code>{escape(e['id'])}</code></td>"
            f"<td>{escape(e.get('label', ''))}<br>{escape(e.get('short', ''))}</td>"
            f"<td>{_card(e)}</td><td>{_types(e, pages)}</td><td>{_rules(e)}</td></tr>"
        )
        for c in e.get("constraint", []):
            if c.get("source") == sd["url"]:
                invariants.append(
                    f"<tr><td>{escape(c['key'])}</td><td>{escape(c['severity'])}</td><td>{escape(c['human'])}</td>"
                    f"<td><code>{escape(c['expression'])}</code></td></tr>"
                )
    body = [
        '<p><a href="index.html">← 目录 Index</a></p>',
        f"<h1>{escape(sd['title'])}</h1>",
        f"<p>{escape(sd['description'])}</p>",
        f"<p>Canonical: <code>{escape(sd['url'])}</code> · 基础 Base: <code>{escape(sd['baseDefinition'])}</code>"
        f" · 版本 Version {escape(sd.get('version', ''))}</p>",
        "<h2>约束元素 Constrained elements</h2>",
        "<table><tr><th>元素 Element</th><th>名称 Label</th><th>基数 Card.</th><th>类型 Type</th>"
        "<th>规则 Rules</th></tr>",
        *rows,
        "</table>",
    ]
    if invariants:
        body += [
            "<h2>不变式 Invariants (FHIRPath)</h2>",
            "<table><tr><th>Key</th><th>级别 Severity</th><th>说明 Description</th><th>表达式 Expression</th></tr>",
            *invariants,
            "</table>",
        ]
    examples = _examples(sd["url"])
    if examples:
        body += ["<h2>示例 Examples</h2>", examples]
    return _page(sd["title"], "\n".join(body))


def _index(sds: list[dict[str, Any]], pages: dict[str, str]) -> str:
    def rows(kind: str) -> str:
        return "\n".join(
            f'<tr><td><a href="{pages[sd["url"]]}">{escape(sd["title"])}</a></td><td>{escape(sd["type"])}</td>'
            f"<td>{escape(sd['description'])}</td></tr>"
            for sd in sds
            if sd["kind"] == kind
        )

    head = "<table><tr><th>名称 Name</th><th>类型 Type</th><th>说明 Description</th></tr>"
    code_systems = []
    for cs in sorted(conformance().all("CodeSystem"), key=lambda c: c["url"]):
        if not cs["url"].startswith("http://yaolian.org/"):
            continue
        concepts = "".join(
            f"<tr><td><code>{escape(c['code'])}</code></td>"
            f"<td>{escape(next((d['value'] for d in c.get('designation', [])), ''))}</td>"
            f"<td>{escape(c.get('display', ''))}</td><td>{escape(c.get('definition', ''))}</td></tr>"
            for c in cs.get("concept", [])
        )
        code_systems.append(
            f"<h3>{escape(cs['title'])}</h3><p><code>{escape(cs['url'])}</code> — {escape(cs['description'])}</p>"
            f"<table><tr><th>代码 Code</th><th>中文</th><th>English</th><th>定义 Definition</th></tr>{concepts}</table>"
        )
    identifiers = "".join(
        f"<tr><td>{escape(ns['title'])}</td><td><code>{escape(ns['uniqueId'][-1]['value'])}</code></td>"
        f"<td>{escape(ns['description'])} {escape(ns['uniqueId'][-1].get('comment', ''))}</td></tr>"
        for ns in sorted(conformance().all("NamingSystem"), key=lambda n: n["id"])
    )
    body = [
        "<h1>药联 Yaolian 医联体 FHIR R5 profiles</h1>",
        "<h2>资源 Profiles</h2>",
        head,
        rows("resource"),
        "</table>",
        "<h2>扩展 Extensions</h2>",
        head,
        rows("complex-type"),
        "</table>",
        "<h2>标识符与编码系统 Identifier and code systems</h2>",
        "<table><tr><th>名称 Name</th><th>System</th><th>格式 Format</th></tr>",
        identifiers,
        "</table>",
        "<h2>代码系统 Code systems</h2>",
        *code_systems,
    ]
    return _page("Yaolian profiles", "\n".join(body))


def render_profile_docs(out_dir: Path) -> list[Path]:
    """Write ``index.html`` and one page per profile/extension into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sds = sorted(
        (sd for sd in conformance().all("StructureDefinition") if "snapshot" in sd),
        key=lambda sd: (sd["kind"] != "resource", sd["id"]),
    )
    pages = {sd["url"]: _page_name(sd) for sd in sds}
    written = []
    for sd in sds:
        path = out_dir / pages[sd["url"]]
        path.write_text(_profile_page(sd, pages), encoding="utf-8")
        written.append(path)
    index = out_dir / "index.html"
    index.write_text(_index(sds, pages), encoding="utf-8")
    return [index, *written]
