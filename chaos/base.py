"""What the runner needs from chaos: a fault that was injected, and who injects it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from readygate.config import Fault


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


class FaultInjector(Protocol):
    """Injects and removes faults (the fault proxy, command hooks, ...)."""

    async def inject(self, fault: Fault) -> InjectedFault: ...

    async def remove(self, injected: InjectedFault) -> float: ...
