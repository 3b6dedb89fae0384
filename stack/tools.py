"""Small pieces every stack needs: durations, ports, binaries, promtool/amtool output, files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigError, EnvironmentProblem
from core.procs import free_port as free_port  # stack.base looks it up here (tests swap it)

# (binary, Debian package) for every external tool a stack runs.
BINARIES: dict[str, str] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}


def duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration string: ``1s``, ``250ms``."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def require_binary(name: str) -> str:
    """Path of an external tool, or ``EnvironmentProblem`` saying which package to install."""
    path = shutil.which(name)
    if path is None:
        package = BINARIES.get(name, name)
        raise EnvironmentProblem(f"{name} not found: install it with: apt-get install {package}")
    return path


def first_error_line(output: str) -> str:
    """The first error of promtool/amtool output: the text after ``FAILED:``, or the next line."""
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if "FAILED:" in line:
            rest = line.split("FAILED:", 1)[1].strip()
            if rest:
                return rest
            following = [nxt for nxt in lines[i + 1:] if nxt]
            if following:
                return following[0]
    meaningful = [line for line in lines if line and not line.startswith("Checking ")]
    return meaningful[0] if meaningful else "unknown error"


_POSITION = re.compile(r"^(?P<line>\d+):\d+: (?P<rest>.*)$")
_YAML_LINE = re.compile(r"\bline (?P<line>\d+): ")


def tool_error(output: str, what: str, paths: Sequence[str] = (), *,
               key: str | None = None) -> ConfigError:
    """promtool/amtool's first complaint as one ConfigError line naming the file and line.

    The file is the one of ``paths`` the tool names (else the only one); the line comes
    from the tool's own ``FILE: 5:15:`` or YAML ``line 6:`` where it gives one. An error
    that continues on indented lines (``yaml: unmarshal errors:``) keeps its first
    continuation.
    """
    lines = [line.rstrip() for line in output.splitlines()]
    first = first_error_line(output)
    for i, line in enumerate(lines):
        if first.endswith(":") and line.strip().endswith(first):
            nxt = next((n.strip() for n in lines[i + 1:] if n.strip()), "")
            first = f"{first} {nxt}".strip()
            break
    path = paths[0] if len(paths) == 1 else None
    for candidate in sorted(paths, key=len, reverse=True):
        if first.startswith(candidate + ": "):
            path, first = candidate, first[len(candidate) + 2:]
            break
    line_no: int | None = None
    position = _POSITION.match(first)
    if position is not None:
        line_no, first = int(position["line"]), position["rest"]
    else:
        yaml_line = _YAML_LINE.search(first)
        if yaml_line is not None:
            line_no = int(yaml_line["line"])
    return ConfigError(f"{what} rejected: {first}", path=path, line=line_no, key=key)


async def run_check(argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    """Run a config checker; return its exit code and stderr followed by stdout."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    return proc.returncode or 0, err.decode(errors="replace") + out.decode(errors="replace")


async def run_all(*coros: Coroutine[Any, Any, None]) -> None:
    """Run coroutines concurrently; on the first failure cancel the rest and raise that error."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write via rename, so file_sd (and Prometheus' reload) never reads a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    if mode is not None:
        # created with the mode: a secret is never readable by others, not even briefly
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def file_sd_targets(url: str, labels: dict[str, str] | None = None) -> str:
    """A file_sd JSON document with one target (host:port of ``url``)."""
    return json.dumps([{"targets": [urlsplit(url).netloc], "labels": labels or {}}])
