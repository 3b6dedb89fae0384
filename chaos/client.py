"""Client for the fault proxy's control plane (``/_readygate/faults``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from chaos.faults import FaultRecord, FaultSpec, parse_spec, spec_to_json
from chaos.tcpfaults import TcpFaultRecord, TcpFaultSpec, parse_tcp_spec
from core.errors import BackendError, ConfigError
from core.http import REQUEST_ERRORS

_RECORD = TypeAdapter(FaultRecord)
_RECORDS = TypeAdapter(list[FaultRecord])
_T = TypeVar("_T")


def _validated(adapter: TypeAdapter[_T], body: Any, where: str) -> _T:
    """The proxy's answer as a typed record, or a one-line BackendError saying where."""
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        raise BackendError(f"{where}: unexpected answer ({exc.error_count()} field errors)"
                           ) from None


class FaultProxyClient:
    """Injects, lists and removes faults on one running fault proxy."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, *,
                 timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client
        self._timeout = timeout

    async def health(self) -> dict[str, Any]:
        """The proxy's health document; raises ``BackendError`` if it does not answer 200."""
        body = await self._call("GET", "/_readygate/health", "check health")
        if not isinstance(body, dict):
            raise BackendError(f"fault proxy {self.base_url}: health: expected a JSON object")
        return body

    async def inject(self, spec: FaultSpec | Mapping[str, Any]) -> FaultRecord:
        """Start a fault; ``ConfigError`` if the spec is invalid (here or at the proxy)."""
        try:
            parsed = parse_spec(spec)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        body = await self._call("POST", "/_readygate/faults", "inject a fault",
                                json=spec_to_json(parsed))
        return self._record(body, "inject a fault")

    async def remove(self, fault_id: str) -> FaultRecord:
        """End a fault; a fault that already ended is returned as it ended."""
        body = await self._call("DELETE", f"/_readygate/faults/{fault_id}",
                                f"remove fault {fault_id}")
        return self._record(body, f"remove fault {fault_id}")

    async def get(self, fault_id: str) -> FaultRecord:
        """One fault, active or ended."""
        body = await self._call("GET", f"/_readygate/faults/{fault_id}", f"get fault {fault_id}")
        return self._record(body, f"get fault {fault_id}")

    async def clear(self) -> list[FaultRecord]:
        """End every active fault; return the ended records."""
        body = await self._call("DELETE", "/_readygate/faults", "clear faults")
        return self._records(body, "clear faults")

    async def active(self) -> list[FaultRecord]:
        """Faults in effect now."""
        return (await self._listing())[0]

    async def history(self) -> list[FaultRecord]:
        """Faults that ended (removed, cleared or expired), in the order they ended."""
        return (await self._listing())[1]

    async def _listing(self) -> tuple[list[FaultRecord], list[FaultRecord]]:
        body = await self._call("GET", "/_readygate/faults", "list faults")
        if not isinstance(body, dict):
            raise BackendError(f"fault proxy {self.base_url}: list faults: expected an object")
        return (self._records(body.get("active"), "list faults"),
                self._records(body.get("history"), "list faults"))

    async def _call(self, method: str, path: str, action: str, *,
                    json: Any = None) -> Any:
        where = f"fault proxy {self.base_url}"
        try:
            resp = await self._client.request(method, self.base_url + path, json=json,
                                              timeout=self._timeout)
        except REQUEST_ERRORS as exc:
            raise BackendError(f"{where}: cannot {action}: {type(exc).__name__}: {exc}"
                               ) from exc
        message = _error_message(resp)
        if resp.status_code == 422:
            raise ConfigError(message)
        if resp.status_code == 404 and path.startswith("/_readygate/faults/"):
            # The proxy forgot the id: it was restarted, or the id never came from it.
            raise BackendError(f"{where}: cannot {action}: {message}")
        if resp.status_code >= 300:
            raise BackendError(f"{where}: cannot {action}: HTTP {resp.status_code}: {message}")
        try:
            return resp.json()
        except ValueError:
            raise BackendError(f"{where}: {action}: answer is not JSON") from None

    def _record(self, body: Any, action: str) -> FaultRecord:
        return _validated(_RECORD, body, f"fault proxy {self.base_url}: {action}")

    def _records(self, body: Any, action: str) -> list[FaultRecord]:
        return _validated(_RECORDS, body, f"fault proxy {self.base_url}: {action}")


def _error_message(resp: httpx.Response) -> str:
    """The proxy's one-line ``error``, or the start of whatever else came back."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    text = " ".join(resp.text.split())
    return text[:200] or f"HTTP {resp.status_code}"


_TCP_RECORD = TypeAdapter(TcpFaultRecord)
_TCP_RECORDS = TypeAdapter(list[TcpFaultRecord])


class TcpProxyClient:
    """Injects, lists and removes faults on one running TCP fault proxy (same control API)."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, *,
                 timeout: float = 5.0) -> None:
        self._http = FaultProxyClient(base_url, client, timeout=timeout)
        self.base_url = self._http.base_url

    async def health(self) -> dict[str, Any]:
        """The proxy's health document, with ``listen`` (the data address)."""
        return await self._http.health()

    async def listen_address(self) -> tuple[str, int]:
        """Where clients connect: the proxy's data host and port."""
        host, _, port = str((await self.health())["listen"]).rpartition(":")
        return host, int(port)

    async def inject(self, spec: TcpFaultSpec | Mapping[str, Any]) -> TcpFaultRecord:
        """Start a fault; ``ConfigError`` if the spec is invalid (here or at the proxy)."""
        try:
            parsed = parse_tcp_spec(spec)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        body = await self._http._call("POST", "/_readygate/faults", "inject a fault",
                                      json=parsed.model_dump(mode="json", exclude_none=True))
        return self._record(body, "inject a fault")

    async def remove(self, fault_id: str) -> TcpFaultRecord:
        """End a fault; a fault that already ended is returned as it ended."""
        body = await self._http._call("DELETE", f"/_readygate/faults/{fault_id}",
                                      f"remove fault {fault_id}")
        return self._record(body, f"remove fault {fault_id}")

    async def get(self, fault_id: str) -> TcpFaultRecord:
        """One fault, active or ended."""
        body = await self._http._call("GET", f"/_readygate/faults/{fault_id}",
                                      f"get fault {fault_id}")
        return self._record(body, f"get fault {fault_id}")

    async def clear(self) -> list[TcpFaultRecord]:
        """End every active fault."""
        body = await self._http._call("DELETE", "/_readygate/faults", "clear faults")
        return self._records(body, "clear faults")

    async def history(self) -> list[TcpFaultRecord]:
        """Faults that ended, in the order they ended."""
        body = await self._http._call("GET", "/_readygate/faults", "list faults")
        return self._records(body.get("history") if isinstance(body, dict) else None,
                             "list faults")

    def _record(self, body: Any, action: str) -> TcpFaultRecord:
        return _validated(_TCP_RECORD, body, f"tcp fault proxy {self.base_url}: {action}")

    def _records(self, body: Any, action: str) -> list[TcpFaultRecord]:
        return _validated(_TCP_RECORDS, body, f"tcp fault proxy {self.base_url}: {action}")
