"""A run that uses no Google Cloud, Datadog or Grafana backend never imports their client
libraries (Google's alone ~0.7 s and ~45 MiB): the registry and the checks load them on first
use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_roof_imports_no_google_client_library_until_a_gcloud_backend_is_built() -> None:
    code = ("import sys, gates.backends.registry, gates.checks, readygate.runner, readygate.cli\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(\n"
            "    ('google.cloud', 'grpc', 'datadog_api_client', 'grafana_client')))\n"
            "print(len(heavy), heavy[:5])\n"
            "from gates.backends.config import SignalBackend\n"
            "from gates.backends.registry import build\n"
            "import httpx\n"
            "build('traces', SignalBackend(kind='gcloud', project_id='p', token='t0k3n-x'),\n"
            "      httpx.AsyncClient(), None)\n"
            "print(any(m.startswith('google.cloud') for m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("0 "), first
    assert second == "True"
