"""The key of a UDP flow, laid out as the packet headers hold it."""

from __future__ import annotations

import struct

_PORTS = struct.Struct(">HH")


def flow_key(src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int) -> bytes:
    """The key of a UDP flow: source and destination address, then the two ports.

    It is laid out as the bytes of an IPv4 (IPv6) header from its source
    address on, followed by a UDP header's ports, so that the pipeline's fast
    path can take it from a frame with a single slice.
    """
    return src_ip + dst_ip + _PORTS.pack(src_port, dst_port)
