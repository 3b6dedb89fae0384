"""DemoStack.reconfigure: new knobs, rules and Alertmanager config on the running stack, same
ports, and a clean (scraped, quiet) state before it returns."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
import pytest

from core.errors import ConfigError
from demo.stack import DemoStack, StackOptions, default_rules_text
from readygate.selftest import DEFECTS
from tests.e2e.conftest import assert_all_stopped

pytestmark = pytest.mark.slow


def test_reconfigure_swaps_knobs_rules_and_routing_on_the_same_ports() -> None:
    no_rule = next(d for d in DEFECTS if d.key == "alert_rule_missing")
    nowhere = next(d for d in DEFECTS if d.key == "routing_to_nowhere")
    assert no_rule.rules is not None and nowhere.alertmanager is not None

    async def go() -> list[int]:
        stack = DemoStack(StackOptions(password="pw-Reconfigure-1"),
                          Path(tempfile.mkdtemp(prefix="rg-reconf-")))
        try:
            urls = await stack.start()
            old_pids = set(stack.pids())
            await stack.reconfigure(sabotage=("drop_route_label",),
                                    rules_text=no_rule.rules(default_rules_text()),
                                    alertmanager_config_text=nowhere.alertmanager())
            assert stack.urls == urls  # same ports: Prometheus and the proxy need nothing new
            assert len(set(stack.pids()) - old_pids) == 2  # web and storage restarted
            async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
                await client.get(urls.web + "/health/live")
                metrics = (await client.get(urls.web + "/metrics")).text
                series = [m for m in metrics.splitlines() if m.startswith("http_requests_total{")]
                assert series and all("route=" not in m for m in series), series
                groups = (await client.get(urls.prometheus + "/api/v1/rules")).json()
                names = {r["name"] for g in groups["data"]["groups"] for r in g["rules"]}
                assert "HighErrorRate" not in names and "ServiceDown" in names
                status = (await client.get(urls.alertmanager + "/api/v2/status")).json()
                assert "receiver: nowhere" in status["config"]["original"]
                # runbook links still point at the (same) web URL
                assert "web.readygate.invalid" not in str(groups)

            # back to the demo's own setup, and a rejected rules file changes nothing
            await stack.reconfigure()
            with pytest.raises(ConfigError, match="alert rules rejected"):
                await stack.reconfigure(rules_text="groups: [{name: x, rules: [{alert: A}]}]")
        finally:
            stack.stop()
        return stack.pids()

    assert_all_stopped(asyncio.run(go()))
