"""The neutral tree against python-hl7 as the oracle.

``adapters.hl7v2.tree.parse`` splits on the declared delimiters itself, because python-hl7's
container objects cost most of the conversion time. These tests hold it to python-hl7's
``hl7.parse``: on every golden message and on generated messages (random delimiters, repeats,
empty components, escapes, blank lines), both give the same segments, fields, repeats,
components and subcomponents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.hl7v2 import tree
from adapters.hl7v2.tree import Field

GOLDEN = Path(__file__).parent.parent / "golden" / "hl7v2"
MESSAGES = sorted(GOLDEN.glob("*/*.hl7"))


def oracle(raw: bytes) -> list[tuple[str, list[Field]]]:
    """python-hl7's parse, its irregular nesting turned into repeats -> components -> subcomponents."""
    text, codec, issues = tree.decode(raw)
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    separators = text[3:8]
    unescape = tree._Unescaper(separators, codec, issues)
    esc = separators[3]
    segments: list[tuple[str, list[Field]]] = []
    for seg in hl7.parse(text):
        name = str(seg[0]) if len(seg) else ""
        if not tree._SEGMENT_NAME.fullmatch(name):
            continue
        fields: list[Field] = [[[[name]]]]
        for fno in range(1, len(seg)):
            if name == "MSH" and fno <= 2:
                fields.append([[[str(seg[fno])]]])
            else:
                fields.append(plain(seg[fno], esc, lambda s, where=f"{name}-{fno}": unescape(s, where)))
        segments.append((name, fields))
    return segments


def plain(value: Any, esc: str, unescape: Any) -> Field:
    def leaf(text: str) -> str:
        return unescape(text) if esc in text else text

    if isinstance(value, str) or isinstance(value[0], str):
        text = value if isinstance(value, str) else value[0]
        return [[[leaf(text)]]] if text else []
    reps: Field = []
    for rep in value:
        if isinstance(rep, str):
            reps.append([[leaf(rep)]])
        else:
            reps.append([[leaf(comp)] if isinstance(comp, str) else [leaf(str(s)) for s in comp] for comp in rep])
    return [] if all(not any(any(c) for c in r) for r in reps) else reps


@pytest.mark.parametrize("path", MESSAGES, ids=[f"{p.parent.name}/{p.stem}" for p in MESSAGES])
def test_golden_messages_split_as_python_hl7_splits_them(path: Path) -> None:
    raw = path.read_bytes()
    assert tree.parse(raw).segments == oracle(raw)


def test_the_oracle_sees_components_and_repeats() -> None:
    """Guard against a vacuous comparison: the golden set exercises every level of nesting."""
    raw = (GOLDEN / "RDE_O11" / "complete-extended-longterm.hl7").read_bytes()
    fields = [f for _, seg in oracle(raw) for f in seg]
    assert any(len(f) > 1 for f in fields)  # repeats
    assert any(len(rep) > 1 for f in fields for rep in f)  # components


DELIMITER_SETS = ["|^~\\&", "#$*@!", "|^~\\&"]
TEXT = st.text(alphabet="AB中1 .-", max_size=4)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    seps = draw(st.sampled_from(DELIMITER_SETS))
    field, comp, rep, esc, sub = seps[0], seps[1], seps[2], seps[3], seps[4]
    escapes = [f"{esc}F{esc}", f"{esc}S{esc}", f"{esc}E{esc}", f"{esc}.br{esc}", f"{esc}X41{esc}"]
    leaf = st.one_of(TEXT, st.sampled_from(escapes), st.just(""))
    component = st.lists(leaf, min_size=1, max_size=3).map(sub.join)
    repeat = st.lists(component, min_size=1, max_size=3).map(comp.join)
    value = st.lists(repeat, min_size=1, max_size=3).map(rep.join)
    msh = f"MSH{seps}{field}HIS{field}{field}{field}{field}20251107{field}{field}RDE^O11{field}C1{field}P{field}2.5"
    lines = [msh.replace("^", comp)]
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(["PID", "ORC", "RXE", "RXR", "ZRX", "NTE"]))
        values = draw(st.lists(value, max_size=8))
        lines.append(field.join([name, *values]))
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append("")  # a blank line between segments
    return "\r".join(lines).encode()


@settings(max_examples=300, deadline=None)
@given(messages())
def test_generated_messages_split_as_python_hl7_splits_them(raw: bytes) -> None:
    assert tree.parse(raw).segments == oracle(raw)
