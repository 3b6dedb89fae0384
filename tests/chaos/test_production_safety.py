"""Chaos refuses protected environments (any spelling) without --allow-production, and any
host that is neither loopback nor in target.chaos_allowed_hosts: one line, exit 3, before
anything is touched."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from chaos.config import Experiment, HttpFault, chaos_host_problem, experiment_urls, fault_urls
from chaos.injector import build_injector
from core.errors import ConfigError
from core.target import Target, is_loopback, url_host
from readygate.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
FAILING = ROOT / "chaos" / "experiments" / "failing-alert-never-fires.json"


def readygate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "readygate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CI": "true"})


def config_text(target: dict[str, Any], scenario: dict[str, Any] | None = None) -> str:
    scenario = scenario or {"fault": {"service": "storage", "ttl_s": 5}}
    return yaml.safe_dump({"target": target, "gates": {"g": {
        "scenario": {"probes": False, "baseline": {"min_duration_s": 0, "max_duration_s": 1},
                     **scenario}, "checks": []}}})


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --- protected environments -------------------------------------------------------------


@pytest.mark.parametrize("environment", ["Production", "PRODUCTION", " prod ", "Prd", "LIVE"])
def test_every_spelling_of_a_protected_environment_is_refused(
        environment: str, tmp_path: Path) -> None:
    config = tmp_path / "readygate.yaml"
    config.write_text(config_text({"environment": environment,
                                   "fault_proxies": {"storage": "http://127.0.0.1:9"}}))
    line = one_line(readygate("run", "g", "-c", str(config), "--out", "out", cwd=tmp_path))
    assert "chaos refused (pass --allow-production to override)" in line
    assert "target.protected_environments" in line


def test_allow_production_is_the_way_through(tmp_path: Path) -> None:
    # Past the safety check, the run reaches the (closed) proxy: exit 2, not 3.
    config = tmp_path / "readygate.yaml"
    config.write_text(config_text({"environment": "Production",
                                   "fault_proxies": {"storage": "http://127.0.0.1:9"}}))
    result = readygate("run", "g", "-c", str(config), "--out", "out", "--allow-production",
                       "--no-notify", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "chaos refused" not in result.stderr
    assert "cannot inject a fault" in result.stderr


def test_protected_environments_are_configurable_and_case_insensitive() -> None:
    qa = Target(environment="QA", protected_environments=["qa", "Production"])
    assert qa.is_protected()
    assert Target(environment="production", protected_environments=["qa"]).is_protected() \
        is False
    assert Target(environment="production").is_protected()
    assert Target(environment="staging").is_protected() is False
    assert Target(environment="demo").is_protected() is False


def test_a_custom_protected_environment_is_refused_by_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "readygate.yaml"
    config.write_text(config_text({"environment": "Eu-Prod",
                                   "protected_environments": ["eu-prod", "us-prod"],
                                   "fault_proxies": {"storage": "http://127.0.0.1:9"}}))
    line = one_line(readygate("run", "g", "-c", str(config), "--out", "out", cwd=tmp_path))
    assert "is Eu-Prod: chaos refused" in line


def test_an_empty_protected_environment_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("target: {protected_environments: [production, '']}\n", "c.yaml")
    assert str(err.value) == ("c.yaml:1 target.protected_environments: an environment name "
                              "must not be empty")


# --- hosts: loopback, or allowed ---------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://127.0.0.2:9", "http://[::1]:9",
                                 "http://localhost:9", "http://LOCALHOST.:9",
                                 "http://web.localhost:9", "http://u:p@127.0.0.1:9",
                                 "http://[::ffff:127.0.0.1]:9"])
def test_loopback_is_always_allowed(url: str) -> None:
    assert Target().chaos_allows(url_host(url)), url


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.10", "staging.example.com",
                                  "localhost.example.com", "0.0.0.0", "", "::"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)
    assert not Target().chaos_allows(host)


def test_the_allow_list_takes_names_addresses_and_subdomain_wildcards() -> None:
    target = Target(chaos_allowed_hosts=["Staging.Example.com", "10.0.0.5",
                                         "*.qa.example.com"])
    assert target.chaos_allows("staging.example.com")
    assert target.chaos_allows("10.0.0.5")
    assert target.chaos_allows("db.qa.example.com")
    assert not target.chaos_allows("qa.example.com")  # the wildcard is for subdomains
    assert not target.chaos_allows("example.com")
    assert not target.chaos_allows("staging.example.com.evil.net")


def test_an_allowed_host_written_as_a_url_is_a_config_error_with_the_fix() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("target: {chaos_allowed_hosts: ['https://staging.example.com:8443']}\n",
                     "c.yaml")
    assert str(err.value) == (
        "c.yaml:1 target.chaos_allowed_hosts: 'https://staging.example.com:8443' is not a "
        "host name or address (write 'staging.example.com'); give the host alone, or "
        "*.domain for its subdomains")


def test_a_staging_fault_proxy_without_the_allow_list_is_one_line_exit_3(
        tmp_path: Path) -> None:
    config = tmp_path / "staging.yaml"
    config.write_text(config_text({"environment": "staging", "fault_proxies": {
        "storage": "http://faults.staging.example.com:9000"}}))
    at = config.read_text().splitlines().index("        service: storage") + 1
    line = one_line(readygate("validate", "-c", config.name, cwd=tmp_path))
    assert line == (
        f"readygate: {config.name}:{at} gates.g.scenario.fault.service: chaos refused: "
        "target.fault_proxies.storage is on host faults.staging.example.com, which is not "
        "loopback and not in target.chaos_allowed_hosts (set target.chaos_allowed_hosts: "
        "[faults.staging.example.com] to allow faults there)")
    # `run` refuses the same way, before any probe or fault
    assert "target.chaos_allowed_hosts" in one_line(
        readygate("run", "g", "-c", str(config), "--out", "out", cwd=tmp_path))
    allowed = tmp_path / "allowed.yaml"
    allowed.write_text(config_text({"environment": "staging",
                                    "chaos_allowed_hosts": ["*.staging.example.com"],
                                    "fault_proxies": {
                                        "storage": "http://faults.staging.example.com:9000"}}))
    result = readygate("validate", "-c", str(allowed), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def fault_problem(target: dict[str, Any], fault: dict[str, Any]) -> str:
    text = config_text(target, {"fault": fault})
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml")
    return err.value.detail


def test_the_service_a_fault_acts_on_needs_the_allow_list_too() -> None:
    # a local fault proxy in front of a remote service: the fault reaches that service
    problem = fault_problem({"services": {"storage": "https://storage.example.com"},
                             "fault_proxies": {"storage": "http://127.0.0.1:9"}},
                            {"service": "storage", "ttl_s": 5})
    assert "target.services.storage is on host storage.example.com" in problem


def test_toxiproxy_and_command_faults_toward_remote_hosts_are_refused() -> None:
    toxi = fault_problem({"toxiproxy": {"url": "http://toxiproxy.internal:8474",
                                        "proxies": {"cache": "redis"}}},
                         {"kind": "toxiproxy", "service": "cache", "type": "latency",
                          "ttl_s": 5})
    assert "target.toxiproxy.url is on host toxiproxy.internal" in toxi
    command = fault_problem({"services": {"web": "https://web.staging.example.com"}},
                            {"kind": "command", "service": "web", "inject": "true",
                             "rollback": "true", "ttl_s": 5})
    assert "target.services.web is on host web.staging.example.com" in command


def test_process_faults_are_local_and_need_no_allow_list() -> None:
    target = Target(services={"worker": "https://worker.example.com"},
                    processes={"worker": {"pidfile": "/run/w.pid",
                                          "command_contains": "worker"}})
    config = parse_config(config_text(
        target.model_dump(mode="json", exclude_defaults=True),
        {"fault": {"kind": "process", "service": "worker", "ttl_s": 5}}), "c.yaml")
    assert config.gates["g"].scenario.fault is not None
    assert fault_urls(config.gates["g"].scenario.fault, config.target) == []


def test_experiment_targets_are_checked_before_the_run_starts(tmp_path: Path) -> None:
    config = tmp_path / "readygate.yaml"
    experiment = {"experiment": {"path": str(FAILING), "timeout_s": 30}}
    config.write_text(config_text({"services": {"web": "https://web.staging.example.com"}},
                                  experiment))
    line = one_line(readygate("run", "g", "-c", str(config), "--out", "out", cwd=tmp_path))
    assert line == (
        "readygate: target.chaos_allowed_hosts: chaos refused: target.services.web is on host "
        "web.staging.example.com, which is not loopback and not in target.chaos_allowed_hosts "
        "(set target.chaos_allowed_hosts: [web.staging.example.com] to allow faults there)")
    assert not (tmp_path / "out").exists()  # nothing ran


def test_experiment_configuration_urls_are_targets_backends_are_not() -> None:
    target = Target(services={"web": "http://127.0.0.1:8080"},
                    fault_proxies={"storage": "http://127.0.0.1:9000"},
                    chaos_allowed_hosts=["allowed.example.com"])
    ok = Experiment(path="x.json", configuration={"other_url": "https://allowed.example.com",
                                                  "count": 3})
    assert chaos_host_problem(experiment_urls(ok, target), target) is None
    bad = Experiment(path="x.json", configuration={"db_url": "http://db.prod.example.com"})
    problem = chaos_host_problem(experiment_urls(bad, target), target)
    assert problem is not None
    assert "scenario.experiment.configuration.db_url is on host db.prod.example.com" in problem


def test_the_demo_stacks_own_urls_are_always_allowed() -> None:
    from readygate.runner import with_stack

    class Urls:
        web, storage, proxy = "http://127.0.0.1:4001", "http://127.0.0.1:4002", \
            "http://127.0.0.1:4003"
        sink, prometheus, alertmanager = "http://127.0.0.1:4004", "http://127.0.0.1:4005", \
            "http://127.0.0.1:4006"

    config = with_stack(parse_config((ROOT / "readygate.yaml").read_text(),
                                     str(ROOT / "readygate.yaml")), Urls())
    fault = config.gates["release"].scenario.fault
    assert fault is not None and fault_urls(fault, config.target)
    assert chaos_host_problem(fault_urls(fault, config.target), config.target) is None


def test_the_injector_refuses_a_remote_host_without_contacting_it() -> None:
    async def inject() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            # 192.0.2.0/24 is TEST-NET-1: nothing answers there, and nothing is asked
            injector = build_injector(Target(fault_proxies={"storage": "http://192.0.2.1:9"}),
                                      client)
            assert injector is not None
            await injector.inject(HttpFault(service="storage", ttl_s=5))

    with pytest.raises(ConfigError, match=r"^target.chaos_allowed_hosts: chaos refused: "
                                          r"target.fault_proxies.storage is on host 192.0.2.1"):
        asyncio.run(asyncio.wait_for(inject(), 2))
