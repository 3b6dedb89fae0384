"""An evidence backend dying mid-run (Prometheus, Alertmanager, the sink) ends the run
``inconclusive`` with a reason naming it: never ``ready``, and not a confident ``not_ready``
either, since the failures may be the outage's doing. The kill comes from an event listener
on FaultInjected, through the stack that started the process."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from core.events import Event, EventBus, FaultInjected
from demo.stack import DemoStack, StackOptions
from readygate.config import Config, load_config
from readygate.runner import RunOptions, run_gate, with_stack
from readygate.selftest import selftest_config
from reports.model import Report
from scenarios.config import Gate
from tests.e2e.conftest import assert_all_stopped

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def short_config() -> Config:
    """The release gate with every wait cut short: an outage run only has to end."""
    config = selftest_config(load_config(ROOT / "readygate.yaml"), "release", fast=True)
    gate = config.gates["release"].model_dump(mode="python")
    gate["scenario"]["baseline"] = {"min_duration_s": 2, "max_duration_s": 10}
    for check in gate["checks"]:
        if check["signal"] == "no_alert":
            check["window_s"] = 2
        else:
            check["deadline_s"] = min(check["deadline_s"], 5)
    return config.model_copy(update={"gates": {"release": Gate.model_validate(gate)}})


def run_with_outage(component: str, out: Path) -> tuple[Report, list[int], int]:
    config = short_config()

    async def go() -> tuple[Report, list[int], int]:
        password = config.target.credentials.password
        assert password is not None
        stack = DemoStack(StackOptions(password=password.get_secret_value()),
                          Path(tempfile.mkdtemp(prefix="rg-outage-")))
        killed: list[int] = []

        def kill_on_fault(event: Event) -> None:
            if isinstance(event, FaultInjected) and not killed:
                killed.append(stack.kill_component(component))

        try:
            urls = await stack.start()
            report = await run_gate(with_stack(config, urls), "release",
                                    RunOptions(out_dir=out), bus=EventBus([kill_on_fault]))
        finally:
            stack.stop()
        return report, stack.pids(), killed[0]
    return asyncio.run(go())


@pytest.mark.parametrize("component", ["prometheus", "alertmanager", "sink"])
def test_a_backend_dying_mid_run_ends_inconclusive_naming_it(component: str,
                                                             tmp_path: Path) -> None:
    report, pids, killed = run_with_outage(component, tmp_path / "out")
    assert killed in pids
    assert report.verdict == "inconclusive", [(c.name, c.status, c.message)
                                              for c in report.checks]
    assert report.exit_code == 2
    assert report.reason is not None and f"{component} at http://127.0.0.1:" in report.reason
    assert "went away during the run" in report.reason
    # the checks that read the dead backend say they could not look, not that it was absent
    errored = [c for c in report.checks if c.status == "error"]
    if component != "alertmanager":  # the gate reads Alertmanager only to explain a miss
        assert errored, [(c.name, c.status, c.message) for c in report.checks]
        assert all("unreachable" in c.message or "could not" in c.message for c in errored), \
            [(c.name, c.message) for c in errored]
    assert_all_stopped(pids)
