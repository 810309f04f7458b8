"""Who held an address when: an in-memory interval index of leases, for the hot path.

Strategy. A lease is an address or prefix, a validity interval and an owner
(subscriber id, account, access line). Intervals are half-open, [start, end):
at the very microsecond a lease ends, the next holder's lease (starting then)
is the one found. Leases are kept per (IP version, prefix length) in sorted
arrays: the distinct network numbers, and for each one its intervals in start
order, so that a lookup is one bisection over the networks and, when a network
has several intervals, one over its starts. Owners are interned and packed as
text in one buffer. IPv6 prefixes (and any IPv4 prefix shorter than /32) are
found by longest match: the most specific network holding a lease at that time.

Per network the intervals are kept disjoint. Touching or overlapping intervals
of one owner (renewals) merge into one; where two owners overlap, the later
start takes the address over and the earlier lease is cut short there (counted
in `overlaps`). New leases collect in a small pending table, searched as well,
and are merged into the arrays in batches: a merge costs time in proportion to
the whole index (seconds for a million leases), so batches grow with it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from voiplog.enrich._address import (
    bits,
    format_network,
    parse_address,
    parse_network,
)
from voiplog.enrich._time import FOREVER, format_time

if TYPE_CHECKING:
    from voiplog.enrich.lease_files import LeaseRow

_NONE = ""  # an absent owner field in the packed buffer (empty fields are absent too)
_SEP = "\x1f"
_MIN_BATCH = 65_536


class Owner(NamedTuple):
    """Who holds a lease."""

    subscriber_id: str | None
    account: str | None = None
    access_line: str | None = None


class Lease(NamedTuple):
    """One validity interval of one address or prefix. `end_us` None: still held.

    A named tuple rather than a dataclass: one is made per lookup on the hot
    path, and a tuple is made in a third of the time.
    """

    version: int
    prefixlen: int
    value: int  # network address as an integer
    start_us: int
    end_us: int | None
    subscriber_id: str | None
    account: str | None
    access_line: str | None
    source: str | None = None
    attributes: dict | None = None  # what the source said beyond the owner (RADIUS NAS...)

    @property
    def network(self) -> str:
        return format_network(self.version, self.prefixlen, self.value)

    @property
    def owner(self) -> Owner:
        return Owner(self.subscriber_id, self.account, self.access_line)

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "start": format_time(self.start_us),
            "end": format_time(self.end_us),
            "subscriber_id": self.subscriber_id,
            "account": self.account,
            "access_line": self.access_line,
            "source": self.source,
            **({"attributes": self.attributes} if self.attributes else {}),
        }


# Lease(...) goes through a Python-level __new__; the hot path builds the tuple directly.
_new_tuple = tuple.__new__


class _Owners:
    """Owners packed as text in one buffer; an owner is its number.

    New owners wait in a list until the next merge packs them (`seal`), so that
    adding one never copies the buffer.
    """

    def __init__(self) -> None:
        self._packed = ""
        self._offsets = array("Q", [0])
        self.sealed = 0  # owners in _packed
        self._text: list[str] = []  # owners sealed + i, not packed yet
        self._numbers: dict[Owner, int] = {}  # recent owners, for sharing numbers

    def number(self, owner: Owner) -> int:
        found = self._numbers.get(owner)
        if found is not None:
            return found
        fields = (owner.subscriber_id, owner.account, owner.access_line)
        self._text.append(_SEP.join(_NONE if f is None else f.replace(_SEP, " ") for f in fields))
        number = self.sealed + len(self._text) - 1
        if len(self._text) >= _MIN_BATCH:
            self.seal()  # a million small strings would outlive themselves as fragmentation
        self._numbers[owner] = number
        return number

    def seal(self) -> None:
        if self._text:
            offsets = self._offsets
            for text in self._text:
                offsets.append(offsets[-1] + len(text))
            self._packed += "".join(self._text)
            self.sealed += len(self._text)
            self._text.clear()
        self._numbers.clear()

    def raw(self, number: int) -> str:
        if number >= self.sealed:
            return self._text[number - self.sealed]
        return self._packed[self._offsets[number] : self._offsets[number + 1]]

    def get(self, number: int) -> Owner:
        sub, account, line = self.raw(number).split(_SEP)
        return Owner(sub or None, account or None, line or None)

    def same(self, a: int, b: int) -> bool:
        return a == b or self.raw(a) == self.raw(b)

    def memory_bytes(self) -> int:
        return len(self._packed) + self._offsets.itemsize * len(self._offsets)


class _Table:
    """The leases of one (version, prefix length): sorted, disjoint per network.

    Most networks have one interval: its start, end and owner sit beside each
    other in `rec`, so that a lookup reads one place rather than one per field
    (memory latency, not arithmetic, is most of a lookup's time). A network
    with several intervals points from `rec` to its run in `multi_starts`
    (bisected) and `multi_rest`.
    """

    __slots__ = ("base", "buckets", "count", "keys", "multi_rest", "multi_starts", "rec", "shift")

    def __init__(self, wide: bool) -> None:
        # keys[buckets[b] : buckets[b + 1]] are those with (key - base) >> shift == b:
        # about one where addresses are dense, so that most lookups read the key
        # there instead of bisecting (4 to 8 bytes a network).
        self.base = 0
        self.shift = 0
        self.buckets = array("I", [0])
        # Network numbers wider than 64 bits (IPv6 prefixes longer than /64) stay ints.
        self.keys: array | list[int] = [] if wide else array("Q")
        # Three per network: (start, end, owner << 16 | source) of its one interval,
        # or (first, last + 1, -1): its intervals in multi_starts / multi_rest.
        self.rec = array("q")
        self.multi_starts = array("q")
        self.multi_rest = array("q")  # two per interval: end, owner << 16 | source
        self.count = 0  # intervals

    def __len__(self) -> int:
        return self.count

    def intervals(self) -> Iterator[tuple[int, int, int, int, int]]:
        """(key, start, end, owner, source) of every interval, in order."""
        rec, starts, rest = self.rec, self.multi_starts, self.multi_rest
        for i, key in enumerate(self.keys):
            tag = rec[3 * i + 2]
            if tag >= 0:
                yield key, rec[3 * i], rec[3 * i + 1], tag >> 16, tag & 0xFFFF
                continue
            for j in range(rec[3 * i], rec[3 * i + 1]):
                tag = rest[2 * j + 1]
                yield key, starts[j], rest[2 * j], tag >> 16, tag & 0xFFFF


class _Columns:
    """Leases as parallel arrays, for merging: compact where a list of tuples is not."""

    def __init__(self, wide: bool) -> None:
        self.keys: array | list[int] = [] if wide else array("Q")
        self.starts = array("q")
        self.ends = array("q")
        self.owners = array("I")
        self.sources = array("H")

    def __len__(self) -> int:
        return len(self.starts)

    def append(self, key: int, start: int, end: int, owner: int, source: int) -> None:
        self.keys.append(key)
        self.starts.append(start)
        self.ends.append(end)
        self.owners.append(owner)
        self.sources.append(source)

    def extend(self, other: _Columns) -> None:
        self.keys.extend(other.keys)
        self.starts.extend(other.starts)
        self.ends.extend(other.ends)
        self.owners.extend(other.owners)
        self.sources.extend(other.sources)

    def extend_table(self, table: _Table) -> None:
        for key, start, end, owner, source in table.intervals():
            self.append(key, start, end, owner, source)

    def sorted_entries(self) -> Iterator[tuple[int, int, int, int, int]]:
        """Entries by network and start; of equal ones, the one added first first.

        Sorted as single integers (network, start, position) rather than tuples:
        a third of the memory, and faster.
        """
        keys, starts, ends, owners, sources = (
            self.keys,
            self.starts,
            self.ends,
            self.owners,
            self.sources,
        )
        width = len(starts).bit_length()
        mask = (1 << width) - 1
        bias = 1 << 63  # starts may be negative
        order = [
            ((k << 64 | (t + bias)) << width) | i
            for i, (k, t) in enumerate(zip(keys, starts, strict=True))
        ]
        order.sort()
        for code in order:
            i = code & mask
            yield keys[i], starts[i], ends[i], owners[i], sources[i]


_BUCKET_SIZE = 1  # networks per bucket, on average over the span of the keys


def _bucket(table: _Table) -> None:
    """Index the sorted keys by their high bits: buckets[b] is the first key of bucket b.

    A direct-address array (a bucket per 2**shift network numbers from the
    first), sized to about one bucket per _BUCKET_SIZE networks, so a lookup
    reads two neighbouring integers instead of hashing into a dict.
    """
    keys = table.keys
    if not keys:
        return
    base = keys[0]
    span = keys[-1] - base
    wanted = max(1, len(keys) // _BUCKET_SIZE)
    shift = max(0, span.bit_length() - wanted.bit_length())
    count = (span >> shift) + 1
    buckets = array("I", [0]) * (count + 1)
    bucket = 0
    for i, key in enumerate(keys):
        b = (key - base) >> shift
        while bucket < b:
            bucket += 1
            buckets[bucket] = i
    while bucket < count:
        bucket += 1
        buckets[bucket] = len(keys)
    table.base = base
    table.shift = shift
    table.buckets = buckets


class LeaseIndex:
    """Leases by address or prefix and time; `lookup(ip, t)` gives the lease held then."""

    def __init__(self) -> None:
        self._owners = _Owners()
        self._sources: list[str | None] = [None]
        self._source_numbers: dict[str | None, int] = {None: 0}
        self._tables: dict[tuple[int, int], _Table] = {}
        # version -> [(bits to shift away, prefix length, arrays of the table or None)],
        # most specific first
        self._search: dict[int, list[tuple[int, int, tuple | None]]] = {4: [], 6: []}
        self._pending: dict[tuple[int, int], _Columns] = {}
        # The same pending leases by (version, prefix length, network), for lookups.
        self._pending_keys: dict[tuple[int, int, int], list[tuple[int, int, int, int, int]]] = {}
        self._pending_count = 0
        self._auto_compact = True
        self._size = 0
        self.overlaps = 0  # leases of one network by two owners at once, cut short

    def __len__(self) -> int:
        """Intervals held (after merging renewals), pending ones included."""
        return self._size + self._pending_count

    # -- adding --------------------------------------------------------------

    def add(
        self,
        network: str | tuple[int, int, int],
        start_us: int,
        end_us: int | None,
        owner: Owner,
        source: str | None = None,
    ) -> None:
        """Add a lease; `network` as text or as (version, prefix length, integer)."""
        if isinstance(network, str):
            network = parse_network(network)
        version, plen, value = network
        end = FOREVER if end_us is None else end_us
        if end <= start_us:
            raise ValueError("a lease must end after it starts")
        number = self._source_numbers.get(source)
        if number is None:
            if len(self._sources) >= 65_535:
                raise ValueError("too many lease sources")
            number = self._source_numbers[source] = len(self._sources)
            self._sources.append(source)
        key = value >> (bits(version) - plen)
        owner_number = self._owners.number(owner)
        pending = self._pending.get((version, plen))
        if pending is None:
            pending = self._pending[(version, plen)] = _Columns(wide=plen > 64)
            if (version, plen) not in self._tables:
                self._update_search()
        pending.append(key, start_us, end, owner_number, number)
        if self._auto_compact:
            entry = (key, start_us, end, owner_number, number)
            self._pending_keys.setdefault((version, plen, key), []).append(entry)
        self._pending_count += 1
        if self._auto_compact and self._pending_count > max(_MIN_BATCH, self._size // 8):
            self.compact()

    def load(self, leases: Iterable[LeaseRow | tuple]) -> int:
        """Add many leases with one merge at the end; returns how many were given.

        Each is a LeaseRow or a tuple of `add`'s arguments.
        """
        self._auto_compact = False
        count = 0
        add = self.add
        try:
            for lease in leases:
                if isinstance(lease, tuple):
                    add(*lease)
                else:
                    add(lease.network, lease.start_us, lease.end_us, lease.owner, lease.source)
                count += 1
        finally:
            self._auto_compact = True
            self.compact()
        return count

    def compact(self) -> None:
        """Merge pending leases into the sorted arrays (done by `add` in batches)."""
        if not self._pending:
            return
        for (version, plen), pending in self._pending.items():
            old = self._tables.get((version, plen))
            columns = _Columns(wide=plen > 64)
            if old is not None:
                columns.extend_table(old)
            columns.extend(pending)
            table = self._build(columns.sorted_entries(), wide=plen > 64)
            self._size += len(table) - (len(old) if old is not None else 0)
            self._tables[(version, plen)] = table
            del columns
        self._pending.clear()
        self._pending_keys.clear()
        self._pending_count = 0
        self._owners.seal()
        self._update_search()

    def _update_search(self) -> None:
        for version in (4, 6):
            plens = {plen for v, plen in (*self._tables, *self._pending) if v == version}
            search = []
            for plen in sorted(plens, reverse=True):
                t = self._tables.get((version, plen))
                # A table's arrays as one tuple: one unpacking on the hot path.
                parts = (
                    None
                    if t is None
                    else (
                        t.base,
                        t.shift,
                        t.buckets,
                        len(t.buckets) - 1,
                        t.keys,
                        t.rec,
                        t.multi_starts,
                        t.multi_rest,
                    )
                )
                search.append((bits(version) - plen, plen, parts))
            self._search[version] = search

    def _build(self, entries: Iterable[tuple[int, int, int, int, int]], wide: bool) -> _Table:
        keys: array | list[int] = [] if wide else array("Q")
        first = array("I", [0])  # intervals of keys[i]: first[i] .. first[i+1]
        starts = array("q")
        ends = array("q")
        owners = array("I")
        sources = array("H")
        same = self._owners.same
        last_key = None
        for key, start, end, owner, source in entries:
            if key == last_key:
                previous_end = ends[-1]
                if start <= previous_end and same(owners[-1], owner):
                    if end > previous_end:
                        ends[-1] = end  # a renewal: one longer lease
                    continue
                if start < previous_end:
                    self.overlaps += 1
                    if start == starts[-1]:
                        # Same start: the lease added last stands.
                        starts.pop()
                        ends.pop()
                        owners.pop()
                        sources.pop()
                        first[-1] -= 1
                        if first[-1] == first[-2]:
                            keys.pop()
                            first.pop()
                            last_key = None
                    else:
                        ends[-1] = start
            if key != last_key:
                keys.append(key)
                first.append(first[-1])
                last_key = key
            starts.append(start)
            ends.append(end)
            owners.append(owner)
            sources.append(source)
            first[-1] += 1
        del entries
        table = _Table(wide)
        table.keys = keys
        table.count = len(starts)
        rec, multi_starts, multi_rest = table.rec, table.multi_starts, table.multi_rest
        for i in range(len(keys)):
            lo, hi = first[i], first[i + 1]
            if hi - lo == 1:
                rec.extend((starts[lo], ends[lo], owners[lo] << 16 | sources[lo]))
                continue
            rec.extend((len(multi_starts), len(multi_starts) + hi - lo, -1))
            for j in range(lo, hi):
                multi_starts.append(starts[j])
                multi_rest.extend((ends[j], owners[j] << 16 | sources[j]))
        _bucket(table)
        return table

    # -- looking up ----------------------------------------------------------

    def lookup(self, ip: str, at_us: int) -> Lease | None:
        """The lease of `ip` (longest matching prefix) valid at `at_us`, or None.

        ValueError when `ip` is not an address.
        """
        version, value = parse_address(ip)
        return self.lookup_value(version, value, at_us)

    def lookup_value(self, version: int, value: int, at_us: int) -> Lease | None:
        """`lookup` of an address given as (version, integer)."""
        pending_keys = self._pending_keys
        for shift, plen, parts in self._search[version]:
            key = value >> shift
            start = -1
            tag = -1
            if parts is not None:
                base, bucket_shift, buckets, count, keys, rec, multi_starts, multi_rest = parts
                b = (key - base) >> bucket_shift
                if 0 <= b < count:
                    # Most buckets hold one network or none: try the first before bisecting.
                    i = buckets[b]
                    hi = buckets[b + 1]
                    if i < hi and keys[i] != key:
                        i = bisect_left(keys, key, i + 1, hi)
                    if i < hi and keys[i] == key:
                        k = 3 * i
                        tag = rec[k + 2]
                        if tag >= 0:
                            start = rec[k]
                            end = rec[k + 1]
                            if not start <= at_us < end:
                                tag = -1
                        else:
                            lo = rec[k]
                            j = bisect_right(multi_starts, at_us, lo, rec[k + 1]) - 1
                            if j >= lo:
                                m = 2 * j
                                end = multi_rest[m]
                                if at_us < end:
                                    start = multi_starts[j]
                                    tag = multi_rest[m + 1]
            if pending_keys:
                entries = pending_keys.get((version, plen, key))
                if entries:
                    # Added since the last merge: the latest start holding then wins.
                    # (Merging may still cut a conflicting lease differently: a lease
                    # cut short by another owner's does not hold again after it.)
                    best = None
                    for entry in entries:
                        if entry[1] <= at_us < entry[2] and (best is None or entry[1] >= best[1]):
                            best = entry
                    if best is not None and (tag < 0 or best[1] >= start):
                        return self._lease(version, plen, shift, *best)
            if tag >= 0:
                # _lease, inlined: this is the common case of the hot path.
                owners = self._owners
                offsets = owners._offsets
                owner = tag >> 16
                sub, account, line = owners._packed[offsets[owner] : offsets[owner + 1]].split(_SEP)
                return _new_tuple(
                    Lease,
                    (
                        version,
                        plen,
                        key << shift,
                        start,
                        None if end == FOREVER else end,
                        sub or None,
                        account or None,
                        line or None,
                        self._sources[tag & 0xFFFF],
                        None,
                    ),
                )
        return None

    def _lease(self, version, plen, shift, key, start, end, owner, source) -> Lease:
        owners = self._owners
        if owner < owners.sealed:
            offsets = owners._offsets
            text = owners._packed[offsets[owner] : offsets[owner + 1]]
        else:
            text = owners.raw(owner)
        sub, account, line = text.split(_SEP)
        return Lease(
            version,
            plen,
            key << shift,
            start,
            None if end == FOREVER else end,
            sub or None,
            account or None,
            line or None,
            self._sources[source],
        )

    def memory_bytes(self) -> int:
        """Bytes held by the arrays and packed owners (not counting pending leases)."""
        total = self._owners.memory_bytes()
        for table in self._tables.values():
            for part in (table.buckets, table.rec, table.multi_starts, table.multi_rest):
                total += part.itemsize * len(part)
            if isinstance(table.keys, array):
                total += table.keys.itemsize * len(table.keys)
            else:
                total += sum(8 + 36 for _ in table.keys)
        return total
