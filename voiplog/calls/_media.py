"""Media expectation: the endpoints that SDP announced, and the RTP flows attached
to the calls that announced them.

Strategy: every RTP address:port of an SDP offer or answer is expected from the
moment it is announced, in an index from (packed address, port) to the calls
that announced it, newest last. The first RTP of a new UDP flow is matched
against that index once (`MediaIndex.match`); a matched flow is kept by its
`flow_key` in `MediaIndex.flows`, which the pipeline's fast path reads directly.
`generation` changes whenever the index does, so that callers may cache misses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voiplog.packet import flow_key, format_ip
from voiplog.rtp import RtpStream, codec_for
from voiplog.sip import SessionDescription

if TYPE_CHECKING:
    from voiplog.calls._dialog import Dialog, Side


# (packed ip, port) of an announced media endpoint.
EndpointKey = tuple[bytes, int]

_ADDRESS_CACHE: dict[str, bytes | None] = {}


def _ipv4(text: str) -> bytes | None:
    """The packed IPv4 address `text` as `ipaddress` reads it (four decimal
    octets of at most three ASCII digits, no leading zero, each at most 255),
    else None; in half its time, and without raising."""
    octets = text.split(".")
    if len(octets) != 4 or not text.isascii() or not text.replace(".", "").isdigit():
        return None
    for octet in octets:
        if not octet or len(octet) > 3 or (octet[0] == "0" and len(octet) > 1):
            return None
    try:
        return bytes(map(int, octets))
    except ValueError:  # an octet over 255
        return None


def _packed_address(text: str) -> bytes | None:
    """Packed bytes of an SDP connection address (cached: media servers repeat)."""
    packed = _ADDRESS_CACHE.get(text, b"")
    if packed != b"":
        return packed
    packed = _ipv4(text)
    if packed is None:
        # IPv6, scope ids, anything unreadable: ipaddress's to judge.
        try:
            packed = ipaddress.ip_address(text).packed
        except ValueError:
            packed = None
    if len(_ADDRESS_CACHE) >= 65536:
        _ADDRESS_CACHE.clear()
    _ADDRESS_CACHE[text] = packed
    return packed


@dataclass(slots=True)
class _Endpoint:
    """A media address:port announced in one side's SDP."""

    call: Dialog
    side: Side
    rtpmap: dict
    announced_us: int


class MediaFlow:
    """RTP arriving on one UDP flow, attached to the call that announced it."""

    __slots__ = ("call", "dst_ip", "dst_port", "key", "rtpmap", "src_ip", "src_port", "streams")

    def __init__(
        self,
        call: Dialog,
        src_ip: bytes,
        src_port: int,
        dst_ip: bytes,
        dst_port: int,
        rtpmap: dict,
    ) -> None:
        self.call = call
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.key = flow_key(src_ip, src_port, dst_ip, dst_port)
        self.rtpmap = rtpmap
        self.streams: dict[bytes, RtpStream] = {}  # by the SSRC's 4 bytes

    def add_rtp(self, ts_us: int, data: bytes, offset: int = 0) -> None:
        """Account one RTP packet of this flow, whose header starts at ``data[offset]``,
        to the stream of its SSRC (attached at its first packet)."""
        ssrc = data[offset + 8 : offset + 12]
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = new_stream(self, ssrc, data[offset + 1] & 0x7F, format_ip)
        stream.add(ts_us, data, offset)


def new_stream(flow: MediaFlow, ssrc: bytes, payload_type: int, fmt_ip: Callable) -> RtpStream:
    """Create and attach the RTP stream of one SSRC on a flow."""
    codec, clock = codec_for(payload_type, flow.rtpmap)
    stream = RtpStream(
        fmt_ip(flow.src_ip),
        flow.src_port,
        fmt_ip(flow.dst_ip),
        flow.dst_port,
        int.from_bytes(ssrc, "big"),
        payload_type,
        codec,
        clock,
        flow.rtpmap,
    )
    flow.streams[ssrc] = stream
    return stream


