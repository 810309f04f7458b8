"""Crafting SIP call flows with RTP as packets, for end-to-end tests.

A `Dialog` knows its two parties and produces the frames of a call: INVITE with
SDP, provisional and final responses, ACK, BYE, CANCEL, re-INVITE and RTP. Times
are integer microseconds; frames are Ethernet/IP/UDP bytes built with scapy.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass, field

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in µs

REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    302: "Moved Temporarily",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
}


# Fixed MAC addresses: with none given, scapy would resolve them on the host's network.
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def udp_frame(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    if ipaddress.ip_address(src).version == 6:
        pkt = ETHER / IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload
    else:
        pkt = ETHER / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload
    return bytes(pkt)


def rtp_packet(seq: int, timestamp: int, ssrc: int, pt: int = 0, size: int = 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + bytes(size)


@dataclass
class Party:
    ip: str
    port: int
    user: str
    media_port: int
    tag: str


@dataclass
class Dialog:
    call_id: str
    caller: Party
    callee: Party
    cseq: int = 1
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    user_agent: str = "craft-phone/1.0"

    # -- SIP -----------------------------------------------------------------

    def _host(self, ip: str) -> str:
        return f"[{ip}]" if ":" in ip else ip

    def _sdp(
        self,
        party: Party,
        direction: str = "sendrecv",
        port: int | None = None,
        address: str | None = None,
    ) -> bytes:
        af = "IP6" if ":" in party.ip else "IP4"
        return (
            "v=0\r\n"
            f"o={party.user} 1 1 IN {af} {party.ip}\r\n"
            "s=call\r\n"
            f"c=IN {af} {party.ip if address is None else address}\r\n"
            "t=0 0\r\n"
            f"m=audio {party.media_port if port is None else port} RTP/AVP 0 8 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            f"a={direction}\r\n"
        ).encode()

    def _headers(self, method: str, cseq: int, from_caller: bool, to_tag: bool) -> list[str]:
        c, e = self.caller, self.callee
        sender = c if from_caller else e
        frm, to = (c, e) if from_caller else (e, c)
        to_tag_value = (e.tag if from_caller else c.tag) if to_tag else None
        return [
            f"Via: SIP/2.0/UDP {self._host(sender.ip)}:{sender.port};branch=z9hG4bK{method.lower()}{cseq}{int(from_caller)}",
            "Max-Forwards: 70",
            f'From: "{frm.user.title()}" <sip:{frm.user}@{self._host(frm.ip)}>;tag={frm.tag}',
            f"To: <sip:{to.user}@{self._host(to.ip)}>"
            + (f";tag={to_tag_value}" if to_tag_value else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{sender.user}@{self._host(sender.ip)}:{sender.port}>",
        ]

    def request(
        self,
        ts: int,
        method: str,
        *,
        from_caller: bool = True,
        cseq: int | None = None,
        sdp: bytes | None = None,
        in_dialog: bool = True,
        extra: list[str] | None = None,
    ) -> bytes:
        cseq = self.cseq if cseq is None else cseq
        headers = self._headers(method, cseq, from_caller, to_tag=in_dialog)
        if from_caller:
            headers.append(f"User-Agent: {self.user_agent}")
        headers += extra or []
        body = sdp or b""
        if body:
            headers.append("Content-Type: application/sdp")
        headers.append(f"Content-Length: {len(body)}")
        target = self.callee if from_caller else self.caller
        start = f"{method} sip:{target.user}@{self._host(target.ip)}:{target.port} SIP/2.0"
        payload = ("\r\n".join([start, *headers]) + "\r\n\r\n").encode() + body
        src, dst = (self.caller, self.callee) if from_caller else (self.callee, self.caller)
        frame = udp_frame(src.ip, src.port, dst.ip, dst.port, payload)
        self.frames.append((ts, frame))
        return payload

    def response(
        self,
        ts: int,
        status: int,
        *,
        method: str = "INVITE",
        cseq: int | None = None,
        to_caller: bool = True,
        sdp: bytes | None = None,
        to_tag: str | None = None,
        extra: list[str] | None = None,
    ) -> bytes:
        cseq = self.cseq if cseq is None else cseq
        headers = self._headers(method, cseq, from_caller=to_caller, to_tag=status > 100)
        if to_tag is not None:
            headers = [
                h if not h.startswith("To:") else h.rsplit(";tag=", 1)[0] + f";tag={to_tag}"
                for h in headers
            ]
        headers += extra or []
        body = sdp or b""
        if body:
            headers.append("Content-Type: application/sdp")
        headers.append(f"Content-Length: {len(body)}")
        start = f"SIP/2.0 {status} {REASONS.get(status, 'Whatever')}"
        payload = ("\r\n".join([start, *headers]) + "\r\n\r\n").encode() + body
        src, dst = (self.callee, self.caller) if to_caller else (self.caller, self.callee)
        self.frames.append((ts, udp_frame(src.ip, src.port, dst.ip, dst.port, payload)))
        return payload

    def invite(self, ts: int, **kw) -> bytes:
        return self.request(ts, "INVITE", in_dialog=False, sdp=self._sdp(self.caller), **kw)

    def answer(self, ts: int, status: int = 200, **kw) -> bytes:
        return self.response(ts, status, sdp=self._sdp(self.callee), **kw)

    def ack(self, ts: int, **kw) -> bytes:
        return self.request(ts, "ACK", **kw)

    def bye(self, ts: int, by_caller: bool = True) -> bytes:
        cseq = self.cseq + 1 if by_caller else 1
        self.request(ts, "BYE", from_caller=by_caller, cseq=cseq)
        return self.response(ts + 20_000, 200, method="BYE", cseq=cseq, to_caller=by_caller)

    def basic_answered(self, start: int, talk_s: float = 2.0, rtp: bool = True) -> None:
        self.invite(start)
        self.response(start + 10_000, 100)
        self.response(start + 50_000, 180)
        self.answer(start + 1_000_000)
        self.ack(start + 1_010_000)
        if rtp:
            n = int(talk_s * 50)
            self.rtp(
                start + 1_050_000,
                n,
                from_caller=True,
                ssrc=0x1111_0000 + zlib.crc32(self.call_id.encode()) % 65536,
            )
            self.rtp(
                start + 1_055_000,
                n,
                from_caller=False,
                ssrc=0x2222_0000 + zlib.crc32(self.call_id.encode()) % 65536,
            )
        self.bye(start + 1_000_000 + int(talk_s * 1e6) + 100_000)

    # -- RTP -----------------------------------------------------------------

    def rtp(
        self,
        start: int,
        count: int,
        *,
        from_caller: bool,
        ssrc: int,
        seq0: int = 1000,
        pt: int = 0,
        drop: frozenset[int] = frozenset(),
        order: list[int] | None = None,
        interval_us: int = 20_000,
        jitter_us: dict[int, int] | None = None,
    ) -> None:
        """`count` packets at 20 ms; indexes in `drop` are not sent; `order`
        permutes the send order of indexes (times stay monotonic)."""
        src, dst = (self.caller, self.callee) if from_caller else (self.callee, self.caller)
        indexes = order if order is not None else list(range(count))
        slot = 0
        for i in indexes:
            if i in drop:
                slot += 1
                continue
            ts = start + slot * interval_us + (jitter_us or {}).get(i, 0)
            payload = rtp_packet(seq0 + i, 160 * i, ssrc, pt)
            self.frames.append(
                (ts, udp_frame(src.ip, src.media_port, dst.ip, dst.media_port, payload))
            )
            slot += 1


def sorted_frames(
    *dialogs: Dialog, extra: list[tuple[int, bytes]] | None = None
) -> list[tuple[int, bytes]]:
    frames = [f for d in dialogs for f in d.frames] + (extra or [])
    frames.sort(key=lambda f: f[0])
    return frames


def make_dialog(
    n: int = 1, *, caller_ip: str = "10.1.0.10", callee_ip: str = "192.0.2.50", sip_port: int = 5060
) -> Dialog:
    return Dialog(
        call_id=f"call-{n}@craft.example",
        caller=Party(caller_ip, sip_port, f"10{n:02d}", 40000 + 2 * n, f"tagA{n}"),
        callee=Party(callee_ip, sip_port, f"20{n:02d}", 50000 + 2 * n, f"tagB{n}"),
    )


# -- REGISTER ----------------------------------------------------------------


@dataclass
class Registration:
    """A UA registering with a registrar: REGISTER requests and their responses.

    One Call-ID for all of a UA's REGISTERs, as RFC 3261 §10.2 recommends; the
    CSeq is given per request. Contacts and Expires are whole header values, so
    that a test can send exactly what a device would.
    """

    call_id: str
    ua_ip: str
    ua_port: int
    user: str
    registrar_ip: str
    registrar_port: int = 5060
    domain: str = "voip.example.net"
    tag: str = "regtag1"
    user_agent: str | None = "craft-phone/1.0"
    frames: list[tuple[int, bytes]] = field(default_factory=list)

    def _host(self, ip: str) -> str:
        return f"[{ip}]" if ":" in ip else ip

    def _headers(self, cseq: int, to_tag: str | None, branch: str | None = None) -> list[str]:
        aor = f"sip:{self.user}@{self.domain}"
        branch = branch or f"z9hG4bKreg{cseq}"
        return [
            f"Via: SIP/2.0/UDP {self._host(self.ua_ip)}:{self.ua_port};branch={branch}",
            f"From: <{aor}>;tag={self.tag}",
            f"To: <{aor}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} REGISTER",
        ]

    def default_contact(self) -> str:
        return f"<sip:{self.user}@{self._host(self.ua_ip)}:{self.ua_port}>"

    def register(
        self,
        ts: int,
        cseq: int,
        *,
        contacts: list[str] | None = None,
        expires: int | None = 3600,
        auth_user: str | None = None,
        proxy_auth: bool = False,
        extra: list[str] | None = None,
        branch: str | None = None,
    ) -> bytes:
        """A REGISTER; `contacts` None sends the UA's own address, [] sends none."""
        headers = self._headers(cseq, None, branch)
        headers.append("Max-Forwards: 70")
        for contact in [self.default_contact()] if contacts is None else contacts:
            headers.append(f"Contact: {contact}")
        if expires is not None:
            headers.append(f"Expires: {expires}")
        if auth_user is not None:
            name = "Proxy-Authorization" if proxy_auth else "Authorization"
            headers.append(
                f'{name}: Digest username="{auth_user}", realm="{self.domain}", '
                f'nonce="abc{cseq}", uri="sip:{self.domain}", response="0123456789abcdef"'
            )
        if self.user_agent is not None:
            headers.append(f"User-Agent: {self.user_agent}")
        headers += extra or []
        headers.append("Content-Length: 0")
        start = f"REGISTER sip:{self.domain} SIP/2.0"
        payload = ("\r\n".join([start, *headers]) + "\r\n\r\n").encode()
        frame = udp_frame(self.ua_ip, self.ua_port, self.registrar_ip, self.registrar_port, payload)
        self.frames.append((ts, frame))
        return payload

    def reply(
        self,
        ts: int,
        status: int,
        cseq: int,
        *,
        contacts: list[str] | None = None,
        expires: int | None = None,
        extra: list[str] | None = None,
        branch: str | None = None,
    ) -> bytes:
        """The registrar's response; a 401/407 carries its challenge header."""
        headers = self._headers(cseq, "srvtag" if status > 100 else None, branch)
        for contact in contacts or []:
            headers.append(f"Contact: {contact}")
        if expires is not None:
            headers.append(f"Expires: {expires}")
        if status == 401:
            headers.append(f'WWW-Authenticate: Digest realm="{self.domain}", nonce="abc{cseq + 1}"')
        elif status == 407:
            headers.append(
                f'Proxy-Authenticate: Digest realm="{self.domain}", nonce="abc{cseq + 1}"'
            )
        headers += extra or []
        headers.append("Content-Length: 0")
        start = f"SIP/2.0 {status} {REASONS.get(status, 'Whatever')}"
        payload = ("\r\n".join([start, *headers]) + "\r\n\r\n").encode()
        frame = udp_frame(self.registrar_ip, self.registrar_port, self.ua_ip, self.ua_port, payload)
        self.frames.append((ts, frame))
        return payload


def make_registration(
    n: int = 1, *, ua_ip: str = "10.1.0.20", registrar_ip: str = "192.0.2.10"
) -> Registration:
    return Registration(
        call_id=f"reg-{n}@craft.example",
        ua_ip=ua_ip,
        ua_port=5060 + n,
        user=f"30{n:02d}",
        registrar_ip=registrar_ip,
    )
