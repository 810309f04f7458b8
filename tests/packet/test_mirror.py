"""Copies: mirror copies within the window count once, and a message from several sources
counts once per repetition; bounded memory."""

from __future__ import annotations

import pytest

from voiplog.packet.mirror import MirrorDedup, SourceCopies


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


# --- the same message from several sources ---------------------------------------


def test_a_copy_from_another_source_is_a_copy_whichever_comes_first():
    for first, second in (("capture", 7), (7, "capture")):
        copies = SourceCopies(window_us=5_000_000)
        assert not copies.copy(b"INVITE 1", first, 0)
        assert copies.copy(b"INVITE 1", second, 3_000)


def test_a_retransmission_every_source_sees_is_passed_on_once_more():
    copies = SourceCopies(window_us=5_000_000)
    given = [("capture", 0), (7, 2_000), ("capture", 500_000), (7, 501_000), (7, 1_500_000)]
    passed = [not copies.copy(b"INVITE 1", source, ts) for source, ts in given]
    # The HEP node's third copy is the third time the message came: passed on.
    assert passed == [True, False, True, False, True]


def test_a_source_late_by_a_retransmission_still_gives_copies():
    copies = SourceCopies(window_us=5_000_000)
    for ts in (0, 500_000, 1_500_000):
        assert not copies.copy(b"INVITE 1", "capture", ts)
    assert [copies.copy(b"INVITE 1", 7, 1_600_000 + i) for i in range(3)] == [True] * 3


def test_one_source_alone_passes_everything_on():
    copies = SourceCopies(window_us=5_000_000)
    assert not any(copies.copy(b"INVITE 1", "capture", ts) for ts in (0, 1, 2))


def test_other_messages_and_old_ones_are_not_copies():
    copies = SourceCopies(window_us=1_000)
    assert not copies.copy(b"a", "capture", 0)
    assert not copies.copy(b"b", 7, 1)
    assert not copies.copy(b"a", 7, 5_000)  # beyond two windows: forgotten


def test_source_copies_table_is_bounded():
    copies = SourceCopies(window_us=10**12, max_entries=100)
    for i in range(1000):
        copies.copy(i, "capture", i)
    assert len(copies) <= 200


@pytest.mark.parametrize(("window", "entries"), [(0, 10), (10, 0)])
def test_source_copies_bad_settings(window, entries):
    with pytest.raises(ValueError):
        SourceCopies(window, entries)
