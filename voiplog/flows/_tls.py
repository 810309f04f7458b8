"""TLS records and hello messages, read for the server name and protocol only.

Strategy: a TLS connection is judged by its first flight. The ClientHello is
read far enough to find the server name (SNI, RFC 6066) and the application
protocols offered (ALPN, RFC 7301); the extension walk is shared with DTLS,
whose hellos differ only by a cookie and a 12-byte handshake header, and which
also needs the use_srtp extension (RFC 5764). Nothing beyond the hello is
read: the rest of a connection is ciphertext and is only counted. Input that
does not add up raises the parser's own error (`TlsParseError` here), never
anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiplog._frozen import fast_frozen_init
from voiplog.flows._errors import FlowParseError, TlsParseError

CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23

HANDSHAKE_CLIENT_HELLO = 1
HANDSHAKE_SERVER_HELLO = 2

EXT_SERVER_NAME = 0
EXT_USE_SRTP = 14
EXT_ALPN = 16


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Hello:
    """What a ClientHello or ServerHello says that a flow record can use."""

    client: bool
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    srtp_profiles: tuple[int, ...] | None = None  # use_srtp, None when absent


class _Reader:
    """Bounds-checked reads over a hello body, raising the caller's error type."""

    __slots__ = ("data", "error", "pos")

    def __init__(self, data: bytes, error: type[FlowParseError]) -> None:
        self.data = data
        self.pos = 0
        self.error = error

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self.error(
                f"{what} runs past the hello", f"{self.error.kind.split('.')[0]}.short"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def vector(self, length_bytes: int, what: str) -> bytes:
        return self.take(int.from_bytes(self.take(length_bytes, what), "big"), what)

    def done(self) -> bool:
        return self.pos >= len(self.data)


def parse_hello(
    handshake_type: int, body: bytes, *, dtls: bool, error: type[FlowParseError]
) -> Hello:
    """Read a ClientHello (type 1) or ServerHello (type 2) body for its extensions."""
    if handshake_type not in (HANDSHAKE_CLIENT_HELLO, HANDSHAKE_SERVER_HELLO):
        raise error(f"handshake type {handshake_type} is not a hello", "hello.not_hello")
    client = handshake_type == HANDSHAKE_CLIENT_HELLO
    r = _Reader(body, error)
    r.take(2 + 32, "version and random")
    r.vector(1, "session id")
    if client:
        if dtls:
            r.vector(1, "cookie")
        r.vector(2, "cipher suites")
        r.vector(1, "compression methods")
    else:
        r.take(2 + 1, "cipher suite and compression")
    if r.done():
        return Hello(client)
    extensions = _Reader(r.vector(2, "extensions"), error)
    server_name = None
    alpn: tuple[str, ...] = ()
    profiles = None
    while not extensions.done():
        ext_type = int.from_bytes(extensions.take(2, "extension type"), "big")
        value = _Reader(extensions.vector(2, "extension"), error)
        if ext_type == EXT_SERVER_NAME and client and not value.done():
            names = _Reader(value.vector(2, "server name list"), error)
            while not names.done():
                name_type = names.take(1, "server name type")[0]
                name = names.vector(2, "server name")
                if name_type == 0 and server_name is None:
                    server_name = name.decode("ascii", "replace")[:255]
        elif ext_type == EXT_ALPN:
            protocols = _Reader(value.vector(2, "ALPN list"), error)
            found = []
            while not protocols.done():
                found.append(protocols.vector(1, "ALPN protocol").decode("ascii", "replace"))
            alpn = tuple(found[:16])
        elif ext_type == EXT_USE_SRTP:
            raw = value.vector(2, "SRTP protection profiles")
            if len(raw) % 2:
                raise error("odd length of SRTP protection profiles", "dtls.bad_use_srtp")
            profiles = tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
            value.vector(1, "MKI")
    return Hello(client, server_name, alpn, profiles)


def looks_like_tls(payload: bytes) -> bool:
    """True if ``payload`` starts with a TLS record header (SSL 3.0 to TLS 1.3 framing)."""
    return len(payload) >= 5 and 20 <= payload[0] <= 23 and payload[1] == 3 and payload[2] <= 4


def parse_client_hello(payload: bytes) -> Hello:
    """The ClientHello at the start of a TCP payload; raise `TlsParseError` otherwise.

    The hello must be in the first record and whole in this segment, which is
    how clients send it (a hello cut by the segment is reported as short).
    """
    if not looks_like_tls(payload):
        raise TlsParseError("not a TLS record header", "tls.not_tls")
    if payload[0] != CONTENT_HANDSHAKE:
        raise TlsParseError(f"record type {payload[0]} is not a handshake", "tls.not_hello")
    record_len = payload[3] << 8 | payload[4]
    record = payload[5 : 5 + record_len]
    if len(record) < 4:
        raise TlsParseError("handshake record shorter than its header", "tls.short")
    if record[0] != HANDSHAKE_CLIENT_HELLO:
        raise TlsParseError(f"handshake type {record[0]} is not ClientHello", "tls.not_hello")
    length = int.from_bytes(record[1:4], "big")
    body = record[4 : 4 + length]
    if len(body) < length:
        raise TlsParseError("ClientHello cut short", "tls.short")
    return parse_hello(HANDSHAKE_CLIENT_HELLO, body, dtls=False, error=TlsParseError)


def says_sip(hello: Hello) -> bool:
    """Whether a hello names SIP: an ALPN protocol or the server name's first label."""
    if any("sip" in protocol.lower() for protocol in hello.alpn):
        return True
    if hello.server_name:
        first = hello.server_name.split(".", 1)[0].lower()
        return first.startswith("sip") or first.endswith("sip")
    return False
