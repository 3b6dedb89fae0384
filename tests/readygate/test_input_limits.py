"""Hostile and empty input through the real CLI: one line naming the file (and line), exit 3,
no traceback, and bounded memory (the child's peak RSS, from wait4, under 300 MB)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config import MAX_CONFIG_BYTES, MAX_DEPTH, load_yaml
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_KB = 300 * 1024


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    max_rss_kb: int


# Linux keeps a process's peak RSS across exec, and a child forked from this (large) test
# process starts as a copy of it: measured directly, every child would "peak" at pytest's
# own size. A small Python in between forks the CLI from itself and reports wait4's figure.
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[2:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
            "code = os.waitstatus_to_exitcode(status)\n"
            "sys.exit(code if code >= 0 else 128 - code)\n")


def readygate(*args: str, cwd: Path, timeout: float = 120.0) -> Ran:
    """The CLI in a grandchild whose own peak RSS (wait4) a small intermediate reports."""
    out, err, rss = cwd / "stdout.txt", cwd / "stderr.txt", cwd / "max_rss_kb.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, str(rss), sys.executable, "-m",
                               "readygate", *args], cwd=cwd, stdout=o, stderr=e,
                              env={**os.environ, "CI": "true"}, timeout=timeout, check=False)
    return Ran(proc.returncode, out.read_text(), err.read_text(), int(rss.read_text()))


def assert_one_line_exit_3(ran: Ran, starts: str, words: str) -> None:
    lines = ran.stderr.strip().splitlines()
    assert ran.code == 3, ran.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in ran.stderr, ran.stderr[-2000:]
    assert lines[0].startswith(f"readygate: {starts}"), lines[0]
    assert words in lines[0], lines[0]
    assert ran.max_rss_kb < RSS_LIMIT_KB, f"peak RSS {ran.max_rss_kb} KB"


def deep_flow(path: Path) -> None:
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")


def deep_block(path: Path) -> None:
    path.write_text("".join(" " * i + f"k{i}:\n" for i in range(3000)) + " " * 3000 + "x: 1\n")


def fifty_mb(path: Path) -> None:
    with path.open("w") as f:
        f.write("version: 1\ntarget:\n  services:\n")
        i = 0
        while f.tell() < 50 * 2**20:
            f.write("".join(f"    s{j}: http://127.0.0.1:{j % 60000 + 1}\n"
                            for j in range(i, i + 20000)))
            i += 20000


def many_keys_under_the_size_limit(path: Path) -> None:
    with path.open("w") as f:
        f.write("version: 1\ntarget:\n  services:\n")
        i = 0
        while f.tell() < MAX_CONFIG_BYTES - 2**20:
            f.write("".join(f"    s{j}: http://127.0.0.1:1\n" for j in range(i, i + 20000)))
            i += 20000


def binary(path: Path) -> None:
    path.write_bytes(b"version: 1\n" + bytes(range(256)) * 100)


def empty(path: Path) -> None:
    path.write_text("")


def only_a_comment(path: Path) -> None:
    path.write_text("# nothing here yet\n")


def only_a_name(path: Path) -> None:
    path.write_text("version: 1\ntarget: {name: shop}\n")


CONFIGS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (writer, what the line says, where it points)
    "empty": (empty, "nothing to run: the config defines no gates", ":"),
    "only-a-comment": (only_a_comment, "nothing to run", ":"),
    "only-a-name": (only_a_name, "nothing to run", ":"),
    "deep-flow": (deep_flow, f"nested deeper than {MAX_DEPTH} levels", ":1:"),
    # the mapping that is one level too deep starts on line 65
    "deep-block": (deep_block, f"nested deeper than {MAX_DEPTH} levels",
                   f":{MAX_DEPTH + 1}:"),
    "fifty-mb": (fifty_mb, "config file is larger than 10 MB", ":"),
    "many-keys": (many_keys_under_the_size_limit, "more than 100000 values", ":"),
    # bytes(range(256)) holds a newline before its first non-UTF-8 byte: line 3
    "binary": (binary, "cannot read config file: not UTF-8 text", ":3:"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hostile_or_empty_config_is_one_line_exit_3_in_bounded_memory(
        name: str, tmp_path: Path) -> None:
    write, words, where = CONFIGS[name]
    path = tmp_path / f"{name}.yaml"
    write(path)
    # file names relative to the working directory: as users type them, and as errors show
    ran = readygate("validate", "--config", path.name, cwd=tmp_path)
    assert_one_line_exit_3(ran, f"{path.name}{where}", words)
    assert ran.stdout == ""


def test_run_refuses_an_empty_config_too(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    # a library gate would otherwise "run" for 10 s and judge nothing
    ran = readygate("run", "uptime-slo", "--config", path.name, "--out", "out", cwd=tmp_path)
    assert_one_line_exit_3(ran, f"{path.name}:", "nothing to run")
    assert not (tmp_path / "out").exists()


def test_the_embedded_default_config_still_validates(tmp_path: Path) -> None:
    # no readygate.yaml in tmp_path: the bundled default, which `readygate demo` runs
    ran = readygate("validate", cwd=tmp_path)
    assert ran.code == 0, ran.stderr
    assert "ok (release" in ran.stdout


def rules_binary(path: Path) -> None:
    path.write_bytes(b"groups:\n" + bytes(range(256)) * 100)


RULES: dict[str, tuple[Callable[[Path], None] | None, str, str]] = {
    "binary": (rules_binary, "cannot read rules file: not UTF-8 text", ":3:"),
    "missing": (None, "rules file not found", ":"),
    "fifty-mb": (fifty_mb, "rules file is larger than 10 MB", ":"),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_demo_rules_that_cannot_be_rules_are_one_line_exit_3(name: str, tmp_path: Path) -> None:
    write, words, where = RULES[name]
    path = tmp_path / f"{name}.yml"
    if write is not None:
        write(path)
    # refused before the demo stack starts (no Prometheus, no services)
    ran = readygate("demo", "--rules", path.name, "--out", "out", cwd=tmp_path, timeout=60)
    assert_one_line_exit_3(ran, f"{path.name}{where}", words)


def test_demo_rules_that_is_a_directory_is_one_line_exit_3(tmp_path: Path) -> None:
    (tmp_path / "rules.d").mkdir()
    ran = readygate("demo", "--rules", "rules.d", "--out", "out", cwd=tmp_path, timeout=60)
    assert_one_line_exit_3(ran, "rules.d:", "cannot read rules file: it is a directory")


def test_a_binary_demo_rules_file_in_the_config_is_one_line_exit_3(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules_binary(rules)
    config = tmp_path / "readygate.yaml"
    config.write_text((ROOT / "readygate.yaml").read_text().replace(
        "journeys_file: demo/journeys.yaml", f"journeys_file: {ROOT / 'demo/journeys.yaml'}")
        + "\ndemo:\n  rules_file: rules.yml\n")
    ran = readygate("demo", "--config", config.name, "--out", "out", cwd=tmp_path, timeout=60)
    assert_one_line_exit_3(ran, f"{rules.name}:3:", "not UTF-8 text")


def test_the_loader_limits_hold_for_text_given_directly() -> None:
    # parse_model callers that read files themselves (journeys, scenario files) get them too
    with pytest.raises(ConfigError, match=r"^x.yaml: 10.5 MB of text: more than the 10 MB"):
        load_yaml("a: 1\n" + "#" * MAX_CONFIG_BYTES, "x.yaml")
    with pytest.raises(ConfigError, match=r"^x.yaml:1: nested deeper than 64 levels$"):
        load_yaml("a: " + "{b: " * 70 + "1" + "}" * 70, "x.yaml")
    # text libyaml's fast pre-scan cannot take is still one ConfigError, from PyYAML's reader
    with pytest.raises(ConfigError, match=r"^x.yaml: invalid YAML: unacceptable character"):
        load_yaml("a: \ud800\n", "x.yaml")
    # 64 levels of mappings and lists are fine, a scalar inside the deepest too
    data, _ = load_yaml("a: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1), "x.yaml")
    assert "a" in data
