"""Deadlines of open calls and REGISTER chains, on packet time.

Strategy: one heap entry ``(deadline, sequence, key)`` per scheduling, checked
lazily when it falls due. Activity only ever pushes an item's deadline later,
so it is not rescheduled on every packet: the owner recomputes the deadline of
an item popped as due and schedules it again when that lies in the future. An
item remembers the sequence number of its latest entry (`heap_seq`); older
entries of it are stale and skipped.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar


class Scheduled(Protocol):
    """What the heap needs of an item: its key among the open items, and the
    sequence number of its latest entry (written by `DeadlineHeap.schedule`)."""

    call_id: str
    heap_seq: int


T = TypeVar("T", bound=Scheduled)


class DeadlineHeap(Generic[T]):
    """Lazy deadlines of the items of `open_items` (a mapping kept by the owner:
    an item is open while it is there under its `call_id`)."""

    __slots__ = ("_heap", "_open", "_seq")

    def __init__(self, open_items: Mapping[str, T]) -> None:
        self._open = open_items
        self._heap: list[tuple[int, int, str]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, item: T, deadline_us: int) -> None:
        """Give `item` the deadline `deadline_us`; its earlier entries go stale."""
        self._seq += 1
        item.heap_seq = self._seq
        heap = self._heap
        heapq.heappush(heap, (deadline_us, self._seq, item.call_id))
        if len(heap) > 4 * len(self._open) + 1024:
            # Stale entries wait for their (possibly distant) deadline to be
            # dropped; when they pile up, keep only each open item's current one.
            items = self._open
            heap[:] = [
                entry
                for entry in heap
                if (i := items.get(entry[2])) is not None and i.heap_seq == entry[1]
            ]
            heapq.heapify(heap)

    def pop_due(self, now_us: int) -> T | None:
        """The next open item whose latest entry is due at `now_us`, else None.

        The entry is taken off the heap: the caller closes the item, or
        schedules it again at its recomputed deadline.
        """
        heap = self._heap
        items = self._open
        while heap and heap[0][0] <= now_us:
            _, seq, key = heapq.heappop(heap)
            item = items.get(key)
            if item is not None and item.heap_seq == seq:
                return item
        return None
