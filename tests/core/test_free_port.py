"""``free_port`` picks ports nobody's next connection can take before the program binds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from core import procs
from core.procs import free_port


def test_ports_come_from_below_the_ephemeral_range_and_are_bindable() -> None:
    low = procs._ephemeral_low()
    ports = {free_port() for _ in range(50)}
    assert all(max(1024, low - procs._PICK_SPAN) <= p < low for p in ports), ports
    assert len(ports) > 40  # random, not one port handed to every caller
    for port in list(ports)[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    # a range of one port that is taken: the pick falls back to one the kernel gives
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        fake = tmp_path / "range"
        fake.write_text(f"{port + 1}\t60999\n")
        monkeypatch.setattr(procs, "_EPHEMERAL", fake)
        monkeypatch.setattr(procs, "_PICK_SPAN", 1)
        assert free_port() != port


def test_an_unreadable_range_means_the_linux_default(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setattr(procs, "_EPHEMERAL", tmp_path / "missing")
    assert procs._ephemeral_low() == 32768
    assert 16384 <= free_port() < 32768
