"""Scratch directories (core.scratch): a SIGKILLed run's directory, with its unscrubbed logs,
is removed at the next start; a live run's, an unmarked one and another user's are not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from core.scratch import MARKER, mark_owner, owner, scratch_dir, sweep_stale

ROOT = Path(__file__).resolve().parents[2]


def test_a_sigkilled_owners_directory_is_swept_and_a_live_one_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom core.scratch import scratch_dir\n"
         "p = scratch_dir('readygate-demo-')\n(p / 'web.log').write_text('password=pw')\n"
         "print(p, flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert child.stdout is not None
        dead = Path(child.stdout.readline().strip())
        assert (dead / MARKER).is_file() and (dead / "web.log").is_file()
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        mine = scratch_dir()
        assert mine.parent == tmp_path
        assert sweep_stale() == []  # the child still lives: nothing goes
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert sweep_stale() == [dead]
        assert not dead.exists() and mine.is_dir()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def test_a_reused_pid_is_not_its_owner(tmp_path: Path) -> None:
    reused = tmp_path / "readygate-demo-reused"
    reused.mkdir()
    me = owner()
    assert isinstance(me["start"], int)
    (reused / MARKER).write_text(json.dumps({**me, "start": me["start"] - 1}))
    rebooted = tmp_path / "readygate-demo-rebooted"
    rebooted.mkdir()
    (rebooted / MARKER).write_text(json.dumps({**me, "boot": "another-boot"}))
    live = tmp_path / "readygate-demo-live"
    live.mkdir()
    mark_owner(live)
    assert sorted(sweep_stale(tmp_path)) == [rebooted, reused]
    assert live.is_dir()


def test_unmarked_foreign_and_linked_directories_are_left_alone(tmp_path: Path) -> None:
    unmarked = tmp_path / "readygate-demo-unmarked"
    unmarked.mkdir()
    other = tmp_path / "someone-else"
    other.mkdir()
    (other / MARKER).write_text(json.dumps({"pid": 999_999_999, "start": 1}))
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / MARKER).write_text(json.dumps({"pid": 999_999_999, "start": 1}))
    (tmp_path / "readygate-demo-link").symlink_to(target)
    garbage = tmp_path / "readygate-demo-garbage"
    garbage.mkdir()
    (garbage / MARKER).write_text("not json")
    assert sweep_stale(tmp_path) == []
    assert unmarked.is_dir() and other.is_dir() and target.is_dir() and garbage.is_dir()


def test_the_demo_stack_marks_its_directory(tmp_path: Path) -> None:
    from demo.stack import DemoStack, StackOptions

    DemoStack(StackOptions(password="pw-scratch-1"), tmp_path)
    marker = json.loads((tmp_path / MARKER).read_text())
    assert marker["pid"] == os.getpid() and marker["start"] == owner()["start"]
