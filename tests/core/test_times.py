"""One reading of wire times for every backend (core.times)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from core.times import epoch_seconds, rfc3339, rfc3339_seconds

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize("text", [
    "2023-11-14T22:13:20Z", "2023-11-14t22:13:20z", "2023-11-14T22:13:20+00:00",
    "2023-11-15T00:13:20+02:00", "2023-11-14T22:13:20.000000000Z", " 2023-11-14T22:13:20Z ",
    # no zone: UTC, as backends mean it (never the machine's local zone)
    "2023-11-14T22:13:20", "2023-11-14 22:13:20",
])
def test_rfc3339_forms_read_as_the_same_instant(text: str) -> None:
    assert rfc3339_seconds(text) == pytest.approx(T0)


def test_nanosecond_fractions_are_cut_to_microseconds() -> None:
    assert rfc3339_seconds("2023-11-14T22:13:20.123456789Z") == pytest.approx(T0 + 0.123456)
    assert rfc3339_seconds("2023-11-14T22:13:20.5Z") == pytest.approx(T0 + 0.5)


def test_a_naive_time_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert rfc3339_seconds("2023-11-14T22:13:20") == pytest.approx(T0)
        assert rfc3339_seconds(dt.datetime(2023, 11, 14, 22, 13, 20)) == pytest.approx(T0)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("bad", [None, "", "  ", "garbage", "2023-13-45T00:00:00Z", 12, [], {}])
def test_absent_or_unreadable_is_none(bad: object) -> None:
    assert rfc3339_seconds(bad) is None


@pytest.mark.parametrize(("value", "want"), [
    (T0, T0), (int(T0), T0), (T0 * 1e3, T0), (T0 * 1e6, T0), (T0 * 1e9, T0),
    ("2023-11-14T22:13:20Z", T0),
])
def test_epoch_numbers_by_size_and_strings(value: object, want: float) -> None:
    assert epoch_seconds(value) == pytest.approx(want)


@pytest.mark.parametrize("bad", [True, math.nan, math.inf, None, "x"])
def test_epoch_refuses_non_times(bad: object) -> None:
    assert epoch_seconds(bad) is None


def test_writing_is_utc_with_z_and_reads_back() -> None:
    assert rfc3339(T0 + 0.25) == "2023-11-14T22:13:20.250000Z"
    assert rfc3339(T0 + 0.25, fraction=False) == "2023-11-14T22:13:20Z"
    assert rfc3339_seconds(rfc3339(T0 + 0.25)) == pytest.approx(T0 + 0.25)
