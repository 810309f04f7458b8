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
        assert copies.copy(b"INVITE 1", b"INVITE 1", first, 0) is None
        assert copies.copy(b"INVITE 1", b"INVITE 1", second, 3_000) == "source"


def test_a_retransmission_every_source_sees_is_passed_on_once_more():
    copies = SourceCopies(window_us=5_000_000)
    given = [("capture", 0), (7, 2_000), ("capture", 500_000), (7, 501_000), (7, 1_500_000)]
    passed = [copies.copy(b"INVITE 1", b"INVITE 1", source, ts) is None for source, ts in given]
    # The HEP node's third copy is the third time the message came: passed on.
    assert passed == [True, False, True, False, True]


def test_a_source_late_by_a_retransmission_still_gives_copies():
    copies = SourceCopies(window_us=5_000_000)
    for ts in (0, 500_000, 1_500_000):
        assert copies.copy(b"INVITE 1", b"INVITE 1", "capture", ts) is None
    late = [copies.copy(b"INVITE 1", b"INVITE 1", 7, 1_600_000 + i) for i in range(3)]
    assert late == ["source"] * 3


def test_one_source_alone_passes_its_retransmissions_on():
    copies = SourceCopies(window_us=5_000_000)
    assert [
        copies.copy(b"INVITE 1", b"INVITE 1", "capture", ts) for ts in (0, 500_000, 1_500_000)
    ] == [None] * 3


def test_one_source_giving_a_message_twice_within_milliseconds_gives_a_mirror_copy():
    copies = SourceCopies(window_us=5_000_000)
    given = [0, 300, 500_000, 501_000, 1_500_000, 1_509_999, 1_510_000 + 500_000]
    kinds = [copies.copy(b"INVITE 1", b"INVITE 1", "capture", ts) for ts in given]
    assert kinds == [None, "echo", None, "echo", None, "echo", None]
    # Another source's copies still count against what was passed on.
    assert copies.copy(b"INVITE 1", b"INVITE 1", 7, 2_100_000) == "source"


def test_the_same_bytes_on_other_addresses_within_milliseconds_are_a_copy():
    """The packet seen on both sides of a NAT (or two segments): other addresses,
    the same bytes, 1 ms apart. A relay's copy differs in its bytes (its Via)."""
    copies = SourceCopies(window_us=5_000_000)
    assert copies.copy((b"inside", b"INVITE 1"), b"INVITE 1", "capture", 0) is None
    assert copies.copy((b"outside", b"INVITE 1"), b"INVITE 1", "capture", 1_000) == "echo"
    assert copies.copy((b"outside", b"INVITE 1'"), b"INVITE 1'", "capture", 2_000) is None
    assert copies.copy((b"outside", b"INVITE 1"), b"INVITE 1", "capture", 600_000) is None


def test_other_messages_and_old_ones_are_not_copies():
    copies = SourceCopies(window_us=1_000)
    assert copies.copy(b"a", b"a", "capture", 0) is None
    assert copies.copy(b"b", b"b", 7, 1) is None
    assert copies.copy(b"a", b"a", 7, 5_000) is None  # beyond two windows: forgotten


def test_source_copies_table_is_bounded():
    copies = SourceCopies(window_us=10**12, max_entries=100)
    for i in range(1000):
        copies.copy(i, i.to_bytes(4, "big"), "capture", i)
    assert len(copies) <= 200


@pytest.mark.parametrize(("window", "entries", "echo"), [(0, 10, 0), (10, 0, 0), (10, 10, -1)])
def test_source_copies_bad_settings(window, entries, echo):
    with pytest.raises(ValueError):
        SourceCopies(window, entries, echo)
