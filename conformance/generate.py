"""Tests generated from the definitions.

Every check below comes from an entry of the alliance CapabilityStatement (a resource type, an
interaction, a search parameter, an include, a chain, a combination), a StructureDefinition
(profile conformance, must-support elements) or an example of `profiles/examples` (invalid
resources the server must reject). The group names are what `--only` selects:

    capability   the server's CapabilityStatement against the alliance's
    interaction  create / read / vread / update / history / search per type
    search       every search parameter, comparator, OR list, combination, chain, include
    profile      resources the server returns conform to the alliance profile
    must-support must-support elements written are returned
    reference    references in returned resources resolve
    negative     errors: 400 / 404 / 410 / 412, each with an OperationOutcome
    validation   invalid alliance resources are rejected (422), or stored with the findings reported
    security     401 without / with a wrong token (when a token is configured)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from conformance.client import Response
from conformance.definitions import Definitions, ResourceReq, SearchParamReq, load
from conformance.model import Check, CheckFailed, InsufficientData, NotApplicable
from conformance.profile_check import ProfileChecker, must_support
from conformance.search_oracle import Oracle
from conformance.session import Session

Json = dict[str, Any]
CS_REQ = "CapabilityStatement/alliance-server"
SERVER_MANAGED = ("id", "meta", "text")


# --- assertion helpers ---------------------------------------------------------------------------
def require_status(r: Response, *expected: int, what: str) -> None:
    if r.status not in expected:
        want = " or ".join(map(str, expected))
        raise CheckFailed(f"{what}: expected HTTP {want}, got {r.status}")


def require_outcome(r: Response, what: str) -> None:
    body = r.json
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        raise CheckFailed(f"{what}: HTTP {r.status} without an OperationOutcome body (got {r.text[:120]!r})")
    issues = body.get("issue") or []
    if not issues or not all(i.get("severity") and i.get("code") for i in issues):
        raise CheckFailed(f"{what}: the OperationOutcome has no issue with severity and code")


def require_error(r: Response, *expected: int, what: str) -> None:
    require_status(r, *expected, what=what)
    require_outcome(r, what)


def bundle_entries(r: Response, what: str, bundle_type: str = "searchset") -> list[Json]:
    require_status(r, 200, what=what)
    body = r.json
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != bundle_type:
        raise CheckFailed(f"{what}: expected a Bundle of type {bundle_type}, got {r.text[:120]!r}")
    return [e for e in body.get("entry", []) if isinstance(e.get("resource"), dict)]


def matched(entries: list[Json], type_: str) -> set[str]:
    return {
        e["resource"]["id"]
        for e in entries
        if e["resource"].get("resourceType") == type_ and (e.get("search") or {}).get("mode", "match") == "match"
    }


def included(entries: list[Json]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource'].get('id')}"
        for e in entries
        if (e.get("search") or {}).get("mode") == "include" or e.get("search") is None
    }


def differences(sent: Any, got: Any, path: str) -> list[str]:
    """Elements written that the server did not return unchanged (server-managed ones aside)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {got!r}"]
        out = []
        for key, value in sent.items():
            if key in SERVER_MANAGED and path.count(".") == 0:
                continue
            if key not in got:
                out.append(f"{path}.{key}: missing in the response")
            else:
                out.extend(differences(value, got[key], f"{path}.{key}"))
        return out
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [f"{path}: expected {len(sent)} item(s), got {got!r}"[:300]]
        return [d for i, (s, g) in enumerate(zip(sent, got, strict=True)) for d in differences(s, g, f"{path}[{i}]")]
    if isinstance(sent, float | int) and isinstance(got, float | int) and not isinstance(sent, bool):
        return [] if float(sent) == float(got) else [f"{path}: sent {sent!r}, got {got!r}"]
    if isinstance(sent, str) and isinstance(got, str) and sent != got:
        if _same_instant(sent, got):
            return []
    return [] if sent == got else [f"{path}: sent {sent!r}, got {got!r}"]


def _same_instant(a: str, b: str) -> bool:
    from datetime import datetime

    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return False


def _needs(session: Session, type_: str, code: str, required: bool) -> None:
    """Optional features the server declares it lacks are not applicable; required ones are tried."""
    if not required and not session.declares_interaction(type_, code):
        raise NotApplicable(f"the server's CapabilityStatement declares no {code} for {type_}")


