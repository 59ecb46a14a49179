"""`yaolian profiles docs` pages: one per profile plus an index, bilingual, with examples."""

from __future__ import annotations

from pathlib import Path

from gateway.validation import known_profiles
from gateway.validation.docs import render_profile_docs


def test_render_profile_docs(tmp_path: Path) -> None:
    written = render_profile_docs(tmp_path / "site")
    names = {p.name for p in written}
    assert "index.html" in names
    assert len(written) == len(known_profiles()) + 1
    page = (tmp_path / "site" / "yl-prescription.html").read_text("utf-8")
    assert "医联体处方" in page and "Alliance prescription" in page
    assert "MedicationRequest.dispenseRequest.quantity" in page and "1..1" in page
    assert "yl-rx-1" in page and "无效示例 Invalid" in page and "YL-3020" in page
    assert 'href="yl-long-term-prescription.html"' in page
    index = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert "慢阻肺病" in index and "^[HP]" in index
