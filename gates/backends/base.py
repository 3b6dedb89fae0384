"""What every backend client shares: one GET that turns every failure into BackendError."""

from __future__ import annotations

from typing import Any

import httpx

from readygate.errors import BackendError

_MAX_BODY = 20 * 1024 * 1024  # a backend answer larger than this is not evidence, it is a bug


class HttpBackend:
    """A JSON-over-HTTP backend at ``base_url``, called through a client passed in."""

    kind = "backend"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, token: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and decode JSON; any failure to look raises :class:`BackendError`."""
        url = self.base_url + path
        try:
            resp = await self.client.get(url, params=params, headers=self._headers,
                                         timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.kind} unreachable at {self.base_url}: "
                               f"{type(exc).__name__}") from None
        if resp.status_code in (401, 403):
            raise BackendError(f"{self.kind} refused the request ({resp.status_code}) at {url}")
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
            detail = body.get("error") if isinstance(body, dict) else None
            raise BackendError(f"{self.kind} answered {resp.status_code} for {path}"
                               + (f": {detail}" if detail else ""))
        return body
