"""Mirror deduplication: copies within the window count once, bounded memory."""

from __future__ import annotations

import pytest

from voiplog.packet.mirror import MirrorDedup


def test_copy_within_the_window_is_seen():
    dedup = MirrorDedup(window_us=2_000)
    assert not dedup.seen(("udp", b"INVITE"), 1_000_000)
    assert dedup.seen(("udp", b"INVITE"), 1_000_500)
    assert dedup.seen(("udp", b"INVITE"), 1_001_999)  # a third copy, still within


@pytest.mark.parametrize("first", [0, 1_999, 3_999])
def test_copy_less_than_a_window_later_is_always_seen(first):
    dedup = MirrorDedup(window_us=2_000)
    dedup.seen(b"warm-up", 0)
    assert not dedup.seen(b"x", first)
    assert dedup.seen(b"x", first + 1_999)


def test_repeat_after_two_windows_is_new():
    dedup = MirrorDedup(window_us=2_000)
    assert not dedup.seen(b"x", 0)
    assert not dedup.seen(b"x", 4_000)  # a retransmission, not a mirror copy
    assert dedup.seen(b"x", 4_500)


def test_long_pause_forgets_everything():
    dedup = MirrorDedup(window_us=2_000)
    dedup.seen(b"x", 0)
    dedup.seen(b"y", 2_500)
    assert not dedup.seen(b"y", 10_000)
    assert len(dedup) == 1


def test_different_packets_are_not_copies():
    dedup = MirrorDedup(window_us=2_000)
    assert not dedup.seen(b"a", 0)
    assert not dedup.seen(b"b", 1)


def test_table_is_bounded():
    dedup = MirrorDedup(window_us=10**12, max_entries=100)
    for i in range(1000):
        dedup.seen(i.to_bytes(4, "big"), i)
    assert len(dedup) <= 200


@pytest.mark.parametrize(("window", "entries"), [(0, 10), (10, 0), (-1, 10)])
def test_bad_settings(window, entries):
    with pytest.raises(ValueError):
        MirrorDedup(window, entries)
