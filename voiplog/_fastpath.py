"""The pipeline's fast path, in pure Python: the reference of the compiled one
(`_cpipeline.FastPath`), which takes its place when it was built.

It runs once per packet before anything else, and takes the bulk of the
traffic (RTP of calls and of believed media sessions) with two dict lookups;
`Pipeline.feed` hands every other frame to the general path. It reads and
updates the pipeline's own state (its clock, its counters, the flows of its
tracker and classifier), as the compiled one does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from voiplog.packet import ETHERNET_UDP, VXLAN_PORT
from voiplog.rtp import RTP_OF_FLOW

# Expiry runs once per second of packet time.
EXPIRE_EVERY_US = 1_000_000


def fast_path(
    pipeline: Any,  # the `voiplog.pipeline.Pipeline` it runs for (a layer above)
    frames: Iterable[tuple[int, int, bytes]],
    on_progress: Callable[[], None] | None,
) -> Iterator[tuple[int, int, bytes, int]]:
    """Take the bulk of the traffic; yield the rest for the general path.

    The bulk is RTP, in Ethernet/IPv4/UDP as `read_udp` reads it, of a flow
    already attached to a call or of a media session already believed. It is
    read in place with two dict lookups (the flow key, then the SSRC). Every
    other frame is yielded as ``(ts, linktype, frame, udp)``, ``udp`` the
    offset `read_udp` found (0 if it found none). Once per second of packet
    time this also expires what is due and reports progress.
    """
    stats = pipeline.stats
    flows = pipeline.tracker.flows
    media = pipeline.tracker.media  # its generation changes whenever new SDP may announce a flow
    unmatched = pipeline._unmatched
    classifier = pipeline.classifier
    if classifier is not None:
        session_keys = classifier.session_keys
        take_rtp = classifier.take_rtp
    else:
        session_keys = {}
    dedup = pipeline._dedup
    rtp_of_flow = RTP_OF_FLOW
    vxlan = VXLAN_PORT
    unpack = ETHERNET_UDP.unpack_from
    copies = 0  # mirror copies dropped by the fast path
    next_expire = pipeline._next_expire_us
    now = pipeline._now_us
    ts = now
    fast = 0  # packets taken by the fast path (RTP of calls)
    media_fast = 0  # ... and RTP of media sessions
    slow = 0
    for ts, linktype, frame in frames:
        if ts >= next_expire:
            if ts > now:
                now = ts
            pipeline._now_us = now
            pipeline._expire(now)
            next_expire = now + EXPIRE_EVERY_US
            if on_progress is not None:
                on_progress()
        # `read_udp(frame, 12)`, inlined: a call per packet would cost more
        # than the rest of this path (tests/test_pipeline_fast_path.py holds
        # the two together). Then a whole RTP header (12 bytes) of a version
        # and payload type that a flow known to carry RTP takes as RTP.
        udp = 0
        if linktype == 1 and (size := len(frame)) >= 44:
            ethertype, ver_ihl, total, fragment, proto, dport, length, head = unpack(frame)
            ip = 14
            if ethertype == 0x8100 and size >= 48:
                ethertype, ver_ihl, total, fragment, proto, dport, length, head = unpack(frame, 4)
                ip = 18
            if (
                ethertype == 0x0800
                and ver_ihl == 0x45
                and proto == 17
                and not fragment & 0x3FFF
                and 20 <= length <= total - 20 <= size - ip - 20
                and dport != vxlan
            ):
                udp = ip + 20
                if rtp_of_flow[head]:
                    key = frame[udp - 8 : udp + 4]
                    flow = flows.get(key)
                    if flow is not None:
                        if dedup is not None and dedup.seen(
                            # The general path's key: flow key + UDP payload.
                            key + frame[udp + 8 : udp + (frame[udp + 4] << 8 | frame[udp + 5])],
                            ts,
                        ):
                            copies += 1
                            continue
                        # `MediaFlow.add_rtp`, but for a stream already attached
                        # (all packets but an SSRC's first) without its call.
                        stream = flow.streams.get(frame[udp + 16 : udp + 20])
                        if stream is None:
                            flow.add_rtp(ts, frame, udp + 8)
                        else:
                            stream.add(ts, frame, udp + 8)
                        fast += 1
                        continue
                    # RTP of a media session that no SDP announced, if believed,
                    # and only while no new SDP arrived that might announce it.
                    entry = session_keys.get(key)
                    if (
                        entry is not None
                        and unmatched.get(key) == media.generation
                        and take_rtp(
                            ts, entry, frame, udp + 8, (frame[udp + 4] << 8 | frame[udp + 5]) - 8
                        )
                    ):
                        media_fast += 1
                        continue
        slow += 1
        pipeline._number = stats.packets + fast + media_fast + slow + copies
        if ts > now:
            now = ts
        yield ts, linktype, frame, udp
    if ts > now:
        now = ts  # the fast path leaves `now` behind; catch up with the last packet
    stats.packets += fast + media_fast + slow + copies
    stats.mirror_duplicates += copies
    stats.rtp_packets += fast
    stats.udp += fast + media_fast
    stats.media_session_packets += media_fast
    pipeline._now_us = now
    pipeline._next_expire_us = next_expire


def udp_fields(frame: bytes, udp: int) -> tuple[bytes, int, bytes, int, bytes, bytes]:
    """``(src, sport, dst, dport, payload, key)`` of a frame the fast path read, `udp`
    the offset of its UDP header after an IPv4 header of 20 bytes, `key` its
    `flow_key` (the frame's addresses and ports as they stand), `payload` as long as
    the UDP length says."""
    return (
        frame[udp - 8 : udp - 4],
        frame[udp] << 8 | frame[udp + 1],
        frame[udp - 4 : udp],
        frame[udp + 2] << 8 | frame[udp + 3],
        frame[udp + 8 : udp + (frame[udp + 4] << 8 | frame[udp + 5])],
        frame[udp - 8 : udp + 4],
    )
