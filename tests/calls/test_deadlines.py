"""The lazy deadline heap shared by the call and REGISTER trackers."""

from __future__ import annotations

from dataclasses import dataclass

from voiplog.calls._deadlines import DeadlineHeap


@dataclass
class _Item:
    call_id: str
    heap_seq: int = 0


def test_due_items_come_out_in_deadline_order_and_stale_entries_are_skipped():
    items = {key: _Item(key) for key in ("a", "b", "c")}
    heap = DeadlineHeap(items)
    heap.schedule(items["a"], 30)
    heap.schedule(items["b"], 10)
    heap.schedule(items["c"], 20)
    heap.schedule(items["b"], 40)  # b's deadline moved: its entry at 10 is stale
    assert heap.pop_due(5) is None
    assert heap.pop_due(35) is items["c"]
    assert heap.pop_due(35) is items["a"]
    assert heap.pop_due(35) is None
    assert heap.pop_due(40) is items["b"]
    assert len(heap) == 0


def test_closed_items_are_skipped():
    items = {key: _Item(key) for key in ("a", "b")}
    heap = DeadlineHeap(items)
    heap.schedule(items["a"], 10)
    heap.schedule(items["b"], 10)
    del items["a"]  # closed by its owner before its deadline
    assert heap.pop_due(10) is items["b"]
    assert heap.pop_due(10) is None


def test_equal_deadlines_come_out_in_scheduling_order():
    items = {key: _Item(key) for key in "zyx"}
    heap = DeadlineHeap(items)
    for key in "zyx":
        heap.schedule(items[key], 7)
    assert [heap.pop_due(7).call_id for _ in range(3)] == ["z", "y", "x"]


def test_stale_entries_are_compacted_when_they_pile_up():
    items = {"a": _Item("a")}
    heap = DeadlineHeap(items)
    for n in range(5000):
        heap.schedule(items["a"], 1_000_000 + n)
        assert len(heap) <= 4 * len(items) + 1024 + 1
    assert heap.pop_due(10**9) is items["a"]
    assert items["a"].heap_seq == 5000
    assert heap.pop_due(10**9) is None
