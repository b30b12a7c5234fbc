"""The API's time format and its memo for status records (shared/clocks.py)."""

from shared.clocks import IsoMemo, iso


def test_iso_memo_formats_again_whenever_the_time_moves() -> None:
    memo = IsoMemo()
    times = [None, 1764560000.0, 1764560000.0, 1764560000.0005, 1764560000.9995, None,
             1764560002.123, 0.0, 1764560002.123]
    assert [memo(epoch) for epoch in times] == [iso(epoch) for epoch in times]
    assert memo(1764560002.123) == "2025-12-01T03:33:22.123Z"
