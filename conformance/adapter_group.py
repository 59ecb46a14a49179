"""The `adapter` group: a vendor's adapter package, tested in-process on its sample messages.

This is the one module of the kit that imports `adapters` (and only when the group is asked for):
an adapter is Python code in the vendor's package, found through the `yaolian.adapters` entry
points, so it cannot be tested over HTTP. For every sample message the adapter

- `convert`: turns it into a transaction Bundle a server can process (see `bundle_check`);
- `profile`: produces resources that pass the kit's own profile checker for the alliance profiles
  they claim in `meta.profile`, or else the alliance profile of their type;
- `issue-location`: reports every issue with its place in the source (`RXE-2.1`, a JSON path …);
- `round-trip`: where the adapter declares `bidirectional`, `from_fhir` of each converted resource
  converts back to the same FHIR fields (not-applicable when it does not).

Samples come from `--samples DIR`, else from the adapter (`samples()` returning paths or
`(name, bytes)` pairs, if it has one), else from its package: a `samples/` folder or files named
`sample*` next to the adapter's module (what `yaolian adapters new` creates). No samples at all is
`insufficient-data`, never a pass.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from conformance.bundle_check import bundle_problems
from conformance.definitions import load
from conformance.model import Check, CheckFailed, InsufficientData, NotApplicable
from conformance.profile_check import ProfileChecker

Json = dict[str, Any]
GROUP = "adapter"
SKIP_SUFFIXES = (".expected.json", ".md", ".txt", ".py", ".pyc", ".yaml", ".yml", ".toml")
IGNORED_IN_ROUND_TRIP = ("meta", "text")
CONTRACT = "docs/adapters.md (adapter contract)"


@dataclass
class Sample:
    name: str
    raw: bytes


@dataclass
class Conversion:
    bundle: Json | None = None
    issues: list[Any] = field(default_factory=list)
    error: str = ""


def find_adapter(name: str, eps: Iterable[EntryPoint] | None = None) -> Any:
    """The adapter registered as `name`: built-ins and the `yaolian.adapters` entry points."""
    registry = importlib.import_module("adapters.registry")
    return registry.build_registry(eps).get(name)


def _files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and not p.name.startswith((".", "_"))
        and not p.name.endswith(SKIP_SUFFIXES)
        and "__pycache__" not in p.parts
    )


def discover_samples(adapter: Any, samples_dir: Path | None = None) -> tuple[list[Sample], str]:
    """The sample messages and where they came from."""
    if samples_dir is not None:
        files = _files(samples_dir)
        return [Sample(str(p.relative_to(samples_dir)), p.read_bytes()) for p in files], str(samples_dir)
    hook = getattr(adapter, "samples", None)
    if callable(hook):
        out = []
        for item in hook():
            if isinstance(item, tuple):
                out.append(Sample(str(item[0]), bytes(item[1])))
            else:
                out.append(Sample(Path(item).name, Path(item).read_bytes()))
        return out, f"{type(adapter).__name__}.samples()"
    source = inspect.getsourcefile(type(adapter))
    if source is None:
        return [], "nowhere (the adapter's module has no source file)"
    package = Path(source).parent
    if (package / "samples").is_dir():
        files = _files(package / "samples")
        return [Sample(str(p.relative_to(package / "samples")), p.read_bytes()) for p in files], str(
            package / "samples"
        )
    files = [p for p in _files(package) if p.parent == package and p.name.startswith("sample")]
    return [Sample(p.name, p.read_bytes()) for p in files], str(package)


class AdapterUnderTest:
    """One adapter and its samples; each sample is converted once and shared by its checks."""

    def __init__(self, name: str, adapter: Any, samples: list[Sample]) -> None:
        self.name = name
        self.adapter = adapter
        self.samples = samples
        self.checker = ProfileChecker()
        self._conversions: dict[str, Conversion] = {}

    @property
    def bidirectional(self) -> bool:
        return bool(getattr(getattr(self.adapter, "descriptor", None), "bidirectional", False))

    def convert(self, sample: Sample) -> Conversion:
        if sample.name not in self._conversions:
            self._conversions[sample.name] = self._convert(sample.raw)
        return self._conversions[sample.name]

    def _convert(self, raw: bytes) -> Conversion:
        errors = importlib.import_module("adapters.errors")
        try:
            result = self.adapter.to_fhir(raw)
        except errors.ConversionError as exc:
            return Conversion(None, list(exc.issues), f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            return Conversion(None, [], f"the adapter crashed: {type(exc).__name__}: {exc}")
        bundle = getattr(result, "bundle", None)
        return Conversion(bundle if isinstance(bundle, dict) else None, list(getattr(result, "issues", []) or []))

    # --- the checks --------------------------------------------------------------------------
    def check_convert(self, sample: Sample) -> str:
        conv = self.convert(sample)
        if conv.bundle is None:
            shown = "; ".join(_issue_text(i) for i in conv.issues[:10])
            raise CheckFailed(f"{sample.name} was not converted: {conv.error or 'no Bundle returned'} {shown}".strip())
        problems = bundle_problems(conv.bundle, allowed_types=("transaction",))
        problems += [
            f"Bundle.entry[{i}]: {p}"
            for i, e in enumerate(conv.bundle.get("entry") or [])
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            for p in self.checker.structure(e["resource"])
        ]
        if problems:
            raise CheckFailed(f"{sample.name}: the Bundle is not a valid transaction: " + "; ".join(problems[:20]))
        return f"{sample.name}: transaction Bundle with {len(conv.bundle.get('entry') or [])} entries"

    def _bundle(self, sample: Sample) -> Json:
        conv = self.convert(sample)
        if conv.bundle is None:
            raise InsufficientData(f"{sample.name} did not convert (see its convert test), so no resource to check")
        return conv.bundle

    def check_profile(self, sample: Sample) -> str:
        bundle = self._bundle(sample)
        problems, checked = [], []
        for i, entry in enumerate(bundle.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            profiles = self.profiles_for(resource)
            checked.append(
                f"{resource.get('resourceType')} ({', '.join(p.rsplit('/', 1)[-1] for p in profiles) or 'base'})"
            )
            problems += [f"entry[{i}] {p}" for p in self.checker.check(resource, profiles or None)]
        if not checked:
            raise CheckFailed(f"{sample.name}: the Bundle holds no resource")
        if problems:
            raise CheckFailed(f"{sample.name}: {len(problems)} profile problem(s): " + "; ".join(problems[:25]))
        return f"{sample.name}: {', '.join(checked)} conform"

    def profiles_for(self, resource: Json) -> list[str]:
        defs = self.checker.defs
        claimed = [p for p in (resource.get("meta") or {}).get("profile") or [] if p in defs.structure_definitions]
        if claimed:
            return claimed
        req = defs.resource(str(resource.get("resourceType", "")))
        return [req.profile] if req and req.profile else []

    def check_issue_locations(self, sample: Sample) -> str:
        conv = self.convert(sample)
        if conv.bundle is None and not conv.issues:
            raise CheckFailed(f"{sample.name}: conversion failed without any issue ({conv.error})")
        missing = [_issue_text(i) for i in conv.issues if not _issue_location(i).strip()]
        if missing:
            raise CheckFailed(
                f"{sample.name}: {len(missing)} of {len(conv.issues)} issue(s) without a source location: "
                + "; ".join(missing[:10])
            )
        return f"{sample.name}: {len(conv.issues)} issue(s), each with its source location"

    def check_round_trip(self, sample: Sample) -> str:
        if not self.bidirectional:
            raise NotApplicable(f"adapter {self.name!r} does not declare bidirectional (read-only)")
        errors = importlib.import_module("adapters.errors")
        bundle = self._bundle(sample)
        problems: list[str] = []
        skipped: list[str] = []
        done = 0
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            label = f"{resource.get('resourceType')}/{resource.get('id', '?')}"
            try:
                raw = self.adapter.from_fhir(resource)
            except errors.AdapterError as exc:
                skipped.append(f"{resource.get('resourceType')} ({exc})")
                continue
            except Exception as exc:
                problems.append(f"{label}: from_fhir crashed: {type(exc).__name__}: {exc}")
                continue
            back = self._convert(raw)
            if back.bundle is None:
                # A lone resource may lack the context its format needs (a patient for an order):
                # write it from the whole Bundle instead.
                try:
                    back = self._convert(self.adapter.from_fhir(bundle))
                except Exception as exc:
                    back = Conversion(None, [], f"{type(exc).__name__}: {exc}")
            if back.bundle is None:
                problems.append(f"{label}: the written message does not convert back ({back.error})")
                continue
            again = _same_resource(resource, back.bundle)
            if again is None:
                problems.append(f"{label}: not in what the written message converts back to")
                continue
            done += 1
            diffs = _differences(resource, again)
            if diffs:
                problems.append(f"{label}: " + "; ".join(diffs[:10]))
        if problems:
            raise CheckFailed(f"{sample.name}: round trip changed the FHIR: " + " | ".join(problems[:10]))
        if not done:
            raise CheckFailed(
                f"{sample.name}: adapter {self.name!r} declares bidirectional but from_fhir wrote none of the "
                f"converted resources back: {'; '.join(skipped[:10])}"
            )
        note = f"; not written back: {', '.join(skipped)}" if skipped else ""
        return f"{sample.name}: {done} resource(s) round-tripped unchanged{note}"


def _issue_location(issue: Any) -> str:
    """The first ``expression`` of an adapter issue: its place in the source ('' if none)."""
    expression = getattr(issue, "expression", ()) or ()
    return str(expression[0]) if expression else ""


def _issue_text(issue: Any) -> str:
    code = getattr(issue, "error_code", "") or getattr(issue, "code", "")
    location = _issue_location(issue) or "(no location)"
    return f"{getattr(issue, 'severity', '?')} {code} at {location}: {getattr(issue, 'en', issue)}"


def _identifiers(resource: Json) -> set[tuple[str, str]]:
    out = set()
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            out.add((str(ident.get("system", "")), str(ident["value"])))
    return out


def _same_resource(resource: Json, bundle: Json) -> Json | None:
    candidates: list[Json] = [
        e["resource"]
        for e in bundle.get("entry") or []
        if isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == resource.get("resourceType")
    ]
    for c in candidates:
        if resource.get("id") and c.get("id") == resource.get("id"):
            return c
    mine = _identifiers(resource)
    for c in candidates:
        if mine and mine & _identifiers(c):
            return c
    return None


def _differences(before: Json, after: Json) -> list[str]:
    out = []
    for key in sorted(set(before) | set(after)):
        if key in IGNORED_IN_ROUND_TRIP:
            continue
        if key not in after:
            out.append(f"{key} lost")
        elif key not in before:
            out.append(f"{key} added")
        elif before[key] != after[key]:
            a, b = json.dumps(before[key], ensure_ascii=False), json.dumps(after[key], ensure_ascii=False)
            out.append(f"{key} changed: {a[:120]} -> {b[:120]}")
    return out


def _bound(check: Callable[[Sample], str], sample: Sample) -> Callable[[Any], str]:
    return lambda _: check(sample)


def adapter_checks(
    name: str, samples_dir: Path | None = None, *, eps: Iterable[EntryPoint] | None = None
) -> list[Check]:
    """The `adapter` group for one adapter: four checks per sample message."""
    try:
        adapter = find_adapter(name, eps)
    except Exception as exc:
        message = f"adapter {name!r} could not be loaded: {type(exc).__name__}: {exc}"

        def cannot_load(_: Any) -> str:
            raise CheckFailed(message)

        return [
            Check(
                f"{GROUP}/{name}/load",
                GROUP,
                f"adapter {name} is registered and loads",
                f"{CONTRACT}: adapters are found through the entry-point group yaolian.adapters",
                True,
                cannot_load,
                title_zh=f"适配器 {name} 已注册并可加载",
            )
        ]
    samples, origin = discover_samples(adapter, samples_dir)
    under_test = AdapterUnderTest(name, adapter, samples)
    if not samples:
        where = origin

        def no_samples(_: Any) -> str:
            raise InsufficientData(
                f"no sample messages for adapter {name!r} (looked in {where}); ship a samples/ folder or "
                "sample* files next to the adapter module, or pass --samples DIR"
            )

        return [
            Check(
                f"{GROUP}/{name}/samples",
                GROUP,
                f"adapter {name} ships sample messages",
                "issue 5 §2: a vendor's mapping turns its sample messages into valid alliance resources",
                True,
                no_samples,
                title_zh=f"适配器 {name} 提供样例消息",
            )
        ]
    profiles = sorted({r.profile for r in load().resources if r.profile})
    checks = []
    for sample in samples:
        base = f"{GROUP}/{name}/{sample.name}"
        checks += [
            Check(
                f"{base}/convert",
                GROUP,
                f"{sample.name} converts to a well-formed transaction Bundle",
                f"{CONTRACT}: to_fhir(raw) -> ConversionResult whose bundle is a transaction Bundle; FHIR R5 "
                "http.html#transaction (request.method/url, fullUrl, urn:uuid references)",
                True,
                _bound(under_test.check_convert, sample),
                title_zh=f"{sample.name} 转换为合规的事务 Bundle",
            ),
            Check(
                f"{base}/profile",
                GROUP,
                f"resources converted from {sample.name} conform to the alliance profiles",
                "the profiles the resources claim in meta.profile, else the alliance profile of their type: "
                + ", ".join(profiles),
                True,
                _bound(under_test.check_profile, sample),
                title_zh=f"{sample.name} 转换所得资源符合医联体规范",
            ),
            Check(
                f"{base}/issue-location",
                GROUP,
                f"every issue converting {sample.name} names its source location",
                f"{CONTRACT}: Issue.expression names the place in the source (RXE-2.1, PID-3[2].1)",
                True,
                _bound(under_test.check_issue_locations, sample),
                title_zh=f"{sample.name} 的每个问题都标明源位置",
            ),
            Check(
                f"{base}/round-trip",
                GROUP,
                f"{sample.name}: from_fhir of each converted resource converts back to the same FHIR",
                f"{CONTRACT}: descriptor.bidirectional -> from_fhir(resource) writes the source format back",
                True,
                _bound(under_test.check_round_trip, sample),
                title_zh=f"{sample.name} 双向转换往返一致",
            ),
        ]
    return checks
