"""Process faults on a launcher that serves from a child: scope tree, group and pid, the
effect verified on real processes, and the safety refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import proctree
from chaos.base import FaultError
from chaos.config import ProcessFault
from chaos.process import ProcessFaultInjector, process_state
from core.errors import ConfigError
from core.target import ProcessTarget
from readygate.config import parse_config
from tests.fixtures.launcher import LAUNCHER_MARK, Launched, answers, gone, launch, wait_for

pytestmark = pytest.mark.anyio

IGNORES_TERM = textwrap.dedent('''
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(120)
''')


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    """A launcher in readygate's own process group, serving HTTP from its child."""
    with launch(tmp_path / "web") as service:
        yield service


@pytest.fixture
def launched_alone(tmp_path: Path) -> Iterator[Launched]:
    """The same launcher in a session and process group of its own."""
    with launch(tmp_path / "web", own_group=True) as service:
        yield service


def fault(action: str, scope: str, **extra: float) -> ProcessFault:
    return ProcessFault.model_validate({"kind": "process", "service": "web", "action": action,
                                        "scope": scope, "ttl_s": 60, **extra})


async def test_stop_with_scope_tree_pauses_the_serving_child_and_rollback_resumes(
        launched: Launched, tmp_path: Path) -> None:
    assert answers(launched.url)
    injector = ProcessFaultInjector(launched.targets(), log_dir=tmp_path / "logs")
    injected = await injector.inject(fault("stop", "tree"))
    assert process_state(launched.launcher.pid) == "T"
    assert process_state(launched.child) == "T"
    assert injected.detail["pids"] == sorted([launched.launcher.pid, launched.child])
    assert "1 descendant(s)" in injected.summary
    assert not answers(launched.url)  # the kernel accepts, nobody reads: the request times out
    await injector.remove(injected)
    assert process_state(launched.child) != "T"
    assert process_state(launched.launcher.pid) != "T"
    assert answers(launched.url)
    assert gone(injected.detail["watchdog_pid"])


async def test_a_paused_tree_is_resumed_at_the_ttl_without_readygate(
        launched: Launched) -> None:
    injector = ProcessFaultInjector(launched.targets())
    injected = await injector.inject(fault("stop", "tree", ttl_s=1.0))
    assert process_state(launched.child) == "T"
    # Nobody calls remove(): the detached watchdog resumes the launcher and its child.
    elapsed = wait_for(lambda: answers(launched.url), 8, "serving again after the TTL")
    assert elapsed < 5
    assert process_state(launched.launcher.pid) != "T"
    watchdog = injector._held[injected.fault_id].watchdog
    assert watchdog is not None
    assert watchdog.wait(5) == 0


async def test_kill_with_scope_pid_leaves_the_child_serving_and_reports_no_effect(
        launched: Launched) -> None:
    injector = ProcessFaultInjector(launched.targets())
    with pytest.raises(FaultError) as err:
        await injector.inject(fault("kill", "pid", verify_s=1.0))
    assert str(err.value).startswith(
        f"process fault on 'web' had no effect: pid {launched.child} (")
    assert "app-worker) still running 1s after SIGKILL; scope pid signals only PID " \
           f"{launched.launcher.pid} (use scope: tree)" in str(err.value)
    assert launched.launcher.wait(5) == -signal.SIGKILL  # the launcher did die...
    assert answers(launched.url)  # ...and the service never noticed


async def test_stop_with_scope_pid_on_a_launcher_has_no_effect_and_is_undone(
        launched: Launched) -> None:
    injector = ProcessFaultInjector(launched.targets())
    with pytest.raises(FaultError, match=rf"had no effect: pid {launched.child} .* still "
                                         r"running 0\.5s after SIGSTOP"):
        await injector.inject(fault("stop", "pid", verify_s=0.5))
    # Nothing is left paused by a fault that failed.
    assert process_state(launched.launcher.pid) != "T"
    assert not injector._held


