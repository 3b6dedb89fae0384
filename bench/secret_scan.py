"""Benchmark: the secret canary on 100k log lines with 5 secrets (the secret_leak scan and the
copied-log scrub), with RE2 and with Python's ``re``.

Usage: .venv/bin/python -m bench.secret_scan [N_LINES] [REPEATS]   (default 100000, 3)
Plants each secret in a different encoding in a few lines and checks every one is found.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import redact
from gates.backends.types import LogLine
from gates.checks.logs import _Leak, _scan_page
from reports.writer import scrub_log

SECRETS = ['pä"ss\\wörd&%+ 1', "pw-Very-Secret-123", "tok_" + "Ab9" * 9, "hunter22",
           "Zx9-Qq81-lmno"]
PLANTED = ["url.quote_plus", "basic", "json.ascii", "raw", "hex"]
PAGE = 5000  # what the check reads per backend page


def lines(n: int) -> tuple[list[LogLine], list[str]]:
    """``n`` structured lines (as a backend returns them) and their JSON text; one leak per
    secret every n/10 lines, each secret in its own encoding."""
    rng = random.Random(7)
    out, text = [], []
    for i in range(n):
        fields: dict[str, Any] = {
            "ts": "2025-01-01T00:00:00.000+00:00", "level": "INFO", "service": "web",
            "message": f"GET /api/uploads/{rng.getrandbits(64):x} 200",
            "trace_id": f"{rng.getrandbits(128):032x}", "request_id": f"{rng.getrandbits(64):x}",
            "duration_ms": round(rng.random() * 100, 3), "user_agent": "python-httpx/0.27"}
        if i % (n // 10) == n // 20:
            k = (i // (n // 10)) % len(SECRETS)
            fields["message"] = "login " + redact.encodings(SECRETS[k], "demo")[PLANTED[k]]
        out.append(LogLine(body=fields["message"], service="web", level="INFO",
                           trace_id=fields["trace_id"], fields=fields))
        text.append(json.dumps(fields))
    return out, text


def best(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    """Time the scan and the scrub with each engine."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    page_lines, page_text = lines(n)
    log_text = "\n".join(page_text) + "\n"
    redact.register(*SECRETS)
    print(f"{n} log lines ({len(log_text) / 2**20:.1f} MiB as JSON), {len(SECRETS)} secrets, "
          f"best/median of {repeats}")
    registered = redact._canary
    for name, use_re2 in (("re2", True), ("re", False)):
        if use_re2 and not redact.HAVE_RE2:
            print("  re2: google-re2 is not installed")
            continue
        canary = redact.Canary(SECRETS, use_re2=use_re2)
        redact._canary = canary  # what scrub_log uses
        found: dict[int, _Leak] = {}

        def scan(canary: redact.Canary = canary, found: dict[int, _Leak] = found) -> None:
            found.clear()
            for at in range(0, n, PAGE):
                _scan_page(page_lines[at:at + PAGE], canary, found)

        lo, med = best(scan, repeats)
        assert sorted(found) == list(range(len(SECRETS))), sorted(found)
        leaked = sum(leak.lines for leak in found.values())
        print(f"  {name:<4} secret_leak scan  {lo:6.3f} s  {med:6.3f} s  "
              f"({n / lo / 1000:.0f}k lines/s; {leaked} leaking lines found, "
              f"{len(found)}/{len(SECRETS)} secrets)")
        lo, med = best(lambda: scrub_log(log_text), repeats)
        assert not canary.found(scrub_log(log_text))
        print(f"  {name:<4} copied-log scrub  {lo:6.3f} s  {med:6.3f} s")
    redact._canary = registered


if __name__ == "__main__":
    main()
