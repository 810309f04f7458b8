"""Subscriber lookups: lookups per second and bytes per lease, with 1,000,000 leases loaded.

Builds a lease history like an access network's: IPv4 addresses of
subscribers, each held by one to three subscribers in turn over a month, and
IPv6 delegated /56 prefixes; then times `LeaseIndex.lookup(ip_text, time)` on
random addresses of the history at random times (most hit a lease, some fall
between two), best of ``--repeat`` runs. The rate is given per second of the
process's own CPU time, which other work on a shared machine does not inflate,
and per second of wall time. Memory is the index's own, measured twice:
Python's allocations (tracemalloc) still held after the build, and the growth
of the process's resident set (which keeps what the build used at its peak).

    python bench/enrich_lookup.py [--leases 1000000] [--lookups 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiplog._allocator import pin_mmap_threshold  # noqa: E402
from voiplog.enrich.leases import LeaseIndex, Owner  # noqa: E402

T0 = 1_700_000_000_000_000
DAY = 86_400_000_000
V4_BASE = 0x64400000  # 100.64.0.0
V6_BASE = 0x20010DB8 << 96


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def leases(count: int, v6_share: float, rng: random.Random):
    """(network, start, end, owner, source) tuples: address histories, then v6 prefixes."""
    v6 = int(count * v6_share)
    v4 = count - v6
    made = 0
    address = 0
    while made < v4:
        holders = min(rng.choice((1, 1, 2, 3)), v4 - made)
        start = T0 + rng.randrange(DAY)
        for _ in range(holders):
            end = start + rng.randrange(DAY, 10 * DAY)
            n = made
            yield (
                (4, 32, V4_BASE + address),
                start,
                end,
                Owner(f"sub{n:08d}", f"acct{n // 2:08d}", f"olt{n % 40}/1/{n % 16}/{n % 64}:100"),
                "leases-2024.csv",
            )
            start = end + rng.randrange(0, 3_600_000_000)  # a gap between two holders
            made += 1
        address += 1
    for n in range(v6):
        yield (
            (6, 56, V6_BASE + (n << 72)),
            T0,
            T0 + 30 * DAY,
            Owner(f"sub6{n:08d}", f"acct6{n:08d}", f"bng{n % 8}:ge-0/0/{n % 48}.{n % 4000}"),
            "radius",
        )


def ip_text(version: int, value: int) -> str:
    if version == 4:
        return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    import ipaddress

    return str(ipaddress.IPv6Address(value))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--v6-share", type=float, default=0.3, help="share of IPv6 /56 leases")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip tracemalloc (a build three times faster)"
    )
    args = parser.parse_args()
    rng = random.Random(1)

    pin_mmap_threshold()  # as the voiplog command does when it starts
    gc.collect()
    rss_before = rss_bytes()
    if not args.no_memory:
        tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    index = LeaseIndex()
    sample = []

    def keep(entries):
        for entry in entries:
            if rng.random() < 0.01:
                sample.append(entry)
            yield entry

    index.load(keep(leases(args.leases, args.v6_share, rng)))
    built = time.perf_counter() - started
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    # The sample of leases kept for the lookups is not part of the index.
    sample_bytes = sys.getsizeof(sample) + sum(
        sys.getsizeof(e) + sys.getsizeof(e[0]) + sys.getsizeof(e[3]) for e in sample
    )
    traced -= sample_bytes
    rss = rss_bytes() - rss_before

    queries = []
    for _ in range(args.lookups):
        (version, _plen, value), start, end, _owner, _source = rng.choice(sample)
        host = value | (rng.randrange(1 << 16) if version == 6 else 0)
        # Mostly inside the lease, sometimes just outside it.
        at = rng.randrange(start - DAY // 4, end + DAY // 4)
        queries.append((ip_text(version, host), at))
    v4_queries = [q for q in queries if ":" not in q[0]]
    v6_queries = [q for q in queries if ":" in q[0]]

    def run(batch):
        """(lookups per CPU second, per wall second, share of hits), best of the runs."""
        lookup = index.lookup
        best_cpu = best_wall = float("inf")
        hits = 0
        for _ in range(args.repeat):
            wall = time.perf_counter()
            cpu = time.process_time()
            hits = 0
            for ip, at in batch:
                if lookup(ip, at) is not None:
                    hits += 1
            best_cpu = min(best_cpu, time.process_time() - cpu)
            best_wall = min(best_wall, time.perf_counter() - wall)
        return len(batch) / best_cpu, len(batch) / best_wall, hits / len(batch)

    rate, wall_rate, hit_share = run(queries)
    v4_rate, v4_wall, _ = run(v4_queries)
    v6_rate, v6_wall, _ = run(v6_queries) if v6_queries else (0.0, 0.0, 0.0)
    count = args.leases
    print(f"leases loaded            {count:,} ({len(index):,} intervals after merging)")
    print(f"build time               {built:.1f} s")
    traced_text = "not measured" if args.no_memory else f"{traced / count:.0f}"
    print(
        f"bytes per lease          {traced_text} (tracemalloc), {rss / count:.0f} (RSS growth), "
        f"{index.memory_bytes() / count:.0f} (arrays)"
    )
    print(f"load average             {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"interpreter              {sys.executable} ({sys.version.split()[0]})")
    print("lookups per second       per CPU second / per wall second")
    print(f"  mixed                  {rate:,.0f} / {wall_rate:,.0f} ({hit_share:.0%} hit a lease)")
    print(f"  IPv4 addresses         {v4_rate:,.0f} / {v4_wall:,.0f}")
    print(f"  IPv6 in /56 prefixes   {v6_rate:,.0f} / {v6_wall:,.0f}")
    per_lease = (rss if args.no_memory else traced) / count
    ok = rate >= 300_000 and per_lease <= 200
    print("target (>= 300,000/s, <= 200 bytes/lease):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
