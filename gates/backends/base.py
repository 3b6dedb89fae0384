"""What every backend client shares: one GET that turns every failure into BackendError."""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import BackendError
from core.http import REQUEST_ERRORS, describe

_MAX_BODY = 20 * 1024 * 1024  # a backend answer larger than this is not evidence, it is a bug


class HttpBackend:
    """A JSON-over-HTTP backend at ``base_url``, called through a client passed in."""

    kind = "backend"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, token: str | None = None,
                 timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._headers.update(headers or {})

    async def get_json(self, path: str, params: Any = None, *,
                       missing_ok: bool = False) -> Any:
        """GET ``path`` and decode JSON; any failure to look raises :class:`BackendError`.

        With ``missing_ok`` a 404 answers ``None``: for trace stores "not found yet" is no
        data (a fail once the deadline passes), not a failure to look.
        """
        return await self.request_json("GET", path, params, missing_ok=missing_ok)

    async def request_json(self, method: str, path: str, params: Any = None, *,
                           json: Any = None, missing_ok: bool = False) -> Any:
        """Like :meth:`get_json` for any method, with an optional JSON body."""
        url = self.base_url + path
        try:
            resp = await self.client.request(method, url, params=params, json=json,
                                             headers=self._headers, timeout=self.timeout_s)
        except REQUEST_ERRORS as exc:
            raise BackendError(f"{self.kind} unreachable at {self.base_url}: "
                               f"{describe(exc)}") from None
        if resp.status_code in (401, 403):
            raise BackendError(f"{self.kind} refused the request ({resp.status_code}) at {url}")
        if missing_ok and resp.status_code == 404:
            return None
        if len(resp.content) > _MAX_BODY:
            raise BackendError(f"{self.kind} answered {len(resp.content)} bytes from {path}: "
                               "too large to be a sane answer")
        try:
            body = resp.json()
        except ValueError:
            snippet = resp.text[:80].replace("\n", " ")
            raise BackendError(f"{self.kind} answered {resp.status_code} with non-JSON from "
                               f"{path}: {snippet!r}") from None
        if resp.status_code >= 400:
            detail = _detail(body)
            raise BackendError(f"{self.kind} answered {resp.status_code} for {path}"
                               + (f": {detail}" if detail else ""))
        return body


def _detail(body: Any) -> str | None:
    """The error message of an error answer, in the shapes the backends use."""
    if not isinstance(body, dict):
        return None
    for key in ("error", "message", "detail", "msg"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict):  # Elasticsearch: {"error": {"reason": ...}}
            return str(value.get("reason") or value.get("message") or value)
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # Jaeger
        return str(errors[0].get("msg") or errors[0])
    return None
