"""The kit's HTTP client: plain httpx, every exchange recorded for the report.

The kit is a FHIR client like a vendor's own: it knows the base URL (and a token if the alliance
issued one), nothing else. `transport` lets tests run it in-process; everything else goes over HTTP.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

FHIR_JSON = "application/fhir+json"
BODY_LIMIT = 20_000


@dataclass
class Exchange:
    """One request and its response, as the report shows them."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    elapsed_ms: float = 0.0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body": self.request_body,
            },
            "response": {
                "status": self.status,
                "headers": self.response_headers,
                "body": self.response_body,
                "elapsed_ms": round(self.elapsed_ms, 1),
            },
            "error": self.error,
        }


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    text: str
    exchange: Exchange

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None

    @property
    def resource_type(self) -> str | None:
        body = self.json
        value = body.get("resourceType") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return str(value) if value is not None else None


def _clip(text: str) -> str:
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + f"\n… ({len(text) - BODY_LIMIT} more characters)"


class FhirClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self.log: list[Exchange] = []

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | list[tuple[str, str]] | None = None,
        body: Any = None,
        form: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        token: str | None = None,
    ) -> Response:
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(
                list(params.items()) if isinstance(params, dict) else params
            )
        sent = {"Accept": FHIR_JSON}
        content: bytes | None = None
        if body is not None:
            content = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
            sent["Content-Type"] = FHIR_JSON
        elif form is not None:
            content = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update(headers or {})
        bearer = token if token is not None else (self.token if auth else None)
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        shown = {k: ("Bearer ***" if k == "Authorization" else v) for k, v in sent.items()}
        exchange = Exchange(method, url, shown, _clip(content.decode(errors="replace")) if content else "")
        self.log.append(exchange)
        started = time.perf_counter()
        try:
            r = self._http.request(method, url, content=content, headers=sent)
        except httpx.HTTPError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        exchange.status = r.status_code
        exchange.response_headers = dict(r.headers)
        exchange.response_body = _clip(r.text)
        return Response(r.status_code, r.headers, r.text, exchange)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)
