"""``/metrics`` of ``probe serve --workers N`` and ``--shard I/N``: every journey exactly once.

Each worker runs its own share of the journeys (:mod:`probes.sharding`) and keeps their
metrics in its own registry. The kernel hands a scrape to any worker (``SO_REUSEPORT``),
so the worker that gets it asks its siblings for their expositions over a private Unix
socket each (in a 0700 directory the supervisor made) and merges them
(:func:`probes.exposition.merge`): a journey's series come from the one worker that runs
it; process-wide series (the scheduler's lateness histogram) are summed. A sibling that
does not answer makes the scrape fail (503), so Prometheus records ``up == 0`` instead of
journeys silently missing.

Why not prometheus-client's multiprocess mode: it keeps counters, gauges and histograms
in mmap files per PID and merges them at scrape, but custom collectors (the latest-result
gauges, the info series) are not written to those files, gauges need a merge mode each,
files of exited workers stay until cleaned, and every scrape parses every worker's files
in the scraping process. Here the journeys are disjoint by construction, so a merge is a
concatenation, each worker renders its own part in parallel with the others, and nothing
is written to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import signal
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from probes.exposition import add_labels, families_without, merge, number

_LENGTH = struct.Struct(">Q")
_REQUEST = b"metrics\n"
_MAX_BYTES = 1 << 30


class WorkerUnavailable(Exception):
    """A sibling worker did not answer for its part of ``/metrics``."""


Render = Callable[[], bytes]
# The render child's niceness above its parent's: the loop wins the core when both want
# it (3:1), yet the child is not starved on a busy machine, where the kernel weighs each
# session (autogroup) by its runnable tasks and a nice-19 child got ~2 % of a core: a
# 15 s scrape (bench.scheduler_scale on a shared machine).
_CHILD_NICE = 5


def _read_child(fd: int, pid: int, timeout_s: float) -> bytes | None:
    """The child's length-prefixed answer, or None (it failed, or took too long)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    data = b"".join(chunks)
    if len(data) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(data[:_LENGTH.size])
    body = data[_LENGTH.size:]
    return body if len(body) == size else None


async def render_apart(render: Render, *, timeout_s: float = 30.0) -> bytes:
    """``render()`` in a forked child at the lowest CPU priority, or in a thread if that fails.

    A render of 1,000 journeys' series takes ~0.3 s of CPU. In a thread it shares the GIL
    with the event loop that starts the runs, so every run due during a scrape started
    late (bench.scheduler_scale --trace: 40 % of the late starts overlapped a render). A
    forked child has its own interpreter and a copy-on-write snapshot of the metrics; a
    little nicer than the loop, it mostly runs when the loop does not need the core (or
    on another core), and the kernel, not the GIL, preempts it when a run is due. Only
    for a process that serves nothing else: ``probe serve`` (``fork_render``).
    """
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return await asyncio.to_thread(render)
    if pid == 0:  # pragma: no cover - the child, which never returns
        code = 1
        try:
            os.close(read_fd)
            # The loop's signal wake-up pipe is shared with the parent: a signal here must
            # not reach the parent's loop as its own.
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            gc.disable()  # it lives for one render; collections would only cost time
            with contextlib.suppress(OSError):
                os.nice(_CHILD_NICE)
            body = render()
            view = memoryview(_LENGTH.pack(len(body)) + body)
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    answer: bytes | None = await asyncio.to_thread(_read_child, read_fd, pid, timeout_s)
    return answer if answer is not None else await asyncio.to_thread(render)


def _shared(parts: Sequence[str]) -> set[str]:
    # Families without a journey label are process-wide: every worker has them.
    return families_without(parts, "journey")


@dataclass
class Exposition:
    """How one worker answers ``/metrics``: its part, its siblings', and the fleet labels.

    ``labels`` (``shard``, ``location``) are added to every sample; ``sockets`` are every
    worker's socket by worker index (empty: a single process); ``gauges`` are extra
    series of this process (``readygate_shard_journeys`` ...) as (name, help, value);
    ``fork_render``: render in a forked child (:func:`render_apart`).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    worker: int = 0
    sockets: Sequence[Path] = ()
    timeout_s: float = 10.0
    gauges: Sequence[tuple[str, str, float]] = ()
    fork_render: bool = False
    _server: asyncio.AbstractServer | None = None

    async def local(self, render: Render) -> bytes:
        """This worker's own part (:func:`render_apart` with ``fork_render``)."""
        if self.fork_render:
            return await render_apart(render)
        return await asyncio.to_thread(render)

    async def start(self, render: Callable[[], bytes]) -> None:
        """Answer siblings' requests for this worker's part on this worker's socket."""
        if not self.sockets:
            return

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if await reader.readline() == _REQUEST:
                    body = await self.local(render)
                    writer.write(_LENGTH.pack(len(body)) + body)
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

        path = self.sockets[self.worker]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(answer, path=str(path))

    async def close(self) -> None:
        """Stop answering siblings."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _ask(self, index: int) -> str:
        path = self.sockets[index]
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    writer.write(_REQUEST)
                    await writer.drain()
                    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                    if size > _MAX_BYTES:
                        raise WorkerUnavailable(f"worker {index} answered {size} bytes")
                    return (await reader.readexactly(size)).decode()
                finally:
                    writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise WorkerUnavailable(f"worker {index} did not answer for its journeys' "
                                    f"metrics ({type(exc).__name__})") from None

    def _own_gauges(self) -> str:
        out = []
        for name, doc, value in self.gauges:
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n{name} {number(value)}\n")
        return "".join(out)

    async def page(self, render: Callable[[], bytes]) -> bytes:
        """The whole ``/metrics``: this worker's part and every sibling's, merged, labelled."""
        own = self.local(render)
        others = [self._ask(i) for i in range(len(self.sockets)) if i != self.worker]
        results = await asyncio.gather(own, *others, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        parts = [results[0].decode() if isinstance(results[0], bytes) else str(results[0]),
                 *(str(r) for r in results[1:])]
        text = merge(parts, shared=_shared(parts)) if len(parts) > 1 else parts[0]
        return add_labels(text + self._own_gauges(), self.labels).encode()
