"""Validation findings and their stable codes.

Every finding the validator produces is an :class:`~adapters.issues.Issue` (the one issue type
of Yaolian, re-exported by ``gateway.errors``) carrying one of the codes in :data:`ERROR_CODES`
(``YL-3xxx``): ``severity`` error | warning | information; ``code`` the OperationOutcome issue
type (structure, required, value, code-invalid, invariant, not-supported, business-rule);
``expression`` the FHIRPath of the element, e.g. ``MedicationRequest.dosageInstruction[0].timing``
(choice elements are named by their JSON property, e.g. ``extension[0].valueCoding``). Codes are
never reused; a test checks the registry. A template parameter ``x_zh`` is the Chinese form of
``x``.
"""

from __future__ import annotations

from gateway.errors import Issue

__all__ = ["ERROR_CODES", "issue"]


# error code -> (severity, issue type, english template, chinese template)
ERROR_CODES: dict[str, tuple[str, str, str, str]] = {
    "YL-3001": ("error", "structure", "Invalid structure: {detail}", "结构错误：{detail_zh}"),
    "YL-3002": (
        "warning",
        "not-supported",
        "Unknown profile {profile}; not checked",
        "未知的 profile {profile}，未校验",
    ),
    "YL-3003": (
        "error",
        "invalid",
        "Profile {profile} is for {expected}, not {actual}",
        "profile {profile} 适用于 {expected}，而非 {actual}",
    ),
    "YL-3004": ("error", "structure", "Not a FHIR resource: {detail}", "不是 FHIR 资源：{detail}"),
    "YL-3010": (
        "error",
        "required",
        "{element} is required (at least {min}) by {profile}",
        "{profile} 要求 {element} 至少出现 {min} 次",
    ),
    "YL-3011": (
        "error",
        "structure",
        "{element} allows at most {max} (found {count}) in {profile}",
        "{profile} 中 {element} 至多 {max} 个（实际 {count} 个）",
    ),
    "YL-3013": (
        "error",
        "structure",
        "{element} does not allow type {type} in {profile}",
        "{profile} 中 {element} 不允许类型 {type}",
    ),
    "YL-3020": ("error", "value", "{element} must be {expected}", "{element} 必须为 {expected}"),
    "YL-3021": ("error", "value", "{element} must match the pattern {expected}", "{element} 必须符合模式 {expected}"),
    "YL-3030": (
        "error",
        "code-invalid",
        "{element}: code {code} is not in value set {valueset}",
        "{element}：代码 {code} 不在值集 {valueset} 中",
    ),
    "YL-3040": (
        "error",
        "value",
        "{element}: {value} is not a valid {system_name}",
        "{element}：{value} 不是有效的{system_name_zh}",
    ),
    "YL-3041": (
        "error",
        "value",
        "{element}: resident ID card number {value} fails the MOD 11-2 check (expected check character {expected})",
        "{element}：身份证号 {value} 校验码错误（应为 {expected}）",
    ),
    "YL-3042": (
        "error",
        "value",
        "{element}: resident ID card number {value} has an impossible birth date",
        "{element}：身份证号 {value} 中的出生日期无效",
    ),
    "YL-3043": (
        "warning",
        "value",
        "{element}: traceability code {value} does not start with 8",
        "{element}：药品追溯码 {value} 不以 8 开头",
    ),
    "YL-3050": (
        "error",
        "structure",
        "{element} matches no slice of {profile} (closed slicing)",
        "{element} 不匹配 {profile} 中任何切片（封闭切片）",
    ),
    "YL-3060": ("error", "invariant", "Constraint {key} failed: {human}", "约束 {key} 未满足：{human}"),
    "YL-3061": (
        "error",
        "exception",
        "Constraint {key} could not be evaluated: {detail}",
        "约束 {key} 无法求值：{detail}",
    ),
    "YL-3070": ("error", "value", "{element} {detail}", "{element} {detail_zh}"),
    "YL-3071": ("error", "structure", "{element}: an empty {what} is not allowed", "{element}：不允许空{what_zh}"),
    "YL-3072": (
        "error",
        "structure",
        "The JSON property {name} is given more than once in one object",
        "JSON 属性 {name} 在同一对象中出现多次",
    ),
    "YL-3073": ("error", "value", "Narrative {element}: {detail}", "叙述 {element}：{detail_zh}"),
    "YL-3074": ("error", "structure", "Contained resource {element}: {detail}", "被包含资源 {element}：{detail_zh}"),
    "YL-3075": (
        "error",
        "structure",
        "{element} refers to a {found}, which R5 does not allow here (allowed: {allowed})",
        "{element} 引用了 {found}，R5 在此不允许（允许：{allowed}）",
    ),
    "YL-3076": (
        "error",
        "value",
        "{element}: {reference} is not a valid conditional reference (Type?name=value&...)",
        "{element}：{reference} 不是有效的条件引用（类型?参数=值&...）",
    ),
    "YL-3077": ("error", "value", "Attachment {element}: {detail}", "附件 {element}：{detail_zh}"),
}


def issue(error_code: str, expression: str, severity: str | None = None, **values: object) -> Issue:
    """The finding ``error_code`` at the element ``expression`` ('' for none)."""
    sev, kind, en, zh = ERROR_CODES[error_code]
    return Issue(
        severity=severity or sev,
        code=kind,
        en=en.format(**values),
        zh=zh.format(**values),
        expression=(expression,) if expression else (),
        error_code=error_code,
    )
