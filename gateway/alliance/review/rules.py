"""Review rule sets as data: a folder with ``ruleset.json`` (id, version, where the chronic
groups, interactions and cautions are) and ``rules/*.json``, one rule per file.

A rule is an id, a severity (``high`` blocks, ``moderate`` warns, ``low`` notes), a FHIRPath
condition and its thresholds (``params``). Conditions see ``%rx`` (the MedicationRequest),
``%drug`` (its catalogue entry), ``%patient``, ``%facts`` (what :mod:`.facts` computed: days of
supply, formulary membership, duplicates, daily dose ...) and ``%params``. A county adds or
changes a rule by adding or editing a file, never Python; each finding names the rule set's
version (POL-06, POL-27).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from fhirpathpy import compile as fhirpath_compile

from gateway.errors import Unprocessable

SEVERITIES = ("high", "moderate", "low")
RULE_SYSTEM = "http://yaolian.org/fhir/CodeSystem/review-rule"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title_en: str
    title_zh: str
    condition: str
    message_en: str
    message_zh: str
    params: Mapping[str, Any] = field(default_factory=dict)
    policy: str = ""
    evaluate: Callable[..., Any] = field(default=lambda *_: [], compare=False, repr=False)

    def holds(self, rx: Mapping[str, Any], env: dict[str, Any]) -> bool:
        result = self.evaluate(rx, env)
        return bool(result) and all(v is True for v in result)


@dataclass(frozen=True)
class Interaction:
    a: str
    b: str
    severity: str
    en: str
    zh: str

    def between(self, atc1: str, atc2: str) -> bool:
        return (atc1.startswith(self.a) and atc2.startswith(self.b)) or (
            atc1.startswith(self.b) and atc2.startswith(self.a)
        )


@dataclass(frozen=True)
class Caution:
    population: str  # child | elderly | pregnant
    atc: str
    en: str
    zh: str


@dataclass(frozen=True)
class RuleSet:
    id: str
    version: str
    rules: tuple[Rule, ...]
    chronic_patterns: Mapping[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    interactions: tuple[Interaction, ...] = ()
    cautions: tuple[Caution, ...] = ()
    child_age: int = 18
    elderly_age: int = 65

    def chronic_groups_of(self, diagnosis: str) -> list[str]:
        return [g for g, patterns in self.chronic_patterns.items() if any(p.match(diagnosis) for p in patterns)]


def default_folder() -> Path:
    return Path(str(resources.files("profiles").joinpath("rules", "review")))


def _refuse(path: Path, rule: str, reason: str) -> Unprocessable:
    return Unprocessable("YL-1113", path=str(path), rule=rule, reason=reason)


def _text(value: Any, language: str) -> str:
    if isinstance(value, dict):
        return str(value.get(language) or value.get("en") or "")
    return str(value or "")


def _rule(path: Path) -> Rule:
    data = orjson.loads(path.read_bytes())
    rule_id = str(data.get("id") or "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9\-]*", rule_id):
        raise _refuse(path, rule_id or path.name, "the id must be lower-case words joined by '-'")
    severity = data.get("severity")
    if severity not in SEVERITIES:
        raise _refuse(path, rule_id, f"severity must be one of {', '.join(SEVERITIES)}")
    condition = data.get("condition")
    if not isinstance(condition, str) or not condition.strip():
        raise _refuse(path, rule_id, "the condition (FHIRPath) is missing")
    problem = syntax_error(condition)
    if problem:
        raise _refuse(path, rule_id, f"the condition does not parse: {problem}")
    evaluate = fhirpath_compile(condition)
    return Rule(
        id=rule_id,
        severity=severity,
        title_en=_text(data.get("title"), "en"),
        title_zh=_text(data.get("title"), "zh"),
        condition=condition,
        message_en=_text(data.get("message"), "en"),
        message_zh=_text(data.get("message"), "zh"),
        params=dict(data.get("params") or {}),
        policy=str(data.get("policy") or ""),
        evaluate=evaluate,
    )


def syntax_error(expression: str) -> str | None:
    """The first syntax error of a FHIRPath expression, or None. fhirpathpy's own parser
    recovers silently (a broken rule would simply never fire), so rules are parsed here with
    its grammar and an error listener that keeps what it hears."""
    from antlr4 import CommonTokenStream, InputStream, Token
    from antlr4.error.ErrorListener import ErrorListener
    from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
    from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

    errors: list[str] = []

    class Heard(ErrorListener):  # type: ignore[misc]
        def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any) -> None:
            errors.append(f"column {column + 1}: {msg}")

    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(Heard())
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(Heard())
    parser.expression()
    if not errors and tokens.LA(1) != Token.EOF:
        errors.append(f"column {tokens.LT(1).column + 1}: unexpected {tokens.LT(1).text!r}")
    return errors[0] if errors else None


def _patterns(folder: Path, name: str) -> tuple[re.Pattern[str], ...]:
    """The regex filters of a chronic-group ValueSet (looked up beside the rules, then in profiles/)."""
    path = folder / name
    if not path.exists():
        path = Path(str(resources.files("profiles").joinpath(name)))
    data = orjson.loads(path.read_bytes())
    found = []
    for include in (data.get("compose") or {}).get("include") or ():
        for concept in include.get("concept") or ():
            found.append(re.compile(re.escape(str(concept.get("code"))) + "$"))
        for flt in include.get("filter") or ():
            if flt.get("op") == "regex":
                found.append(re.compile(str(flt.get("value"))))
    return tuple(found)


def load_rule_set(folder: Path | None = None) -> RuleSet:
    """The rule set in ``folder`` (default: ``profiles/rules/review``); rule files in name order."""
    folder = folder or default_folder()
    manifest = orjson.loads((folder / "ruleset.json").read_bytes())
    rules = tuple(_rule(p) for p in sorted((folder / "rules").glob("*.json")))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise _refuse(folder / "rules", rule.id, "two rules have this id")
        seen.add(rule.id)
    groups = {g: _patterns(folder, str(n)) for g, n in (manifest.get("chronicGroups") or {}).items()}
    interactions: tuple[Interaction, ...] = ()
    if manifest.get("interactions"):
        data = orjson.loads((folder / str(manifest["interactions"])).read_bytes())
        interactions = tuple(
            Interaction(
                str(i["a"]),
                str(i["b"]),
                str(i.get("severity") or "moderate"),
                str(i.get("en") or ""),
                str(i.get("zh") or ""),
            )
            for i in data.get("interactions") or ()
        )
    cautions: tuple[Caution, ...] = ()
    child_age, elderly_age = 18, 65
    if manifest.get("cautions"):
        data = orjson.loads((folder / str(manifest["cautions"])).read_bytes())
        child_age = int(data.get("childAge", 18))
        elderly_age = int(data.get("elderlyAge", 65))
        cautions = tuple(
            Caution(str(c["population"]), str(c["atc"]), str(c.get("en") or ""), str(c.get("zh") or ""))
            for c in data.get("cautions") or ()
        )
    return RuleSet(
        id=str(manifest.get("id") or folder.name),
        version=str(manifest.get("version") or "0"),
        rules=rules,
        chronic_patterns=groups,
        interactions=interactions,
        cautions=cautions,
        child_age=child_age,
        elderly_age=elderly_age,
    )


@cache
def cached_rule_set(folder: str | None) -> RuleSet:
    """The rule set of a folder, loaded once per process (a changed file needs a restart)."""
    return load_rule_set(Path(folder) if folder else None)
