"""What the runner needs from chaos: a fault that was injected, and who injects it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from chaos.config import Fault
from core.errors import ReadygateError


class FaultError(ReadygateError):
    """A fault could not be injected or rolled back (a hook failed, a target refused)."""


@dataclass
class InjectedFault:
    """A fault that is (or was) active, with when it started and ended."""

    fault_id: str
    service: str
    kind: str
    summary: str
    started_at: float
    expires_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # per kind: pid, toxic, output...


class FaultInjector(Protocol):
    """Injects and removes faults (the fault proxies, processes, command hooks, Toxiproxy)."""

    async def inject(self, fault: Fault) -> InjectedFault: ...

    async def remove(self, injected: InjectedFault) -> float: ...
