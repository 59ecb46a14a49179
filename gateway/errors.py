"""Errors of the gateway and their single translation to FHIR OperationOutcome.

Hierarchy (every class carries one or more :class:`Issue` values and the HTTP status the api
answers with; ``gateway.api.errors`` is the one place that turns them into responses)::

    FhirError                    any failure a client should see as an OperationOutcome
    ├── BadRequest          400  unparseable body (YL-0100..0102), resourceType or id not matching the
    │                            URL or missing (YL-0103..0106), malformed If-Match (YL-0301), bad
    │                            search or result parameter (YL-040x), bad Bundle (YL-050x)
    ├── Unauthorized        401  no, an invalid or an expired access token, or a revoked client
    │                            (YL-0900..0903; answered with WWW-Authenticate: Bearer)
    ├── Forbidden           403  not raised by the core: for security and policy hooks
    ├── NotFound            404  unknown resource type, id or version (YL-0200..0202), unknown
    │                            operation (YL-0204), unsupported interaction (YL-0205), unknown
    │                            adapter (YL-0206)
    ├── MethodNotAllowed    405  a method a route does not take is answered 405 by the router (YL-0205,
    │                            with its Allow header); a write to a served conformance file (YL-0304)
    ├── NotAcceptable       406  no supported format in Accept/_format (YL-0111)
    ├── Conflict            409  a concurrent write changed the resource first; retry (YL-0303)
    ├── Gone                410  the resource (or the version read) was deleted (YL-0203)
    ├── PreconditionFailed  412  If-Match names a stale version (YL-0300); a conditional create,
    │                            update or delete matched more than one resource (YL-0302)
    ├── PayloadTooLarge     413  body over max_body_bytes (YL-0800; other limits YL-080x answer 400)
    ├── UnsupportedMedia    415  body in a format we do not read (YL-0110), PATCH not JSON Patch (YL-0601)
    ├── Unprocessable       422  a stored resource claiming a served canonical URL (YL-0305),
    │                            structurally invalid resource (YL-0108, 0109, 0112, YL-070x) or
    │                            profile-invalid one (the validator's YL-3xxx), a JSON Patch that
    │                            cannot be applied (YL-0600)
    ├── TooManyRequests     429  a client over its rate limit (YL-0904; with Retry-After)
    └── BadGateway          502  a remote system the gateway asks for the caller gave no usable
                                 answer (the insurance platform: YL-1310, YL-1311)

Issues are :class:`adapters.issues.Issue` (re-exported here) and become an OperationOutcome
through :func:`adapters.issues.operation_outcome`, the one builder of all boundaries: Chinese in
``details.text``, English in ``diagnostics``, the code in ``details.coding``.

Each issue of the REST core carries a stable error code (``YL-0xxx``) from :data:`CODES`, so
operators can search logs and documentation by code (the validator's are ``YL-3xxx``, the
adapters' ``YL-2xxx``); tests/test_error_codes.py checks the table has no duplicates and that
every ``YL-0xxx`` code raised in the gateway is declared here with the parameters its messages need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

# The one Issue and OperationOutcome builder, shared with the adapters (see adapters/issues.py).
from adapters.issues import ERROR_CODE_SYSTEM, Issue, operation_outcome

__all__ = [
    "CODES",
    "ERROR_CODE_SYSTEM",
    "BadGateway",
    "BadRequest",
    "Code",
    "Conflict",
    "FhirError",
    "Forbidden",
    "Gone",
    "Issue",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMedia",
    "issue",
    "operation_outcome",
]


@dataclass(frozen=True)
class Code:
    """A stable error code with its bilingual message templates."""

    code: str
    issue_code: str  # FHIR issue-type code
    en: str
    zh: str


def _table(*codes: Code) -> dict[str, Code]:
    table: dict[str, Code] = {}
    for c in codes:
        if c.code in table:  # a reused code would silently replace the first meaning
            raise ValueError(f"error code {c.code} is declared twice")
        table[c.code] = c
    return table


CODES: dict[str, Code] = _table(
    Code(
        "YL-0001",
        "exception",
        "Internal server error (reference {ref}).",
        "服务器内部错误（编号 {ref}）。",
    ),
    Code(
        "YL-0100",
        "structure",
        "The body is not valid JSON: {reason}.",
        "请求体不是有效的 JSON：{reason}。",
    ),
    Code(
        "YL-0101",
        "structure",
        "The body is not valid FHIR XML: {reason}.",
        "请求体不是有效的 FHIR XML：{reason}。",
    ),
    Code(
        "YL-0102",
        "structure",
        "A resource must be a JSON object with resourceType.",
        "资源必须是带 resourceType 的 JSON 对象。",
    ),
    Code(
        "YL-0103",
        "invalid",
        "resourceType {found} does not match the URL ({expected}).",
        "资源类型 {found} 与 URL 中的类型 {expected} 不符。",
    ),
    Code(
        "YL-0104",
        "invalid",
        "The resource id {found} does not match the URL id {expected}.",
        "资源 id {found} 与 URL 中的 id {expected} 不符。",
    ),
    Code("YL-0105", "invalid", "An update must carry the resource id.", "更新时资源必须包含 id。"),
    Code(
        "YL-0106",
        "invalid",
        "Invalid resource id {id}: ids are 1-64 of A-Z a-z 0-9 - .",
        "资源 id {id} 无效：应为 1-64 位字母、数字、- 或 .。",
    ),
    Code("YL-0107", "structure", "{reason}", "{reason}"),
    Code(
        "YL-0108",
        "structure",
        "{element} ({type}) must be {expected} in FHIR JSON.",
        "{element}（{type}）在 FHIR JSON 中必须写作{expected_zh}。",
    ),
    Code(
        "YL-0109",
        "structure",
        "{element} is not valid FHIR narrative XHTML: {reason}.",
        "{element} 不是有效的 FHIR 叙述 XHTML：{reason}。",
    ),
    Code(
        "YL-0110",
        "not-supported",
        "Media type {media} is not supported; send application/fhir+json or application/fhir+xml.",
        "不支持的媒体类型 {media}；请使用 application/fhir+json 或 application/fhir+xml。",
    ),
    Code(
        "YL-0111",
        "not-supported",
        "None of the requested formats ({accept}) is supported.",
        "不支持所请求的格式（{accept}）。",
    ),
    Code(
        "YL-0112",
        "structure",
        "{element} holds {found}, which is not an R5 resource type.",
        "{element} 中的 {found} 不是 R5 资源类型。",
    ),
    Code(
        "YL-0200",
        "not-found",
        "Resource type {type} is not supported by this server.",
        "本服务器不支持资源类型 {type}。",
    ),
    Code("YL-0201", "not-found", "{type}/{id} was not found.", "未找到 {type}/{id}。"),
    Code(
        "YL-0202",
        "not-found",
        "Version {vid} of {type}/{id} was not found.",
        "未找到 {type}/{id} 的第 {vid} 版。",
    ),
    Code(
        "YL-0203",
        "deleted",
        "{type}/{id} was deleted (version {vid}).",
        "{type}/{id} 已被删除（第 {vid} 版）。",
    ),
    Code("YL-0204", "not-supported", "Operation {op} is not supported here.", "此处不支持操作 {op}。"),
    Code(
        "YL-0205",
        "not-supported",
        "This interaction is not supported: {what}.",
        "不支持此交互：{what}。",
    ),
    Code(
        "YL-0206",
        "not-found",
        "No adapter named {adapter}; known adapters: {known}.",
        "没有名为 {adapter} 的适配器；已有的适配器：{known}。",
    ),
    Code(
        "YL-0270",
        "forbidden",
        "A {role} client may not {interaction} {type}: its role and scopes do not permit it.",
        "{role} 角色的客户端无权对 {type} 执行 {interaction}：其角色与授权范围不允许。",
    ),
    Code(
        "YL-0271",
        "forbidden",
        "A member writes only its own data: {path} names member {claimed}, not {member}.",
        "成员机构只能写入本机构的数据：{path} 指向成员 {claimed}，而不是 {member}。",
    ),
    Code(
        "YL-0272",
        "forbidden",
        "The history of all {type} resources is not open to member clients: "
        "read one resource's history, or search with a patient.",
        "成员机构客户端不能查看全部 {type} 资源的历史：请查看单个资源的历史，或按患者检索。",
    ),
    Code(
        "YL-0273",
        "security",
        "The sending facility (MSH-4) {facility} is not a member this connection is bound to ({bound}).",
        "发送机构（MSH-4）{facility} 不是本连接绑定的成员机构（{bound}）。",
    ),
    Code(
        "YL-0274",
        "security",
        "An order claims member {claimed} (ORC-2.2) in a message sent by {facility}.",
        "由 {facility} 发送的消息中，有医嘱声明属于成员机构 {claimed}（ORC-2.2）。",
    ),
    Code(
        "YL-0207",
        "exception",
        "The adapter failed to convert the message: {reason}.",
        "适配器转换消息失败：{reason}。",
    ),
    Code(
        "YL-0300",
        "conflict",
        "Version conflict: If-Match {expected} but the current version is {current}.",
        "版本冲突：If-Match 为 {expected}，当前版本为 {current}。",
    ),
    Code(
        "YL-0301",
        "invalid",
        'If-Match must be a weak ETag like W/"3", got {value}.',
        'If-Match 应为 W/"3" 形式的弱 ETag，实际为 {value}。',
    ),
    Code(
        "YL-0302",
        "multiple-matches",
        "The conditional {what} matched {count} resources.",
        "条件{what}匹配到 {count} 个资源。",
    ),
    Code(
        "YL-0303",
        "conflict",
        "Another request changed {type}/{id} at the same time; retry.",
        "{type}/{id} 同时被其他请求修改，请重试。",
    ),
    Code(
        "YL-0304",
        "not-supported",
        "{type}/{id} is served from the gateway's conformance files (profiles/) and is read-only: "
        "change the file (scripts/build_profiles.py) instead.",
        "{type}/{id} 来自网关的一致性定义文件（profiles/），只读：请修改该文件（scripts/build_profiles.py）。",
    ),
    Code(
        "YL-0305",
        "business-rule",
        "{url} is the canonical URL of a {type} served from the gateway's conformance files; "
        "a stored {type} may not claim it.",
        "{url} 是网关一致性定义文件中 {type} 的规范 URL，存储的 {type} 不得使用该 URL。",
    ),
    Code(
        "YL-0400",
        "invalid",
        "Unknown search parameter {name} for {type}.",
        "{type} 没有检索参数 {name}。",
    ),
    Code(
        "YL-0401",
        "invalid",
        "Invalid value {value!r} for search parameter {name}: {reason}.",
        "检索参数 {name} 的值 {value!r} 无效：{reason}。",
    ),
    Code(
        "YL-0402",
        "not-supported",
        "Modifier :{modifier} is not supported for {name} ({kind}).",
        "检索参数 {name}（{kind}）不支持修饰符 :{modifier}。",
    ),
    Code("YL-0403", "invalid", "Invalid _sort key {key}.", "无效的排序键 {key}。"),
    Code(
        "YL-0404",
        "invalid",
        "Invalid {name} value {value!r}: {reason}.",
        "{name} 的值 {value!r} 无效：{reason}。",
    ),
    Code(
        "YL-0405",
        "invalid",
        "Invalid chained parameter {name}: {reason}.",
        "无效的链式检索参数 {name}：{reason}。",
    ),
    Code(
        "YL-0500",
        "invalid",
        "Bundle.type must be batch or transaction, got {found}.",
        "Bundle.type 必须是 batch 或 transaction，实际为 {found}。",
    ),
    Code(
        "YL-0501",
        "invalid",
        "Bundle entry {index} has no request or an unsupported method.",
        "Bundle 第 {index} 个条目缺少 request 或方法不受支持。",
    ),
    Code(
        "YL-0502",
        "processing",
        "Transaction failed at entry {index} ({url}): {reason}",
        "事务在第 {index} 个条目（{url}）处失败：{reason}",
    ),
    Code(
        "YL-0503",
        "invalid",
        "Unresolvable reference {reference} in the transaction.",
        "事务中的引用 {reference} 无法解析。",
    ),
    Code(
        "YL-0504",
        "invalid",
        "Duplicate fullUrl {url} in the Bundle.",
        "Bundle 中 fullUrl {url} 重复。",
    ),
    Code(
        "YL-0600",
        "structure",
        "JSON Patch failed at operation {index}: {reason}.",
        "JSON Patch 第 {index} 步失败：{reason}。",
    ),
    Code(
        "YL-0601",
        "not-supported",
        "PATCH needs Content-Type application/json-patch+json.",
        "PATCH 需要 Content-Type application/json-patch+json。",
    ),
    Code("YL-0700", "structure", "{reason}", "{reason}"),
    # 095x: the audit trail (gateway/security/audit.py)
    Code(
        "YL-0950",
        "forbidden",
        "Only an auditor (role admin or regulator) may search the audit trail; this client has role {role}.",
        "只有审计人员（admin 或 regulator 角色）可以查询审计记录；此客户端的角色是 {role}。",
    ),
    Code(
        "YL-0951",
        "login",
        "Searching the audit trail needs an authenticated client.",
        "查询审计记录需要经过认证的客户端。",
    ),
    Code(
        "YL-0952",
        "exception",
        "The audit record of this request could not be stored, so its answer is withheld (reference {ref}).",
        "此请求的审计记录未能保存，因此不返回结果（编号 {ref}）。",
    ),
    Code(
        "YL-0953",
        "forbidden",
        "AuditEvent records are written by the gateway alone (its audit trail); clients only search them.",
        "AuditEvent 审计记录只能由网关写入，客户端只能查询。",
    ),
    # -- limits (issue 12): each names the setting that bounds it (docs/deployment.md "## Limits")
    Code(
        "YL-0800",
        "too-costly",
        "The request body is larger than {limit} bytes (setting {setting}).",
        "请求体超过 {limit} 字节的上限（设置项 {setting}）。",
    ),
    Code(
        "YL-0801",
        "too-costly",
        "The request has {count} {what}; at most {limit} are allowed (setting {setting}).",
        "请求包含 {count} 个{what_zh}，上限为 {limit} 个（设置项 {setting}）。",
    ),
    Code(
        "YL-0802",
        "too-costly",
        "The query ran longer than {limit} ms and was cancelled (setting {setting}); narrow it.",
        "查询超过 {limit} 毫秒已被取消（设置项 {setting}），请缩小检索范围。",
    ),
    Code(
        "YL-0803",
        "too-costly",
        "The MLLP frame is larger than {limit} bytes (setting {setting}).",
        "MLLP 帧超过 {limit} 字节的上限（设置项 {setting}）。",
    ),
    Code(
        "YL-0804",
        "too-costly",
        "{count} more findings with code {finding} were left out (at most {limit} per code; setting {setting}).",
        "另有 {count} 条代码为 {finding} 的问题未列出（每个代码至多 {limit} 条；设置项 {setting}）。",
    ),
    Code(
        "YL-0805",
        "too-costly",
        "Converting the message took longer than {limit} s (setting {setting}).",
        "消息转换超过 {limit} 秒（设置项 {setting}）。",
    ),
    Code(
        "YL-0806",
        "security",
        "Host {host} is not served here; set YAOLIAN_BASE_URL or add it to YAOLIAN_ALLOWED_HOSTS.",
        "本服务不接受主机名 {host}；请设置 YAOLIAN_BASE_URL 或将其加入 YAOLIAN_ALLOWED_HOSTS。",
    ),
    Code(
        "YL-0113",
        "structure",
        "{element} contains the control character {char}, which FHIR strings do not allow.",
        "{element} 含有 FHIR 字符串不允许的控制字符 {char}。",
    ),
    Code(
        "YL-0114",
        "structure",
        "The JSON object at {element} has the key {key!r} twice.",
        "{element} 处的 JSON 对象中键 {key!r} 出现了两次。",
    ),
    Code("YL-0701", "invariant", "{reason}", "{reason}"),
    # Formulary and prescription review (issue 14, gateway.alliance): YL-1100..1199
    Code(
        "YL-1100",
        "value",
        "Line {line}, column {column}: {reason}.",
        "第 {line} 行，{column} 列：{reason_zh}。",
    ),
    Code(
        "YL-1101",
        "required",
        "The spreadsheet has no header row with the column(s) {missing}.",
        "表格缺少表头列 {missing}。",
    ),
    Code(
        "YL-1102",
        "not-found",
        "Line {line}, column {column}: drug {drug} is not in the catalogue and the row has no generic name; "
        "import the catalogue first.",
        "第 {line} 行，{column} 列：药品 {drug} 不在药品目录中且本行没有通用名；请先导入药品目录。",
    ),
    Code(
        "YL-1103",
        "not-found",
        "Member {member} is not in the alliance's member registry.",
        "成员单位 {member} 不在医共体成员登记中。",
    ),
    Code(
        "YL-1104",
        "not-found",
        "Formulary version {version} of member {member} does not exist.",
        "成员单位 {member} 的药品目录版本 {version} 不存在。",
    ),
    Code(
        "YL-1110",
        "invalid",
        "Nothing to review: send a MedicationRequest, or a Bundle holding one (found {found}).",
        "没有可审核的处方：请提交 MedicationRequest 或包含它的 Bundle（收到 {found}）。",
    ),
    Code(
        "YL-1111",
        "business-rule",
        "{text} (rule {rule}, rule set {version}).",
        "{text_zh}（规则 {rule}，规则集版本 {version}）。",
    ),
    Code(
        "YL-1112",
        "invalid",
        "The CDS Hooks request is not valid: {reason}.",
        "CDS Hooks 请求无效：{reason}。",
    ),
    Code(
        "YL-1113",
        "invalid",
        "Rule {rule} of rule set {path} is not valid: {reason}.",
        "规则集 {path} 中的规则 {rule} 无效：{reason}。",
    ),
    Code(
        "YL-1114",
        "informational",
        "The prescription passed the central pre-review (rule set {version}).",
        "处方通过前置审核（规则集版本 {version}）。",
    ),
    Code(
        "YL-1115",
        "not-found",
        "No service {service} here; GET /cds-services lists them.",
        "没有名为 {service} 的服务；GET /cds-services 可列出全部服务。",
    ),
    # Federation (issue 13, gateway.federation): live members, $prescriptions, $match, $continue
    Code(
        "YL-1000",
        "timeout",
        "Member {member} ({name}) did not answer within {timeout} s; its records are missing here.",
        "成员 {member}（{name}）未在 {timeout} 秒内应答；其记录未包含在本结果中。",
    ),
    Code(
        "YL-1001",
        "transient",
        "Member {member} ({name}) could not be asked: {reason}; its records are missing here.",
        "无法查询成员 {member}（{name}）：{reason}；其记录未包含在本结果中。",
    ),
    Code(
        "YL-1002",
        "processing",
        "Member {member} ({name}) answered something that is not a FHIR searchset Bundle: {reason}.",
        "成员 {member}（{name}）的应答不是 FHIR 检索结果 Bundle：{reason}。",
    ),
    Code(
        "YL-1003",
        "transient",
        "Member {member} ({name}) answered HTTP {status}; its records are missing here.",
        "成员 {member}（{name}）应答 HTTP {status}；其记录未包含在本结果中。",
    ),
    Code(
        "YL-1004",
        "transient",
        "Member {member} ({name}) was not asked: it failed {failures} times in a row (asked again after {reset} s).",
        "未查询成员 {member}（{name}）：已连续失败 {failures} 次（{reset} 秒后重试）。",
    ),
    Code(
        "YL-1005",
        "processing",
        "An entry from member {member} was left out: {reason}.",
        "已忽略成员 {member} 返回的一条记录：{reason}。",
    ),
    Code(
        "YL-1006",
        "not-found",
        "Live members were not asked: Patient/{id} has no identifier they could know the patient by.",
        "未查询实时成员：Patient/{id} 没有成员可识别的标识符（如居民身份证号）。",
    ),
    Code(
        "YL-1010",
        "required",
        "{operation} needs identifier=SYSTEM|VALUE or patient=ID.",
        "{operation} 需要 identifier=系统|值 或 patient=ID 参数。",
    ),
    Code(
        "YL-1011",
        "invalid",
        "The page token {token} is not one this gateway gave out.",
        "分页标记 {token} 不是本网关生成的。",
    ),
    Code(
        "YL-1012",
        "invalid",
        "Invalid member registration: {reason}.",
        "成员登记无效：{reason}。",
    ),
    Code(
        "YL-1013",
        "not-found",
        "No member with code {member}.",
        "没有代码为 {member} 的成员。",
    ),
    Code(
        "YL-1020",
        "required",
        "$match needs a Patient in the parameter resource.",
        "$match 需要在参数 resource 中提供 Patient 资源。",
    ),
    Code(
        "YL-1030",
        "invalid",
        "$continue: {reason}.",
        "续方（$continue）：{reason}。",
    ),
    # Authentication and rate limits (gateway.security; answered with WWW-Authenticate / Retry-After)
    Code(
        "YL-0900",
        "login",
        "Authentication required: send Authorization: Bearer <access token> (get one at {token_url}).",
        "需要身份认证：请携带 Authorization: Bearer <访问令牌>（在 {token_url} 获取）。",
    ),
    Code(
        "YL-0901",
        "login",
        "The access token is not valid: {reason}.",
        "访问令牌无效：{reason}。",
    ),
    Code(
        "YL-0902",
        "expired",
        "The access token has expired; request a new one.",
        "访问令牌已过期，请重新获取。",
    ),
    Code(
        "YL-0903",
        "login",
        "Client {client_id} has been revoked.",
        "客户端 {client_id} 已被吊销。",
    ),
    Code(
        "YL-0904",
        "throttled",
        "Too many requests from client {client_id} (at most {rate}/s, bursts of {burst}); retry after {retry} s.",
        "客户端 {client_id} 请求过多（每秒最多 {rate} 次，突发 {burst} 次），请 {retry} 秒后重试。",
    ),
    # Supply chain (issue 15, gateway.alliance.supply): YL-1200..1299
    Code(
        "YL-1200",
        "structure",
        "{where}: the alert-lines CSV must have the columns tier_or_member, nhsa_code, line (found {found}).",
        "{where}：警戒线 CSV 必须包含列 tier_or_member、nhsa_code、line（实际为 {found}）。",
    ),
    Code(
        "YL-1201",
        "value",
        "{where}: {column} {value!r} is not valid: {reason}.",
        "{where}：{column} 的值 {value!r} 无效：{reason}。",
    ),
    Code(
        "YL-1202",
        "value",
        "The period {value!r} is not a month (YYYY-MM) or a year (YYYY).",
        "期间 {value!r} 不是月份（YYYY-MM）或年份（YYYY）。",
    ),
    Code(
        "YL-1203",
        "forbidden",
        "Only the county pharmacy (or an administrator) may {action}.",
        "只有县级中心药房（或管理员）可以{action_zh}。",
    ),
    Code(
        "YL-1204",
        "required",
        "{field}: cutting or changing plan line {line} needs a reason.",
        "{field}：削减或修改计划明细 {line} 必须说明理由。",
    ),
    Code(
        "YL-1205",
        "not-found",
        "{field}: {reference} is not a {what} of this request.",
        "{field}：{reference} 不是本次请求涉及的{what_zh}。",
    ),
    Code(
        "YL-1210",
        "business-rule",
        "{field}: {reference} is not an approved plan line (status {status}).",
        "{field}：{reference} 不是已批准的计划明细（状态 {status}）。",
    ),
    Code(
        "YL-1211",
        "value",
        "{field}: the delivered quantity must be greater than zero (found {value}).",
        "{field}：配送数量必须大于零（实际为 {value}）。",
    ),
    Code(
        "YL-1212",
        "code-invalid",
        "{field}: the drug {value!r} is unknown (no Medication with that national insurance code).",
        "{field}：药品 {value!r} 未知（没有该医保编码的药品）。",
    ),
    Code(
        "YL-1213",
        "value",
        "{field}: the traceability code {value!r} must be 20 digits.",
        "{field}：药品追溯码 {value!r} 必须为 20 位数字。",
    ),
    Code(
        "YL-1214",
        "required",
        "{field} is required ({what}).",
        "{field} 为必填项（{what_zh}）。",
    ),
    Code(
        "YL-1215",
        "business-rule",
        "{field}: the delivered drug {value} is not the drug of the plan line ({expected}).",
        "{field}：配送药品 {value} 与计划明细的药品（{expected}）不符。",
    ),
    Code(
        "YL-1220",
        "business-rule",
        "{field}: the transfer {reference} cannot move stock: {reason}.",
        "{field}：调剂 {reference} 无法移动库存：{reason_zh}。",
    ),
    Code(
        "YL-1230",
        "business-rule",
        "{field}: {reference} is not a reviewed extended or individual-treatment prescription.",
        "{field}：{reference} 不是已审核的延伸处方或个体化治疗处方。",
    ),
    Code(
        "YL-1231",
        "business-rule",
        "{field}: the shortage registration {reference} is {status}, not open.",
        "{field}：缺药登记 {reference} 的状态为 {status}，不是待处理。",
    ),
    # -- subscriptions and deliveries (issue 16, gateway/events, docs/subscriptions.md)
    Code(
        "YL-1300",
        "value",
        "Subscription.topic {topic} is not a topic of this server (GET SubscriptionTopic lists them).",
        "Subscription.topic {topic} 不是本服务器的订阅主题（可查询 SubscriptionTopic）。",
    ),
    Code(
        "YL-1301",
        "value",
        "Subscription.filterBy[{index}]: topic {topic} cannot be filtered by {name} (allowed: {allowed}).",
        "Subscription.filterBy[{index}]：主题 {topic} 不支持按 {name} 过滤（可用：{allowed}）。",
    ),
    Code(
        "YL-1302",
        "not-supported",
        "Subscription.channelType {channel} is not supported (rest-hook, websocket, message, {extra}).",
        "不支持的 Subscription.channelType {channel}（支持 rest-hook、websocket、message、{extra}）。",
    ),
    Code(
        "YL-1303",
        "value",
        "Subscription.endpoint {endpoint} is not usable for channel {channel}: {reason}.",
        "Subscription.endpoint {endpoint} 不能用于通道 {channel}：{reason}。",
    ),
    Code(
        "YL-1304",
        "value",
        "Subscription.{path} {value} is not allowed: {reason}.",
        "Subscription.{path} 的值 {value} 不允许：{reason}。",
    ),
    Code(
        "YL-1305",
        "value",
        "{name} {value} is not a valid event number of Subscription/{id} (it has {count} events).",
        "{name} {value} 不是 Subscription/{id} 的有效事件编号（共 {count} 个事件）。",
    ),
    Code(
        "YL-1306",
        "business-rule",
        "The insurance platform refused prescription {rx}: {message} (infno {infno}, err_code {err_code}).",
        "医保平台拒绝了处方 {rx}：{message}（交易 {infno}，错误码 {err_code}）。",
    ),
    Code(
        "YL-1307",
        "required",
        "Insurance message {infno} cannot be made from this prescription: {problems}.",
        "无法由此处方生成医保交易 {infno}：{problems}。",
    ),
    Code(
        "YL-1308",
        "business-rule",
        "{rx} has no insurance prescription number (hi_rxno): it was not uploaded to the insurance platform.",
        "{rx} 没有医保处方编号（hi_rxno）：尚未上传医保平台。",
    ),
    Code(
        "YL-1309",
        "business-rule",
        "The insurance platform refused {infno} ({name}) for {rx}: {message} (err_code {err_code}).",
        "医保平台拒绝了 {rx} 的交易 {infno}（{name_zh}）：{message}（错误码 {err_code}）。",
    ),
    Code(
        "YL-1310",
        "transient",
        "The insurance platform gave no usable answer to {infno} ({name}) for {rx}: {reason}.",
        "医保平台未对 {rx} 的交易 {infno}（{name_zh}）给出有效应答：{reason}。",
    ),
    Code(
        "YL-1311",
        "not-found",
        "No insurance platform to ask: no active Subscription with channel insurance-rx names its endpoint.",
        "无可查询的医保平台：没有通道为 insurance-rx 的有效订阅提供其地址。",
    ),
)


def issue(code: str, *, severity: str = "error", expression: Iterable[str] = (), **params: object) -> Issue:
    """Build an issue from a declared error code, filling its message templates."""
    spec = CODES[code]
    return Issue(
        severity=severity,
        code=spec.issue_code,
        en=spec.en.format(**params),
        zh=spec.zh.format(**params),
        expression=tuple(expression),
        error_code=code,
    )


@dataclass
class FhirError(Exception):
    """Base: a failure that becomes an OperationOutcome with :attr:`status`."""

    issues: list[Issue] = field(default_factory=list)
    status: ClassVar[int] = 400

    def __init__(
        self,
        code_or_issues: str | list[Issue],
        *,
        severity: str = "error",
        expression: Iterable[str] = (),
        **params: object,
    ):
        if isinstance(code_or_issues, str):
            self.issues = [issue(code_or_issues, severity=severity, expression=expression, **params)]
        else:
            self.issues = list(code_or_issues)
        super().__init__(self.issues[0].en if self.issues else type(self).__name__)


class BadRequest(FhirError):
    status = 400


class Unauthorized(FhirError):
    status = 401


class Forbidden(FhirError):
    status = 403


class NotFound(FhirError):
    status = 404


class MethodNotAllowed(FhirError):
    status = 405


class NotAcceptable(FhirError):
    status = 406


class Conflict(FhirError):
    status = 409


class Gone(FhirError):
    status = 410


class PreconditionFailed(FhirError):
    status = 412


class UnsupportedMedia(FhirError):
    status = 415


class Unprocessable(FhirError):
    status = 422


class TooManyRequests(FhirError):
    """A client over its rate limit; ``retry_after`` (seconds) becomes the Retry-After header."""

    status = 429
    retry_after: int = 1


class BadGateway(FhirError):
    status = 502


class PayloadTooLarge(FhirError):
    status = 413
