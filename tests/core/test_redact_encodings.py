"""The secret canary (core.redact): every encoding a system logs a secret in is found and
masked, at any offset of a base64 blob and split over two fields; ordinary text is left
alone; config refuses secrets too short to mask, naming the key."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import redact
from core.errors import ConfigError
from core.redact import Canary, encodings, find_leaks, joined

NASTY = 'pä"ss\\wörd&%+ 1€'  # quote, backslash, non-ASCII, &, %, +, space
SECRETS = [NASTY, "pw-Very-Secret-123", "tok_" + "Ab9" * 9, "hunter22", "p😀ss-astral"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("name", sorted(encodings(NASTY)))
def test_every_encoding_is_found_named_and_masked(secret: str, name: str) -> None:
    canary = Canary([secret])
    encoded = encodings(secret, "demo")[name]
    text = f'{{"level": "info", "msg": "login", "detail": "x={encoded};"}}'
    hits = canary.hits(text)
    assert hits, f"{name} form {encoded!r} not found"
    clean = canary.scrub(text)
    assert redact.MASK in clean and not canary.found(clean)
    # independent of the canary: no encoding of the secret survives literally
    for form in encodings(secret, "demo").values():
        assert form not in clean or form in text.replace(encoded, ""), (name, form)
    assert clean.startswith('{"level": "info", "msg": "login", "detail": "x=')


def test_hits_say_which_secret_and_which_encoding() -> None:
    canary = Canary(["first-secret", NASTY])
    forms = encodings(NASTY, "demo")
    text = (f"a first-secret b {forms['url.quote_plus']} c {forms['basic']} "
            f"d {forms['json.ascii']} e {forms['hex']} f {forms['html']}")
    found = [(h.secret, h.encoding) for h in canary.hits(text)]
    assert found == [(0, "raw"), (1, "url-encoded"), (1, "base64"), (1, "escaped"),
                     (1, "hex"), (1, "html-escaped")]


@pytest.mark.parametrize("offset", range(6))
@pytest.mark.parametrize("url", [False, True])
def test_base64_finds_the_secret_at_any_offset_of_a_blob(offset: int, url: bool) -> None:
    secret = NASTY
    encode = base64.urlsafe_b64encode if url else base64.b64encode
    blob = encode(os.urandom(offset) + secret.encode() + os.urandom(7)).decode()
    canary = Canary([secret])
    for text in (blob, blob.rstrip("="), f"Authorization: Basic {blob}"):
        hits = canary.hits(text)
        assert hits and hits[0].encoding.startswith("base64"), text
        # the whole blob is masked (its edges hold a few bits of the secret too)
        assert canary.scrub(text) in ("***", "Authorization: Basic ***")


def test_basic_header_of_user_and_secret_in_latin1_too() -> None:
    canary = Canary([NASTY])
    latin = base64.b64encode(f"demo:{NASTY}".encode("latin-1", errors="ignore")).decode()
    assert not NASTY.isascii()
    assert canary.found(f"Authorization: Basic {latin}") or "€" in NASTY  # € has no latin-1
    plain = "pässwörd-1"
    latin = base64.b64encode(f"demo:{plain}".encode("latin-1")).decode()
    assert Canary([plain]).scrub(f"Basic {latin}") == "Basic ***"


def test_mixed_and_nested_escaping() -> None:
    canary = Canary([NASTY])
    record = {"body": json.dumps({"username": "demo", "password": NASTY})}
    for text in (json.dumps(record), json.dumps(record, ensure_ascii=False),
                 json.dumps(json.dumps(record)), repr(record), repr(NASTY.encode())):
        assert canary.found(text), text
        assert not canary.found(canary.scrub(text))


def test_a_secret_split_over_two_fields_is_found_and_both_halves_masked() -> None:
    canary = Canary([NASTY])
    record = {"user": "demo", "pw_head": NASTY[:6], "pw_tail": NASTY[6:], "n": 3}
    assert not canary.found(json.dumps(record, ensure_ascii=False))  # not in the raw text
    assert canary.found(joined(record))
    clean = canary.scrub_data(record)
    assert clean == {"user": "demo", "pw_head": "***", "pw_tail": "***", "n": 3}
    # a secret inside one value is masked in place; the rest of the value stays
    assert canary.scrub_data({"m": f"login password={NASTY} ok"}) == \
        {"m": "login password=*** ok"}


def test_keys_and_dataclasses_are_scrubbed_and_clean_data_is_not_copied() -> None:
    @dataclass(frozen=True)
    class Inner:
        message: str
        evidence: dict[str, Any] = field(default_factory=dict)

    canary = Canary([NASTY])
    data = [Inner("ok", {"sample": "fine"}), ("a", "b")]
    assert canary.scrub_data(data) is data
    dirty = [Inner(f"pw {NASTY}", {NASTY: [f"x{NASTY}"]}), ("a", NASTY)]
    assert canary.scrub_data(dirty) == [Inner("pw ***", {"***": ["x***"]}), ("a", "***")]


def test_ordinary_text_is_left_alone() -> None:
    canary = Canary(SECRETS)
    text = ("GET /api/uploads/9f86d081884c7d659a2feaa0c55ad015 200 user=demo "
            "password=*** trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "
            "Authorization: Basic ZGVtbzpvdGhlci1wYXNzd29yZA== "
            f"almost={NASTY[:-1]} {SECRETS[1][:-1]}")
    assert canary.hits(text) == []
    assert canary.scrub(text) == text


@settings(max_examples=150, deadline=None)
@given(secret=st.text(min_size=4, max_size=24).filter(lambda s: "\0" not in s),
       name=st.sampled_from(sorted(encodings("x"))))
def test_any_secret_in_any_encoding_is_masked(secret: str, name: str) -> None:
    encoded = encodings(secret, "u")[name]
    canary = Canary([secret])
    assert canary.found(f"<{encoded}>")
    assert not canary.found(canary.scrub(f"<{encoded}>"))


def test_find_leaks_uses_every_encoding() -> None:
    assert find_leaks(encodings(NASTY)["url.quote"], [NASTY]) == [NASTY[:2] + "***"]
    assert find_leaks("nothing here", [NASTY]) == []


def test_register_refuses_short_values_and_scrubs_registered_ones_in_every_encoding() -> None:
    secret = "reg-" + os.urandom(6).hex() + '"ä'
    redact.register(secret, "abc", "", None)
    assert secret in redact.registered() and "abc" not in redact.registered()
    text = f"{encodings(secret)['url.quote']} {encodings(secret)['basic']} abc"
    assert redact.scrub(text) == "*** Basic *** abc"
    assert redact.too_short("abc") and not redact.too_short("") and not redact.too_short("abcd")


# -- config refuses secrets too short to mask -------------------------------------------------

def test_config_refuses_a_short_secret_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from readygate.config import parse_config

    monkeypatch.setenv("RG_SHORT_PW", "abc")
    text = ("version: 1\ntarget:\n  name: x\n  credentials:\n    username: demo\n"
            "    password: ${RG_SHORT_PW}\n")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "short.yaml")
    assert str(err.value).startswith("short.yaml:6 target.credentials.password: secret is "
                                     "shorter than 4 characters")
    monkeypatch.setenv("RG_SHORT_PW", "abcd")
    assert "abcd" in parse_config(text, "ok.yaml").secrets()


@pytest.mark.parametrize(("yaml_text", "where"), [
    ("backends:\n  sink:\n    url: http://127.0.0.1:9\n    token: xyz\n", ":5 backends.sink.token"),
    ("notify:\n  slack:\n    token: ab\n    channel: '#c'\n", ":4 notify.slack.token"),
])
def test_every_secret_field_is_checked(yaml_text: str, where: str) -> None:
    from readygate.config import parse_config

    with pytest.raises(ConfigError, match="shorter than 4 characters") as err:
        parse_config("version: 1\n" + yaml_text, "c.yaml")
    assert str(err.value).startswith("c.yaml" + where), str(err.value)


def test_a_journeys_file_refuses_a_short_secret(tmp_path: Path) -> None:
    from probes.spec import load_journeys

    path = tmp_path / "journeys.yaml"
    path.write_text("version: 1\njourneys:\n  j:\n    secrets: {api_key: k1}\n"
                    "    steps:\n      - {url: 'http://127.0.0.1:9/x?k={{api_key}}'}\n")
    with pytest.raises(ConfigError, match="shorter than 4 characters") as err:
        load_journeys(path)
    assert f"{path}:4 journeys.j.secrets.api_key" in str(err.value)


def test_validate_counts_distinct_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from readygate.cli import main

    monkeypatch.setenv("RG_COUNT_PW", "pw-count-1234")
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\ntarget:\n  name: x\n  services: {web: "
                      "'http://demo:${RG_COUNT_PW}@127.0.0.1:9'}\n  credentials:\n"
                      "    username: demo\n    password: ${RG_COUNT_PW}\n"
                      "backends:\n  sink: {url: 'http://127.0.0.1:9'}\n")
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # the password (in the URL and in credentials) and the URL's user:password
    assert "2 secret(s) redacted" in out, out