# --- the generator -------------------------------------------------------------------------------
class Generator:
    def __init__(self, definitions: Definitions | None = None) -> None:
        self.defs = definitions or load()
        self.checker = ProfileChecker(self.defs)
        self.checks: list[Check] = []

    def add(
        self,
        id_: str,
        group: str,
        title: str,
        title_zh: str,
        requirement: str,
        required: bool,
        run: Callable[[Session], str | None],
        policies: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.checks.append(Check(id_, group, title, requirement, required, run, title_zh, tuple(policies)))

    def all(self) -> list[Check]:
        self.capability()
        for req in self.defs.resources:
            if req.type in _buildable():
                self.interactions(req)
                self.searches(req)
                self.profile(req)
                self.references(req)
                self.negatives(req)
        self.global_negatives()
        self.validation()
        self.security()
        return self.checks

    # --- capability ---------------------------------------------------------------------------
    def capability(self) -> None:
        def metadata(s: Session) -> str:
            r = s.client.get("metadata")
            require_status(r, 200, what="GET metadata")
            body = r.json or {}
            if body.get("resourceType") != "CapabilityStatement":
                raise CheckFailed("GET metadata did not return a CapabilityStatement")
            if not str(body.get("fhirVersion", "")).startswith("5.0"):
                raise CheckFailed(f"fhirVersion is {body.get('fhirVersion')!r}, the alliance requires 5.0.x (R5)")
            formats = body.get("format", [])
            if not any("json" in f for f in formats):
                raise CheckFailed(f"format {formats} does not include JSON")
            types = len((body.get("rest") or [{}])[0].get("resource", []))
            return f"FHIR {body['fhirVersion']}, {types} resource types"

        self.add(
            "capability/metadata",
            "capability",
            "The server publishes an R5 CapabilityStatement with JSON",
            "服务器发布 R5 CapabilityStatement（支持 JSON）",
            f"{CS_REQ} fhirVersion, format (SHALL)",
            True,
            metadata,
        )
        for req in self.defs.resources:
            self._capability_for(req)

    def _capability_for(self, req: ResourceReq) -> None:
        t = req.type

        def declared(s: Session) -> str:
            if s.server_resource(t) is None:
                raise CheckFailed(f"the server's CapabilityStatement does not list {t}")
            return f"{t} is listed"

        self.add(
            f"capability/{t}/declared",
            "capability",
            f"{t} is a supported resource type",
            f"声明支持 {t}",
            f"{CS_REQ} rest.resource {t} ({req.expectation})",
            req.expectation == "SHALL",
            declared,
            req.policies,
        )
        shall = [i.value for i in req.interactions if i.required]
        if shall:

            def interactions(s: Session) -> str:
                missing = [c for c in shall if not s.declares_interaction(t, c)]
                if missing:
                    raise CheckFailed(f"{t}: interactions {missing} are not declared")
                return f"declares {', '.join(shall)}"

            self.add(
                f"capability/{t}/interactions",
                "capability",
                f"{t}: every SHALL interaction is declared",
                f"{t}：声明所有必需交互",
                f"{CS_REQ} {t}.interaction (SHALL: {', '.join(shall)})",
                True,
                interactions,
                req.policies,
            )
        params = [p.name for p in req.search_params if p.required]
        if params:

            def search_params(s: Session) -> str:
                missing = [p for p in params if not s.declares_search_param(t, p)]
                if missing:
                    raise CheckFailed(f"{t}: search parameters {missing} are not declared")
                return f"declares {len(params)} required search parameters"

            self.add(
                f"capability/{t}/search-params",
                "capability",
                f"{t}: every SHALL search parameter is declared",
                f"{t}：声明所有必需检索参数",
                f"{CS_REQ} {t}.searchParam (SHALL: {', '.join(params)})",
                True,
                search_params,
                req.policies,
            )
        if req.profile:
            profile = req.profile

            def supported_profile(s: Session) -> str:
                res = s.server_resource(t) or {}
                listed = res.get("supportedProfile", []) + ([res["profile"]] if res.get("profile") else [])
                if profile not in listed:
                    raise CheckFailed(f"{t}: {profile} is not in supportedProfile ({listed or 'none listed'})")
                return "listed"

            self.add(
                f"capability/{t}/supported-profile",
                "capability",
                f"{t}: the alliance profile is listed in supportedProfile",
                f"{t}：supportedProfile 列出联盟规范",
                f"{CS_REQ} {t}.supportedProfile {profile} (SHOULD)",
                False,
                supported_profile,
                req.policies,
            )

    # --- interactions -------------------------------------------------------------------------
    def interactions(self, req: ResourceReq) -> None:
        t = req.type
        for inter in req.interactions:
            fn = getattr(self, "_i_" + inter.value.replace("-", "_"), None)
            if fn is None:
                continue
            run = fn(t, inter.required)
            self.add(
                f"interaction/{t}/{inter.value}",
                "interaction",
                f"{t}: {inter.value}",
                f"{t}：{_ZH_INTERACTION.get(inter.value, inter.value)}",
                f"{CS_REQ} {t}.interaction {inter.value} ({inter.expectation})",
                inter.required,
                run,
                req.policies,
            )

    def _i_create(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "create", required)
            from conformance import fixtures

            resource = fixtures.build(t, 0, s.tag + "c", s.world.ref)
            r = s.client.request("POST", t, body=resource)
            require_status(r, 201, what=f"POST {t}")
            location = r.header("Location") or ""
            if f"{t}/" not in location:
                raise CheckFailed(f"POST {t}: 201 without a Location header naming {t}/[id] (got {location!r})")
            body = r.json
            if isinstance(body, dict) and body.get("resourceType") == t:
                s.observe(body)
                if not (body.get("meta") or {}).get("versionId"):
                    raise CheckFailed("the created resource has no meta.versionId")
            return f"201, Location {location}"

        return run

    def _i_read(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "read", required)
            sent, stored = s.one(t)
            r = s.client.get(f"{t}/{stored['id']}")
            require_status(r, 200, what=f"GET {t}/{stored['id']}")
            got = r.json or {}
            s.observe(got)
            if got.get("resourceType") != t or got.get("id") != stored["id"]:
                raise CheckFailed(f"read returned {got.get('resourceType')}/{got.get('id')}, not {t}/{stored['id']}")
            lost = differences(sent, got, t)
            if lost:
                raise CheckFailed("the resource read back differs from what was written: " + "; ".join(lost[:8]))
            return "read back unchanged"

        return run

    def _i_vread(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "vread", required)
            _, stored = s.one(t)
            version = (stored.get("meta") or {}).get("versionId")
            if not version:
                raise CheckFailed("the stored resource has no meta.versionId")
            r = s.client.get(f"{t}/{stored['id']}/_history/{version}")
            require_status(r, 200, what="vread")
            got = r.json or {}
            if (got.get("meta") or {}).get("versionId") != version or got.get("id") != stored["id"]:
                raise CheckFailed(
                    f"vread returned version {(got.get('meta') or {}).get('versionId')!r}, not {version!r}"
                )
            return f"version {version} read"

        return run

    def _i_update(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "update", required)
            sent, stored = s.one(t)
            changed = copy.deepcopy(sent)
            changed["id"] = stored["id"]
            changed["language"] = "zh-CN"
            r = s.client.request("PUT", f"{t}/{stored['id']}", body=changed)
            require_status(r, 200, what=f"PUT {t}/{stored['id']}")
            got = s.client.get(f"{t}/{stored['id']}")
            require_status(got, 200, what="read after update")
            body = got.json or {}
            if body.get("language") != "zh-CN":
                raise CheckFailed("the update is not visible on read (language not changed)")
            v0, v1 = (stored.get("meta") or {}).get("versionId"), (body.get("meta") or {}).get("versionId")
            if v0 and v0 == v1:
                raise CheckFailed(f"meta.versionId did not change on update ({v0!r})")
            return f"version {v0} -> {v1}"

        return run

    def _i_delete(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "delete", required)
            _, stored = s.one(t)
            r = s.client.request("DELETE", f"{t}/{stored['id']}")
            require_status(r, 200, 202, 204, what=f"DELETE {t}/{stored['id']}")
            return f"HTTP {r.status}"

        return run

    def _i_history_instance(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "history-instance", required)
            sent, stored = s.one(t)
            changed = {**copy.deepcopy(sent), "id": stored["id"], "language": "zh-CN"}
            require_status(s.client.request("PUT", f"{t}/{stored['id']}", body=changed), 200, what="update")
            entries = bundle_entries(s.client.get(f"{t}/{stored['id']}/_history"), "instance history", "history")
            if len(entries) < 2:
                raise CheckFailed(f"history of a resource written twice has {len(entries)} entr(y/ies)")
            return f"{len(entries)} versions"

        return run

    def _i_history_type(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "history-type", required)
            s.world  # noqa: B018 - makes sure there is something in the history
            entries = bundle_entries(s.client.get(f"{t}/_history", params={"_count": "5"}), "type history", "history")
            if not entries:
                raise CheckFailed(f"the {t} history is empty although the test wrote {t} resources")
            return f"{len(entries)} entries on the first page"

        return run

    def _i_search_type(self, t: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            _needs(s, t, "search-type", required)
            ids = s.world.ids(t)
            entries = bundle_entries(s.search(t, [("_id", ",".join(ids))]), f"GET {t}?_id=…")
            got = matched(entries, t)
            if got != set(ids):
                raise CheckFailed(f"expected {sorted(ids)}, got {sorted(got)}")
            return f"{len(got)} found"

        return run

    # --- searches -----------------------------------------------------------------------------
    def searches(self, req: ResourceReq) -> None:
        t = req.type
        for p in req.search_params:
            self.add(
                f"search/{t}/{p.name}",
                "search",
                f"{t}?{p.name}= finds what was written (GET and POST agree)",
                f"{t}?{p.name}= 检索结果与写入数据一致（GET 与 POST 一致）",
                f"{CS_REQ} {t}.searchParam {p.name} ({p.expectation}); {p.definition.get('url', '')}",
                p.required,
                self._search_run(p),
                p.policies,
            )
            for comparator in ("gt", "lt", "ge", "le"):
                if comparator in p.comparators:
                    self.add(
                        f"search/{t}/{p.name}/{comparator}",
                        "search",
                        f"{t}?{p.name}={comparator}… (comparator)",
                        f"{t}?{p.name}={comparator}…（比较符）",
                        f"{CS_REQ} {t}.searchParam {p.name} ({p.expectation}); SearchParameter.comparator {comparator}",
                        p.required,
                        self._comparator_run(p, comparator),
                        p.policies,
                    )
            if p.type in ("token", "reference", "string") and p.name != "_id":
                self.add(
                    f"search/{t}/{p.name}/or",
                    "search",
                    f"{t}?{p.name}=a,b (OR list)",
                    f"{t}?{p.name}=a,b（或列表）",
                    f"{CS_REQ} {t}.searchParam {p.name} ({p.expectation}); FHIR search OR by comma",
                    p.required,
                    self._or_run(p),
                    p.policies,
                )
        for parts, expectation in req.combinations:
            params = [req.param(n) for n in parts]
            if all(params):
                self.add(
                    f"search/{t}/{'+'.join(parts)}",
                    "search",
                    f"{t}?{'&'.join(p + '=' for p in parts)} (combination)",
                    f"{t} 组合检索 {'+'.join(parts)}",
                    f"{CS_REQ} {t} search-parameter-combination {'+'.join(parts)} ({expectation})",
                    expectation == "SHALL",
                    self._combination_run(t, [p for p in params if p]),
                )
        for chain in req.chains:
            self.add(
                f"search/{t}/chain/{chain.value}",
                "search",
                f"{t}?{chain.value}= (chained)",
                f"{t}?{chain.value}=（链式检索）",
                f"{CS_REQ} {t} search-chain {chain.value} ({chain.expectation})",
                chain.required,
                self._chain_run(req, chain.value),
            )
        for inc in req.includes:
            self.add(
                f"search/{t}/_include/{inc.value}",
                "search",
                f"{t}?_include={inc.value}",
                f"{t}?_include={inc.value}（包含引用资源）",
                f"{CS_REQ} {t}.searchInclude {inc.value} ({inc.expectation})",
                inc.required,
                self._include_run(t, inc.value, inc.required),
            )
        for rev in req.revincludes:
            self.add(
                f"search/{t}/_revinclude/{rev.value}",
                "search",
                f"{t}?_revinclude={rev.value}",
                f"{t}?_revinclude={rev.value}（反向包含）",
                f"{CS_REQ} {t}.searchRevInclude {rev.value} ({rev.expectation})",
                rev.required,
                self._revinclude_run(t, rev.value, rev.required),
            )

    def _declared_param(self, s: Session, p: SearchParamReq) -> None:
        if not p.required and not s.declares_search_param(p.resource_type, p.name):
            raise NotApplicable(f"the server declares no search parameter {p.name} for {p.resource_type}")

    @staticmethod
    def _subject(s: Session, p: SearchParamReq) -> list[Json]:
        """What the oracle looks at: what the test wrote, plus server-assigned id/meta."""
        world = s.world
        return [
            {**sent, "id": st["id"], "meta": st.get("meta", {})}
            for sent, st in zip(world.sent[p.resource_type], world.stored[p.resource_type], strict=True)
        ]

    def _expect(
        self, s: Session, t: str, params: list[tuple[str, str]], expected: set[str], scope: list[str] | None
    ) -> str:
        query = list(params) + ([("_id", ",".join(scope))] if scope else []) + [("_count", "100")]
        shown = "&".join(f"{k}={v}" for k, v in params)
        got_get = matched(bundle_entries(s.search(t, query), f"GET {t}?{shown}"), t)
        if got_get != expected:
            raise CheckFailed(_diff(f"GET {t}?{shown}", expected, got_get))
        got_post = matched(bundle_entries(s.search(t, query, post=True), f"POST {t}/_search {shown}"), t)
        if got_post != got_get:
            raise CheckFailed(_diff(f"POST {t}/_search {shown} (compared with GET)", got_get, got_post))
        return f"{shown}: {len(expected)} of {len(scope or [])} test resources, GET = POST"

    def _search_run(self, p: SearchParamReq) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            self._declared_param(s, p)
            t, oracle = p.resource_type, Oracle(p)
            subjects = self._subject(s, p)
            ids = [r["id"] for r in subjects]
            scope = None if p.name == "_id" else ids
            for r in subjects:
                for q in oracle.queries(r)[:1]:
                    expected = {x["id"] for x in subjects if oracle.matches(q, x)}
                    found = self._expect(s, t, [(p.name, q)], expected, scope)
                    absent = oracle.absent(s.tag)
                    self._expect(s, t, [(p.name, absent)], set(), scope)
                    return f"{found}; {p.name}={absent}: none"
            raise InsufficientData(f"none of the test's {t} resources has a value for {p.expression!r}")

        return run

    def _comparator_run(self, p: SearchParamReq, comparator: str) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            self._declared_param(s, p)
            t, oracle = p.resource_type, Oracle(p)
            subjects = self._subject(s, p)
            values = sorted({q for r in subjects for q in oracle.queries(r)[:1]})
            if not values:
                raise InsufficientData(f"none of the test's {t} resources has a value for {p.expression!r}")
            q = comparator + values[len(values) // 2]
            expected = {x["id"] for x in subjects if oracle.matches(q, x)}
            return self._expect(s, t, [(p.name, q)], expected, [r["id"] for r in subjects])

        return run

    def _or_run(self, p: SearchParamReq) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            self._declared_param(s, p)
            t, oracle = p.resource_type, Oracle(p)
            subjects = self._subject(s, p)
            ids = {r["id"] for r in subjects}
            firsts = [oracle.queries(r)[:1] for r in subjects]
            for i in range(len(subjects)):
                for j in range(i + 1, len(subjects)):
                    if not firsts[i] or not firsts[j] or firsts[i] == firsts[j]:
                        continue
                    q = f"{firsts[i][0]},{firsts[j][0]}"
                    expected = {x["id"] for x in subjects if oracle.matches(q, x)}
                    if expected != ids:
                        return self._expect(s, t, [(p.name, q)], expected, sorted(ids))
            for first in firsts:
                if first:
                    q = f"{first[0]},{oracle.absent(s.tag)}"
                    expected = {x["id"] for x in subjects if oracle.matches(q, x)}
                    return self._expect(s, t, [(p.name, q)], expected, sorted(ids))
            raise InsufficientData(f"none of the test's {t} resources has a value for {p.expression!r}")

        return run

    def _combination_run(self, t: str, params: list[SearchParamReq]) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            for p in params:
                self._declared_param(s, p)
            subjects = self._subject(s, params[0])
            oracles = [Oracle(p) for p in params]
            for r in subjects:
                qs = [o.queries(r)[:1] for o in oracles]
                if all(qs):
                    query = [(p.name, q[0]) for p, q in zip(params, qs, strict=True)]
                    expected = {
                        x["id"] for x in subjects if all(o.matches(q[0], x) for o, q in zip(oracles, qs, strict=True))
                    }
                    return self._expect(s, t, query, expected, [x["id"] for x in subjects])
            raise InsufficientData(f"no test {t} has values for all of {[p.name for p in params]}")

        return run

    def _chain_run(self, req: ResourceReq, chain: str) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            first, _, rest = chain.partition(".")
            p = req.param(first)
            if p is None:
                raise InsufficientData(
                    f"{req.type} has no search parameter {first} in the alliance CapabilityStatement"
                )
            subjects = self._subject(s, p)
            ref_oracle = Oracle(p)
            world = s.world
            for r in subjects:
                for ref in ref_oracle.queries(r)[:1]:
                    target_type = ref.split("/")[0]
                    target_req = self.defs.resource(target_type)
                    tp = target_req.param(rest) if target_req else None
                    if tp is None or target_type not in world.stored:
                        raise InsufficientData(f"no definition of {target_type}?{rest} to chain to")
                    targets = [
                        {**se, "id": st["id"]}
                        for se, st in zip(world.sent[target_type], world.stored[target_type], strict=True)
                    ]
                    target = next((x for x in targets if f"{target_type}/{x['id']}" == ref), None)
                    t_oracle = Oracle(tp)
                    if target is None or not t_oracle.queries(target):
                        continue
                    q = t_oracle.queries(target)[0]
                    hits = {f"{target_type}/{x['id']}" for x in targets if t_oracle.matches(q, x)}
                    expected = {x["id"] for x in subjects if any(ref_oracle.matches(h, x) for h in hits)}
                    return self._expect(s, req.type, [(chain, q)], expected, [x["id"] for x in subjects])
            raise InsufficientData(f"no test {req.type} refers to a resource with a value for {chain}")

        return run

    def _include_run(self, t: str, value: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            if not required and not s.declares_include(t, value):
                raise NotApplicable(f"the server does not declare _include={value}")
            source, _, name = value.partition(":")
            req = self.defs.resource(source)
            p = req.param(name) if req else None
            if p is None:
                raise InsufficientData(f"no alliance definition of {value}")
            subjects = self._subject(s, p)
            oracle = Oracle(p)
            for r in subjects:
                refs = [q for q in oracle.queries(r) if "/" in q]
                if refs:
                    query = [("_id", r["id"]), ("_include", value)]
                    entries = bundle_entries(s.search(t, query), f"GET {t}?_id={r['id']}&_include={value}")
                    if matched(entries, t) != {r["id"]}:
                        raise CheckFailed(_diff("matches", {r["id"]}, matched(entries, t)))
                    missing = set(refs) - included(entries)
                    if missing:
                        raise CheckFailed(f"_include={value} did not include {sorted(missing)}")
                    return f"{len(refs)} included"
            raise InsufficientData(f"no test {t} has a reference in {p.expression!r}")

        return run

    def _revinclude_run(self, t: str, value: str, required: bool) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            if not required and not s.declares_include(t, value, rev=True):
                raise NotApplicable(f"the server does not declare _revinclude={value}")
            source, _, name = value.partition(":")
            req = self.defs.resource(source)
            p = req.param(name) if req else None
            if p is None or source not in s.world.stored:
                raise InsufficientData(f"no alliance definition of {value}")
            sources = self._subject(s, p)
            oracle = Oracle(p)
            for target_id in s.world.ids(t):
                ref = f"{t}/{target_id}"
                expected = {f"{source}/{x['id']}" for x in sources if oracle.matches(ref, x)}
                if not expected:
                    continue
                entries = bundle_entries(
                    s.search(t, [("_id", target_id), ("_revinclude", value)]), f"GET {t}?_revinclude"
                )
                if matched(entries, t) != {target_id}:
                    raise CheckFailed(_diff("matches", {target_id}, matched(entries, t)))
                got = {f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in entries}
                missing = expected - got
                if missing:
                    raise CheckFailed(f"_revinclude={value} did not include {sorted(missing)}")
                return f"{len(expected)} included"
            raise InsufficientData(f"no test {source} refers to a {t} through {name}")

        return run

    # --- profile, must-support, references ------------------------------------------------------
    def profile(self, req: ResourceReq) -> None:
        if not req.profile:
            return
        t, url = req.type, req.profile
        sd = self.defs.structure_definitions.get(url)
        if not sd:
            return

        def conforms(s: Session) -> str:
            ids = s.world.ids(t)
            entries = bundle_entries(s.search(t, [("_id", ",".join(ids))]), f"GET {t}?_id=…")
            returned = [e["resource"] for e in entries if e["resource"].get("resourceType") == t]
            for rid in ids:
                r = s.client.get(f"{t}/{rid}")
                if r.status == 200 and isinstance(r.json, dict):
                    returned.append(r.json)
            if not returned:
                raise InsufficientData(f"the server returned no {t} to check")
            problems = []
            for resource in returned:
                s.observe(resource)
                problems += [f"{t}/{resource.get('id')}: {p}" for p in self.checker.check(resource, [url])]
            if problems:
                raise CheckFailed(f"{len(problems)} problem(s): " + "; ".join(problems[:8]))
            return f"{len(returned)} returned resources conform"

        self.add(
            f"profile/{t}",
            "profile",
            f"{t} resources returned by read and search conform to {sd['name']}",
            f"读取与检索返回的 {t} 符合 {sd.get('title', sd['name'])}",
            f"StructureDefinition {url}",
            True,
            conforms,
            req.policies,
        )
        elements = must_support(sd)

        def coverage(s: Session) -> str:
            world = s.world
            back = []
            for rid in world.ids(t):
                r = s.client.get(f"{t}/{rid}")
                if r.status == 200 and isinstance(r.json, dict):
                    back.append(r.json)
            if not back:
                raise CheckFailed(f"none of the test's {t} resources could be read back")
            lost, unexercised, covered = [], [], []
            for element in elements:
                if not any(self.checker.nodes(r, element, sd) for r in world.sent[t]):
                    unexercised.append(element)
                elif any(self.checker.nodes(r, element, sd) for r in back):
                    covered.append(element)
                else:
                    lost.append(element)
            if lost:
                raise CheckFailed(f"must-support elements written but not returned: {lost}")
            note = f"; not exercised by the test data: {unexercised}" if unexercised else ""
            return f"{len(covered)} of {len(elements)} must-support elements returned{note}"

        self.add(
            f"must-support/{t}",
            "must-support",
            f"{t}: must-support elements written are returned",
            f"{t}：必须支持的元素写入后可读回",
            f"StructureDefinition {url} mustSupport ({', '.join(elements[:6])}{'…' if len(elements) > 6 else ''})",
            True,
            coverage,
            req.policies,
        )

    def references(self, req: ResourceReq) -> None:
        t = req.type

        def resolve(s: Session) -> str:
            refs: set[str] = set()
            for rid in s.world.ids(t):
                r = s.client.get(f"{t}/{rid}")
                require_status(r, 200, what=f"GET {t}/{rid}")
                refs.update(_literal_refs(r.json))
            if not refs:
                raise InsufficientData(f"the test's {t} resources have no references")
            bad = []
            for ref in sorted(refs):
                r = s.client.get(ref)
                if r.status != 200 or r.resource_type != ref.split("/")[0]:
                    bad.append(f"{ref} -> HTTP {r.status}")
            if bad:
                raise CheckFailed("references do not resolve: " + "; ".join(bad))
            return f"{len(refs)} references resolve"

        self.add(
            f"reference/{t}",
            "reference",
            f"references in returned {t} resources resolve on the server",
            f"{t} 中的引用均可在服务器上解析",
            f"{CS_REQ} {t} referencePolicy literal/resolves; {req.profile or ''}",
            True,
            resolve,
            req.policies,
        )

    # --- negative tests -----------------------------------------------------------------------
    def negatives(self, req: ResourceReq) -> None:
        t = req.type

        def missing(s: Session) -> str:
            r = s.client.get(f"{t}/absent-{s.tag}")
            require_error(r, 404, what=f"GET {t}/absent-…")
            return "404 with OperationOutcome"

        def deleted(s: Session) -> str:
            if not s.declares_interaction(t, "delete"):
                raise NotApplicable(f"the server declares no delete for {t}")
            _, stored = s.one(t)
            require_status(s.client.request("DELETE", f"{t}/{stored['id']}"), 200, 202, 204, what="DELETE")
            require_error(s.client.get(f"{t}/{stored['id']}"), 410, what=f"GET deleted {t}")
            return "410 Gone with OperationOutcome"

        search_dates = [p for p in req.search_params if p.type == "date" and p.required] or [
            p for p in req.search_params if p.name == "_lastUpdated"
        ]
        date_param = search_dates[0].name if search_dates else "_lastUpdated"

        def bad_value(s: Session) -> str:
            require_error(
                s.client.get(t, params={date_param: "not-a-date"}), 400, what=f"GET {t}?{date_param}=not-a-date"
            )
            return "400 with OperationOutcome"

        def unknown_param(s: Session) -> str:
            r = s.client.get(t, params={f"no-such-param-{s.tag}": "1"}, headers={"Prefer": "handling=strict"})
            require_error(r, 400, what=f"GET {t}?no-such-param (Prefer: handling=strict)")
            return "400 with OperationOutcome"

        def stale(s: Session) -> str:
            sent, stored = s.one(t)
            v0 = (stored.get("meta") or {}).get("versionId")
            if not v0:
                raise CheckFailed("the stored resource has no meta.versionId")
            body = {**copy.deepcopy(sent), "id": stored["id"], "language": "zh-CN"}
            first = s.client.request("PUT", f"{t}/{stored['id']}", body=body, headers={"If-Match": f'W/"{v0}"'})
            require_status(first, 200, what="PUT with the current version in If-Match")
            body["language"] = "en"
            second = s.client.request("PUT", f"{t}/{stored['id']}", body=body, headers={"If-Match": f'W/"{v0}"'})
            require_error(second, 412, 409, what="PUT with a stale If-Match")
            return f"HTTP {second.status} with OperationOutcome"

        def id_mismatch(s: Session) -> str:
            sent, stored = s.one(t)
            body = {**copy.deepcopy(sent), "id": f"other-{s.tag}"}
            require_error(
                s.client.request("PUT", f"{t}/{stored['id']}", body=body),
                400,
                409,
                422,
                what="PUT with a different id in the body",
            )
            return "rejected with OperationOutcome"

        def multiple_matches(s: Session) -> str:
            res = s.server_resource(t) or {}
            if not res.get("conditionalCreate"):
                raise NotApplicable(f"the server declares no conditionalCreate for {t}")
            ids = s.world.ids(t)[:2]
            body = fixtures_build(t, s)
            r = s.client.request("POST", t, body=body, headers={"If-None-Exist": f"_id={','.join(ids)}"})
            require_error(r, 412, what="conditional create matching two resources")
            return "412 with OperationOutcome"

        for key, title, zh, requirement, required, fn in [
            (
                "read-missing-404",
                f"GET {t}/[unknown id] -> 404 + OperationOutcome",
                "读取不存在的资源返回 404",
                "FHIR R5 http read: 404 Not Found (SHALL)",
                True,
                missing,
            ),
            (
                "read-deleted-410",
                f"GET a deleted {t} -> 410 + OperationOutcome",
                "读取已删除资源返回 410",
                "FHIR R5 http delete/read: 410 Gone (SHALL when delete is supported)",
                True,
                deleted,
            ),
            (
                "bad-parameter-400",
                f"GET {t}?{date_param}=not-a-date -> 400 + OperationOutcome",
                "非法检索参数值返回 400",
                "FHIR R5 search: invalid parameter value 400 (SHALL)",
                True,
                bad_value,
            ),
            (
                "unknown-parameter-strict-400",
                f"GET {t}?unknown (handling=strict) -> 400",
                "严格模式下未知参数返回 400",
                "FHIR R5 search: Prefer handling=strict (SHOULD)",
                False,
                unknown_param,
            ),
            (
                "stale-if-match-412",
                f"PUT {t} with a stale If-Match -> 412/409",
                "If-Match 版本过期返回 412",
                f"{CS_REQ} {t}.versioning versioned-update; FHIR R5 http 412 (SHALL)",
                True,
                stale,
            ),
            (
                "id-mismatch-400",
                f"PUT {t}/a with id b in the body -> 400",
                "URL 与正文 id 不一致返回 400",
                "FHIR R5 http update: 400 when ids differ (SHALL)",
                True,
                id_mismatch,
            ),
            (
                "conditional-create-412",
                f"POST {t} with If-None-Exist matching two -> 412",
                "条件创建匹配多条返回 412",
                "FHIR R5 http conditional create: 412 on multiple matches (SHOULD)",
                False,
                multiple_matches,
            ),
        ]:
            self.add(f"negative/{t}/{key}", "negative", title, zh, requirement, required, fn)

    def global_negatives(self) -> None:
        def unknown_type(s: Session) -> str:
            require_error(s.client.get(f"NoSuchType{s.tag}/1"), 404, what="GET /NoSuchType/1")
            return "404 with OperationOutcome"

        self.add(
            "negative/unknown-type-404",
            "negative",
            "GET /[unknown type]/1 -> 404 + OperationOutcome",
            "未知资源类型返回 404",
            "FHIR R5 http: 404 for an unsupported resource type (SHALL)",
            True,
            unknown_type,
        )

    def validation(self) -> None:
        for example in self.defs.examples:
            if example["valid"] or not any(i["severity"] == "error" for i in example["issues"]):
                continue
            file, profile = example["file"], example["profile"]
            expressions = ", ".join(i["expression"] for i in example["issues"])
            structural = ".structure-" in file or any(i["error_code"] == "YL-3001" for i in example["issues"])
            statuses = (400, 422) if structural else (422,)

            case = file.split(".invalid.")[1].removesuffix(".json")

            wanted = tuple(i["expression"] for i in example["issues"] if i["severity"] == "error")

            def run(
                s: Session,
                file: str = file,
                statuses: tuple[int, ...] = statuses,
                wanted: tuple[str, ...] = wanted,
                structural: bool = structural,
            ) -> str:
                resource = self.defs.example(file)
                resource.pop("id", None)
                what = f"POST {resource['resourceType']} ({file})"
                r = s.client.request(
                    "POST", resource["resourceType"], body=resource, headers={"Prefer": "return=OperationOutcome"}
                )
                if r.status in (200, 201) and not structural:
                    # lenient enforcement: stored, and the same findings returned to the sender
                    require_outcome(r, what)
                    found = {e for i in r.json.get("issue", []) for e in i.get("expression", [])}
                    missing = [e for e in wanted if e not in found]
                    if missing:
                        raise CheckFailed(f"{what}: stored with {r.status} but the outcome does not report {missing}")
                    return f"stored with {r.status} (lenient mode) and the findings reported at {sorted(found)}"
                require_error(r, *statuses, what=what)
                return f"rejected with {r.status} and an OperationOutcome"

            self.add(
                f"validation/{file.removesuffix('.json')}",
                "validation",
                f"an invalid {profile.rsplit('/', 1)[1]} is rejected ({case})",
                f"拒绝不合规资源：{file}",
                f"{profile} {expressions}; {CS_REQ} rest.documentation "
                "(422 on profile errors, or stored with the findings reported in lenient mode; SHALL)",
                True,
                run,
                ("POL-06",),
            )

    def security(self) -> None:
        def no_token(s: Session) -> str:
            if not s.client.token:
                raise NotApplicable("no token configured (--token): authentication is not tested")
            r = s.client.request("GET", "Patient", params={"_count": "1"}, auth=False)
            require_error(r, 401, what="GET Patient without a token")
            return "401 with OperationOutcome"

        def wrong_token(s: Session) -> str:
            if not s.client.token:
                raise NotApplicable("no token configured (--token): authentication is not tested")
            r = s.client.request("GET", "Patient", params={"_count": "1"}, token=f"wrong-{s.tag}")
            require_error(r, 401, 403, what="GET Patient with a wrong token")
            return f"{r.status} with OperationOutcome"

        self.add(
            "security/no-token-401",
            "security",
            "a request without a token -> 401 + OperationOutcome",
            "无令牌请求返回 401",
            f"{CS_REQ} rest.security (SHALL when a token is issued)",
            True,
            no_token,
        )
        self.add(
            "security/wrong-token-401",
            "security",
            "a request with a wrong token -> 401/403 + OperationOutcome",
            "错误令牌返回 401/403",
            f"{CS_REQ} rest.security (SHALL when a token is issued)",
            True,
            wrong_token,
        )


_ZH_INTERACTION = {
    "read": "读取",
    "vread": "按版本读取",
    "create": "创建",
    "update": "更新",
    "delete": "删除",
    "search-type": "类型检索",
    "history-instance": "实例历史",
    "history-type": "类型历史",
}


def _buildable() -> set[str]:
    from conformance import fixtures

    return set(fixtures.BUILDERS)


def fixtures_build(t: str, s: Session) -> Json:
    from conformance import fixtures

    return fixtures.build(t, 0, s.tag + "x", s.world.ref)


def _literal_refs(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith("#"):
            out.add(ref)
        for value in node.values():
            out |= _literal_refs(value)
    elif isinstance(node, list):
        for item in node:
            out |= _literal_refs(item)
    return out


def _diff(what: str, expected: set[str], got: set[str]) -> str:
    missing, extra = sorted(expected - got), sorted(got - expected)
    parts = [f"{what}: expected {len(expected)} of the test's resources, got {len(got)}"]
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra[:10]}")
    return "; ".join(parts)


def generate(definitions: Definitions | None = None) -> list[Check]:
    """Every generated check (the hand-written workflows are added by `conformance.workflows`)."""
    return Generator(definitions).all()
