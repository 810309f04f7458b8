"""Re-sending crafted calls the hard way: IP fragments, TCP streams, WebSocket, tunnels.

Each function takes the ``(ts, frame)`` list of a `tests.sipcraft.Dialog` (Ethernet /
IP / UDP) and returns another in which the SIP (UDP port 5060) travels differently;
RTP frames stay as they are unless a function says otherwise.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from tests.sipcraft import ETHER

SIP_PORT = 5060


def _is_sip(frame: bytes) -> bool:
    pkt = Ether(frame)
    return UDP in pkt and SIP_PORT in (pkt[UDP].sport, pkt[UDP].dport)


def _sort(frames):
    return sorted(frames, key=lambda f: f[0])


def ip_fragments(
    frames,
    size: int = 256,
    *,
    order: Callable[[list], list] = lambda pieces: pieces,
) -> list[tuple[int, bytes]]:
    """Every SIP datagram cut in fragments of `size` bytes, sent in `order`, same time."""
    out = []
    for ts, frame in frames:
        if not _is_sip(frame):
            out.append((ts, frame))
            continue
        pkt = Ether(frame)
        if IPv6 in pkt:
            ip6 = pkt[IPv6]
            whole = IPv6(src=ip6.src, dst=ip6.dst) / IPv6ExtHdrFragment(id=ts % 2**32)
            whole = whole / pkt[UDP]
            pieces = fragment6(whole, size + 48)
        else:
            whole = pkt[IP].copy()
            whole.id = ts % 65536
            pieces = fragment(whole, size)
        for piece in order(list(pieces)):
            out.append((ts, bytes(ETHER / piece)))
    return out


class _Direction:
    def __init__(self, isn: int) -> None:
        self.seq = isn


def tcp_stream(
    frames,
    *,
    client_port: int = SIP_PORT,
    server_port: int = SIP_PORT,
    handshake: bool = True,
    split: dict[int, list[int]] | None = None,
    order: dict[int, list[int]] | None = None,
    lose: frozenset[tuple[int, int]] = frozenset(),
    retransmit: dict[int, int] | None = None,
    keepalive_before: frozenset[int] = frozenset(),
    prefix: bytes = b"",
    wrap: Callable[[bytes, bool], bytes] | None = None,
    client_first: bytes = b"",
    server_first: bytes = b"",
) -> list[tuple[int, bytes]]:
    """The call's SIP over one TCP connection from the caller (client) to the callee.

    SIP message number n (0 = the INVITE) is cut at the offsets in ``split[n]``; its
    pieces are sent in ``order[n]`` (all at the message's time); piece ``(n, i)`` in
    `lose` is never captured; ``retransmit[n] = delay_us`` sends message n again
    later. `keepalive_before` puts a CRLFCRLF keep-alive in front of those messages;
    `prefix` is sent by the client before anything (the tail of an earlier message
    when `handshake` is False: the capture starts mid-stream). `wrap(payload,
    from_client)` turns each message into the bytes to send (WebSocket frames);
    `client_first` / `server_first` open the connection (an HTTP upgrade).
    """
    split = split or {}
    order = order or {}
    retransmit = retransmit or {}
    sip = [(ts, Ether(frame)) for ts, frame in frames if _is_sip(frame)]
    out = [(ts, frame) for ts, frame in frames if not _is_sip(frame)]
    if not sip:
        return out
    first = sip[0][1]
    client_ip = first[IP].src if IP in first else first[IPv6].src
    server_ip = first[IP].dst if IP in first else first[IPv6].dst
    ip_layer = IP if IP in first else IPv6
    client, server = _Direction(1000), _Direction(900_000)
    t0 = sip[0][0]

    def segment(ts, from_client, payload, flags="PA", seq=None):
        d = client if from_client else server
        src, dst = (client_ip, server_ip) if from_client else (server_ip, client_ip)
        sport, dport = (client_port, server_port) if from_client else (server_port, client_port)
        other = server if from_client else client
        pkt = (
            ETHER
            / ip_layer(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=d.seq if seq is None else seq,
                  ack=other.seq)
            / payload
        )  # fmt: skip
        out.append((ts, bytes(pkt)))

    if handshake:
        segment(t0 - 3000, True, b"", "S", seq=client.seq - 1)
        segment(t0 - 2000, False, b"", "SA", seq=server.seq - 1)
        segment(t0 - 1000, True, b"", "A")
    for opening, from_client, at in ((client_first, True, -900), (server_first, False, -800)):
        if opening:
            segment(t0 + at, from_client, opening)
            (client if from_client else server).seq += len(opening)
    if prefix:
        segment(t0 - 500, True, prefix)
        client.seq += len(prefix)
    for n, (ts, pkt) in enumerate(sip):
        src = pkt[IP].src if IP in pkt else pkt[IPv6].src
        from_client = src == client_ip
        payload = bytes(pkt[UDP].payload)
        if wrap is not None:
            payload = wrap(payload, from_client)
        if n in keepalive_before:
            payload = b"\r\n\r\n" + payload
        cuts = [0, *split.get(n, []), len(payload)]
        pieces = [payload[a:b] for a, b in itertools.pairwise(cuts)]
        d = client if from_client else server
        base = d.seq
        offsets = [base + a for a in cuts[:-1]]
        for i in order.get(n, range(len(pieces))):
            if (n, i) not in lose:
                segment(ts, from_client, pieces[i], seq=offsets[i])
        d.seq = base + len(payload)
        if n in retransmit:
            later = d.seq
            for i, piece in enumerate(pieces):
                d.seq = offsets[i]
                segment(ts + retransmit[n], from_client, piece)
            d.seq = later
    return _sort(out)


def websocket_frame(payload: bytes, *, mask: bytes | None, opcode: int = 1, fin: bool = True):
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack(">BB", first, bit | n)
    elif n < 65536:
        head = struct.pack(">BBH", first, bit | 126, n)
    else:
        head = struct.pack(">BBQ", first, bit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


WS_UPGRADE = (
    b"GET /sip HTTP/1.1\r\nHost: ws.example.net\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: https://www.example.net\r\nSec-WebSocket-Protocol: sip\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
WS_SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
)


def websocket_wrap(payload: bytes, from_client: bool) -> bytes:
    """One SIP message as WebSocket frames: the client masks and cuts it in two frames."""
    if not from_client:
        return websocket_frame(payload, mask=None)
    half = len(payload) // 2
    return (
        websocket_frame(payload[:half], mask=b"\x37\xfa\x21\x3d", fin=False)
        + (
            websocket_frame(b"", mask=b"\x01\x02\x03\x04", opcode=9)  # a ping between them
            + websocket_frame(payload[half:], mask=b"\x9a\x10\x55\xe1", opcode=0)
        )
    )


def tunnelled(frames, wrap: Callable[[bytes], bytes]) -> list[tuple[int, bytes]]:
    """Every frame's IP packet (SIP and RTP) carried by `wrap(ip_packet) -> frame`."""
    return [(ts, wrap(frame[14:])) for ts, frame in frames]