async def test_kill_with_scope_tree_ends_launcher_and_child(launched: Launched) -> None:
    injector = ProcessFaultInjector(launched.targets())
    injected = await injector.inject(fault("kill", "tree"))
    assert launched.launcher.wait(5) == -signal.SIGKILL
    assert gone(launched.child)
    assert not answers(launched.url)
    await injector.remove(injected)  # nothing to undo; it must not fail


async def test_scope_group_stops_the_whole_group_and_rollback_resumes(
        launched_alone: Launched) -> None:
    pgid = os.getpgid(launched_alone.launcher.pid)
    assert pgid == launched_alone.launcher.pid != os.getpgrp()
    injector = ProcessFaultInjector(launched_alone.targets())
    injected = await injector.inject(fault("stop", "group"))
    assert injected.detail["pgid"] == pgid
    assert process_state(launched_alone.launcher.pid) == "T"
    assert process_state(launched_alone.child) == "T"
    assert not answers(launched_alone.url)
    await injector.remove(injected)
    assert answers(launched_alone.url)


async def test_scope_group_kill_ends_the_group(launched_alone: Launched) -> None:
    injector = ProcessFaultInjector(launched_alone.targets())
    await injector.inject(fault("kill", "group"))
    assert launched_alone.launcher.wait(5) == -signal.SIGKILL
    assert gone(launched_alone.child)


async def test_scope_group_refuses_readygates_own_group(launched: Launched) -> None:
    assert os.getpgid(launched.launcher.pid) == os.getpgrp()
    injector = ProcessFaultInjector(launched.targets())
    with pytest.raises(ConfigError, match=r"chaos refused: process group \d+ of PID \d+ is "
                                          r"readygate's own \(use scope: tree\)"):
        await injector.inject(fault("stop", "group"))
    assert process_state(launched.launcher.pid) != "T"
    assert answers(launched.url)


async def test_a_pidfile_naming_an_ancestor_of_readygate_is_refused(tmp_path: Path) -> None:
    parent = os.getppid()
    if parent <= 1:
        pytest.skip("the tests run directly under init: no ancestor to protect but PID 1")
    cmd = proctree.command_line(parent)
    assert cmd
    pidfile = tmp_path / "parent.pid"
    pidfile.write_text(str(parent))
    injector = ProcessFaultInjector(
        {"web": ProcessTarget(pidfile=str(pidfile), command_contains=cmd[:10])})
    with pytest.raises(ConfigError, match=rf"names PID {parent}, an ancestor of readygate"):
        await injector.inject(fault("stop", "tree"))


async def test_term_that_is_ignored_is_reported_and_not_escalated(tmp_path: Path) -> None:
    pidfile, script = tmp_path / "stubborn.pid", tmp_path / "stubborn.py"
    script.write_text(IGNORES_TERM)
    proc = subprocess.Popen([sys.executable, str(script), str(pidfile), LAUNCHER_MARK])
    try:
        wait_for(pidfile.exists, 10, "stubborn process started")
        injector = ProcessFaultInjector({"web": ProcessTarget(
            pidfile=str(pidfile), command_contains=LAUNCHER_MARK)})
        with pytest.raises(FaultError, match=rf"had no effect: pid {proc.pid} \(.*"
                                             rf"{LAUNCHER_MARK}\) still running 0\.5s after "
                                             r"SIGTERM$"):
            await injector.inject(fault("term", "tree", verify_s=0.5))
        assert proc.poll() is None  # no SIGKILL behind the user's back
    finally:
        proc.kill()
        proc.wait(5)


def test_scope_defaults_to_tree_and_a_bad_scope_is_a_config_error() -> None:
    assert fault("stop", "tree").scope == ProcessFault(kind="process", service="web").scope
    text = ("target:\n  processes:\n    web: {pidfile: /tmp/w.pid, command_contains: w}\n"
            "gates:\n  g:\n    scenario:\n"
            "      fault: {kind: process, service: web, scope: pgid}\n")
    with pytest.raises(ConfigError, match=r"^r\.yaml:7 gates\.g\.scenario\.fault\.scope: "):
        parse_config(text, "r.yaml")
