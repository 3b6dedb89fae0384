"""The sink bounds what one request may make it hold: a body over the limit, declared or
streamed, and a compressed body that inflates past it (a gzip bomb) are answered 413, and
the sink keeps serving."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest

from sink.formats import MAX_BODY_BYTES, BadPayload, TooLarge, decompress
from tests.sink.conftest import Sink


def test_decompress_stops_at_the_limit_for_every_encoding() -> None:
    bomb = b"\0" * (4 * 1024 * 1024)
    for enc, packed in (("gzip", gzip.compress(bomb)), ("deflate", zlib.compress(bomb))):
        assert decompress(packed, enc, limit=len(bomb)) == bomb
        with pytest.raises(TooLarge):
            decompress(packed, enc, limit=len(bomb) - 1)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    packed = raw.compress(b"x" * 1000) + raw.flush()
    assert decompress(packed, "deflate", limit=1000) == b"x" * 1000


def test_every_gzip_member_is_read_and_a_truncated_body_is_refused() -> None:
    two = gzip.compress(b"hello ") + gzip.compress(b"world")
    assert decompress(two, "gzip") == b"hello world"
    with pytest.raises(BadPayload):
        decompress(gzip.compress(b"x" * 10_000)[:-12], "gzip")


def test_the_sink_answers_413_to_a_gzip_bomb_and_a_large_body(sink: Sink) -> None:
    bomb = gzip.compress(b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}")
    assert len(bomb) < 1024 * 1024
    with httpx.Client(base_url=sink.url, timeout=30, trust_env=False) as client:
        r = client.post("/v1/traces", content=bomb, headers={
            "content-type": "application/json", "content-encoding": "gzip"})
        assert r.status_code == 413, r.text
        assert "over" in r.json()["error"]

        def chunks() -> object:
            piece = b" " * (1024 * 1024)
            for _ in range(MAX_BODY_BYTES // len(piece) + 2):
                yield piece

        r = client.post("/v1/logs", content=chunks(),  # type: ignore[arg-type]
                        headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert client.get("/-/healthy").status_code == 200
