"""No secrets in logs: access tokens, client assertions, client secrets and Authorization
headers are replaced by ``[redacted]`` in every log record of the process.

Installed as a log-record factory (:func:`install`), so it applies whatever logger or handler
a record goes to, child loggers and test capture included, and to the text of logged
exceptions (a hook that fails with the request headers in its message leaks nothing).
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

REDACTED = "[redacted]"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # any JWT (header.payload.signature, base64url of a JSON object: starts with eyJ)
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization schemes with their credentials
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9\-._~+/%]+=*"), r"\1 " + REDACTED),
    # form fields, JSON members and key=value pairs that hold secrets
    (
        re.compile(
            r"(?i)\b((?:client_assertion|client_secret|access_token|refresh_token|secret|password|authorization)"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"
        ),
        r"\1" + REDACTED,
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(record: logging.LogRecord) -> None:
    """Redact a record in place: its message (arguments merged in) and its exception text."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it later, as usual
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = redact(text)
        if clean != text:
            record.exc_text = clean


class RedactingFilter(logging.Filter):
    """The same as a filter, for handlers configured elsewhere (e.g. a logging config file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record)
        return True


_installed = False


def install() -> None:
    """Redact every record of this process from now on (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
