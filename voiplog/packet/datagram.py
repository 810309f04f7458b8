"""What decoding gives back, and the one fast reader of the commonest frame.

`Datagram` and `TcpSegment` are named tuples: fields by name where that reads better,
by index and by unpacking where the hot path wants speed. Decoding builds them with
``tuple.__new__`` (see `_new`), which skips the Python-level ``__new__`` a named
tuple generates and costs about half of it, though several times a plain tuple:
the pipeline reads the RTP of known calls without building either.

`read_udp` is the fast path of decoding: Ethernet (untagged or one 802.1Q tag),
IPv4 without options, not fragmented, UDP. It only ever takes what the general
walker of `voiplog.packet.decode` decodes to the same datagram (a test holds the two
together); anything doubtful is left to the walker. `decode` calls it; the
pipeline's RTP fast path runs the same test inline, on the same `ETHERNET_UDP`
layout, because there a call per packet would cost more than the rest of the path
(a test of the pipeline holds that copy to this one).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["ETHERNET_UDP", "NO_UDP", "VXLAN_PORT", "Datagram", "TcpSegment", "read_udp"]


class Datagram(NamedTuple):
    """One UDP, TCP or SCTP datagram of a frame, as `decode` returns it."""

    proto: int
    """IP protocol: 17 (UDP), 6 (TCP) or 132 (SCTP)."""
    src_ip: bytes
    """Packed source address (4 or 16 bytes)."""
    src_port: int
    dst_ip: bytes
    """Packed destination address (4 or 16 bytes)."""
    dst_port: int
    payload: bytes
    """UDP payload trimmed to the UDP length; TCP segment payload; SCTP chunks."""


class TcpSegment(NamedTuple):
    """A TCP segment with what stream reassembly needs, as `decode_tcp` returns it.

    Its first six fields are a `Datagram`'s, in the same order.
    """

    proto: int
    """Always 6."""
    src_ip: bytes
    src_port: int
    dst_ip: bytes
    dst_port: int
    payload: bytes
    seq: int
    ack: int
    flags: int
    """The TCP flags byte: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10."""


# Builds a Datagram or TcpSegment from a tuple of its fields without the Python-level
# ``__new__`` of a named tuple: ``_new(Datagram, (proto, ...))``.
_new = tuple.__new__

VXLAN_PORT = 4789
"""UDP to this port may be a VXLAN tunnel: `read_udp` leaves it to the general walker."""

ETHERNET_UDP = struct.Struct(">12xHBxH2xHxB12xHH2xH")
"""What `read_udp` reads of an untagged frame (4 bytes later behind a tag), in one
unpack: EtherType (12), IPv4 version+IHL (14), total length (16), flags+fragment
offset (20), protocol (23), UDP destination port (36), UDP length (38) and the first
two payload bytes (42) as one number. On the hot path one unpack costs less than
indexing the bytes one by one."""

_unpack = ETHERNET_UDP.unpack_from

NO_UDP = (0, 0)
"""What `read_udp` returns for a frame it does not take."""


def read_udp(frame: bytes, min_payload: int = 0) -> tuple[int, int]:
    """Where the UDP header starts in an Ethernet/IPv4/UDP frame, and the first two
    bytes of its payload (as one big-endian number): ``(offset, head)``, or `NO_UDP`.

    Taken: Ethernet untagged or with one 802.1Q tag, IPv4 without options and not
    fragmented, a total length and a UDP length that fit what was captured, not to
    `VXLAN_PORT`, and at least ``min_payload`` bytes of UDP payload (the RTP fast
    path asks for a whole RTP header, 12); ``head`` means something only when
    ``min_payload`` is 2 or more. With ``u`` the offset, ``frame[u - 8 : u + 4]`` is
    the flow key (`voiplog.packet.flow_key`), the UDP length is at ``u + 4`` and the
    payload starts at ``u + 8``.
    """
    size = len(frame)
    if size < 44:
        return NO_UDP
    ethertype, ver_ihl, total, fragment, proto, dport, length, head = _unpack(frame)
    ip = 14
    if ethertype == 0x8100 and size >= 48:
        ethertype, ver_ihl, total, fragment, proto, dport, length, head = _unpack(frame, 4)
        ip = 18
    if (
        ethertype == 0x0800
        and ver_ihl == 0x45
        and proto == 17
        and not fragment & 0x3FFF
        and 8 + min_payload <= length <= total - 20
        and total <= size - ip
        and dport != VXLAN_PORT
    ):
        return ip + 20, head
    return NO_UDP