class MediaIndex:
    """The media endpoints announced by the SDP of open calls, and the RTP flows
    attached to those calls. A call's own share of it is kept on the call
    (`endpoints`, `offered_not_rtp`, `flows`), so that it can be let go at once."""

    __slots__ = ("_expected", "_max_flows", "_weird", "flows", "generation")

    def __init__(self, max_flows: int, on_weird: Callable[[str], None]) -> None:
        self._max_flows = max_flows
        self._weird = on_weird
        # Media endpoints announced by SDP: (packed ip, port) -> endpoints, newest last.
        self._expected: dict[EndpointKey, list[_Endpoint]] = {}
        # Flows attached to calls, by `flow_key`; the pipeline's RTP fast path
        # reads this dict directly.
        self.flows: dict[bytes, MediaFlow] = {}
        # Bumped whenever `_expected` changes.
        self.generation = 0

    def match(self, src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int) -> MediaFlow | None:
        """Attach a new RTP 5-tuple to the call whose SDP announced it, if any.

        Several calls may announce the same address:port (a media server), so
        the flow goes to a call that announced both of its ends when there is
        one, else to the newest call that announced its destination, else its
        source (a sender behind NAT receives elsewhere than it announced).
        """
        by_dst = self._expected.get((dst_ip, dst_port))
        by_src = self._expected.get((src_ip, src_port))
        chosen: _Endpoint | None = None
        if by_dst and by_src:
            src_calls = {id(e.call) for e in by_src}
            both = [e for e in by_dst if id(e.call) in src_calls]
            if both:
                chosen = both[-1]
        if chosen is None and by_dst:
            chosen = by_dst[-1]
        if chosen is None and by_src:
            chosen = by_src[-1]
        if chosen is None:
            return None
        if len(self.flows) >= self._max_flows:
            self._weird("rtp.flow_table_full")
            return None
        flow = MediaFlow(chosen.call, src_ip, src_port, dst_ip, dst_port, chosen.rtpmap)
        self.flows[flow.key] = flow
        call = chosen.call
        if call.flows:
            call.flows.append(flow)  # type: ignore[attr-defined]
        else:
            call.flows = [flow]
        return flow

    def announce(
        self, call: Dialog, side: Side, sdp: SessionDescription, ts_us: int, answer: bool
    ) -> None:
        """Expect the media of an SDP offer (`answer` False) or answer from `side`.

        RTP endpoints are expected from the moment they are announced. An
        endpoint that moves to something else (T.38 fax over UDPTL) stops being
        RTP only once an answer accepts the change, as RFC 3264 has it: a
        rejected offer changes nothing.
        """
        not_rtp: list[EndpointKey] = []
        for media in sdp.media:
            if media.port == 0 or not media.connection:
                continue
            packed = _packed_address(media.connection)
            if packed is None:
                self._weird("sdp.bad_connection_address")
                continue
            if packed in (b"\0\0\0\0", b"\0" * 16):
                continue  # RFC 2543 hold: no media expected
            key = (packed, media.port)
            if "RTP" not in media.proto.upper():
                not_rtp.append(key)
                continue
            endpoints = self._expected.setdefault(key, [])
            for existing in endpoints:
                if existing.call is call and existing.side is side:
                    existing.rtpmap = media.rtpmap
                    break
            else:
                endpoints.append(_Endpoint(call, side, media.rtpmap, ts_us))
                call.endpoints = (*call.endpoints, key)
                self.generation += 1
        if not answer:
            call.offered_not_rtp = tuple(not_rtp) if not_rtp else ()
            return
        for key in (*call.offered_not_rtp, *not_rtp) if not_rtp else ():
            self._retire(call, key)
        call.offered_not_rtp = ()

    def _retire(self, call: Dialog, key: EndpointKey) -> None:
        """Stop expecting RTP of `call` at `key`, and let go of its flows there."""
        endpoints = self._expected.get(key)
        if endpoints:
            endpoints[:] = [e for e in endpoints if e.call is not call]
            if not endpoints:
                del self._expected[key]
            self.generation += 1
        for flow in call.flows:
            ends = ((flow.src_ip, flow.src_port), (flow.dst_ip, flow.dst_port))
            if key in ends and self.flows.get(flow.key) is flow:
                del self.flows[flow.key]

    def release(self, call: Dialog) -> None:
        """Forget every endpoint and flow of a call that is closed."""
        for key in call.endpoints:
            endpoints = self._expected.get(key)
            if endpoints is None:
                continue
            endpoints[:] = [e for e in endpoints if e.call is not call]
            if not endpoints:
                del self._expected[key]
        self.generation += 1
        for flow in call.flows:
            if self.flows.get(flow.key) is flow:
                del self.flows[flow.key]
